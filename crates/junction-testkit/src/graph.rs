//! A local stand-in for Facebook's Graph API: the manual login flow's OAuth dialog and
//! token endpoint, long-lived token exchange, `/me` and the paged `/me/accounts` edge,
//! and the nodes and edges the Facebook elements read and write: `/{page-id}` (with the
//! page's `access_token` when a user token asks for that field), `/{page-id}/leadgen_forms`,
//! `/{form-id}/leads` (with `field_data`), `/{lead-id}`, `/{page-id}/subscribed_apps`
//! (GET, POST, DELETE), `/me/feed` and `/{page-id}/feed` (list and create), `/{post-id}`
//! (GET, POST to edit, DELETE), `/{post-id}/comments` and `/{post-id}/likes` (shapes
//! from the Graph API reference: Page, Page Lead Gen Forms, Leadgen Form Leads, Page
//! Subscribed Apps, Page Feed, Object Comments and Likes).
//!
//! The real Graph API cannot be reached from tests, so this server reproduces its
//! documented behaviour, including its error shape
//! (`{"error":{"message","type","code","error_subcode","fbtrace_id"}}` with HTTP 400),
//! single-use authorization codes and cursor paging with absolute `next` URLs.
//! Every route is served both under a version segment (`/v2.8/me`) and without one.
//! As Graph does, the lead-ads and page-write edges want a page access token (a user
//! token gets error 210), and each page token only opens its own page. Every request is
//! recorded ([`GraphServer::requests`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use url::Url;

use crate::vendors::{RecordedRequest, Store};

mod nodes;
use nodes::seed_nodes;

/// `expires_in` of every user token, as Graph reports for long-lived tokens (about 60 days).
pub const LONG_LIVED_EXPIRES_IN: u64 = 5_183_944;
/// Id of the single user who logs in through the dialog.
pub const USER_ID: &str = "10150000000000001";
/// Name of that user.
pub const USER_NAME: &str = "Junction Test User";
/// Category reported for every page.
pub const PAGE_CATEGORY: &str = "Software";
/// Tasks the user may perform on every page (a full admin).
pub const PAGE_TASKS: [&str; 5] = [
    "ANALYZE",
    "ADVERTISE",
    "MODERATE",
    "CREATE_CONTENT",
    "MANAGE",
];

// Graph's authorization codes live for ten minutes.
const CODE_TTL: Duration = Duration::from_secs(600);
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;

/// A Facebook page the user administers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPage {
    /// Numeric page id, as a string (Graph ids exceed what JSON numbers carry safely).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The registered app and the user's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    /// App id.
    pub client_id: String,
    /// App secret.
    pub client_secret: String,
    /// The app's only valid OAuth redirect URI (Graph's strict mode: exact match).
    pub redirect_uri: String,
    /// Pages listed by `/me/accounts`, in order.
    pub pages: Vec<GraphPage>,
    /// Leads on the first lead form of the first page (the other forms hold 3 each).
    pub leads: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        let page = |id: &str, name: &str| GraphPage {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        GraphConfig {
            client_id: crate::peers::CLIENT_ID.to_owned(),
            client_secret: crate::peers::CLIENT_SECRET.to_owned(),
            redirect_uri: crate::peers::REDIRECT_URI.to_owned(),
            pages: vec![
                page("101000000000001", "Junction Bakery"),
                page("101000000000002", "Junction Bikes"),
                page("101000000000003", "Junction Books"),
            ],
            leads: 1050,
        }
    }
}

/// A running Graph stand-in; it stops when dropped.
#[derive(Debug)]
pub struct GraphServer {
    /// Where the server listens, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub base_url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    config: GraphConfig,
    base_url: String,
    state: Mutex<GraphState>,
    requests: Mutex<Vec<RecordedRequest>>,
    store: Store,
}

#[derive(Debug, Default)]
struct GraphState {
    codes: HashMap<String, IssuedCode>,
    tokens: HashMap<String, Principal>,
    revoked: HashSet<String>,
    // Graph hands out the same page token for a page each time a user token lists it.
    page_tokens: HashMap<(String, usize), String>,
    token_exchanges: usize,
    long_lived_exchanges: usize,
    posts_created: usize,
}

#[derive(Debug)]
struct IssuedCode {
    redirect_uri: String,
    issued: Instant,
    used: bool,
}

#[derive(Debug, Clone, Copy)]
enum Principal {
    User,
    Page(usize),
}

impl GraphServer {
    /// Binds 127.0.0.1 on an ephemeral port and serves on the current tokio runtime.
    pub async fn start(config: GraphConfig) -> GraphServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the Graph stand-in to 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("reading the Graph stand-in's address");
        let base_url = format!("http://{addr}");
        let store = seed_nodes(&config);
        let shared = Arc::new(Shared {
            config,
            base_url: base_url.clone(),
            state: Mutex::new(GraphState::default()),
            requests: Mutex::new(Vec::new()),
            store,
        });
        let app = Router::new()
            .fallback(dispatch)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serving the Graph stand-in");
        });
        GraphServer {
            base_url,
            shared,
            task,
        }
    }

    /// The app and pages this server was started with.
    pub fn config(&self) -> &GraphConfig {
        &self.shared.config
    }

    /// The OAuth dialog URL, under a version segment as Facebook documents it.
    pub fn authorize_url(&self) -> String {
        format!("{}/v2.11/dialog/oauth", self.base_url)
    }

    /// The token endpoint (code exchange and `fb_exchange_token`).
    pub fn token_url(&self) -> String {
        format!("{}/v2.11/oauth/access_token", self.base_url)
    }

    /// The versioned API base: `<api>/me`, `<api>/me/accounts`.
    pub fn api_url(&self) -> String {
        format!("{}/v2.11", self.base_url)
    }

    /// How many authorization codes have been exchanged for a token successfully.
    pub fn token_exchanges(&self) -> usize {
        self.shared.lock().token_exchanges
    }

    /// How many `fb_exchange_token` requests were answered with a new token.
    pub fn long_lived_exchanges(&self) -> usize {
        self.shared.lock().long_lived_exchanges
    }

    /// Invalidates every user and page token issued so far, as when the user removes the app.
    pub fn revoke_all(&self) {
        let mut state = self.shared.lock();
        let tokens: Vec<String> = state.tokens.drain().map(|(token, _)| token).collect();
        state.revoked.extend(tokens);
        state.page_tokens.clear();
    }

    /// A valid user token minted without going through the dialog.
    pub fn issue_user_token(&self) -> String {
        self.shared.lock().issue(Principal::User)
    }

    /// A valid page token for the page at `index` in the config.
    pub fn issue_page_token(&self, index: usize) -> String {
        self.shared.lock().issue(Principal::Page(index))
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        crate::vendors::lock(&self.shared.requests).clone()
    }

    /// The pages' forms, leads, posts, comments, likes and app subscriptions.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, GraphState> {
        // A panicking test thread must not take every later request down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl GraphState {
    // Graph hands out the same page token for a page each time a user token asks.
    fn page_token(&mut self, user_token: &str, index: usize) -> String {
        if let Some(token) = self.page_tokens.get(&(user_token.to_owned(), index)) {
            return token.clone();
        }
        let token = self.issue(Principal::Page(index));
        self.page_tokens
            .insert((user_token.to_owned(), index), token.clone());
        token
    }
}

impl GraphState {
    fn issue(&mut self, principal: Principal) -> String {
        let token = random_token("EAAG");
        self.tokens.insert(token.clone(), principal);
        token
    }
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

type Params = HashMap<String, String>;

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params: Params = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if method == Method::POST && is_form {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    // Graph also takes the parameters of a POST as a JSON object.
    if method == Method::POST
        && let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&body)
    {
        for (key, value) in object {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            params.entry(key).or_insert(value);
        }
    }
    crate::vendors::lock(&shared.requests).push(RecordedRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        parts: Vec::new(),
    });

    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let (version, rest) = match segments.split_first() {
        Some((first, rest)) if is_version(first) => (Some(*first), rest),
        _ => (None, segments.as_slice()),
    };
    let is_user = |node: &str| node == "me" || node == USER_ID;
    match (rest, method.as_str()) {
        (["dialog", "oauth"], "GET") => dialog(&shared, &params),
        (["oauth", "access_token"], "GET" | "POST") => access_token(&shared, &params),
        ([node], "GET") if is_user(node) => me(&shared, &params, &headers),
        ([node, "accounts"], "GET") if is_user(node) => {
            accounts(&shared, version, &params, &headers)
        }
        _ => nodes::route(&shared, version, rest, method.as_str(), &params, &headers)
            .unwrap_or_else(|| unsupported(rest, &method)),
    }
}

fn unsupported(rest: &[&str], method: &Method) -> Response {
    let object = rest.first().copied().unwrap_or_default();
    graph_error_typed(
        StatusCode::BAD_REQUEST,
        "GraphMethodException",
        100,
        Some(33),
        &format!(
            "Unsupported {} request. Object with ID '{object}' does not exist, cannot \
             be loaded due to missing permissions, or does not support this operation.",
            method.as_str().to_lowercase()
        ),
    )
}

// Graph versions look like `v2.8`, `v19.0`.
fn is_version(segment: &str) -> bool {
    let Some(number) = segment.strip_prefix('v') else {
        return false;
    };
    let mut parts = number.splitn(2, '.');
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(all_digits) && parts.next().is_none_or(all_digits)
}

fn dialog(shared: &Shared, params: &Params) -> Response {
    let config = &shared.config;
    if params.get("client_id") != Some(&config.client_id) {
        return invalid_app();
    }
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            191,
            None,
            "The parameter redirect_uri is required",
        );
    };
    if *redirect_uri != config.redirect_uri {
        return graph_error(
            StatusCode::BAD_REQUEST,
            191,
            None,
            "Can't Load URL: The domain of this URL isn't included in the app's domains. To be \
             able to load this URL, add all domains and subdomains of your app to the App \
             Domains field in your app settings.",
        );
    }
    if params
        .get("response_type")
        .is_some_and(|t| t.split([' ', ',']).any(|t| t != "code"))
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Unsupported response_type: only code is supported here",
        );
    }
    let Ok(mut location) = Url::parse(redirect_uri) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            191,
            None,
            "The redirect_uri URL must be absolute",
        );
    };

    let code = random_token("AQ");
    shared.lock().codes.insert(
        code.clone(),
        IssuedCode {
            redirect_uri: redirect_uri.clone(),
            issued: Instant::now(),
            used: false,
        },
    );
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = params.get("state") {
            query.append_pair("state", state);
        }
    }
    redirect(location.as_str())
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("a URL is a valid header value"),
    );
    response
}

fn access_token(shared: &Shared, params: &Params) -> Response {
    let config = &shared.config;
    match params.get("client_id") {
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                101,
                None,
                "Missing client_id parameter.",
            );
        }
        Some(id) if *id != config.client_id => return invalid_app(),
        Some(_) => {}
    }
    if params.get("client_secret") != Some(&config.client_secret) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            1,
            None,
            "Error validating client secret.",
        );
    }
    match params.get("grant_type").map(String::as_str) {
        None | Some("authorization_code") => exchange_code(shared, params),
        Some("fb_exchange_token") => exchange_token(shared, params),
        Some("client_credentials") => Json(json!({
            "access_token": format!("{}|{}", config.client_id, config.client_secret),
            "token_type": "bearer",
        }))
        .into_response(),
        Some(other) => graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            &format!("Unsupported grant_type: {other}"),
        ),
    }
}

fn exchange_code(shared: &Shared, params: &Params) -> Response {
    let Some(code) = params.get("code") else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "The parameter code is required",
        );
    };
    let mut state = shared.lock();
    let Some(issued) = state.codes.get_mut(code) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "Invalid verification code format.",
        );
    };
    if issued.used {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(36009),
            "This authorization code has been used.",
        );
    }
    if issued.issued.elapsed() > CODE_TTL {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(36007),
            "This authorization code has expired.",
        );
    }
    if params.get("redirect_uri") != Some(&issued.redirect_uri) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is \
             identical to the one you used in the OAuth dialog request",
        );
    }
    issued.used = true;
    state.token_exchanges += 1;
    let token = state.issue(Principal::User);
    token_response(&token)
}

fn exchange_token(shared: &Shared, params: &Params) -> Response {
    let Some(old) = params.get("fb_exchange_token") else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "The parameter fb_exchange_token is required",
        );
    };
    let mut state = shared.lock();
    match state.tokens.get(old) {
        Some(Principal::User) => {
            state.long_lived_exchanges += 1;
            let token = state.issue(Principal::User);
            token_response(&token)
        }
        _ => invalid_token(&shared.config, state.revoked.contains(old)),
    }
}

fn token_response(token: &str) -> Response {
    Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": LONG_LIVED_EXPIRES_IN,
    }))
    .into_response()
}

// Graph takes the token from the `access_token` parameter or an `Authorization`
// header with the `Bearer` or `OAuth` scheme.
fn presented_token(params: &Params, headers: &HeaderMap) -> Option<String> {
    if let Some(token) = params.get("access_token") {
        return Some(token.clone());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_owned())
}

fn authenticate(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
) -> Result<(String, Principal), Box<Response>> {
    let token = presented_token(params, headers);
    let state = shared.lock();
    let revoked = match token {
        Some(token) => match state.tokens.get(&token) {
            Some(principal) => return Ok((token, *principal)),
            None => state.revoked.contains(&token),
        },
        None => false,
    };
    Err(Box::new(invalid_token(&shared.config, revoked)))
}

fn me(shared: &Shared, params: &Params, headers: &HeaderMap) -> Response {
    let principal = match authenticate(shared, params, headers) {
        Ok((_, principal)) => principal,
        Err(response) => return *response,
    };
    let (id, name) = match principal {
        Principal::User => (USER_ID, USER_NAME),
        Principal::Page(index) => {
            let page = &shared.config.pages[index];
            (page.id.as_str(), page.name.as_str())
        }
    };
    let node = json!({ "id": id, "name": name });
    Json(select_fields(node, params.get("fields"))).into_response()
}

fn accounts(
    shared: &Shared,
    version: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    let token = match authenticate(shared, params, headers) {
        Ok((token, Principal::User)) => token,
        Ok((_, Principal::Page(_))) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                100,
                None,
                "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
            );
        }
        Err(response) => return *response,
    };
    let pages = &shared.config.pages;
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let position = |cursor: &str| {
        let id = BASE64.decode(cursor).ok()?;
        pages.iter().position(|p| p.id.as_bytes() == id)
    };
    let (start, end) = if let Some(after) = params.get("after") {
        match position(after) {
            Some(index) => (index + 1, (index + 1 + limit).min(pages.len())),
            None => return invalid_cursor("after"),
        }
    } else if let Some(before) = params.get("before") {
        match position(before) {
            Some(index) => (index.saturating_sub(limit), index),
            None => return invalid_cursor("before"),
        }
    } else {
        (0, limit.min(pages.len()))
    };

    let fields = params.get("fields");
    let data: Vec<Value> = {
        let mut state = shared.lock();
        (start..end)
            .map(|index| {
                let page_token = state.page_token(&token, index);
                let page = &pages[index];
                let item = json!({
                    "id": page.id,
                    "name": page.name,
                    "access_token": page_token,
                    "category": PAGE_CATEGORY,
                    "tasks": PAGE_TASKS,
                });
                select_fields(item, fields)
            })
            .collect()
    };

    let mut body = Map::new();
    body.insert("data".to_owned(), Value::Array(data));
    if start < end {
        let cursor = |index: usize| BASE64.encode(&pages[index].id);
        let page_url = |name: &str, value: String| {
            let mut url = Url::parse(&shared.base_url).expect("the server's base URL parses");
            {
                let mut path = url
                    .path_segments_mut()
                    .expect("an http URL has path segments");
                path.clear();
                if let Some(version) = version {
                    path.push(version);
                }
                // Graph's paging links name the user by id rather than `me`.
                path.push(USER_ID).push("accounts");
            }
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("access_token", &token);
                if let Some(fields) = fields {
                    query.append_pair("fields", fields);
                }
                query
                    .append_pair("limit", &limit.to_string())
                    .append_pair(name, &value);
            }
            Value::String(url.into())
        };
        let mut paging = Map::new();
        paging.insert(
            "cursors".to_owned(),
            json!({ "before": cursor(start), "after": cursor(end - 1) }),
        );
        if start > 0 {
            paging.insert("previous".to_owned(), page_url("before", cursor(start)));
        }
        if end < pages.len() {
            paging.insert("next".to_owned(), page_url("after", cursor(end - 1)));
        }
        body.insert("paging".to_owned(), Value::Object(paging));
    }
    Json(Value::Object(body)).into_response()
}

// Keeps the requested fields of a node (and always `id`). Graph's nested syntax
// (`picture{url}`, `picture.type(large)`) is reduced to the field name; fields this
// stand-in does not model are left out rather than rejected.
fn select_fields(node: Value, fields: Option<&String>) -> Value {
    match (fields, node) {
        (Some(fields), Value::Object(mut object)) => {
            let mut wanted: HashSet<&str> = split_top_level(fields)
                .into_iter()
                .map(|field| {
                    field
                        .split(['{', '.', '('])
                        .next()
                        .unwrap_or_default()
                        .trim()
                })
                .collect();
            wanted.insert("id");
            object.retain(|key, _| wanted.contains(key.as_str()));
            Value::Object(object)
        }
        (_, node) => node,
    }
}

fn split_top_level(fields: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in fields.char_indices() {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&fields[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&fields[start..]);
    parts
}

fn invalid_app() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        101,
        None,
        "Error validating application. Invalid application ID.",
    )
}

fn invalid_cursor(name: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        None,
        &format!("(#100) The {name} cursor is invalid"),
    )
}

fn invalid_token(config: &GraphConfig, revoked: bool) -> Response {
    let mut response = if revoked {
        graph_error(
            StatusCode::BAD_REQUEST,
            190,
            Some(458),
            &format!(
                "Error validating access token: The user has not authorized application {}.",
                config.client_id
            ),
        )
    } else {
        graph_error(
            StatusCode::BAD_REQUEST,
            190,
            None,
            "Invalid OAuth access token.",
        )
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token.\"",
        ),
    );
    response
}

fn graph_error(status: StatusCode, code: u32, subcode: Option<u32>, message: &str) -> Response {
    graph_error_typed(status, "OAuthException", code, subcode, message)
}

fn graph_error_typed(
    status: StatusCode,
    kind: &str,
    code: u32,
    subcode: Option<u32>,
    message: &str,
) -> Response {
    let mut error = Map::new();
    error.insert("message".to_owned(), json!(message));
    error.insert("type".to_owned(), json!(kind));
    error.insert("code".to_owned(), json!(code));
    if let Some(subcode) = subcode {
        error.insert("error_subcode".to_owned(), json!(subcode));
    }
    let trace = uuid::Uuid::new_v4().simple().to_string();
    error.insert("fbtrace_id".to_owned(), json!(format!("A{}", &trace[..10])));
    (status, Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap()
    }

    async fn dialog_code(graph: &GraphServer, client: &reqwest::Client, prefix: &str) -> String {
        let response = client
            .get(format!("{}{prefix}/dialog/oauth", graph.base_url))
            .query(&[
                ("client_id", crate::peers::CLIENT_ID),
                ("redirect_uri", crate::peers::REDIRECT_URI),
                ("state", "st 1"),
                ("scope", "pages_show_list,manage_pages"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(crate::peers::REDIRECT_URI));
        let params: Params = location.query_pairs().into_owned().collect();
        assert_eq!(params["state"], "st 1");
        params["code"].clone()
    }

    async fn exchange(
        graph: &GraphServer,
        client: &reqwest::Client,
        code: &str,
        secret: &str,
        redirect_uri: &str,
    ) -> (StatusCode, Value) {
        let response = client
            .get(graph.token_url())
            .query(&[
                ("client_id", crate::peers::CLIENT_ID),
                ("client_secret", secret),
                ("redirect_uri", redirect_uri),
                ("code", code),
            ])
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn login_then_pages_across_cursors() {
        let graph = GraphServer::start(GraphConfig::default()).await;
        let client = client();
        let code = dialog_code(&graph, &client, "/v2.8").await;
        let (status, token) = exchange(
            &graph,
            &client,
            &code,
            crate::peers::CLIENT_SECRET,
            crate::peers::REDIRECT_URI,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(token["token_type"], "bearer");
        assert_eq!(token["expires_in"], LONG_LIVED_EXPIRES_IN);
        assert_eq!(graph.token_exchanges(), 1);
        let user_token = token["access_token"].as_str().unwrap().to_owned();

        let first: Value = client
            .get(format!("{}/v2.8/me/accounts", graph.base_url))
            .query(&[("limit", "2"), ("access_token", &user_token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = first["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{first}");
        assert_eq!(data[0]["id"], "101000000000001");
        assert_eq!(data[0]["category"], "Software");
        assert_eq!(data[0]["tasks"], json!(PAGE_TASKS));
        assert!(
            data[1]["access_token"]
                .as_str()
                .unwrap()
                .starts_with("EAAG")
        );
        assert!(first["paging"].get("previous").is_none());
        let next = first["paging"]["next"].as_str().unwrap();
        assert!(
            next.starts_with(&format!("{}/v2.8/", graph.base_url)),
            "{next}"
        );

        let second: Value = client.get(next).send().await.unwrap().json().await.unwrap();
        let data = second["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{second}");
        assert_eq!(data[0]["name"], "Junction Books");
        assert!(second["paging"].get("next").is_none(), "{second}");
        assert!(second["paging"]["previous"].is_string());

        // Unversioned path, bearer header, field selection; page tokens are stable.
        let picked: Value = client
            .get(format!("{}/me/accounts", graph.base_url))
            .query(&[("fields", "name,access_token")])
            .bearer_auth(&user_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let item = &picked["data"][0];
        assert_eq!(
            item.as_object().unwrap().len(),
            3,
            "id is always included: {item}"
        );
        assert_eq!(item["access_token"], first["data"][0]["access_token"]);
        assert!(picked["paging"].get("next").is_none());

        let me: Value = client
            .get(format!("{}/v2.11/me", graph.base_url))
            .query(&[("access_token", &user_token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me, json!({ "id": USER_ID, "name": USER_NAME }));

        let long_lived = client
            .get(graph.token_url())
            .query(&[
                ("grant_type", "fb_exchange_token"),
                ("client_id", crate::peers::CLIENT_ID),
                ("client_secret", crate::peers::CLIENT_SECRET),
                ("fb_exchange_token", &user_token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(long_lived.status(), StatusCode::OK);
        let long_lived: Value = long_lived.json().await.unwrap();
        assert_ne!(long_lived["access_token"], json!(user_token));
        assert_eq!(graph.token_exchanges(), 1);

        graph.revoke_all();
        let revoked = client
            .get(format!("{}/v2.8/me/accounts", graph.base_url))
            .query(&[("access_token", &user_token)])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::BAD_REQUEST);
        let revoked: Value = revoked.json().await.unwrap();
        assert_eq!(revoked["error"]["code"], 190);
        assert_eq!(revoked["error"]["type"], "OAuthException");
    }

    #[tokio::test]
    async fn a_user_token_reads_the_page_token_from_the_page_node() {
        let graph = GraphServer::start(GraphConfig::default()).await;
        let client = client();
        let user = graph.issue_user_token();
        let page = &graph.config().pages[1].id;
        let get = |path: String, token: String, fields: &'static str| {
            let client = client.clone();
            async move {
                let response = client
                    .get(path)
                    .query(&[("access_token", token.as_str()), ("fields", fields)])
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        let forms = format!("{}/v2.8/{page}/leadgen_forms", graph.base_url);
        let (status, refused) = get(forms.clone(), user.clone(), "id").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(refused["error"]["code"], 210);

        let node = format!("{}/v2.8/{page}", graph.base_url);
        let (_, plain) = get(node.clone(), user.clone(), "id,name").await;
        assert!(plain.get("access_token").is_none(), "{plain}");
        let (status, with_token) = get(node.clone(), user.clone(), "access_token").await;
        assert_eq!(status, StatusCode::OK, "{with_token}");
        let page_token = with_token["access_token"].as_str().unwrap().to_owned();
        let (_, again) = get(node, user, "access_token").await;
        assert_eq!(
            again["access_token"],
            page_token.as_str(),
            "stable per user token"
        );

        let (status, listed) = get(forms, page_token, "id").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn codes_are_single_use_and_checked() {
        let graph = GraphServer::start(GraphConfig::default()).await;
        let client = client();
        let code = dialog_code(&graph, &client, "").await;

        let (status, error) = exchange(
            &graph,
            &client,
            &code,
            crate::peers::CLIENT_SECRET,
            "https://app.example.test/elsewhere",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"]["code"], 100);
        assert_eq!(error["error"]["error_subcode"], 36008);

        let (status, _) = exchange(
            &graph,
            &client,
            &code,
            crate::peers::CLIENT_SECRET,
            crate::peers::REDIRECT_URI,
        )
        .await;
        assert_eq!(status, StatusCode::OK);

        let (status, error) = exchange(
            &graph,
            &client,
            &code,
            crate::peers::CLIENT_SECRET,
            crate::peers::REDIRECT_URI,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"]["code"], 100);
        assert_eq!(error["error"]["error_subcode"], 36009);
        assert_eq!(
            error["error"]["message"],
            "This authorization code has been used."
        );
        assert!(error["error"]["fbtrace_id"].is_string());

        let (status, error) = exchange(
            &graph,
            &client,
            "not-a-code",
            crate::peers::CLIENT_SECRET,
            crate::peers::REDIRECT_URI,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            error["error"]["message"],
            "Invalid verification code format."
        );
        assert_eq!(graph.token_exchanges(), 1);
    }

    #[tokio::test]
    async fn wrong_secret_and_bad_requests_are_graph_errors() {
        let graph = GraphServer::start(GraphConfig::default()).await;
        let client = client();
        let code = dialog_code(&graph, &client, "/v2.11").await;

        let (status, error) =
            exchange(&graph, &client, &code, "wrong", crate::peers::REDIRECT_URI).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["error"]["code"], 1);
        assert_eq!(error["error"]["type"], "OAuthException");
        assert_eq!(error["error"]["message"], "Error validating client secret.");

        // The code survives a failed attempt, and a form POST is accepted too.
        let response = client
            .post(graph.token_url())
            .form(&[
                ("client_id", crate::peers::CLIENT_ID),
                ("client_secret", crate::peers::CLIENT_SECRET),
                ("redirect_uri", crate::peers::REDIRECT_URI),
                ("code", &code),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let dialog = client
            .get(graph.authorize_url())
            .query(&[
                ("client_id", "someone-else"),
                ("redirect_uri", crate::peers::REDIRECT_URI),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(dialog.status(), StatusCode::BAD_REQUEST);
        let dialog = client
            .get(graph.authorize_url())
            .query(&[
                ("client_id", crate::peers::CLIENT_ID),
                ("redirect_uri", "https://evil.example.test/cb"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(dialog.status(), StatusCode::BAD_REQUEST);

        let anonymous = client
            .get(format!("{}/v2.8/me/accounts", graph.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::BAD_REQUEST);
        let anonymous: Value = anonymous.json().await.unwrap();
        assert_eq!(anonymous["error"]["code"], 190);
        assert_eq!(anonymous["error"]["message"], "Invalid OAuth access token.");

        assert!(is_version("v2.8") && is_version("v19.0") && is_version("v3"));
        assert!(!is_version("me") && !is_version("v") && !is_version("v2.") && !is_version("2.8"));
    }
}
