//! Measuring calls to providers: a span, a latency and an outcome for each, and for each
//! token renewal. The names and labels live in `junction-telemetry`.

use futures_util::FutureExt;
use junction_core::ElementDefinition;
use junction_oauth::{OAuthError, ProxyResponse};
use junction_telemetry::{CUSTOM_ELEMENT, CallOutcome, RefreshOutcome};
use std::future::Future;
use tracing::Instrument;

/// The element label: a built-in element's key, or one word for every custom element,
/// whose keys organizations choose without bound.
pub(crate) fn element_label(element: &ElementDefinition) -> &str {
    if element.private {
        CUSTOM_ELEMENT
    } else {
        &element.key
    }
}

/// Sends one provider call inside a `provider_call` span and records how it went. Not an
/// `async fn`, which would hold `call` and, beside it, the instrumented copy it awaits.
pub(crate) fn provider_call<'a>(
    element: &'a ElementDefinition,
    call: impl Future<Output = Result<ProxyResponse, OAuthError>> + 'a,
) -> impl Future<Output = Result<ProxyResponse, OAuthError>> + 'a {
    let label = element_label(element);
    let span = tracing::info_span!("provider_call", element = label);
    let started = std::time::Instant::now();
    call.instrument(span).map(move |result| {
        let outcome = match &result {
            Ok(response) => CallOutcome::Status(response.status.as_u16()),
            Err(OAuthError::Timeout { .. }) => CallOutcome::Timeout,
            Err(OAuthError::Unreachable { .. }) => CallOutcome::Unreachable,
            Err(OAuthError::Policy(_)) => CallOutcome::Refused,
            Err(_) => CallOutcome::Error,
        };
        junction_telemetry::provider_call(label, outcome, started.elapsed());
        result
    })
}

/// Records how one renewal asked of a provider's token endpoint ended.
pub(crate) fn token_refresh<T>(
    element: &ElementDefinition,
    result: &Result<Option<T>, OAuthError>,
) {
    let outcome = match result {
        Ok(Some(_)) => RefreshOutcome::Renewed,
        Ok(None) => RefreshOutcome::NoCredential,
        Err(e) if e.is_permanent_refusal() => RefreshOutcome::Refused,
        Err(e) if e.is_transient() => RefreshOutcome::Transient,
        Err(_) => RefreshOutcome::Error,
    };
    junction_telemetry::token_refresh(element_label(element), outcome);
}
