//! The element catalog.
//!
//! Each element is one YAML file under `elements/` at the repository root, embedded in the
//! binary at build time. Shared fragments (the OAuth 2.0 and event keys every element
//! carries, the resources a vendor's elements have in common) live in `elements/common/`
//! and are merged in by name through an element's `uses:` list. Loading validates the whole catalog (unique keys and ids,
//! required OAuth URLs, references between entries), so a bad file fails the build's
//! tests and Junction's start, never a customer's request.

mod hubs;

pub use hubs::CUSTOM_HUB_IDS;
use include_dir::{Dir, include_dir};
use junction_core::credential::{CredentialTemplate, OAuthGrant, placeholders};
use junction_core::element::{
    AuthenticationType, CUSTOM_ELEMENT_IDS_START, ElementDefinition, ProtocolType, must_be_secret,
};
use junction_core::hub::{
    CEQL_OPERATORS, HubDefinition, PageSizeIn, PagingStyle, ParameterType, Resource, Translation,
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
    /// The built-in hubs the elements name, ordered by id.
    hubs: Vec<HubDefinition>,
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
fn embedded_fragments() -> Result<&'static BTreeMap<String, Fragment>, CatalogError> {
    static FRAGMENTS: std::sync::OnceLock<Result<BTreeMap<String, Fragment>, String>> =
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
                    let fragment = Fragment::parse(text).map_err(|e| format!("{path}: {e}"))?;
                    fragments.insert(file_stem(&path), fragment);
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
    fragments: &BTreeMap<String, Fragment>,
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

/// One shared fragment (`elements/common/<name>.yaml`): what an element naming it under
/// `uses:` starts from.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fragment {
    #[serde(default)]
    configuration: Entries,
    /// Hub resources, kept raw like the entries. A fragment serves elements of several
    /// hubs, so its paths name none (`/query`): each lands under the hub of the element
    /// that uses it (`/hubs/crm/query`).
    #[serde(default)]
    resources: Vec<serde_norway::Mapping>,
}

impl Fragment {
    /// A fragment file, with its resources' routes checked: each is a path below the
    /// hub and a method, declared once.
    fn parse(text: &str) -> Result<Self, String> {
        let fragment: Self = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for (i, resource) in fragment.resources.iter().enumerate() {
            let path = resource
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            if !path.starts_with('/') || path.starts_with("/hubs/") {
                return Err(format!(
                    "resources[{i}].path: must be a path below the hub, such as '/query' \
                     (the element's hub is put in front), got '{path}'"
                ));
            }
            let route = route_of(resource)
                .ok_or_else(|| format!("resources[{i}]: needs a path and a method"))?;
            if !seen.insert(route) {
                return Err(format!(
                    "resources[{i}]: {} {path} is declared twice",
                    route_method(resource)
                ));
            }
        }
        Ok(fragment)
    }
}

/// What routing tells resources apart by: the method, and the path below
/// `/hubs/<hub>` with every `{placeholder}` alike (`/contacts/{id}` and
/// `/contacts/{contactId}` are one route).
fn route_of(resource: &serde_norway::Mapping) -> Option<(String, String)> {
    let path = resource.get("path")?.as_str()?;
    resource.get("method")?.as_str()?;
    let below_hub = path
        .strip_prefix("/hubs/")
        .map_or(path, |rest| rest.find('/').map_or("", |i| &rest[i..]));
    let segments: Vec<&str> = below_hub
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect();
    Some((route_method(resource), segments.join("/")))
}

fn route_method(resource: &serde_norway::Mapping) -> String {
    resource
        .get("method")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned()
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
        let mut catalog = Self::from_sources(fragments, files)?;
        let hubs = ELEMENTS
            .get_file(hubs::HUBS_FILE)
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| invalid(hubs::HUBS_FILE, "is missing or not UTF-8"))?;
        catalog.hubs = hubs::load(hubs, &catalog.elements)?;
        Ok(catalog)
    }

    fn from_sources(
        fragments: &BTreeMap<String, Fragment>,
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
            hubs: Vec::new(),
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

    /// The built-in hubs, ordered by id.
    pub fn hubs(&self) -> &[HubDefinition] {
        &self.hubs
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

/// Builds the element's configuration and resources from its `uses:` fragments and its
/// own.
///
/// Configuration: later layers win field by field, so an element that overrides only an
/// entry's `default` keeps the fragment's name, type and validation.
///
/// Resources: the fragments' come first, each under the element's hub, then the
/// element's own. An element's resource with the same route (method and path below the
/// hub) as a fragment's replaces it whole, in its place: a mapping is not merged field by
/// field. Two fragments declaring one route is a mistake, refused naming both.
fn merge_fragments(
    document: &mut serde_norway::Value,
    fragments: &BTreeMap<String, Fragment>,
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
    let mut used: Vec<(&str, &Fragment)> = Vec::new();
    for name in &uses {
        let fragment = fragments
            .get(name)
            .ok_or_else(|| rule("uses", format!("names no known fragment '{name}'")))?;
        used.push((name, fragment));
    }
    merge_resources(document, &used)?;
    let mut layers: Vec<&Entries> = used.iter().map(|(_, f)| &f.configuration).collect();
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

/// The resources part of [`merge_fragments`]. The element's own list is left as written
/// when no fragment brings any, and when it is not a list, for serde to name the mistake.
fn merge_resources(
    document: &mut serde_norway::Value,
    used: &[(&str, &Fragment)],
) -> Result<(), DefinitionError> {
    if used.iter().all(|(_, f)| f.resources.is_empty()) {
        return Ok(());
    }
    let own = match document.get("resources") {
        None => Vec::new(),
        Some(serde_norway::Value::Sequence(own)) => own.clone(),
        Some(_) => return Ok(()),
    };
    // Without a hub serde refuses the element anyway; the paths stay as the fragment has them.
    let hub = document
        .get("hub")
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    // Each merged resource, with the fragment it came from while no own one replaced it.
    let mut merged: Vec<(Option<&str>, serde_norway::Value)> = Vec::new();
    for (name, fragment) in used {
        for resource in &fragment.resources {
            let route = route_of(resource);
            if let Some((other, _)) = merged
                .iter()
                .find(|(_, m)| route.is_some() && m.as_mapping().and_then(route_of) == route)
            {
                let path = resource
                    .get("path")
                    .and_then(|p| p.as_str())
                    .unwrap_or_default();
                return Err(rule(
                    "uses",
                    format!(
                        "fragments '{}' and '{name}' both declare {} {path}; use one of them",
                        other.unwrap_or_default(),
                        route_method(resource)
                    ),
                ));
            }
            let mut resource = resource.clone();
            if let (Some(hub), Some(path)) = (&hub, resource.get("path").and_then(|p| p.as_str())) {
                let path = format!("/hubs/{hub}{path}");
                resource.insert("path".into(), path.into());
            }
            merged.push((Some(*name), serde_norway::Value::Mapping(resource)));
        }
    }
    for resource in own {
        let route = resource.as_mapping().and_then(route_of);
        let slot = route.as_ref().and_then(|route| {
            merged.iter_mut().find(|(from, m)| {
                from.is_some() && m.as_mapping().and_then(route_of).as_ref() == Some(route)
            })
        });
        match slot {
            Some(slot) => *slot = (None, resource),
            None => merged.push((None, resource)),
        }
    }
    if let Some(map) = document.as_mapping_mut() {
        map.insert(
            "resources".into(),
            serde_norway::Value::Sequence(merged.into_iter().map(|(_, r)| r).collect()),
        );
    }
    Ok(())
}

/// Configuration entries whose defaults may name other entries in braces, the way Cloud
/// Elements' configuration does: a provider with a host per customer (a Zendesk subdomain,
/// a Shopify shop, a NetSuite account) is described as
/// `https://{zendesk.subdomain}.zendesk.com/api/v2`, filled from the instance's own values
/// ([`ElementDefinition::resolve`]).
pub const TEMPLATED_KEYS: &[&str] = &[
    keys::BASE_URL,
    keys::AUTHORIZATION_URL,
    keys::TOKEN_URL,
    keys::REQUEST_URL,
    keys::SCOPE,
];

/// Configuration keys used by validation and by every element.
pub mod keys {
    pub const BASE_URL: &str = "base.url";
    pub const AUTHORIZATION_URL: &str = "oauth.authorization.url";
    pub const TOKEN_URL: &str = "oauth.token.url";
    pub const REQUEST_URL: &str = "oauth.request.url";
    pub const SCOPE: &str = "oauth.scope";
    pub const API_KEY: &str = "oauth.api.key";
    pub const API_SECRET: &str = "oauth.api.secret";
    pub const CALLBACK_URL: &str = "oauth.callback.url";
    pub const EVENT_VENDOR_TYPE: &str = "event.vendor.type";
}

/// Query parameters the authorization URL sets itself; an element cannot override them.
const RESERVED_AUTHORIZATION_PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
];

/// The value a required entry without a default stands for when a definition is checked
/// (and in the golden files): a plausible host label, so templated URLs can be checked.
pub const SAMPLE_VALUE: &str = "tenant";

/// The configuration an instance would have if every required entry without a default were
/// given [`SAMPLE_VALUE`] and nothing else were set: defaults are resolved from it.
pub fn sample_configuration(e: &ElementDefinition) -> BTreeMap<String, String> {
    e.configuration
        .iter()
        .filter_map(|c| match (&c.default, c.required) {
            (Some(d), _) => Some((c.key.clone(), d.clone())),
            (None, true) => Some((c.key.clone(), SAMPLE_VALUE.to_owned())),
            (None, false) => None,
        })
        .collect()
}

/// Longest element key.
pub const MAX_KEY: usize = 64;

/// The field path of the configuration entry `key` (`configuration[3]`), or of the list
/// when the element does not declare it.
fn entry_at(e: &ElementDefinition, key: &str) -> String {
    e.configuration
        .iter()
        .position(|c| c.key == key)
        .map_or_else(
            || "configuration".to_owned(),
            |i| format!("configuration[{i}]"),
        )
}

/// The rules every element definition follows, wherever it comes from: a catalog file,
/// `junction elements validate`, or the Element Builder (`POST /elements`, its
/// sub-resources). The error names the field by its path. Whether the hub it names exists
/// depends on where it is kept (the catalog's hub list, or also the organization's own
/// hubs), so that is checked by whoever keeps it.
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
        if must_be_secret(&entry.key) && !entry.is_secret() {
            return Err(rule(
                format!("configuration[{i}].type"),
                format!(
                    "'{}' holds a credential: declare it PASSWORD (or secret: true)",
                    entry.key
                ),
            ));
        }
        if entry.is_secret() && entry.default.is_some() {
            return Err(rule(
                format!("configuration[{i}].default"),
                format!(
                    "'{}' is a secret: a default would be stored and served in clear",
                    entry.key
                ),
            ));
        }
        if entry.required && entry.internal {
            return Err(rule(
                format!("configuration[{i}]"),
                format!("'{}' cannot be both required and internal", entry.key),
            ));
        }
        // A default the entry's own checks refuse could never be stored; templated ones
        // are checked once filled in, below.
        if let Some(default) = &entry.default
            && !TEMPLATED_KEYS.contains(&entry.key.as_str())
            && let Err(message) = entry.normalize(default)
        {
            return Err(rule(format!("configuration[{i}].default"), message));
        }
    }
    let sample = sample_configuration(e);
    for key in TEMPLATED_KEYS {
        check_template(e, key)?;
    }
    let resolved = |key: &str| e.resolve(key, &sample).ok().flatten();
    if let Some(ping) = &e.ping
        && !ping.starts_with('/')
    {
        return Err(rule(
            "ping",
            format!("must be a path starting with '/', got '{ping}'"),
        ));
    }
    for (i, resource) in e.resources.iter().enumerate() {
        if !resource.path.starts_with('/') {
            return Err(rule(format!("resources[{i}].path"), "must start with '/'"));
        }
        validate_resource(i, resource)?;
    }
    validate_rate_limits(e)?;
    if e.authentication.kind != AuthenticationType::Oauth2 && e.oauth.is_some() {
        return Err(rule(
            "oauth",
            "only oauth2 elements have an 'oauth' section",
        ));
    }
    if e.authentication.kind != AuthenticationType::Oauth1 && e.oauth1.is_some() {
        return Err(rule(
            "oauth1",
            "only oauth1 elements have an 'oauth1' section",
        ));
    }
    let uses_credentials = matches!(
        e.authentication.kind,
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom
    );
    if !uses_credentials && !e.credentials.is_empty() {
        return Err(rule(
            "credentials",
            "only basic, apiKey and custom elements have 'credentials'",
        ));
    }
    // A JDBC definition is stored and served, never called: what it would send where is
    // not Junction's to check.
    if e.protocol_type == ProtocolType::Jdbc {
        return Ok(());
    }
    match e.authentication.kind {
        AuthenticationType::Oauth2 => validate_oauth2(e, &sample)?,
        AuthenticationType::Oauth1 => validate_oauth1(e, &sample)?,
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom => {
            validate_credentials(e)?
        }
    }
    validate_parameters(e)?;
    let base = resolved(keys::BASE_URL).ok_or_else(|| {
        rule(
            entry_at(e, keys::BASE_URL),
            "http elements need a default for 'base.url'",
        )
    })?;
    check_url(e, keys::BASE_URL, &base)?;
    Ok(())
}

/// Most limits one element may declare.
const MAX_RATE_LIMITS: usize = 8;
/// Shortest and longest windows a limit may name: pacing finer than a tenth of a second
/// is lost in network jitter, and no provider documents a window past a month.
const MIN_RATE_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
const MAX_RATE_PERIOD: std::time::Duration = std::time::Duration::from_secs(31 * 86_400);
/// Longest `maxWait`: a caller is never held for more than an hour.
const MAX_RATE_WAIT: std::time::Duration = std::time::Duration::from_secs(3_600);

fn validate_rate_limits(e: &ElementDefinition) -> Result<(), DefinitionError> {
    if e.rate_limits.len() > MAX_RATE_LIMITS {
        return Err(rule(
            "rateLimits",
            format!("at most {MAX_RATE_LIMITS} limits"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, limit) in e.rate_limits.iter().enumerate() {
        let at = |field: &str| format!("rateLimits[{i}].{field}");
        if limit.requests == 0 {
            return Err(rule(at("requests"), "must be at least 1"));
        }
        if limit.per.0 < MIN_RATE_PERIOD || limit.per.0 > MAX_RATE_PERIOD {
            return Err(rule(at("per"), "must be between 0.1 seconds and 31 days"));
        }
        if let Some(burst) = limit.burst
            && (burst == 0 || burst > limit.requests)
        {
            return Err(rule(
                at("burst"),
                format!("must be between 1 and requests ({})", limit.requests),
            ));
        }
        if limit.max_wait.is_some_and(|w| w.0 > MAX_RATE_WAIT) {
            return Err(rule(at("maxWait"), "must be at most 3600 seconds"));
        }
        if !seen.insert((limit.scope, limit.per)) {
            return Err(rule(
                format!("rateLimits[{i}]"),
                format!(
                    "a second {} limit per {}: declare the stricter one only",
                    limit.scope.as_str(),
                    limit.per
                ),
            ));
        }
    }
    Ok(())
}

/// A templated default names only entries an instance will have a value for, that are
/// neither secret (URLs end up in logs) nor internal, and that are not templates
/// themselves.
fn check_template(e: &ElementDefinition, key: &str) -> Result<(), DefinitionError> {
    let Some(default) = e.config_entry(key).and_then(|c| c.default.as_deref()) else {
        return Ok(());
    };
    let field = format!("{}.default", entry_at(e, key));
    let names = placeholders(default).map_err(|err| rule(&field, err.to_string()))?;
    for name in names {
        let entry = e.config_entry(&name).ok_or_else(|| {
            rule(
                &field,
                format!("names '{{{name}}}', which is not a configuration entry"),
            )
        })?;
        let problem = if entry.is_secret() {
            Some("is a secret")
        } else if entry.internal {
            Some("is internal")
        } else if !entry.required && entry.default.is_none() {
            Some("is neither required nor has a default")
        } else if entry.default.as_deref().is_some_and(|d| d.contains('{')) {
            Some("is itself a template")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(rule(&field, format!("names '{{{name}}}', which {problem}")));
        }
    }
    Ok(())
}

fn validate_oauth2(
    e: &ElementDefinition,
    sample: &BTreeMap<String, String>,
) -> Result<(), DefinitionError> {
    let oauth = e
        .oauth
        .as_ref()
        .ok_or_else(|| rule("oauth", "oauth2 elements need an 'oauth' section"))?;
    let code_flow = oauth.grant == OAuthGrant::AuthorizationCode;
    let (urls, required): (&[&str], &[&str]) = if code_flow {
        (
            &[keys::AUTHORIZATION_URL, keys::TOKEN_URL, keys::BASE_URL],
            &[keys::API_KEY, keys::API_SECRET, keys::CALLBACK_URL],
        )
    } else {
        (
            &[keys::TOKEN_URL, keys::BASE_URL],
            &[keys::API_KEY, keys::API_SECRET],
        )
    };
    let flow = if code_flow {
        "oauth2 elements"
    } else {
        "clientCredentials elements"
    };
    for key in urls {
        let value = e.resolve(key, sample).ok().flatten().ok_or_else(|| {
            rule(
                entry_at(e, key),
                format!("{flow} need a default for '{key}'"),
            )
        })?;
        check_url(e, key, &value)?;
    }
    for key in required {
        if !e.config_entry(key).is_some_and(|c| c.required) {
            return Err(rule(
                entry_at(e, key),
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
                format!("'{target}' is written at provisioning but not declared in configuration"),
            ));
        }
    }
    if oauth.scope_separator.is_empty() {
        return Err(rule("oauth.scopeSeparator", "cannot be empty"));
    }
    for name in oauth.authorization_parameters.keys() {
        if RESERVED_AUTHORIZATION_PARAMETERS.contains(&name.as_str())
            || oauth.callback_parameter.names().any(|c| c == name)
        {
            return Err(rule(
                format!("oauth.authorizationParameters.{name}"),
                "is set by Junction itself",
            ));
        }
    }
    check_pins(e, sample, "oauth", &oauth.allowed_hosts, urls, |h| {
        oauth.allows_host(h)
    })
}

fn validate_oauth1(
    e: &ElementDefinition,
    sample: &BTreeMap<String, String>,
) -> Result<(), DefinitionError> {
    let spec = e
        .oauth1
        .as_ref()
        .ok_or_else(|| rule("oauth1", "oauth1 elements need an 'oauth1' section"))?;
    let urls = [
        keys::REQUEST_URL,
        keys::AUTHORIZATION_URL,
        keys::TOKEN_URL,
        keys::BASE_URL,
    ];
    for key in urls {
        let value = e.resolve(key, sample).ok().flatten().ok_or_else(|| {
            rule(
                entry_at(e, key),
                format!("oauth1 elements need a default for '{key}'"),
            )
        })?;
        check_url(e, key, &value)?;
    }
    for key in [keys::API_KEY, keys::API_SECRET, keys::CALLBACK_URL] {
        if !e.config_entry(key).is_some_and(|c| c.required) {
            return Err(rule(
                entry_at(e, key),
                format!("'{key}' must be a required entry"),
            ));
        }
    }
    for (name, template) in &spec.authorization_parameters {
        let field = format!("oauth1.authorizationParameters.{name}");
        if name == "oauth_token" {
            return Err(rule(field, "is set by Junction itself"));
        }
        check_names_declared(e, &field, template)?;
    }
    // Step 1 of OAuth 1.0a is anonymous and may name its own request-token URL: pins are
    // what keep it to the provider.
    if spec.allowed_hosts.is_empty() {
        return Err(rule(
            "oauth1.allowedHosts",
            "oauth1 elements must pin the hosts they talk to",
        ));
    }
    let allows = |host: &str| {
        spec.allowed_hosts
            .iter()
            .any(|p| junction_core::element::host_matches(p, host))
    };
    check_pins(e, sample, "oauth1", &spec.allowed_hosts, &urls, allows)
}

/// Every host pin is a host pattern, and the element's own (filled-in) defaults pass its
/// pins, or no instance could start. `section`: `oauth` or `oauth1`, where the pins are.
fn check_pins(
    e: &ElementDefinition,
    sample: &BTreeMap<String, String>,
    section: &str,
    pins: &[String],
    urls: &[&str],
    allows: impl Fn(&str) -> bool,
) -> Result<(), DefinitionError> {
    let field = format!("{section}.allowedHosts");
    // A customer's own value lands in a templated URL: without pins it could name any
    // host, and the app's client secret would follow it there.
    let templated = urls.iter().any(|key| {
        e.config_entry(key)
            .and_then(|c| c.default.as_deref())
            .is_some_and(|d| d.contains('{'))
    });
    if templated && pins.is_empty() {
        return Err(rule(
            field,
            "an element with templated URLs must pin its hosts",
        ));
    }
    for (i, pattern) in pins.iter().enumerate() {
        if !junction_core::element::is_host_pattern(pattern) {
            return Err(rule(
                format!("{field}[{i}]"),
                format!("'{pattern}' is not a host name or '*.domain'"),
            ));
        }
    }
    for key in urls {
        let host = e
            .resolve(key, sample)
            .ok()
            .flatten()
            .and_then(|v| url::Url::parse(&v).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        if !allows(&host) {
            return Err(rule(
                &field,
                format!("the default of '{key}' is on '{host}', which allowedHosts does not allow"),
            ));
        }
    }
    Ok(())
}

/// Credentials are filled only from entries an instance will have, and each one carries
/// at least one secret, so a credential made of public values alone is a mistake caught
/// here. A custom element may send an identifying header beside its secret ones (Algolia's
/// application id next to its API key), so there it is enough that one credential does.
fn validate_credentials(e: &ElementDefinition) -> Result<(), DefinitionError> {
    if e.credentials.is_empty() {
        return Err(rule(
            "credentials",
            format!(
                "{} elements need a 'credentials' list",
                auth_name(e.authentication.kind)
            ),
        ));
    }
    let kind = e.authentication.kind;
    let mut reads_secret = false;
    for (i, credential) in e.credentials.iter().enumerate() {
        let field = format!("credentials[{i}]");
        let texts: Vec<&str> = match credential {
            CredentialTemplate::Basic { username, password } => vec![username, password],
            CredentialTemplate::Header { value, .. } | CredentialTemplate::Query { value, .. } => {
                vec![value]
            }
        };
        if let CredentialTemplate::Header { name, .. } = credential
            && !is_header_name(name)
        {
            return Err(rule(
                format!("{field}.name"),
                format!("'{name}' is not a header name"),
            ));
        }
        let mut names = Vec::new();
        for text in texts {
            names.extend(check_names_declared(e, &field, text)?);
        }
        let secret = names
            .iter()
            .any(|n| e.config_entry(n).is_some_and(|c| c.is_secret()));
        reads_secret |= secret;
        if !secret && kind != AuthenticationType::Custom {
            return Err(rule(
                field,
                "must read at least one secret entry (type PASSWORD or secret: true)",
            ));
        }
        let fits = match (kind, credential) {
            (AuthenticationType::Basic, CredentialTemplate::Basic { .. }) => true,
            (AuthenticationType::ApiKey, CredentialTemplate::Basic { .. }) => false,
            (AuthenticationType::ApiKey, _) => true,
            (AuthenticationType::Custom, _) => true,
            _ => false,
        };
        if !fits {
            return Err(rule(
                field,
                format!(
                    "a {} element's credentials are {}",
                    auth_name(kind),
                    match kind {
                        AuthenticationType::Basic => "in: basic",
                        _ => "in: header or in: query",
                    }
                ),
            ));
        }
    }
    if !reads_secret {
        return Err(rule(
            "credentials",
            "at least one must read a secret entry (type PASSWORD or secret: true)",
        ));
    }
    Ok(())
}

/// Element-level parameters sent on every call (a header or query parameter from
/// configuration or a fixed value) name entries the instance has and vendor names a
/// request can carry.
/// A resource's paging and query blocks name what their style needs, and nothing a
/// caller could not send.
fn validate_resource(i: usize, r: &Resource) -> Result<(), DefinitionError> {
    let field = |rest: &str| format!("resources[{i}].{rest}");
    // A streamed body is never read, so no hook could see or change it.
    if r.stream && !r.hooks.is_empty() {
        return Err(rule(field("hooks"), "a stream resource runs no hooks"));
    }
    if let Some(paging) = &r.paging {
        let needs = |what: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(rule(
                    field(&format!("paging.{what}")),
                    format!("the {:?} style needs it", paging.style),
                ))
            }
        };
        match paging.style {
            PagingStyle::Offset | PagingStyle::Page => needs("param", paging.param.is_some())?,
            PagingStyle::Cursor => {
                needs("param", paging.param.is_some())?;
                needs(
                    "next",
                    paging.next.is_some() || paging.next_header.is_some(),
                )?;
            }
            PagingStyle::NextUrl => needs("next", paging.next.is_some())?,
            PagingStyle::LinkHeader => {}
        }
        if paging.first_page > 1 {
            return Err(rule(field("paging.firstPage"), "must be 0 or 1"));
        }
        let size = &paging.page_size;
        if size.max == 0 || size.default == 0 || size.default > size.max {
            return Err(rule(
                field("paging.pageSize"),
                "default and max must be positive, default at most max",
            ));
        }
        if size.min.is_some_and(|min| min == 0 || min > size.default) {
            return Err(rule(
                field("paging.pageSize.min"),
                "must be positive and at most default",
            ));
        }
        if size.name.is_empty()
            || (size.location == PageSizeIn::Header && !is_header_name(&size.name))
        {
            return Err(rule(
                field("paging.pageSize.name"),
                "must be a parameter or header name",
            ));
        }
        if let Some(template) = &size.template
            && !template.contains("{pageSize}")
        {
            return Err(rule(
                field("paging.pageSize.template"),
                "must contain '{pageSize}'",
            ));
        }
    }
    if let Some(query) = &r.query {
        match query.translation {
            Translation::Soql | Translation::Jql => {
                if query.parameter.as_deref().is_none_or(str::is_empty) {
                    return Err(rule(field("query.parameter"), "names the vendor parameter"));
                }
                if !query
                    .template
                    .as_deref()
                    .is_some_and(|t| t.contains("{where}"))
                {
                    return Err(rule(field("query.template"), "must contain '{where}'"));
                }
            }
            Translation::Parameters => {
                if query.rules.is_empty() {
                    return Err(rule(field("query.rules"), "must list at least one rule"));
                }
                for (j, filter) in query.rules.iter().enumerate() {
                    if let Some(bad) = filter
                        .operators
                        .iter()
                        .find(|o| !CEQL_OPERATORS.contains(&o.to_uppercase().as_str()))
                    {
                        return Err(rule(
                            field(&format!("query.rules[{j}].operators")),
                            format!(
                                "'{bad}' is not a CEQL operator (one of {})",
                                CEQL_OPERATORS.join(", ")
                            ),
                        ));
                    }
                }
            }
            Translation::Junction | Translation::None => {}
        }
    }
    if let Some(credential) = &r.credential {
        if !credential.path.starts_with('/') {
            return Err(rule(field("credential.path"), "must start with '/'"));
        }
        if credential.field.trim().is_empty() {
            return Err(rule(
                field("credential.field"),
                "names where the answer holds the credential",
            ));
        }
    }
    Ok(())
}

fn validate_parameters(e: &ElementDefinition) -> Result<(), DefinitionError> {
    for (i, parameter) in e.parameters.iter().enumerate() {
        let field = format!("parameters[{i}]");
        let sent = matches!(
            parameter.vendor_type,
            ParameterType::Header | ParameterType::Query
        );
        if !sent {
            continue;
        }
        match parameter.kind {
            ParameterType::Configuration => {
                let entry = e.config_entry(&parameter.name).ok_or_else(|| {
                    rule(
                        format!("{field}.name"),
                        format!("'{}' is not a configuration entry", parameter.name),
                    )
                })?;
                if entry.internal {
                    return Err(rule(
                        format!("{field}.name"),
                        format!("'{}' is internal", parameter.name),
                    ));
                }
            }
            ParameterType::Value => {}
            _ => continue,
        }
        if parameter.vendor_type == ParameterType::Header && !is_header_name(&parameter.vendor_name)
        {
            return Err(rule(
                format!("{field}.vendorName"),
                format!("'{}' is not a header name", parameter.vendor_name),
            ));
        }
        if parameter.vendor_name.is_empty() {
            return Err(rule(format!("{field}.vendorName"), "must not be empty"));
        }
    }
    Ok(())
}

/// An HTTP field name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.bytes().all(token)
}

/// The keys `template` names, each a declared entry that an instance has a value for.
fn check_names_declared(
    e: &ElementDefinition,
    field: &str,
    template: &str,
) -> Result<Vec<String>, DefinitionError> {
    let names = placeholders(template).map_err(|err| rule(field, err.to_string()))?;
    for name in &names {
        let entry = e
            .config_entry(name)
            .ok_or_else(|| rule(field, format!("'{{{name}}}' is not a configuration entry")))?;
        if entry.internal {
            return Err(rule(field, format!("'{{{name}}}' is internal")));
        }
        if !entry.required && entry.default.is_none() {
            return Err(rule(
                field,
                format!("'{{{name}}}' must be required or have a default"),
            ));
        }
    }
    Ok(names)
}

fn auth_name(kind: AuthenticationType) -> &'static str {
    match kind {
        AuthenticationType::Oauth2 => "oauth2",
        AuthenticationType::Oauth1 => "oauth1",
        AuthenticationType::Basic => "basic",
        AuthenticationType::ApiKey => "apiKey",
        AuthenticationType::Custom => "custom",
    }
}

fn check_url(e: &ElementDefinition, key: &str, value: &str) -> Result<(), DefinitionError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        _ => Err(rule(
            format!("{}.default", entry_at(e, key)),
            format!("the default of '{key}' must be an http(s) URL, got '{value}'"),
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

    const MINIMAL: &str = "id: 1\nkey: demo\nname: Demo\nhookName: Demo\nhub: crm\ndescription: d\nimage: i\nauthentication: {type: basic}\n";

    /// [`MINIMAL`] with a credential, as a basic element has.
    const MINIMAL_CREDENTIALS: &str = "credentials: [{in: header, name: X-Demo, value: demo}]\n";

    /// [`MINIMAL`] with what a basic element needs: an API, a secret and its credential.
    fn basic(extra_configuration: &str, credentials: &str) -> String {
        format!(
            "{MINIMAL}configuration:\n  - {{key: base.url, name: b, default: 'https://api.example.com/v1'}}\n  - {{key: demo.api.key, name: k, type: PASSWORD, required: true}}\n{extra_configuration}credentials:\n{credentials}"
        )
    }

    #[test]
    fn an_override_keeps_the_fields_it_does_not_name() {
        let fragment: Entries = serde_norway::from_str(
            "- {key: event.vendor.type, name: Event Type, allowed: [webhook, polling]}",
        )
        .unwrap();
        let fragment = Fragment {
            configuration: fragment,
            ..Fragment::default()
        };
        let fragments = BTreeMap::from([("events".to_owned(), fragment)]);
        let text = basic(
            "  - {key: event.vendor.type, default: polling}\n",
            "  - {in: basic, username: '{demo.api.key}'}\n",
        ) + "uses: [events]\n";
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

    /// A fragment of one resource, `GET /query` onto `vendorPath`.
    fn query_fragment(vendor_path: &str) -> Fragment {
        Fragment::parse(&format!(
            "resources:\n  - {{path: /query, method: GET, vendorPath: {vendor_path}, description: shared}}\n"
        ))
        .unwrap()
    }

    /// [`basic`] naming `uses`, with `resources` of its own.
    fn using(uses: &str, resources: &str) -> String {
        basic("", "  - {in: basic, username: '{demo.api.key}'}\n")
            + &format!("uses: [{uses}]\nresources:\n{resources}")
    }

    #[test]
    fn fragment_resources_land_under_the_elements_hub_before_its_own() {
        let fragments = BTreeMap::from([("soql".to_owned(), query_fragment("/q"))]);
        let text = using(
            "soql",
            "  - {path: /hubs/crm/accounts, method: GET, vendorPath: /a}\n",
        );
        let catalog = Catalog::from_sources(&fragments, vec![("demo.yaml".into(), text)]).unwrap();
        let routes: Vec<(&str, &str)> = catalog
            .get("demo")
            .unwrap()
            .resources
            .iter()
            .map(|r| (r.path.as_str(), r.vendor_path.as_str()))
            .collect();
        assert_eq!(
            routes,
            [("/hubs/crm/query", "/q"), ("/hubs/crm/accounts", "/a")]
        );
    }

    #[test]
    fn an_elements_own_resource_replaces_the_fragments_on_the_same_route() {
        let fragments = BTreeMap::from([("soql".to_owned(), query_fragment("/shared"))]);
        // Written with its hub or without, and whatever its placeholders are called, the
        // route is the fragment's.
        for own in [
            "  - {path: /hubs/crm/query, method: GET, vendorPath: /own}\n",
            "  - {path: /query, method: GET, vendorPath: /own}\n",
        ] {
            let text = using("soql", own);
            let catalog =
                Catalog::from_sources(&fragments, vec![("demo.yaml".into(), text)]).unwrap();
            let resources = &catalog.get("demo").unwrap().resources;
            assert_eq!(resources.len(), 1, "{own}");
            assert_eq!(resources[0].vendor_path, "/own");
            // Replaced whole: the fragment's description does not survive.
            assert_eq!(resources[0].description, None);
        }
        let with_id = Fragment::parse(
            "resources:\n  - {path: '/things/{id}', method: GET, vendorPath: /shared}\n",
        )
        .unwrap();
        let fragments = BTreeMap::from([("things".to_owned(), with_id)]);
        let text = using(
            "things",
            "  - {path: '/hubs/crm/things/{thingId}', method: GET, vendorPath: /own}\n  - {path: '/hubs/crm/things/{id}', method: DELETE, vendorPath: /gone}\n",
        );
        let catalog = Catalog::from_sources(&fragments, vec![("demo.yaml".into(), text)]).unwrap();
        let routes: Vec<&str> = catalog
            .get("demo")
            .unwrap()
            .resources
            .iter()
            .map(|r| r.vendor_path.as_str())
            .collect();
        assert_eq!(routes, ["/own", "/gone"]);
    }

    #[test]
    fn two_fragments_declaring_one_route_are_refused_naming_both() {
        let fragments = BTreeMap::from([
            ("soql".to_owned(), query_fragment("/q")),
            ("search".to_owned(), query_fragment("/search")),
        ]);
        let text = using(
            "soql, search",
            "  - {path: /hubs/crm/accounts, method: GET, vendorPath: /a}\n",
        );
        let err = Catalog::from_sources(&fragments, vec![("demo.yaml".into(), text)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "demo.yaml: uses: fragments 'soql' and 'search' both declare GET /query; use one of them"
        );
    }

    #[test]
    fn a_fragment_resource_names_no_hub_and_each_route_once() {
        let err = Fragment::parse(
            "resources:\n  - {path: /hubs/crm/query, method: GET, vendorPath: /q}\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("resources[0].path: must be a path below the hub"),
            "{err}"
        );
        let err = Fragment::parse(
            "resources:\n  - {path: '/a/{id}', method: GET, vendorPath: /a}\n  - {path: '/a/{x}', method: GET, vendorPath: /b}\n",
        )
        .unwrap_err();
        assert_eq!(err, "resources[1]: GET /a/{x} is declared twice");
    }

    #[test]
    fn every_shared_fragment_parses() {
        let fragments = embedded_fragments().unwrap();
        assert!(!fragments["salesforce"].resources.is_empty());
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let demo = basic("", "  - {in: basic, username: '{demo.api.key}'}\n");
        let other = demo.replace("key: demo\n", "key: other\n");
        let err = load(&[("demo.yaml", &demo), ("other.yaml", &other)]).unwrap_err();
        assert!(err.to_string().contains("duplicate id 1"), "{err}");
    }

    #[test]
    fn file_name_must_match_the_key() {
        let text = basic(
            "",
            "  - {in: basic, username: '{demo.api.key}', password: X}\n",
        );
        let err = load(&[("wrong.yaml", &text)]).unwrap_err();
        assert!(err.to_string().contains("demo.yaml"), "{err}");
    }

    #[test]
    fn oauth_elements_without_token_url_are_refused() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth2}") + "oauth: {}\n";
        let err = load(&[("demo.yaml", &text)]).unwrap_err();
        assert!(err.to_string().contains("oauth.authorization.url"), "{err}");
    }

    fn oauth_with(api_key: &str, api_secret: &str) -> String {
        MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + &format!("  - {{key: oauth.api.key, name: k, {api_key}required: true}}\n")
            + &format!("  - {{key: oauth.api.secret, name: s, {api_secret}required: true}}\n")
            + "  - {key: oauth.callback.url, name: c, required: true}\n"
            + "  - {key: oauth.authorization.url, name: a, default: 'https://login.example.com/auth'}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://login.example.com/token'}\n"
            + "  - {key: base.url, name: b, default: 'https://api.example.com'}\n"
            + "oauth: {}\n"
    }

    #[test]
    fn reserved_credential_keys_cannot_be_declared_plain_text() {
        let ok = oauth_with("type: PASSWORD, ", "secret: true, ");
        assert!(load(&[("demo.yaml", &ok)]).is_ok());
        for (key, secret) in [("", "type: PASSWORD, "), ("type: PASSWORD, ", "")] {
            let err = load(&[("demo.yaml", &oauth_with(key, secret))]).unwrap_err();
            assert!(err.to_string().contains("holds a credential"), "{err}");
        }
    }

    #[test]
    fn secret_entries_cannot_carry_a_default() {
        let text = oauth_with("type: PASSWORD, ", "type: PASSWORD, default: s3cr3t, ");
        let err = load(&[("demo.yaml", &text)]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("oauth.api.secret"), "{message}");
        assert!(message.contains("default"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn host_pins_must_be_host_patterns_that_the_defaults_pass() {
        let oauth = MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + "  - {key: oauth.api.key, name: k, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, type: PASSWORD, required: true}\n"
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

    fn refused(text: &str, expected: &str) {
        let err = load(&[("demo.yaml", text)]).unwrap_err().to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }

    #[test]
    fn credentials_read_only_declared_entries_and_at_least_one_secret() {
        let ok = basic(
            "",
            "  - {in: basic, username: '{demo.api.key}', password: X}\n",
        );
        assert!(load(&[("demo.yaml", &ok)]).is_ok());
        refused(
            &basic("", "  - {in: basic, username: '{demo.nothing}'}\n"),
            "'{demo.nothing}' is not a configuration entry",
        );
        refused(
            &basic(
                "  - {key: demo.user, name: u, required: true}\n",
                "  - {in: basic, username: '{demo.user}'}\n",
            ),
            "at least one secret",
        );
        refused(
            &basic(
                "  - {key: demo.optional, name: o, type: PASSWORD}\n",
                "  - {in: basic, username: '{demo.optional}'}\n",
            ),
            "must be required or have a default",
        );
        refused(
            &basic("", "  - {in: basic, username: '{demo.api.key'}\n"),
            "unclosed",
        );
        let without = format!(
            "{MINIMAL}configuration:\n  - {{key: base.url, name: b, default: 'https://api.example.com'}}\n"
        );
        refused(&without, "need a 'credentials' list");
        let api_key = basic("", "  - {in: basic, username: '{demo.api.key}'}\n")
            .replace("{type: basic}", "{type: apiKey}");
        refused(&api_key, "in: header or in: query");
        let header = basic(
            "",
            "  - {in: header, name: Authorization, value: 'Bearer {demo.api.key}'}\n",
        )
        .replace("{type: basic}", "{type: apiKey}");
        assert!(load(&[("demo.yaml", &header)]).is_ok());
    }

    #[test]
    fn templated_urls_name_public_entries_and_stay_on_the_pinned_hosts() {
        let credential = "  - {in: basic, username: '{demo.api.key}'}\n";
        let tenant = basic(
            "  - {key: demo.site, name: s, required: true}\n",
            credential,
        )
        .replace(
            "'https://api.example.com/v1'",
            "'https://{demo.site}.example.com/v1'",
        );
        assert!(load(&[("demo.yaml", &tenant)]).is_ok());
        refused(
            &basic("", credential).replace(
                "'https://api.example.com/v1'",
                "'https://{demo.api.key}.example.com/v1'",
            ),
            "'{demo.api.key}', which is a secret",
        );
        refused(
            &basic("", credential).replace(
                "'https://api.example.com/v1'",
                "'https://{demo.site}.example.com/v1'",
            ),
            "'{demo.site}', which is not a configuration entry",
        );
        let oauth = MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + "  - {key: demo.site, name: s, required: true}\n"
            + "  - {key: oauth.api.key, name: k, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.callback.url, name: c, required: true}\n"
            + "  - {key: oauth.authorization.url, name: a, default: 'https://{demo.site}.example.com/auth'}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://{demo.site}.example.com/token'}\n"
            + "  - {key: base.url, name: b, default: 'https://{demo.site}.example.com/api'}\n";
        let pinned = format!("{oauth}oauth: {{allowedHosts: ['*.example.com']}}\n");
        assert!(load(&[("demo.yaml", &pinned)]).is_ok());
        refused(&format!("{oauth}oauth: {{}}\n"), "must pin its hosts");
        let elsewhere = format!("{oauth}oauth: {{allowedHosts: ['*.example.org']}}\n");
        refused(&elsewhere, "allowedHosts does not allow");
        let overriding = format!(
            "{oauth}oauth: {{allowedHosts: ['*.example.com'], authorizationParameters: {{client_id: x}}}}\n"
        );
        refused(
            &overriding,
            "oauth.authorizationParameters.client_id: is set by Junction itself",
        );
    }

    #[test]
    fn a_custom_element_may_send_public_headers_beside_a_secret_one() {
        let custom = |credentials: &str| {
            basic(
                "  - {key: demo.app, name: a, required: true}\n",
                credentials,
            )
            .replace("{type: basic}", "{type: custom}")
        };
        let both = "  - {in: header, name: X-App, value: '{demo.app}'}\n  - {in: header, name: X-Key, value: '{demo.api.key}'}\n";
        assert!(load(&[("demo.yaml", &custom(both))]).is_ok());
        refused(
            &custom("  - {in: header, name: X-App, value: '{demo.app}'}\n"),
            "at least one must read a secret entry",
        );
        // Elsewhere every credential carries a secret.
        let api_key = custom(both).replace("{type: custom}", "{type: apiKey}");
        refused(&api_key, "credentials[0]: must read at least one secret");
    }

    #[test]
    fn parameters_sent_on_every_call_name_declared_entries_and_header_names() {
        let with = |parameters: &str| {
            basic(
                "  - {key: demo.tenant, name: t, required: true}\n",
                "  - {in: basic, username: '{demo.api.key}'}\n",
            ) + "parameters:\n"
                + parameters
        };
        let ok = "  - {name: demo.tenant, vendorName: X-Tenant, type: configuration, vendorType: header}\n  - {name: '2022-06-28', vendorName: version, type: value, vendorType: query}\n";
        assert!(load(&[("demo.yaml", &with(ok))]).is_ok());
        refused(
            &with(
                "  - {name: demo.tenent, vendorName: X-Tenant, type: configuration, vendorType: header}\n",
            ),
            "parameters[0].name: 'demo.tenent' is not a configuration entry",
        );
        refused(
            &with("  - {name: v1, vendorName: 'X Version', type: value, vendorType: header}\n"),
            "is not a header name",
        );
    }

    #[test]
    fn client_credentials_elements_need_no_authorization_url_or_callback() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth2}")
            + "configuration:\n"
            + "  - {key: oauth.api.key, name: k, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://login.example.com/token'}\n"
            + "  - {key: base.url, name: b, default: 'https://api.example.com'}\n"
            + "oauth: {grant: clientCredentials, allowedHosts: ['*.example.com']}\n";
        assert!(load(&[("demo.yaml", &text)]).is_ok());
        let code_flow = text.replace("grant: clientCredentials, ", "");
        refused(&code_flow, "oauth.authorization.url");
    }

    #[test]
    fn oauth1_elements_declare_their_three_endpoints() {
        let text = MINIMAL.replace("{type: basic}", "{type: oauth1}")
            + "configuration:\n"
            + "  - {key: oauth.api.key, name: k, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.api.secret, name: s, type: PASSWORD, required: true}\n"
            + "  - {key: oauth.callback.url, name: c, required: true}\n"
            + "  - {key: oauth.request.url, name: r, default: 'https://example.com/request'}\n"
            + "  - {key: oauth.authorization.url, name: a, default: 'https://example.com/authorize'}\n"
            + "  - {key: oauth.token.url, name: t, default: 'https://example.com/access'}\n"
            + "  - {key: base.url, name: b, default: 'https://api.example.com/1'}\n"
            + "  - {key: demo.app, name: n, default: Demo}\n";
        let spec = "oauth1: {allowedHosts: [example.com, api.example.com], authorizationParameters: {name: '{demo.app}'}}\n";
        assert!(load(&[("demo.yaml", &format!("{text}{spec}"))]).is_ok());
        refused(&text, "need an 'oauth1' section");
        let no_request = text.replace(
            "  - {key: oauth.request.url, name: r, default: 'https://example.com/request'}\n",
            "",
        );
        refused(&format!("{no_request}{spec}"), "oauth.request.url");
        let unknown = spec.replace("{demo.app}", "{demo.nothing}");
        refused(
            &format!("{text}{unknown}"),
            "'{demo.nothing}' is not a configuration entry",
        );
        let narrow = spec.replace("example.com, api.example.com", "example.com");
        refused(&format!("{text}{narrow}"), "allowedHosts does not allow");
    }

    #[test]
    fn jdbc_definitions_template_their_connection_url_and_need_no_credentials() {
        let text = format!(
            "{MINIMAL}protocolType: jdbc\nconfiguration:\n  - {{key: db.host, name: h, required: true}}\n  - {{key: db.name, name: n, required: true}}\n  - {{key: base.url, name: b, default: 'jdbc:postgresql://{{db.host}}/{{db.name}}'}}\n"
        );
        assert!(load(&[("demo.yaml", &text)]).is_ok());
        refused(&text.replace("{db.name}'", "{db.port}'"), "'{db.port}'");
    }

    #[test]
    fn a_default_its_own_entry_refuses_is_refused() {
        let text = basic(
            "  - {key: event.vendor.type, name: e, default: carrier-pigeon, allowed: [webhook, polling]}\n",
            "  - {in: basic, username: '{demo.api.key}'}\n",
        );
        refused(&text, "must be one of webhook, polling");
    }

    #[test]
    fn rate_limits_name_positive_requests_a_sane_window_and_a_burst_within_them() {
        let with = |limits: &str| {
            basic(
                "",
                "  - {in: basic, username: '{demo.api.key}', password: ''}\n",
            )
            .replace(
                "credentials:",
                &format!("rateLimits: {limits}\ncredentials:"),
            )
        };
        assert!(parse_definition(&with("[{requests: 5, per: 2}, {requests: 100000, per: 1day, scope: app, burst: 10, maxWait: 30}]")).is_ok());
        for (limits, expected) in [
            (
                "[{requests: 0, per: 2}]",
                "rateLimits[0].requests: must be at least 1",
            ),
            (
                "[{requests: 5, per: 0}]",
                "rateLimits[0].per: must be between 0.1 seconds and 31 days",
            ),
            (
                "[{requests: 5, per: 90days}]",
                "rateLimits[0].per: must be between 0.1 seconds and 31 days",
            ),
            (
                "[{requests: 5, per: 2, burst: 6}]",
                "rateLimits[0].burst: must be between 1 and requests (5)",
            ),
            (
                "[{requests: 5, per: 2, maxWait: 2h}]",
                "rateLimits[0].maxWait: must be at most 3600 seconds",
            ),
            (
                "[{requests: 5, per: 2}, {requests: 9, per: 2s}]",
                "rateLimits[1]: a second instance limit per 2s: declare the stricter one only",
            ),
            ("[{requests: 5, per: soon}]", "rateLimits[0].per"),
            (
                "[{requests: 5, per: 2, scope: org}]",
                "rateLimits[0].scope: must be one of instance or app",
            ),
        ] {
            let err = parse_definition(&with(limits)).unwrap_err().to_string();
            assert!(err.contains(expected), "{limits}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = format!("{MINIMAL}{MINIMAL_CREDENTIALS}colour: blue\n");
        assert!(load(&[("demo.yaml", &text)]).is_err());
    }

    #[test]
    fn paging_and_query_blocks_name_what_their_style_needs() {
        let resource = |block: &str| {
            let base = basic(
                "",
                "  - {in: basic, username: '{demo.api.key}', password: X}\n",
            );
            format!(
                "{base}resources:\n  - {{path: /hubs/crm/a, method: GET, vendorPath: /a, {block}}}\n"
            )
        };
        let size = "pageSize: {name: limit, default: 50, max: 100}";
        let good = resource(&format!(
            "paging: {{style: cursor, param: c, next: meta.next, {size}}}"
        ));
        assert!(
            parse_definition(&good).is_ok(),
            "{:?}",
            parse_definition(&good).err()
        );
        for (block, field) in [
            (format!("paging: {{style: offset, {size}}}"), "resources[0].paging.param"),
            (format!("paging: {{style: cursor, param: c, {size}}}"), "resources[0].paging.next"),
            (
                "paging: {style: offset, param: o, pageSize: {name: limit, default: 500, max: 100}}".to_owned(),
                "resources[0].paging.pageSize",
            ),
            (
                "paging: {style: offset, param: o, pageSize: {name: limit, default: 50, max: 100, min: 60}}".to_owned(),
                "resources[0].paging.pageSize.min",
            ),
            ("query: {translation: soql, parameter: q}".to_owned(), "resources[0].query.template"),
            (
                "stream: true, hooks: [{type: preRequest, body: 'done({})'}]".to_owned(),
                "resources[0].hooks",
            ),
            (
                "query: {translation: parameters, rules: [{field: a, operators: ['~'], parameter: a}]}".to_owned(),
                "resources[0].query.rules[0].operators",
            ),
            ("credential: {path: a, field: t}".to_owned(), "resources[0].credential.path"),
            ("credential: {path: /a, field: ' '}".to_owned(), "resources[0].credential.field"),
        ] {
            let err = parse_definition(&resource(&block)).unwrap_err();
            assert_eq!(err.field, field, "{block}: {err}");
        }
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
        let text = basic(
            "",
            "  - {in: basic, username: '{demo.api.key}', password: X}\n",
        )
        .replace("id: 1", "id: 100000");
        let err = load(&[("demo.yaml", &text)]).unwrap_err();
        assert!(err.to_string().contains("below 100000"), "{err}");
    }

    #[test]
    fn credential_templates_must_read_declared_entries() {
        let text = format!(
            "{MINIMAL}credentials: [{{in: basic, username: \"{{username}}\", password: \"{{pasword}}\"}}]\nconfiguration:\n  - {{key: username, name: u, required: true}}\n"
        );
        let err = load(&[("demo.yaml", &text)]).unwrap_err().to_string();
        assert!(err.contains("credentials[0]: '{pasword}'"), "{err}");
        let err = load(&[("demo.yaml", MINIMAL)]).unwrap_err().to_string();
        assert!(err.contains("need a 'credentials' list"), "{err}");
        let bad_header = format!("{MINIMAL}{MINIMAL_CREDENTIALS}").replace("X-Demo", "'X Demo'");
        let err = load(&[("demo.yaml", &bad_header)]).unwrap_err().to_string();
        assert!(err.contains("is not a header name"), "{err}");
    }
}
