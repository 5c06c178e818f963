//! The outbound HTTP client: timeouts, no redirects, and the address policy applied at
//! name resolution (so DNS rebinding to a private address is refused too).

use crate::OAuthError;
use crate::transport::{HttpClient, OutBody, StreamingBody};
use http_body_util::BodyExt;
use junction_core::net::{OutboundPolicy, PolicyViolation};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Copy)]
pub struct OutboundSettings {
    pub policy: OutboundPolicy,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a kept-alive connection may sit unused and still carry a call.
    pub idle_timeout: Duration,
}

/// Servers close kept-alive connections after their own idle timeout, 5 s for Node.js,
/// Apache and uvicorn. A call sent on a connection just as the server closes it breaks
/// with no answer, and only an idempotent one may be sent again; so a connection is
/// given up before the usual server-side timeout rather than at it (the figure Node's
/// `agentkeepalive` settled on for the same race).
pub const KEPT_ALIVE_IDLE: Duration = Duration::from_secs(4);

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            policy: OutboundPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idle_timeout: KEPT_ALIVE_IDLE,
        }
    }
}

/// Largest provider body Junction reads during OAuth and provisioning calls.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// The client of every OAuth grant, provisioning call and event delivery. Requests are
/// written with reqwest's builder (form and query encoding, basic auth) and sent on
/// hyper's client, as the passthrough's are: reqwest's own layers (its redirect and
/// retry policies, its timeouts) cost every grant more than the grant's own work.
#[derive(Clone)]
pub struct OutboundClient {
    /// Builds requests; sends none (were it to, the same guarantees would hold).
    requests: reqwest::Client,
    http: HttpClient,
    settings: OutboundSettings,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Resolves names for both clients and keeps only the addresses the policy allows.
#[derive(Clone, Copy)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: OutboundPolicy,
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// `host`'s addresses the policy allows; an error names the policy's refusal (when every
/// address was refused) or the failed lookup.
async fn resolve(policy: OutboundPolicy, host: String) -> Result<Vec<SocketAddr>, BoxError> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| ResolveError {
            host: host.clone(),
            source: Box::new(e),
        })?
        .collect();
    let mut refused: Option<PolicyViolation> = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match policy.check(a.ip()) {
            Ok(()) => true,
            Err(v) => {
                refused.get_or_insert(v);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match refused {
            Some(v) => Box::new(v),
            None => Box::new(ResolveError {
                host,
                source: "no addresses".into(),
            }),
        });
    }
    Ok(allowed)
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Addrs = Box::new(resolve(policy, host).await?.into_iter());
            Ok(addrs)
        })
    }
}

/// The same resolution for hyper's connector, which the passthrough client uses.
impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move { Ok(resolve(policy, host).await?.into_iter()) })
    }
}

impl OutboundClient {
    /// A client that keeps connections alive between calls, giving each up after
    /// [`OutboundSettings::idle_timeout`] unused.
    pub fn new(settings: OutboundSettings) -> Result<Self, OAuthError> {
        let requests = builder(&settings)
            .timeout(settings.request_timeout)
            .build()
            .map_err(OAuthError::Client)?;
        let tls = crate::transport::tls_config().map_err(OAuthError::Tls)?;
        let http = crate::transport::client(&settings, tls, usize::MAX);
        Ok(Self {
            requests,
            http,
            settings,
        })
    }

    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }

    /// Parses `raw` as an http(s) URL and checks a literal IP host against the policy
    /// (names are checked when they resolve).
    pub fn check_url(&self, what: &str, raw: &str) -> Result<Url, OAuthError> {
        check_url(self.settings.policy, what, raw)
    }

    pub fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.requests.request(method, url)
    }

    /// Sends and reads the whole body (bounded), all within the request's timeout (the
    /// builder's, else [`OutboundSettings::request_timeout`]), mapping transport
    /// failures to [`OAuthError`]. Never sent twice: a call that broke is the caller's
    /// to judge.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), OAuthError> {
        let timeout = self.settings.request_timeout;
        let mut request = request.build().map_err(|e| transport_error(e, timeout))?;
        let timeout = request.timeout().copied().unwrap_or(timeout);
        let host = host_of(request.url());
        let uri: http::Uri = request
            .url()
            .as_str()
            .parse()
            .map_err(|_| OAuthError::BadUrl {
                what: "the request URL".into(),
            })?;
        let body = match request.body_mut().take() {
            None => OutBody::Held(None),
            Some(body) => match body.as_bytes() {
                Some(bytes) => {
                    OutBody::Held((!bytes.is_empty()).then(|| bytes::Bytes::copy_from_slice(bytes)))
                }
                None => OutBody::Streaming(StreamingBody::wrap(body)),
            },
        };
        let mut outgoing = http::Request::new(body);
        *outgoing.method_mut() = request.method().clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = std::mem::take(request.headers_mut());
        crate::transport::default_headers(outgoing.headers_mut());
        match tokio::time::timeout(timeout, self.exchange(outgoing)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Failed::Connection(e))) => {
                let cause = cause_in_chain(&e, e.is_connect());
                Err(failure(&e, &host, cause, timeout))
            }
            Ok(Err(Failed::Body(e))) => {
                let cause = cause_in_chain(&e, false);
                Err(failure(&e, &host, cause, timeout))
            }
            Ok(Err(Failed::TooLarge(status))) => Err(OAuthError::BadResponse {
                status: status.as_u16(),
                reason: format!("the body is larger than {MAX_BODY} bytes"),
                snippet: String::new(),
            }),
            Err(_) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no whole answer within the request timeout",
                );
                Err(failure(&e, &host, Cause::Timeout, timeout))
            }
        }
    }

    async fn exchange(
        &self,
        request: http::Request<OutBody>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), Failed> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(Failed::Connection)?;
        let status = response.status();
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            if let Ok(chunk) = frame.map_err(Failed::Body)?.into_data() {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(Failed::TooLarge(status));
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok((status, body))
    }
}

/// Why [`OutboundClient::send`] got no whole answer.
enum Failed {
    /// No answer's head: connecting or sending failed, or the connection broke.
    Connection(hyper_util::client::legacy::Error),
    /// The body broke off.
    Body(hyper::Error),
    TooLarge(reqwest::StatusCode),
}

/// What Junction calls itself on every outbound call.
pub(crate) const USER_AGENT: &str = concat!("Junction/", env!("CARGO_PKG_VERSION"));

/// Why a call to a provider failed below HTTP, as the log and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The provider's name did not resolve.
    Dns,
    /// Nothing listens at the provider's address.
    Refused,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    Timeout,
    /// The connection was reset or closed mid-call.
    Broken,
    /// Connecting failed otherwise (unreachable network, …).
    Connect,
}

impl Cause {
    fn reason(self) -> &'static str {
        match self {
            Self::Dns => "its name did not resolve",
            Self::Refused => "the connection was refused",
            Self::Tls => "the TLS handshake failed",
            Self::Timeout => "it did not answer in time",
            Self::Broken => "the connection broke",
            Self::Connect => "connection failed",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Refused => "refused",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Broken => "broken",
            Self::Connect => "connect",
        }
    }
}

/// A name the resolver could not turn into addresses; marks DNS failures in an error's
/// source chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} did not resolve: {source}")]
pub(crate) struct ResolveError {
    host: String,
    source: Box<dyn StdError + Send + Sync>,
}

/// Tells the cause from a reqwest error.
fn cause_of(error: &reqwest::Error) -> Cause {
    if error.is_timeout() {
        return Cause::Timeout;
    }
    cause_in_chain(error, error.is_connect())
}

/// Tells the cause from an error's source chain; `connecting` says whether the client
/// failed before it had a connection.
pub(crate) fn cause_in_chain(error: &(dyn StdError + 'static), connecting: bool) -> Cause {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<ResolveError>().is_some() {
            return Cause::Dns;
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return Cause::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if wraps_tls_error(io) {
                return Cause::Tls;
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => return Cause::Broken,
                _ => {}
            }
        }
        source = e.source();
    }
    if connecting {
        Cause::Connect
    } else {
        Cause::Broken
    }
}

/// An I/O error's `source` skips the error it wraps, where the TLS layer puts its own
/// (inside one more I/O error, even), so those are looked into.
fn wraps_tls_error(io: &std::io::Error) -> bool {
    let mut inner = io.get_ref();
    for _ in 0..8 {
        let Some(e) = inner else { return false };
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
    }
    false
}

/// The innermost error's text: the cause in the words of the layer that saw it. The
/// outer layers add the URL, whose query may hold a client secret or a token.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut innermost = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}

/// Maps a failed call to [`OAuthError`]: a refusal by the address policy (found in the
/// error's source chain, where the resolver put it), a timeout, or an unreachable peer.
/// Each failure is logged with the provider's host and its cause, never with the URL.
pub(crate) fn transport_error(error: reqwest::Error, timeout: Duration) -> OAuthError {
    let host = error.url().map(host_of).unwrap_or_default();
    let cause = cause_of(&error);
    let error = error.without_url();
    failure(&error, &host, cause, timeout)
}

/// `host:port` of `url`, as failures are logged: never its path or query.
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// Maps a failed call to [`OAuthError`] and logs it; `error` must not carry the URL.
pub(crate) fn failure(
    error: &(dyn StdError + 'static),
    host: &str,
    cause: Cause,
    timeout: Duration,
) -> OAuthError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(v) = e.downcast_ref::<PolicyViolation>() {
            tracing::info!(host = %host, refused = %v, "provider call refused by the outbound address policy");
            return OAuthError::Policy(v.clone());
        }
        source = e.source();
    }
    tracing::warn!(
        host = %host,
        cause = cause.name(),
        detail = %root_cause(error),
        "provider call failed"
    );
    if cause == Cause::Timeout {
        return OAuthError::Timeout {
            seconds: timeout.as_secs(),
        };
    }
    OAuthError::Unreachable {
        reason: cause.reason().to_owned(),
    }
}

/// What every outbound client shares: no redirects, a connect timeout, names resolved
/// through the address policy, Junction's user agent. No proxy either: reqwest would
/// otherwise take one from `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`, connect to it
/// instead, and the policy would judge only the proxy's address, never the provider's.
pub(crate) fn builder(settings: &OutboundSettings) -> reqwest::ClientBuilder {
    #[allow(clippy::disallowed_methods)]
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(settings.idle_timeout)
        .dns_resolver(Arc::new(PolicyResolver {
            policy: settings.policy,
        }))
        .user_agent(USER_AGENT)
}

/// Parses `raw` as an http(s) URL and checks a literal IP host against the policy
/// (names are checked when they resolve).
pub(crate) fn check_url(policy: OutboundPolicy, what: &str, raw: &str) -> Result<Url, OAuthError> {
    let url = Url::parse(raw).map_err(|_| OAuthError::BadUrl { what: what.into() })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(OAuthError::BadUrl { what: what.into() });
    }
    let literal: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    if let Some(ip) = literal {
        policy.check(ip)?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Log;

    const SECRET: &str = "s3cr3t-client-value";

    fn client(timeout: Duration) -> OutboundClient {
        OutboundClient::new(OutboundSettings {
            policy: OutboundPolicy {
                allow_private: true,
            },
            connect_timeout: timeout,
            request_timeout: timeout,
            ..OutboundSettings::default()
        })
        .unwrap()
    }

    /// Calls `url` with a secret in its query and returns the error and the log.
    async fn fail(url: &str, timeout: Duration) -> (OAuthError, String) {
        let log = Log::default();
        let _guard = log.capture();
        let client = client(timeout);
        let url = Url::parse(&format!("{url}?client_secret={SECRET}")).unwrap();
        let err = client
            .send(client.request(reqwest::Method::POST, url))
            .await
            .unwrap_err();
        (err, log.text())
    }

    async fn post(client: &OutboundClient, url: &str) -> Result<u16, OAuthError> {
        let request = client.request(reqwest::Method::POST, Url::parse(url).unwrap());
        Ok(client.send(request).await?.0.as_u16())
    }

    #[tokio::test]
    async fn a_grant_never_goes_out_on_a_connection_idle_past_the_keep_alive_limit() {
        // The provider drops connections idle over 300 ms; the client gives them up at
        // 100 ms. A refresh grant broken that way could not be sent again blindly.
        let (base, answered) =
            crate::testing::drops_connections_idle_longer_than(Duration::from_millis(300)).await;
        let url = format!("{base}/token");
        let grants = OutboundClient::new(OutboundSettings {
            policy: OutboundPolicy {
                allow_private: true,
            },
            idle_timeout: Duration::from_millis(100),
            ..OutboundSettings::default()
        })
        .unwrap();
        assert_eq!(post(&grants, &url).await.unwrap(), 200);
        assert_eq!(post(&grants, &url).await.unwrap(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(post(&grants, &url).await.unwrap(), 200);
        assert_eq!(answered.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn failures_are_logged_with_host_and_cause_and_never_the_url() {
        crate::testing::failures_are_told_apart(
            |url, timeout| async move { fail(&url, timeout).await },
            SECRET,
        )
        .await;
    }
}
