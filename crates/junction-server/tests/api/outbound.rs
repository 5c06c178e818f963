//! Calls Junction makes to providers, hardened: time arithmetic that cannot wrap, what a
//! proxied answer may carry back, which paths may be proxied, and the hosts credentials
//! are bound to.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use junction_core::config::keys;
use junction_core::{AccountId, InstanceId};
use junction_testkit::db::Backend;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_backends!(
    an_out_of_range_refresh_interval_is_refused_and_nothing_is_stored,
    a_proxied_page_sets_no_cookie_and_runs_sandboxed,
    a_streamed_hub_page_runs_sandboxed,
    a_deleted_instance_leaves_no_checked_base_url_behind,
    an_element_token_cannot_re_point_where_credentials_go,
    moving_a_credential_url_to_another_host_needs_a_new_code_and_drops_the_tokens,
    pinned_hosts_hold_for_callers_and_for_provider_answers,
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
    // Also with a code: refused before the provider is asked.
    let (provider, calls) = token_endpoint(json!({"access_token": "a"})).await;
    let (status, error) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "providerData": {"code": "c"},
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    keys::TOKEN_URL: format!("{}/token", provider.base_url),
                    keys::REFRESH_INTERVAL: "99999999999999",
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_error(&error, "invalid_configuration");
    assert_eq!(*calls.lock().unwrap(), 0);
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

/// A provider's HTML that a `stream: true` hub resource relays keeps the sandboxing
/// policy too, not the one Junction's own pages carry.
async fn a_streamed_hub_page_runs_sandboxed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = || async {
        (
            [
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", "default-src *"),
            ],
            "<script>fetch('/elements/api-v2/instances')</script>",
        )
            .into_response()
    };
    let provider = Api::start(Router::new().route("/files/{id}", get(page))).await;
    let element = json!({
        "name": "pages", "key": "pages", "description": "a vendor", "hub": "documents",
        "authentication": {"type": "basic"},
        "configuration": [
            {"key": "vendor.api.key", "name": "API key", "type": "PASSWORD", "required": true},
            {"key": "base.url", "name": "Base URL", "default": "https://vendor.example/api"},
        ],
        "credentials": [{"in": "basic", "username": "{vendor.api.key}", "password": "X"}],
        "resources": [{"path": "/hubs/documents/files/{id}", "method": "GET",
                       "vendorPath": "/files/{id}", "stream": true}],
    });
    let (status, body) = app.post("/elements", &element).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, instance) = app
        .post(
            "/instances",
            &json!({"element": {"key": "pages"}, "name": "n", "configuration": {
                "vendor.api.key": "k", "base.url": provider.base_url,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");

    let response = app
        .http
        .get(app.url("/hubs/documents/files/report"))
        .header(
            "Authorization",
            format!("Element {}", instance["token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policies: Vec<_> = headers.get_all("content-security-policy").iter().collect();
    assert_eq!(
        policies,
        [junction_oauth::PROXIED_CONTENT_SECURITY_POLICY],
        "{headers:?}"
    );
}

/// A token endpoint that answers every grant with `answer` and counts the calls.
async fn token_endpoint(answer: Value) -> (Api, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&calls);
    let routes = Router::new().route(
        "/token",
        post(move || {
            let answer = answer.clone();
            let counter = Arc::clone(&counter);
            async move {
                *counter.lock().unwrap() += 1;
                axum::Json(answer).into_response()
            }
        }),
    );
    (Api::start(routes).await, calls)
}

async fn stored(app: &TestApp, id: i64) -> junction_core::ConfigMap {
    app.services
        .store
        .get_instance_fresh(AccountId(1), InstanceId(id))
        .await
        .unwrap()
        .config
}

async fn an_element_token_cannot_re_point_where_credentials_go(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (provider, _) = token_endpoint(json!({"access_token": "a"})).await;
    let (thief, thief_calls) = token_endpoint(json!({"access_token": "stolen"})).await;
    let (id, token) = create(&app, &external_sfdc(&provider.base_url, json!({}))).await;
    let before = stored(&app, id).await;
    let element = format!("Element {token}");

    for (key, value) in [
        (keys::TOKEN_URL, format!("{}/token", thief.base_url)),
        (keys::BASE_URL, thief.base_url.clone()),
        (
            keys::AUTHORIZATION_URL,
            format!("{}/authorize", thief.base_url),
        ),
        // Not even within the same host.
        (keys::BASE_URL, format!("{}/v2", provider.base_url)),
    ] {
        // A full update must name the required entries again.
        let body = json!({"configuration": {
            key: value,
            "oauth.api.key": "client",
            "oauth.api.secret": "client-secret",
            "oauth.callback.url": "https://app.example.test/cb",
        }});
        for method in [Method::PATCH, Method::PUT] {
            let (status, error) = app
                .call_as(&element, method.clone(), "/instances", Some(&body))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {key}: {error}");
            assert!(assert_error(&error, "forbidden").contains(key), "{error}");
        }
        let (status, error) = app
            .call_as(
                &element,
                Method::PATCH,
                &format!(
                    "/instances/configuration/{}",
                    junction_service::config_id(key)
                ),
                Some(&json!({"propertyValue": value})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {error}");
    }
    assert_eq!(stored(&app, id).await, before);
    // Everything else stays the Element token's to change; the URLs it sends back as
    // they are do not count as changes.
    let (status, body) = app
        .call_as(
            &element,
            Method::PATCH,
            "/instances",
            Some(&json!({"name": "renamed", "configuration": {keys::BASE_URL: provider.base_url}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let full = json!({"name": "again", "configuration": {
        "oauth.api.key": "client",
        "oauth.api.secret": "client-secret",
        "oauth.callback.url": "https://app.example.test/cb",
    }});
    let (status, body) = app
        .call_as(&element, Method::PUT, "/instances", Some(&full))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["configuration"][keys::BASE_URL],
        provider.base_url.as_str()
    );
    assert_eq!(*thief_calls.lock().unwrap(), 0);
}

async fn moving_a_credential_url_to_another_host_needs_a_new_code_and_drops_the_tokens(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (provider, _) = token_endpoint(json!({"access_token": "a"})).await;
    let (elsewhere, elsewhere_calls) =
        token_endpoint(json!({"access_token": "from-elsewhere", "expires_in": 3600})).await;
    let (id, _) = create(&app, &external_sfdc(&provider.base_url, json!({}))).await;
    let path = format!("/instances/{id}");

    // Another path on the same origin is no move.
    let same_origin =
        json!({"configuration": {keys::TOKEN_URL: format!("{}/v2/token", provider.base_url)}});
    let (status, body) = app.call(Method::PATCH, &path, Some(&same_origin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Another host without a new authorization: refused, nothing written or sent.
    let before = stored(&app, id).await;
    let moved =
        json!({"configuration": {keys::TOKEN_URL: format!("{}/token", elsewhere.base_url)}});
    let (status, error) = app.call(Method::PATCH, &path, Some(&moved)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let message = assert_error(&error, "host_change_requires_authorization");
    assert!(message.contains("providerData.code"), "{message}");
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!(
                "/instances/{id}/configuration/{}",
                junction_service::config_id(keys::BASE_URL)
            ),
            Some(&json!({"propertyValue": elsewhere.base_url})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&app, id).await, before);
    assert_eq!(*elsewhere_calls.lock().unwrap(), 0);

    // With tokens the caller brings for the new host, the old refresh token is dropped,
    // not kept for the new host to receive.
    let brought = json!({
        "externalAuthentication": "initial",
        "configuration": {
            keys::TOKEN_URL: format!("{}/token", elsewhere.base_url),
            keys::BASE_URL: elsewhere.base_url,
            keys::USER_TOKEN: "brought-token",
        },
    });
    let (status, body) = app.call(Method::PATCH, &path, Some(&brought)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let now = stored(&app, id).await;
    assert_eq!(now[keys::USER_TOKEN].as_deref(), Some("brought-token"));
    assert_eq!(now[keys::REFRESH_TOKEN], None, "the old refresh token went");

    // With a new code, the exchange goes to the new host.
    let back = json!({
        "providerData": {"code": "new-code"},
        "configuration": {keys::TOKEN_URL: format!("{}/token", provider.base_url)},
    });
    let (status, body) = app.call(Method::PATCH, &path, Some(&back)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        stored(&app, id).await[keys::USER_TOKEN].as_deref(),
        Some("a")
    );
}

async fn pinned_hosts_hold_for_callers_and_for_provider_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let foreign = "https://salesforce.com.evil.example";

    // A caller's value.
    let (provider, provider_calls) = token_endpoint(json!({"access_token": "a"})).await;
    let body = external_sfdc(&provider.base_url, json!({keys::BASE_URL: foreign}));
    let (status, error) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let message = assert_error(&error, "host_not_allowed");
    assert!(
        message.contains("*.salesforce.com") && message.contains(keys::BASE_URL),
        "{message}"
    );

    // The provider's answer at the code exchange: refused before the token goes there.
    let (lying, _) = token_endpoint(json!({
        "access_token": "a",
        "refresh_token": "r",
        "instance_url": foreign,
    }))
    .await;
    let (status, error) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "providerData": {"code": "c"},
                "configuration": {
                    "oauth.api.key": "client",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    keys::TOKEN_URL: format!("{}/token", lying.base_url),
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        assert_error(&error, "provider_bad_response").contains(keys::BASE_URL),
        "{error}"
    );
    assert!(app.instance_ids().await.is_empty());

    // The provider's answer at a refresh: its tokens are kept, its URL is not.
    let body = external_sfdc(
        &provider.base_url,
        json!({keys::TOKEN_URL: format!("{}/token", lying.base_url), "oauth.user.refresh_interval": "3600"}),
    );
    let (id, _) = create(&app, &body).await;
    let report = app
        .services
        .refresh_expiring(Duration::from_secs(7200), 1)
        .await
        .unwrap();
    assert_eq!(report.refreshed, 1, "{report:?}");
    let now = stored(&app, id).await;
    assert_eq!(now[keys::REFRESH_TOKEN].as_deref(), Some("r"));
    assert_eq!(
        now[keys::BASE_URL].as_deref(),
        Some(provider.base_url.as_str())
    );
    assert_eq!(*provider_calls.lock().unwrap(), 0);
}

async fn a_deleted_instance_leaves_no_checked_base_url_behind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Api::start(Router::new().route("/me", get(|| async { "{}" }))).await;
    let (id, token) = create(&app, &external_sfdc(&provider.base_url, json!({}))).await;
    let response = app
        .http
        .get(app.url("/proxy/me"))
        .header("Authorization", format!("Element {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.services.proxy.remembers(id));
    let (status, _) = app
        .call(Method::DELETE, &format!("/instances/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!app.services.proxy.remembers(id));
}
