//! Extractors whose rejections speak the API's error format.

use super::error::ApiError;
use super::limit::CallerPermit;
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use junction_service::{Addressing, Caller, Services};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::error::Category;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// What the layers and extractors inside leave for `RequestContext` (in `mod.rs`) to act on once the
/// response is ready: one shared record per request (one allocation and one extension,
/// not one of each per item).
#[derive(Default)]
pub struct Slots {
    /// The instance whose Element token authenticated the call, named by the response in
    /// `Elements-Element-Instance-Id`.
    pub instance: OnceLock<i64>,
    /// The caller's permit (see `limit.rs`), held until the response is ready rather than
    /// as long as the extractor lives.
    pub permit: Mutex<Option<CallerPermit>>,
    /// The route template the request matched (see `note_route`).
    pub route: OnceLock<RouteNote>,
}

#[derive(Clone, Default)]
pub struct RequestSlots(pub Arc<Slots>);

/// A route template: as the router matched it, or named by the code that dispatched the
/// request without the router (the passthrough).
pub enum RouteTemplate {
    Matched(MatchedPath),
    Fixed(&'static str),
}

impl RouteTemplate {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Matched(path) => path.as_str(),
            Self::Fixed(path) => path,
        }
    }
}

/// A matched route template and the prefix it was matched without (the API's templates
/// are matched below `/elements/api-v2`): the two halves of its name in metrics and spans.
pub struct RouteNote {
    pub prefix: &'static str,
    pub template: RouteTemplate,
}

pub(crate) fn note_instance(parts: &Parts, caller: &Caller) {
    if let (Some(slots), Some(id)) = (
        parts.extensions.get::<RequestSlots>(),
        caller.only_instance(),
    ) {
        let _ = slots.0.instance.set(id.0);
    }
}

/// A JSON body; malformed JSON, wrong types, a missing content type and oversized bodies
/// each get a 4xx that says which, in the API's terms rather than Rust's.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON with 'Content-Type: application/json'",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Self)
    }
}

/// An optional JSON body: none at all (or `null`) is `None`, whatever the content type.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        parse_json::<Option<T>>(&bytes).map(Self)
    }
}

/// `application/json` or any `+json` type, as axum's own `Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the 1 MiB limit",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body could not be read",
        )
    }
}

/// Deserializes a body, naming the field at fault by its path in the JSON.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON can carry NUL only as the escape `\u0000`: a body without that text needs no
    // second look. One that has it is searched for the field that holds the character
    // (a body that is not JSON at all gets its syntax error below).
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && let Some(path) = nul_at(&value, &mut String::new())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("{path} contains a NUL character (\\u0000), which Junction does not accept"),
        ));
    }
    // Tracking the path costs every body about as much as parsing it, and only a body
    // that fails needs it: that one is parsed again, with the same outcome, to name it.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            invalid_body(&path, e.inner())
        })
        .and_then(|v| de.end().map(|()| v).map_err(|e| invalid_body(".", &e)))?;
    Ok(value)
}

/// Where a NUL character occurs in a request body, keys included. PostgreSQL cannot store
/// one in text, and no name, tag, address or configuration value needs one, so every body
/// is held to the same rule on both databases.
fn nul_at(value: &Value, path: &mut String) -> Option<String> {
    let shown = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(shown(path)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_at(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&key.replace('\0', "\\u0000"));
            let found = if key.contains('\0') {
                Some(shown(path))
            } else {
                nul_at(item, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

fn invalid_body(path: &str, error: &serde_json::Error) -> ApiError {
    let text = error.to_string();
    // serde_json appends the position; it helps with syntax, not with a field's type.
    let bare = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let message = match error.classify() {
        Category::Syntax | Category::Eof => format!("the request body is not valid JSON: {text}"),
        Category::Data | Category::Io => {
            format!("invalid request body: {}", user_terms(bare, path))
        }
    };
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

/// serde's data errors, which name Rust types ("expected struct InstanceBody", "u64"),
/// restated in JSON's terms.
fn user_terms(message: &str, path: &str) -> String {
    let root = path.is_empty() || path == ".";
    let at = if root {
        "the body".to_owned()
    } else {
        format!("`{path}`")
    };
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|f| f.strip_suffix('`'))
    {
        return if root {
            format!("`{field}` is required")
        } else {
            format!("`{path}.{field}` is required")
        };
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((got, expected)) = mismatch.and_then(|m| m.split_once(", expected ")) {
        return format!(
            "{at} must be {}, got {}",
            expected_terms(expected),
            got_terms(got)
        );
    }
    if let Some((_, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|m| m.split_once(", expected "))
    {
        return format!(
            "{at} has the wrong number of items: expected {}",
            expected_terms(expected)
        );
    }
    // Unknown fields and variants are named by their JSON spelling already.
    format!("{at}: {message}")
}

fn expected_terms(expected: &str) -> String {
    let e = expected.trim();
    let plain = match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "sequence" => "an array",
        "a map" | "map" => "an object",
        "unit" => "null",
        _ if e.starts_with("struct ") => "an object",
        _ if e.starts_with("tuple") || e.starts_with("a tuple") => "an array",
        _ if e.starts_with("enum ") || e.starts_with("variant ") => "one of the allowed values",
        // Hand-written expectations ("a string or a number") are already in plain words.
        _ if e.starts_with("a ") || e.starts_with("an ") || e.starts_with("one of") => e,
        _ => "a value of another type",
    };
    plain.to_owned()
}

fn got_terms(got: &str) -> String {
    let quoted = |rest: &str| rest.trim().trim_matches('`').to_owned();
    if let Some(n) = got
        .strip_prefix("integer ")
        .or_else(|| got.strip_prefix("floating point "))
    {
        return format!("the number {}", quoted(n));
    }
    if let Some(b) = got.strip_prefix("boolean ") {
        return quoted(b);
    }
    match got {
        _ if got.starts_with("string ") => "a string",
        "map" => "an object",
        "sequence" => "an array",
        "null" | "unit" => "null",
        _ => "a value of another type",
    }
    .to_owned()
}

/// A yes/no query parameter (`expand=true`, `hydrate=false`); absent is no, and anything
/// but `true` or `false` (any case) is a 400 naming it.
pub fn query_flag(raw: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let mut flag = false;
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if key != name {
            continue;
        }
        flag = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("{name} must be true or false"),
                ));
            }
        };
    }
    Ok(flag)
}

/// The `Authorization` header's text, if any.
pub fn authorization_header(parts: &Parts) -> Result<Option<&str>, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header is not valid text",
                )
            })
        })
        .transpose()
}

/// The address failed authentications are counted against: the TCP peer, or with
/// `JUNCTION_TRUST_FORWARDED_FOR` the last `X-Forwarded-For` entry (the one the proxy in
/// front of Junction added; earlier ones are whatever the client wrote).
pub fn client_address(parts: &Parts, services: &Services) -> Option<IpAddr> {
    if services.auth_failures.trusts_forwarded_for()
        && let Some(forwarded) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or_default())
            .flat_map(|v| v.split(','))
            .last()
    {
        return Some(forwarded_address(forwarded.trim()));
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Stands for every `X-Forwarded-For` entry that names no address. Falling back to the
/// peer instead would put every client of the proxy in one bucket, and one guesser
/// would lock them all out; this way only clients the proxy could not name share one.
const UNNAMED_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// The client address in a proxy's `X-Forwarded-For` entry: a bare address, or one with
/// a port (`1.2.3.4:567`, `[::1]:80`) or in brackets (`[::1]`).
fn forwarded_address(entry: &str) -> IpAddr {
    let parsed = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry)
                .parse::<IpAddr>()
        });
    match parsed {
        Ok(address) => address,
        Err(_) => {
            static REPORTED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            let entry: String = entry.chars().take(64).collect();
            if REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!(entry, "X-Forwarded-For names no address");
            } else {
                tracing::warn!(
                    entry,
                    "X-Forwarded-For names no address: failed authentications of such \
                     requests share one budget (reported once)"
                );
            }
            UNNAMED_CLIENT
        }
    }
}

/// The authenticated caller, from the `Authorization` header.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticated(parts, state, Addressing::Platform).await?;
        admit(parts, state, caller).map(Self)
    }
}

/// The caller when the request carries an `Authorization` header, `None` when it carries
/// none: catalog reads are open to anyone, and a caller also sees its organization's own
/// additions. A header that is present must prove someone, or the call is refused.
pub struct MaybeAuth(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if authorization_header(parts)?.is_none() {
            return Ok(Self(None));
        }
        Auth::from_request_parts(parts, state)
            .await
            .map(|Auth(caller)| Self(Some(caller)))
    }
}

/// The caller of a route that addresses the Element token's instance (an `/instances/…`
/// twin without an id): with an Element token, that instance, also when the User and
/// Organization secrets of its account come along.
pub struct TwinAuth(pub Caller);

impl FromRequestParts<AppState> for TwinAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticated(parts, state, Addressing::TokenInstance).await?;
        admit(parts, state, caller).map(Self)
    }
}

/// As [`Auth`], for calls that only read what an instance offers (its API docs): the
/// Element token of a disabled instance still proves it.
pub struct ReadingAuth(pub Caller);

impl FromRequestParts<AppState> for ReadingAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticated(parts, state, Addressing::PlatformReading).await?;
        admit(parts, state, caller).map(Self)
    }
}

/// As [`TwinAuth`], reading what the token's instance offers, disabled or not.
pub struct TwinReadingAuth(pub Caller);

impl FromRequestParts<AppState> for TwinReadingAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticated(parts, state, Addressing::TokenInstanceReading).await?;
        admit(parts, state, caller).map(Self)
    }
}

/// The caller the `Authorization` header proves, counted against the client address's
/// budget of failed authentications.
pub(crate) async fn authenticated(
    parts: &Parts,
    state: &AppState,
    addressing: Addressing,
) -> Result<Caller, ApiError> {
    Ok(state
        .services
        .authenticate_within_budget(
            addressing,
            client_address(parts, &state.services),
            authorization_header(parts)?,
        )
        .await?)
}

/// Names the caller's instance on the response and takes one of the caller's permits.
pub(crate) fn admit(parts: &Parts, state: &AppState, caller: Caller) -> Result<Caller, ApiError> {
    note_instance(parts, &caller);
    if let Some(slots) = parts.extensions.get::<RequestSlots>() {
        let permit = state.limits.try_acquire(&caller)?;
        *slots
            .0
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(permit);
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: DeserializeOwned>(body: &str) -> String {
        match parse_json::<T>(body.as_bytes()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(e) => e.message,
        }
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        element: Option<Inner>,
        count: Option<u64>,
        tags: Option<Vec<String>>,
        name: String,
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        id: Option<i64>,
    }

    #[test]
    fn wrong_shapes_are_explained_without_rust_types() {
        for (body, want) in [
            (
                r#"{"name":"n","element":"sfdc"}"#,
                "`element` must be an object, got a string",
            ),
            (
                r#"{"name":"n","element":{"id":"x"}}"#,
                "`element.id` must be a whole number, got a string",
            ),
            (
                r#"{"name":"n","count":-1}"#,
                "`count` must be a whole number of 0 or more, got the number -1",
            ),
            (
                r#"{"name":"n","tags":"a"}"#,
                "`tags` must be an array, got a string",
            ),
            (
                r#"{"name":"n","tags":[1]}"#,
                "`tags[0]` must be a string, got the number 1",
            ),
            (r#""x""#, "the body must be an object, got a string"),
            (r#"{}"#, "`name` is required"),
        ] {
            let got = message::<Outer>(body);
            assert!(got.contains(want), "{body}: {got}");
            for rust in ["struct", "Outer", "Inner", "u64", "i64", "sequence", "map"] {
                assert!(!got.contains(rust), "{body}: {got}");
            }
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        let got = message::<Outer>(r#"{"name": "#);
        assert!(
            got.contains("not valid JSON") && got.contains("line 1"),
            "{got}"
        );
        let got = message::<Outer>(r#"{"name": "n"} x"#);
        assert!(got.contains("not valid JSON"), "{got}");
    }
}
