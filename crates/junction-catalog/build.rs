//! `include_dir!` cannot tell Cargo which files it read, so an element file added, edited
//! or removed would otherwise leave a stale catalog in the build.

fn main() {
    println!("cargo:rerun-if-changed=../../elements");
}
