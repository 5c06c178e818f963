//! Trace logging: `PUT /instances/{id}/trace-logging` records every call Junction makes
//! to the instance's provider, redacted, for `GET /instances/{id}/trace-logs`.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use crate::proxy::{Upstream, upstream_instance, upstream_instance_with};
use junction_core::InstanceId;
use junction_store::{TRACE_ENTRIES_KEPT, TraceEntry};
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

on_both_backends!(
    each_provider_call_is_recorded_without_its_secrets,
    only_calls_made_while_logging_is_on_are_recorded,
    logging_runs_out_after_its_duration,
    traced_bodies_still_stream_and_only_their_start_is_kept,
    deleting_the_instance_deletes_its_trace_log,
    only_the_newest_entries_of_an_instance_are_kept,
    a_call_that_got_no_answer_is_recorded_with_the_reason,
);

const ACCESS_TOKEN: &str = "access-token-for-tracing";

async fn trace_on(app: &TestApp, id: i64, body: Option<&Value>) -> Value {
    let (status, instance) = app
        .call(Method::PUT, &format!("/instances/{id}/trace-logging"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

/// The instance's trace log once it holds `count` entries. Entries are written after the
/// provider's answer has been read, so this waits for them, on loopback, a bounded time.
async fn entries(app: &TestApp, id: i64, count: usize) -> Vec<Value> {
    for _ in 0..400 {
        let (status, body) = app.get(&format!("/instances/{id}/trace-logs")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body.as_array().unwrap().clone();
        if items.len() >= count {
            assert_eq!(items.len(), count, "{body}");
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the trace log never held {count} entries");
}

async fn proxied(app: &TestApp, token: &str, method: Method, path: &str) -> reqwest::Response {
    app.http
        .request(method, app.url(&format!("/proxy{path}")))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap()
}

async fn each_provider_call_is_recorded_without_its_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    let instance = trace_on(&app, id, Some(&json!({"duration": 600}))).await;
    assert_eq!(instance["traceLoggingEnabled"], true);

    // The upstream echoes every header it got, the instance's bearer token included.
    let response = app
        .http
        .get(app.url("/proxy/headers?a=1&access_token=caller-supplied-token"))
        .header("Authorization", format!("Element {token}"))
        .header("Accept", "application/json")
        .header("X-Api-Key", "caller-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.text().await.unwrap();
    assert!(
        echoed.contains(ACCESS_TOKEN),
        "the call itself is unchanged"
    );

    let upload = json!({"name": "Acme", "password": "caller-password", "note": "kept"});
    let response = app
        .http
        .post(app.url("/proxy/upload"))
        .header("Authorization", format!("Element {token}"))
        .json(&upload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap();
    let ping = app
        .http
        .get(app.url("/hubs/crm/ping"))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ping.status(),
        StatusCode::FORBIDDEN,
        "this token is not good-token"
    );
    ping.bytes().await.unwrap();

    let log = entries(&app, id, 3).await;
    let whole = serde_json::to_string(&log).unwrap();
    for secret in [
        ACCESS_TOKEN,
        &token,
        "caller-supplied-token",
        "caller-api-key",
        "caller-password",
        "client-secret",
    ] {
        assert!(
            !whole.contains(secret),
            "{secret} is in the trace log: {whole}"
        );
    }
    // Entries are numbered as they are written, when each answer has been read, so
    // calls are found by their URL rather than by their place.
    let find = |path: &str| {
        log.iter()
            .find(|e| url::Url::parse(e["url"].as_str().unwrap()).unwrap().path() == path)
            .unwrap_or_else(|| panic!("no entry for {path}: {whole}"))
    };
    let ping = find("/api/services/oauth2/userinfo");
    let upload_entry = find("/api/upload");
    let headers = find("/api/headers");
    assert_eq!(ping["method"], "GET");
    assert!(
        ping["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/services/oauth2/userinfo"),
        "{ping}"
    );
    assert_eq!(ping["status"], 403);

    assert_eq!(upload_entry["method"], "POST");
    assert_eq!(upload_entry["status"], 200);
    let sent = upload_entry["requestBody"].as_str().unwrap();
    assert!(sent.contains("Acme") && sent.contains("kept"), "{sent}");
    assert_eq!(
        upload_entry["requestBodyBytes"],
        serde_json::to_vec(&upload).unwrap().len()
    );

    assert_eq!(headers["method"], "GET");
    assert_eq!(headers["status"], 200);
    let url = headers["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/headers?a=1", upstream.base_url)),
        "{url}"
    );
    assert!(headers["durationMs"].as_i64().unwrap() >= 0);
    assert!(
        chrono_like(headers["createdDate"].as_str().unwrap()),
        "{headers}"
    );
    assert_eq!(headers["requestHeaders"]["accept"], "application/json");
    assert!(
        headers["responseHeaders"]["content-type"].is_string(),
        "{headers}"
    );
    let answer = headers["responseBody"].as_str().unwrap();
    assert!(answer.contains("\"accept\""), "{answer}");
    assert_eq!(headers["responseBodyBytes"], echoed.len());

    // The Element token reads its own instance's log, paged like every list.
    let response = app
        .http
        .get(app.url("/instances/trace-logs?pageSize=2"))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["elements-returned-count"], "2");
    assert_eq!(response.headers()["elements-total-count"], "3");
    let next = response.headers()["elements-next-page-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let first: Vec<Value> = response.json().await.unwrap();
    assert_eq!(first, log[..2]);
    let (status, rest) = app
        .get(&format!(
            "/instances/{id}/trace-logs?pageSize=2&nextPage={next}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rest, json!([log[2]]));
    let ids: Vec<i64> = log.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
}

fn chrono_like(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

/// The `mark` query parameters of the recorded calls.
fn marks(log: &[Value]) -> Vec<String> {
    log.iter()
        .map(|e| {
            let url = url::Url::parse(e["url"].as_str().unwrap()).unwrap();
            url.query_pairs()
                .find(|(k, _)| k == "mark")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

async fn only_calls_made_while_logging_is_on_are_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    let (other, other_token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    let call = |token: String, mark: &'static str| {
        let app = &app;
        async move {
            let response =
                proxied(app, &token, Method::GET, &format!("/headers?mark={mark}")).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.unwrap();
        }
    };

    call(token.clone(), "before").await;
    trace_on(&app, id, None).await;
    call(token.clone(), "on").await;
    call(other_token.clone(), "other-instance").await;
    let (status, off) = app
        .call(
            Method::DELETE,
            &format!("/instances/{id}/trace-logging"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["traceLoggingEnabled"], false);
    call(token.clone(), "off").await;
    let instance = trace_on(&app, id, Some(&json!({}))).await;
    assert_eq!(instance["traceLoggingEnabled"], true);
    call(token.clone(), "on-again").await;

    let log = entries(&app, id, 2).await;
    let mut seen = marks(&log);
    seen.sort();
    assert_eq!(seen, ["on", "on-again"]);
    let (status, body) = app.get(&format!("/instances/{other}/trace-logs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));
}

async fn logging_runs_out_after_its_duration(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            cache_ttl: 0,
            ..Options::default()
        },
    )
    .await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    for (body, code) in [
        (json!({"duration": 0}), "invalid_duration"),
        (json!({"duration": 86_401}), "invalid_duration"),
        (json!({"duration": "an hour"}), "invalid_body"),
    ] {
        let (status, answer) = app
            .call(
                Method::PUT,
                &format!("/instances/{id}/trace-logging"),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = assert_error(&answer, code);
        assert!(message.contains("duration"), "{message}");
    }

    trace_on(&app, id, Some(&json!({"duration": 86_400}))).await;
    // As if the day had passed.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::query("update instances set trace_logging_until = $1 where id = $2")
        .bind(chrono_now_ms() - 1)
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let (_, instance) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(instance["traceLoggingEnabled"], false);
    let response = proxied(&app, &token, Method::GET, "/headers?mark=expired").await;
    response.bytes().await.unwrap();

    trace_on(&app, id, Some(&json!({"duration": 60}))).await;
    let response = proxied(&app, &token, Method::GET, "/headers?mark=renewed").await;
    response.bytes().await.unwrap();
    let log = entries(&app, id, 1).await;
    assert_eq!(marks(&log), ["renewed"]);
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn traced_bodies_still_stream_and_only_their_start_is_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    trace_on(&app, id, None).await;

    let size: u64 = 64 * 1024 * 1024;
    let mut response = proxied(&app, &token, Method::GET, &format!("/big?bytes={size}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
    }
    assert_eq!(received, size);

    // Over the replay limit, so the upload streams rather than being kept.
    let upload = vec![b'a'; 3 * 1024 * 1024];
    let response = app
        .http
        .post(app.url("/proxy/upload"))
        .header("Authorization", format!("Element {token}"))
        .header("Content-Type", "text/plain")
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    let got: Value = response.json().await.unwrap();
    assert_eq!(got["bytes"], upload.len());

    let log = entries(&app, id, 2).await;
    let (up, down) = match log[0]["method"].as_str() {
        Some("POST") => (&log[0], &log[1]),
        _ => (&log[1], &log[0]),
    };
    assert_eq!(down["responseBodyBytes"], size);
    let start = down["responseBody"].as_str().unwrap();
    assert!(start.len() <= 4096, "{}", start.len());
    assert_eq!(up["requestBodyBytes"], upload.len());
    assert_eq!(up["requestBody"].as_str().unwrap(), "a".repeat(4096));
}

async fn deleting_the_instance_deletes_its_trace_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, token) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    trace_on(&app, id, None).await;
    let response = proxied(&app, &token, Method::GET, "/headers").await;
    response.bytes().await.unwrap();
    entries(&app, id, 1).await;

    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from instance_trace_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let (status, body) = app.get(&format!("/instances/{id}/trace-logs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "instance_not_found");
}

async fn only_the_newest_entries_of_an_instance_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let (id, _) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    let (other, _) = upstream_instance(&app, &upstream, ACCESS_TOKEN).await;
    let entry = |instance: i64, n: i64| TraceEntry {
        id: 0,
        instance_id: InstanceId(instance),
        created_at: n,
        method: "GET".into(),
        url: format!("https://provider.example/{n}"),
        status: Some(200),
        duration_ms: 1,
        request_headers: "{}".into(),
        response_headers: None,
        request_body: None,
        request_body_bytes: 0,
        response_body: None,
        response_body_bytes: 0,
        error: None,
    };
    let store = &app.services.store;
    store.insert_trace_entry(&entry(other, 0)).await.unwrap();
    for n in 1..=TRACE_ENTRIES_KEPT + 3 {
        store.insert_trace_entry(&entry(id, n)).await.unwrap();
    }
    let (status, body) = app
        .get(&format!("/instances/{id}/trace-logs?pageSize=500"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let urls: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len() as i64, TRACE_ENTRIES_KEPT);
    assert_eq!(
        urls[0],
        format!("https://provider.example/{}", TRACE_ENTRIES_KEPT + 3)
    );
    assert_eq!(*urls.last().unwrap(), "https://provider.example/4");
    // Another instance's entries are its own.
    let (_, body) = app.get(&format!("/instances/{other}/trace-logs")).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
}

async fn a_call_that_got_no_answer_is_recorded_with_the_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Upstream::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (id, token) = upstream_instance_with(
        &app,
        &upstream,
        ACCESS_TOKEN,
        json!({"base.url": format!("http://{closed}/api")}),
    )
    .await;
    trace_on(&app, id, None).await;
    let response = proxied(&app, &token, Method::GET, "/me").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    let log = entries(&app, id, 1).await;
    let entry = &log[0];
    assert!(entry.get("status").is_none(), "{entry}");
    assert!(entry.get("responseHeaders").is_none(), "{entry}");
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{entry}"
    );
    assert_eq!(entry["url"], format!("http://{closed}/api/me"));
}
