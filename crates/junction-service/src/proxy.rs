//! Calls made to an instance's provider on the caller's behalf: the passthrough proxy
//! (`/proxy/{*vendorPath}`), the hub ping, and through [`Services::call_provider`] the
//! hub resources (`resources/`).
//!
//! Both send the instance's current access token the way its element says, replay a call
//! the provider refused with 401 once after a refresh, and wait out a provider's rate
//! limit when it says how long to (`Retry-After`) and the call is safe to repeat. Each
//! attempt first waits for a slot under the limits the element declares (`pacer.rs`).

use crate::auth::{Disabled, PresentedSecrets, parse_authorization};
use crate::metered;
use crate::schemes::{StaticAuth, static_auth};
use crate::templates::CallParameters;
use crate::trace::{self, Tracer};
use crate::{Caller, ServiceError, Services};
use bytes::Bytes;
use http::header::{ACCEPT, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, StatusCode};
use junction_core::config::keys;
use junction_core::element::CredentialPlacement;
use junction_core::{ElementDefinition, Secret};
use junction_oauth::{
    ProviderAuth, ProxyBody, ProxyCall, ProxyResponse, forwardable_request_headers,
    forwardable_response_headers, provider_message,
};
use junction_store::InstanceRecord;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Calls per request, counting the first, when the provider asks to retry later.
const MAX_TRIES: u32 = 3;
/// The most a caller is kept waiting for a provider's rate limit in one request.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Largest ping error body read for its `providerMessage`.
const PING_ERROR_BODY: usize = 64 * 1024;

/// A passthrough request as the caller sent it.
#[derive(Debug)]
pub struct ProxyRequest {
    pub method: Method,
    /// The provider path, starting with `/`, percent-encoding as the caller wrote it.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: ProxyBody,
}

/// `GET /hubs/{hub}/ping`: the provider accepted the instance's credentials.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingView {
    /// When the provider answered, ISO 8601 in UTC.
    pub date_time: String,
    /// The instance's element key.
    pub endpoint: String,
}

/// The instance a provider call is made for.
pub(crate) struct Target {
    pub(crate) record: Arc<InstanceRecord>,
    pub(crate) element: Arc<ElementDefinition>,
    pub(crate) base_url: String,
    /// A credential the vendor wants for this call instead of the instance's own (see
    /// `Resource::credential`); it is never refreshed.
    pub(crate) token: Option<Secret>,
}

impl Target {
    /// The instance's element and `base.url`.
    pub(crate) fn of(
        record: Arc<InstanceRecord>,
        element: Arc<ElementDefinition>,
    ) -> Result<Self, ServiceError> {
        let base_url = record
            .config
            .get(keys::BASE_URL)
            .and_then(|u| u.as_deref())
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| ServiceError::MissingConfiguration(vec![keys::BASE_URL.to_owned()]))?
            .to_owned();
        Ok(Self {
            record,
            element,
            base_url,
            token: None,
        })
    }
}

fn unauthorized(message: &str) -> ServiceError {
    ServiceError::Unauthorized(message.to_owned())
}

impl Services {
    /// Authenticates a call that acts as one instance: its Element token, alone or next to
    /// the User and Organization secrets of the account it belongs to.
    pub async fn authenticate_instance(
        &self,
        header: Option<&str>,
    ) -> Result<Caller, ServiceError> {
        let needs_token = "this call acts as an instance: send 'Authorization: Element <token>'";
        let presented = parse_authorization(header.ok_or_else(|| unauthorized(needs_token))?)?;
        self.instance_of(&presented, Disabled::Refused).await
    }

    /// [`Services::authenticate_instance`] for a hub resource call, which a disabled
    /// instance may make too: the engine refuses it per resource (its `/objects` still
    /// answer).
    pub async fn authenticate_hub_instance(
        &self,
        header: Option<&str>,
    ) -> Result<Caller, ServiceError> {
        let needs_token = "this call acts as an instance: send 'Authorization: Element <token>'";
        let presented = parse_authorization(header.ok_or_else(|| unauthorized(needs_token))?)?;
        self.instance_of(&presented, Disabled::Admitted).await
    }

    /// The instance whose Element token `presented` carries, checked against the User and
    /// Organization secrets beside it, if any.
    pub(crate) async fn instance_of(
        &self,
        presented: &PresentedSecrets,
        disabled: Disabled,
    ) -> Result<Caller, ServiceError> {
        let needs_token = "this call acts as an instance: send 'Authorization: Element <token>'";
        let token = presented
            .element
            .as_ref()
            .ok_or_else(|| unauthorized(needs_token))?;
        let principal = self
            .store
            .authenticate_element_token(token)
            .await?
            .ok_or_else(|| unauthorized("the Element token is not valid"))?;
        match (&presented.user, &presented.organization) {
            (None, None) => {}
            (Some(user), Some(organization)) => {
                let user = self
                    .store
                    .authenticate_user(user, organization)
                    .await?
                    .ok_or_else(|| {
                        unauthorized("the User and Organization secrets do not match")
                    })?;
                if user.account_id != principal.account_id {
                    return Err(unauthorized(
                        "the Element token belongs to another account than the User secret",
                    ));
                }
            }
            _ => {
                return Err(unauthorized(
                    "send both the User and the Organization secrets with the Element token, or neither",
                ));
            }
        }
        if principal.disabled && disabled == Disabled::Refused {
            return Err(ServiceError::Forbidden(
                "this instance is disabled".to_owned(),
            ));
        }
        Ok(Caller::Instance(principal))
    }

    /// Forwards a request to the instance's provider and returns its answer, body
    /// unread, for the caller to stream.
    pub async fn proxy(
        &self,
        caller: &Caller,
        request: ProxyRequest,
    ) -> Result<ProxyResponse, ServiceError> {
        let target = self.provider_target(caller).await?;
        check_vendor_path(&request.path)?;
        let url = self.proxy.target_url(
            target.record.id.0,
            "base.url",
            &target.base_url,
            &request.path,
            request.query.as_deref(),
        )?;
        let headers = forwardable_request_headers(request.headers);
        let ProxyResponse {
            status,
            headers,
            body,
        } = self
            .call_provider(&target, request.method, url, headers, request.body)
            .await?;
        Ok(ProxyResponse {
            status,
            headers: forwardable_response_headers(headers),
            body,
        })
    }

    /// Calls the element's ping path with the instance's credentials.
    pub async fn ping(&self, caller: &Caller) -> Result<PingView, ServiceError> {
        let target = self.provider_target(caller).await?;
        let path = target.element.ping.as_deref().ok_or_else(|| {
            ServiceError::bad_request(
                "ping_not_supported",
                format!("element '{}' defines no ping call", target.element.key),
            )
        })?;
        let url = self.proxy.check_url(
            "base.url",
            &format!("{}{path}", target.base_url.trim_end_matches('/')),
        )?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = self
            .call_provider(
                &target,
                Method::GET,
                url,
                headers,
                ProxyBody::Buffered(Bytes::new()),
            )
            .await?;
        let status = response.status;
        if status.is_success() {
            return Ok(PingView {
                date_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                endpoint: target.element.key.clone(),
            });
        }
        let body = response
            .read_body(PING_ERROR_BODY)
            .await
            .unwrap_or_default();
        Err(ServiceError::ProviderStatus {
            status: status.as_u16(),
            provider_message: provider_message(&body),
            retry_after: None,
        })
    }

    async fn provider_target(&self, caller: &Caller) -> Result<Target, ServiceError> {
        let id = caller.only_instance().ok_or_else(|| {
            unauthorized("this call acts as an instance: send 'Authorization: Element <token>'")
        })?;
        let record = self.owned_instance_shared(caller, id.0).await?;
        if record.disabled {
            return Err(ServiceError::Forbidden(
                "this instance is disabled".to_owned(),
            ));
        }
        let element = self.element_of(&record).await?;
        Target::of(record, element)
    }

    /// Sends one provider call, replaying it (only when the body was kept) once with a
    /// refreshed token after a 401, and after the provider's `Retry-After` for 429 and 503
    /// answers to idempotent methods, within [`MAX_TRIES`] and [`MAX_WAIT`].
    pub(crate) async fn call_provider(
        &self,
        target: &Target,
        method: Method,
        mut url: Url,
        mut headers: HeaderMap,
        body: ProxyBody,
    ) -> Result<ProxyResponse, ServiceError> {
        CallParameters::of(&target.element, &target.record.config)?.apply(&mut url, &mut headers);
        // Borrowed from the element: a copy would cost two strings per call.
        let fallback;
        let credential: &CredentialPlacement = match &target.element.oauth {
            Some(oauth) => &oauth.credential,
            None => {
                fallback = CredentialPlacement::default();
                &fallback
            }
        };
        let replay: Option<Bytes> = match &body {
            ProxyBody::Buffered(bytes) => Some(bytes.clone()),
            ProxyBody::Streaming(_) => None,
        };
        let mut body = body;
        let mut held = match (
            static_auth(&target.element, &target.record.config)?,
            &target.token,
        ) {
            (Some(fixed), _) => Held::Fixed(fixed),
            (None, Some(token)) => Held::Token(token.clone()),
            (None, None) => Held::Token(self.current_access_token(&target.record).await?),
        };
        // Renewing the instance's token cannot mend a credential read from elsewhere.
        let mut refreshed = target.token.is_some();
        let mut tries = 1;
        let mut waited = Duration::ZERO;
        let tracer = Tracer::of(&self.traces, &target.record, &target.element);
        let budgets = self.rate_budgets(&target.element, &target.record).await?;
        loop {
            let auth = match &held {
                Held::Fixed(fixed) => fixed.as_provider_auth(),
                Held::Token(token) => ProviderAuth::Bearer {
                    placement: credential,
                    token,
                },
            };
            let call = ProxyCall {
                method: method.clone(),
                url: url.clone(),
                headers: headers.clone(),
                body,
                auth,
            };
            self.pace(&budgets).await?;
            // Built in place: a future held in a local first would take room of its own
            // in this one's state, copied on every call.
            let response = metered::provider_call(
                &target.element,
                trace::send(&self.proxy, tracer.as_ref(), call),
            )
            .await?;
            self.heed_provider_limit(&budgets, response.status, &response.headers)
                .await;
            let Some(again) = replay.clone() else {
                return Ok(response);
            };
            let status = response.status;
            if let (StatusCode::UNAUTHORIZED, Held::Token(token), false) =
                (status, &held, refreshed)
            {
                drop(response);
                tracing::info!(instance_id = %target.record.id, "the provider refused the access token; refreshing and replaying");
                held = Held::Token(self.refresh_after_rejection(&target.record, token).await?);
                refreshed = true;
                body = ProxyBody::Buffered(again);
                continue;
            }
            let rate_limited = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if rate_limited && is_idempotent(&method) && tries < MAX_TRIES {
                let delay = retry_after(&response.headers, chrono::Utc::now());
                if let Some(delay) = delay.filter(|d| wait_fits(waited, *d)) {
                    drop(response);
                    tracing::info!(instance_id = %target.record.id, status = status.as_u16(), delay_ms = delay.as_millis() as u64, "the provider asked to retry later; waiting");
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    tries += 1;
                    body = ProxyBody::Buffered(again);
                    continue;
                }
            }
            return Ok(response);
        }
    }
}

/// The credentials a provider call is made with. Configuration credentials and OAuth
/// 1.0a tokens are never renewed; only an OAuth 2.0 access token is refreshed, and the
/// call replayed, after a 401.
enum Held {
    Fixed(StaticAuth),
    Token(Secret),
}

/// Whether waiting `delay` more keeps the request within [`MAX_WAIT`]; a provider's
/// `Retry-After` may be any number, so the sum is checked.
fn wait_fits(waited: Duration, delay: Duration) -> bool {
    waited.checked_add(delay).is_some_and(|t| t <= MAX_WAIT)
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(method)
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delay = at.with_timezone(&chrono::Utc) - now;
    Some(delay.to_std().unwrap_or(Duration::ZERO))
}

/// How many layers of percent-encoding a vendor path may carry: a provider or a server in
/// front of it may decode more than once, so every layer is checked.
const MAX_ENCODING_LAYERS: usize = 3;

/// The vendor path is appended to `base.url`; a `.` or `..` segment would be resolved by
/// URL parsing or by a server on the way and could climb out of the base path (past an
/// API version, for one). Every decoding of the path is checked, so an encoded dot or
/// slash (`%2e`, `%252e`, `%2f`), a segment parameter (`..;x`) or an overlong UTF-8 form
/// of either (`%c0%ae`) cannot hide one.
pub(crate) fn check_vendor_path(path: &str) -> Result<(), ServiceError> {
    let refused = || {
        ServiceError::bad_request(
            "invalid_path",
            "the provider path may not contain '.' or '..' segments, in any encoding",
        )
    };
    if !path.starts_with('/') {
        return Err(refused());
    }
    // Nothing encoded, nothing to decode: the one check of the loop below, without its
    // copy of the path (and a path without a dot has no dot segment).
    if !path.contains('%') {
        let dotted = path.contains('.') && has_dot_segment(path);
        if dotted || has_control(path) {
            return Err(refused());
        }
        return Ok(());
    }
    let mut current = path.to_owned();
    for _ in 0..=MAX_ENCODING_LAYERS {
        if has_dot_segment(&current) {
            return Err(refused());
        }
        // Overlong encodings are not UTF-8, and neither is anything a provider path needs.
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8()
            .map_err(|_| refused())?;
        if decoded.chars().any(char::is_control) {
            return Err(refused());
        }
        if decoded == current {
            return Ok(());
        }
        current = decoded.into_owned();
    }
    // Still encoded after every layer a server could be expected to decode.
    Err(refused())
}

/// A `.` or `..` segment, also with a `;parameter` (which some servers strip) or
/// surrounding blanks. Only a segment with a dot is trimmed and compared.
fn has_dot_segment(path: &str) -> bool {
    path.split(['/', '\\']).any(|segment| {
        segment.contains('.') && {
            let name = segment.split(';').next().unwrap_or_default().trim();
            name == "." || name == ".."
        }
    })
}

/// Whether `path` holds a control character; an ASCII path is read as bytes.
fn has_control(path: &str) -> bool {
    if path.is_ascii() {
        path.bytes().any(|b| b.is_ascii_control())
    } else {
        path.chars().any(char::is_control)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:05 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(5)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:27:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn a_retry_after_of_any_size_is_weighed_without_overflow() {
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("18446744073709551615"),
        );
        let delay = retry_after(&headers, chrono::Utc::now()).unwrap();
        assert!(!wait_fits(Duration::from_secs(1), delay));
        assert!(wait_fits(Duration::from_secs(1), Duration::from_secs(2)));
    }

    #[test]
    fn control_characters_and_dot_segments_are_found_as_before() {
        for path in [
            "/a",
            "/a\tb",
            "/a\u{7f}",
            "/\u{0}",
            "/caf\u{e9}",
            "/a\u{85}b",
            "/\u{9f}",
            "/\u{a0}",
        ] {
            assert_eq!(
                has_control(path),
                path.chars().any(char::is_control),
                "{path:?}"
            );
        }
        for path in [
            "/a/ ./b",
            "/a/.. ;x/b",
            "/a/\u{3000}..\u{3000}/b",
            "/a/x.y/b",
            "/a/.x/b",
            "/.",
        ] {
            let split = path.split(['/', '\\']).any(|segment| {
                let name = segment.split(';').next().unwrap_or_default().trim();
                name == "." || name == ".."
            });
            assert_eq!(has_dot_segment(path), split, "{path:?}");
        }
    }

    #[test]
    fn dot_segments_cannot_climb_out_of_the_base_path() {
        for good in [
            "/me/accounts",
            "/files/a..b",
            "/files/a%20b",
            "/files/caf%C3%A9",
            "/files/a%2Fb",
            "/q/100%25",
            "/.well-known/x",
        ] {
            assert!(check_vendor_path(good).is_ok(), "{good}");
        }
        for bad in ["/../v3/me", "/a/./b", "/%2E%2e/x", "/a\\..\\b", "me"] {
            assert!(check_vendor_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoded_dot_segments_are_refused_in_every_form() {
        for bad in [
            "/a%2f..%2fadmin",
            "/a%2F%2e%2e%2Fadmin",
            "/%252e%252e/admin",
            "/%25252e%25252e/admin",
            "/a/..;/admin",
            "/a/..;jsessionid=1/admin",
            "/a/.;x/b",
            "/%c0%ae%c0%ae/admin",
            "/a%c0%afb",
            "/%e0%80%ae%e0%80%ae/admin",
            "/a%5c..%5cadmin",
            "/a/%00/b",
            "/%2525252e%2525252e/admin",
        ] {
            assert!(check_vendor_path(bad).is_err(), "{bad}");
        }
    }
}
