//! The element catalog.
//!
//! Each element is one YAML file under `elements/` at the repository root, embedded in the
//! binary at build time. Shared configuration entries (the OAuth 2.0 and event keys every
//! element carries) live in `elements/common/` and are merged in by name through an
//! element's `uses:` list. Loading validates the whole catalog (unique keys and ids,
//! required OAuth URLs, references between entries), so a bad file fails the build's
//! tests and Junction's start, never a customer's request.

use include_dir::{Dir, include_dir};
use junction_core::credential::{CredentialTemplate, OAuthGrant, placeholders};
use junction_core::element::{AuthenticationType, ElementDefinition};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

static ELEMENTS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../elements");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &str, message: impl Into<String>) -> CatalogError {
    CatalogError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A validated, immutable set of elements, addressable by key or numeric id.
#[derive(Debug)]
pub struct Catalog {
    elements: Vec<Arc<ElementDefinition>>,
    by_key: HashMap<String, usize>,
    by_id: HashMap<i64, usize>,
}

/// Configuration entries as raw YAML mappings, so that a later layer can override some
/// fields of an entry and inherit the rest.
type Entries = Vec<serde_norway::Mapping>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    configuration: Entries,
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Result<Self, CatalogError> {
        let mut fragments = BTreeMap::new();
        if let Some(common) = ELEMENTS.get_dir("common") {
            for file in common.files() {
                let path = file.path().display().to_string();
                let name = file_stem(&path);
                let text = file
                    .contents_utf8()
                    .ok_or_else(|| invalid(&path, "is not UTF-8"))?;
                let fragment: Fragment =
                    serde_norway::from_str(text).map_err(|e| invalid(&path, e.to_string()))?;
                fragments.insert(name, fragment.configuration);
            }
        }
        let mut files = Vec::new();
        for file in ELEMENTS.files() {
            let path = file.path().display().to_string();
            if !path.ends_with(".yaml") {
                continue;
            }
            let text = file
                .contents_utf8()
                .ok_or_else(|| invalid(&path, "is not UTF-8"))?;
            files.push((path, text.to_owned()));
        }
        Self::from_sources(&fragments, files)
    }

    fn from_sources(
        fragments: &BTreeMap<String, Entries>,
        files: Vec<(String, String)>,
    ) -> Result<Self, CatalogError> {
        let mut elements = Vec::new();
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (path, text) in files {
            let mut document: serde_norway::Value =
                serde_norway::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
            merge_fragments(&path, &mut document, fragments)?;
            let element: ElementDefinition =
                serde_norway::from_value(document).map_err(|e| invalid(&path, e.to_string()))?;
            if file_stem(&path) != element.key {
                return Err(invalid(
                    &path,
                    format!("file name must be the element key '{}.yaml'", element.key),
                ));
            }
            validate(&path, &element)?;
            let index = elements.len();
            if by_key.insert(element.key.clone(), index).is_some() {
                return Err(invalid(&path, format!("duplicate key '{}'", element.key)));
            }
            if by_id.insert(element.id, index).is_some() {
                return Err(invalid(&path, format!("duplicate id {}", element.id)));
            }
            elements.push(Arc::new(element));
        }
        Ok(Self {
            elements,
            by_key,
            by_id,
        })
    }

    /// Finds an element by key (`sfdc`) or numeric id (`23`), as `{keyOrId}` routes do.
    pub fn get(&self, key_or_id: &str) -> Option<&Arc<ElementDefinition>> {
        let index = match self.by_key.get(key_or_id) {
            Some(i) => Some(*i),
            None => key_or_id
                .parse::<i64>()
                .ok()
                .and_then(|id| self.by_id.get(&id).copied()),
        };
        index.and_then(|i| self.elements.get(i))
    }

    pub fn get_by_id(&self, id: i64) -> Option<&Arc<ElementDefinition>> {
        self.by_id.get(&id).and_then(|i| self.elements.get(*i))
    }

    /// Every element, ordered by id.
    pub fn list(&self) -> Vec<&Arc<ElementDefinition>> {
        let mut all: Vec<_> = self.elements.iter().collect();
        all.sort_by_key(|e| e.id);
        all
    }
}

fn file_stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_end_matches(".yaml").to_owned()
}

/// Builds the element's configuration from its `uses:` fragments and its own entries.
/// Later layers win field by field: an element that overrides only an entry's `default`
/// keeps the fragment's name, type and validation.
fn merge_fragments(
    path: &str,
    document: &mut serde_norway::Value,
    fragments: &BTreeMap<String, Entries>,
) -> Result<(), CatalogError> {
    let uses: Vec<String> = match document.get("uses") {
        Some(v) => {
            serde_norway::from_value(v.clone()).map_err(|e| invalid(path, format!("uses: {e}")))?
        }
        None => Vec::new(),
    };
    let own: Entries = match document.get("configuration") {
        Some(v) => serde_norway::from_value(v.clone())
            .map_err(|e| invalid(path, format!("configuration: {e}")))?,
        None => Vec::new(),
    };
    let mut layers: Vec<&Entries> = Vec::new();
    for name in &uses {
        layers.push(
            fragments
                .get(name)
                .ok_or_else(|| invalid(path, format!("uses unknown fragment '{name}'")))?,
        );
    }
    layers.push(&own);
    let key_of =
        |m: &serde_norway::Mapping| m.get("key").and_then(|k| k.as_str()).map(str::to_owned);
    let mut merged: Entries = Vec::new();
    for entry in layers.into_iter().flatten() {
        let key = key_of(entry).ok_or_else(|| invalid(path, "a configuration entry has no key"))?;
        match merged
            .iter_mut()
            .find(|m| key_of(m).as_deref() == Some(key.as_str()))
        {
            Some(slot) => {
                for (field, value) in entry {
                    slot.insert(field.clone(), value.clone());
                }
            }
            None => merged.push(entry.clone()),
        }
    }
    if let Some(map) = document.as_mapping_mut() {
        map.insert(
            "configuration".into(),
            serde_norway::Value::Sequence(
                merged
                    .into_iter()
                    .map(serde_norway::Value::Mapping)
                    .collect(),
            ),
        );
    }
    Ok(())
}

fn validate(path: &str, e: &ElementDefinition) -> Result<(), CatalogError> {
    if e.key.is_empty()
        || !e
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(invalid(path, "key must be lowercase letters and digits"));
    }
    if e.id <= 0 {
        return Err(invalid(path, "id must be a positive number"));
    }
    let mut seen = std::collections::HashSet::new();
    for entry in &e.configuration {
        if !seen.insert(entry.key.as_str()) {
            return Err(invalid(
                path,
                format!("configuration key '{}' appears twice", entry.key),
            ));
        }
        if entry.required && entry.internal {
            return Err(invalid(
                path,
                format!("'{}' cannot be both required and internal", entry.key),
            ));
        }
    }
    let default_of = |key: &str| e.config_entry(key).and_then(|c| c.default.as_deref());
    for key in ["base.url"] {
        if let Some(value) = default_of(key) {
            check_url(path, key, value)?;
        }
    }
    if e.authentication.kind == AuthenticationType::Oauth2 {
        let oauth = e
            .oauth
            .as_ref()
            .ok_or_else(|| invalid(path, "oauth2 elements need an 'oauth' section"))?;
        // The client-credentials grant has no customer redirect: no authorization URL
        // and no callback.
        let code_flow = oauth.grant == OAuthGrant::AuthorizationCode;
        let urls: &[&str] = if code_flow {
            &["oauth.authorization.url", "oauth.token.url", "base.url"]
        } else {
            &["oauth.token.url", "base.url"]
        };
        for key in urls {
            let value = default_of(key).ok_or_else(|| {
                invalid(path, format!("oauth2 elements need a default for '{key}'"))
            })?;
            check_url(path, key, value)?;
        }
        let required: &[&str] = if code_flow {
            &["oauth.api.key", "oauth.api.secret", "oauth.callback.url"]
        } else {
            &["oauth.api.key", "oauth.api.secret"]
        };
        for key in required {
            if !e.config_entry(key).is_some_and(|c| c.required) {
                return Err(invalid(path, format!("'{key}' must be a required entry")));
            }
        }
        for target in oauth
            .token_response
            .values()
            .chain(oauth.provision.iter().map(|s| &s.into))
        {
            if e.config_entry(target).is_none() {
                return Err(invalid(
                    path,
                    format!(
                        "'{target}' is written at provisioning but not declared in configuration"
                    ),
                ));
            }
        }
        if oauth.scope_separator.is_empty() {
            return Err(invalid(path, "scopeSeparator cannot be empty"));
        }
        for pattern in &oauth.allowed_hosts {
            if !junction_core::element::is_host_pattern(pattern) {
                return Err(invalid(
                    path,
                    format!("allowedHosts: '{pattern}' is not a host name or '*.domain'"),
                ));
            }
        }
        // The element's own defaults must pass its pins, or no instance could start.
        for key in urls {
            let host = default_of(key)
                .and_then(|v| url::Url::parse(v).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if !oauth.allows_host(&host) {
                return Err(invalid(
                    path,
                    format!(
                        "the default of '{key}' is on '{host}', which allowedHosts does not allow"
                    ),
                ));
            }
        }
    }
    validate_credentials(path, e)?;
    Ok(())
}

/// `basic`, `apiKey` and `custom` elements place declared secret configuration values
/// with their `credentials` templates; OAuth 1.0a elements name their three endpoints.
fn validate_credentials(path: &str, e: &ElementDefinition) -> Result<(), CatalogError> {
    let default_of = |key: &str| e.config_entry(key).and_then(|c| c.default.as_deref());
    match e.authentication.kind {
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom => {
            if e.credentials.is_empty() {
                return Err(invalid(
                    path,
                    "basic, apiKey and custom elements need 'credentials'",
                ));
            }
            for (n, template) in e.credentials.iter().enumerate() {
                let texts: Vec<&str> = match template {
                    CredentialTemplate::Basic { username, password } => vec![username, password],
                    CredentialTemplate::Header { value, .. }
                    | CredentialTemplate::Query { value, .. } => vec![value],
                };
                for text in texts {
                    let keys = placeholders(text)
                        .map_err(|err| invalid(path, format!("credentials[{n}]: {err}")))?;
                    for key in keys {
                        if e.config_entry(&key).is_none() {
                            return Err(invalid(
                                path,
                                format!("credentials[{n}]: '{key}' is not a configuration entry"),
                            ));
                        }
                    }
                }
                if let CredentialTemplate::Header { name, .. } = template {
                    let token =
                        |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                    if name.is_empty() || !name.bytes().all(token) {
                        return Err(invalid(
                            path,
                            format!("credentials[{n}].name: '{name}' is not a header name"),
                        ));
                    }
                }
            }
        }
        AuthenticationType::Oauth1 => {
            let spec = e
                .oauth1
                .as_ref()
                .ok_or_else(|| invalid(path, "oauth1 elements need an 'oauth1' section"))?;
            for key in [
                "oauth.request.url",
                "oauth.authorization.url",
                "oauth.token.url",
                "base.url",
            ] {
                let value = default_of(key).ok_or_else(|| {
                    invalid(path, format!("oauth1 elements need a default for '{key}'"))
                })?;
                check_url(path, key, value)?;
            }
            for pattern in &spec.allowed_hosts {
                if !junction_core::element::is_host_pattern(pattern) {
                    return Err(invalid(
                        path,
                        format!(
                            "oauth1.allowedHosts: '{pattern}' is not a host name or '*.domain'"
                        ),
                    ));
                }
            }
        }
        AuthenticationType::Oauth2 => {}
    }
    Ok(())
}

fn check_url(path: &str, key: &str, value: &str) -> Result<(), CatalogError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        _ => Err(invalid(
            path,
            format!("default of '{key}' must be an http(s) URL, got '{value}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_ELEMENTS: &[&str] = &[
        "facebookleadads",
        "facebooksocial",
        "instagram",
        "acton",
        "sfdc",
        "sfdcdocuments",
        "sfdcmarketingcloud",
        "sfdcservicecloud",
    ];

    #[test]
    fn embedded_catalog_loads_and_holds_every_seed_element() {
        let catalog = Catalog::embedded().unwrap();
        for key in SEED_ELEMENTS {
            let e = catalog.get(key).unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(catalog.get(&e.id.to_string()).unwrap().key, *key);
            assert!(e.oauth.is_some(), "{key} is an OAuth element");
        }
    }

    #[test]
    fn seed_defaults_match_the_cloud_elements_pages() {
        let catalog = Catalog::embedded().unwrap();
        let default = |key: &str, entry: &str| {
            catalog
                .get(key)
                .and_then(|e| e.config_entry(entry))
                .and_then(|c| c.default.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            default("facebookleadads", "base.url"),
            "https://graph.facebook.com/v2.8"
        );
        assert_eq!(
            default("facebookleadads", "oauth.scope"),
            "manage_pages,ads_management,pages_messaging"
        );
        assert_eq!(
            default("facebookleadads", "oauth.user.refresh_interval"),
            "5183992"
        );
        assert_eq!(default("facebookleadads", "pagination.max"), "200");
        assert_eq!(
            default("instagram", "base.url"),
            "https://api.instagram.com/v1"
        );
        assert_eq!(
            default("sfdc", "oauth.authorization.url"),
            "https://login.salesforce.com/services/oauth2/authorize"
        );
        assert_eq!(default("acton", "oauth.scope"), "PRODUCTION");
    }

    fn load(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
        Catalog::from_sources(
            &BTreeMap::new(),
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        )
    }

    const MINIMAL: &str = "id: 1\nkey: demo\nname: Demo\nhookName: Demo\nhub: crm\ndescription: d\nimage: i\nauthentication: {type: basic}\ncredentials: [{in: header, name: X-Demo, value: demo}]\n";

    #[test]
    fn an_override_keeps_the_fields_it_does_not_name() {
        let fragment: Entries = serde_norway::from_str(
            "- {key: event.vendor.type, name: Event Type, allowed: [webhook, polling]}",
        )
        .unwrap();
        let fragments = BTreeMap::from([("events".to_owned(), fragment)]);
        let text = format!(
            "{MINIMAL}uses: [events]\nconfiguration:\n  - {{key: event.vendor.type, default: polling}}\n"
        );
        let catalog = Catalog::from_sources(&fragments, vec![("demo.yaml".into(), text)]).unwrap();
        let entry = catalog
            .get("demo")
            .unwrap()
            .config_entry("event.vendor.type")
            .unwrap()
            .clone();
        assert_eq!(entry.default.as_deref(), Some("polling"));
        assert_eq!(entry.name, "Event Type");
        assert_eq!(entry.allowed, vec!["webhook", "polling"]);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let other = MINIMAL.replace("key: demo", "key: other");
        let err = load(&[("demo.yaml", MINIMAL), ("other.yaml", &other)]).unwrap_err();
        assert!(err.to_string().contains("duplicate id 1"), "{err}");
    }

    #[test]
    fn file_name_must_match_the_key() {
        let err = load(&[("wrong.yaml", MINIMAL)]).unwrap_err();
        assert!(err.to_string().contains("demo.yaml"), "{err}");
    }

    #[test]
    fn oauth_elements_without_token_url_are_refused() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth2}") + "oauth: {}\n";
        let err = load(&[("demo.yaml", &text)]).unwrap_err();
        assert!(err.to_string().contains("oauth.authorization.url"), "{err}");
    }

    #[test]
    fn host_pins_must_be_host_patterns_that_the_defaults_pass() {
        let oauth = MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + "  - {key: oauth.api.key, name: k, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, required: true}\n"
            + "  - {key: oauth.callback.url, name: c, required: true}\n"
            + "  - {key: oauth.authorization.url, name: a, default: 'https://login.example.com/auth'}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://login.example.com/token'}\n"
            + "  - {key: base.url, name: b, default: 'https://api.example.com'}\n";
        let ok = format!("{oauth}oauth: {{allowedHosts: ['*.example.com']}}\n");
        assert!(load(&[("demo.yaml", &ok)]).is_ok());
        let narrow = format!("{oauth}oauth: {{allowedHosts: [login.example.com]}}\n");
        let err = load(&[("demo.yaml", &narrow)]).unwrap_err();
        assert!(err.to_string().contains("base.url"), "{err}");
        let bad = format!("{oauth}oauth: {{allowedHosts: ['*']}}\n");
        let err = load(&[("demo.yaml", &bad)]).unwrap_err();
        assert!(err.to_string().contains("allowedHosts"), "{err}");
    }

    #[test]
    fn every_seed_element_pins_its_provider_hosts() {
        let catalog = Catalog::embedded().unwrap();
        for key in SEED_ELEMENTS {
            let oauth = catalog.get(key).unwrap().oauth.clone().unwrap();
            assert!(!oauth.allowed_hosts.is_empty(), "{key} pins no host");
            assert!(!oauth.allows_host("evil.example"), "{key}");
        }
        let sfdc = catalog.get("sfdc").unwrap().oauth.clone().unwrap();
        assert!(sfdc.allows_host("acme.my.salesforce.com"));
        assert!(sfdc.allows_host("acme.lightning.force.com"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = format!("{MINIMAL}colour: blue\n");
        assert!(load(&[("demo.yaml", &text)]).is_err());
    }

    #[test]
    fn credential_templates_must_read_declared_entries() {
        let text = MINIMAL.replace(
            "credentials: [{in: header, name: X-Demo, value: demo}]",
            "credentials: [{in: basic, username: \"{username}\", password: \"{pasword}\"}]\nconfiguration:\n  - {key: username, name: u}\n",
        );
        let err = load(&[("demo.yaml", &text)]).unwrap_err().to_string();
        assert!(err.contains("credentials[0]: 'pasword'"), "{err}");
        let none = MINIMAL.replace(
            "credentials: [{in: header, name: X-Demo, value: demo}]\n",
            "",
        );
        let err = load(&[("demo.yaml", &none)]).unwrap_err().to_string();
        assert!(err.contains("need 'credentials'"), "{err}");
        let bad_header = MINIMAL.replace("X-Demo", "'X Demo'");
        let err = load(&[("demo.yaml", &bad_header)]).unwrap_err().to_string();
        assert!(err.contains("is not a header name"), "{err}");
    }

    #[test]
    fn client_credentials_elements_need_no_authorization_url_or_callback() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + "  - {key: oauth.api.key, name: k, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, required: true}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://login.example.com/token'}\n"
            + "  - {key: base.url, name: b, default: 'https://api.example.com'}\n"
            + "oauth: {grant: clientCredentials}\n";
        assert!(load(&[("demo.yaml", &text)]).is_ok());
        let code = text.replace("oauth: {grant: clientCredentials}", "oauth: {}");
        assert!(load(&[("demo.yaml", &code)]).is_err());
    }

    #[test]
    fn oauth1_elements_need_their_three_endpoints() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth1}")
            + "configuration:\n"
            + "  - {key: oauth.authorization.url, name: a, default: 'https://x.example.com/a'}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://x.example.com/t'}\n"
            + "  - {key: base.url, name: b, default: 'https://x.example.com'}\n"
            + "oauth1: {signatureMethod: HMAC-SHA256}\n";
        let err = load(&[("demo.yaml", &text)]).unwrap_err().to_string();
        assert!(err.contains("oauth.request.url"), "{err}");
    }
}
