//! Test support for Junction's suites: a fresh database per test on SQLite or
//! PostgreSQL, the real OAuth2 servers in `tests/peers/` started as child processes, a
//! Graph-like provider for the Facebook elements, local stand-ins for the other vendor
//! APIs the elements call (Salesforce, Instagram, Act-On, Close, Jira, HubSpot, Zendesk;
//! none can be reached from tests, so each follows the vendor's documented shapes and
//! checks what Junction sends), and a scripted browser that walks an authorization URL
//! to its callback, and the checks every generated Swagger 2.0 document must pass.

pub mod browser;
pub mod chromium;
pub mod db;
pub mod graph;
pub mod peers;
pub mod swagger;
pub mod vendors;
