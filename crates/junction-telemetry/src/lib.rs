//! Junction's telemetry: every metric's name, labels and description in one place, the
//! functions the other crates record through, the Prometheus exposition, and the W3C
//! trace context of incoming requests.
//!
//! Recording goes through the `metrics` facade: until [`install`] runs (the metrics
//! listener is off by default) every recording is a no-op. Metrics are per process;
//! every label takes values from a bounded set (route templates, built-in element keys,
//! fixed outcome words), never ids, raw paths or query strings.
//!
//! Spans go to an OpenTelemetry collector when the exporter (`otlp`, a cargo feature on
//! by default) is configured.

#[cfg(feature = "otlp")]
pub mod otlp;
pub mod statements;
pub mod trace_context;

use metrics::{
    SharedString, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "junction_http_requests_total";
pub const HTTP_DURATION: &str = "junction_http_request_duration_seconds";
pub const PROVIDER_CALLS: &str = "junction_provider_calls_total";
pub const PROVIDER_DURATION: &str = "junction_provider_call_duration_seconds";
pub const TOKEN_REFRESHES: &str = "junction_token_refreshes_total";
pub const CACHE_LOOKUPS: &str = "junction_cache_lookups_total";
pub const POOL_CONNECTIONS: &str = "junction_db_pool_connections";
pub const POOL_MAX: &str = "junction_db_pool_max_connections";
pub const STATEMENT_DURATION: &str = "junction_db_statement_duration_seconds";
pub const DATABASE_UP: &str = "junction_db_up";

/// Seconds: from a cached read (sub-millisecond) to a provider call at its timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The element label of a custom element: organizations name those, so their keys are
/// not a bounded set.
pub const CUSTOM_ELEMENT: &str = "custom";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle).
/// Returns `None` if another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Some(handle);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    // Another thread may have won the race; then its handle is the one that records.
    if metrics::set_global_recorder(recorder).is_err() {
        return HANDLE.get();
    }
    describe();
    Some(HANDLE.get_or_init(|| handle))
}

/// The Prometheus text exposition of everything recorded so far; empty before [`install`].
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival to its response headers, by route template and method."
    );
    describe_counter!(
        PROVIDER_CALLS,
        "Calls to providers' APIs, by element key and outcome (the status class, or timeout, unreachable, refused, error)."
    );
    describe_histogram!(
        PROVIDER_DURATION,
        metrics::Unit::Seconds,
        "Time a provider took to answer a call's headers, by element key."
    );
    describe_counter!(
        TOKEN_REFRESHES,
        "Access token renewals asked of providers, by element key and outcome."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Lookups in the in-memory copies, by kind (instance, token, user, elements) and result (hit, miss)."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections open, by pool (reader, writer) and state (idle, in_use)."
    );
    describe_gauge!(POOL_MAX, "Most database connections a pool opens, by pool.");
    describe_histogram!(
        STATEMENT_DURATION,
        metrics::Unit::Seconds,
        "Time one database statement took, as the database driver measured it."
    );
    describe_gauge!(
        DATABASE_UP,
        "1 if the last readiness check reached the database, 0 if not."
    );
}

/// The method label: the standard methods, anything else as `other`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// One answered request. `route` is the matched route template (`None`: no route matched,
/// recorded as `unmatched`), written after `prefix` (the API's templates are matched
/// without the API's prefix).
pub fn http_request(
    prefix: &str,
    route: Option<&str>,
    method: &str,
    status: u16,
    elapsed: Duration,
) {
    // One copy shared by both series.
    let route = SharedString::from(match route {
        Some(route) => Arc::<str>::from([prefix, route].concat()),
        None => Arc::<str>::from("unmatched"),
    });
    let method = method_label(method);
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status_label(status))
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

/// How a provider call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Status(u16),
    Timeout,
    Unreachable,
    /// Junction refused to send it (an address policy, a rate limit).
    Refused,
    Error,
}

impl CallOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Status(s) if s < 200 => "1xx",
            Self::Status(s) if s < 300 => "2xx",
            Self::Status(s) if s < 400 => "3xx",
            Self::Status(s) if s < 500 => "4xx",
            Self::Status(_) => "5xx",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

/// One call to a provider's API.
pub fn provider_call(element: &str, outcome: CallOutcome, elapsed: Duration) {
    let element = SharedString::from(Arc::<str>::from(element));
    counter!(PROVIDER_CALLS, "element" => element.clone(), "outcome" => outcome.label())
        .increment(1);
    histogram!(PROVIDER_DURATION, "element" => element).record(elapsed.as_secs_f64());
}

/// An HTTP status as a label, from a table written once rather than formatted per request.
fn status_label(status: u16) -> SharedString {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..1000u16).map(|s| s.to_string()).collect());
    match labels.get(usize::from(status)) {
        Some(label) => SharedString::from(label.as_str()),
        None => SharedString::from(status.to_string()),
    }
}

/// How a token renewal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Renewed,
    /// Nothing held to renew with (no refresh token).
    NoCredential,
    /// The provider refused for good: the instance needs re-authorization.
    Refused,
    /// A failure worth retrying later (timeout, 5xx).
    Transient,
    Error,
}

/// One renewal asked of a provider's token endpoint.
pub fn token_refresh(element: &str, outcome: RefreshOutcome) {
    let outcome = match outcome {
        RefreshOutcome::Renewed => "renewed",
        RefreshOutcome::NoCredential => "no_credential",
        RefreshOutcome::Refused => "refused",
        RefreshOutcome::Transient => "transient_failure",
        RefreshOutcome::Error => "error",
    };
    counter!(TOKEN_REFRESHES, "element" => element.to_owned(), "outcome" => outcome).increment(1);
}

/// One lookup in the in-memory copies; `kind` is one of a few fixed words.
pub fn cache_lookup(kind: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!(CACHE_LOOKUPS, "kind" => kind, "result" => result).increment(1);
}

/// A pool's state, sampled when the metrics are read.
pub fn pool(name: &'static str, open: u32, idle: usize, max: u32) {
    let open = f64::from(open);
    let idle = idle as f64;
    gauge!(POOL_CONNECTIONS, "pool" => name, "state" => "idle").set(idle);
    gauge!(POOL_CONNECTIONS, "pool" => name, "state" => "in_use").set((open - idle).max(0.0));
    gauge!(POOL_MAX, "pool" => name).set(f64::from(max));
}

/// Whether the last readiness check reached the database.
pub fn database_up(up: bool) {
    gauge!(DATABASE_UP).set(if up { 1.0 } else { 0.0 });
}

pub(crate) fn statement(seconds: f64) {
    histogram!(STATEMENT_DURATION).record(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_decimal_codes() {
        for status in [0, 100, 200, 404, 503, 999, 1000, u16::MAX] {
            assert_eq!(status_label(status).as_ref(), status.to_string());
        }
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }

    #[test]
    fn provider_outcomes_are_status_classes_or_fixed_words() {
        assert_eq!(CallOutcome::Status(201).label(), "2xx");
        assert_eq!(CallOutcome::Status(429).label(), "4xx");
        assert_eq!(CallOutcome::Status(503).label(), "5xx");
        assert_eq!(CallOutcome::Timeout.label(), "timeout");
    }
}
