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
        .and_then(|rest| rest.bytes().position(|b| b == b'/').map(|i| &rest[i..]))
        .unwrap_or(path)
}

/// A path's segments, empty ones skipped. Split by hand: `str::split` sets up a
/// substring search per segment, which costs more than these short segments do.
struct Segments<'a>(&'a str);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.0.is_empty() {
                return None;
            }
            let end = self.0.bytes().position(|b| b == b'/');
            let (segment, rest) = match end {
                Some(end) => (&self.0[..end], &self.0[end + 1..]),
                None => (self.0, ""),
            };
            self.0 = rest;
            if !segment.is_empty() {
                return Some(segment);
            }
        }
    }
}

/// A `{placeholder}`'s name.
fn placeholder(segment: &str) -> Option<&str> {
    segment.strip_prefix('{').and_then(|n| n.strip_suffix('}'))
}

/// A path segment as a placeholder's value: percent-decoded, and only when it stands
/// for one segment (a decoded `/` would let one stand for two).
fn bound_value(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    let value = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    (!value.is_empty() && !value.contains('/')).then_some(value)
}

/// How well a template matches: literal segments count, so `/contacts/search` beats
/// `/contacts/{id}` for `/contacts/search`. Nothing is copied: an element has dozens of
/// resources, most differ in the first segment, and only the winner's values are bound
/// (by [`bindings`]).
fn score(template: &str, path: &[&str]) -> Option<usize> {
    let mut template = Segments(hubless(template));
    let mut literal = 0;
    for p in path {
        let t = template.next()?;
        if placeholder(t).is_some() {
            bound_value(p)?;
        } else if t == *p {
            literal += 1;
        } else {
            return None;
        }
    }
    template.next().is_none().then_some(literal)
}

/// The values `path` binds to the placeholders of `template`, which [`score`] matched.
fn bindings(template: &str, path: &[&str]) -> Bindings {
    let mut bindings = Bindings::new();
    for (t, p) in Segments(hubless(template)).zip(path) {
        if let (Some(name), Some(value)) = (placeholder(t), bound_value(p)) {
            bindings.insert(name.to_owned(), value.into_owned());
        }
    }
    bindings
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
    let wanted: Vec<&str> = Segments(path).collect();
    let wanted_method = http_method(method);
    let routable = || {
        element
            .resources
            .iter()
            .filter(|r| matches!(r.kind, ResourceType::Api | ResourceType::ApiNoDocumentation))
    };
    let mut best: Option<(usize, &Resource)> = None;
    for resource in routable().filter(|r| Some(r.method) == wanted_method) {
        let Some(score) = score(&resource.path, &wanted) else {
            continue;
        };
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, resource));
        }
    }
    if let Some((_, resource)) = best {
        let bindings = bindings(&resource.path, &wanted);
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
    let mut allowed: Vec<&'static str> = routable()
        .filter(|r| score(&r.path, &wanted).is_some())
        .map(|r| r.method.as_str())
        .collect();
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
    fn segments_are_the_non_empty_parts_between_slashes() {
        for path in [
            "",
            "/",
            "//",
            "a",
            "/a",
            "a/",
            "/a/b",
            "//a//b//",
            "/caf\u{e9}/\u{1f600}/x",
            "/%2F/{id}",
        ] {
            let expected: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(Segments(path).collect::<Vec<_>>(), expected, "{path:?}");
        }
        assert_eq!(hubless("/hubs/crm/contacts/{id}"), "/contacts/{id}");
        assert_eq!(hubless("/hubs/crm"), "/hubs/crm");
        assert_eq!(hubless("/contacts"), "/contacts");
    }

    #[test]
    fn placeholders_repeated_in_a_template_bind_the_last_value() {
        let e = element(serde_json::json!([
            {"path": "/hubs/crm/a/{id}/b/{id}", "method": "GET", "vendorPath": "/x/{id}"},
        ]));
        let Ok(Route::Resource(_, b)) = find(&e, &Method::GET, "/a/1/b/2") else {
            panic!("no match");
        };
        assert_eq!(b.len(), 1);
        assert_eq!(b["id"], "2");
        assert!(find(&e, &Method::GET, "/a/1/b/%FF").is_err());
        assert!(find(&e, &Method::GET, "/a/1/c/2").is_err());
    }

    #[test]
    fn another_method_on_a_known_path_is_405_and_an_unknown_path_404() {
        let e = element(serde_json::json!([
            {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/c"},
            {"path": "/hubs/crm/contacts", "method": "POST", "vendorPath": "/c"},
        ]));
        for method in [Method::DELETE, Method::HEAD] {
            match find(&e, &method, "/contacts") {
                Err(ServiceError::MethodNotAllowed { allowed, .. }) => {
                    assert_eq!(allowed, vec!["GET", "POST"]);
                }
                _ => panic!("expected 405"),
            }
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
