//! A scripted user agent that walks an authorization URL to the client's callback.

use std::time::Duration;

use reqwest::redirect::Policy;
use url::Url;

const MAX_HOPS: usize = 15;

/// A cookie-keeping HTTP client that follows redirects one at a time, like a browser
/// whose user consents to everything the authorization server asks.
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
}

/// Where the authorization server finally sent the user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The `code` query parameter, on success.
    pub code: Option<String>,
    /// The `state` query parameter, echoed by the server.
    pub state: Option<String>,
    /// The `error` query parameter, when authorization failed (e.g. `access_denied`).
    pub error: Option<String>,
    /// The full callback URL.
    pub url: String,
}

impl Callback {
    /// Any query parameter of the callback URL (e.g. `iss`, `error_description`).
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&Url::parse(&self.url).ok()?, name)
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            // Each hop is inspected so the walk can stop at the callback, which points at a
            // host that does not exist.
            .redirect(Policy::none())
            // The peers are on loopback; a proxy from the environment would only get in the way.
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building the test browser's HTTP client");
        Browser { client }
    }

    /// Follows redirects from `authorization_url` until one points at a URL starting
    /// with `callback_prefix`, and returns that callback without requesting it.
    pub async fn authorize(&self, authorization_url: &str, callback_prefix: &str) -> Callback {
        self.try_authorize(authorization_url, callback_prefix)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Browser::authorize`], telling why the walk failed instead of panicking.
    pub async fn try_authorize(
        &self,
        authorization_url: &str,
        callback_prefix: &str,
    ) -> Result<Callback, String> {
        let mut current = Url::parse(authorization_url)
            .map_err(|e| format!("authorization URL {authorization_url:?}: {e}"))?;
        for _ in 0..MAX_HOPS {
            let response = self
                .client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| format!("GET {current}: {e}"))?;
            let status = response.status();
            let location = match response.headers().get(reqwest::header::LOCATION) {
                Some(value) => Some(
                    value
                        .to_str()
                        .map_err(|e| format!("GET {current}: Location is not text: {e}"))?
                        .to_owned(),
                ),
                None => None,
            };
            // Read to the end, so the connection is reused for the next hop.
            let body = response.bytes().await.unwrap_or_default();
            let location = match location {
                Some(location) if status.is_redirection() => location,
                _ => {
                    return Err(format!(
                        "GET {current} answered {status} instead of redirecting towards \
                         {callback_prefix}; body:\n{}",
                        String::from_utf8_lossy(&body)
                    ));
                }
            };
            let next = current
                .join(&location)
                .map_err(|e| format!("GET {current}: bad Location {location:?}: {e}"))?;
            if location.starts_with(callback_prefix) || next.as_str().starts_with(callback_prefix) {
                return Ok(Callback {
                    code: query_param(&next, "code"),
                    state: query_param(&next, "state"),
                    error: query_param(&next, "error"),
                    url: next.into(),
                });
            }
            current = next;
        }
        Err(format!(
            "{authorization_url} did not reach {callback_prefix} within {MAX_HOPS} redirects \
             (last stop: {current})"
        ))
    }

    /// The underlying client, sharing this browser's cookie jar.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
