//! The outbound HTTP client: timeouts, no redirects, and the address policy applied at
//! name resolution (so DNS rebinding to a private address is refused too).

use crate::OAuthError;
use junction_core::net::{OutboundPolicy, PolicyViolation};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Copy)]
pub struct OutboundSettings {
    pub policy: OutboundPolicy,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            policy: OutboundPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Largest provider body Junction reads during OAuth and provisioning calls.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    settings: OutboundSettings,
}

pub(crate) struct PolicyResolver {
    pub(crate) policy: OutboundPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
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
                let err: Box<dyn StdError + Send + Sync> = match refused {
                    Some(v) => Box::new(v),
                    None => format!("{host} has no addresses").into(),
                };
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl OutboundClient {
    pub fn new(settings: OutboundSettings) -> Result<Self, OAuthError> {
        let http = builder(&settings)
            .timeout(settings.request_timeout)
            .build()
            .map_err(OAuthError::Client)?;
        Ok(Self { http, settings })
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
        self.http.request(method, url)
    }

    /// Sends and reads the whole body (bounded), mapping transport failures to
    /// [`OAuthError`].
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), OAuthError> {
        let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(OAuthError::BadResponse {
                    status: status.as_u16(),
                    reason: format!("the body is larger than {MAX_BODY} bytes"),
                    snippet: String::new(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn transport_error(&self, error: reqwest::Error) -> OAuthError {
        transport_error(error, self.settings.request_timeout)
    }
}

/// Maps a failed call to [`OAuthError`]: a refusal by the address policy (found in the
/// error's source chain, where the resolver put it), a timeout, or an unreachable peer.
pub(crate) fn transport_error(error: reqwest::Error, timeout: Duration) -> OAuthError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(v) = e.downcast_ref::<PolicyViolation>() {
            return OAuthError::Policy(v.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return OAuthError::Timeout {
            seconds: timeout.as_secs(),
        };
    }
    let reason = if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "the connection broke".to_owned()
    };
    OAuthError::Unreachable { reason }
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
        .dns_resolver(Arc::new(PolicyResolver {
            policy: settings.policy,
        }))
        .user_agent(concat!("Junction/", env!("CARGO_PKG_VERSION")))
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
