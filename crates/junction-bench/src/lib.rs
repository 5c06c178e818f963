//! The load drivers of `bench/` that other crates' tests also run: `replicas`, several
//! Junction replicas on one PostgreSQL behind nginx, killed and restarted under load;
//! `provision`, provisioning against the real OAuth server with codes issued beforehand.

pub mod provision;
pub mod replicas;
