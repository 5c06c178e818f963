//! Calls Junction makes to providers, hardened: time arithmetic that cannot wrap, what a
//! proxied answer may carry back, which paths may be proxied, and the hosts credentials
//! are bound to.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use junction_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    an_out_of_range_refresh_interval_is_refused_and_nothing_is_stored,
    a_proxied_page_sets_no_cookie_and_runs_sandboxed,
);

/// A provider API on a loopback port with the routes given, under `/api`.
struct Api {
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Api {
    async fn start(routes: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/api", listener.local_addr().unwrap());
        let app = Router::new().nest("/api", routes);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base_url, task }
    }
}

/// An `sfdc` instance from tokens the caller holds, calling `base_url`.
fn external_sfdc(base_url: &str, extra: Value) -> Value {
    let mut configuration = json!({
        "oauth.api.key": "client",
        "oauth.api.secret": "client-secret",
        "oauth.callback.url": "https://app.example.test/cb",
        "oauth.token.url": format!("{base_url}/token"),
        "oauth.user.token": "access-token",
        "oauth.user.refresh_token": "refresh-token",
        "base.url": base_url,
    });
    if let (Some(entries), Some(more)) = (configuration.as_object_mut(), extra.as_object()) {
        entries.extend(more.clone());
    }
    json!({
        "element": {"key": "sfdc"},
        "externalAuthentication": "initial",
        "configuration": configuration,
        "name": "upstream",
    })
}

async fn create(app: &TestApp, body: &Value) -> (i64, String) {
    let (status, instance) = app.post("/instances", body).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    (
        instance["id"].as_i64().unwrap(),
        instance["token"].as_str().unwrap().to_owned(),
    )
}

async fn an_out_of_range_refresh_interval_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let upstream = Api::start(Router::new()).await;
    for interval in ["9223372036854775807", "0", "-5"] {
        let body = external_sfdc(
            &upstream.base_url,
            json!({"oauth.user.refresh_interval": interval}),
        );
        let (status, error) = app.post("/instances", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{interval}: {error}");
        let message = assert_error(&error, "invalid_configuration");
        assert!(message.contains("oauth.user.refresh_interval"), "{message}");
    }
    assert!(app.instance_ids().await.is_empty());
    // Ten years is the longest lifetime taken; it is accepted as it is.
    let body = external_sfdc(
        &upstream.base_url,
        json!({"oauth.user.refresh_interval": "315360000"}),
    );
    let (status, instance) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
}

async fn a_proxied_page_sets_no_cookie_and_runs_sandboxed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = || async {
        (
            [
                ("content-type", "text/html"),
                ("set-cookie", "sid=provider; Path=/"),
                ("access-control-allow-origin", "https://evil.example"),
                ("access-control-allow-credentials", "true"),
                ("content-security-policy", "default-src *"),
                ("x-provider", "kept"),
            ],
            "<script>fetch('/elements/api-v2/instances')</script>",
        )
            .into_response()
    };
    let provider = Api::start(Router::new().route("/page", get(page))).await;
    let (_, token) = create(&app, &external_sfdc(&provider.base_url, json!({}))).await;

    let response = app
        .http
        .get(app.url("/proxy/page"))
        .header("Authorization", format!("Element {token}"))
        .header("Origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["x-provider"], "kept");
    assert_eq!(headers["content-type"], "text/html");
    assert!(!headers.contains_key("set-cookie"), "{headers:?}");
    assert!(
        !headers.contains_key("access-control-allow-credentials"),
        "{headers:?}"
    );
    // Junction's own CORS answer, once, not the provider's.
    let origins: Vec<_> = headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, ["https://app.example.test"], "{headers:?}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policies: Vec<_> = headers.get_all("content-security-policy").iter().collect();
    assert_eq!(policies.len(), 1, "{headers:?}");
    assert!(
        policies[0].to_str().unwrap().starts_with("sandbox"),
        "{headers:?}"
    );
}
