//! Checks run over every element of the embedded catalog, whatever it holds: each builds
//! its authorization URL or renders its credentials from sample configuration, and each
//! has a golden file recording what it sends where, so a change to an element's data
//! shows up as a reviewed diff.
//!
//! Golden files (`tests/golden/<key>.json`) and the README's catalog table are generated
//! from the data. After changing an element, regenerate both with
//!
//! ```text
//! JUNCTION_UPDATE_GOLDEN=1 cargo test -p junction-catalog --test catalog
//! ```
//!
//! and review the diff.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use junction_catalog::{Catalog, keys, sample_configuration};
use junction_core::ElementDefinition;
use junction_core::credential::{CredentialTemplate, OAuthGrant, RenderedCredential};
use junction_core::element::{AuthenticationType, CredentialLocation};
use junction_oauth::{AuthorizationRequest, authorization_url, join_scopes};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const UPDATE_VAR: &str = "JUNCTION_UPDATE_GOLDEN";
const CLIENT_ID: &str = "sample-client-id";
const CALLBACK: &str = "https://app.example.com/auth/callback";

fn catalog() -> Catalog {
    Catalog::embedded().expect("the embedded catalog is valid")
}

fn updating() -> bool {
    std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1")
}

/// Sample configuration with every secret entry set to `<its key>`, so a rendered
/// credential shows which entry went where.
fn sample_values(e: &ElementDefinition) -> BTreeMap<String, String> {
    let mut values = sample_configuration(e);
    for entry in &e.configuration {
        if entry.is_secret() && entry.required {
            values.insert(entry.key.clone(), format!("<{}>", entry.key));
        }
    }
    values
}

fn resolved(e: &ElementDefinition, key: &str) -> String {
    e.resolve(key, &sample_values(e))
        .unwrap_or_else(|err| panic!("{}: {key}: {err}", e.key))
        .unwrap_or_else(|| panic!("{}: no value for {key}", e.key))
}

fn is_code_flow(e: &ElementDefinition) -> bool {
    e.authentication.kind == AuthenticationType::Oauth2
        && e.oauth
            .as_ref()
            .is_some_and(|o| o.grant == OAuthGrant::AuthorizationCode)
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The authorization URL step 1 gives for `e`, from its data alone.
fn authorization_url_of(e: &ElementDefinition) -> String {
    let spec = e.oauth.as_ref().unwrap();
    let scope = e
        .resolve(keys::SCOPE, &sample_values(e))
        .unwrap()
        .map(|s| join_scopes(spec, &s));
    authorization_url(
        spec,
        &AuthorizationRequest {
            authorization_url: &resolved(e, keys::AUTHORIZATION_URL),
            client_id: CLIENT_ID,
            callback_url: CALLBACK,
            state: &e.key,
            scope: scope.as_deref(),
            site_address: None,
            code_challenge: None,
        },
    )
    .unwrap_or_else(|err| panic!("{}: {err}", e.key))
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn the_catalog_holds_at_least_forty_elements_with_the_promised_keys() {
    let catalog = catalog();
    assert!(catalog.list().len() >= 40, "{}", catalog.list().len());
    for key in [
        "closeio",
        "jira",
        "freshdesk",
        "zendesk",
        "netsuitecrm",
        "dropbox",
        "box",
        "hubspot",
        "slack",
        "github",
        "googledrive",
        "gmail",
        "googlecalendar",
        "googlesheets",
        "onedrive",
        "outlook",
        "dynamicscrm",
        "shopify",
        "stripe",
        "quickbooks",
        "xero",
        "intercom",
        "pipedrive",
        "zohocrm",
        "mailchimp",
        "asana",
        "trello",
        "notion",
        "airtable",
        "docusign",
        "servicenow",
        "marketo",
        "twilio",
        "sendgrid",
    ] {
        assert!(catalog.get(key).is_some(), "{key} is missing");
    }
    assert_eq!(catalog.get("146").unwrap().key, "closeio");
    let vendor_type = |key: &str| {
        catalog
            .get(key)
            .and_then(|e| e.config_entry(keys::EVENT_VENDOR_TYPE))
            .and_then(|c| c.default.clone())
    };
    assert_eq!(vendor_type("netsuitecrm").as_deref(), Some("polling"));
    assert_eq!(vendor_type("dropbox").as_deref(), Some("webhook"));
    assert_eq!(vendor_type("box").as_deref(), Some("webhook"));
    let auth = |key: &str| catalog.get(key).unwrap().authentication.kind;
    assert_eq!(auth("trello"), AuthenticationType::Oauth1);
    assert_eq!(auth("closeio"), AuthenticationType::Basic);
    let marketo = catalog.get("marketo").unwrap().oauth.clone().unwrap();
    assert_eq!(marketo.grant, OAuthGrant::ClientCredentials);
}

#[test]
fn every_oauth2_code_flow_element_builds_a_correct_authorization_url() {
    let catalog = catalog();
    let mut checked = 0;
    for e in catalog.list().into_iter().filter(|e| is_code_flow(e)) {
        let spec = e.oauth.as_ref().unwrap();
        let url = authorization_url_of(e);
        assert!(url.starts_with("https://"), "{}: {url}", e.key);
        assert!(
            spec.allows_host(&host_of(&url)),
            "{}: {url} is on a host the element does not pin",
            e.key
        );
        let q = query_of(&url);
        assert_eq!(q["response_type"], "code", "{}", e.key);
        assert_eq!(q["client_id"], CLIENT_ID, "{}", e.key);
        for name in spec.callback_parameter.names() {
            assert_eq!(q[name], CALLBACK, "{}", e.key);
        }
        assert_eq!(q["state"], e.key, "{}", e.key);
        match e.resolve(keys::SCOPE, &sample_values(e)).unwrap() {
            Some(scope) if !scope.is_empty() => {
                let expected: Vec<&str> = scope
                    .split(|c: char| c == ',' || c == '+' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .collect();
                let sent: Vec<&str> = q["scope"].split(spec.scope_separator.as_str()).collect();
                assert_eq!(
                    sent, expected,
                    "{}: scopes joined by '{}'",
                    e.key, spec.scope_separator
                );
                assert!(!q["scope"].contains('{'), "{}: unfilled template", e.key);
            }
            _ => assert!(!q.contains_key("scope"), "{}", e.key),
        }
        for (name, value) in &spec.authorization_parameters {
            assert_eq!(q.get(name), Some(value), "{}: {name}", e.key);
        }
        assert!(!url.contains("secret"), "{}: {url}", e.key);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} code-flow elements");
}

#[test]
fn every_credentials_element_renders_each_secret_into_its_credential() {
    let catalog = catalog();
    let mut checked = 0;
    for e in catalog.list() {
        if e.credentials.is_empty() {
            continue;
        }
        let values = sample_values(e);
        for template in &e.credentials {
            let rendered = template
                .render(&values)
                .unwrap_or_else(|err| panic!("{}: {err}", e.key));
            let text = match &rendered {
                RenderedCredential::Basic { username, password } => {
                    format!("{username}:{password}")
                }
                RenderedCredential::Header { value, .. }
                | RenderedCredential::Query { value, .. } => value.clone(),
            };
            let secrets: Vec<&String> = template
                .keys()
                .into_iter()
                .filter_map(|k| e.config_entry(&k))
                .filter(|c| c.is_secret())
                .map(|c| &c.key)
                .collect::<Vec<_>>();
            assert!(
                !text.contains('{'),
                "{}: unfilled template in {text}",
                e.key
            );
            if secrets.is_empty() {
                // An identifying header beside the secret ones, which custom elements
                // alone may send.
                assert_eq!(
                    e.authentication.kind,
                    AuthenticationType::Custom,
                    "{}: a credential without a secret",
                    e.key
                );
                continue;
            }
            for key in secrets {
                assert!(
                    text.contains(&format!("<{key}>")),
                    "{}: {key} not sent",
                    e.key
                );
            }
            // Without the secret, the credential cannot be made: the gap is named.
            let mut missing = values.clone();
            let first_secret = template
                .keys()
                .into_iter()
                .find(|k| e.config_entry(k).is_some_and(|c| c.is_secret()))
                .unwrap();
            missing.remove(&first_secret);
            assert!(template.render(&missing).is_err(), "{}", e.key);
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} credentials elements");
}

#[test]
fn every_oauth1_and_client_credentials_element_resolves_its_endpoints_on_pinned_hosts() {
    let catalog = catalog();
    let mut checked = 0;
    for e in catalog.list() {
        let (urls, pins): (&[&str], Vec<String>) = match (&e.oauth1, &e.oauth) {
            (Some(spec), _) => (
                &[
                    keys::REQUEST_URL,
                    keys::AUTHORIZATION_URL,
                    keys::TOKEN_URL,
                    keys::BASE_URL,
                ],
                spec.allowed_hosts.clone(),
            ),
            (None, Some(spec)) if spec.grant == OAuthGrant::ClientCredentials => (
                &[keys::TOKEN_URL, keys::BASE_URL],
                spec.allowed_hosts.clone(),
            ),
            _ => continue,
        };
        assert!(!pins.is_empty(), "{} pins no host", e.key);
        for key in urls {
            let url = resolved(e, key);
            assert!(url.starts_with("https://"), "{}: {key} = {url}", e.key);
            let host = host_of(&url);
            assert!(
                pins.iter()
                    .any(|p| junction_core::element::host_matches(p, &host)),
                "{}: {key} is on {host}",
                e.key
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} elements");
}

#[test]
fn every_element_pins_its_hosts_and_resolves_an_https_base_url() {
    for e in catalog().list() {
        let base = resolved(e, keys::BASE_URL);
        assert!(base.starts_with("https://"), "{}: {base}", e.key);
        if let Some(spec) = &e.oauth {
            assert!(!spec.allowed_hosts.is_empty(), "{} pins no host", e.key);
            assert!(!spec.allows_host("evil.example"), "{}", e.key);
        }
    }
}

/// What one element sends where, as its golden file records it.
fn golden(e: &ElementDefinition) -> Value {
    let values = sample_values(e);
    let resolve = |key: &str| e.resolve(key, &values).ok().flatten();
    let authentication = match e.authentication.kind {
        AuthenticationType::Oauth2 => {
            let spec = e.oauth.as_ref().unwrap();
            let token = match spec.credential.location {
                CredentialLocation::Header => json!({
                    "in": "header",
                    "name": spec.credential.name,
                    "value": format!("{}<oauth.user.token>", spec.credential.prefix),
                }),
                CredentialLocation::Query => json!({
                    "in": "query",
                    "name": spec.credential.name,
                    "value": "<oauth.user.token>",
                }),
            };
            let mut auth = json!({
                "type": "oauth2",
                "grant": spec.grant,
                "tokenUrl": resolve(keys::TOKEN_URL),
                "tokenRequest": {
                    "method": spec.token_request.method,
                    "clientAuthentication": spec.token_request.client_authentication,
                },
                "refresh": spec.refresh,
                "credential": token,
                "allowedHosts": spec.allowed_hosts,
            });
            if is_code_flow(e) {
                auth["authorizationUrl"] = json!(authorization_url_of(e));
            }
            auth
        }
        AuthenticationType::Oauth1 => {
            let spec = e.oauth1.as_ref().unwrap();
            let parameters: BTreeMap<&String, String> = spec
                .authorization_parameters
                .iter()
                .map(|(k, v)| (k, junction_core::credential::fill(v, &values).unwrap()))
                .collect();
            json!({
                "type": "oauth1",
                "signatureMethod": spec.signature_method,
                "requestTokenUrl": resolve(keys::REQUEST_URL),
                "authorizationUrl": resolve(keys::AUTHORIZATION_URL),
                "accessTokenUrl": resolve(keys::TOKEN_URL),
                "authorizationParameters": parameters,
                "allowedHosts": spec.allowed_hosts,
            })
        }
        kind => {
            let credentials: Vec<Value> = e
                .credentials
                .iter()
                .map(|t| rendered_json(t, &values))
                .collect();
            json!({"type": kind, "credentials": credentials})
        }
    };
    let tenant_entries: Vec<&str> = e
        .configuration
        .iter()
        .filter(|c| c.required && !c.is_secret() && !c.key.starts_with("oauth."))
        .map(|c| c.key.as_str())
        .collect();
    json!({
        "summary": e.summary(),
        "authentication": authentication,
        "baseUrl": resolve(keys::BASE_URL),
        "requiredEntries": e.configuration.iter().filter(|c| c.required).map(|c| &c.key).collect::<Vec<_>>(),
        "tenantEntries": tenant_entries,
        "ping": e.ping,
        "events": resolve(keys::EVENT_VENDOR_TYPE),
        "pagination": {
            "type": resolve("pagination.type"),
            "max": resolve("pagination.max"),
        },
    })
}

fn rendered_json(template: &CredentialTemplate, values: &BTreeMap<String, String>) -> Value {
    match template.render(values).unwrap() {
        RenderedCredential::Basic { username, password } => json!({
            "in": "basic",
            "username": username,
            "password": password,
            "header": format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
        }),
        RenderedCredential::Header { name, value } => {
            json!({"in": "header", "name": name, "value": value})
        }
        RenderedCredential::Query { name, value } => {
            json!({"in": "query", "name": name, "value": value})
        }
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_element_matches_its_golden_file() {
    let dir = golden_dir();
    let catalog = catalog();
    let mut stale = Vec::new();
    if updating() {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for e in catalog.list() {
        let path = dir.join(format!("{}.json", e.key));
        let expected = serde_json::to_string_pretty(&golden(e)).unwrap() + "\n";
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            if updating() {
                std::fs::write(&path, expected).unwrap();
            } else {
                stale.push(e.key.clone());
            }
        }
    }
    // A golden file whose element is gone is stale too.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let key = path.file_stem().unwrap().to_string_lossy().into_owned();
        if catalog.get(&key).is_none() {
            if updating() {
                std::fs::remove_file(&path).unwrap();
            } else {
                stale.push(format!("{key} (no such element)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ from the element data for {stale:?}; if the change is intended, \
         regenerate with `{UPDATE_VAR}=1 cargo test -p junction-catalog --test catalog` and \
         review the diff"
    );
}

const TABLE_START: &str = "<!-- catalog-table:start -->";
const TABLE_END: &str = "<!-- catalog-table:end -->";

/// The README's catalog table, generated from the data.
fn readme_table(catalog: &Catalog) -> String {
    let mut elements = catalog.list();
    elements.sort_by(|a, b| a.key.cmp(&b.key));
    let mut table = format!(
        "{TABLE_START}\n| key | name | hub | authentication | events |\n|---|---|---|---|---|\n"
    );
    for e in elements {
        let auth = match (e.authentication.kind, &e.oauth) {
            (AuthenticationType::Oauth2, Some(o)) if o.grant == OAuthGrant::ClientCredentials => {
                "OAuth 2.0 client credentials"
            }
            (AuthenticationType::Oauth2, _) => "OAuth 2.0",
            (AuthenticationType::Oauth1, _) => "OAuth 1.0a",
            (AuthenticationType::Basic, _) => "basic",
            (AuthenticationType::ApiKey, _) => "API key",
            (AuthenticationType::Custom, _) => "custom",
        };
        let events = e
            .config_entry(keys::EVENT_VENDOR_TYPE)
            .and_then(|c| c.default.as_deref())
            .map(|v| if v == "webhooks" { "webhook" } else { v })
            .unwrap_or("—");
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            e.key, e.name, e.hub, auth, events
        ));
    }
    table.push_str(TABLE_END);
    table
}

#[test]
fn the_readme_catalog_table_is_generated_from_the_element_data() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = match (readme.find(TABLE_START), readme.find(TABLE_END)) {
        (Some(s), Some(e)) if s < e => (s, e + TABLE_END.len()),
        _ => panic!("README.md has no {TABLE_START} … {TABLE_END} block"),
    };
    let table = readme_table(&catalog());
    if readme[start..end] == table {
        return;
    }
    if updating() {
        let updated = format!("{}{}{}", &readme[..start], table, &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's catalog table differs from the element data; regenerate it with \
         `{UPDATE_VAR}=1 cargo test -p junction-catalog --test catalog`"
    );
}

/// The Salesforce elements' definitions as they were when each file spelled out its own
/// SOQL resources, before they moved to the `salesforce` fragment.
const SALESFORCE_BEFORE: &str = include_str!("snapshots/salesforce-family.json");

/// The resources of a definition by route, and the rest of it: a fragment's resources
/// come before the element's own, so the order may differ while every route maps the same.
fn by_route(mut definition: Value) -> (BTreeMap<(String, String), Value>, usize, Value) {
    let resources = definition
        .as_object_mut()
        .and_then(|d| d.remove("resources"))
        .and_then(|r| r.as_array().cloned())
        .unwrap_or_default();
    let count = resources.len();
    let routes = resources
        .into_iter()
        .map(|r| {
            let route = (r["method"].to_string(), r["path"].to_string());
            (route, r)
        })
        .collect();
    (routes, count, definition)
}

#[test]
fn the_salesforce_elements_map_every_route_as_before_the_shared_fragment() {
    let before: BTreeMap<String, Value> = serde_json::from_str(SALESFORCE_BEFORE).unwrap();
    assert_eq!(before.len(), 4);
    let catalog = catalog();
    for (key, old) in before {
        let now = serde_json::to_value(catalog.get(&key).unwrap().as_ref()).unwrap();
        let (old_routes, old_count, old_rest) = by_route(old);
        let (new_routes, new_count, new_rest) = by_route(now);
        assert_eq!(new_count, old_count, "{key}: resource count");
        assert_eq!(
            new_routes.len(),
            new_count,
            "{key}: a route is declared twice"
        );
        for (route, mapping) in &old_routes {
            assert_eq!(new_routes.get(route), Some(mapping), "{key}: {route:?}");
        }
        assert_eq!(new_rest, old_rest, "{key}: the rest of the definition");
    }
}
