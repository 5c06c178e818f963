//! API tests: a real Junction server on a loopback port, a fresh database per test (each
//! test runs on SQLite and on PostgreSQL), and real OAuth2 servers as providers.

#![allow(clippy::unwrap_used)]

mod helpers;

mod accounts;
mod auth_types;
mod builder;
mod catalog;
mod connect;
mod connect_events;
mod console;
mod docs;
mod errors;
mod events;
mod events_polling;
mod hub_acton;
mod hub_client;
mod hub_crm;
mod hub_facebook;
mod hub_helpdesk;
mod hub_instagram;
mod hub_netsuite;
mod hub_salesforce;
mod hubs;
mod lifecycle;
mod limits;
mod operations;
mod outbound;
mod paging;
mod provisioning;
mod proxy;
mod rate_limits;
mod refresh;
mod replicas;
mod resources;
mod tenant_hosts;
mod trace;
mod wire;
