//! The load drivers of `bench/` that other crates' tests also run: `replicas`, several
//! Junction replicas on one PostgreSQL behind nginx, killed and restarted under load.

pub mod replicas;
