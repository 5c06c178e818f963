//! Junction's vocabulary: the types every other crate speaks.
//!
//! Element definitions (the catalog's data model: configuration, credentials, hub
//! resources), instance configuration maps, ids,
//! secret newtypes that never print their value, providers' rate limits, HTML sanitising of user-supplied names
//! and the outbound address policy. This crate does no I/O: no database, no HTTP, no
//! filesystem, so anything may depend on it and it depends on nothing of ours.

pub mod config;
pub mod credential;
pub mod element;
pub mod hub;
pub mod ids;
pub mod net;
pub mod rate;
pub mod sanitize;
pub mod secret;

pub use config::{ConfigMap, ConfigValue, MASK};
pub use element::{ElementDefinition, ElementSummary};
pub use ids::{AccountId, InstanceId, OrganizationId, UserId};
pub use secret::Secret;
