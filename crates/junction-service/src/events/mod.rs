//! The events pipeline, one stage per module:
//!
//! - `ingress`: a provider webhook arrives; find its instance, verify its sender;
//! - `normalize`: turn the payload into `{objectType, objectId, eventType, date}` events,
//!   from the element's `events:` data or its `event` hook;
//! - `outbox`: store the event and its notifications durably, many at once;
//! - `delivery`: send notifications to the app's callback, signed, retried with
//!   backoff, behind a circuit breaker per receiver;
//! - `poller`: read the changes of polling instances through the hub resources;
//! - `records`: the events API (read, replay) and retention.

mod delivery;
mod ingress;
mod normalize;
mod outbox;
mod poller;
mod records;

pub use delivery::{DeliveryReport, sign_body};
pub use ingress::{WebhookAnswer, WebhookRequest};
pub use poller::{
    PollReport, PollerView, ReconcileReport, backoff, check_poller_configuration,
    initial_watermark, poller_owner,
};
pub use records::{EventList, EventListQuery, EventView, NotifiedAttempt, ReplayView};

use junction_oauth::OutboundClient;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Configuration entries the pipeline reads.
pub mod keys {
    pub const ENABLED: &str = "event.notification.enabled";
    pub const CALLBACK_URL: &str = "event.notification.callback.url";
    pub const SIGNATURE_KEY: &str = "event.notification.signature.key";
}

/// The receiver a callback URL names: its origin. Notifications are stored under it and
/// its circuit breaker is keyed by it, so every path of one receiver shares one circuit.
pub(crate) fn receiver_of(callback_url: &str) -> String {
    url::Url::parse(callback_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| callback_url.to_owned())
}

/// The configuration entry that says what a polling instance polls.
pub const POLLER_CONFIGURATION: &str = poller::poll_keys::CONFIGURATION;

/// Most events one notification carries (Cloud Elements' limits).
pub const WEBHOOK_EVENTS_PER_NOTIFICATION: usize = 20;
pub const POLLING_EVENTS_PER_NOTIFICATION: usize = 10;

/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 10 * 1024 * 1024;

/// How notifications are delivered.
#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    /// Delivery workers in this process.
    pub workers: usize,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; each later one waits four times longer.
    pub first_retry_delay: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Delivered events are kept this long.
    pub retention: Duration,
    /// Also send the Standard Webhooks headers when a signature key is set.
    pub standard_webhooks: bool,
    /// How often this process looks for instances due to poll; zero: it polls none.
    pub poll_tick: Duration,
    /// One minute of `event.poller.refresh_interval` (a minute, except in tests).
    pub poll_minute: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            retries: 9,
            first_retry_delay: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
            standard_webhooks: true,
            poll_tick: Duration::from_secs(5),
            poll_minute: Duration::from_secs(60),
        }
    }
}

/// The pipeline's shared parts, one per process.
pub struct EventHub {
    pub settings: EventSettings,
    /// Calls to the apps' callbacks: the outbound address policy, no redirects, the
    /// delivery timeout.
    client: OutboundClient,
    writer: outbox::OutboxWriter,
    /// Wakes idle delivery workers when new notifications were stored.
    wake: std::sync::Arc<tokio::sync::Notify>,
    breakers: Mutex<HashMap<String, delivery::Breaker>>,
    sandbox: junction_sandbox::Sandbox,
    /// Webhooks accepted for instances whose events are off, and so not kept.
    pub dropped: AtomicU64,
    /// Names this process's delivery leases.
    owner: String,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// Starts the outbox writer on the current runtime. `sandbox` runs elements' `event`
    /// hooks (the one every hook of the process shares).
    pub fn start(
        store: junction_store::Store,
        client: OutboundClient,
        sandbox: junction_sandbox::Sandbox,
        settings: EventSettings,
    ) -> Self {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        Self {
            settings,
            client,
            writer: outbox::OutboxWriter::start(store, std::sync::Arc::clone(&wake)),
            wake,
            breakers: Mutex::new(HashMap::new()),
            sandbox,
            dropped: AtomicU64::new(0),
            owner: format!("events-{}", uuid::Uuid::new_v4()),
        }
    }

    /// Checks an app's callback against the outbound address policy before anything is
    /// stored with it; `field` names it in the answer.
    pub(crate) fn check_callback(&self, field: &str, url: &str) -> Result<(), crate::ServiceError> {
        use junction_oauth::OAuthError;
        match self.client.check_url(field, url) {
            Ok(_) => Ok(()),
            Err(OAuthError::Policy(v)) => Err(crate::ServiceError::bad_request(
                "outbound_address_refused",
                format!("{field} is refused: {v}"),
            )),
            Err(_) => Err(crate::ServiceError::bad_request(
                "invalid_parameter",
                format!("{field} must be an absolute http(s) URL"),
            )),
        }
    }

    /// Wakes idle delivery workers: notifications were stored outside the outbox writer.
    pub(crate) fn wake_deliveries(&self) {
        self.wake.notify_waiters();
    }

    /// The delay before retry number `n` (1-based), with up to 20% jitter either way so
    /// that notifications that failed together do not all come back together.
    pub fn retry_delay(&self, n: u32) -> Duration {
        let base = self.settings.first_retry_delay.as_millis() as f64;
        let factor = 4f64.powi(n.saturating_sub(1).min(20) as i32);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        Duration::from_millis((base * factor * jitter).min(1e13) as u64)
    }
}
