//! Local stand-ins for the SaaS APIs behind Junction's elements.
//!
//! None of these vendors can be reached from tests, so each module here is an axum
//! server on `127.0.0.1:0` that answers with the request and response shapes the
//! vendor documents, refuses what the vendor would refuse with the vendor's own error
//! body, and records every request so a test can assert what Junction sent:
//!
//! | module | follows |
//! |---|---|
//! | [`salesforce`] | Salesforce REST API: `query` + `nextRecordsUrl`, `sobjects`, `describe`, error arrays, SOQL |
//! | [`crate::graph`] | Facebook Graph API: cursor paging, `error` objects, lead ads, page feed |
//! | [`instagram`] | Instagram API v1 (retired): `meta`/`data`/`pagination` envelopes |
//! | [`acton`] | Act-On REST v1: list download with `offset`/`count`, contact records, subscriptions |
//! | [`closeio`] | Close API v1: `_skip`/`_limit`/`has_more`, HTTP basic with the API key |
//! | [`jira`] | Jira Cloud REST v3: `search/jql` with `nextPageToken` (and legacy `search`), JQL |
//! | [`hubspot`] | HubSpot CRM v3 objects: `after` paging, `search` filter groups, rate limits |
//! | [`netsuite`] | NetSuite REST web services: SuiteQL with `limit`/`offset`/`hasMore`, record service, problem-details errors |
//! | [`zendesk`] | Zendesk Support v2: cursor (`page[size]`) and offset paging, envelopes, search |
//!
//! The pieces shared by all of them live here: [`VendorServer`] (the running server,
//! its [`requests`](VendorServer::requests) log and its expected [`Credential`]), a
//! [`Store`] of seeded records with create/update/delete, and the deterministic
//! [`seed`] helpers that fill it, nulls included.

// A refusal is the vendor's error response itself; boxing it would only add noise to
// a test server whose every path ends in a `Response` anyway.
#![allow(clippy::result_large_err)]

pub mod acton;
pub mod closeio;
pub mod filter;
pub mod hubspot;
pub mod instagram;
pub mod jira;
pub mod netsuite;
pub mod salesforce;
pub mod seed;
pub mod zendesk;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without the query, e.g. `/services/data/v59.0/query`.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The parts of a `multipart/form-data` body, parsed.
    pub parts: Vec<Part>,
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The form field name.
    pub name: String,
    /// The file name, for file parts.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Vec<u8>,
}

impl RecordedRequest {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter of that name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body's pairs when it is `application/x-www-form-urlencoded`, else none.
    pub fn form(&self) -> Vec<(String, String)> {
        let is_form = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Vec::new();
        }
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// A multipart part by field name, as text.
    pub fn part_text(&self, name: &str) -> Option<String> {
        self.parts
            .iter()
            .find(|p| p.name == name)
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    }

    /// Path segments, without empty ones.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    // Bearer token or basic user/password from the Authorization header.
    fn authorization(&self) -> Option<Credential> {
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(Credential::Bearer(rest.trim().to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = BASE64.decode(rest.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            return Some(Credential::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            });
        }
        None
    }
}

/// What a stand-in accepts as authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// The user part.
        user: String,
        /// The password part (may be empty).
        password: String,
    },
}

/// The state every stand-in shares: its address, the request log, the credentials it
/// accepts and the seeded records.
#[derive(Debug)]
pub struct Core {
    base_url: String,
    requests: Mutex<Vec<RecordedRequest>>,
    credentials: Mutex<Vec<Credential>>,
    /// Requests still to be refused with a status (and `Retry-After` seconds) before the
    /// vendor answers again: a rate limit or an outage.
    faults: Mutex<Option<(usize, StatusCode, Option<u64>)>>,
    /// The records the vendor serves.
    pub store: Store,
}

impl Core {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether the request carries one of the accepted credentials in its
    /// `Authorization` header.
    pub fn authorized(&self, request: &RecordedRequest) -> bool {
        request
            .authorization()
            .is_some_and(|presented| self.accepts(&presented))
    }

    /// Whether that credential is accepted.
    pub fn accepts(&self, presented: &Credential) -> bool {
        lock(&self.credentials).contains(presented)
    }

    /// Whether a bearer token (from wherever the vendor reads it) is accepted.
    pub fn accepts_token(&self, token: &str) -> bool {
        self.accepts(&Credential::Bearer(token.to_owned()))
    }
}

/// A vendor's request handler.
pub trait Vendor: Send + Sync + 'static {
    /// Answers one request. Runs on a blocking thread, so it may do real work.
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response;
}

/// A running stand-in; it stops when dropped.
#[derive(Debug)]
pub struct VendorServer<V> {
    core: Arc<Core>,
    vendor: Arc<V>,
    task: JoinHandle<()>,
}

impl<V: Vendor> VendorServer<V> {
    /// Binds 127.0.0.1 on an ephemeral port and serves `vendor` on the current tokio
    /// runtime, accepting `credential` and serving the records in `store`.
    pub async fn spawn(vendor: V, credential: Credential, store: Store) -> VendorServer<V> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a vendor stand-in to 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("reading the vendor stand-in's address");
        let core = Arc::new(Core {
            base_url: format!("http://{addr}"),
            requests: Mutex::new(Vec::new()),
            credentials: Mutex::new(vec![credential]),
            faults: Mutex::new(None),
            store,
        });
        let vendor = Arc::new(vendor);
        let state = (Arc::clone(&core), Arc::clone(&vendor));
        let app = Router::new().fallback(dispatch::<V>).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serving a vendor stand-in");
        });
        VendorServer { core, vendor, task }
    }

    /// Where the server listens, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> String {
        self.core.base_url.clone()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.core.requests).clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        lock(&self.core.requests).clear();
    }

    /// Replaces the accepted credentials with this one: what was accepted before is now
    /// refused with the vendor's 401.
    pub fn set_credential(&self, credential: Credential) {
        *lock(&self.core.credentials) = vec![credential];
    }

    /// Refuses the next `count` requests with `status` (a JSON error body, and
    /// `Retry-After: <seconds>` when given); they are still recorded.
    pub fn fail_next(&self, count: usize, status: StatusCode, retry_after: Option<u64>) {
        *lock(&self.core.faults) = (count > 0).then_some((count, status, retry_after));
    }

    /// Accepts one more credential alongside the current ones.
    pub fn add_credential(&self, credential: Credential) {
        lock(&self.core.credentials).push(credential);
    }

    /// The seeded records, to read or change directly.
    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// The vendor-specific state (counters, settings).
    pub fn vendor(&self) -> &V {
        &self.vendor
    }
}

impl<V> Drop for VendorServer<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn dispatch<V: Vendor>(
    State((core, vendor)): State<(Arc<Core>, Arc<V>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let parts = match multer::parse_boundary(&content_type) {
        Ok(boundary) => match read_parts(&body, boundary).await {
            Ok(parts) => parts,
            Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
        },
        Err(_) => Vec::new(),
    };
    let request = RecordedRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query,
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
        parts,
    };
    lock(&core.requests).push(request.clone());
    let fault = {
        let mut faults = lock(&core.faults);
        match faults.as_mut() {
            Some((left, status, retry_after)) => {
                let fault = (*status, *retry_after);
                *left -= 1;
                if *left == 0 {
                    *faults = None;
                }
                Some(fault)
            }
            None => None,
        }
    };
    if let Some((status, retry_after)) = fault {
        let mut response = json(
            status,
            &serde_json::json!({"error": "unavailable", "message": "refused by the stand-in's fault"}),
        );
        if let Some(seconds) = retry_after
            && let Ok(value) = header::HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    tokio::task::spawn_blocking(move || vendor.handle(&core, &request))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn read_parts(body: &[u8], boundary: String) -> Result<Vec<Part>, String> {
    let mut multipart = multer::Multipart::with_reader(body, boundary);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(|e| e.to_string())?.to_vec();
        parts.push(Part {
            name,
            filename,
            content_type,
            data,
        });
    }
    Ok(parts)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take every later request down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JSON response with that status.
pub fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// Seeded records by collection, each collection in insertion order with an id field.
///
/// Records are kept as `Arc<Value>` so a paged walk can snapshot a collection without
/// copying it (the Salesforce stand-in walks 100,000 of them).
#[derive(Debug, Default)]
pub struct Store {
    collections: Mutex<HashMap<String, Collection>>,
}

#[derive(Debug, Default)]
struct Collection {
    id_field: String,
    records: Vec<Arc<Value>>,
    positions: HashMap<String, usize>,
}

impl Collection {
    fn reindex(&mut self) {
        let id_field = &self.id_field;
        self.positions = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (id_of(r, id_field), i))
            .collect();
    }
}

fn id_of(record: &Value, id_field: &str) -> String {
    match record.get(id_field) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Replaces a collection with these records, identified by `id_field`.
    pub fn seed(&self, collection: &str, id_field: &str, records: Vec<Value>) {
        let mut seeded = Collection {
            id_field: id_field.to_owned(),
            records: records.into_iter().map(Arc::new).collect(),
            positions: HashMap::new(),
        };
        seeded.reindex();
        lock(&self.collections).insert(collection.to_owned(), seeded);
    }

    /// All records of a collection, in order (cheap: the records are shared).
    pub fn all(&self, collection: &str) -> Vec<Arc<Value>> {
        lock(&self.collections)
            .get(collection)
            .map(|c| c.records.clone())
            .unwrap_or_default()
    }

    /// How many records a collection holds.
    pub fn len(&self, collection: &str) -> usize {
        lock(&self.collections)
            .get(collection)
            .map_or(0, |c| c.records.len())
    }

    /// Whether a collection is empty or missing.
    pub fn is_empty(&self, collection: &str) -> bool {
        self.len(collection) == 0
    }

    /// One record by id.
    pub fn get(&self, collection: &str, id: &str) -> Option<Arc<Value>> {
        let collections = lock(&self.collections);
        let c = collections.get(collection)?;
        c.positions.get(id).map(|&i| Arc::clone(&c.records[i]))
    }

    /// Appends a record (it must carry its id field).
    pub fn insert(&self, collection: &str, record: Value) {
        let mut collections = lock(&self.collections);
        let c = collections.entry(collection.to_owned()).or_default();
        let id = id_of(&record, &c.id_field);
        c.positions.insert(id, c.records.len());
        c.records.push(Arc::new(record));
    }

    /// Merges `changes` into a record's top-level fields; `None` if there is no such record.
    pub fn update(
        &self,
        collection: &str,
        id: &str,
        changes: &Map<String, Value>,
    ) -> Option<Value> {
        self.modify(collection, id, |record| {
            for (k, v) in changes {
                record.insert(k.clone(), v.clone());
            }
        })
    }

    /// Changes a record in place; `None` if there is no such record.
    pub fn modify(
        &self,
        collection: &str,
        id: &str,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Option<Value> {
        let mut collections = lock(&self.collections);
        let c = collections.get_mut(collection)?;
        let &i = c.positions.get(id)?;
        let mut record = (*c.records[i]).clone();
        if let Value::Object(object) = &mut record {
            change(object);
        }
        c.records[i] = Arc::new(record.clone());
        Some(record)
    }

    /// Removes a record; whether it existed.
    pub fn delete(&self, collection: &str, id: &str) -> bool {
        let mut collections = lock(&self.collections);
        let Some(c) = collections.get_mut(collection) else {
            return false;
        };
        let Some(i) = c.positions.remove(id) else {
            return false;
        };
        c.records.remove(i);
        c.reindex();
        true
    }
}

/// The offsets of one page: `[start, end)` of `len`.
pub fn page_bounds(len: usize, offset: usize, size: usize) -> (usize, usize) {
    let start = offset.min(len);
    (start, start.saturating_add(size).min(len))
}

/// A URL on this server with that path and query.
pub fn absolute(core: &Core, path: &str, query: &[(&str, String)]) -> String {
    let mut url = url::Url::parse(core.base_url()).expect("the base URL parses");
    url.set_path(path);
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, v);
        }
    }
    url.into()
}

/// Parses a non-negative integer parameter, `Ok(None)` when absent.
pub fn number_param(request: &RecordedRequest, name: &str) -> Result<Option<usize>, String> {
    match request.param(name) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("{name} must be a non-negative integer, got '{raw}'")),
    }
}
