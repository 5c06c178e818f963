//! The authentication types besides the OAuth 2.0 token: credentials rendered from
//! configuration (`basic`, `apiKey`, `custom`), and OAuth 1.0a's token and signature.
//! Which one an instance uses is its element's `authentication.type`; how the values are
//! placed is the element's data.

use crate::credentials::value;
use crate::templates::CallParameters;
use crate::{ServiceError, Services};
use http::HeaderMap;
use http::header::{ACCEPT, HeaderValue};
use junction_core::config::keys;
use junction_core::credential::{RenderedCredential, TemplateError};
use junction_core::element::AuthenticationType;
use junction_core::{ConfigMap, ElementDefinition, Secret};
use junction_oauth::oauth1::OAuth1Credentials;
use junction_oauth::{OAuthError, ProviderAuth, ProxyBody, authorize, provider_message};
use reqwest::Method;
use std::collections::BTreeMap;

/// How an instance's calls carry its credentials, worked out from its configuration.
pub(crate) enum StaticAuth {
    Rendered(Vec<RenderedCredential>),
    OAuth1(OAuth1Credentials),
}

impl StaticAuth {
    pub(crate) fn as_provider_auth(&self) -> ProviderAuth<'_> {
        match self {
            Self::Rendered(all) => ProviderAuth::Rendered(all),
            Self::OAuth1(credentials) => ProviderAuth::OAuth1(credentials),
        }
    }
}

/// Whether the element's calls carry rendered configuration values.
pub(crate) fn uses_templates(element: &ElementDefinition) -> bool {
    matches!(
        element.authentication.kind,
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom
    )
}

/// The element's credential templates filled in from `config`.
pub(crate) fn rendered(
    element: &ElementDefinition,
    config: &ConfigMap,
) -> Result<Vec<RenderedCredential>, ServiceError> {
    let values: BTreeMap<String, String> = config
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    element
        .credentials
        .iter()
        .map(|template| {
            template.render(&values).map_err(|e| match e {
                TemplateError::Missing(key) => ServiceError::MissingConfiguration(vec![key]),
                TemplateError::Unclosed => ServiceError::Internal(format!(
                    "element '{}' has a credential template with an unclosed brace",
                    element.key
                )),
            })
        })
        .collect()
}

/// The consumer of an OAuth 1.0a element, with `token` (a request token during the
/// flow, the access token afterwards) when there is one.
pub(crate) fn oauth1_credentials(
    element: &ElementDefinition,
    config: &ConfigMap,
    token: Option<(String, Secret)>,
) -> OAuth1Credentials {
    let (token, token_secret) = token.unzip();
    OAuth1Credentials {
        consumer_key: value(config, keys::API_KEY),
        consumer_secret: Secret::new(value(config, keys::API_SECRET)),
        token,
        token_secret,
        method: element
            .oauth1
            .as_ref()
            .map(|o| o.signature_method)
            .unwrap_or_default(),
    }
}

/// The stored credentials of an instance whose element is not OAuth 2.0; `None` for an
/// OAuth 2.0 element, which calls with its access token.
pub(crate) fn static_auth(
    element: &ElementDefinition,
    config: &ConfigMap,
) -> Result<Option<StaticAuth>, ServiceError> {
    match element.authentication.kind {
        AuthenticationType::Oauth2 => Ok(None),
        AuthenticationType::Oauth1 => {
            let token = value(config, keys::USER_TOKEN);
            if token.is_empty() {
                return Err(ServiceError::MissingConfiguration(vec![
                    keys::USER_TOKEN.to_owned(),
                ]));
            }
            let secret = Secret::new(value(config, keys::USER_TOKEN_SECRET));
            Ok(Some(StaticAuth::OAuth1(oauth1_credentials(
                element,
                config,
                Some((token, secret)),
            ))))
        }
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom => {
            Ok(Some(StaticAuth::Rendered(rendered(element, config)?)))
        }
    }
}

impl Services {
    /// Makes the element's validation call (its ping) with credentials that are not
    /// stored yet: provisioning stores nothing the provider refuses.
    pub(crate) async fn validate_credentials(
        &self,
        element: &ElementDefinition,
        config: &ConfigMap,
    ) -> Result<(), ServiceError> {
        let Some(path) = element.ping.as_deref() else {
            return Ok(());
        };
        let Some(auth) = static_auth(element, config)? else {
            return Ok(());
        };
        let base = value(config, keys::BASE_URL);
        if base.trim().is_empty() {
            return Err(ServiceError::MissingConfiguration(vec![
                keys::BASE_URL.to_owned(),
            ]));
        }
        let mut url = self
            .outbound
            .check_url("base.url", &format!("{}{path}", base.trim_end_matches('/')))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        CallParameters::of(element, config)?.apply(&mut url, &mut headers);
        let empty = ProxyBody::Buffered(bytes::Bytes::new());
        authorize(
            &auth.as_provider_auth(),
            &Method::GET,
            &mut url,
            &mut headers,
            &empty,
        )?;
        let request = self.outbound.request(Method::GET, url).headers(headers);
        let (status, body) = self.outbound.send(request).await?;
        if status.is_success() {
            return Ok(());
        }
        tracing::info!(element = %element.key, status = status.as_u16(), "the provider refused the credentials at provisioning");
        let status = status.as_u16();
        if status >= 500 {
            return Err(ServiceError::Provider(OAuthError::Provider {
                status,
                error: None,
                description: provider_message(&body),
            }));
        }
        Err(ServiceError::CredentialsRefused {
            status,
            provider_message: provider_message(&body),
        })
    }
}
