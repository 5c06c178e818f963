//! Calls to an instance's provider through Junction: the passthrough proxy and the ping,
//! against the real OAuth peer's API, the Graph stand-in and a local upstream that can
//! stream, rate-limit and show what reached it.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use crate::provisioning::{Provider, provision};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use junction_core::config::keys;
use junction_core::{AccountId, InstanceId};
use junction_testkit::db::Backend;
use junction_testkit::graph::{GraphConfig, GraphServer};
use junction_testkit::peers::{Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_backends!(
    salesforce_calls_reach_the_instance_url_with_the_bearer_token,
    graph_gets_the_token_as_the_access_token_parameter,
    only_safe_headers_cross_and_the_element_token_stays_behind,
    a_large_download_streams_through_intact,
    a_large_upload_streams_through_intact,
    rate_limited_idempotent_calls_wait_and_retry,
    a_provider_401_is_never_replayed_with_the_refused_token,
    an_expired_token_the_provider_refuses_is_refreshed_and_the_call_replayed,
    ping_answers_for_any_hub_name_and_passes_provider_errors_on,
    disabled_deleted_and_missing_tokens_are_refused,
);

/// Pattern byte at `offset` of generated bodies: not periodic in any power of two, so a
/// dropped or repeated chunk shows.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// 256 periods of the pattern, so each copy continues where the previous one ended.
fn pattern_chunk() -> Bytes {
    Bytes::from((0..251u64 * 256).map(pattern).collect::<Vec<u8>>())
}

/// Checks `data`, found at `offset` of a generated body, against the pattern.
fn matches_pattern(reference: &[u8], offset: u64, data: &[u8]) -> bool {
    let period = 251usize;
    let mut at = 0;
    while at < data.len() {
        let start = ((offset + at as u64) % period as u64) as usize;
        let n = (data.len() - at).min(reference.len() - period);
        if data[at..at + n] != reference[start..start + n] {
            return false;
        }
        at += n;
    }
    true
}

#[derive(Default)]
struct Seen {
    /// Per path: every request's headers, query and Authorization header.
    calls: HashMap<String, Vec<(HeaderMap, Option<String>)>>,
}

/// A provider API on a loopback port, answering by path.
pub(crate) struct Upstream {
    pub(crate) base_url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/api", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .fallback(upstream)
            .with_state(Arc::clone(&seen));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url,
            seen,
            task,
        }
    }

    pub(crate) fn calls(&self, path: &str) -> Vec<(HeaderMap, Option<String>)> {
        self.seen
            .lock()
            .unwrap()
            .calls
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

async fn upstream(State(seen): State<Arc<Mutex<Seen>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let count = {
        let mut seen = seen.lock().unwrap();
        let calls = seen.calls.entry(path.clone()).or_default();
        calls.push((parts.headers.clone(), query.clone()));
        calls.len()
    };
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match path.as_str() {
        "/api/headers" => {
            let headers: serde_json::Map<String, Value> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
                .collect();
            let mut response = axum::Json(json!({"headers": headers, "query": query})).into_response();
            let h = response.headers_mut();
            h.insert("x-upstream", HeaderValue::from_static("yes"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
            response
        }
        "/api/big" => {
            let size: u64 = query
                .as_deref()
                .and_then(|q| q.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let chunk = pattern_chunk();
            let chunk_len = chunk.len() as u64;
            let chunks = futures_util::stream::unfold(0u64, move |sent| {
                let chunk = chunk.clone();
                async move {
                    if sent >= size {
                        return None;
                    }
                    let n = chunk_len.min(size - sent);
                    Some((
                        Ok::<_, std::io::Error>(chunk.slice(..n as usize)),
                        sent + n,
                    ))
                }
            });
            let mut response = Response::new(Body::from_stream(chunks));
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        "/api/upload" => {
            let reference = pattern_chunk();
            let mut stream = body.into_data_stream();
            let mut received = 0u64;
            let mut intact = true;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap();
                intact &= matches_pattern(&reference, received, &chunk);
                received += chunk.len() as u64;
            }
            axum::Json(json!({"bytes": received, "intact": intact})).into_response()
        }
        "/api/limited" | "/api/limited-post" if count == 1 => (
            AxumStatus::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"message": "slow down"})),
        )
            .into_response(),
        "/api/limited" | "/api/limited-post" => axum::Json(json!({"ok": true})).into_response(),
        "/api/unavailable" => (
            AxumStatus::SERVICE_UNAVAILABLE,
            [("retry-after", "60")],
            axum::Json(json!({"message": "maintenance"})),
        )
            .into_response(),
        "/api/refused" if bearer == "Bearer fresh-token" => {
            axum::Json(json!({"ok": "replayed"})).into_response()
        }
        "/api/refused" => (
            AxumStatus::UNAUTHORIZED,
            axum::Json(json!([{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])),
        )
            .into_response(),
        "/api/token" => axum::Json(json!({
            "access_token": "fresh-token",
            "token_type": "Bearer",
            "expires_in": 3600,
        }))
        .into_response(),
        "/api/services/oauth2/userinfo" if bearer == "Bearer good-token" => {
            axum::Json(json!({"sub": "005"})).into_response()
        }
        "/api/services/oauth2/userinfo" => (
            AxumStatus::FORBIDDEN,
            axum::Json(json!({"error": "forbidden", "error_description": "Session expired or invalid"})),
        )
            .into_response(),
        _ => (AxumStatus::NOT_FOUND, "no such upstream path").into_response(),
    }
}

/// An `sfdc` instance with the given access token, calling `upstream`; no provider is
/// involved in creating it.
pub(crate) async fn upstream_instance(
    app: &TestApp,
    upstream: &Upstream,
    access_token: &str,
) -> (i64, String) {
    upstream_instance_with(app, upstream, access_token, json!({})).await
}

/// Like [`upstream_instance`], with more configuration entries.
pub(crate) async fn upstream_instance_with(
    app: &TestApp,
    upstream: &Upstream,
    access_token: &str,
    extra: Value,
) -> (i64, String) {
    let mut configuration = json!({
        "oauth.api.key": "client",
        "oauth.api.secret": "client-secret",
        "oauth.callback.url": "https://app.example.test/cb",
        "oauth.token.url": format!("{}/token", upstream.base_url),
        "oauth.user.token": access_token,
        "oauth.user.refresh_token": "refresh-token",
        "base.url": upstream.base_url,
    });
    if let (Some(entries), Some(more)) = (configuration.as_object_mut(), extra.as_object()) {
        entries.extend(more.clone());
    }
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "externalAuthentication": "initial",
                "configuration": configuration,
                "name": "upstream",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    (
        instance["id"].as_i64().unwrap(),
        instance["token"].as_str().unwrap().to_owned(),
    )
}

fn element(token: &str) -> String {
    format!("Element {token}")
}

/// Sends a proxy call and returns status, headers and JSON (or text) body.
async fn proxy_call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .http
        .request(method, app.url(&format!("/proxy{path}")))
        .header("Authorization", element(token));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

fn instance_header(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    headers
        .get("elements-element-instance-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

async fn salesforce_calls_reach_the_instance_url_with_the_bearer_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Oidc).await;
    let instance = provision(&app, "sfdc", &Provider::peer(peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    let token = instance["token"].as_str().unwrap();

    let (status, headers, me) = proxy_call(&app, token, Method::GET, "/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(me["id"].as_str().is_some(), "{me}");
    assert_eq!(instance_header(&headers), Some(id));

    let (status, headers, echo) = proxy_call(
        &app,
        token,
        Method::POST,
        "/echo",
        Some(&json!({"Name": "Acme", "Employees": 42})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{echo}");
    assert_eq!(echo["got"], json!({"Name": "Acme", "Employees": 42}));
    assert_eq!(echo["by"], me["id"]);
    assert_eq!(instance_header(&headers), Some(id));

    // Cloud Elements clients often send all three secrets.
    let response = app
        .http
        .get(app.url("/proxy/me"))
        .header(
            "Authorization",
            format!("{}, Element {token}", app.platform_auth()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(instance_header(response.headers()), Some(id));
}

async fn graph_gets_the_token_as_the_access_token_parameter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = GraphServer::start(GraphConfig::default()).await;
    let provider = Provider {
        authorize: graph.authorize_url(),
        token: graph.token_url(),
        api: graph.api_url(),
    };
    let instance = provision(&app, "facebooksocial", &provider, "&scope=public_profile").await;
    let token = instance["token"].as_str().unwrap();

    let (status, _, accounts) = proxy_call(
        &app,
        token,
        Method::GET,
        "/me/accounts?fields=id,name",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let ids: Vec<&str> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["101000000000001", "101000000000002", "101000000000003"]
    );

    // The caller's own access_token never replaces the instance's.
    let (status, _, me) =
        proxy_call(&app, token, Method::GET, "/me?access_token=forged", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    let (status, _, ping) = proxy_call_ping(&app, token, "social").await;
    assert_eq!(status, StatusCode::OK, "{ping}");
    assert_eq!(ping["endpoint"], "facebooksocial");

    // Graph's own error comes back as Graph sent it.
    graph.revoke_all();
    let (status, _, error) = proxy_call(&app, token, Method::GET, "/me/accounts", None).await;
    assert!(status.is_client_error(), "{status} {error}");
}

async fn only_safe_headers_cross_and_the_element_token_stays_behind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, "access-token-x").await;
    let response = app
        .http
        .get(app.url("/proxy/headers?a=1&b=two%20words"))
        .header("Authorization", element(&token))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .header("Cookie", "session=caller")
        .header("Proxy-Authorization", "Basic abc")
        .header("Connection", "keep-alive, x-for-this-hop")
        .header("x-for-this-hop", "1")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(instance_header(response.headers()), Some(id));
    assert!(response.headers().contains_key("elements-request-id"));
    assert_eq!(response.headers()["x-upstream"], "yes");
    assert!(!response.headers().contains_key("keep-alive"));
    assert!(!response.headers().contains_key("proxy-authenticate"));
    let body: Value = response.json().await.unwrap();
    let got = &body["headers"];
    assert_eq!(got["authorization"], "Bearer access-token-x", "{got}");
    assert_eq!(got["accept"], "application/json");
    assert_eq!(got["x-custom"], "kept");
    for dropped in ["cookie", "proxy-authorization", "x-for-this-hop"] {
        assert!(
            got.get(dropped).is_none(),
            "{dropped} reached the provider: {got}"
        );
    }
    assert_eq!(body["query"], "a=1&b=two%20words");
    for (headers, query) in upstream.calls("/api/headers") {
        for value in headers.values() {
            assert!(!value.to_str().unwrap_or_default().contains(&token));
        }
        assert!(!query.unwrap_or_default().contains(&token));
    }

    // Dot segments would climb out of base.url. HTTP clients resolve them before sending,
    // so this request is written by hand.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /elements/api-v2/proxy/%2e%2e/admin HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Element {token}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_path"), "{answer}");
    assert!(upstream.calls("/admin").is_empty());
}

async fn a_large_download_streams_through_intact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (_, token) = upstream_instance(&app, &upstream, "access-token-x").await;
    // Far more than any buffer Junction keeps; the memory bound itself is measured by
    // bench/proxy/run.sh on the release binary.
    let size: u64 = 200 * 1024 * 1024;
    let mut response = app
        .http
        .get(app.url(&format!("/proxy/big?bytes={size}")))
        .header("Authorization", element(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let reference = pattern_chunk();
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        assert!(
            matches_pattern(&reference, received, &chunk),
            "corrupt at {received}"
        );
        received += chunk.len() as u64;
    }
    assert_eq!(received, size);
}

async fn a_large_upload_streams_through_intact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (_, token) = upstream_instance(&app, &upstream, "access-token-x").await;
    // Over the replay limit, so it is streamed rather than kept.
    let size = 8 * 1024 * 1024u64;
    let body: Vec<u8> = (0..size).map(pattern).collect();
    let response = app
        .http
        .post(app.url("/proxy/upload"))
        .header("Authorization", element(&token))
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let got: Value = response.json().await.unwrap();
    assert_eq!(got, json!({"bytes": size, "intact": true}));
}

async fn rate_limited_idempotent_calls_wait_and_retry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (_, token) = upstream_instance(&app, &upstream, "access-token-x").await;

    let started = Instant::now();
    let (status, _, body) = proxy_call(&app, &token, Method::GET, "/limited", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(upstream.calls("/api/limited").len(), 2);

    // A POST might be applied twice: the caller decides.
    let (status, headers, _) = proxy_call(
        &app,
        &token,
        Method::POST,
        "/limited-post",
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(upstream.calls("/api/limited-post").len(), 1);

    // Longer than Junction waits: passed through at once.
    let started = Instant::now();
    let (status, _, body) = proxy_call(&app, &token, Method::GET, "/unavailable", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["message"], "maintenance");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(upstream.calls("/api/unavailable").len(), 1);
}

async fn a_provider_401_is_never_replayed_with_the_refused_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (_, token) = upstream_instance(&app, &upstream, "stale-token").await;
    let (status, _, body) = proxy_call(&app, &token, Method::GET, "/refused", None).await;
    let calls = upstream.calls("/api/refused");
    let refused = calls
        .iter()
        .filter(|(h, _)| h["authorization"] == "Bearer stale-token")
        .count();
    assert_eq!(refused, 1, "the refused token was sent again");
    // The upstream's token endpoint renews it: one replay, with the new token.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], "replayed");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].0["authorization"], "Bearer fresh-token");
    assert_eq!(upstream.calls("/api/token").len(), 1);
}

/// Against the real OAuth server, as with Salesforce: Junction does not know when the
/// access token expires, so only the provider's 401 can tell. The call is answered by
/// one refresh and one replay, with its body, and the rotated tokens are kept.
async fn an_expired_token_the_provider_refuses_is_refreshed_and_the_call_replayed(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, crate::refresh::time_travel()).await;
    let peer = Peer::start(PeerKind::Oidc, &[("ROTATE", "1"), ("AT_TTL", "2")]).await;
    let instance = provision(&app, "sfdc", &Provider::peer(&peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    let token = instance["token"].as_str().unwrap();
    let (status, _, me) = proxy_call(&app, token, Method::GET, "/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    crate::refresh::set_token_expiry(&app, id, None).await;
    let before = app
        .services
        .store
        .get_instance_fresh(AccountId(1), InstanceId(id))
        .await
        .unwrap();
    assert_eq!(before.token_expires_at, None);
    // The provider's clock moves on; Junction's has nothing to go by.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (status, _, echoed) = proxy_call(
        &app,
        token,
        Method::POST,
        "/echo",
        Some(&json!({"note": "sent twice, seen once"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{echoed}");
    assert_eq!(echoed["got"]["note"], "sent twice, seen once");
    assert_eq!(echoed["by"], me["id"]);
    let stats = peer.stats().await;
    assert_eq!(stats["refreshGrants"], 1, "{stats}");
    assert_eq!(stats["refreshFailures"], 0, "{stats}");
    let after = app
        .services
        .store
        .get_instance_fresh(AccountId(1), InstanceId(id))
        .await
        .unwrap();
    assert_ne!(
        after.config[keys::USER_TOKEN],
        before.config[keys::USER_TOKEN]
    );
    assert_ne!(
        after.config[keys::REFRESH_TOKEN],
        before.config[keys::REFRESH_TOKEN],
        "the rotated refresh token is stored"
    );
    let (status, _, _) = proxy_call(&app, token, Method::GET, "/me", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn proxy_call_ping(
    app: &TestApp,
    token: &str,
    hub: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = app
        .http
        .get(app.url(&format!("/hubs/{hub}/ping")))
        .header("Authorization", element(token))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

async fn ping_answers_for_any_hub_name_and_passes_provider_errors_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, "good-token").await;
    for hub in ["crm", "marketing", "anything"] {
        let (status, headers, ping) = proxy_call_ping(&app, &token, hub).await;
        assert_eq!(status, StatusCode::OK, "{hub}: {ping}");
        assert_eq!(ping["endpoint"], "sfdc");
        let when = ping["dateTime"].as_str().unwrap();
        assert!(
            chrono_like_utc(when),
            "dateTime must be ISO 8601 UTC: {when}"
        );
        assert_eq!(instance_header(&headers), Some(id));
    }
    assert_eq!(upstream.calls("/api/services/oauth2/userinfo").len(), 3);

    let (_, other) = upstream_instance(&app, &upstream, "revoked-token").await;
    let (status, _, error) = proxy_call_ping(&app, &other, "crm").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&error, "provider_error");
    assert_eq!(error["providerMessage"], "Session expired or invalid");
}

/// `YYYY-MM-DDTHH:MM:SSZ`
fn chrono_like_utc(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

async fn disabled_deleted_and_missing_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, "good-token").await;

    // Platform credentials alone do not say which instance to act as.
    let (status, body) = app.get("/proxy/headers").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let response = app
        .http
        .get(app.url("/proxy/headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}/enabled"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = proxy_call(&app, &token, Method::GET, "/headers", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    let (status, _, body) = proxy_call_ping(&app, &token, "crm").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = proxy_call(&app, &token, Method::GET, "/headers", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    assert!(upstream.calls("/api/headers").is_empty());
}
