//! Templated configuration defaults (`https://{zendesk.subdomain}.zendesk.com/api/v2`)
//! filled from an instance's own values, and the values an element sends on every call
//! (its `parameters`).
//!
//! An instance stores its URLs filled in, so that host pins, origin checks and every call
//! see the address the credentials really go to, never a template.

use crate::ServiceError;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use junction_catalog::TEMPLATED_KEYS;
use junction_core::credential::{TemplateError, placeholders};
use junction_core::hub::ParameterType;
use junction_core::{ConfigMap, ElementDefinition};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use url::Url;

/// The set values of `config`.
fn values(config: &ConfigMap) -> BTreeMap<String, String> {
    config
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect()
}

/// The element's default for `key` when it names other entries.
fn template<'e>(element: &'e ElementDefinition, key: &str) -> Option<&'e str> {
    element
        .config_entry(key)
        .and_then(|c| c.default.as_deref())
        .filter(|d| d.contains('{'))
}

fn template_error(element: &ElementDefinition, key: &str, e: TemplateError) -> ServiceError {
    match e {
        TemplateError::Missing(name) => ServiceError::MissingConfiguration(vec![name]),
        TemplateError::Unclosed => ServiceError::Internal(format!(
            "element '{}': the default of '{key}' has an unclosed brace",
            element.key
        )),
    }
}

/// Fills the element's templated defaults in `config` from its values, once the caller's
/// configuration is applied. A value the request itself gives is the caller's and kept.
/// On an update (`stored`), a value that is the template filled from the stored values
/// follows the entries it names; one the caller set earlier is kept.
pub(crate) fn fill_defaults(
    element: &ElementDefinition,
    config: &mut ConfigMap,
    stored: Option<&ConfigMap>,
    given: Option<&Map<String, Value>>,
) -> Result<(), ServiceError> {
    // Without a template nothing is filled and no value is placed in a URL.
    if !TEMPLATED_KEYS
        .iter()
        .any(|key| template(element, key).is_some())
    {
        return Ok(());
    }
    let now = values(config);
    check_host_safe(element, &now, "invalid_configuration")?;
    let before = stored.map(values);
    for key in TEMPLATED_KEYS {
        let Some(template) = template(element, key) else {
            continue;
        };
        if given.is_some_and(|g| g.contains_key(*key)) {
            continue;
        }
        let current = config.get(*key).cloned().flatten();
        let from_template = match (&current, &before) {
            (None, _) => true,
            (Some(c), _) if c == template => true,
            (Some(c), Some(before)) => element
                .resolve(key, &without(before, key))
                .ok()
                .flatten()
                .is_some_and(|old| &old == c),
            (Some(_), None) => false,
        };
        if !from_template {
            continue;
        }
        let filled = element
            .resolve(key, &without(&now, key))
            .map_err(|e| template_error(element, key, e))?;
        config.insert((*key).to_owned(), filled);
    }
    Ok(())
}

/// `values` without `key`, so that resolving `key` starts from the element's template.
fn without(values: &BTreeMap<String, String>, key: &str) -> BTreeMap<String, String> {
    let mut rest = values.clone();
    rest.remove(key);
    rest
}

/// The entries the element's templated defaults and OAuth 1.0a authorization parameters
/// name: the values a caller may give the authorization steps to fill its URLs and scope.
pub(crate) fn template_names(element: &ElementDefinition) -> BTreeSet<String> {
    let parameters = element
        .oauth1
        .iter()
        .flat_map(|o| o.authorization_parameters.values())
        .map(String::as_str);
    TEMPLATED_KEYS
        .iter()
        .filter_map(|key| template(element, key))
        .chain(parameters)
        .filter_map(|t| placeholders(t).ok())
        .flatten()
        .collect()
}

/// The entries a templated URL or scope of the element places after its own start, where
/// a value becomes part of the host (or path) the URL names. A template that starts with
/// a placeholder takes a whole address from it, which the host pins then judge.
fn placed_names(element: &ElementDefinition) -> BTreeSet<String> {
    TEMPLATED_KEYS
        .iter()
        .filter_map(|key| template(element, key))
        .flat_map(|t| {
            placeholders(t)
                .unwrap_or_default()
                .into_iter()
                .filter(move |name| !t.trim_start().starts_with(&format!("{{{name}}}")))
        })
        .collect()
}

/// `value` is dot-separated labels of letters, digits and hyphens: nothing in it can end
/// the host early (`evil.com#`, `10.0.0.5/`, `user@`) and move the URL to another one
/// than its template names, past the host pins.
fn is_host_safe(value: &str) -> bool {
    value.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Refuses, with `code` and naming the key, a value a template places in its URL that is
/// not [`is_host_safe`]. An empty value is left to the template's own missing-value error.
pub(crate) fn check_host_safe(
    element: &ElementDefinition,
    values: &BTreeMap<String, String>,
    code: &'static str,
) -> Result<(), ServiceError> {
    let placed = placed_names(element);
    for (key, value) in values {
        if placed.contains(key) && !value.is_empty() && !is_host_safe(value) {
            return Err(ServiceError::bad_request(
                code,
                format!(
                    "'{key}' is placed in the URLs of element '{}' and may hold only letters, \
                     digits, '-' and '.' between non-empty labels",
                    element.key
                ),
            ));
        }
    }
    Ok(())
}

/// The element-level parameters every call carries: headers and query parameters from
/// configuration or fixed values.
pub(crate) struct CallParameters {
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, String)>,
}

impl CallParameters {
    pub(crate) fn of(
        element: &ElementDefinition,
        config: &ConfigMap,
    ) -> Result<Self, ServiceError> {
        let mut headers = Vec::new();
        let mut query = Vec::new();
        for parameter in &element.parameters {
            let value = match parameter.kind {
                ParameterType::Value => parameter.name.clone(),
                ParameterType::Configuration => {
                    match config.get(&parameter.name).cloned().flatten() {
                        Some(v) if !v.is_empty() => v,
                        _ if parameter.required => {
                            return Err(ServiceError::MissingConfiguration(vec![
                                parameter.name.clone(),
                            ]));
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            };
            match parameter.vendor_type {
                ParameterType::Header => {
                    let name = HeaderName::from_bytes(parameter.vendor_name.as_bytes());
                    let value = HeaderValue::from_str(&value);
                    match (name, value) {
                        (Ok(name), Ok(value)) => headers.push((name, value)),
                        _ => {
                            return Err(ServiceError::bad_request(
                                "invalid_configuration",
                                format!(
                                    "'{}' cannot be sent in the '{}' header",
                                    parameter.name, parameter.vendor_name
                                ),
                            ));
                        }
                    }
                }
                ParameterType::Query => query.push((parameter.vendor_name.clone(), value)),
                _ => {}
            }
        }
        Ok(Self { headers, query })
    }

    /// Sets the parameters on a call, replacing what the caller sent under their names;
    /// the credential is placed afterwards and so is never overridden.
    pub(crate) fn apply(&self, url: &mut Url, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        if self.query.is_empty() {
            return;
        }
        let ours = |k: &str| self.query.iter().any(|(name, _)| name == k);
        if url.query_pairs().any(|(k, _)| ours(&k)) {
            // Re-encoding the caller's query is the price of dropping their value;
            // otherwise it is left exactly as written.
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !ours(k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        url.query_pairs_mut().extend_pairs(&self.query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(json: &str) -> ElementDefinition {
        serde_json::from_str(json).unwrap()
    }

    const ZENDESK_LIKE: &str = r#"{"id": 1, "key": "demo", "name": "Demo", "hookName": "Demo",
        "hub": "crm", "description": "d", "image": "i", "authentication": {"type": "basic"},
        "configuration": [
            {"key": "demo.site", "name": "s", "required": true},
            {"key": "base.url", "name": "b", "default": "https://{demo.site}.example.com/api"},
            {"key": "demo.tenant", "name": "t"}
        ],
        "parameters": [
            {"name": "demo.tenant", "vendorName": "X-Tenant", "type": "configuration", "vendorType": "header"},
            {"name": "7", "vendorName": "version", "type": "value", "vendorType": "query"}
        ]}"#;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    #[test]
    fn defaults_are_filled_and_follow_the_entries_they_name_but_not_the_callers_values() {
        let e = element(ZENDESK_LIKE);
        let template = "https://{demo.site}.example.com/api";
        let mut fresh = config(&[("demo.site", "acme"), ("base.url", template)]);
        fill_defaults(&e, &mut fresh, None, None).unwrap();
        assert_eq!(
            fresh["base.url"].as_deref(),
            Some("https://acme.example.com/api")
        );

        let mut moved = fresh.clone();
        moved.insert("demo.site".into(), Some("globex".into()));
        fill_defaults(&e, &mut moved, Some(&fresh), None).unwrap();
        assert_eq!(
            moved["base.url"].as_deref(),
            Some("https://globex.example.com/api")
        );

        let own = config(&[
            ("demo.site", "acme"),
            ("base.url", "http://127.0.0.1:9/api"),
        ]);
        let mut changed = own.clone();
        changed.insert("demo.site".into(), Some("globex".into()));
        fill_defaults(&e, &mut changed, Some(&own), None).unwrap();
        assert_eq!(
            changed["base.url"].as_deref(),
            Some("http://127.0.0.1:9/api")
        );
    }

    #[test]
    fn only_host_labels_may_fill_a_template_past_its_start() {
        for good in ["acme", "acme-2", "eu.acme", "10.0.0.5"] {
            assert!(is_host_safe(good), "{good}");
        }
        for bad in [
            "evil.com#",
            "a/b",
            "me@x",
            "x?",
            "x:1",
            "a b",
            "a..b",
            ".a",
            "a.",
        ] {
            assert!(!is_host_safe(bad), "{bad}");
        }
        let e = element(ZENDESK_LIKE);
        let mut config = config(&[("demo.site", "10.0.0.5#")]);
        let refused = fill_defaults(&e, &mut config, None, None).unwrap_err();
        assert!(refused.to_string().contains("demo.site"), "{refused}");
    }

    #[test]
    fn parameters_replace_the_callers_and_name_what_is_missing() {
        let e = element(ZENDESK_LIKE);
        let mut url = Url::parse("https://acme.example.com/api/x?version=1&page=2").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-tenant", HeaderValue::from_static("forged"));
        CallParameters::of(&e, &config(&[("demo.tenant", "t-1")]))
            .unwrap()
            .apply(&mut url, &mut headers);
        assert_eq!(url.query(), Some("page=2&version=7"));
        assert_eq!(headers["x-tenant"], "t-1");
        assert_eq!(headers.get_all("x-tenant").iter().count(), 1);
        // An optional value that is not set is not sent.
        let mut headers = HeaderMap::new();
        CallParameters::of(&e, &ConfigMap::new())
            .unwrap()
            .apply(&mut url, &mut headers);
        assert!(headers.get("x-tenant").is_none());
    }
}
