//! Hub resources: custom elements made through the Element Builder (their resources are
//! data) run against a local vendor that pages in every style, checks the credential,
//! and shows what reached it.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

on_both_backends!(
    the_hub_segment_is_ignored_and_bare_paths_need_an_element_token,
    unknown_resources_are_404_and_other_methods_405,
    parameters_of_every_kind_reach_the_vendor,
    nulls_are_stripped_until_the_instance_keeps_them,
    every_paging_style_walks_a_thousand_records_without_gap_or_repeat,
    page_and_page_size_address_pages_where_the_vendor_allows_it,
    forged_and_foreign_page_tokens_are_refused,
    vendor_errors_keep_their_status_and_message,
    a_vendor_timeout_is_504,
    a_disabled_instance_is_refused_but_still_describes_its_objects,
    response_parameters_are_kept_in_the_configuration,
    binary_resources_stream_through_unchanged,
    pre_request_hooks_reshape_the_vendor_call_element_first,
    hooks_see_and_shape_every_page_of_a_next_url_walk_but_never_its_credential,
    post_request_hooks_replace_the_answer_and_store_configuration,
    a_hook_that_stops_the_call_answers_without_the_vendor,
    failing_hooks_are_named_and_never_reach_the_vendor,
    where_is_evaluated_by_junction_across_vendor_pages_without_gap_or_repeat,
    where_and_order_by_become_soql_or_vendor_parameters,
    queries_an_element_cannot_serve_are_refused_naming_the_operator,
    hooks_and_header_parameters_never_see_the_callers_credentials,
    configuration_learned_by_a_call_never_undoes_a_disable_made_meanwhile,
    a_vendor_write_stands_when_the_configuration_it_taught_is_refused,
    caller_pairs_naming_vendor_parameters_junction_sets_are_refused,
    parameters_and_hooks_cannot_set_headers_junction_owns,
    a_page_token_never_follows_a_base_url_the_instance_left,
    page_tokens_are_bound_to_the_resources_own_query_parameters,
    a_page_number_beyond_any_offset_is_refused,
    stream_callers_choose_only_content_type_and_accept,
    hub_calls_count_against_the_callers_calls_in_progress,
    an_unsendable_header_value_is_refused_without_being_echoed,
    sdk_style_authorization_reaches_resources_but_not_oauth_apps_or_connect,
    a_damaged_list_page_is_refused_whole,
);

const RECORDS: u64 = 1000;
const API_KEY: &str = "vendor-api-key-1";
/// Salesforce returns query batches of at least this many records.
const SF_MIN_BATCH: u64 = 200;

/// Record `i` (1-based); every seventh has a null email, all have a null nested note.
fn record(i: u64) -> Value {
    json!({
        "id": i,
        "name": format!("record {i}"),
        "email": if i.is_multiple_of(7) { Value::Null } else { json!(format!("r{i}@example.com")) },
        "nested": {"note": null, "rank": i % 10},
    })
}

fn slice(from: u64, count: u64) -> Vec<Value> {
    (from..(from + count).min(RECORDS))
        .map(|i| record(i + 1))
        .collect()
}

#[derive(Default)]
struct Seen {
    /// Each call: method, path, query, headers, body.
    calls: Vec<(String, String, Option<String>, HeaderMap, Bytes)>,
}

/// A vendor on a loopback port with one collection of 1,000 records behind every paging
/// style, basic authentication with [`API_KEY`], and endpoints that fail.
struct Vendor {
    base_url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Vendor {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .fallback(vendor)
            .with_state((Arc::clone(&seen), base_url.clone()));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url,
            seen,
            task,
        }
    }

    fn last(&self, path: &str) -> (String, Option<String>, HeaderMap, Bytes) {
        let seen = self.seen.lock().unwrap();
        let (method, _, query, headers, body) = seen
            .calls
            .iter()
            .rev()
            .find(|c| c.1 == path)
            .cloned()
            .unwrap_or_else(|| panic!("nothing reached {path}"));
        (method, query, headers, body)
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().calls.len()
    }
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn number(q: &HashMap<String, String>, name: &str, default: u64) -> u64 {
    q.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn expected_auth() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:X"));
    format!("Basic {encoded}")
}

async fn vendor(
    State((seen, base)): State<(Arc<Mutex<Seen>>, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().map(str::to_owned);
    seen.lock().unwrap().calls.push((
        parts.method.to_string(),
        path.clone(),
        raw_query.clone(),
        parts.headers.clone(),
        body.clone(),
    ));
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected_auth().as_str());
    if !authorized {
        return (
            AxumStatus::UNAUTHORIZED,
            axum::Json(json!({"message": "bad credentials"})),
        )
            .into_response();
    }
    let q = query_map(raw_query.as_deref());
    let json = |v: Value| axum::Json(v).into_response();
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    match segments.as_slice() {
        ["offset", "items"] => {
            let (offset, limit) = (number(&q, "offset", 0), number(&q, "limit", 25));
            json(json!({
                "items": slice(offset, limit),
                "has_more": offset + limit < RECORDS,
            }))
        }
        ["paged", "items"] => {
            let (page, size) = (number(&q, "page", 1), number(&q, "per_page", 25));
            json(json!({"data": slice((page - 1) * size, size)}))
        }
        ["cursor", "items"] => {
            let limit = number(&q, "limit", 25);
            let at = q
                .get("cursor")
                .map(|c| c.trim_start_matches("c-").parse::<u64>().unwrap())
                .unwrap_or(0);
            let next = (at + limit < RECORDS).then(|| format!("c-{}", at + limit));
            json(json!({"records": slice(at, limit), "meta": {"next_cursor": next}}))
        }
        ["sf", "query"] | ["sf", "query", _] => {
            // Salesforce: a batch size below 200 is raised to 200; the next batch is
            // named by a root-relative `nextRecordsUrl`.
            let batch = parts
                .headers
                .get("sforce-query-options")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("batchSize="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(2000)
                .max(SF_MIN_BATCH);
            let at = segments
                .get(2)
                .map(|l| l.trim_start_matches("01g-").parse::<u64>().unwrap())
                .unwrap_or(0);
            if at == 0 && !q.contains_key("q") {
                return (
                    AxumStatus::BAD_REQUEST,
                    axum::Json(json!([{"message": "MALFORMED_QUERY: no query", "errorCode": "MALFORMED_QUERY"}])),
                )
                    .into_response();
            }
            let done = at + batch >= RECORDS;
            let mut answer =
                json!({"totalSize": RECORDS, "done": done, "records": slice(at, batch)});
            if !done {
                answer["nextRecordsUrl"] = json!(format!("/v1/sf/query/01g-{}", at + batch));
            }
            json(answer)
        }
        ["graph", "items"] => {
            let (after, limit) = (number(&q, "after", 0), number(&q, "limit", 25));
            let mut answer = json!({"data": slice(after, limit), "paging": {}});
            if after + limit < RECORDS {
                // Graph's next URL repeats the call's parameters, its access_token too.
                let mut next = url::Url::parse(&format!("{base}/graph/items")).unwrap();
                next.query_pairs_mut()
                    .append_pair("after", &(after + limit).to_string())
                    .append_pair("limit", &limit.to_string());
                for (k, v) in q.iter().filter(|(k, _)| *k != "after" && *k != "limit") {
                    next.query_pairs_mut().append_pair(k, v);
                }
                answer["paging"]["next"] = json!(next.as_str());
            }
            json(answer)
        }
        ["evil", "items"] => json(json!({
            "data": slice(0, 5),
            "paging": {"next": "http://198.51.100.7/v1/graph/items?after=5"},
        })),
        ["link", "items"] => {
            let (page, size) = (number(&q, "page", 1), number(&q, "per_page", 25));
            let mut response = json(Value::Array(slice((page - 1) * size, size)));
            if page * size < RECORDS {
                let link = format!(
                    "<{base}/link/items?page=1&per_page={size}>; rel=\"first\", <{base}/link/items?page={}&per_page={size}>; rel=\"next\"",
                    page + 1
                );
                response
                    .headers_mut()
                    .insert("link", HeaderValue::from_str(&link).unwrap());
            }
            response
        }
        ["all", "items"] => json(Value::Array(slice(0, RECORDS))),
        ["damaged", kind] => {
            let body: Vec<u8> = match *kind {
                "intact" => {
                    br#"{"data": [{"id": 1, "name": "a\u00e9", "note": null}], "more": false}"#
                        .to_vec()
                }
                "truncated" => br#"{"data": [{"id": 1, "name": "a"}, {"id": 2"#.to_vec(),
                "escape" => br#"{"data": [{"id": 1, "name": "a\x"}]}"#.to_vec(),
                "control" => b"{\"data\": [{\"id\": 1, \"name\": \"a\x01b\"}]}".to_vec(),
                "utf8" => {
                    b"{\"data\": [{\"id\": 1, \"name\": \"abcdefghijklmnopq\xffr\"}]}".to_vec()
                }
                "number" => br#"{"data": [{"id": 01}]}"#.to_vec(),
                "comma" => br#"{"data": [{"id": 1,}]}"#.to_vec(),
                "trailing" => br#"{"data": [{"id": 1}]} x"#.to_vec(),
                "deep" => {
                    format!(r#"{{"data": [{}{}]}}"#, "[".repeat(200), "]".repeat(200)).into_bytes()
                }
                _ => Vec::new(),
            };
            let mut response = (AxumStatus::OK, body).into_response();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        ["echo", id] => json(json!({
            "id": id,
            "query": raw_query,
            "trace": parts.headers.get("x-vendor-trace").and_then(|v| v.to_str().ok()),
            "order": parts.headers.get("x-order").and_then(|v| v.to_str().ok()),
            "nothing": null,
        })),
        ["whoami"] => json(json!({"user": {"id": "u-77"}, "plan": null})),
        ["error", "400"] => (
            AxumStatus::BAD_REQUEST,
            axum::Json(json!({"errorMessages": ["Field 'foo' does not exist"], "errors": {}})),
        )
            .into_response(),
        ["error", "500"] => (
            AxumStatus::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"message": "the vendor broke"}})),
        )
            .into_response(),
        ["error", "odd"] => (
            AxumStatus::CONFLICT,
            axum::Json(json!({"fault": {"detail": "a record with that name exists"}})),
        )
            .into_response(),
        ["slow"] => {
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
            json(json!({}))
        }
        ["files", id] => {
            let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            let mut response = (AxumStatus::OK, bytes).into_response();
            let h = response.headers_mut();
            h.insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(
                "content-disposition",
                HeaderValue::from_str(&format!("attachment; filename=\"{id}.bin\"")).unwrap(),
            );
            response
        }
        _ => (
            AxumStatus::NOT_FOUND,
            axum::Json(json!({"message": "no such path"})),
        )
            .into_response(),
    }
}

fn paging(style: &str, extra: Value) -> Value {
    let mut p = json!({"style": style});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    p
}

fn size(name: &str, default: u32, max: u32) -> Value {
    json!({"name": name, "default": default, "max": max})
}

/// The element: every resource the tests call, as Element Builder data.
fn element(key: &str) -> Value {
    let get = |path: &str, vendor_path: &str| json!({"path": format!("/hubs/crm/{path}"), "method": "GET", "vendorPath": vendor_path});
    let with = |mut r: Value, extra: Value| {
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    json!({
        "name": key, "key": key, "description": "a vendor", "hub": "crm",
        "authentication": {"type": "basic"},
        "configuration": [
            {"key": "vendor.api.key", "name": "API key", "type": "PASSWORD", "required": true},
            {"key": "base.url", "name": "Base URL", "default": "https://vendor.example/v1"},
            {"key": "vendor.tenant", "name": "Tenant", "default": "t-1"},
            {"key": "vendor.user.id", "name": "Vendor user"},
            {"key": "filter.response.nulls", "name": "Filter nulls", "type": "BOOLEAN", "default": "true"},
        ],
        "credentials": [{"in": "basic", "username": "{vendor.api.key}", "password": "X"}],
        "objects": [{"name": "account", "primaryKeyName": "id", "fields": [
            {"name": "id", "type": "integer"},
            {"name": "name", "type": "string", "required": true},
        ]}],
        "resources": [
            with(get("accounts", "/offset/items"), json!({"rootKey": "|items",
                "paging": paging("offset", json!({"param": "offset", "more": "has_more", "pageSize": size("limit", 100, 250)}))})),
            with(get("pages", "/paged/items"), json!({"rootKey": "data",
                "paging": paging("page", json!({"param": "page", "pageSize": size("per_page", 100, 300)}))})),
            with(get("cursors", "/cursor/items"), json!({"rootKey": "records",
                "paging": paging("cursor", json!({"param": "cursor", "next": "meta.next_cursor", "pageSize": size("limit", 100, 500)}))})),
            with(get("soql", "/sf/query"), json!({"rootKey": "|records",
                "parameters": [{"name": "SELECT Id FROM Account", "vendorName": "q", "type": "value", "vendorType": "query"}],
                "paging": paging("nextUrl", json!({"next": "nextRecordsUrl", "more": "!done",
                    "pageSize": {"name": "Sforce-Query-Options", "in": "header", "template": "batchSize={pageSize}", "default": 200, "max": 2000}}))})),
            with(get("graph", "/graph/items"), json!({"rootKey": "data",
                "paging": paging("nextUrl", json!({"next": "paging.next", "pageSize": size("limit", 100, 500)}))})),
            with(get("evil", "/evil/items"), json!({"rootKey": "data",
                "paging": paging("nextUrl", json!({"next": "paging.next", "pageSize": size("limit", 100, 500)}))})),
            with(get("links", "/link/items"), json!({
                "paging": paging("linkHeader", json!({"pageSize": size("per_page", 100, 500)}))})),
            get("everything", "/all/items"),
            with(get("damaged/{kind}", "/damaged/{kind}"), json!({"rootKey": "data"})),
            with(get("filtered", "/offset/items"), json!({"rootKey": "items",
                "paging": paging("offset", json!({"param": "offset", "more": "has_more", "pageSize": size("limit", 100, 100)})),
                "query": {"translation": "junction"}})),
            with(get("sorted", "/all/items"), json!({"query": {"translation": "junction"}})),
            with(get("sq", "/sf/query"), json!({"rootKey": "records",
                "query": {"translation": "soql", "parameter": "q",
                          "template": "SELECT Id, Name FROM Account WHERE {where} {orderBy}"}})),
            with(get("byparams", "/echo/params"), json!({
                "query": {"translation": "parameters", "rules": [
                    {"field": "email", "operators": ["="], "parameter": "email"},
                    {"field": "created", "operators": [">="], "parameter": "created_after"},
                ]}})),
            {"path": "/hubs/crm/accounts", "method": "POST", "vendorPath": "/echo/new",
             "parameters": [{"name": "body", "vendorName": "body", "type": "body", "vendorType": "body"}]},
            with(json!({"path": "/hubs/crm/echo/{id}", "method": "POST", "vendorPath": "/echo/{vid}", "vendorMethod": "PUT"}), json!({
                "parameters": [
                    {"name": "id", "vendorName": "vid", "type": "path", "vendorType": "path"},
                    {"name": "search", "vendorName": "q", "type": "query", "vendorType": "query", "required": true},
                    {"name": "X-Trace", "vendorName": "X-Vendor-Trace", "type": "header", "vendorType": "header"},
                    {"name": "name", "vendorName": "contact.fullName", "type": "bodyField", "vendorType": "bodyField"},
                    {"name": "vendor.tenant", "vendorName": "X-Tenant", "type": "configuration", "vendorType": "header"},
                    {"name": "2024-01", "vendorName": "api_version", "type": "value", "vendorType": "query"},
                ]})),
            get("contacts/{id}", "/echo/{id}"),
            get("contacts/search", "/echo/searched"),
            get("broken", "/error/400"),
            get("failing", "/error/500"),
            get("odd", "/error/odd"),
            get("slow", "/slow"),
            with(get("files/{id}", "/files/{id}"), json!({"stream": true})),
            with(get("moving", "/whoami"), json!({"parameters": [
                {"name": "base.url", "vendorName": "user.id", "type": "configuration", "vendorType": "bodyField", "source": "response"},
            ]})),
            with(get("me", "/whoami"), json!({"parameters": [
                {"name": "vendor.user.id", "vendorName": "user.id", "type": "configuration", "vendorType": "bodyField", "source": "response"},
            ]})),
        ],
        "errorMessagePath": "fault.detail",
    })
}

/// An app, the vendor, and one provisioned instance of a custom element for it.
async fn setup(app: &TestApp, key: &str) -> (Vendor, Value) {
    let vendor = Vendor::start().await;
    let (status, body) = app.post("/elements", &element(key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(app, key, &vendor).await;
    (vendor, instance)
}

async fn provision(app: &TestApp, key: &str, vendor: &Vendor) -> Value {
    let (status, instance) = app
        .post(
            "/instances",
            &json!({"element": {"key": key}, "name": "n", "configuration": {
                "vendor.api.key": API_KEY, "base.url": vendor.base_url,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

fn element_auth(instance: &Value) -> String {
    format!("Element {}", instance["token"].as_str().unwrap())
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn hub(
    app: &TestApp,
    instance: &Value,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = app
        .http
        .request(method, app.url(path))
        .header("Authorization", element_auth(instance));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &TestApp, instance: &Value, path: &str) -> Answer {
    hub(app, instance, Method::GET, path, None).await
}

fn ids(body: &Value) -> Vec<u64> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

async fn the_hub_segment_is_ignored_and_bare_paths_need_an_element_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "hubby").await;
    let id = instance["id"].as_i64().unwrap();
    let crm = get(&app, &instance, "/hubs/crm/accounts?pageSize=5").await;
    assert_eq!(crm.status, StatusCode::OK, "{}", crm.body);
    assert_eq!(ids(&crm.body), vec![1, 2, 3, 4, 5]);
    assert_eq!(crm.header("elements-returned-count"), Some("5"));
    assert_eq!(
        crm.header("elements-element-instance-id"),
        Some(id.to_string().as_str())
    );
    for path in [
        "/hubs/documents/accounts?pageSize=5",
        "/accounts?pageSize=5",
    ] {
        let other = get(&app, &instance, path).await;
        assert_eq!(other.status, StatusCode::OK, "{path}: {}", other.body);
        assert_eq!(other.body, crm.body, "{path}");
    }
    // Without an Element token, /accounts is the platform's accounts API.
    let (status, accounts) = app.get("/accounts").await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    assert!(
        accounts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("name").is_some()),
        "{accounts}"
    );
    // Instance-addressed platform routes keep their meaning with the token.
    let (status, me) = app
        .call_as(&element_auth(&instance), Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me[0]["id"], id, "{me}");
}

async fn unknown_resources_are_404_and_other_methods_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "routes").await;
    let missing = get(&app, &instance, "/hubs/crm/leads").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let message = assert_error(&missing.body, "resource_not_found");
    assert!(message.contains("'routes'"), "{message}");
    assert!(missing.header("elements-element-instance-id").is_some());
    let wrong = hub(&app, &instance, Method::DELETE, "/accounts", None).await;
    assert_eq!(
        wrong.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        wrong.body
    );
    assert_error(&wrong.body, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, POST"));
    // A literal segment beats a placeholder.
    let searched = get(&app, &instance, "/contacts/search").await;
    assert_eq!(searched.body["id"], "searched", "{}", searched.body);
    let one = get(&app, &instance, "/contacts/a%20b").await;
    assert_eq!(one.body["id"], "a%20b", "{}", one.body);
    // No Element token: 401 before the path means anything.
    let (status, body) = app
        .call_as("Element nope", Method::GET, "/hubs/crm/accounts", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn parameters_of_every_kind_reach_the_vendor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "params").await;
    let token = element_auth(&instance);
    let response = app
        .http
        .post(app.url("/hubs/crm/echo/a%20b?search=alpha%20beta&extra=kept%2Fas-is"))
        .header("Authorization", &token)
        .header("X-Trace", "trace-1")
        .json(&json!({"name": "Ada", "ignored": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (method, query, headers, body) = vendor.last("/v1/echo/a%20b");
    assert_eq!(method, "PUT");
    let query = query.unwrap();
    let q = query_map(Some(&query));
    assert_eq!(q["q"], "alpha beta");
    assert_eq!(q["api_version"], "2024-01");
    assert!(query.contains("extra=kept%2Fas-is"), "{query}");
    assert!(!q.contains_key("search"), "{query}");
    assert_eq!(headers["x-vendor-trace"], "trace-1");
    assert_eq!(headers["x-tenant"], "t-1");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"contact": {"fullName": "Ada"}})
    );
    // The whole body, as a `body` parameter.
    let created = hub(
        &app,
        &instance,
        Method::POST,
        "/accounts",
        Some(&json!({"name": "Bo", "n": 1})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let (_, _, _, body) = vendor.last("/v1/echo/new");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"name": "Bo", "n": 1})
    );
    // A required parameter missing: 400 naming it, and nothing sent.
    let before = vendor.count();
    let missing = hub(&app, &instance, Method::POST, "/echo/1", Some(&json!({}))).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let message = assert_error(&missing.body, "missing_parameter");
    assert!(message.contains("'search'"), "{message}");
    assert_eq!(vendor.count(), before);
}

async fn nulls_are_stripped_until_the_instance_keeps_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "nulls").await;
    let id = instance["id"].as_i64().unwrap();
    let list = get(&app, &instance, "/accounts?pageSize=7").await;
    let seventh = &list.body[6];
    assert_eq!(seventh["id"], 7);
    assert!(seventh.get("email").is_none(), "{seventh}");
    assert_eq!(seventh["nested"], json!({"rank": 7}));
    let one = get(&app, &instance, "/contacts/9").await;
    assert!(one.body.get("nothing").is_none(), "{}", one.body);

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"filter.response.nulls": "false"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = get(&app, &instance, "/accounts?pageSize=7").await;
    assert_eq!(list.body[6]["email"], Value::Null);
    assert!(list.body[6].get("email").is_some(), "{}", list.body[6]);
    assert_eq!(list.body[6]["nested"], json!({"note": null, "rank": 7}));
    let one = get(&app, &instance, "/contacts/9").await;
    assert!(one.body.get("nothing").is_some(), "{}", one.body);
}

/// A list page is checked as JSON before any of it is copied out: a vendor body that
/// is not one JSON document, wherever the fault lies, is a 502 and no records.
async fn a_damaged_list_page_is_refused_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "damaged").await;
    let intact = get(&app, &instance, "/damaged/intact").await;
    assert_eq!(intact.status, StatusCode::OK, "{}", intact.body);
    assert_eq!(intact.body, json!([{"id": 1, "name": "a\u{e9}"}]));
    for kind in [
        "truncated",
        "escape",
        "control",
        "utf8",
        "number",
        "comma",
        "trailing",
        "deep",
    ] {
        let answer = get(&app, &instance, &format!("/damaged/{kind}")).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "{kind}: {}",
            answer.body
        );
        assert_error(&answer.body, "provider_answer_unusable");
    }
}

/// Follows `Elements-Next-Page-Token` from `first` to the end.
async fn walk(app: &TestApp, instance: &Value, first: &str) -> (Vec<u64>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let page = get(app, instance, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let got = ids(&page.body);
        assert_eq!(
            page.header("elements-returned-count"),
            Some(got.len().to_string().as_str())
        );
        seen.extend(got);
        pages += 1;
        assert!(pages <= 200, "{first} does not end");
        match page.header("elements-next-page-token") {
            Some(token) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}nextPage={token}");
            }
            None => return (seen, pages),
        }
    }
}

async fn every_paging_style_walks_a_thousand_records_without_gap_or_repeat(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "walks").await;
    let all: Vec<u64> = (1..=RECORDS).collect();
    for (first, expected_pages) in [
        ("/accounts?pageSize=100", 10),
        ("/pages?pageSize=300", 4),
        ("/cursors?pageSize=250", 4),
        // Salesforce answers 200 a batch; the caller's 50 are served from each.
        ("/soql?pageSize=50", 20),
        ("/graph?pageSize=100", 10),
        ("/links?pageSize=400", 3),
        ("/everything?pageSize=300", 4),
    ] {
        let (seen, pages) = walk(&app, &instance, first).await;
        assert_eq!(seen, all, "{first}: a gap or a repeat");
        assert_eq!(pages, expected_pages, "{first}");
    }
    // A page size above the vendor's maximum is lowered to it.
    let capped = get(&app, &instance, "/accounts?pageSize=5000").await;
    assert_eq!(ids(&capped.body).len(), 250);
    // A next page on another host is not followed.
    let evil = get(&app, &instance, "/evil?pageSize=5").await;
    assert_eq!(evil.status, StatusCode::BAD_GATEWAY, "{}", evil.body);
    assert_error(&evil.body, "provider_answer_unusable");
}

async fn page_and_page_size_address_pages_where_the_vendor_allows_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "pagenums").await;
    let third = get(&app, &instance, "/accounts?page=3&pageSize=50").await;
    assert_eq!(ids(&third.body), (101..=150).collect::<Vec<_>>());
    let (_, query, _, _) = vendor.last("/v1/offset/items");
    let q = query_map(query.as_deref());
    assert_eq!((q["offset"].as_str(), q["limit"].as_str()), ("100", "50"));
    let second = get(&app, &instance, "/pages?page=2&pageSize=30").await;
    assert_eq!(ids(&second.body), (31..=60).collect::<Vec<_>>());
    let unpaged = get(&app, &instance, "/everything?page=4&pageSize=10").await;
    assert_eq!(ids(&unpaged.body), (31..=40).collect::<Vec<_>>());
    let cursor = get(&app, &instance, "/cursors?page=2&pageSize=10").await;
    assert_eq!(cursor.status, StatusCode::BAD_REQUEST);
    let message = assert_error(&cursor.body, "invalid_parameter");
    assert!(message.contains("nextPage"), "{message}");
    let bad = get(&app, &instance, "/accounts?pageSize=0").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn forged_and_foreign_page_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "tokens").await;
    let other = provision(&app, "tokens", &vendor).await;
    let first = get(&app, &instance, "/cursors?pageSize=10").await;
    let token = first.header("elements-next-page-token").unwrap().to_owned();
    let ok = get(
        &app,
        &instance,
        &format!("/cursors?pageSize=10&nextPage={token}"),
    )
    .await;
    assert_eq!(ids(&ok.body), (11..=20).collect::<Vec<_>>());
    let mut forged = token.clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for path in [
        format!("/cursors?pageSize=10&nextPage={forged}"),
        "/cursors?pageSize=10&nextPage=garbage".to_owned(),
        // Another query, or another resource, than the token was issued for.
        format!("/cursors?pageSize=20&nextPage={token}"),
        format!("/accounts?pageSize=10&nextPage={token}"),
    ] {
        let refused = get(&app, &instance, &path).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
        assert_error(&refused.body, "invalid_page_token");
    }
    let foreign = get(
        &app,
        &other,
        &format!("/cursors?pageSize=10&nextPage={token}"),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert_error(&foreign.body, "invalid_page_token");
}

async fn vendor_errors_keep_their_status_and_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "failures").await;
    for (path, status, message) in [
        (
            "/broken",
            StatusCode::BAD_REQUEST,
            "Field 'foo' does not exist",
        ),
        (
            "/failing",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the vendor broke",
        ),
        // The element names where its vendor puts the message.
        (
            "/odd",
            StatusCode::CONFLICT,
            "a record with that name exists",
        ),
    ] {
        let answer = get(&app, &instance, path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_error(&answer.body, "provider_error");
        assert_eq!(answer.body["providerMessage"], message, "{path}");
        assert_eq!(answer.header("elements-error"), Some("true"), "{path}");
        assert!(answer.header("elements-element-instance-id").is_some());
    }
}

async fn a_vendor_timeout_is_504(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            outbound_timeout: 1,
            ..Options::default()
        },
    )
    .await;
    let (_vendor, instance) = setup(&app, "sleepy").await;
    let answer = get(&app, &instance, "/slow").await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.body
    );
    assert_error(&answer.body, "provider_timeout");
}

async fn a_disabled_instance_is_refused_but_still_describes_its_objects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "sleeper").await;
    let id = instance["id"].as_i64().unwrap();
    let (status, body) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = vendor.count();
    let refused = get(&app, &instance, "/hubs/crm/accounts").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_error(&refused.body, "forbidden");
    assert_eq!(vendor.count(), before);
    let objects = get(&app, &instance, "/hubs/crm/objects").await;
    assert_eq!(objects.status, StatusCode::OK, "{}", objects.body);
    assert_eq!(objects.body, json!(["account"]));
    let metadata = get(&app, &instance, "/objects/account/metadata").await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.body);
    let fields = metadata.body["fields"].as_array().unwrap();
    assert_eq!(fields[0]["vendorPath"], "id");
    assert_eq!(fields[0]["primaryKey"], true);
    assert_eq!(fields[1]["type"], "string");
    assert_eq!(fields[1]["vendorRequired"], true);
    let missing = get(&app, &instance, "/objects/nope/metadata").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn response_parameters_are_kept_in_the_configuration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "responder").await;
    let id = instance["id"].as_i64().unwrap();
    let me = get(&app, &instance, "/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body, json!({"user": {"id": "u-77"}}));
    let (status, config) = app.get(&format!("/instances/{id}/configuration")).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let entry = config
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "vendor.user.id")
        .unwrap_or_else(|| panic!("{config}"));
    assert_eq!(entry["propertyValue"], "u-77", "{entry}");
    // A vendor answer cannot move the host the instance's credential goes to: the same
    // checks as a PATCH with the Element token apply, and the vendor's answer stands.
    let moving = get(&app, &instance, "/moving").await;
    assert_eq!(moving.status, StatusCode::OK, "{}", moving.body);
    let (_, after) = app.get(&format!("/instances/{id}/configuration")).await;
    assert_eq!(
        after, config,
        "nothing was written by a refused configuration change"
    );
}

async fn binary_resources_stream_through_unchanged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "files").await;
    let response = app
        .http
        .get(app.url("/hubs/documents/files/report"))
        .header("Authorization", element_auth(&instance))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"report.bin\""
    );
    let bytes = response.bytes().await.unwrap();
    let expected: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    assert_eq!(bytes.as_ref(), expected.as_slice());
}

/// [`element`] with hooks: one on the element, run on every call, and some per resource.
fn hooked_element(key: &str) -> Value {
    let mut e = element(key);
    e["hooks"] = json!([{"type": "preRequest", "body":
        "done({request_vendor_headers: Object.assign({}, request_vendor_headers, {'X-Order': 'element'})});"}]);
    let hooked = |path: &str, kind: &str, body: &str| {
        json!({"path": format!("/hubs/crm/{path}"), "method": "GET", "vendorPath": format!("/echo/{path}"),
               "hooks": [{"type": kind, "body": body}]})
    };
    let resources = e["resources"].as_array_mut().unwrap();
    resources.push(hooked(
        "reshaped",
        "preRequest",
        "done({request_vendor_parameters: Object.assign({}, request_vendor_parameters, \
           {tenant: configuration['vendor.tenant'], asked: request_parameters.q}), \
           request_vendor_headers: {'X-Vendor-Trace': request_method + ' ' + request_path, \
           'X-Order': request_vendor_headers['x-order'] + ',resource'}});",
    ));
    resources.push(hooked(
        "wrapped",
        "postRequest",
        "done({response_body: {wrapped: response_body.id, status: response_status_code, error: response_iserror}, \
           configuration: {'vendor.user.id': 'set-by-hook'}});",
    ));
    resources.push(hooked(
        "short",
        "preRequest",
        "if (request_parameters.stop === 'yes') { return done({continue: false, response_body: {answered: 'by the hook', empty: null}}); } done({});",
    ));
    resources.push(hooked(
        "throwing",
        "preRequest",
        "throw new Error('no ' + 'way');",
    ));
    resources.push(hooked("looping", "preRequest", "while (true) {}"));
    resources.push(hooked("silent", "postRequest", "const x = 1;"));
    e
}

async fn hooked_setup(app: &TestApp, key: &str) -> (Vendor, Value) {
    let vendor = Vendor::start().await;
    let (status, body) = app.post("/elements", &hooked_element(key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(app, key, &vendor).await;
    (vendor, instance)
}

async fn pre_request_hooks_reshape_the_vendor_call_element_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = hooked_setup(&app, "prehooks").await;
    let answer = get(&app, &instance, "/hubs/crm/reshaped?q=find%20me").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (_, query, headers, _) = vendor.last("/v1/echo/reshaped");
    let q = query_map(query.as_deref());
    assert_eq!(q["tenant"], "t-1");
    assert_eq!(q["asked"], "find me");
    assert_eq!(headers["x-vendor-trace"], "GET /reshaped");
    assert_eq!(headers["x-order"], "element,resource");
    assert!(
        headers.contains_key("authorization"),
        "the credential is still added"
    );
}

async fn hooks_see_and_shape_every_page_of_a_next_url_walk_but_never_its_credential(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("nexthooks");
    // A parameter Junction puts on every call, as Graph's access_token is.
    e["parameters"] =
        json!([{"name": "k-123", "vendorName": "api_key", "type": "value", "vendorType": "query"}]);
    e["resources"].as_array_mut().unwrap().push(json!({
        "path": "/hubs/crm/walked", "method": "GET", "vendorPath": "/graph/items", "rootKey": "data",
        "paging": paging("nextUrl", json!({"next": "paging.next", "pageSize": size("limit", 100, 500)})),
        "hooks": [{"type": "preRequest", "body":
            "done({request_vendor_parameters: Object.assign({}, request_vendor_parameters, {mark: 'hooked'}), \
               request_vendor_headers: {'X-Hook-Saw': request_vendor_path + ' ' + JSON.stringify(request_vendor_parameters)}});"}]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "nexthooks", &vendor).await;
    let first = get(&app, &instance, "/hubs/crm/walked?pageSize=10").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let token = first.header("elements-next-page-token").unwrap().to_owned();
    let second = get(
        &app,
        &instance,
        &format!("/hubs/crm/walked?pageSize=10&nextPage={token}"),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(ids(&second.body), (11..=20).collect::<Vec<u64>>());
    let (_, query, headers, _) = vendor.last("/v1/graph/items");
    let saw = headers["x-hook-saw"].to_str().unwrap();
    let (path, parameters) = saw.split_once(' ').unwrap();
    assert_eq!(path, "/graph/items", "the page's path, under base.url");
    let parameters: Value = serde_json::from_str(parameters).unwrap();
    assert_eq!(parameters["after"], "10", "{parameters}");
    assert!(
        parameters.get("api_key").is_none(),
        "the hook saw the credential: {parameters}"
    );
    let sent: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let named = |name: &str| {
        sent.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        named("mark"),
        ["hooked"],
        "the hook's change is sent: {sent:?}"
    );
    assert_eq!(named("after"), ["10"], "{sent:?}");
    assert_eq!(
        named("api_key"),
        ["k-123"],
        "set once, by Junction: {sent:?}"
    );
}

async fn post_request_hooks_replace_the_answer_and_store_configuration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = hooked_setup(&app, "posthooks").await;
    let id = instance["id"].as_i64().unwrap();
    let answer = get(&app, &instance, "/wrapped").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"wrapped": "wrapped", "status": 200, "error": false})
    );
    let (_, config) = app.get(&format!("/instances/{id}/configuration")).await;
    let entry = config
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "vendor.user.id")
        .unwrap_or_else(|| panic!("{config}"));
    assert_eq!(entry["propertyValue"], "set-by-hook", "{entry}");
}

async fn a_hook_that_stops_the_call_answers_without_the_vendor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = hooked_setup(&app, "shorthooks").await;
    let before = vendor.count();
    let answer = get(&app, &instance, "/short?stop=yes").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"answered": "by the hook"}));
    assert_eq!(vendor.count(), before, "the vendor was called");
    let through = get(&app, &instance, "/short").await;
    assert_eq!(through.body["id"], "short", "{}", through.body);
    assert_eq!(vendor.count(), before + 1);
}

async fn failing_hooks_are_named_and_never_reach_the_vendor(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            hook_timeout_ms: 200,
            ..Options::default()
        },
    )
    .await;
    let (vendor, instance) = hooked_setup(&app, "badhooks").await;
    let before = vendor.count();
    let thrown = get(&app, &instance, "/throwing").await;
    assert_eq!(thrown.status, StatusCode::BAD_REQUEST, "{}", thrown.body);
    let message = assert_error(&thrown.body, "hook_failed");
    assert!(message.contains("'preRequest' of resource"), "{message}");
    assert!(message.contains("no way"), "{message}");
    let looping = get(&app, &instance, "/looping").await;
    assert_eq!(looping.status, StatusCode::BAD_GATEWAY, "{}", looping.body);
    let message = assert_error(&looping.body, "hook_failed");
    assert!(message.contains("200 ms"), "{message}");
    assert_eq!(vendor.count(), before);
    let silent = get(&app, &instance, "/silent").await;
    assert_eq!(silent.status, StatusCode::BAD_GATEWAY, "{}", silent.body);
    let message = assert_error(&silent.body, "hook_failed");
    assert!(message.contains("done()"), "{message}");
}

async fn where_is_evaluated_by_junction_across_vendor_pages_without_gap_or_repeat(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "filtering").await;
    // Every seventh record has a null email: 142 of 1,000, spread over ten vendor pages.
    let expected: Vec<u64> = (1..=RECORDS).filter(|i| i.is_multiple_of(7)).collect();
    let (seen, _) = walk(
        &app,
        &instance,
        "/filtered?pageSize=30&where=email%20IS%20NULL%20AND%20nested.rank%20%3E%3D%200",
    )
    .await;
    assert_eq!(seen, expected);
    let page = get(
        &app,
        &instance,
        "/filtered?pageSize=3&where=id%20%3C%2010&fields=id,name",
    )
    .await;
    assert_eq!(
        page.body,
        json!([{"id": 1, "name": "record 1"}, {"id": 2, "name": "record 2"}, {"id": 3, "name": "record 3"}])
    );
    // A whole list is sorted by Junction.
    let sorted = get(
        &app,
        &instance,
        "/sorted?pageSize=4&orderBy=nested.rank%20desc,%20id%20asc",
    )
    .await;
    assert_eq!(ids(&sorted.body), vec![9, 19, 29, 39]);
    let (walked, _) = walk(
        &app,
        &instance,
        "/sorted?pageSize=300&orderBy=nested.rank%20desc,%20id%20asc",
    )
    .await;
    assert_eq!(walked.len(), RECORDS as usize);
    assert_eq!(&walked[..2], &[9, 19]);
}

async fn where_and_order_by_become_soql_or_vendor_parameters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "translating").await;
    let answer = get(
        &app,
        &instance,
        "/sq?pageSize=5&where=Name%20%3D%20%27O%27%27Hara%27%20AND%20Amount%20%3E%205&orderBy=Name%20desc",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (_, query, _, _) = vendor.last("/v1/sf/query");
    assert_eq!(
        query_map(query.as_deref())["q"],
        "SELECT Id, Name FROM Account WHERE (Name = 'O\\'Hara' AND Amount > 5) ORDER BY Name DESC"
    );
    let answer = get(&app, &instance, "/sq").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (_, query, _, _) = vendor.last("/v1/sf/query");
    assert_eq!(
        query_map(query.as_deref())["q"],
        "SELECT Id, Name FROM Account"
    );
    let answer = get(
        &app,
        &instance,
        "/byparams?where=email%20%3D%20%27a%40b.c%27%20AND%20created%20%3E%3D%20%272026-01-01%27",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let (_, query, _, _) = vendor.last("/v1/echo/params");
    let q = query_map(query.as_deref());
    assert_eq!(q["email"], "a@b.c");
    assert_eq!(q["created_after"], "2026-01-01");
    assert!(!q.contains_key("where"), "{q:?}");
}

async fn queries_an_element_cannot_serve_are_refused_naming_the_operator(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "refusing").await;
    let before = vendor.count();
    for (path, code, words) in [
        (
            "/byparams?where=email%20LIKE%20%27a%25%27",
            "unsupported_query",
            "LIKE",
        ),
        (
            "/byparams?where=email%20%3D%20%27a%27%20OR%20email%20%3D%20%27b%27",
            "unsupported_query",
            "OR",
        ),
        ("/byparams?orderBy=email", "unsupported_query", "orderBy"),
        ("/accounts?where=id%20%3D%201", "unsupported_query", "where"),
        ("/filtered?orderBy=id", "unsupported_query", "orderBy"),
        ("/filtered?where=id%20%3D%3D%201", "invalid_query", "column"),
        ("/filtered?where=(id%20%3D%201", "invalid_query", "column"),
    ] {
        let answer = get(&app, &instance, path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        let message = assert_error(&answer.body, code);
        assert!(message.contains(words), "{path}: {message}");
        if code == "unsupported_query" {
            assert!(message.contains("'refusing'"), "{path}: {message}");
        }
    }
    assert_eq!(vendor.count(), before, "a refused query reached the vendor");
}

async fn hooks_and_header_parameters_never_see_the_callers_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("nosy");
    e["resources"].as_array_mut().unwrap().push(json!({
        "path": "/hubs/crm/nosy", "method": "GET", "vendorPath": "/echo/nosy",
        "parameters": [
            {"name": "Authorization", "vendorName": "X-Copied-Auth", "type": "header", "vendorType": "header"},
            {"name": "Cookie", "vendorName": "X-Copied-Cookie", "type": "header", "vendorType": "header"},
            {"name": "X-Trace", "vendorName": "X-Copied-Trace", "type": "header", "vendorType": "header"},
        ],
        "hooks": [{"type": "preRequest", "body":
            "done({request_vendor_headers: Object.assign({}, request_vendor_headers, \
               {'X-Seen': JSON.stringify(request_headers)})});"}]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "nosy", &vendor).await;
    let response = app
        .http
        .get(app.url("/hubs/crm/nosy"))
        .header("Authorization", element_auth(&instance))
        .header("Cookie", "session=caller-cookie")
        .header("Proxy-Authorization", "Basic caller-proxy")
        .header("X-Trace", "trace-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, _, headers, _) = vendor.last("/v1/echo/nosy");
    let seen: Value = serde_json::from_str(headers["x-seen"].to_str().unwrap()).unwrap();
    assert_eq!(seen["x-trace"], "trace-2", "{seen}");
    for name in ["authorization", "cookie", "proxy-authorization"] {
        assert!(seen.get(name).is_none(), "the hook saw {name}: {seen}");
    }
    assert_eq!(headers["x-copied-trace"], "trace-2");
    assert!(!headers.contains_key("x-copied-auth"), "{headers:?}");
    assert!(!headers.contains_key("x-copied-cookie"), "{headers:?}");
    let leaked = format!("{headers:?}");
    assert!(
        !leaked.contains(instance["token"].as_str().unwrap()),
        "{leaked}"
    );
    assert!(!leaked.contains("caller-cookie"), "{leaked}");
}

/// A vendor whose one endpoint answers only once the test lets it: `arrived` says a call
/// is waiting, `release` lets it answer.
struct GatedVendor {
    base_url: String,
    arrived: tokio::sync::mpsc::Receiver<()>,
    release: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GatedVendor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GatedVendor {
    async fn start(answer: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (tx, arrived) = tokio::sync::mpsc::channel(8);
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let gate = Arc::clone(&release);
        let app = Router::new().fallback(move || {
            let (tx, gate, answer) = (tx.clone(), Arc::clone(&gate), answer.clone());
            async move {
                tx.send(()).await.unwrap();
                gate.acquire().await.unwrap().forget();
                axum::Json(answer)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url,
            arrived,
            release,
            task,
        }
    }
}

async fn configuration_learned_by_a_call_never_undoes_a_disable_made_meanwhile(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut vendor = GatedVendor::start(json!({"user": {"id": "learned"}})).await;
    let (status, body) = app.post("/elements", &element("gated")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, instance) = app
        .post(
            "/instances",
            &json!({"element": {"key": "gated"}, "name": "n", "configuration": {
                "vendor.api.key": API_KEY, "base.url": vendor.base_url,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let call = {
        let (http, url, auth) = (app.http.clone(), app.url("/me"), element_auth(&instance));
        tokio::spawn(async move {
            http.get(url)
                .header("Authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    vendor.arrived.recv().await.unwrap();
    let (status, body) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    vendor.release.add_permits(1);
    assert_eq!(call.await.unwrap(), StatusCode::OK);
    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(
        shown["disabled"], true,
        "the call re-enabled the instance: {shown}"
    );
    let (_, config) = app.get(&format!("/instances/{id}/configuration")).await;
    let entry = config
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "vendor.user.id")
        .unwrap_or_else(|| panic!("{config}"));
    assert_eq!(entry["propertyValue"], "learned", "{entry}");
}

async fn a_vendor_write_stands_when_the_configuration_it_taught_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("teacher");
    e["resources"].as_array_mut().unwrap().push(json!({
        "path": "/hubs/crm/notes", "method": "POST", "vendorPath": "/echo/created",
        "parameters": [
            {"name": "body", "vendorName": "body", "type": "body", "vendorType": "body"},
            {"name": "base.url", "vendorName": "id", "type": "configuration", "vendorType": "bodyField", "source": "response"},
        ]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "teacher", &vendor).await;
    let id = instance["id"].as_i64().unwrap();
    let (_, before) = app.get(&format!("/instances/{id}/configuration")).await;
    let calls = vendor.count();
    let created = hub(
        &app,
        &instance,
        Method::POST,
        "/notes",
        Some(&json!({"text": "hi"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["id"], "created", "{}", created.body);
    assert_eq!(vendor.count(), calls + 1);
    let (_, after) = app.get(&format!("/instances/{id}/configuration")).await;
    assert_eq!(after, before, "a refused value was stored");
}

async fn caller_pairs_naming_vendor_parameters_junction_sets_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "shadowed").await;
    let before = vendor.count();
    for (path, name) in [
        ("/accounts?offset=500&pageSize=50", "offset"),
        ("/accounts?limit=100000", "limit"),
        ("/pages?per_page=1000", "per_page"),
        ("/cursors?cursor=c-900", "cursor"),
        ("/sq?q=SELECT+Password+FROM+User", "q"),
        ("/byparams?created_after=2020", "created_after"),
        ("/soql?q=SELECT+Id+FROM+User", "q"),
    ] {
        let answer = get(&app, &instance, path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        let message = assert_error(&answer.body, "invalid_parameter");
        assert!(message.contains(&format!("'{name}'")), "{path}: {message}");
    }
    let declared = hub(
        &app,
        &instance,
        Method::POST,
        "/echo/1?search=a&q=b",
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        declared.status,
        StatusCode::BAD_REQUEST,
        "{}",
        declared.body
    );
    assert_eq!(vendor.count(), before, "a refused call reached the vendor");
    let other = get(&app, &instance, "/accounts?pageSize=2&status=open").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    let (_, query, _, _) = vendor.last("/v1/offset/items");
    let query = query.unwrap();
    assert!(query.contains("status=open"), "{query}");
    assert_eq!(query.matches("offset=").count(), 1, "{query}");
}

async fn parameters_and_hooks_cannot_set_headers_junction_owns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("hosty");
    let resources = e["resources"].as_array_mut().unwrap();
    for (path, header) in [
        ("host", "Host"),
        ("cookie", "Cookie"),
        ("framing", "Transfer-Encoding"),
    ] {
        resources.push(json!({
            "path": format!("/hubs/crm/param-{path}"), "method": "GET", "vendorPath": "/echo/p",
            "parameters": [{"name": "h", "vendorName": header, "type": "query", "vendorType": "header"}]}));
        resources.push(json!({
            "path": format!("/hubs/crm/hook-{path}"), "method": "GET", "vendorPath": "/echo/h",
            "hooks": [{"type": "preRequest", "body":
                format!("done({{request_vendor_headers: {{'{header}': 'x'}}}});")}]}));
    }
    resources.push(json!({
        "path": "/hubs/crm/param-ok", "method": "GET", "vendorPath": "/echo/ok",
        "parameters": [{"name": "h", "vendorName": "X-Fine", "type": "query", "vendorType": "header"}]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "hosty", &vendor).await;
    let before = vendor.count();
    for (path, header) in [
        ("host", "host"),
        ("cookie", "cookie"),
        ("framing", "transfer-encoding"),
    ] {
        let param = get(
            &app,
            &instance,
            &format!("/param-{path}?h=internal.example"),
        )
        .await;
        assert_eq!(
            param.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            param.body
        );
        let message = assert_error(&param.body, "invalid_parameter");
        assert!(message.contains(&format!("'{header}'")), "{message}");
        let hook = get(&app, &instance, &format!("/hook-{path}")).await;
        assert_eq!(
            hook.status,
            StatusCode::BAD_GATEWAY,
            "{path}: {}",
            hook.body
        );
        let message = assert_error(&hook.body, "hook_failed");
        assert!(message.contains(&format!("'{header}'")), "{message}");
    }
    assert_eq!(
        vendor.count(),
        before,
        "a refused header reached the vendor"
    );
    let fine = get(&app, &instance, "/param-ok?h=yes").await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.body);
    assert_eq!(vendor.last("/v1/echo/ok").2["x-fine"], "yes");
}

async fn a_page_token_never_follows_a_base_url_the_instance_left(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (old, instance) = setup(&app, "moved").await;
    let new = Vendor::start().await;
    let id = instance["id"].as_i64().unwrap();
    let first = get(&app, &instance, "/graph?pageSize=10").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let token = first.header("elements-next-page-token").unwrap().to_owned();
    let patch = json!({"configuration": {"base.url": new.base_url, "vendor.api.key": API_KEY}});
    let (status, body) = app
        .call(Method::PATCH, &format!("/instances/{id}"), Some(&patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (before_old, before_new) = (old.count(), new.count());
    let replayed = get(
        &app,
        &instance,
        &format!("/graph?pageSize=10&nextPage={token}"),
    )
    .await;
    assert_eq!(
        replayed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        replayed.body
    );
    assert_error(&replayed.body, "invalid_page_token");
    assert_eq!(old.count(), before_old, "the old base.url was called");
    assert_eq!(new.count(), before_new);
    let restart = get(&app, &instance, "/graph?pageSize=10").await;
    assert_eq!(ids(&restart.body), (1..=10).collect::<Vec<_>>());
    assert_eq!(new.count(), before_new + 1);
}

async fn page_tokens_are_bound_to_the_resources_own_query_parameters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "boundq").await;
    let first = get(&app, &instance, "/accounts?pageSize=10&status=open").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let token = first.header("elements-next-page-token").unwrap().to_owned();
    for path in [
        format!("/accounts?pageSize=10&status=closed&nextPage={token}"),
        format!("/accounts?pageSize=10&nextPage={token}"),
    ] {
        let refused = get(&app, &instance, &path).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            refused.body
        );
        assert_error(&refused.body, "invalid_page_token");
    }
    let same = get(
        &app,
        &instance,
        &format!("/accounts?status=open&pageSize=10&nextPage={token}"),
    )
    .await;
    assert_eq!(ids(&same.body), (11..=20).collect::<Vec<_>>());
}

async fn a_page_number_beyond_any_offset_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (vendor, instance) = setup(&app, "farpage").await;
    let before = vendor.count();
    for path in [
        "/accounts?page=18446744073709551615&pageSize=200",
        "/everything?page=18446744073709551615&pageSize=1000",
    ] {
        let answer = get(&app, &instance, path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        let message = assert_error(&answer.body, "invalid_parameter");
        assert!(message.contains("'page'"), "{message}");
    }
    assert_eq!(vendor.count(), before);
}

async fn stream_callers_choose_only_content_type_and_accept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("pinned");
    e["resources"].as_array_mut().unwrap().push(json!({
        "path": "/hubs/crm/tenantfiles/{id}", "method": "GET", "vendorPath": "/files/{id}", "stream": true,
        "parameters": [{"name": "vendor.tenant", "vendorName": "X-Tenant", "type": "configuration", "vendorType": "header"}]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "pinned", &vendor).await;
    let response = app
        .http
        .get(app.url("/hubs/crm/tenantfiles/r"))
        .header("Authorization", element_auth(&instance))
        .header("X-Tenant", "other")
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, _, headers, _) = vendor.last("/v1/files/r");
    assert_eq!(headers["x-tenant"], "t-1");
    assert_eq!(headers.get_all("x-tenant").iter().count(), 1);
    assert_eq!(headers["accept"], "application/octet-stream");
}

async fn hub_calls_count_against_the_callers_calls_in_progress(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            caller_concurrency: 1,
            ..Options::default()
        },
    )
    .await;
    let mut vendor = GatedVendor::start(json!({"user": {"id": "u-1"}})).await;
    let (status, body) = app.post("/elements", &element("permits")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, instance) = app
        .post(
            "/instances",
            &json!({"element": {"key": "permits"}, "name": "n", "configuration": {
                "vendor.api.key": API_KEY, "base.url": vendor.base_url,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let call = {
        let (http, url, auth) = (app.http.clone(), app.url("/me"), element_auth(&instance));
        tokio::spawn(async move {
            http.get(url)
                .header("Authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    vendor.arrived.recv().await.unwrap();
    let second = tokio::select! {
        answer = get(&app, &instance, "/me") => answer,
        _ = vendor.arrived.recv() => panic!("a second call of the caller reached the vendor"),
    };
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.body
    );
    vendor.release.add_permits(1);
    assert_eq!(call.await.unwrap(), StatusCode::OK);
}

async fn an_unsendable_header_value_is_refused_without_being_echoed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let vendor = Vendor::start().await;
    let mut e = element("echoless");
    e["resources"].as_array_mut().unwrap().push(json!({
        "path": "/hubs/crm/tabbed", "method": "GET", "vendorPath": "/echo/t",
        "parameters": [{"name": "h", "vendorName": "X-Tabbed", "type": "query", "vendorType": "header"}]}));
    let (status, body) = app.post("/elements", &e).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let instance = provision(&app, "echoless", &vendor).await;
    let refused = get(&app, &instance, "/tabbed?h=secret%01value").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let message = assert_error(&refused.body, "invalid_parameter");
    assert!(message.contains("'X-Tabbed'"), "{message}");
    assert!(
        !refused.body.to_string().contains("secret"),
        "{}",
        refused.body
    );
    assert_eq!(vendor.count(), 0);
}

async fn sdk_style_authorization_reaches_resources_but_not_oauth_apps_or_connect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_vendor, instance) = setup(&app, "sdk").await;
    let auth = format!("{}, {}", app.platform_auth(), element_auth(&instance));
    let call = |path: &str| {
        app.http
            .get(app.url(path))
            .header("Authorization", &auth)
            .send()
    };
    let accounts = call("/accounts?pageSize=3").await.unwrap();
    assert_eq!(accounts.status(), StatusCode::OK);
    let body: Value = accounts.json().await.unwrap();
    assert_eq!(ids(&body), vec![1, 2, 3], "{body}");
    let apps = call("/oauth-apps").await.unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    let body: Value = apps.json().await.unwrap();
    assert!(body.is_array(), "{body}");
    let session = call("/connect/sessions/999999").await.unwrap();
    let status = session.status();
    let body: Value = session.json().await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "connect_session_not_found");
}
