//! What operators and their tools see of a server: readiness, trace ids, and the metrics
//! of the requests it answered.

use crate::helpers::{Options, TestApp};
use crate::on_both_backends;
use crate::provisioning::{Provider, provision};
use crate::refresh::set_token_expiry;
use junction_testkit::db::Backend;
use junction_testkit::peers::{Peer, PeerKind};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

on_both_backends!(
    ready_names_the_database_its_migrations_and_the_listener,
    a_pending_migration_makes_a_replica_unready,
    every_response_carries_a_trace_id_continuing_the_callers_trace,
    requests_are_counted_by_route_template_not_by_path,
    token_refreshes_are_counted_by_element_and_outcome,
);

async fn ready(app: &TestApp, path: &str) -> (StatusCode, Option<String>, Value) {
    let response = app.http.get(app.root_url(path)).send().await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, response.json().await.unwrap())
}

async fn ready_names_the_database_its_migrations_and_the_listener(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The listener connects in the background, right after the start.
    let mut body = Value::Null;
    for _ in 0..100 {
        let (status, _, answer) = ready(&app, "/ready").await;
        body = answer;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["database"], "reachable");
    assert_eq!(body["migrations"], "current");
    let listener = match backend {
        Backend::Sqlite => "not used",
        Backend::Postgres => "connected",
    };
    assert_eq!(body["listener"], listener);
    // Under the API prefix too, where the API document lists it.
    let (status, _, same) = ready(&app, "/elements/api-v2/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, body);
}

async fn a_pending_migration_makes_a_replica_unready(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    // As if a newer release had been rolled out to the database and not to this replica,
    // or a migration had been rolled back under it.
    sqlx::query(
        "delete from _sqlx_migrations where version = (select max(version) from _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, retry, body) = ready(&app, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "reachable");
    assert_eq!(body["migrations"], "pending");
    // Alive all the same.
    let response = app.http.get(app.root_url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn every_response_carries_a_trace_id_continuing_the_callers_trace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let trace_of = |response: &reqwest::Response| {
        response.headers()["elements-trace-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    for path in ["/instances", "/no-such-route"] {
        let response = app
            .http
            .get(app.url(path))
            .header("Authorization", app.platform_auth())
            .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(trace_of(&response), caller, "{path}");
    }
    // Without one, or with one that does not parse, each request starts its own trace.
    let mut seen = std::collections::HashSet::new();
    for traceparent in [None, Some("00-zz-00f067aa0ba902b7-01"), None] {
        let mut request = app.http.get(app.url("/instances"));
        if let Some(t) = traceparent {
            request = request.header("traceparent", t);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let trace = trace_of(&response);
        assert_eq!(trace.len(), 32);
        assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()), "{trace}");
        assert_ne!(trace, caller);
        assert!(seen.insert(trace));
    }
}

async fn requests_are_counted_by_route_template_not_by_path(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    for id in [987_654_321, 987_654_322] {
        let (status, _) = app.get(&format!("/instances/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let metrics = app.metrics_addr.expect("metrics listener");
    let text = app
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Metrics are per process, and other tests run in this one: only this series' presence
    // and the absence of the ids are certain.
    assert!(
        text.contains(r#"junction_http_requests_total{route="/elements/api-v2/instances/{id}",method="GET",status="404"}"#),
        "{text}"
    );
    // Label sets only: sample values may hold any digits.
    let labels: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('{')?
                .1
                .rsplit_once('}')
                .map(|(labels, _)| labels)
        })
        .collect();
    assert!(!labels.contains("98765432"), "{text}");
}

async fn scrape(app: &TestApp) -> String {
    let metrics = app.metrics_addr.expect("metrics listener");
    app.http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A counter's value in an exposition, 0 when the series does not exist yet.
fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn token_refreshes_are_counted_by_element_and_outcome(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            cache_ttl: 0,
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    let peer = Peer::start(PeerKind::Oidc, &[("AT_TTL", "120")]).await;
    let instance = provision(&app, "sfdc", &Provider::peer(&peer), "").await;
    let id = instance["id"].as_i64().unwrap();
    let renewed = r#"junction_token_refreshes_total{element="sfdc",outcome="renewed"}"#;
    // Other tests in this process renew tokens too: the counter only grows.
    let before = counter(&scrape(&app).await, renewed);
    set_token_expiry(&app, id, junction_service::now_ms() + 30_000).await;
    let report = junction_server::jobs::run_once(&app.services, Duration::from_secs(60)).await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    let after = counter(&scrape(&app).await, renewed);
    assert!(after > before, "{before} -> {after}");
}
