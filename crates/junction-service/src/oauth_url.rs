//! Step 1: `GET|POST /elements/{keyOrId}/oauth/url`.

use crate::{ServiceError, Services};
use junction_core::config::keys;
use junction_oauth::{AuthorizationRequest, authorization_url, join_scopes};
use serde::{Deserialize, Serialize};

/// Parameters of step 1, as query parameters (`GET`) or a JSON body (`POST`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OAuthUrlParams {
    pub api_key: Option<String>,
    /// Accepted because Cloud Elements clients send it, and never used: the secret goes
    /// only to the token endpoint, server to server, and belongs in no URL.
    pub api_secret: Option<String>,
    pub callback_url: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub site_address: Option<String>,
}

/// Where to send the customer, and for which element.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthUrlResponse {
    pub oauth_url: String,
    pub element: String,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The provider sends the customer, with the authorization code, to this address: it must
/// be an absolute http(s) URL with a host, or the flow breaks only after the customer
/// has signed in.
fn check_callback_url(raw: &str) -> Result<(), ServiceError> {
    let ok = url::Url::parse(raw).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(ServiceError::bad_request(
            "invalid_parameter",
            "callbackUrl must be an absolute http(s) URL, like https://app.example.com/auth",
        ))
    }
}

impl Services {
    /// `organization`: the caller's, when the call was authenticated, so that its custom
    /// elements are found too.
    pub async fn oauth_url(
        &self,
        organization: Option<junction_core::OrganizationId>,
        key_or_id: &str,
        params: &OAuthUrlParams,
    ) -> Result<OAuthUrlResponse, ServiceError> {
        let found = self.find_element(organization, key_or_id).await?;
        let element = found.definition();
        let spec = element.oauth.as_ref().ok_or_else(|| {
            ServiceError::bad_request(
                "not_oauth_element",
                format!("element '{}' does not use OAuth 2.0", element.key),
            )
        })?;
        let missing: Vec<&str> = [
            ("apiKey", &params.api_key),
            ("callbackUrl", &params.callback_url),
        ]
        .into_iter()
        .filter(|(_, v)| present(v).is_none())
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            return Err(ServiceError::bad_request(
                "missing_parameter",
                format!("missing required parameter(s): {}", missing.join(", ")),
            ));
        }
        if let Some(callback) = present(&params.callback_url) {
            check_callback_url(callback)?;
        }
        let default_of = |key: &str| {
            element
                .config_entry(key)
                .and_then(|c| c.default.clone())
                .unwrap_or_default()
        };
        let scope = match present(&params.scope) {
            Some(given) => join_scopes(spec, given),
            None => join_scopes(spec, &default_of(keys::SCOPE)),
        };
        let authorization = default_of(keys::AUTHORIZATION_URL);
        let url = authorization_url(
            spec,
            &AuthorizationRequest {
                authorization_url: &authorization,
                client_id: present(&params.api_key).unwrap_or_default(),
                callback_url: present(&params.callback_url).unwrap_or_default(),
                state: present(&params.state).unwrap_or(&element.key),
                scope: Some(&scope),
                site_address: present(&params.site_address),
            },
        )?;
        Ok(OAuthUrlResponse {
            oauth_url: url,
            element: element.key.clone(),
        })
    }
}
