//! Which resource of an element a hub path names.
//!
//! A resource's `path` is stored with its hub (`/hubs/crm/contacts/{id}`); the caller's
//! hub segment means nothing (spec §5.1), so both are compared without it.

use crate::ServiceError;
use http::Method;
use junction_core::ElementDefinition;
use junction_core::hub::{HttpMethod, Resource, ResourceType};
use std::collections::BTreeMap;

/// Values bound to a resource's `{placeholders}`, percent-decoded.
pub(super) type Bindings = BTreeMap<String, String>;

/// What a hub path and method name.
pub(super) enum Route<'a> {
    Resource(&'a Resource, Bindings),
    /// `GET /objects`: the element's declared objects.
    Objects,
    /// `GET /objects/{name}/metadata`.
    ObjectMetadata(String),
}

/// The resource path without its `/hubs/<hub>` prefix.
pub(super) fn hubless(path: &str) -> &str {
    path.strip_prefix("/hubs/")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(path)
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// How well a template matches: literal segments count, so `/contacts/search` beats
/// `/contacts/{id}` for `/contacts/search`. Read without collecting the template's
/// segments: an element has dozens of resources and most differ in the first one.
fn bind(template: &str, path: &[&str]) -> Option<(usize, Bindings)> {
    let mut template = hubless(template).split('/').filter(|s| !s.is_empty());
    let mut literal = 0;
    let mut bindings = Bindings::new();
    for p in path {
        let t = template.next()?;
        if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            let value = percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .ok()?
                .into_owned();
            // A decoded `/` would let one segment stand for two.
            if value.is_empty() || value.contains('/') {
                return None;
            }
            bindings.insert(name.to_owned(), value);
        } else if t == *p {
            literal += 1;
        } else {
            return None;
        }
    }
    template.next().is_none().then_some((literal, bindings))
}

fn http_method(m: &Method) -> Option<HttpMethod> {
    Some(match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => return None,
    })
}

/// The most specific resource for `path` (hub segment already removed) and `method`.
/// Only `api` resources are routes; the others are steps Junction runs itself.
pub(super) fn find<'a>(
    element: &'a ElementDefinition,
    method: &Method,
    path: &str,
) -> Result<Route<'a>, ServiceError> {
    let wanted = segments(path);
    let routable =
        |r: &&Resource| matches!(r.kind, ResourceType::Api | ResourceType::ApiNoDocumentation);
    let mut best: Option<(usize, &Resource, Bindings)> = None;
    let mut allowed: Vec<&'static str> = Vec::new();
    for resource in element.resources.iter().filter(routable) {
        let Some((score, bindings)) = bind(&resource.path, &wanted) else {
            continue;
        };
        if Some(resource.method) != http_method(method) {
            allowed.push(resource.method.as_str());
            continue;
        }
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, resource, bindings));
        }
    }
    if let Some((_, resource, bindings)) = best {
        return Ok(Route::Resource(resource, bindings));
    }
    // The standard resources every element has, unless it declares its own.
    match (method, wanted.as_slice()) {
        (&Method::GET, ["objects"]) => return Ok(Route::Objects),
        (&Method::GET, ["objects", name, "metadata"]) => {
            let name = percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned();
            return Ok(Route::ObjectMetadata(name));
        }
        _ => {}
    }
    if !allowed.is_empty() {
        allowed.sort_unstable();
        allowed.dedup();
        return Err(ServiceError::MethodNotAllowed {
            element: element.key.clone(),
            method: method.to_string(),
            resource: path.to_owned(),
            allowed,
        });
    }
    Err(ServiceError::ResourceNotFound {
        element: element.key.clone(),
        resource: format!("{method} {path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(resources: serde_json::Value) -> ElementDefinition {
        serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "basic"},
            "resources": resources,
        }))
        .unwrap()
    }

    #[test]
    fn the_most_specific_resource_wins_and_placeholders_bind_decoded_segments() {
        let e = element(serde_json::json!([
            {"path": "/hubs/crm/contacts/{id}", "method": "GET", "vendorPath": "/c/{id}"},
            {"path": "/hubs/crm/contacts/search", "method": "GET", "vendorPath": "/s"},
        ]));
        let Ok(Route::Resource(r, _)) = find(&e, &Method::GET, "/contacts/search") else {
            panic!("no match");
        };
        assert_eq!(r.vendor_path, "/s");
        let Ok(Route::Resource(r, b)) = find(&e, &Method::GET, "/contacts/a%20b") else {
            panic!("no match");
        };
        assert_eq!(r.vendor_path, "/c/{id}");
        assert_eq!(b["id"], "a b");
        assert!(find(&e, &Method::GET, "/contacts/a%2Fb").is_err());
        // A path longer or shorter than every template names no resource.
        for path in ["/contacts/1/notes", "/contacts/search/x", "/"] {
            assert!(
                matches!(
                    find(&e, &Method::GET, path),
                    Err(ServiceError::ResourceNotFound { .. })
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn another_method_on_a_known_path_is_405_and_an_unknown_path_404() {
        let e = element(serde_json::json!([
            {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/c"},
            {"path": "/hubs/crm/contacts", "method": "POST", "vendorPath": "/c"},
        ]));
        match find(&e, &Method::DELETE, "/contacts") {
            Err(ServiceError::MethodNotAllowed { allowed, .. }) => {
                assert_eq!(allowed, vec!["GET", "POST"]);
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            find(&e, &Method::GET, "/leads"),
            Err(ServiceError::ResourceNotFound { .. })
        ));
        assert!(matches!(
            find(&e, &Method::GET, "/objects"),
            Ok(Route::Objects)
        ));
    }
}
