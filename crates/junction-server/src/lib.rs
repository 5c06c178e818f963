//! Junction's HTTP server: the Cloud Elements API v2 surface over `junction-service`.
//!
//! `config` validates settings once at start; `startup` connects the store, applies
//! migrations, creates the first organization on an empty database and binds the
//! listener; `http` holds thin handlers (parse, call one service, render) and the single
//! place where errors become HTTP responses.

pub mod backup;
pub mod config;
pub mod http;
pub mod jobs;
mod serve;
pub mod startup;

pub use config::Config;
pub use startup::{App, Bootstrapped};
