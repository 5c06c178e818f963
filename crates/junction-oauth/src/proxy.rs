//! Passthrough calls to a provider's API: bodies stream both ways, so a download or an
//! upload of any size goes through in constant memory.
//!
//! [`ProxyClient`] resolves names through the same outbound address policy as
//! [`crate::OutboundClient`] and follows no redirects, but has no total timeout (a large
//! body may take minutes); a connect timeout and a bound on each wait for the provider
//! stop one that stops answering instead. It sends on hyper's client directly
//! (`transport.rs`), the hot path of every proxied call.

use crate::OAuthError;
use crate::client::{Cause, OutboundSettings};
use crate::oauth1::OAuth1Credentials;
use crate::transport::{BoxError, HttpClient, OutBody, ResponseBody, StreamingBody};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use junction_core::Secret;
use junction_core::credential::RenderedCredential;
use junction_core::element::{CredentialLocation, CredentialPlacement};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use url::Url;

/// Request bodies up to this size are held in memory so that a call the provider refused
/// can be sent again; larger ones stream through once.
pub const REPLAY_LIMIT: usize = 1024 * 1024;

/// The body of a passthrough request.
pub enum ProxyBody {
    /// Small enough to keep: the call can be replayed.
    Buffered(Bytes),
    /// Streams from the caller to the provider once; the call cannot be replayed.
    Streaming(StreamingBody),
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Buffered(b) => write!(f, "Buffered({} bytes)", b.len()),
            Self::Streaming(_) => f.write_str("Streaming"),
        }
    }
}

impl ProxyBody {
    /// Reads `body` until it ends or passes `limit` bytes. A body that ends in time is
    /// kept; a longer one streams on from where reading stopped, nothing read is lost.
    pub async fn read<B>(mut body: B, limit: usize) -> Result<Self, BoxError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        // A declared length over the limit need not be read first.
        if body.size_hint().lower() > limit as u64 {
            return Ok(Self::streaming(VecDeque::new(), body));
        }
        let mut read: VecDeque<Bytes> = VecDeque::new();
        let mut length = 0usize;
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            match frame {
                None => {
                    let mut all = BytesMut::with_capacity(length);
                    for chunk in read {
                        all.extend_from_slice(&chunk);
                    }
                    return Ok(Self::Buffered(all.freeze()));
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    // Trailers have no place in a request forwarded as HTTP/1.1.
                    if let Ok(data) = frame.into_data() {
                        length += data.len();
                        read.push_back(data);
                        if length > limit {
                            return Ok(Self::streaming(read, body));
                        }
                    }
                }
            }
        }
    }

    fn streaming<B>(read: VecDeque<Bytes>, rest: B) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        Self::Streaming(StreamingBody::wrap(Resumed { read, rest }))
    }

    pub fn is_replayable(&self) -> bool {
        matches!(self, Self::Buffered(_))
    }
}

/// The chunks already read, then the rest of the body.
struct Resumed<B> {
    read: VecDeque<Bytes>,
    rest: B,
}

impl<B> HttpBody for Resumed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.read.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        let already: u64 = self.read.iter().map(|c| c.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + already);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + already);
        }
        hint
    }
}

/// How a provider call carries the instance's credentials.
pub enum ProviderAuth<'a> {
    /// An OAuth 2.0 access token, placed as the element says.
    Bearer {
        placement: &'a CredentialPlacement,
        token: &'a Secret,
    },
    /// Configuration values rendered into the element's credential templates.
    Rendered(&'a [RenderedCredential]),
    /// An OAuth 1.0a signature over the request.
    OAuth1(&'a OAuth1Credentials),
}

impl ProviderAuth<'_> {
    /// The values a trace log must never show.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Self::Bearer { token, .. } => vec![token.expose().to_owned()],
            Self::Rendered(all) => all
                .iter()
                .flat_map(|c| match c {
                    // The header carries the pair encoded; a provider may echo either.
                    RenderedCredential::Basic { username, password } => vec![
                        username.clone(),
                        password.clone(),
                        basic_value(username, password),
                    ],
                    RenderedCredential::Header { value, .. }
                    | RenderedCredential::Query { value, .. } => vec![value.clone()],
                })
                .collect(),
            Self::OAuth1(credentials) => credentials.secrets(),
        }
    }
}

/// One passthrough call, credential included.
pub struct ProxyCall<'a> {
    pub method: Method,
    pub url: Url,
    /// Already filtered with [`forwardable_request_headers`].
    pub headers: HeaderMap,
    pub body: ProxyBody,
    pub auth: ProviderAuth<'a>,
}

/// `base64(username:password)`, as HTTP basic sends it (RFC 7617).
fn basic_value(username: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
}

fn sensitive(value: &str) -> Result<HeaderValue, OAuthError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| OAuthError::BadResponse {
        status: 0,
        reason: "the stored credential is not a valid header value".into(),
        snippet: String::new(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_name(name: &str) -> Result<HeaderName, OAuthError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| OAuthError::BadUrl {
        what: format!("credential header '{name}'"),
    })
}

/// `url` with `name` set to `value` in its query, replacing what the caller sent.
fn set_query(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
}

/// Places the credentials on a request about to be sent. An OAuth 1.0a signature covers
/// the pairs of a form body too (RFC 5849 §3.4.1.3.1), so such a body must be held.
pub fn authorize(
    auth: &ProviderAuth<'_>,
    method: &Method,
    url: &mut Url,
    headers: &mut HeaderMap,
    body: &ProxyBody,
) -> Result<(), OAuthError> {
    match auth {
        ProviderAuth::Bearer { placement, token } => {
            let token = token.expose();
            let mut value = String::with_capacity(placement.prefix.len() + token.len());
            value.push_str(&placement.prefix);
            value.push_str(token);
            match placement.location {
                CredentialLocation::Query => set_query(url, &placement.name, &value),
                CredentialLocation::Header => {
                    headers.insert(header_name(&placement.name)?, sensitive(&value)?);
                }
            }
        }
        ProviderAuth::Rendered(all) => {
            for credential in *all {
                match credential {
                    RenderedCredential::Basic { username, password } => {
                        let pair = basic_value(username, password);
                        headers.insert(header::AUTHORIZATION, sensitive(&format!("Basic {pair}"))?);
                    }
                    RenderedCredential::Header { name, value } => {
                        headers.insert(header_name(name)?, sensitive(value)?);
                    }
                    RenderedCredential::Query { name, value } => set_query(url, name, value),
                }
            }
        }
        ProviderAuth::OAuth1(credentials) => {
            let is_form = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| {
                    v.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                });
            let form: Vec<(String, String)> = match (is_form, body) {
                (false, _) => Vec::new(),
                (true, ProxyBody::Buffered(bytes)) => {
                    url::form_urlencoded::parse(bytes).into_owned().collect()
                }
                (true, ProxyBody::Streaming(_)) => {
                    return Err(OAuthError::Unsignable {
                        reason: format!(
                            "an OAuth 1.0a signature covers a form body, and one over {REPLAY_LIMIT} bytes is not held to sign"
                        ),
                    });
                }
            };
            let (nonce, timestamp) = crate::oauth1::fresh_nonce();
            let value = crate::oauth1::authorization_header(
                credentials,
                method.as_str(),
                url,
                &[],
                &form,
                &crate::oauth1::Nonce {
                    nonce: &nonce,
                    timestamp: &timestamp,
                },
            );
            headers.insert(header::AUTHORIZATION, sensitive(&value)?);
        }
    }
    Ok(())
}

/// The provider's answer, its body not yet read.
#[derive(Debug)]
pub struct ProxyResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ResponseBody,
}

impl ProxyResponse {
    /// Reads the body, refusing more than `max` bytes.
    /// A body that comes in one frame, as most answers of up to a few hundred
    /// kilobytes do, is returned as it came, without a copy.
    pub async fn read_body(mut self, max: usize) -> Result<Bytes, OAuthError> {
        let mut first: Option<Bytes> = None;
        let mut all = BytesMut::new();
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => return Ok(first.unwrap_or_else(|| all.freeze())),
                Some(Err(_)) => {
                    return Err(OAuthError::Unreachable {
                        reason: "the connection broke".to_owned(),
                    });
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let held = first.as_ref().map_or(all.len(), Bytes::len);
                    if held + data.len() > max {
                        return Err(OAuthError::BadResponse {
                            status: self.status.as_u16(),
                            reason: format!("the body is larger than {max} bytes"),
                            snippet: String::new(),
                        });
                    }
                    if let Some(earlier) = first.take() {
                        all.reserve(earlier.len() + data.len());
                        all.extend_from_slice(&earlier);
                        all.extend_from_slice(&data);
                    } else if all.is_empty() {
                        first = Some(data);
                    } else {
                        all.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

#[derive(Clone)]
pub struct ProxyClient {
    http: HttpClient,
    /// Sends an idempotent call again after its kept-alive connection broke: on a
    /// connection of its own, since the pool may hold more that the provider closed at
    /// the same moment (all idle for as long as its timeout).
    fresh: HttpClient,
    settings: OutboundSettings,
    /// Each instance's base URL as last parsed and checked against the policy (which
    /// never changes at run time): parsing a URL's host is a measurable share of a
    /// proxied call. One entry per instance, bounded in bytes, dropped with the instance.
    bases: moka::sync::Cache<i64, Arc<CheckedBase>>,
}

/// A base URL as configured, and what it parsed to.
struct CheckedBase {
    raw: String,
    url: Url,
}

impl CheckedBase {
    /// Roughly the bytes an entry holds: the configured text, the parsed URL's
    /// serialization and their bookkeeping.
    fn weight(&self) -> u32 {
        let bytes = self.raw.len() + self.url.as_str().len() + 256;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

impl std::fmt::Debug for ProxyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Bytes of checked base URLs a [`ProxyClient`] keeps: some 40,000 instances at a usual
/// URL length, but never more memory than this however long the configured values are.
const BASE_URL_BYTES_KEPT: u64 = 16 * 1024 * 1024;
/// An instance not called for this long loses its entry: one deleted by another replica
/// is not heard of here.
const BASE_URL_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

impl ProxyClient {
    /// `settings.request_timeout` bounds each wait for the provider (for the answer to
    /// start, and between chunks of its body), not the whole call.
    pub fn new(settings: OutboundSettings) -> Result<Self, OAuthError> {
        let tls = crate::transport::tls_config().map_err(OAuthError::Tls)?;
        let http = crate::transport::client(&settings, tls.clone(), usize::MAX);
        let fresh = crate::transport::client(&settings, tls, 0);
        Ok(Self {
            http,
            fresh,
            settings,
            bases: moka::sync::Cache::builder()
                .max_capacity(BASE_URL_BYTES_KEPT)
                .weigher(|_, base: &Arc<CheckedBase>| base.weight())
                .time_to_idle(BASE_URL_IDLE)
                .build(),
        })
    }

    /// Parses `raw` as an http(s) URL and checks a literal IP host against the policy
    /// (names are checked when they resolve).
    pub fn check_url(&self, what: &str, raw: &str) -> Result<Url, OAuthError> {
        crate::client::check_url(self.settings.policy, what, raw)
    }

    /// `instance`'s base URL `base` (the configuration key `what`) as [`Self::check_url`]
    /// reads it, parsed and checked once while it stays the same.
    pub fn base_url(&self, instance: i64, what: &str, base: &str) -> Result<Url, OAuthError> {
        match self.bases.get(&instance) {
            Some(checked) if checked.raw == base => Ok(checked.url.clone()),
            _ => {
                let url = self.check_url(what, base)?;
                let checked = CheckedBase {
                    raw: base.to_owned(),
                    url: url.clone(),
                };
                self.bases.insert(instance, Arc::new(checked));
                Ok(url)
            }
        }
    }

    /// `path` (starting with `/`, percent-encoded as the caller wrote it) and `query`
    /// appended to `instance`'s base URL `base` (see [`Self::base_url`]).
    pub fn target_url(
        &self,
        instance: i64,
        what: &str,
        base: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<Url, OAuthError> {
        let mut url = self.base_url(instance, what, base)?;
        let base_path = url.path().trim_end_matches('/');
        let mut joined = String::with_capacity(base_path.len() + path.len());
        joined.push_str(base_path);
        joined.push_str(path);
        url.set_path(&joined);
        url.set_query(query.filter(|q| !q.is_empty()));
        Ok(url)
    }

    /// Drops what is kept of `instance` (it was deleted).
    pub fn forget(&self, instance: i64) {
        self.bases.invalidate(&instance);
    }

    /// Whether a checked base URL is kept for `instance`.
    pub fn remembers(&self, instance: i64) -> bool {
        self.bases.contains_key(&instance)
    }

    /// Sends the call and returns as soon as the provider's status and headers arrive.
    pub async fn send(&self, call: ProxyCall<'_>) -> Result<ProxyResponse, OAuthError> {
        let ProxyCall {
            method,
            mut url,
            mut headers,
            body,
            auth,
        } = call;
        authorize(&auth, &method, &mut url, &mut headers, &body)?;
        url.set_fragment(None);
        let uri = http::Uri::try_from(url.as_str()).map_err(|_| OAuthError::BadUrl {
            what: "the provider URL".into(),
        })?;
        // A caller's own values pass.
        crate::transport::default_headers(&mut headers);
        let body = match body {
            ProxyBody::Buffered(bytes) => OutBody::Held((!bytes.is_empty()).then_some(bytes)),
            ProxyBody::Streaming(stream) => OutBody::Streaming(stream),
        };
        // A provider may close a kept-alive connection just as a call goes out on it
        // (its idle timeout and the call crossing); the call then fails before any
        // answer. An idempotent call is sent once more, on a new connection (RFC 9110
        // §9.2.2); anything else could have taken effect and is not.
        let again = match &body {
            OutBody::Held(bytes) if method.is_idempotent() => {
                Some((uri.clone(), headers.clone(), bytes.clone()))
            }
            _ => None,
        };
        let request = outgoing(method.clone(), uri, headers, body);
        let response = match (self.answer(&self.http, request).await, again) {
            (Ok(response), _) => response,
            (Err(Failed::Sent(e)), Some((uri, headers, bytes))) if broke_before_the_answer(&e) => {
                tracing::info!(
                    cause = "broken",
                    "the provider's connection broke before it answered; sending the idempotent call again"
                );
                let request = outgoing(method, uri, headers, OutBody::Held(bytes));
                self.answer(&self.fresh, request)
                    .await
                    .map_err(|e| self.transport_error(e, &url))?
            }
            (Err(e), _) => return Err(self.transport_error(e, &url)),
        };
        let (parts, body) = response.into_parts();
        Ok(ProxyResponse {
            status: parts.status,
            headers: parts.headers,
            body: ResponseBody::provider(body, self.settings.request_timeout),
        })
    }

    /// Sends `request` and waits for the answer's head, at most the read timeout. Not an
    /// `async fn`: one would keep the request in its state beside the client's future,
    /// which already holds it, and every call would copy both.
    fn answer(
        &self,
        client: &HttpClient,
        request: http::Request<OutBody>,
    ) -> impl Future<Output = Result<http::Response<hyper::body::Incoming>, Failed>> + use<> {
        tokio::time::timeout(self.settings.request_timeout, client.request(request)).map(
            |answered| match answered {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(Failed::Sent(e)),
                Err(_) => Err(Failed::NoAnswer),
            },
        )
    }

    fn transport_error(&self, failed: Failed, url: &Url) -> OAuthError {
        let host = crate::client::host_of(url);
        let timeout = self.settings.request_timeout;
        match failed {
            Failed::Sent(e) => {
                let cause = crate::client::cause_in_chain(&e, e.is_connect());
                crate::client::failure(&e, &host, cause, timeout)
            }
            Failed::NoAnswer => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer within the read timeout",
                );
                crate::client::failure(&e, &host, Cause::Timeout, timeout)
            }
        }
    }
}

fn outgoing(
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: OutBody,
) -> http::Request<OutBody> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
}

/// Why no answer came.
enum Failed {
    Sent(hyper_util::client::legacy::Error),
    /// The read timeout ran out before the answer's head arrived.
    NoAnswer,
}

/// Whether a call failed because its connection broke before any answer came (not a
/// timeout, a refusal or a name that did not resolve).
fn broke_before_the_answer(error: &hyper_util::client::legacy::Error) -> bool {
    !error.is_connect() && crate::client::cause_in_chain(error, false) == Cause::Broken
}

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), plus
/// those a proxy must not pass on.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_hop_by_hop(name: &HeaderName, listed: &ConnectionListed<'_>) -> bool {
    HOP_BY_HOP.contains(name) || name.as_str() == "proxy-connection" || listed.names(name)
}

/// The further headers a message's `Connection` header names as this hop's only, read
/// once per message rather than once per header.
struct ConnectionListed<'a>(Vec<&'a str>);

impl<'a> ConnectionListed<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        Self(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect(),
        )
    }

    fn names(&self, name: &HeaderName) -> bool {
        self.0
            .iter()
            .any(|listed| listed.eq_ignore_ascii_case(name.as_str()))
    }
}

/// Request headers only Junction itself sets on a provider call, whoever else asks (a
/// caller, an element's parameters or hooks): the credential (`Authorization`), cookies,
/// the connection's headers; the client sets `Host` and the body's length itself (a
/// chosen `Host` would reach another virtual host behind the same address, a chosen
/// length would break the framing); `Expect` would wait for an interim answer the client
/// does not relay.
pub fn is_reserved_request_header(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || name.as_str() == "proxy-connection"
        || [
            header::HOST,
            header::AUTHORIZATION,
            header::COOKIE,
            header::CONTENT_LENGTH,
            header::EXPECT,
        ]
        .contains(name)
}

/// The caller's headers that may reach the provider: all but
/// [`is_reserved_request_header`] ones and those its `Connection` header names. Filtered
/// in place, as the answer's headers are.
pub fn forwardable_request_headers(mut headers: HeaderMap) -> HeaderMap {
    let dropped: Vec<HeaderName> = {
        let listed = ConnectionListed::of(&headers);
        headers
            .keys()
            .filter(|name| is_reserved_request_header(name) || is_hop_by_hop(name, &listed))
            .cloned()
            .collect()
    };
    for name in dropped {
        headers.remove(name);
    }
    headers
}

/// What every proxied answer is served with, whatever the provider sent: a provider's
/// page must not run as Junction's origin in a browser (no sniffing an answer into HTML,
/// no scripts, no forms, no framing).
pub const PROXIED_CONTENT_SECURITY_POLICY: &str =
    "sandbox; default-src 'none'; frame-ancestors 'none'";

/// The provider's headers that go back to the caller: all but the connection's own, the
/// provider's cookies (they would be set for Junction's origin) and the provider's CORS
/// headers (Junction answers CORS for its own API); Junction's `nosniff` and sandboxing
/// `Content-Security-Policy` replace whatever the provider said of them. The map is
/// filtered where it is: most answers lose one header or none, cheaper to take out than
/// to copy all the others.
pub fn forwardable_response_headers(mut headers: HeaderMap) -> HeaderMap {
    let dropped: Vec<HeaderName> = {
        let listed = ConnectionListed::of(&headers);
        headers
            .keys()
            .filter(|name| {
                is_hop_by_hop(name, &listed)
                    || name == &header::SET_COOKIE
                    || name.as_str() == "set-cookie2"
                    || name.as_str().starts_with("access-control-")
                    || name.as_str() == "content-security-policy-report-only"
            })
            .cloned()
            .collect()
    };
    for name in dropped {
        headers.remove(name);
    }
    // `insert` replaces every value the provider sent for these two.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PROXIED_CONTENT_SECURITY_POLICY),
    );
    headers
}

/// The provider's own words from an error body, in whichever common shape it uses
/// (RFC 6749's `error_description`, Graph's `error.message`, a bare `message`), else the
/// start of the body. A body that mentions a token is not echoed.
pub fn provider_message(body: &[u8]) -> Option<String> {
    let text = |v: Option<&serde_json::Value>| -> Option<String> {
        match v? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        let found = match map.get("error") {
            Some(serde_json::Value::Object(inner)) => {
                text(inner.get("message")).or_else(|| text(inner.get("type")))
            }
            error => text(map.get("error_description"))
                .or_else(|| text(map.get("message")))
                .or_else(|| text(map.get("error_message")))
                .or_else(|| text(error)),
        };
        if found.is_some() {
            return found;
        }
    }
    let body = String::from_utf8_lossy(body);
    let trimmed = body.trim();
    if trimmed.is_empty() || trimmed.to_ascii_lowercase().contains("token") {
        return None;
    }
    Some(trimmed.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Log, answers_raw, closes_kept_alive_connections};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SECRET: &str = "s3cr3t-token-value";

    fn private_allowed(timeout: Duration) -> ProxyClient {
        loopback_client(OutboundSettings {
            connect_timeout: timeout,
            request_timeout: timeout,
            ..OutboundSettings::default()
        })
    }

    /// A client that may reach the stand-ins on the loopback address.
    fn loopback_client(settings: OutboundSettings) -> ProxyClient {
        ProxyClient::new(OutboundSettings {
            policy: junction_core::net::OutboundPolicy {
                allow_private: true,
            },
            ..settings
        })
        .unwrap()
    }

    /// A GET of `url` with a secret in its query and headers given by the caller.
    async fn get(
        client: &ProxyClient,
        url: &str,
        headers: HeaderMap,
    ) -> Result<ProxyResponse, OAuthError> {
        let placement = CredentialPlacement::default();
        let token = Secret::new(SECRET);
        client
            .send(ProxyCall {
                method: Method::GET,
                url: Url::parse(&format!("{url}?access_token={SECRET}")).unwrap(),
                headers,
                body: ProxyBody::Buffered(Bytes::new()),
                auth: ProviderAuth::Bearer {
                    placement: &placement,
                    token: &token,
                },
            })
            .await
    }

    /// The error of a GET of `url` and what was logged meanwhile.
    async fn fail(url: &str, timeout: Duration) -> (OAuthError, String) {
        let log = Log::default();
        let _guard = log.capture();
        let client = private_allowed(timeout);
        let err = get(&client, url, HeaderMap::new()).await.unwrap_err();
        (err, log.text())
    }

    async fn call(client: &ProxyClient, method: Method, url: &str) -> Result<u16, OAuthError> {
        let placement = CredentialPlacement::default();
        let token = Secret::new("t");
        let response = client
            .send(ProxyCall {
                method,
                url: Url::parse(url).unwrap(),
                headers: HeaderMap::new(),
                body: ProxyBody::Buffered(Bytes::from_static(b"{}")),
                auth: ProviderAuth::Bearer {
                    placement: &placement,
                    token: &token,
                },
            })
            .await?;
        Ok(response.status.as_u16())
    }

    /// A body that yields the given frames, one at a time.
    struct Frames(VecDeque<Bytes>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|data| Ok(Frame::data(data))))
        }
    }

    fn answer_in(frames: &[&'static [u8]]) -> ProxyResponse {
        ProxyResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: ResponseBody::wrap(Frames(
                frames.iter().map(|f| Bytes::from_static(f)).collect(),
            )),
        }
    }

    #[tokio::test]
    async fn a_body_in_one_frame_is_kept_as_it_came_and_frames_are_joined_within_the_limit() {
        let whole: &'static [u8] = b"{\"records\":[]}";
        let read = answer_in(&[whole]).read_body(100).await.unwrap();
        assert_eq!(read.as_ptr(), whole.as_ptr(), "the frame was copied");
        assert_eq!(read, whole);
        let joined = answer_in(&[b"{\"a\"", b"", b":1}"])
            .read_body(7)
            .await
            .unwrap();
        assert_eq!(joined, &b"{\"a\":1}"[..]);
        let late = answer_in(&[b"", b"{}"]).read_body(2).await.unwrap();
        assert_eq!(late, &b"{}"[..]);
        assert_eq!(answer_in(&[]).read_body(0).await.unwrap(), &b""[..]);
        for frames in [&[&b"{\"a\""[..], b":1}"][..], &[b"{\"a\":1}"]] {
            let over = answer_in(frames).read_body(6).await;
            assert!(
                matches!(over, Err(OAuthError::BadResponse { .. })),
                "{over:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_idempotent_call_on_a_connection_the_provider_closed_is_sent_again_and_a_post_is_not()
     {
        let (base, calls) = closes_kept_alive_connections().await;
        let client = loopback_client(OutboundSettings::default());
        let url = format!("{base}/records");
        assert_eq!(call(&client, Method::GET, &url).await.unwrap(), 200);
        // Goes out on the kept-alive connection, which the provider closes.
        assert_eq!(call(&client, Method::PUT, &url).await.unwrap(), 200);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "GET /records HTTP/1.1",
                "PUT /records HTTP/1.1",
                "PUT /records HTTP/1.1"
            ]
        );
        calls.lock().unwrap().clear();
        // A kept-alive connection again (the call sent again had one of its own, not kept).
        assert_eq!(call(&client, Method::GET, &url).await.unwrap(), 200);
        let failed = call(&client, Method::POST, &url).await;
        assert!(
            matches!(failed, Err(OAuthError::Unreachable { .. })),
            "{failed:?}"
        );
        assert_eq!(
            *calls.lock().unwrap(),
            ["GET /records HTTP/1.1", "POST /records HTTP/1.1"]
        );
    }

    #[tokio::test]
    async fn an_idempotent_call_sent_again_never_takes_another_connection_the_provider_closed() {
        let (base, calls) = closes_kept_alive_connections().await;
        let client = loopback_client(OutboundSettings::default());
        let url = format!("{base}/records");
        // Two calls at once leave two kept-alive connections, both of which the provider
        // closes when the next call arrives on them (their idle timeouts ran out together).
        let (first, second) = tokio::join!(
            call(&client, Method::GET, &url),
            call(&client, Method::GET, &url)
        );
        assert_eq!((first.unwrap(), second.unwrap()), (200, 200));
        assert_eq!(call(&client, Method::GET, &url).await.unwrap(), 200);
        assert_eq!(
            calls.lock().unwrap().len(),
            4,
            "{:?}",
            calls.lock().unwrap()
        );
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_keep_alive_limit_carries_no_call() {
        // The provider drops connections idle over 300 ms; the client gives them up at
        // 100 ms, so a POST after 500 ms of silence goes out on a new connection.
        let (base, answered) =
            crate::testing::drops_connections_idle_longer_than(Duration::from_millis(300)).await;
        let client = loopback_client(OutboundSettings {
            idle_timeout: Duration::from_millis(100),
            ..OutboundSettings::default()
        });
        let url = format!("{base}/records");
        assert_eq!(call(&client, Method::POST, &url).await.unwrap(), 200);
        // Back to back, the connection is kept and reused.
        assert_eq!(call(&client, Method::POST, &url).await.unwrap(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(call(&client, Method::POST, &url).await.unwrap(), 200);
        assert_eq!(answered.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn passthrough_failures_are_told_apart_and_logged_with_host_and_cause_never_the_url() {
        crate::testing::failures_are_told_apart(
            |url, timeout| async move { fail(&url, timeout).await },
            SECRET,
        )
        .await;
    }

    #[tokio::test]
    async fn a_provider_that_never_finishes_the_tls_handshake_is_given_up_at_the_connect_timeout() {
        // Accepts the connection and never answers the handshake.
        let (addr, silent) = crate::testing::never_answers().await;
        let client = loopback_client(OutboundSettings {
            connect_timeout: Duration::from_secs(1),
            // Far longer than the guard below: only the connect timeout can end the wait.
            request_timeout: Duration::from_secs(120),
            ..OutboundSettings::default()
        });
        let log = Log::default();
        let _guard = log.capture();
        let sent = tokio::time::timeout(
            Duration::from_secs(60),
            get(&client, &format!("https://{addr}/data"), HeaderMap::new()),
        )
        .await
        .expect("the connect timeout ends the handshake");
        assert!(matches!(sent, Err(OAuthError::Timeout { .. })), "{sent:?}");
        assert!(log.text().contains("cause=\"timeout\""), "{}", log.text());
        silent.abort();
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_a_private_address_is_refused_before_connecting() {
        let (base, heads) = answers_raw("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let port = Url::parse(&base).unwrap().port().unwrap();
        let client = ProxyClient::new(OutboundSettings::default()).unwrap();
        let refused = get(
            &client,
            &format!("http://localhost:{port}/data"),
            HeaderMap::new(),
        )
        .await;
        assert!(matches!(refused, Err(OAuthError::Policy(_))), "{refused:?}");
        assert!(heads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_provider_call_names_junction_and_its_host_and_frames_its_body() {
        let (base, heads) =
            answers_raw("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        let client = private_allowed(Duration::from_secs(5));
        let placement = CredentialPlacement::default();
        let token = Secret::new(SECRET);
        let answer = client
            .send(ProxyCall {
                method: Method::POST,
                url: Url::parse(&format!("{base}/records")).unwrap(),
                headers: HeaderMap::new(),
                body: ProxyBody::Buffered(Bytes::from_static(b"{}")),
                auth: ProviderAuth::Bearer {
                    placement: &placement,
                    token: &token,
                },
            })
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        let mut caller = HeaderMap::new();
        caller.insert(header::USER_AGENT, HeaderValue::from_static("their-app/2"));
        get(&client, &format!("{base}/me"), caller).await.unwrap();
        let heads = heads.lock().unwrap();
        let host = base.trim_start_matches("http://");
        let posted = heads[0].to_ascii_lowercase();
        assert!(posted.starts_with("post /records http/1.1\r\n"), "{posted}");
        assert!(
            posted.contains(&format!("\r\nhost: {host}\r\n")),
            "{posted}"
        );
        let agent = concat!(
            "\r\nuser-agent: junction/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        );
        assert!(posted.contains(agent), "{posted}");
        assert!(posted.contains("\r\naccept: */*\r\n"), "{posted}");
        assert!(posted.contains("\r\ncontent-length: 2\r\n"), "{posted}");
        assert!(posted.ends_with("\r\n\r\n{}"), "{posted}");
        assert!(
            posted
                .contains(&format!("\r\nauthorization: bearer {SECRET}\r\n").to_ascii_lowercase()),
            "{posted}"
        );
        // A caller's own user agent is passed on; an empty GET has no body to frame.
        let got = heads[1].to_ascii_lowercase();
        assert!(got.contains("\r\nuser-agent: their-app/2\r\n"), "{got}");
        assert!(!got.contains("junction/"), "{got}");
        assert!(!got.contains("content-length"), "{got}");
        assert!(!got.contains("transfer-encoding"), "{got}");
    }

    #[tokio::test]
    async fn a_redirect_is_handed_back_not_followed() {
        let (target, followed) = answers_raw("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 302 Found\r\nlocation: {target}/elsewhere\r\ncontent-length: 0\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let (base, _) = answers_raw(answer).await;
        let client = private_allowed(Duration::from_secs(5));
        let answer = get(&client, &format!("{base}/data"), HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::FOUND);
        assert!(followed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_streaming_upload_goes_out_with_its_declared_length_or_chunked() {
        let (base, heads) =
            answers_raw("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        let client = private_allowed(Duration::from_secs(5));
        let chunks = || {
            futures_util::stream::iter(
                [&b"abc"[..], &b"def"[..]]
                    .map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(c)))),
            )
        };
        let known = http_body_util::StreamBody::new(chunks());
        let placement = CredentialPlacement::default();
        let token = Secret::new(SECRET);
        for body in [
            ProxyBody::read(Sized(known, 6), 1).await.unwrap(),
            ProxyBody::read(http_body_util::StreamBody::new(chunks()), 1)
                .await
                .unwrap(),
        ] {
            assert!(!body.is_replayable());
            client
                .send(ProxyCall {
                    method: Method::PUT,
                    url: Url::parse(&format!("{base}/file")).unwrap(),
                    headers: HeaderMap::new(),
                    body,
                    auth: ProviderAuth::Bearer {
                        placement: &placement,
                        token: &token,
                    },
                })
                .await
                .unwrap();
        }
        let heads = heads.lock().unwrap().clone();
        assert!(heads[0].contains("content-length: 6\r\n"), "{}", heads[0]);
        assert!(!heads[0].contains("transfer-encoding"), "{}", heads[0]);
        assert!(
            heads[1].contains("transfer-encoding: chunked\r\n"),
            "{}",
            heads[1]
        );
    }

    #[tokio::test]
    async fn a_provider_that_stops_sending_its_body_is_given_up_after_the_read_timeout() {
        // Promises ten bytes, sends four, then nothing.
        let (base, _) = answers_raw("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabcd").await;
        let client = private_allowed(Duration::from_secs(1));
        let answer = get(&client, &format!("{base}/data"), HeaderMap::new())
            .await
            .unwrap();
        let read = tokio::time::timeout(Duration::from_secs(30), answer.read_body(1024))
            .await
            .expect("the read timeout ends the wait");
        assert!(
            matches!(read, Err(OAuthError::Unreachable { .. })),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn a_caller_slow_to_read_does_not_use_up_the_read_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 8192];
            let _ = socket.read(&mut buffer).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(b"2\r\nab\r\n").await.unwrap();
            socket.flush().await.unwrap();
            // The rest only once the client has taken the first chunk and waits again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            socket.write_all(b"2\r\ncd\r\n0\r\n\r\n").await.unwrap();
            let _ = socket.read(&mut buffer).await;
        });
        let client = private_allowed(Duration::from_secs(1));
        let mut answer = get(&client, &format!("http://{addr}/data"), HeaderMap::new())
            .await
            .unwrap();
        let mut body = Vec::new();
        let first = std::future::poll_fn(|cx| Pin::new(&mut answer.body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        body.extend_from_slice(first.data_ref().unwrap());
        // Longer than the read timeout, spent by the reader, not waiting on the provider.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut answer.body).poll_frame(cx)).await
        {
            body.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        assert_eq!(body, b"abcd");
    }

    /// A body that declares its length, as a request with `Content-Length` does.
    struct Sized<B>(B, u64);

    impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Sized<B> {
        type Data = Bytes;
        type Error = B::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
            Pin::new(&mut self.get_mut().0).poll_frame(cx)
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.1)
        }
    }

    #[test]
    fn the_vendor_path_and_query_go_after_the_base_path_and_the_policy_holds_every_time() {
        let client = ProxyClient::new(OutboundSettings::default()).unwrap();
        for base in ["https://api.example.com/v2", "https://api.example.com/v2/"] {
            let url = client
                .target_url(1, "base.url", base, "/me/a%20b", Some("x=1&y=%2F"))
                .unwrap();
            assert_eq!(
                url.as_str(),
                "https://api.example.com/v2/me/a%20b?x=1&y=%2F"
            );
        }
        let url = client
            .target_url(1, "base.url", "https://api.example.com", "/me", Some(""))
            .unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/me");
        for _ in 0..2 {
            assert!(
                client
                    .target_url(1, "base.url", "http://127.0.0.1:8080/api", "/me", None)
                    .is_err(),
                "a refused base is refused again, not remembered as checked"
            );
        }
    }

    #[test]
    fn checked_base_urls_are_bounded_in_bytes_and_dropped_with_their_instance() {
        let client = ProxyClient::new(OutboundSettings::default()).unwrap();
        let long = "a".repeat(60 * 1024);
        // One instance whose base keeps changing holds one entry, not one per value.
        for n in 0..300 {
            let base = format!("https://api.example.com/{n}/{long}");
            client
                .target_url(7, "base.url", &base, "/me", None)
                .unwrap();
        }
        client.bases.run_pending_tasks();
        assert_eq!(client.bases.entry_count(), 1);
        // Many instances with long bases stay within the byte bound.
        for instance in 0..600 {
            let base = format!("https://api.example.com/{instance}/{long}");
            client
                .target_url(instance, "base.url", &base, "/me", None)
                .unwrap();
        }
        client.bases.run_pending_tasks();
        assert!(
            client.bases.weighted_size() <= BASE_URL_BYTES_KEPT,
            "{}",
            client.bases.weighted_size()
        );
        client.forget(599);
        client.bases.run_pending_tasks();
        assert!(client.bases.get(&599).is_none());
        // A changed base is checked again, not served from what was kept.
        client
            .target_url(3, "base.url", "https://api.example.com/v1", "/me", None)
            .unwrap();
        let err = client.target_url(3, "base.url", "http://127.0.0.1/v1", "/me", None);
        assert!(err.is_err());
    }

    #[test]
    fn a_kept_base_url_is_the_one_configured_now_and_checked_as_any_url() {
        let client = ProxyClient::new(OutboundSettings::default()).unwrap();
        for raw in [
            "https://api.example.com/v1",
            "https://API.example.com:443/v2/",
        ] {
            for _ in 0..2 {
                assert_eq!(
                    client.base_url(4, "base.url", raw).unwrap(),
                    client.check_url("base.url", raw).unwrap()
                );
            }
        }
        assert!(client.remembers(4));
        // Each instance has its own; a refused base is refused every time.
        assert_eq!(
            client
                .base_url(5, "base.url", "https://other.example")
                .unwrap()
                .as_str(),
            "https://other.example/"
        );
        for _ in 0..2 {
            assert!(
                client
                    .base_url(4, "base.url", "http://127.0.0.1/v1")
                    .is_err()
            );
        }
        assert_eq!(
            client
                .base_url(4, "base.url", "https://api.example.com/v1")
                .unwrap()
                .as_str(),
            "https://api.example.com/v1"
        );
    }

    #[test]
    fn connection_headers_and_junction_credentials_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Element t"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/csv"));
        let out = forwardable_request_headers(headers);
        // Fields of different names keep no order (RFC 9110 §5.3).
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "content-type"]);
    }

    #[test]
    fn provider_cookies_and_cors_stay_behind_and_answers_are_sandboxed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("sid=1"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src *"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert("x-provider", HeaderValue::from_static("kept"));
        let out = forwardable_response_headers(headers);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-security-policy",
                "content-type",
                "x-content-type-options",
                "x-provider"
            ]
        );
        assert_eq!(out[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            out[header::CONTENT_SECURITY_POLICY],
            PROXIED_CONTENT_SECURITY_POLICY
        );
    }

    #[test]
    fn provider_messages_are_found_in_the_common_shapes() {
        let graph =
            br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException"}}"#;
        assert_eq!(
            provider_message(graph).as_deref(),
            Some("Invalid OAuth access token.")
        );
        let rfc = br#"{"error":"invalid_request","error_description":"bad"}"#;
        assert_eq!(provider_message(rfc).as_deref(), Some("bad"));
        assert_eq!(
            provider_message(b"Service down").as_deref(),
            Some("Service down")
        );
        assert_eq!(provider_message(b"your token is abc"), None);
    }
}
