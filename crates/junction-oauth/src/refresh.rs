//! Renewing an access token: the refresh-token grant (RFC 6749 §6) and Graph's token
//! extension (`fb_exchange_token`), as the element's `oauth.refresh` section says.

use crate::token::parse_token_response;
use crate::{OAuthError, OutboundClient, TokenResponse};
use junction_core::Secret;
use junction_core::element::{ClientAuthentication, OAuthSpec};
use reqwest::Method;

/// The client and the token URL every renewal needs.
pub struct ClientCredentials<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
}

/// Spends `refresh_token` for a new access token: a form POST with the client
/// authenticated as the element's `tokenRequest` says. The answer may carry a rotated
/// refresh token, which then replaces the spent one.
pub async fn refresh_grant(
    client: &OutboundClient,
    spec: &OAuthSpec,
    credentials: &ClientCredentials<'_>,
    refresh_token: &Secret,
) -> Result<TokenResponse, OAuthError> {
    let url = client.check_url("oauth.token.url", credentials.token_url)?;
    let mut params: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
    ];
    if spec.token_request.client_authentication == ClientAuthentication::Body {
        params.push(("client_id", credentials.client_id));
        params.push(("client_secret", credentials.client_secret.expose()));
    }
    let mut request = client.request(Method::POST, url).form(&params);
    if spec.token_request.client_authentication == ClientAuthentication::Basic {
        request = request.basic_auth(
            credentials.client_id,
            Some(credentials.client_secret.expose()),
        );
    }
    let (status, body) = client
        .send(request.header(reqwest::header::ACCEPT, "application/json"))
        .await?;
    parse_token_response(status.as_u16(), &body)
}

/// The client-credentials grant (RFC 6749 §4.4): a token for the client itself, with
/// `scope` when the element asks for one.
pub async fn client_credentials_grant(
    client: &OutboundClient,
    spec: &OAuthSpec,
    credentials: &ClientCredentials<'_>,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let url = client.check_url("oauth.token.url", credentials.token_url)?;
    let mut params: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
        params.push(("scope", scope));
    }
    if spec.token_request.client_authentication == ClientAuthentication::Body {
        params.push(("client_id", credentials.client_id));
        params.push(("client_secret", credentials.client_secret.expose()));
    }
    let mut request = client.request(Method::POST, url).form(&params);
    if spec.token_request.client_authentication == ClientAuthentication::Basic {
        request = request.basic_auth(
            credentials.client_id,
            Some(credentials.client_secret.expose()),
        );
    }
    let (status, body) = client
        .send(request.header(reqwest::header::ACCEPT, "application/json"))
        .await?;
    parse_token_response(status.as_u16(), &body)
}

/// Graph's exchange of a user token for a long-lived one, which also extends a
/// long-lived token that has not expired yet. Graph documents it as a GET with the client
/// credentials in the query.
pub async fn exchange_long_lived(
    client: &OutboundClient,
    credentials: &ClientCredentials<'_>,
    access_token: &Secret,
) -> Result<TokenResponse, OAuthError> {
    let url = client.check_url("oauth.token.url", credentials.token_url)?;
    let params: [(&str, &str); 4] = [
        ("grant_type", "fb_exchange_token"),
        ("client_id", credentials.client_id),
        ("client_secret", credentials.client_secret.expose()),
        ("fb_exchange_token", access_token.expose()),
    ];
    let request = client.request(Method::GET, url).query(&params);
    let (status, body) = client
        .send(request.header(reqwest::header::ACCEPT, "application/json"))
        .await?;
    parse_token_response(status.as_u16(), &body)
}

impl OAuthError {
    /// Whether the provider refused for good, so retrying cannot help and the customer
    /// must re-authorize: `invalid_grant`, `invalid_client` and the like, or a 400/401/403
    /// from the token endpoint. Network failures, 5xx and 429 are transient.
    pub fn is_permanent_refusal(&self) -> bool {
        const PERMANENT: &[&str] = &[
            "invalid_grant",
            "invalid_client",
            "unauthorized_client",
            "unsupported_grant_type",
            "OAuthException",
        ];
        match self {
            Self::Provider { status, error, .. } => {
                matches!(status, 400 | 401 | 403)
                    || error.as_deref().is_some_and(|e| PERMANENT.contains(&e))
            }
            Self::BadResponse { status, .. } => matches!(status, 400 | 401 | 403),
            _ => false,
        }
    }

    /// Whether a later attempt may succeed: the provider was unreachable, slow, failing
    /// (5xx) or throttling (429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unreachable { .. } => true,
            Self::Provider { status, .. } | Self::BadResponse { status, .. } => {
                *status == 429 || *status >= 500
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(status: u16, error: &str) -> OAuthError {
        OAuthError::Provider {
            status,
            error: Some(error.to_owned()),
            description: None,
        }
    }

    #[test]
    fn refusals_for_good_and_transient_failures_are_told_apart() {
        assert!(provider(400, "invalid_grant").is_permanent_refusal());
        assert!(provider(401, "invalid_client").is_permanent_refusal());
        assert!(provider(200, "invalid_grant").is_permanent_refusal());
        assert!(!provider(503, "temporarily_unavailable").is_permanent_refusal());
        assert!(provider(503, "temporarily_unavailable").is_transient());
        assert!(provider(429, "slow_down").is_transient());
        assert!(!provider(429, "slow_down").is_permanent_refusal());
        assert!(OAuthError::Timeout { seconds: 5 }.is_transient());
        assert!(!provider(400, "invalid_grant").is_transient());
    }
}
