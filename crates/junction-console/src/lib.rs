//! The web console's and the hosted Connect page's assets, embedded in the binary.
//!
//! Plain HTML, CSS and JavaScript modules, served as they are written: there is no
//! front-end build step, so `cargo build` needs no other toolchain and nothing can go
//! stale. Every script is a file of its own, because the pages are served under a
//! Content-Security-Policy that refuses inline scripts.

use include_dir::{Dir, include_dir};

static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/assets");

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

/// The console's page: every console route (`/`, `/console/callback`) answers it, and its
/// script decides what to show from the address.
pub fn console_page() -> Asset {
    asset("index.html").unwrap_or(Asset {
        body: b"",
        content_type: HTML,
    })
}

/// The hosted Connect page an app sends its end customer to.
pub fn connect_page() -> Asset {
    asset("connect.html").unwrap_or(Asset {
        body: b"",
        content_type: HTML,
    })
}

/// A static file by its path under `/console/`, such as `app.js`.
pub fn asset(path: &str) -> Option<Asset> {
    let file = ASSETS.get_file(path)?;
    Some(Asset {
        body: file.contents(),
        content_type: content_type(path)?,
    })
}

/// Every embedded file's path, for checks over the whole set.
pub fn paths() -> Vec<&'static str> {
    let mut out = Vec::new();
    collect(&ASSETS, &mut out);
    out.sort_unstable();
    out
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<&'static str>) {
    for file in dir.files() {
        if let Some(path) = file.path().to_str() {
            out.push(path);
        }
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

const HTML: &str = "text/html; charset=utf-8";

/// Only the kinds of file the console ships; anything else is not served at all.
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1;
    Some(match extension {
        "html" => HTML,
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).unwrap().body).unwrap()
    }

    #[test]
    fn both_pages_are_embedded_as_html() {
        assert!(console_page().body.starts_with(b"<!doctype html>"));
        assert!(connect_page().body.starts_with(b"<!doctype html>"));
        assert_eq!(console_page().content_type, HTML);
    }

    #[test]
    fn pages_carry_no_inline_script_or_event_handler() {
        for path in paths().into_iter().filter(|p| p.ends_with(".html")) {
            let html = text(path).to_ascii_lowercase();
            for (at, _) in html.match_indices("<script") {
                let tag = &html[at..at + html[at..].find('>').unwrap()];
                assert!(tag.contains(" src="), "{path}: inline script {tag}");
            }
            assert!(!html.contains(" onclick="), "{path}: inline handler");
            assert!(!html.contains(" onload="), "{path}: inline handler");
            assert!(!html.contains("javascript:"), "{path}: javascript: URL");
        }
    }

    #[test]
    fn nothing_loads_from_another_origin() {
        for path in paths() {
            if path.ends_with(".png") {
                continue;
            }
            // An SVG names its XML namespace by URL; that is not a request.
            let body = text(path).replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !body.contains(scheme),
                    "{path} names {scheme}: assets must come from Junction itself"
                );
            }
        }
    }

    #[test]
    fn every_local_reference_in_a_page_is_embedded() {
        for path in paths().into_iter().filter(|p| p.ends_with(".html")) {
            let html = text(path);
            for attribute in ["src=\"", "href=\""] {
                for (at, _) in html.match_indices(attribute) {
                    let rest = &html[at + attribute.len()..];
                    let target = &rest[..rest.find('"').unwrap()];
                    if let Some(file) = target.strip_prefix("/console/") {
                        assert!(asset(file).is_some(), "{path} references missing {target}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_module_import_is_embedded() {
        for path in paths().into_iter().filter(|p| p.ends_with(".js")) {
            for line in text(path).lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit_once("from '").unwrap().1;
                let file = target.trim_end_matches("';").trim_start_matches("./");
                assert!(asset(file).is_some(), "{path} imports missing {file}");
            }
        }
    }

    #[test]
    fn the_console_weighs_under_200_kib() {
        let total: usize = paths().iter().map(|p| asset(p).unwrap().body.len()).sum();
        assert!(total < 200 * 1024, "the assets weigh {total} bytes");
    }

    #[test]
    fn unknown_kinds_of_file_are_not_served() {
        assert!(asset("missing.js").is_none());
        assert_eq!(content_type("a.exe"), None);
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
    }
}
