//! The element definition: what one catalog data file says about a connector.
//!
//! Everything that differs between providers is described here as data (URLs, scope
//! separators, how the token request is sent, which token-response fields land in which
//! configuration key, what to fetch right after provisioning), so the OAuth and
//! provisioning code has no per-provider branches.

use crate::credential::{CredentialTemplate, OAuth1Spec, OAuthGrant};
use crate::hub::{Hook, ObjectDefinition, Parameter, Resource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// JSON serialized once and written out as is wherever it appears again: an element's
/// summary repeats in every instance of a listing page.
#[derive(Debug, Clone)]
pub struct SharedJson(std::sync::Arc<serde_json::value::RawValue>);

impl SharedJson {
    fn of(value: &impl Serialize) -> Self {
        let raw = serde_json::value::to_raw_value(value)
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
        Self(raw.into())
    }
}

impl Serialize for SharedJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Ids of custom (Element Builder) elements start here; every built-in id lies below, so
/// an instance's element id alone says where its definition lives, and the two kinds can
/// never clash.
pub const CUSTOM_ELEMENT_IDS_START: i64 = 100_000;

/// One element as loaded from its data file (after shared fragments were merged in).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElementDefinition {
    /// `summary()` serialized, made on first use.
    #[serde(skip)]
    summary_json: std::sync::OnceLock<SharedJson>,
    /// A custom element, made through the Element Builder and seen only by the
    /// organization that made it (`private` in its summary). Set before first use.
    #[serde(skip)]
    pub private: bool,
    pub id: i64,
    pub key: String,
    pub name: String,
    pub hook_name: String,
    pub hub: String,
    pub description: String,
    pub image: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub beta: bool,
    #[serde(default)]
    pub type_oauth: bool,
    #[serde(default)]
    pub config_description: Option<String>,
    #[serde(default, rename = "signupURL")]
    pub signup_url: Option<String>,
    pub authentication: Authentication,
    /// Names of shared fragments (`elements/common/<name>.yaml`) whose configuration
    /// entries and resources this element starts from; its own entries override them by
    /// key, its own resources by route (method and path below the hub).
    #[serde(default)]
    pub uses: Vec<String>,
    #[serde(default)]
    pub configuration: Vec<ConfigEntry>,
    #[serde(default)]
    pub oauth: Option<OAuthSpec>,
    /// Path, appended to `base.url`, of a cheap authenticated `GET` that shows the
    /// instance's credentials work: what `GET /hubs/{hub}/ping` calls.
    #[serde(default)]
    pub ping: Option<String>,
    /// `http` (every element Junction calls) or `jdbc` (stored and served by the
    /// Element Builder, never provisioned).
    #[serde(default)]
    pub protocol_type: ProtocolType,
    /// How calls of a `basic`, `apiKey` or `custom` element carry the instance's
    /// credentials (see [`crate::credential`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialTemplate>,
    /// OAuth 1.0a elements: signing and authorization details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth1: Option<OAuth1Spec>,
    /// Parameters every resource of the element sends (spec §6.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Hooks run around every resource call of the element (spec §6.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// The element's hub resources (spec §6.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// The objects its resources read and write (spec §6.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectDefinition>,
    /// How provider webhooks are verified, routed and normalized (spec §4.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<crate::events::EventsSpec>,
    /// Dotted path of the message in the vendor's error bodies, for vendors whose errors
    /// the general extractor misreads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message_path: Option<String>,
    /// The provider's documented request limits, which Junction's calls stay under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<crate::rate::RateLimit>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolType {
    #[default]
    Http,
    Jdbc,
}

impl ProtocolType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Jdbc => "jdbc",
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authentication {
    #[serde(rename = "type")]
    pub kind: AuthenticationType,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub enum AuthenticationType {
    /// OAuth 2.0: the authorization-code grant, or client credentials (`oauth.grant`).
    #[serde(rename = "oauth2")]
    Oauth2,
    /// OAuth 1.0a (RFC 5849), with the `oauth1` block.
    #[serde(rename = "oauth1")]
    Oauth1,
    /// HTTP basic from configuration values (`credentials`).
    #[serde(rename = "basic")]
    Basic,
    /// An API key in a header or query parameter (`credentials`).
    #[serde(rename = "apiKey")]
    ApiKey,
    /// Configuration values templated into headers or parameters (`credentials`).
    #[serde(rename = "custom")]
    Custom,
}

/// One configuration entry of an element (Cloud Elements' configuration object).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigEntry {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: ConfigType,
    /// The caller must supply it when creating an instance.
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub hide_from_console: bool,
    /// Filled by Junction itself (tokens, refresh times), never asked of the caller.
    #[serde(default)]
    pub internal: bool,
    /// Encrypted at rest and masked in every response. `PASSWORD` entries always are.
    #[serde(default)]
    pub secret: bool,
    /// What a value must look like beyond its type (URLs, numbers, JSON).
    #[serde(default)]
    pub format: Option<ConfigFormat>,
    /// The only values accepted, when the entry is an enumeration.
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// Checks applied to a configuration value when an instance is created or updated.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ConfigFormat {
    /// An absolute http(s) URL.
    HttpUrl,
    /// A whole number of zero or more.
    Integer,
    /// A JSON object (sent as an object or as its JSON text).
    JsonObject,
}

impl ConfigEntry {
    pub fn is_secret(&self) -> bool {
        self.secret || self.kind == ConfigType::Password
    }

    /// Checks a value against the entry's type, format and allowed values, and returns
    /// its stored form: booleans become `"true"`/`"false"` however they were written.
    /// The error names the key and says what is expected, never echoing a secret.
    pub fn normalize(&self, value: &str) -> Result<String, String> {
        let key = &self.key;
        let shown = if self.is_secret() { "(hidden)" } else { value };
        if self.kind == ConfigType::Boolean {
            return match value.trim().to_ascii_lowercase().as_str() {
                "true" => Ok("true".into()),
                "false" => Ok("false".into()),
                _ => Err(format!("'{key}' must be true or false, got '{shown}'")),
            };
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == value) {
            return Err(format!(
                "'{key}' must be one of {}, got '{shown}'",
                self.allowed.join(", ")
            ));
        }
        match self.format {
            Some(ConfigFormat::HttpUrl) => {
                let ok = value.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https")
                        && !rest.is_empty()
                        && !rest.starts_with('/')
                        && !value.contains(char::is_whitespace)
                });
                if !ok {
                    return Err(format!("'{key}' must be an http(s) URL, got '{shown}'"));
                }
            }
            Some(ConfigFormat::Integer) => {
                if value.trim().parse::<u64>().is_err() {
                    return Err(format!("'{key}' must be a whole number, got '{shown}'"));
                }
                return Ok(value.trim().to_owned());
            }
            Some(ConfigFormat::JsonObject)
                if !matches!(
                    serde_json::from_str::<serde_json::Value>(value),
                    Ok(serde_json::Value::Object(_))
                ) =>
            {
                return Err(format!("'{key}' must be a JSON object"));
            }
            Some(ConfigFormat::JsonObject) => {}
            None => {}
        }
        Ok(value.to_owned())
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigType {
    #[default]
    #[serde(rename = "TEXTFIELD_128")]
    Textfield128,
    #[serde(rename = "TEXTFIELD_32")]
    Textfield32,
    #[serde(rename = "TEXTFIELD_64")]
    Textfield64,
    #[serde(rename = "TEXTFIELD_1000")]
    Textfield1000,
    Textarea,
    Boolean,
    Password,
}

/// How this element's provider speaks OAuth 2.0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthSpec {
    /// How instances get their tokens: the customer's authorization code (the default)
    /// or the client-credentials grant.
    #[serde(default)]
    pub grant: OAuthGrant,
    /// Joins scopes in the authorization URL and in `oauth.scope`.
    #[serde(default = "space")]
    pub scope_separator: String,
    /// Query parameter(s) that carry the callback URL in the authorization URL: one name
    /// (almost always `redirect_uri`, the default) or a list, each of which gets the URL.
    /// Act-On reads `redirect_uri`, and Cloud Elements' page for it showed `callbackUrl`,
    /// so its file names both.
    #[serde(default)]
    pub callback_parameter: CallbackParameters,
    /// Extra query parameters of the authorization URL, as the provider documents them:
    /// Google's `access_type=offline` and Dropbox's `token_access_type=offline` are what
    /// make them issue a refresh token at all; Atlassian needs `audience`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorization_parameters: BTreeMap<String, String>,
    /// `siteAddress` on the OAuth URL call moves the authorization host (Salesforce
    /// sandboxes and My Domain hosts).
    #[serde(default)]
    pub site_address: bool,
    /// The provider takes PKCE (RFC 7636, S256): an authorization carries a code
    /// challenge, and its code exchange the verifier.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pkce: bool,
    #[serde(default)]
    pub token_request: TokenRequestSpec,
    /// Extra token-response fields copied into configuration keys, e.g.
    /// `instance_url: base.url` for Salesforce.
    #[serde(default)]
    pub token_response: BTreeMap<String, String>,
    /// Provider calls Junction makes right after the code exchange, whose results are
    /// stored in the new instance's configuration.
    #[serde(default)]
    pub provision: Vec<ProvisionStep>,
    /// Where the access token goes on calls to the provider.
    #[serde(default)]
    pub credential: CredentialPlacement,
    /// How the provider renews an access token; absent: it cannot be renewed, and the
    /// customer re-authorizes when it stops working.
    #[serde(default)]
    pub refresh: Option<RefreshSpec>,
    /// The only hosts `base.url`, `oauth.token.url` and `oauth.authorization.url` may
    /// name: `login.example.com`, or `*.example.com` for any host under `example.com`.
    /// Empty: any host. The provider's own answers (`tokenResponse`) and a `siteAddress`
    /// are held to them too.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl OAuthSpec {
    /// How this element's tokens are renewed, if they can be.
    pub fn renewal_grant(&self) -> Option<RefreshGrant> {
        match self.grant {
            crate::credential::OAuthGrant::ClientCredentials => {
                Some(RefreshGrant::ClientCredentials)
            }
            crate::credential::OAuthGrant::AuthorizationCode => {
                self.refresh.as_ref().map(|r| r.grant)
            }
        }
    }

    /// Whether `host` is one the element allows (any host when it pins none).
    pub fn allows_host(&self, host: &str) -> bool {
        self.allowed_hosts.is_empty()
            || self
                .allowed_hosts
                .iter()
                .any(|pattern| host_matches(pattern, host))
    }
}

/// Whether `host` matches `pattern`: the same name, or for `*.example.com` any name
/// ending in `.example.com` (not `example.com` itself). Names compare without case and
/// without a trailing dot.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == pattern,
    }
}

/// Whether `pattern` is a host pin an element may declare: a host name, optionally
/// behind `*.`, with at least two labels after the wildcard.
pub fn is_host_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let labels: Vec<&str> = name.split('.').collect();
    let wildcard = pattern.starts_with("*.");
    (!wildcard || labels.len() >= 2)
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// How an element's access tokens are kept alive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshSpec {
    pub grant: RefreshGrant,
    /// Exchange the code's token for a renewed one right after the code exchange
    /// (Graph's short-lived tokens become long-lived ones).
    #[serde(default)]
    pub after_code_exchange: bool,
    /// Renew at least this often (seconds), even when the access token does not expire:
    /// providers drop refresh tokens left unused (Google after 6 months, Microsoft after
    /// 90 days, Salesforce as the connected app says), and some send no `expires_in` at
    /// all. Only for the `refreshToken` grant, and only while there is a refresh token.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u64,
}

/// A day, as the longest any credential goes unrenewed unless an element says otherwise.
fn default_keep_alive() -> u64 {
    24 * 3600
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RefreshGrant {
    /// RFC 6749 §6: a form POST of `grant_type=refresh_token` to the token URL, with the
    /// client authenticated as `tokenRequest` says. A rotated refresh token replaces the
    /// stored one.
    RefreshToken,
    /// Graph's token extension: GET the token URL with `grant_type=fb_exchange_token`, the
    /// client credentials and the current token as `fb_exchange_token`.
    FbExchangeToken,
    /// RFC 6749 §4.4: a new token for the client id and secret alone. What an element
    /// with `grant: clientCredentials` renews with, whatever `refresh` says.
    ClientCredentials,
}

fn space() -> String {
    " ".into()
}

/// The names the callback URL goes under: a YAML/JSON string or a list of strings. One
/// name serializes back as a string, so definitions read the same after an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OneOrMany", into = "OneOrMany")]
pub struct CallbackParameters(Vec<String>);

impl CallbackParameters {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl Default for CallbackParameters {
    fn default() -> Self {
        Self(vec!["redirect_uri".into()])
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged, expecting = "a parameter name or a list of them")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl TryFrom<OneOrMany> for CallbackParameters {
    type Error = &'static str;

    fn try_from(value: OneOrMany) -> Result<Self, Self::Error> {
        let names = match value {
            OneOrMany::One(name) => vec![name],
            OneOrMany::Many(names) => names,
        };
        if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
            return Err("callbackParameter needs at least one name, and no empty one");
        }
        Ok(Self(names))
    }
}

impl From<CallbackParameters> for OneOrMany {
    fn from(value: CallbackParameters) -> Self {
        let mut names = value.0;
        if names.len() == 1 {
            Self::One(names.remove(0))
        } else {
            Self::Many(names)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequestSpec {
    #[serde(default)]
    pub method: TokenMethod,
    #[serde(default)]
    pub client_authentication: ClientAuthentication,
}

/// Facebook's Graph API documents the code exchange as a GET with query parameters;
/// everyone else uses a form POST (RFC 6749 §4.1.3).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum TokenMethod {
    #[default]
    Post,
    Get,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuthentication {
    /// `client_id` and `client_secret` as request parameters.
    #[default]
    Body,
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    Basic,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialPlacement {
    #[serde(rename = "in")]
    pub location: CredentialLocation,
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

impl Default for CredentialPlacement {
    fn default() -> Self {
        Self {
            location: CredentialLocation::Header,
            name: "Authorization".into(),
            prefix: "Bearer ".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CredentialLocation {
    Header,
    Query,
}

/// A provider call made during provisioning whose answer fills one configuration key:
/// Facebook Lead Ads records the customer's page ids as `id1|id2`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionStep {
    /// Configuration key that receives the result.
    pub into: String,
    /// Path appended to `base.url`.
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Dotted path of the array in the response body (`data`).
    pub items: String,
    /// Field of each array item to collect (`id`).
    pub field: String,
    pub join: String,
    /// Dotted path of the absolute URL of the next page (`paging.next`), if the provider
    /// pages this listing.
    #[serde(default)]
    pub next_page: Option<String>,
}

/// The element object embedded in instance responses and listed by `GET /elements`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElementSummary {
    pub id: i64,
    pub name: String,
    pub hook_name: String,
    pub key: String,
    pub description: String,
    pub image: String,
    pub active: bool,
    pub deleted: bool,
    pub type_oauth: bool,
    pub trial_account: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_description: Option<String>,
    #[serde(rename = "signupURL", skip_serializing_if = "Option::is_none")]
    pub signup_url: Option<String>,
    pub transformations_enabled: bool,
    pub bulk_download_enabled: bool,
    pub bulk_upload_enabled: bool,
    pub cloneable: bool,
    pub extendable: bool,
    pub beta: bool,
    pub authentication: Authentication,
    pub extended: bool,
    pub hub: String,
    #[schema(value_type = String)]
    pub protocol_type: &'static str,
    #[schema(value_type = Vec<Object>)]
    pub parameters: Vec<serde_json::Value>,
    pub private: bool,
}

impl ElementDefinition {
    /// The summary as JSON, serialized once per element.
    pub fn summary_json(&self) -> SharedJson {
        self.summary_json
            .get_or_init(|| SharedJson::of(&self.summary()))
            .clone()
    }

    pub fn summary(&self) -> ElementSummary {
        ElementSummary {
            id: self.id,
            name: self.name.clone(),
            hook_name: self.hook_name.clone(),
            key: self.key.clone(),
            description: self.description.clone(),
            image: self.image.clone(),
            active: self.active,
            deleted: false,
            type_oauth: self.type_oauth,
            trial_account: false,
            config_description: self.config_description.clone(),
            signup_url: self.signup_url.clone(),
            transformations_enabled: false,
            bulk_download_enabled: false,
            bulk_upload_enabled: false,
            cloneable: true,
            extendable: false,
            beta: self.beta,
            authentication: self.authentication.clone(),
            extended: false,
            hub: self.hub.clone(),
            protocol_type: self.protocol_type.as_str(),
            parameters: Vec::new(),
            private: self.private,
        }
    }

    pub fn config_entry(&self, key: &str) -> Option<&ConfigEntry> {
        self.configuration.iter().find(|e| e.key == key)
    }

    /// The value of configuration entry `key` for an instance configured with `values`:
    /// its own value, else the element's default, with every `{other.key}` in it filled
    /// from `values` (or from that entry's default). A provider with a host per customer
    /// says so in data (`https://{zendesk.subdomain}.zendesk.com/api/v2`), as Cloud
    /// Elements' configuration does. `None`: neither a value nor a default. The filled-in
    /// value is the customer's to shape: a URL must pass the element's host pins again.
    pub fn resolve(
        &self,
        key: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<Option<String>, crate::credential::TemplateError> {
        let raw = values
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| self.config_entry(key).and_then(|c| c.default.clone()));
        let Some(raw) = raw else {
            return Ok(None);
        };
        let mut lookup = BTreeMap::new();
        for name in crate::credential::placeholders(&raw)? {
            let value = values
                .get(&name)
                .filter(|v| !v.is_empty())
                .cloned()
                .or_else(|| self.config_entry(&name).and_then(|c| c.default.clone()))
                .ok_or_else(|| crate::credential::TemplateError::Missing(name.clone()))?;
            lookup.insert(name, value);
        }
        crate::credential::fill(&raw, &lookup).map(Some)
    }

    /// Whether a configuration key holds a secret: encrypted at rest, masked on output.
    /// The platform's reserved secrets are secret whatever the element declares: a custom
    /// element's author must not be able to unmask them; a declaration can only make more
    /// keys secret. Keys the element does not declare are secret also when their words
    /// say so ([`crate::config::looks_secret`]).
    pub fn is_secret_key(&self, key: &str) -> bool {
        must_be_secret(key)
            || match self.config_entry(key) {
                Some(entry) => entry.is_secret(),
                None => crate::config::looks_secret(key),
            }
    }
}

/// Whether `key` is a secret whatever an element declares.
pub fn must_be_secret(key: &str) -> bool {
    RESERVED_SECRET_KEYS.contains(&key)
}

/// Configuration keys Cloud Elements reserves for credentials; masked even when an
/// element forgets to declare them.
pub const RESERVED_SECRET_KEYS: &[&str] = &[
    "oauth.api.key",
    "oauth.api.secret",
    "oauth.user.token",
    "oauth.user.refresh_token",
    "oauth.user.token.secret",
    "oauth.app.token",
    "password",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_secrets_stay_secret_whatever_the_element_declares() {
        let e: ElementDefinition = serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "custom"},
            "configuration": [
                {"key": "oauth.user.token", "name": "t", "type": "TEXTFIELD_128"},
                {"key": "oauth.api.secret", "name": "s", "secret": false},
                {"key": "demo.app", "name": "a"},
                {"key": "demo.pin", "name": "p", "type": "PASSWORD"},
            ],
        }))
        .unwrap();
        assert!(e.is_secret_key("oauth.user.token"));
        assert!(e.is_secret_key("oauth.api.secret"));
        assert!(e.is_secret_key("demo.pin"));
        assert!(!e.is_secret_key("demo.app"));
        assert!(
            e.is_secret_key("demo.client_secret"),
            "undeclared, by its words"
        );
    }

    fn entry(yaml: &str) -> ConfigEntry {
        serde_json::from_str(yaml).unwrap()
    }

    #[test]
    fn booleans_are_normalised_and_nonsense_refused() {
        let e = entry(r#"{"key":"event.notification.enabled","name":"n","type":"BOOLEAN"}"#);
        assert_eq!(e.normalize("TRUE").unwrap(), "true");
        assert_eq!(e.normalize("false").unwrap(), "false");
        assert!(
            e.normalize("yes please")
                .unwrap_err()
                .contains("true or false")
        );
    }

    #[test]
    fn formats_and_enumerations_are_enforced() {
        let url = entry(r#"{"key":"cb","name":"n","format":"httpUrl"}"#);
        assert!(url.normalize("https://app.example.com/events").is_ok());
        assert!(url.normalize("ftp://x").is_err());
        assert!(url.normalize("javascript:alert(1)").is_err());
        let num = entry(r#"{"key":"i","name":"n","format":"integer"}"#);
        assert_eq!(num.normalize(" 15 ").unwrap(), "15");
        assert!(num.normalize("-1").is_err());
        let json = entry(r#"{"key":"j","name":"n","format":"jsonObject"}"#);
        assert!(json.normalize(r#"{"contacts":{}}"#).is_ok());
        assert!(json.normalize("[1]").is_err());
        let kind = entry(r#"{"key":"k","name":"n","allowed":["webhook","polling"]}"#);
        assert!(kind.normalize("polling").is_ok());
        assert!(
            kind.normalize("carrier-pigeon")
                .unwrap_err()
                .contains("webhook, polling")
        );
    }

    #[test]
    fn host_pins_match_the_name_or_any_name_below_a_wildcard() {
        assert!(host_matches("*.salesforce.com", "login.salesforce.com"));
        assert!(host_matches("*.salesforce.com", "acme.my.SALESFORCE.com."));
        assert!(!host_matches("*.salesforce.com", "salesforce.com"));
        assert!(!host_matches("*.salesforce.com", "evilsalesforce.com"));
        assert!(!host_matches(
            "*.salesforce.com",
            "salesforce.com.evil.example"
        ));
        assert!(host_matches("graph.facebook.com", "graph.facebook.com"));
        assert!(!host_matches("graph.facebook.com", "x.graph.facebook.com"));
        let spec: OAuthSpec =
            serde_json::from_str(r#"{"allowedHosts":["*.force.com","login.example.com"]}"#)
                .unwrap();
        assert!(spec.allows_host("acme.lightning.force.com"));
        assert!(spec.allows_host("login.example.com"));
        assert!(!spec.allows_host("127.0.0.1"));
        let open: OAuthSpec = serde_json::from_str("{}").unwrap();
        assert!(open.allows_host("anything.example"));
        assert!(is_host_pattern("*.force.com") && is_host_pattern("login.example.com"));
        for bad in [
            "*",
            "*.com",
            "a.*.com",
            "",
            "exa mple.com",
            "https://x.com",
            "*..com",
        ] {
            assert!(!is_host_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn templated_defaults_are_filled_from_the_instance_values_and_other_defaults() {
        let element: ElementDefinition = serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "basic"},
            "configuration": [
                {"key": "base.url", "name": "b",
                 "default": "https://{demo.org}.{demo.region}.example.com/api"},
                {"key": "demo.org", "name": "o", "required": true},
                {"key": "demo.region", "name": "r", "default": "crm"}
            ]
        }))
        .unwrap();
        let values = BTreeMap::from([("demo.org".to_owned(), "acme".to_owned())]);
        assert_eq!(
            element.resolve("base.url", &values).unwrap().as_deref(),
            Some("https://acme.crm.example.com/api")
        );
        let err = element.resolve("base.url", &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            crate::credential::TemplateError::Missing("demo.org".into())
        );
        let own = BTreeMap::from([("base.url".to_owned(), "https://x.example.com".to_owned())]);
        assert_eq!(
            element.resolve("base.url", &own).unwrap().as_deref(),
            Some("https://x.example.com")
        );
        assert_eq!(element.resolve("nothing", &values).unwrap(), None);
    }

    #[test]
    fn secret_values_are_never_echoed_in_errors() {
        let e = entry(r#"{"key":"s","name":"n","type":"PASSWORD","allowed":["a"]}"#);
        assert!(!e.normalize("hunter2").unwrap_err().contains("hunter2"));
    }
}
