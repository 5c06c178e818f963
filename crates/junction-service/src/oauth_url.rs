//! Step 1: `GET|POST /elements/{keyOrId}/oauth/url`.

use crate::configuration::normalized;
use crate::hosts;
use crate::schemes::oauth1_credentials;
use crate::templates;
use crate::{Caller, ServiceError, Services};
use junction_core::config::config_value_from_json;
use junction_core::config::keys;
use junction_core::credential::{OAuthGrant, TemplateError, fill};
use junction_core::element::AuthenticationType;
use junction_core::{ConfigMap, ElementDefinition};
use junction_oauth::oauth1::request_token;
use junction_oauth::{AuthorizationRequest, authorization_url, join_scopes};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// An S256 PKCE code challenge, for an element that takes PKCE; the code's exchange
    /// then needs `providerData.code_verifier`.
    pub code_challenge: Option<String>,
    /// OAuth 1.0a: the request token from `GET /elements/{keyOrId}/oauth/token`.
    pub request_token: Option<String>,
    /// Values of the configuration entries the element's authorization URL and scope are
    /// templated from, by key (`zendesk.subdomain=acme`).
    #[serde(flatten)]
    #[param(ignore)]
    #[schema(ignore)]
    pub configuration: BTreeMap<String, Value>,
}

/// Parameters of `GET /elements/{keyOrId}/oauth/token` (OAuth 1.0a elements).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OAuthTokenParams {
    /// The consumer key.
    pub api_key: Option<String>,
    /// The consumer secret: it signs the request and is sent nowhere.
    pub api_secret: Option<String>,
    /// Where the provider sends the customer back (`oauth_callback`).
    pub callback_url: Option<String>,
    /// The temporary-credentials endpoint, when it is not the element's
    /// `oauth.request.url` (a provider's own host); taken only for an element that pins
    /// its hosts, and held to those pins.
    pub request_token_url: Option<String>,
    /// Values of the configuration entries the element's `oauth.request.url` is templated
    /// from, by key.
    #[serde(flatten)]
    #[param(ignore)]
    #[schema(ignore)]
    pub configuration: BTreeMap<String, Value>,
}

/// OAuth 1.0a temporary credentials: the request token and its secret. The secret comes
/// back in `providerData.secret` of `POST /instances`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthTokenResponse {
    pub token: String,
    pub secret: String,
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

fn missing_parameters(given: &[(&str, &Option<String>)]) -> Result<(), ServiceError> {
    let missing: Vec<&str> = given
        .iter()
        .filter(|(_, v)| present(v).is_none())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ServiceError::bad_request(
        "missing_parameter",
        format!("missing required parameter(s): {}", missing.join(", ")),
    ))
}

fn oauth1_only(element: &ElementDefinition) -> Result<(), ServiceError> {
    if element.authentication.kind == AuthenticationType::Oauth1 {
        return Ok(());
    }
    Err(ServiceError::bad_request(
        "not_oauth1_element",
        format!("element '{}' does not use OAuth 1.0a", element.key),
    ))
}

/// The values step 1 fills the element's templated URLs and scope from: its defaults,
/// and the caller's values for the entries the templates name, each validated as
/// configuration. A configuration key the templates do not name is refused: step 1 moves
/// no URL by other means.
fn template_values(
    element: &ElementDefinition,
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, ServiceError> {
    let named = templates::template_names(element);
    let mut values: BTreeMap<String, String> = element
        .configuration
        .iter()
        .filter_map(|e| e.default.clone().map(|d| (e.key.clone(), d)))
        .collect();
    for (key, raw) in given {
        if !named.contains(key) {
            // Other parameters without a dot are what Cloud Elements clients may send
            // beside the documented ones, and were always ignored.
            if !key.contains('.') {
                continue;
            }
            let takes = if named.is_empty() {
                "none".to_owned()
            } else {
                named.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(ServiceError::bad_request(
                "invalid_parameter",
                format!(
                    "'{key}' is not a value element '{}' builds its authorization URL from (it takes: {takes})",
                    element.key
                ),
            ));
        }
        let value = config_value_from_json(key, raw)
            .map_err(|e| ServiceError::bad_request("invalid_parameter", e.to_string()))?;
        match normalized(element, key, value)? {
            Some(v) => values.insert(key.clone(), v),
            None => values.remove(key),
        };
    }
    templates::check_host_safe(element, &values, "invalid_parameter")?;
    Ok(values)
}

/// `key` filled from `values`, naming an absent value as a missing parameter.
fn filled(
    element: &ElementDefinition,
    key: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, ServiceError> {
    match element.resolve(key, values) {
        Ok(v) => Ok(v.unwrap_or_default()),
        Err(TemplateError::Missing(name)) => Err(ServiceError::bad_request(
            "missing_parameter",
            format!(
                "missing required parameter(s): {name} (element '{}' builds '{key}' from it)",
                element.key
            ),
        )),
        Err(TemplateError::Unclosed) => Err(ServiceError::Internal(format!(
            "element '{}': the default of '{key}' has an unclosed brace",
            element.key
        ))),
    }
}

/// Refuses a URL for `key` on a host the element's pins do not allow.
fn check_pinned(element: &ElementDefinition, key: &str, url: &str) -> Result<(), ServiceError> {
    let pins = match (&element.oauth, &element.oauth1) {
        (Some(spec), _) => &spec.allowed_hosts,
        (None, Some(spec)) => &spec.allowed_hosts,
        (None, None) => return Ok(()),
    };
    let mut config = ConfigMap::new();
    config.insert(key.to_owned(), Some(url.to_owned()));
    match hosts::unpinned_by(pins, &config, None) {
        Some(found) => Err(found.given(element, pins)),
        None => Ok(()),
    }
}

impl Services {
    /// OAuth 1.0a step 1 (RFC 5849 §2.1): temporary credentials for the caller's
    /// consumer, with its callback.
    pub async fn oauth_request_token(
        &self,
        caller: Option<&Caller>,
        key_or_id: &str,
        params: &OAuthTokenParams,
    ) -> Result<OAuthTokenResponse, ServiceError> {
        let element = self.find_element(caller, key_or_id).await?;
        oauth1_only(&element)?;
        missing_parameters(&[
            ("apiKey", &params.api_key),
            ("apiSecret", &params.api_secret),
            ("callbackUrl", &params.callback_url),
        ])?;
        let callback = present(&params.callback_url).unwrap_or_default();
        check_callback_url(callback)?;
        let request_url = match present(&params.request_token_url) {
            // This call is anonymous: without pins, a given URL would send a signed
            // request anywhere on the caller's behalf.
            Some(_)
                if element
                    .oauth1
                    .as_ref()
                    .is_none_or(|o| o.allowed_hosts.is_empty()) =>
            {
                return Err(ServiceError::bad_request(
                    "invalid_parameter",
                    format!(
                        "element '{}' pins no hosts, so requestTokenUrl cannot be given: \
                         its own '{}' is used",
                        element.key,
                        keys::REQUEST_URL
                    ),
                ));
            }
            Some(given) => given.to_owned(),
            None => {
                let values = template_values(&element, &params.configuration)?;
                filled(&element, keys::REQUEST_URL, &values)?
            }
        };
        check_pinned(&element, keys::REQUEST_URL, &request_url)?;
        let mut config = ConfigMap::new();
        config.insert(keys::API_KEY.into(), params.api_key.clone());
        config.insert(keys::API_SECRET.into(), params.api_secret.clone());
        let credentials = oauth1_credentials(&element, &config, None);
        let token = request_token(&self.outbound, &request_url, &credentials, callback)
            .await
            .inspect_err(|e| {
                tracing::info!(element = %element.key, error = %e, "OAuth 1.0a request token failed")
            })?;
        Ok(OAuthTokenResponse {
            token: token.token,
            secret: token.secret.expose().to_owned(),
        })
    }

    /// OAuth 1.0a step 2 (RFC 5849 §2.2): where the customer authorizes the request token.
    fn oauth1_url(
        &self,
        element: &ElementDefinition,
        params: &OAuthUrlParams,
    ) -> Result<OAuthUrlResponse, ServiceError> {
        missing_parameters(&[("requestToken", &params.request_token)])?;
        let defaults = template_values(element, &params.configuration)?;
        let authorization = filled(element, keys::AUTHORIZATION_URL, &defaults)?;
        check_pinned(element, keys::AUTHORIZATION_URL, &authorization)?;
        let mut extra = Vec::new();
        for (name, template) in element
            .oauth1
            .iter()
            .flat_map(|o| o.authorization_parameters.iter())
        {
            let value = fill(template, &defaults).map_err(|e| match e {
                TemplateError::Missing(missing) => ServiceError::bad_request(
                    "missing_parameter",
                    format!(
                        "missing required parameter(s): {missing} (element '{}' builds \
                         authorization parameter '{name}' from it)",
                        element.key
                    ),
                ),
                TemplateError::Unclosed => ServiceError::Internal(format!(
                    "element '{}' authorization parameter '{name}': {e}",
                    element.key
                )),
            })?;
            extra.push((name.clone(), value));
        }
        let url = junction_oauth::oauth1::authorization_url(
            &authorization,
            present(&params.request_token).unwrap_or_default(),
            &extra,
        )?;
        Ok(OAuthUrlResponse {
            oauth_url: url,
            element: element.key.clone(),
        })
    }

    /// `caller`: when the call was authenticated, its organization's custom elements are
    /// found too.
    pub async fn oauth_url(
        &self,
        caller: Option<&Caller>,
        key_or_id: &str,
        params: &OAuthUrlParams,
    ) -> Result<OAuthUrlResponse, ServiceError> {
        let found = self.find_element(caller, key_or_id).await?;
        let element: &ElementDefinition = &found;
        if element.authentication.kind == AuthenticationType::Oauth1 {
            return self.oauth1_url(element, params);
        }
        let spec = element.oauth.as_ref().ok_or_else(|| {
            ServiceError::bad_request(
                "not_oauth_element",
                format!("element '{}' does not use OAuth 2.0", element.key),
            )
        })?;
        if spec.grant == OAuthGrant::ClientCredentials {
            return Err(ServiceError::bad_request(
                "not_oauth_element",
                format!(
                    "element '{}' uses the client-credentials grant, which has no authorization step: \
                     POST /instances with the client id and secret in its configuration",
                    element.key
                ),
            ));
        }
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
        let values = template_values(element, &params.configuration)?;
        let scope = match present(&params.scope) {
            Some(given) => join_scopes(spec, given),
            None => join_scopes(spec, &filled(element, keys::SCOPE, &values)?),
        };
        let authorization = filled(element, keys::AUTHORIZATION_URL, &values)?;
        check_pinned(element, keys::AUTHORIZATION_URL, &authorization)?;
        let url = authorization_url(
            spec,
            &AuthorizationRequest {
                authorization_url: &authorization,
                client_id: present(&params.api_key).unwrap_or_default(),
                callback_url: present(&params.callback_url).unwrap_or_default(),
                state: present(&params.state).unwrap_or(&element.key),
                scope: Some(&scope),
                site_address: present(&params.site_address),
                code_challenge: present(&params.code_challenge),
            },
        )?;
        Ok(OAuthUrlResponse {
            oauth_url: url,
            element: element.key.clone(),
        })
    }
}
