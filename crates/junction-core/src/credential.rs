//! How an element that is not an OAuth 2.0 authorization-code element authenticates:
//! configuration values placed into each provider call (HTTP basic, an API key in a
//! header or query parameter, any templated header), the OAuth 2.0 client-credentials
//! grant, and OAuth 1.0a (RFC 5849).
//!
//! Templates name configuration keys in braces, as Cloud Elements' configuration values
//! do (`Bearer {api.key}`), so a provider's scheme is data, never code.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One credential placed on every provider call of an instance.
///
/// ```yaml
/// credentials:
///   - {in: basic, username: "{username}", password: "{password}"}
///   - {in: header, name: Authorization, value: "Bearer {api.key}"}
///   - {in: query, name: api_key, value: "{api.key}"}
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "in", rename_all = "camelCase", deny_unknown_fields)]
pub enum CredentialTemplate {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: String,
        #[serde(default)]
        password: String,
    },
    /// A request header.
    Header { name: String, value: String },
    /// A query parameter.
    Query { name: String, value: String },
}

/// A credential with its configuration values filled in, ready for a request.
#[derive(Clone, PartialEq, Eq)]
pub enum RenderedCredential {
    Basic { username: String, password: String },
    Header { name: String, value: String },
    Query { name: String, value: String },
}

impl std::fmt::Debug for RenderedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Rendered values are secrets: only where they go is printed.
        match self {
            Self::Basic { .. } => f.write_str("RenderedCredential::Basic(********)"),
            Self::Header { name, .. } => write!(f, "RenderedCredential::Header({name}: ********)"),
            Self::Query { name, .. } => write!(f, "RenderedCredential::Query({name}=********)"),
        }
    }
}

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template names a configuration key the instance has no value for.
    #[error("missing configuration: {0}")]
    Missing(String),
    /// An opening brace without its closing one.
    #[error("unclosed '{{' in a credential template")]
    Unclosed,
}

impl CredentialTemplate {
    /// The configuration keys this template reads.
    pub fn keys(&self) -> Vec<String> {
        let texts: Vec<&str> = match self {
            Self::Basic { username, password } => vec![username, password],
            Self::Header { value, .. } | Self::Query { value, .. } => vec![value],
        };
        texts
            .into_iter()
            .flat_map(|t| placeholders(t).unwrap_or_default())
            .collect()
    }

    /// Fills the template in from `config` (values by configuration key).
    pub fn render(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<RenderedCredential, TemplateError> {
        Ok(match self {
            Self::Basic { username, password } => RenderedCredential::Basic {
                username: fill(username, config)?,
                password: fill(password, config)?,
            },
            Self::Header { name, value } => RenderedCredential::Header {
                name: name.clone(),
                value: fill(value, config)?,
            },
            Self::Query { name, value } => RenderedCredential::Query {
                name: name.clone(),
                value: fill(value, config)?,
            },
        })
    }
}

/// The keys named in braces in `template`, in order.
pub fn placeholders(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut keys = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        keys.push(after[..close].trim().to_owned());
        rest = &after[close + 1..];
    }
    Ok(keys)
}

/// `template` with every `{key}` replaced by the configuration value of `key`.
pub fn fill(template: &str, config: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        let key = after[..close].trim();
        let value = config
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| TemplateError::Missing(key.to_owned()))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The OAuth 2.0 grant an element's instances are provisioned with.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OAuthGrant {
    /// The customer authorizes at the provider; Junction exchanges the returned code.
    #[default]
    AuthorizationCode,
    /// Junction obtains (and renews) tokens itself with the client id and secret
    /// (`oauth.api.key`, `oauth.api.secret`) at `oauth.token.url`: no customer redirect.
    ClientCredentials,
}

/// OAuth 1.0a (RFC 5849). The endpoints are configuration entries, as for OAuth 2.0:
/// `oauth.request.url` (temporary credentials), `oauth.authorization.url` and
/// `oauth.token.url` (token credentials); the consumer key and secret are
/// `oauth.api.key` and `oauth.api.secret`; the token and its secret land in
/// `oauth.user.token` and `oauth.user.token.secret`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth1Spec {
    #[serde(default)]
    pub signature_method: SignatureMethod,
    /// Extra query parameters of the authorization URL (Trello's `name`, `scope`,
    /// `expiration`), as templates over configuration.
    #[serde(default)]
    pub authorization_parameters: BTreeMap<String, String>,
    /// The hosts the OAuth 1.0a and API URLs may name, as `oauth.allowedHosts`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum SignatureMethod {
    #[default]
    #[serde(rename = "HMAC-SHA1")]
    HmacSha1,
    #[serde(rename = "HMAC-SHA256")]
    HmacSha256,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn templates_are_filled_from_configuration() {
        let t: CredentialTemplate = serde_json::from_str(
            r#"{"in":"header","name":"Authorization","value":"Bearer {api.key}"}"#,
        )
        .unwrap();
        assert_eq!(
            t.render(&config(&[("api.key", "k-1")])).unwrap(),
            RenderedCredential::Header {
                name: "Authorization".into(),
                value: "Bearer k-1".into()
            }
        );
        assert_eq!(t.keys(), vec!["api.key".to_owned()]);
    }

    #[test]
    fn a_missing_or_empty_value_names_its_key() {
        let t = CredentialTemplate::Basic {
            username: "{username}".into(),
            password: "{password}".into(),
        };
        let err = t
            .render(&config(&[("username", "u"), ("password", "")]))
            .unwrap_err();
        assert_eq!(err, TemplateError::Missing("password".into()));
    }

    #[test]
    fn an_unclosed_brace_is_an_error_not_a_literal() {
        assert_eq!(
            fill("Bearer {api.key", &config(&[])),
            Err(TemplateError::Unclosed)
        );
    }

    #[test]
    fn rendered_credentials_never_print_their_values() {
        let r = RenderedCredential::Header {
            name: "X-Api-Key".into(),
            value: "s3cr3t".into(),
        };
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }
}
