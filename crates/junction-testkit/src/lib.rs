//! Test support for Junction's suites: a fresh database per test on SQLite or
//! PostgreSQL, the real OAuth2 servers in `tests/peers/` started as child processes, a
//! Graph-like provider for the Facebook elements (the real Graph API cannot be reached
//! from tests), and a scripted browser that walks an authorization URL to its callback.

pub mod browser;
pub mod chromium;
pub mod db;
pub mod graph;
pub mod peers;
