//! The element catalog.
//!
//! Each element is one YAML file under `elements/` at the repository root, embedded in the
//! binary at build time. Shared configuration entries (the OAuth 2.0 and event keys every
//! element carries) live in `elements/common/` and are merged in by name through an
//! element's `uses:` list. Loading validates the whole catalog (unique keys and ids,
//! required OAuth URLs, references between entries), so a bad file fails the build's
//! tests and Junction's start, never a customer's request.

use include_dir::{Dir, include_dir};
use junction_core::element::{
    AuthenticationType, CUSTOM_ELEMENT_IDS_START, ElementDefinition, ProtocolType,
};
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

/// What is wrong with one element definition: the field's path and the rule it breaks,
/// as in `resources[3].method: must be one of GET, POST, PUT, PATCH, DELETE`. The
/// catalog's files and the Element Builder's JSON get the same words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct DefinitionError {
    pub field: String,
    pub rule: String,
}

fn rule(field: impl Into<String>, rule: impl Into<String>) -> DefinitionError {
    DefinitionError {
        field: field.into(),
        rule: rule.into(),
    }
}

/// The shared fragments compiled into this binary (`elements/common/`).
fn embedded_fragments() -> Result<&'static BTreeMap<String, Entries>, CatalogError> {
    static FRAGMENTS: std::sync::OnceLock<Result<BTreeMap<String, Entries>, String>> =
        std::sync::OnceLock::new();
    FRAGMENTS
        .get_or_init(|| {
            let mut fragments = BTreeMap::new();
            if let Some(common) = ELEMENTS.get_dir("common") {
                for file in common.files() {
                    let path = file.path().display().to_string();
                    let text = file
                        .contents_utf8()
                        .ok_or_else(|| format!("{path}: is not UTF-8"))?;
                    let fragment: Fragment =
                        serde_norway::from_str(text).map_err(|e| format!("{path}: {e}"))?;
                    fragments.insert(file_stem(&path), fragment.configuration);
                }
            }
            Ok(fragments)
        })
        .as_ref()
        .map_err(|message| CatalogError::Invalid {
            path: "elements/common".into(),
            message: message.clone(),
        })
}

/// Reads one element definition the way the catalog reads its files: YAML or JSON text,
/// `uses:` fragments merged in, then [`validate`]d. For element files kept elsewhere
/// (`junction elements validate`).
pub fn parse_definition(text: &str) -> Result<ElementDefinition, DefinitionError> {
    let document: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| rule("(file)", e.to_string()))?;
    definition_from_document(document)
}

/// An element definition from an already parsed document (the Element Builder's JSON
/// body, converted), read exactly as a catalog file is.
pub fn definition_from_document(
    document: serde_norway::Value,
) -> Result<ElementDefinition, DefinitionError> {
    let fragments = embedded_fragments().map_err(|e| rule("uses", e.to_string()))?;
    definition_from(document, fragments)
}

/// An element definition from JSON (the Element Builder's bodies), read exactly as a
/// catalog file is.
pub fn definition_from_json(
    document: &serde_json::Value,
) -> Result<ElementDefinition, DefinitionError> {
    let document =
        serde_norway::to_value(document).map_err(|e| rule("(element)", e.to_string()))?;
    definition_from_document(document)
}

fn definition_from(
    mut document: serde_norway::Value,
    fragments: &BTreeMap<String, Entries>,
) -> Result<ElementDefinition, DefinitionError> {
    if !document.is_mapping() {
        return Err(rule("(element)", "must be an object"));
    }
    merge_fragments(&mut document, fragments)?;
    let element: ElementDefinition = serde_path_to_error::deserialize(document).map_err(|e| {
        let path = e.path().to_string();
        serde_rule(&path, &e.inner().to_string())
    })?;
    validate(&element)?;
    Ok(element)
}

/// serde's words ("unknown variant `FOO`, expected one of `GET`, …") restated as a rule
/// on a field path.
fn serde_rule(path: &str, message: &str) -> DefinitionError {
    let root = path.is_empty() || path == ".";
    let at = |field: &str| {
        if root {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(m, _)| m)
        .trim();
    let plain = |list: &str| list.replace('`', "");
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return rule(at(field), "is required");
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        // The path already ends at the unknown field.
        let field = if path.ends_with(field) {
            path.to_owned()
        } else {
            at(field)
        };
        return rule(field, "is not a field of this object");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((_, expected)) = rest.split_once("expected ")
    {
        let expected = expected.trim_start_matches("one of ");
        return rule(
            if root { "(element)" } else { path },
            format!("must be one of {}", plain(expected)),
        );
    }
    if let Some((got, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        return rule(
            if root { "(element)" } else { path },
            format!("must be {}, got {}", plain(expected), plain(got)),
        );
    }
    rule(if root { "(element)" } else { path }, plain(message))
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
        let fragments = embedded_fragments()?;
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
        Self::from_sources(fragments, files)
    }

    fn from_sources(
        fragments: &BTreeMap<String, Entries>,
        files: Vec<(String, String)>,
    ) -> Result<Self, CatalogError> {
        let mut elements = Vec::new();
        let mut by_key = HashMap::new();
        let mut by_id = HashMap::new();
        for (path, text) in files {
            let document: serde_norway::Value =
                serde_norway::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
            let element =
                definition_from(document, fragments).map_err(|e| invalid(&path, e.to_string()))?;
            if file_stem(&path) != element.key {
                return Err(invalid(
                    &path,
                    format!("file name must be the element key '{}.yaml'", element.key),
                ));
            }
            if element.id >= CUSTOM_ELEMENT_IDS_START {
                return Err(invalid(
                    &path,
                    format!(
                        "id: built-in ids must lie below {CUSTOM_ELEMENT_IDS_START}, where custom element ids start"
                    ),
                ));
            }
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
    document: &mut serde_norway::Value,
    fragments: &BTreeMap<String, Entries>,
) -> Result<(), DefinitionError> {
    let uses: Vec<String> = match document.get("uses") {
        Some(v) => serde_norway::from_value(v.clone()).map_err(|e| rule("uses", e.to_string()))?,
        None => Vec::new(),
    };
    let own: Entries = match document.get("configuration") {
        Some(v) => {
            serde_norway::from_value(v.clone()).map_err(|e| rule("configuration", e.to_string()))?
        }
        None => Vec::new(),
    };
    // A fragment's entry may be overridden; the element naming one key twice is a mistake.
    let mut own_keys = std::collections::HashSet::new();
    for (i, entry) in own.iter().enumerate() {
        if let Some(key) = entry.get("key").and_then(|k| k.as_str())
            && !own_keys.insert(key)
        {
            return Err(rule(
                format!("configuration[{i}].key"),
                format!("'{key}' appears twice"),
            ));
        }
    }
    let mut layers: Vec<&Entries> = Vec::new();
    for name in &uses {
        layers.push(
            fragments
                .get(name)
                .ok_or_else(|| rule("uses", format!("names no known fragment '{name}'")))?,
        );
    }
    layers.push(&own);
    let key_of =
        |m: &serde_norway::Mapping| m.get("key").and_then(|k| k.as_str()).map(str::to_owned);
    let mut merged: Entries = Vec::new();
    for entry in layers.into_iter().flatten() {
        let key = key_of(entry).ok_or_else(|| rule("configuration", "every entry needs a key"))?;
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

/// The rules every element definition follows, wherever it comes from: a catalog file,
/// `junction elements validate`, or the Element Builder (`POST /elements`, its
/// sub-resources). The error names the field by its path.
pub fn validate(e: &ElementDefinition) -> Result<(), DefinitionError> {
    if e.key.is_empty()
        || e.key.len() > MAX_KEY
        || !e
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(rule(
            "key",
            format!("must be 1 to {MAX_KEY} lowercase letters and digits"),
        ));
    }
    if e.id <= 0 {
        return Err(rule("id", "must be a positive number"));
    }
    if e.name.trim().is_empty() {
        return Err(rule("name", "must not be empty"));
    }
    let entry_at = |key: &str| {
        e.configuration
            .iter()
            .position(|c| c.key == key)
            .map_or_else(
                || "configuration".to_owned(),
                |i| format!("configuration[{i}]"),
            )
    };
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in e.configuration.iter().enumerate() {
        if entry.key.trim().is_empty() {
            return Err(rule(format!("configuration[{i}].key"), "must not be empty"));
        }
        if !seen.insert(entry.key.as_str()) {
            return Err(rule(
                format!("configuration[{i}].key"),
                format!("'{}' appears twice", entry.key),
            ));
        }
        if entry.required && entry.internal {
            return Err(rule(
                format!("configuration[{i}]"),
                format!("'{}' cannot be both required and internal", entry.key),
            ));
        }
    }
    let default_of = |key: &str| e.config_entry(key).and_then(|c| c.default.as_deref());
    let check_url = |key: &str, value: &str| match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        _ => Err(rule(
            format!("{}.default", entry_at(key)),
            format!("the default of '{key}' must be an http(s) URL, got '{value}'"),
        )),
    };
    if e.protocol_type == ProtocolType::Http
        && let Some(value) = default_of("base.url")
    {
        check_url("base.url", value)?;
    }
    for (i, resource) in e.resources.iter().enumerate() {
        if !resource.path.starts_with('/') {
            return Err(rule(format!("resources[{i}].path"), "must start with '/'"));
        }
    }
    if e.authentication.kind == AuthenticationType::Oauth2 {
        let oauth = e
            .oauth
            .as_ref()
            .ok_or_else(|| rule("oauth", "oauth2 elements need an 'oauth' section"))?;
        for key in ["oauth.authorization.url", "oauth.token.url", "base.url"] {
            let value = default_of(key).ok_or_else(|| {
                rule(
                    entry_at(key),
                    format!("oauth2 elements need a default for '{key}'"),
                )
            })?;
            check_url(key, value)?;
        }
        for key in ["oauth.api.key", "oauth.api.secret", "oauth.callback.url"] {
            if !e.config_entry(key).is_some_and(|c| c.required) {
                return Err(rule(
                    entry_at(key),
                    format!("'{key}' must be a required entry"),
                ));
            }
        }
        for target in oauth
            .token_response
            .values()
            .chain(oauth.provision.iter().map(|s| &s.into))
        {
            if e.config_entry(target).is_none() {
                return Err(rule(
                    "oauth",
                    format!(
                        "'{target}' is written at provisioning but not declared in configuration"
                    ),
                ));
            }
        }
        if oauth.scope_separator.is_empty() {
            return Err(rule("oauth.scopeSeparator", "cannot be empty"));
        }
        for (i, pattern) in oauth.allowed_hosts.iter().enumerate() {
            if !junction_core::element::is_host_pattern(pattern) {
                return Err(rule(
                    format!("oauth.allowedHosts[{i}]"),
                    format!("'{pattern}' is not a host name or '*.domain'"),
                ));
            }
        }
        // The element's own defaults must pass its pins, or no instance could start.
        for key in ["oauth.authorization.url", "oauth.token.url", "base.url"] {
            let host = default_of(key)
                .and_then(|v| url::Url::parse(v).ok())
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            if !oauth.allows_host(&host) {
                return Err(rule(
                    "oauth.allowedHosts",
                    format!(
                        "the default of '{key}' is on '{host}', which allowedHosts does not allow"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Longest element key.
pub const MAX_KEY: usize = 64;

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

    const MINIMAL: &str = "id: 1\nkey: demo\nname: Demo\nhookName: Demo\nhub: crm\ndescription: d\nimage: i\nauthentication: {type: basic}\n";

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
    fn a_bad_definition_names_the_field_path_and_the_rule() {
        let text = format!(
            "{MINIMAL}resources:\n  - {{path: /hubs/crm/a, method: GET, vendorPath: /a}}\n  - {{path: /hubs/crm/b, method: FETCH, vendorPath: /b}}\n"
        );
        let err = parse_definition(&text).unwrap_err();
        assert_eq!(err.field, "resources[1].method", "{err}");
        assert!(err.rule.starts_with("must be one of GET, POST"), "{err}");
        let json = r#"{"id":1,"key":"demo","name":"Demo","hookName":"d","hub":"crm","description":"d","image":"","authentication":{"type":"basic"},"configuration":[{"key":"a","name":"a"},{"key":"a","name":"b"}]}"#;
        let err = parse_definition(json).unwrap_err();
        assert_eq!(err.to_string(), "configuration[1].key: 'a' appears twice");
        let err = parse_definition(&MINIMAL.replace("key: demo", "key: Demo")).unwrap_err();
        assert_eq!(err.field, "key");
        let err = parse_definition(&MINIMAL.replace("name: Demo\n", "")).unwrap_err();
        assert_eq!(err.to_string(), "name: is required");
        let err = parse_definition(&format!("{MINIMAL}oauth: {{colour: blue}}\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "oauth.colour: is not a field of this object"
        );
    }

    #[test]
    fn built_in_ids_stay_below_the_custom_range() {
        let text = MINIMAL.replace("id: 1", "id: 100000");
        let err = load(&[("demo.yaml", &text)]).unwrap_err();
        assert!(err.to_string().contains("below 100000"), "{err}");
    }
}
