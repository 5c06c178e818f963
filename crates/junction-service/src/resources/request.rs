//! The vendor call a hub request becomes, from the element's and the resource's
//! `parameters` (spec §6.3): each takes a value from one side of the hub request (its
//! path, query, headers, body, the instance's configuration, or a literal) and puts it
//! on one side of the vendor call.

use super::paging::NextPage;
use super::route::Bindings;
use crate::ServiceError;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use junction_core::ElementDefinition;
use junction_core::config::ConfigMap;
use junction_core::credential::CredentialTemplate;
use junction_core::element::CredentialLocation;
use junction_core::hub::{PageSizeIn, Parameter, ParameterSource, ParameterType, Resource};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Query parameters the engine reads itself; they never reach the vendor as sent.
pub(super) const ENGINE_PARAMETERS: [&str; 6] =
    ["where", "orderBy", "fields", "page", "pageSize", "nextPage"];

/// The hub request's query: decoded pairs, and each pair as the caller wrote it. Borrowed
/// from the request: a pair that needs no decoding (a page token never does) is not
/// copied.
#[derive(Debug, Default)]
pub(super) struct HubQuery<'q> {
    pairs: Vec<(Cow<'q, str>, Cow<'q, str>, &'q str)>,
}

impl<'q> HubQuery<'q> {
    pub(super) fn parse(raw: Option<&'q str>) -> Self {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                // Without `+` or `%` there is nothing to decode; finding neither with
                // one vectorized search costs less than the decoder's passes over a
                // page token.
                let (k, v) = match memchr::memchr2(b'+', b'%', p.as_bytes()) {
                    None => {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (Cow::Borrowed(k), Cow::Borrowed(v))
                    }
                    Some(_) => url::form_urlencoded::parse(p.as_bytes())
                        .next()
                        .unwrap_or_default(),
                };
                (k, v, p)
            })
            .collect();
        Self { pairs }
    }

    /// The pairs as a JSON object (the last of a repeated name wins), for hooks.
    pub(super) fn as_json(&self) -> Map<String, Value> {
        self.pairs
            .iter()
            .map(|(k, v, _)| {
                (
                    k.clone().into_owned(),
                    Value::String(v.clone().into_owned()),
                )
            })
            .collect()
    }

    /// Every decoded pair but the walk's own (`page`, `nextPage`), sorted: what shaped
    /// the pages a token walks.
    pub(super) fn shaping_pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .filter(|(k, _, _)| k != "page" && k != "nextPage")
            .map(|(k, v, _)| (k.as_ref(), v.as_ref()))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _, _)| k == name)
            .map(|(_, v, _)| v.as_ref())
    }
}

/// A vendor request body.
#[derive(Debug, Clone, Default)]
pub(super) enum VendorBody {
    #[default]
    Empty,
    Json(Value),
    Form(Vec<(String, String)>),
    /// `multipart/form-data` text fields, each named once, between `boundary` lines.
    Multipart {
        boundary: String,
        fields: Vec<(String, String)>,
    },
}

impl VendorBody {
    /// A multipart body of `fields`, with a boundary no value contains.
    fn multipart(fields: Vec<(String, String)>) -> Self {
        let boundary = loop {
            let candidate = format!("junction-{}", uuid::Uuid::new_v4().simple());
            if !fields.iter().any(|(_, v)| v.contains(&candidate)) {
                break candidate;
            }
        };
        Self::Multipart { boundary, fields }
    }
}

/// The bytes of a `multipart/form-data` body of text fields (RFC 7578). Written here
/// rather than with reqwest's multipart form, which streams: a vendor call is sent from
/// buffered bytes, so that it can be logged, paced and sent again. A name escapes `"`,
/// CR and LF as browsers do (RFC 7578 §2, WHATWG's form encoding).
pub(super) fn multipart_bytes(boundary: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in fields {
        let name = name
            .replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        out.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

/// A vendor call before the credential and the base URL.
#[derive(Debug, Clone, Default)]
pub(super) struct VendorRequest {
    pub method: Method,
    /// Starts with `/`, percent-encoded.
    pub path: String,
    /// Pairs as the caller wrote them, passed on unchanged.
    pub passed_query: Vec<String>,
    /// Pairs Junction sets, encoded when sent; a later one replaces an earlier one.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: VendorBody,
}

impl VendorRequest {
    /// The query string to send.
    pub(super) fn query_string(&self) -> String {
        let mut out = self.passed_query.join("&");
        if !self.query.is_empty() {
            // From 0: a pair after the passed ones is joined to them by `&`.
            let mut encoder = url::form_urlencoded::Serializer::for_suffix(out, 0);
            for (k, v) in &self.query {
                encoder.append_pair(k, v);
            }
            out = encoder.finish();
        }
        out
    }

    /// Takes over a next-page URL (already checked to be on the origin of `base`, the
    /// instance's `base.url`): its path and query become this request's, so hooks see
    /// the page actually fetched and what they change is what is sent. Parameters in
    /// `own` (those Junction sets on every call, the credential among them) are
    /// dropped: Junction sets them again when sending, and a vendor may echo the token in
    /// its next URL, as Graph does. Returns the origin to send to when the URL lies
    /// outside `base`'s path, whose path then stays whole.
    pub(super) fn follow(
        &mut self,
        base: &url::Url,
        next: &NextPage<'_>,
        own: &[String],
    ) -> Option<url::Url> {
        let prefix = base.path().trim_end_matches('/');
        let root = match next.path().strip_prefix(prefix) {
            Some(rest) if rest.starts_with('/') => {
                self.path = rest.to_owned();
                None
            }
            _ => {
                self.path = next.path().to_owned();
                Some(next.origin(base))
            }
        };
        self.passed_query = next
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                let name = url::form_urlencoded::parse(name.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                !own.contains(&name)
            })
            .map(str::to_owned)
            .collect();
        self.query.clear();
        root
    }

    /// Sets `name` to `value`, replacing what was there.
    pub(super) fn set_query(&mut self, name: &str, value: String) {
        self.query.retain(|(k, _)| k != name);
        self.query.push((name.to_owned(), value));
    }

    pub(super) fn set_header(&mut self, name: &str, value: &str) -> Result<(), ServiceError> {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(ServiceError::bad_request(
                "invalid_parameter",
                format!("the value for the '{name}' header cannot be sent in a header"),
            ));
        };
        if junction_oauth::is_reserved_request_header(&name) {
            return Err(ServiceError::bad_request(
                "invalid_parameter",
                format!("Junction sets the '{name}' header of a vendor call itself"),
            ));
        }
        self.headers.insert(name, value);
        Ok(())
    }
}

/// What the hub request offers the mapping.
pub(super) struct Incoming<'a> {
    pub bindings: &'a Bindings,
    pub query: &'a HubQuery<'a>,
    pub headers: &'a HeaderMap,
    /// The JSON body, when there is one.
    pub body: Option<&'a Value>,
    pub config: &'a ConfigMap,
}

/// The element's and the resource's request-side parameters, element first. Element
/// parameters that put a configuration value or a literal in a header or the query go
/// on every provider call already (see `templates::CallParameters`).
fn request_parameters<'a>(
    element: &'a ElementDefinition,
    resource: &'a Resource,
) -> impl Iterator<Item = &'a Parameter> {
    let every_call = |p: &&Parameter| {
        matches!(p.kind, ParameterType::Value | ParameterType::Configuration)
            && matches!(p.vendor_type, ParameterType::Header | ParameterType::Query)
    };
    element
        .parameters
        .iter()
        .filter(move |p| !every_call(p))
        .chain(resource.parameters.iter())
        .filter(|p| p.source == ParameterSource::Request)
}

/// A dotted path into a JSON value (`a.b.c`).
pub(super) fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, key| match v {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

fn insert_at(target: &mut Map<String, Value>, path: &str, value: Value) {
    let mut keys = path.split('.').filter(|s| !s.is_empty()).peekable();
    let mut current = target;
    while let Some(key) = keys.next() {
        if keys.peek().is_none() {
            current.insert(key.to_owned(), value);
            return;
        }
        let next = current
            .entry(key.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(map) = next else { return };
        current = map;
    }
}

/// A value as text for a path, query, header or form field.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The hub side's value of `p`, if the request has one.
fn hub_value(p: &Parameter, incoming: &Incoming<'_>) -> Option<Value> {
    let string = |s: &str| Some(Value::String(s.to_owned()));
    match p.kind {
        ParameterType::Path => incoming.bindings.get(&p.name).and_then(|v| string(v)),
        ParameterType::Query => incoming.query.get(&p.name).and_then(string),
        ParameterType::Header => incoming
            .headers
            .get(p.name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(string),
        ParameterType::Body => incoming.body.cloned(),
        ParameterType::BodyField => incoming.body.and_then(|b| lookup(b, &p.name)).cloned(),
        ParameterType::Form => incoming.body.and_then(|b| b.get(&p.name)).cloned(),
        ParameterType::Configuration => incoming
            .config
            .get(&p.name)
            .cloned()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(Value::String),
        ParameterType::Value => string(&p.name),
        _ => None,
    }
}

/// The query parameters Junction puts on every call to the element's provider: the
/// OAuth credential when it travels in the query, credential templates in the query,
/// and element parameters that put a literal or a configuration value there.
pub(super) fn own_query_names(element: &ElementDefinition) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(oauth) = &element.oauth
        && oauth.credential.location == CredentialLocation::Query
    {
        names.push(oauth.credential.name.clone());
    }
    for template in &element.credentials {
        if let CredentialTemplate::Query { name, .. } = template {
            names.push(name.clone());
        }
    }
    for p in &element.parameters {
        if matches!(p.kind, ParameterType::Value | ParameterType::Configuration)
            && p.vendor_type == ParameterType::Query
        {
            names.push(p.vendor_name.clone());
        }
    }
    names
}

/// Builds the vendor call. Hub query parameters that no parameter reads and that are
/// not the engine's own pass through unchanged.
pub(super) fn build(
    element: &ElementDefinition,
    resource: &Resource,
    incoming: &Incoming<'_>,
) -> Result<VendorRequest, ServiceError> {
    let mut path = resource.vendor_path.clone();
    let mut request = VendorRequest {
        method: resource.vendor_method.map_or_else(
            || method_of(resource.method.as_str()),
            |m| method_of(m.as_str()),
        ),
        path: String::new(),
        passed_query: Vec::new(),
        query: Vec::new(),
        headers: HeaderMap::new(),
        body: VendorBody::Empty,
    };
    let mut read_from_query: Vec<&str> = Vec::new();
    let mut json_body: Option<Value> = None;
    let mut form: Vec<(String, String)> = Vec::new();
    let mut multipart: Vec<(String, String)> = Vec::new();
    for p in request_parameters(element, resource) {
        if p.kind == ParameterType::Query {
            read_from_query.push(&p.name);
        }
        let Some(value) = hub_value(p, incoming) else {
            if p.required {
                return Err(ServiceError::bad_request(
                    "missing_parameter",
                    format!(
                        "the {} parameter '{}' is required by this resource",
                        kind_name(p.kind),
                        p.name
                    ),
                ));
            }
            continue;
        };
        match p.vendor_type {
            ParameterType::Path => {
                let encoded =
                    percent_encoding::utf8_percent_encode(&text(&value), SEGMENT).to_string();
                path = path.replace(&format!("{{{}}}", p.vendor_name), &encoded);
            }
            ParameterType::Query => request.set_query(&p.vendor_name, text(&value)),
            ParameterType::Header => request.set_header(&p.vendor_name, &text(&value))?,
            ParameterType::Body => json_body = Some(value),
            ParameterType::BodyField => {
                let body = json_body.get_or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = body {
                    insert_at(map, &p.vendor_name, value);
                }
            }
            ParameterType::Form => form.push((p.vendor_name.clone(), text(&value))),
            // A later parameter replaces an earlier one of the same field, so a literal
            // default can precede the caller's value.
            ParameterType::Multipart => {
                multipart.retain(|(name, _)| *name != p.vendor_name);
                multipart.push((p.vendor_name.clone(), text(&value)));
            }
            _ => {}
        }
    }
    // A placeholder no parameter filled takes the hub path's value of the same name.
    for (name, value) in incoming.bindings {
        let encoded = percent_encoding::utf8_percent_encode(value, SEGMENT).to_string();
        path = path.replace(&format!("{{{name}}}"), &encoded);
    }
    if path.contains('{') {
        return Err(ServiceError::Internal(format!(
            "element '{}': vendor path '{}' keeps an unfilled placeholder",
            element.key, resource.vendor_path
        )));
    }
    request.path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let owned = owned_query_names(element, resource);
    for (key, _, raw) in &incoming.query.pairs {
        if ENGINE_PARAMETERS.contains(&key.as_ref()) || read_from_query.contains(&key.as_ref()) {
            continue;
        }
        if owned.contains(&key.as_ref()) {
            return Err(ServiceError::bad_request(
                "invalid_parameter",
                format!(
                    "'{key}' is a vendor parameter Junction sets for this resource (paging, \
                     page size, query or a declared parameter); use pageSize, page, nextPage \
                     or where instead"
                ),
            ));
        }
        request.passed_query.push((*raw).to_owned());
    }
    request.body = if !form.is_empty() {
        VendorBody::Form(form)
    } else if !multipart.is_empty() {
        VendorBody::multipart(multipart)
    } else if let Some(body) = json_body {
        VendorBody::Json(body)
    } else {
        VendorBody::Empty
    };
    if !request.headers.contains_key(ACCEPT) {
        request
            .headers
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
    }
    let content_type = match &request.body {
        VendorBody::Json(_) => Some("application/json".to_owned()),
        VendorBody::Form(_) => Some("application/x-www-form-urlencoded".to_owned()),
        VendorBody::Multipart { boundary, .. } => {
            Some(format!("multipart/form-data; boundary={boundary}"))
        }
        VendorBody::Empty => None,
    };
    if let Some(content_type) = content_type
        && !request.headers.contains_key(CONTENT_TYPE)
    {
        let value = HeaderValue::from_str(&content_type)
            .map_err(|e| ServiceError::Internal(format!("content type: {e}")))?;
        request.headers.insert(CONTENT_TYPE, value);
    }
    Ok(request)
}

/// The vendor query parameters the engine itself sets for `resource`: its paging
/// position and page size, its SOQL/JQL statement or filter-rule parameters, and every
/// declared parameter sent in the query. A caller's pair of the same name would shadow or
/// duplicate them (vendors differ on which of two values they read), so it is refused.
pub(super) fn owned_query_names<'a>(
    element: &'a ElementDefinition,
    resource: &'a Resource,
) -> Vec<&'a str> {
    let mut names: Vec<&str> = element
        .parameters
        .iter()
        .chain(resource.parameters.iter())
        .filter(|p| p.source == ParameterSource::Request && p.vendor_type == ParameterType::Query)
        .map(|p| p.vendor_name.as_str())
        .collect();
    if let Some(paging) = &resource.paging {
        names.extend(paging.param.as_deref());
        if paging.page_size.location == PageSizeIn::Query {
            names.push(&paging.page_size.name);
        }
    }
    if let Some(query) = &resource.query {
        names.extend(query.parameter.as_deref());
        names.extend(query.rules.iter().map(|r| r.parameter.as_str()));
    }
    names
}

fn method_of(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

fn kind_name(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::Path => "path",
        ParameterType::Query => "query",
        ParameterType::Header => "header",
        ParameterType::Body => "body",
        ParameterType::BodyField => "body field",
        ParameterType::Form => "form",
        ParameterType::Multipart => "multipart",
        ParameterType::Configuration => "configuration",
        _ => "request",
    }
}

/// Characters escaped in one path segment: everything but RFC 3986 unreserved ones and
/// `:` and `@`, which a segment carries as they are (RFC 3986 `pchar`). Vendors write ids
/// with them (Act-On's `l-0001:2a`), and a server that routes on the raw path may not
/// match `%3A`.
pub(super) const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// `source: response` parameters: values of the vendor's answer (a body field or a
/// header) that become the instance's configuration.
/// Whether a response-side parameter reads the vendor's body (which may point into the
/// records themselves).
pub(super) fn reads_response_body(element: &ElementDefinition, resource: &Resource) -> bool {
    element
        .parameters
        .iter()
        .chain(resource.parameters.iter())
        .any(|p| {
            p.source == ParameterSource::Response
                && matches!(
                    p.vendor_type,
                    ParameterType::BodyField | ParameterType::Body
                )
        })
}

pub(super) fn response_configuration(
    element: &ElementDefinition,
    resource: &Resource,
    body: Option<&Value>,
    headers: &HeaderMap,
) -> Vec<(String, String)> {
    element
        .parameters
        .iter()
        .chain(resource.parameters.iter())
        .filter(|p| p.source == ParameterSource::Response)
        .filter(|p| p.kind == ParameterType::Configuration)
        .filter_map(|p| {
            let value = match p.vendor_type {
                ParameterType::BodyField | ParameterType::Body => {
                    body.and_then(|b| lookup(b, &p.vendor_name)).map(text)
                }
                ParameterType::Header => headers
                    .get(p.vendor_name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                _ => None,
            }?;
            Some((p.name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_get() -> VendorRequest {
        VendorRequest {
            method: Method::GET,
            path: "/first".to_owned(),
            passed_query: vec!["q=1".to_owned()],
            query: vec![("limit".to_owned(), "10".to_owned())],
            headers: HeaderMap::new(),
            body: VendorBody::Empty,
        }
    }

    #[test]
    fn the_query_sent_is_the_passed_pairs_then_junctions_encoded() {
        let mut page = empty_get();
        assert_eq!(page.query_string(), "q=1&limit=10");
        page.set_query("where", "a b&c=é".to_owned());
        assert_eq!(page.query_string(), "q=1&limit=10&where=a+b%26c%3D%C3%A9");
        page.passed_query.clear();
        assert_eq!(page.query_string(), "limit=10&where=a+b%26c%3D%C3%A9");
        page.query.clear();
        assert_eq!(page.query_string(), "");
        page.passed_query = vec!["a=1".to_owned(), "b".to_owned()];
        assert_eq!(page.query_string(), "a=1&b");
    }

    #[test]
    fn a_next_url_under_the_base_path_becomes_a_path_below_it_without_junctions_parameters() {
        let base = url::Url::parse("https://graph.example/v2.11").unwrap();
        let next = url::Url::parse(
            "https://graph.example/v2.11/1/leads?access_token=t&limit=10&after=QVFI%3D",
        )
        .unwrap();
        let mut page = empty_get();
        let root = page.follow(&base, &NextPage::Parsed(next), &["access_token".to_owned()]);
        assert!(root.is_none());
        assert_eq!(page.path, "/1/leads");
        assert_eq!(page.query_string(), "limit=10&after=QVFI%3D");
    }

    #[test]
    fn a_next_url_outside_the_base_path_is_sent_from_the_origin_whole() {
        let base = url::Url::parse("https://v.example/api/v1/").unwrap();
        let next = url::Url::parse("https://v.example/api/v2/items?page=2").unwrap();
        let mut page = empty_get();
        let root = page.follow(&base, &NextPage::Parsed(next), &[]);
        assert_eq!(
            root.map(String::from).as_deref(),
            Some("https://v.example/")
        );
        assert_eq!(page.path, "/api/v2/items");
        assert_eq!(page.query_string(), "page=2");
        // A sibling whose name only starts like the base path is outside it too.
        let next = url::Url::parse("https://v.example/api/v10/items").unwrap();
        assert!(page.follow(&base, &NextPage::Parsed(next), &[]).is_some());
    }

    #[test]
    fn dotted_paths_read_and_write_nested_fields() {
        let v = serde_json::json!({"a": {"b": [1, {"c": 2}]}});
        assert_eq!(lookup(&v, "a.b.1.c"), Some(&serde_json::json!(2)));
        let mut m = Map::new();
        insert_at(&mut m, "x.y", serde_json::json!(3));
        assert_eq!(Value::Object(m), serde_json::json!({"x": {"y": 3}}));
    }

    #[test]
    fn a_path_value_keeps_colons_and_ats_and_escapes_the_rest() {
        let encoded = |v: &str| percent_encoding::utf8_percent_encode(v, SEGMENT).to_string();
        assert_eq!(encoded("l-0001:2a"), "l-0001:2a");
        assert_eq!(encoded("a@b.c_d~e"), "a@b.c_d~e");
        assert_eq!(encoded("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
    }

    #[test]
    fn multipart_fields_are_parts_between_boundaries_with_names_escaped() {
        let fields = vec![
            ("listname".to_owned(), "Webinar \"Q3\"".to_owned()),
            (
                "a\"b\r\nc".to_owned(),
                "[{\"columnHeading\":\"E-mail\"}]".to_owned(),
            ),
        ];
        let body = String::from_utf8(multipart_bytes("XyZ", &fields)).unwrap();
        assert_eq!(
            body,
            "--XyZ\r\nContent-Disposition: form-data; name=\"listname\"\r\n\r\nWebinar \"Q3\"\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"a%22b%0D%0Ac\"\r\n\r\n[{\"columnHeading\":\"E-mail\"}]\r\n\
             --XyZ--\r\n"
        );
        let VendorBody::Multipart { boundary, .. } = VendorBody::multipart(fields.clone()) else {
            panic!("a multipart body");
        };
        assert!(fields.iter().all(|(_, v)| !v.contains(&boundary)));
    }

    #[test]
    fn query_pairs_decode_as_forms_do() {
        for raw in [
            "a=1",
            "a",
            "a=",
            "=1",
            "a=1=2",
            "a+b=c+d",
            "a%20b=c%2Bd",
            "a=%FF",
            "a=%zz",
            "caf\u{e9}=\u{1f600}",
            "nextPage=QUJD-_x",
            "a=b&c",
        ] {
            let expected: Vec<(String, String)> = raw
                .split('&')
                .map(|p| {
                    url::form_urlencoded::parse(p.as_bytes())
                        .next()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .unwrap_or_default()
                })
                .collect();
            let parsed: Vec<(String, String)> = HubQuery::parse(Some(raw))
                .pairs
                .iter()
                .map(|(k, v, _)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parsed, expected, "{raw}");
        }
        let q = HubQuery::parse(Some("nextPage=QUJD-_x&pageSize=200"));
        assert!(
            q.pairs
                .iter()
                .all(|(k, v, _)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_))))
        );
    }

    #[test]
    fn the_callers_own_query_pairs_pass_as_written_and_engine_ones_stay() {
        let q = HubQuery::parse(Some("a=1%2B1&where=x%3D1&b"));
        assert_eq!(q.get("a"), Some("1+1"));
        let kept: Vec<&str> = q
            .pairs
            .iter()
            .filter(|(k, _, _)| !ENGINE_PARAMETERS.contains(&k.as_ref()))
            .map(|(_, _, raw)| *raw)
            .collect();
        assert_eq!(kept, vec!["a=1%2B1", "b"]);
    }
}
