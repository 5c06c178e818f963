//! Junction's use cases, independent of HTTP.
//!
//! Each public function is one thing an API caller can do: prove who they are, get an
//! element's OAuth URL, provision an instance from an authorization code, read, list and
//! delete instances. They combine the catalog (what an element is), the OAuth client
//! (talking to providers) and the store (what is kept), and return wire-ready views plus
//! typed errors that the HTTP layer maps to status codes in one place.

mod accounts;
mod auth;
mod auth_limit;
mod catalog;
mod configuration;
mod connect;
mod credentials;
pub mod docs;
mod elements;
mod error;
pub mod events;
mod hosts;
mod instances;
mod metered;
mod oauth_url;
mod pacer;
mod proxy;
mod redact;
mod refresh;
mod resources;
mod schemes;
mod templates;
mod trace;
mod view;

pub use accounts::{AccountBody, AccountUserView, AccountView, NewUserView, UserBody};
pub use auth::{Caller, parse_authorization};
pub use auth_limit::{Addressing, FailureLimiter};
pub use catalog::{
    ElementMetadata, EventsMetadata, HubBody, HubView, MAX_HUB_NAME, MAX_HUB_TEXT,
    OperationMetadata, ResourceMetadata,
};

/// What one request may ask for, in one place for the OpenAPI document to state.
pub mod limits {
    pub use crate::configuration::{MAX_CONFIG_BYTES, MAX_CONFIG_ENTRIES, MAX_KEY, MAX_VALUE};
    pub use crate::instances::{
        MAX_NAME, MAX_PAGE_SIZE, MAX_SEARCH_TEXT, MAX_TAG, MAX_TAG_FILTERS, MAX_TAGS,
    };
    /// Hub fields.
    pub mod hubs {
        pub use crate::catalog::{MAX_HUB_NAME as MAX_NAME, MAX_HUB_TEXT as MAX_TEXT};
    }
    /// Account and user fields.
    pub mod accounts {
        pub use crate::accounts::{MAX_DESCRIPTION, MAX_EMAIL, MAX_EXTERNAL_ID, MAX_NAME};
    }
}
pub use configuration::{ConfigEntryView, config_id};
pub use connect::{
    AccountParams, CALLBACK_PATH as CONNECT_CALLBACK_PATH, ConnectCallback, ConnectElementView,
    ConnectFieldView, ConnectNext, ConnectPageView, ConnectSessionBody, ConnectSessionCreated,
    ConnectSessionEvent, ConnectSessionEventMessage, ConnectSessionView, ConnectStartBody,
    InlineOAuthApp, OAuthAppBody, OAuthAppView, PURGE_BATCH as CONNECT_PURGE_BATCH,
};
pub use elements::{ElementPart, FoundElement, derive_key};
pub use error::ServiceError;
pub use instances::{
    DEFAULT_PAGE_SIZE, ElementRef, InstanceBody, InstanceList, ListInstances, MAX_PAGE_SIZE,
    ProviderData, UpdateMode,
};
pub use oauth_url::{OAuthTokenParams, OAuthTokenResponse, OAuthUrlParams, OAuthUrlResponse};
pub use pacer::Pacer;
pub use proxy::{PingView, ProxyRequest};
pub use refresh::{RefreshCoordinator, SweepReport};
pub use resources::HubRequest;
pub use trace::{
    DEFAULT_TRACE_SECONDS, MAX_TRACE_SECONDS, TraceLogList, TraceLogView, TraceLoggingConfig,
    TraceWriter,
};
pub use view::{InstanceView, UserView};

use junction_catalog::Catalog;
use junction_oauth::{OutboundClient, ProxyClient};
use junction_store::Store;
use std::sync::Arc;

/// Everything the use cases need, cheap to clone into each request.
#[derive(Clone, Debug)]
pub struct Services {
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub outbound: OutboundClient,
    /// Passthrough calls to providers, whose bodies stream.
    pub proxy: ProxyClient,
    /// Single-flight of credential refreshes; one per process (per replica).
    pub refresh: Arc<RefreshCoordinator>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<FailureLimiter>,
    /// Where trace log entries go to be written.
    pub traces: TraceWriter,
    /// The events pipeline: outbox writer, delivery state, settings.
    pub events: Arc<events::EventHub>,
    /// Runs elements' JavaScript hooks.
    pub sandbox: junction_sandbox::Sandbox,
    /// Paces provider calls under the limits elements declare.
    pub pacer: Arc<Pacer>,
}

/// Milliseconds since the Unix epoch: the unit every stored time uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
