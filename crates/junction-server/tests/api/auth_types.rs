//! Authentication beyond the OAuth 2.0 code flow, end to end through the catalog's own
//! elements: HTTP basic (Close), an API key (Stripe) and custom headers (Algolia) from
//! configuration, against a provider that checks exactly what it receives; the
//! client-credentials grant (Marketo, against the authlib peer) and OAuth 1.0a (Trello,
//! against authlib's OAuth 1.0a server, which verifies every signature). Each element's
//! URLs are pointed at the local servers through its configuration.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use junction_core::{AccountId, InstanceId};
use junction_testkit::db::Backend;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_backends!(
    basic_credentials_come_from_configuration_and_are_sealed_and_masked,
    an_api_key_goes_in_the_header_the_element_names,
    custom_headers_are_templated_from_configuration,
    missing_credentials_are_named_and_nothing_is_stored,
    moving_a_configured_instance_to_another_host_takes_its_credentials_in_the_same_request,
    keys_that_are_not_all_the_credential_secrets_do_not_move_an_instance,
    a_templated_host_moves_only_with_every_credential_secret,
    element_parameters_go_on_every_call_and_ping_without_overriding_the_credential,
    a_refused_validation_call_is_a_400_with_the_providers_words_and_stores_nothing,
    new_credentials_in_an_update_are_validated_before_they_are_stored,
    trace_logs_never_show_configured_credentials,
    client_credentials_are_obtained_at_provisioning_and_renewed_by_junction,
    oauth1_request_token_authorization_and_exchange_against_a_real_server,
    oauth1_calls_are_signed_including_form_bodies,
    oauth1_provisioning_names_missing_callback_values,
    oauth1_steps_fill_their_templates_from_the_callers_values_and_name_what_is_missing,
    oauth1_elements_pin_their_hosts_and_a_given_request_token_url_is_held_to_them,
);

/// What the provider must see on every call, and what it saw.
struct Checker {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    /// Every header, by lower-case name; repeated ones joined with ", ".
    headers: BTreeMap<String, String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

type Accept = Arc<dyn Fn(&Seen) -> bool + Send + Sync>;

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Checker {
    /// A provider whose API (`/v1/…`) answers 200 when `accept` passes, else 401 with a
    /// JSON error; its answers echo what it got, credentials included, as a careless
    /// provider would.
    async fn start(accept: Accept) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(checker)
            .with_state((Arc::clone(&seen), accept));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url,
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn checker(
    State((seen, accept)): State<(Arc<Mutex<Vec<Seen>>>, Accept)>,
    request: Request,
) -> Response {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_default();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    let call = Seen {
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        authorization: header("authorization"),
        headers,
    };
    seen.lock().unwrap().push(call.clone());
    if accept(&call) {
        axum::Json(json!({"id": "u-1", "echo": format!("{call:?}")})).into_response()
    } else {
        (
            AxumStatus::UNAUTHORIZED,
            axum::Json(json!({"message": "those credentials are not valid here"})),
        )
            .into_response()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A Close API key, sent as the user name with an empty password.
const CLOSE_KEY: &str = "api_close-0123456789abcdef";
const API_KEY: &str = "sk_test_0123456789abcdef";
const ALGOLIA_APP: &str = "APPID42";

async fn create(app: &TestApp, element: &str, configuration: Value) -> (StatusCode, Value) {
    app.post(
        "/instances",
        &json!({"element": {"key": element}, "name": "n", "configuration": configuration}),
    )
    .await
}

async fn proxy(app: &TestApp, instance: &Value, path: &str) -> (StatusCode, Value) {
    let token = instance["token"].as_str().unwrap();
    app.call_as(
        &format!("Element {token}"),
        Method::GET,
        &format!("/proxy{path}"),
        None,
    )
    .await
}

async fn ping(app: &TestApp, instance: &Value) -> (StatusCode, Value) {
    let token = instance["token"].as_str().unwrap();
    app.call_as(
        &format!("Element {token}"),
        Method::GET,
        "/hubs/general/ping",
        None,
    )
    .await
}

/// Every byte the database holds for the instances, configuration and sealed columns.
async fn stored_bytes(app: &TestApp) -> (String, Vec<u8>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let rows = sqlx::query("select config, secrets from instances")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut config = String::new();
    let mut raw = Vec::new();
    for row in rows {
        let c: String = row.get("config");
        config.push_str(&c);
        raw.extend_from_slice(c.as_bytes());
        raw.extend(row.get::<Vec<u8>, _>("secrets"));
    }
    pool.close().await;
    (config, raw)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A provider that accepts exactly Close's basic credential for `key`.
async fn close_provider(key: &str) -> Checker {
    let expected = basic(key, "");
    Checker::start(Arc::new(move |s: &Seen| {
        s.authorization.as_deref() == Some(expected.as_str())
    }))
    .await
}

async fn create_close(app: &TestApp, provider: &Checker, key: &str) -> (StatusCode, Value) {
    create(
        app,
        "closeio",
        json!({"base.url": provider.base_url, "closeio.api.key": key}),
    )
    .await
}

async fn basic_credentials_come_from_configuration_and_are_sealed_and_masked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = close_provider(CLOSE_KEY).await;
    let (status, instance) = create_close(&app, &provider, CLOSE_KEY).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["configuration"]["closeio.api.key"], "********");
    assert_eq!(
        provider.seen().len(),
        1,
        "provisioning made the validation call"
    );
    assert_eq!(provider.seen()[0].path, "/v1/me/");

    let (status, body) = proxy(&app, &instance, "/leads?_limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = provider.seen().pop().unwrap();
    assert_eq!(last.path, "/v1/leads");
    assert_eq!(last.query.as_deref(), Some("_limit=1"));
    let (status, body) = ping(&app, &instance).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let id = instance["id"].as_i64().unwrap();
    for path in [
        format!("/instances/{id}"),
        format!("/instances/{id}/configuration"),
    ] {
        let (_, shown) = app.get(&path).await;
        assert!(!shown.to_string().contains(CLOSE_KEY), "{path}: {shown}");
    }
    let (config, raw) = stored_bytes(&app).await;
    assert!(!contains(&raw, CLOSE_KEY), "the API key is stored in clear");
    assert!(!config.contains("closeio.api.key"), "{config}");
}

async fn an_api_key_goes_in_the_header_the_element_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let expected = format!("Bearer {API_KEY}");
    let provider = Checker::start(Arc::new(move |s: &Seen| {
        s.authorization.as_deref() == Some(expected.as_str())
    }))
    .await;
    let (status, instance) = create(
        &app,
        "stripe",
        json!({"base.url": provider.base_url, "stripe.secret.key": API_KEY}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["configuration"]["stripe.secret.key"], "********");
    assert_eq!(provider.seen()[0].path, "/v1/balance", "Stripe's ping");
    let (status, body) = proxy(&app, &instance, "/customers?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = provider.seen().pop().unwrap();
    assert_eq!(
        last.query.as_deref(),
        Some("limit=2"),
        "the key stays out of the URL"
    );
    let (_, raw) = stored_bytes(&app).await;
    assert!(!contains(&raw, API_KEY), "the API key is stored in clear");
}

async fn custom_headers_are_templated_from_configuration(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Checker::start(Arc::new(|s: &Seen| {
        s.header("x-algolia-application-id") == Some(ALGOLIA_APP)
            && s.header("x-algolia-api-key") == Some(API_KEY)
            && s.authorization.is_none()
    }))
    .await;
    let (status, instance) = create(
        &app,
        "algolia",
        json!({
            "base.url": provider.base_url,
            "algolia.application.id": ALGOLIA_APP,
            "algolia.api.key": API_KEY,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["configuration"]["algolia.api.key"], "********");
    assert_eq!(
        instance["configuration"]["algolia.application.id"],
        ALGOLIA_APP
    );
    assert_eq!(provider.seen()[0].path, "/v1/indexes", "Algolia's ping");
    let (status, body) = proxy(&app, &instance, "/indexes/products/browse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, raw) = stored_bytes(&app).await;
    assert!(!contains(&raw, API_KEY), "the API key is stored in clear");
}

async fn missing_credentials_are_named_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Checker::start(Arc::new(|_: &Seen| true)).await;
    let (status, body) = create(&app, "algolia", json!({"base.url": provider.base_url})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "missing_configuration");
    assert!(
        message.contains("algolia.application.id") && message.contains("algolia.api.key"),
        "{message}"
    );
    let (status, body) = create(&app, "closeio", json!({"base.url": provider.base_url})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "missing_configuration").contains("closeio.api.key"));
    assert!(provider.seen().is_empty(), "nothing was sent anywhere");
    assert!(app.instance_ids().await.is_empty());
}

async fn a_refused_validation_call_is_a_400_with_the_providers_words_and_stores_nothing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let provider = close_provider(CLOSE_KEY).await;
    let (status, body) = create_close(&app, &provider, "api_wrong-key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    assert_eq!(
        body["providerMessage"], "those credentials are not valid here",
        "{body}"
    );
    assert!(!body.to_string().contains("api_wrong-key"));
    assert_eq!(provider.seen().len(), 1);
    assert!(app.instance_ids().await.is_empty(), "nothing was stored");
}

async fn new_credentials_in_an_update_are_validated_before_they_are_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = close_provider(CLOSE_KEY).await;
    let (status, instance) = create_close(&app, &provider, CLOSE_KEY).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"closeio.api.key": "api_typo-key"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    // The old password still works: the refused one was not stored.
    let (status, body) = proxy(&app, &instance, "/leads").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn trace_logs_never_show_configured_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = close_provider(CLOSE_KEY).await;
    let (status, instance) = create_close(&app, &provider, CLOSE_KEY).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}/trace-logging"),
            Some(&json!({"duration": 600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The provider echoes the Authorization header it got into its answer's body.
    let (status, body) = proxy(&app, &instance, "/leads").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains("Basic "), "{body}");
    let encoded = basic(CLOSE_KEY, "");
    let encoded = encoded.trim_start_matches("Basic ");
    let mut entries = Value::Null;
    for _ in 0..100 {
        let (_, logs) = app.get(&format!("/instances/{id}/trace-logs")).await;
        if logs.as_array().is_some_and(|a| !a.is_empty()) {
            entries = logs;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = entries.to_string();
    assert!(text.contains("/v1/leads"), "{text}");
    assert!(!text.contains(CLOSE_KEY), "{text}");
    assert!(!text.contains(encoded), "{text}");
}

/// A Marketo instance's id, which names its hosts.
const MUNCHKIN: &str = "123-ABC-456";

async fn client_credentials_are_obtained_at_provisioning_and_renewed_by_junction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::Authlib).await;
    let (status, instance) = create(
        &app,
        "marketo",
        json!({
            "marketo.munchkin.id": MUNCHKIN,
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.token.url": peer.token_url(),
            "base.url": peer.api_url(),
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["configuration"]["oauth.user.token"], "********");
    let (status, body) = proxy(&app, &instance, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client"], CLIENT_ID, "{body}");

    let id = InstanceId(instance["id"].as_i64().unwrap());
    let account = AccountId(1);
    let token_of = |r: &junction_store::InstanceRecord| {
        r.config.get("oauth.user.token").cloned().flatten().unwrap()
    };
    let before = token_of(&app.services.store.get_instance(account, id).await.unwrap());
    // The peer's tokens live an hour: a sweep looking two hours ahead renews it.
    let report = app
        .services
        .refresh_expiring(Duration::from_secs(7200), 4)
        .await
        .unwrap();
    assert_eq!(report.refreshed, 1, "{report:?}");
    let after = token_of(&app.services.store.get_instance(account, id).await.unwrap());
    assert_ne!(
        before, after,
        "a new token was obtained with the client credentials"
    );
    let (status, body) = proxy(&app, &instance, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A token the provider refuses is replaced by a new grant and the call replayed.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{}", id.0),
            Some(&json!({
                "externalAuthentication": "initial",
                "configuration": {"oauth.user.token": "a-token-the-provider-never-issued"},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = proxy(&app, &instance, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let replaced = token_of(&app.services.store.get_instance(account, id).await.unwrap());
    assert_ne!(replaced, "a-token-the-provider-never-issued");
    assert_ne!(replaced, after);

    let (status, body) = create(
        &app,
        "marketo",
        json!({
            "marketo.munchkin.id": MUNCHKIN,
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": "not-the-secret",
            "oauth.token.url": peer.token_url(),
            "base.url": peer.api_url(),
        }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    assert_eq!(app.instance_ids().await.len(), 1);

    // There is no customer redirect to build a URL for.
    let (status, body) = app
        .get("/elements/marketo/oauth/url?apiKey=k&callbackUrl=https://app.example.test/cb")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "not_oauth_element").contains("client-credentials"));
}

/// Runs the OAuth 1.0a flow against the peer and returns the new instance.
async fn provision_oauth1(app: &TestApp, peer: &Peer) -> Value {
    let callback = "https://app.example.test/oauth/callback";
    let (status, temporary) = app
        .get(&format!(
            "/elements/trello/oauth/token?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl={callback}&requestTokenUrl={}",
            peer.request_token_url()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{temporary}");
    let request_token = temporary["token"].as_str().unwrap().to_owned();
    let request_secret = temporary["secret"].as_str().unwrap().to_owned();

    let (status, url) = app
        .get(&format!(
            "/elements/trello/oauth/url?apiKey={CLIENT_ID}&callbackUrl={callback}&requestToken={request_token}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let oauth_url = url::Url::parse(url["oauthUrl"].as_str().unwrap()).unwrap();
    assert_eq!(oauth_url.host_str(), Some("trello.com"));
    assert_eq!(oauth_url.path(), "/1/OAuthAuthorizeToken");
    let query: std::collections::HashMap<String, String> =
        oauth_url.query_pairs().into_owned().collect();
    assert_eq!(query["oauth_token"], request_token);
    assert_eq!(query["name"], "Junction", "the element's extra parameters");
    assert_eq!(query["scope"], "read,write");
    assert_eq!(query["expiration"], "never");

    // The customer authorizes at the provider, which sends them back with a verifier.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .get(format!(
            "{}?oauth_token={request_token}",
            peer.authorize_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(callback), "{back}");
    let back: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "trello"},
                "providerData": {
                    "oauth_token": back["oauth_token"],
                    "oauth_verifier": back["oauth_verifier"],
                    "secret": request_secret,
                },
                "configuration": {
                    "oauth.api.key": CLIENT_ID,
                    "oauth.api.secret": CLIENT_SECRET,
                    "oauth.callback.url": callback,
                    "oauth.token.url": peer.token_url(),
                    "base.url": format!("{}/api", peer.base_url),
                },
                "name": "OAuth 1.0a",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    instance
}

async fn oauth1_request_token_authorization_and_exchange_against_a_real_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let instance = provision_oauth1(&app, peer).await;
    assert_eq!(instance["configuration"]["oauth.user.token"], "********");
    assert_eq!(
        instance["configuration"]["oauth.user.token.secret"],
        "********"
    );
    let (status, body) = proxy(&app, &instance, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "user1");
    assert_eq!(body["client"], CLIENT_ID);
    // Trello's ping path (`/members/me`) is not one the peer serves, so no ping here.

    // A verifier the provider never issued is refused, and nothing is stored.
    let (status, body) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "trello"},
                "providerData": {"oauth_token": "forged", "oauth_verifier": "forged", "secret": "forged"},
                "configuration": {
                    "oauth.api.key": CLIENT_ID,
                    "oauth.api.secret": CLIENT_SECRET,
                    "oauth.callback.url": "https://app.example.test/oauth/callback",
                    "oauth.token.url": peer.token_url(),
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
    assert_eq!(app.instance_ids().await.len(), 1);

    // A consumer secret the provider does not know gets no request token.
    let (status, body) = app
        .get(&format!(
            "/elements/trello/oauth/token?apiKey={CLIENT_ID}&apiSecret=wrong&callbackUrl=https://app.example.test/cb&requestTokenUrl={}",
            peer.request_token_url()
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "provider_refused");
}

async fn oauth1_calls_are_signed_including_form_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let instance = provision_oauth1(&app, peer).await;
    let token = instance["token"].as_str().unwrap();
    // The peer verifies the signature over the query and the form body's pairs.
    let response = app
        .http
        .post(app.url("/proxy/echo?list=a%20b"))
        .header("Authorization", format!("Element {token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("name=a+card&desc=%E2%9C%93%20done")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["form"]["name"], "a card");
    assert_eq!(body["form"]["desc"], "\u{2713} done");

    // A form body too large to hold cannot be signed, and is refused rather than sent
    // with a signature the provider would reject.
    let large = format!("big={}", "x".repeat(junction_oauth::REPLAY_LIMIT + 1));
    let response = app
        .http
        .post(app.url("/proxy/echo"))
        .header("Authorization", format!("Element {token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_error(&body, "unsignable_request");
}

async fn oauth1_provisioning_names_missing_callback_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "trello"},
                "providerData": {"oauth_token": "t"},
                "configuration": {
                    "oauth.api.key": "k",
                    "oauth.api.secret": "s",
                    "oauth.callback.url": "https://app.example.test/cb",
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "missing_parameter");
    assert!(
        message.contains("providerData.oauth_verifier") && message.contains("providerData.secret"),
        "{message}"
    );
    let (status, body) = app
        .get("/elements/trello/oauth/url?apiKey=k&callbackUrl=https://app.example.test/cb")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "missing_parameter").contains("requestToken"));
    let (status, body) = app
        .get("/elements/sfdc/oauth/token?apiKey=k&apiSecret=s&callbackUrl=https://app.example.test/cb")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "not_oauth1_element");

    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let operation = &doc["paths"]["/elements/{key_or_id}/oauth/token"]["get"];
    assert!(operation.is_object(), "the route is documented");
    for field in ["oauth_token", "oauth_verifier", "secret"] {
        assert!(
            doc["components"]["schemas"]["ProviderData"]["properties"][field].is_object(),
            "{field}"
        );
    }
}

/// HMAC-SHA256 end to end: Trello signs with HMAC-SHA1, so the three OAuth 1.0a requests
/// and a signed API call are made here with HMAC-SHA256 directly, and authlib's server
/// verifies each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_sha256_signatures_are_accepted_by_a_real_oauth1_server() {
    use junction_core::Secret;
    use junction_core::credential::SignatureMethod;
    use junction_oauth::oauth1::{
        Nonce, OAuth1Credentials, access_token, authorization_header, fresh_nonce, request_token,
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let consumer = |token: Option<(String, Secret)>| {
        let (token, token_secret) = token.unzip();
        OAuth1Credentials {
            consumer_key: CLIENT_ID.into(),
            consumer_secret: Secret::new(CLIENT_SECRET),
            token,
            token_secret,
            method: SignatureMethod::HmacSha256,
        }
    };
    let outbound = &app.services.outbound;
    let temporary = request_token(
        outbound,
        &peer.request_token_url(),
        &consumer(None),
        "https://app.example.test/cb",
    )
    .await
    .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .get(format!(
            "{}?oauth_token={}",
            peer.authorize_url(),
            temporary.token
        ))
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let verifier = back
        .query_pairs()
        .find(|(k, _)| k == "oauth_verifier")
        .unwrap()
        .1
        .into_owned();
    let token = access_token(
        outbound,
        &peer.token_url(),
        &consumer(Some((temporary.token, temporary.secret))),
        &verifier,
    )
    .await
    .unwrap();
    let url = url::Url::parse(&format!("{}/api/me?x=a%20b", peer.base_url)).unwrap();
    let (nonce, timestamp) = fresh_nonce();
    let header = authorization_header(
        &consumer(Some((token.token, token.secret))),
        "GET",
        &url,
        &[],
        &[],
        &Nonce {
            nonce: &nonce,
            timestamp: &timestamp,
        },
    );
    let me = browser
        .get(url)
        .header("Authorization", header)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], "user1");
}

async fn moving_a_configured_instance_to_another_host_takes_its_credentials_in_the_same_request(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let provider = close_provider(CLOSE_KEY).await;
    let (status, instance) = create_close(&app, &provider, CLOSE_KEY).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let other = close_provider("api_other-key").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"base.url": other.base_url}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "host_change_requires_authorization");
    assert!(message.contains("'closeio.api.key'"), "{message}");
    assert!(!message.contains("providerData"), "{message}");
    assert!(other.seen().is_empty(), "nothing went to the new host");

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {
                "base.url": other.base_url,
                "closeio.api.key": "api_other-key",
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        other.seen().len(),
        1,
        "the new key was checked at the new host"
    );
    let (status, body) = proxy(&app, &instance, "/leads").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(other.seen().len(), 2);
}

async fn keys_that_are_not_all_the_credential_secrets_do_not_move_an_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let provider = Checker::start(Arc::new(|s: &Seen| {
        s.header("x-algolia-application-id") == Some(ALGOLIA_APP)
            && s.header("x-algolia-api-key") == Some(API_KEY)
    }))
    .await;
    let (status, instance) = create(
        &app,
        "algolia",
        json!({
            "base.url": provider.base_url,
            "algolia.application.id": ALGOLIA_APP,
            "algolia.api.key": API_KEY,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let before = app.get(&format!("/instances/{id}/configuration")).await.1;
    let evil = Checker::start(Arc::new(|_: &Seen| true)).await;
    // Keys the element does not read, a non-secret key it does read, an empty secret:
    // none of them is a re-authorization, so the stored API key must not go to `evil`.
    for configuration in [
        json!({"base.url": evil.base_url, "oauth.api.key": "", "oauth.api.secret": "x"}),
        json!({"base.url": evil.base_url, "algolia.application.id": "OTHER"}),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("/instances/{id}"),
                Some(&json!({ "configuration": configuration })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{configuration}: {body}");
        let message = assert_error(&body, "host_change_requires_authorization");
        assert!(message.contains("'algolia.api.key'"), "{message}");
    }
    // An empty secret is no credential at all.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"base.url": evil.base_url, "algolia.api.key": ""}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(evil.seen().is_empty(), "nothing went to the new host");
    let after = app.get(&format!("/instances/{id}/configuration")).await.1;
    assert_eq!(before, after, "nothing changed");
    let (status, body) = proxy(&app, &instance, "/indexes").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Every credential secret given: the move goes ahead, and only the new key is sent.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {
                "base.url": evil.base_url,
                "algolia.api.key": "sk_new-key",
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = evil.seen();
    assert_eq!(seen.len(), 1, "the new key was checked at the new host");
    assert_eq!(seen[0].header("x-algolia-api-key"), Some("sk_new-key"));
}

/// Freshdesk's shape (basic credentials, `base.url` templated from a per-customer value)
/// as a custom element, so that the host can be a local provider.
async fn a_templated_host_moves_only_with_every_credential_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/elements",
            &json!({
                "name": "Desk", "key": "desk", "description": "d", "hub": "general",
                "authentication": {"type": "basic"},
                "ping": "/me",
                "configuration": [
                    {"key": "desk.site", "name": "Site", "default": "https://desk.example.com"},
                    {"key": "desk.api.key", "name": "API key", "type": "PASSWORD", "required": true},
                    {"key": "base.url", "name": "b", "default": "{desk.site}/v1"},
                ],
                "credentials": [{"in": "basic", "username": "{desk.api.key}", "password": "X"}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = basic(CLOSE_KEY, "X");
    let provider = Checker::start(Arc::new(move |s: &Seen| {
        s.authorization.as_deref() == Some(expected.as_str())
    }))
    .await;
    // The placeholder opens the template, so it holds a whole address (scheme, host and
    // port of the local provider), as Zoho's and DocuSign's do.
    let site = |c: &Checker| c.base_url.trim_end_matches("/v1").to_owned();
    let (status, instance) = create(
        &app,
        "desk",
        json!({"desk.site": site(&provider), "desk.api.key": CLOSE_KEY}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let before = app.get(&format!("/instances/{id}/configuration")).await.1;

    let evil = Checker::start(Arc::new(|_: &Seen| true)).await;
    let evil_site = format!("{}#", site(&evil));
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"desk.site": evil_site, "oauth.api.key": ""}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "host_change_requires_authorization");
    assert!(message.contains("'desk.api.key'"), "{message}");
    assert!(
        evil.seen().is_empty(),
        "the stored API key went to the new host"
    );
    let after = app.get(&format!("/instances/{id}/configuration")).await.1;
    assert_eq!(before, after, "nothing changed");

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"desk.site": evil_site, "desk.api.key": "new-key"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = evil.seen();
    assert_eq!(seen.len(), 1, "the new key was checked at the new host");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(basic("new-key", "X").as_str())
    );
}

/// Sends a proxied GET with the caller's own `headers`.
async fn proxy_with(
    app: &TestApp,
    instance: &Value,
    path: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let token = instance["token"].as_str().unwrap();
    let mut request = app
        .http
        .get(app.url(&format!("/proxy{path}")))
        .header("Authorization", format!("Element {token}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

async fn element_parameters_go_on_every_call_and_ping_without_overriding_the_credential(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let provider = Checker::start(Arc::new(|s: &Seen| {
        s.authorization.as_deref() == Some("Bearer access-from-configuration")
    }))
    .await;
    let oauth2_instance = |element: &str, extra: Value| {
        let mut configuration = json!({
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.callback.url": "https://app.example.test/cb",
            "oauth.user.token": "access-from-configuration",
            "base.url": provider.base_url,
        });
        for (k, v) in extra.as_object().unwrap() {
            configuration[k] = v.clone();
        }
        json!({
            "element": {"key": element},
            "externalAuthentication": "initial",
            "configuration": configuration,
            "name": element,
        })
    };

    // Xero: the organisation's tenant id from configuration, in `xero-tenant-id`.
    let (status, xero) = app
        .post(
            "/instances",
            &oauth2_instance("xero", json!({"xero.tenant.id": "tenant-7"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{xero}");
    let status = proxy_with(&app, &xero, "/Invoices", &[("xero-tenant-id", "forged")]).await;
    assert_eq!(status, StatusCode::OK);
    let last = provider.seen().pop().unwrap();
    assert_eq!(last.path, "/v1/Invoices");
    assert_eq!(last.header("xero-tenant-id"), Some("tenant-7"), "{last:?}");
    let (status, body) = ping(&app, &xero).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = provider.seen().pop().unwrap();
    assert_eq!(last.path, "/v1/Organisation");
    assert_eq!(last.header("xero-tenant-id"), Some("tenant-7"));

    // Notion: a fixed API version in `Notion-Version`, whatever the caller sent.
    let (status, notion) = app
        .post("/instances", &oauth2_instance("notion", json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{notion}");
    let status = proxy_with(
        &app,
        &notion,
        "/search",
        &[("notion-version", "1999-01-01")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let last = provider.seen().pop().unwrap();
    assert_eq!(
        last.header("notion-version"),
        Some("2022-06-28"),
        "{last:?}"
    );
    let (status, body) = ping(&app, &notion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = provider.seen().pop().unwrap();
    assert_eq!(last.path, "/v1/users/me");
    assert_eq!(last.header("notion-version"), Some("2022-06-28"));
}

/// A custom OAuth 1.0a element on the authlib peer whose request-token URL and an
/// authorization parameter are templated from values the caller gives.
fn templated_oauth1(peer: &Peer) -> Value {
    let host = url::Url::parse(&peer.base_url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    json!({
        "name": "Templated Tokens",
        "description": "OAuth 1.0a with templated endpoints",
        "hub": "crm",
        "authentication": {"type": "oauth1"},
        "uses": ["oauth1"],
        "configuration": [
            {"key": "base.url", "name": "Base URL", "default": format!("{}/api", peer.base_url)},
            {"key": "oauth.request.url", "name": "Request token URL",
             "default": format!("{}/{{templated.segment}}/request_token", peer.base_url)},
            {"key": "oauth.authorization.url", "name": "Authorization URL", "default": peer.authorize_url()},
            {"key": "oauth.token.url", "name": "Token URL", "default": peer.token_url()},
            {"key": "templated.segment", "name": "Segment", "required": true},
            {"key": "templated.app", "name": "App name", "required": true}
        ],
        "oauth1": {
            "signatureMethod": "HMAC-SHA1",
            "authorizationParameters": {"name": "{templated.app}"},
            "allowedHosts": [host]
        }
    })
}

async fn oauth1_steps_fill_their_templates_from_the_callers_values_and_name_what_is_missing(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let (status, body) = app.post("/elements", &templated_oauth1(peer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let step_one = format!(
        "/elements/templatedtokens/oauth/token?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl=https://app.example.test/cb"
    );

    // The request-token URL is filled from the value given (`.../oauth/request_token`).
    let (status, temporary) = app
        .get(&format!("{step_one}&templated.segment=oauth"))
        .await;
    assert_eq!(status, StatusCode::OK, "{temporary}");
    let request_token = temporary["token"].as_str().unwrap().to_owned();
    let (status, body) = app.get(&step_one).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "missing_parameter");
    assert!(message.contains("templated.segment"), "{message}");

    // Step 2 takes the values its authorization parameters name, and names a missing one.
    let step_two = format!(
        "/elements/templatedtokens/oauth/url?apiKey={CLIENT_ID}&callbackUrl=https://app.example.test/cb&requestToken={request_token}"
    );
    let (status, body) = app.get(&step_two).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "missing_parameter");
    assert!(message.contains("templated.app"), "{message}");
    let (status, body) = app
        .get(&format!("{step_two}&templated.app=Acme%20Sync"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = url::Url::parse(body["oauthUrl"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["name"], "Acme Sync");
    assert_eq!(query["oauth_token"], request_token);
}

async fn oauth1_elements_pin_their_hosts_and_a_given_request_token_url_is_held_to_them(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let peer = Peer::shared(PeerKind::AuthlibOAuth1).await;
    let mut unpinned = templated_oauth1(peer);
    unpinned["oauth1"]
        .as_object_mut()
        .unwrap()
        .remove("allowedHosts");
    let (status, body) = app.post("/elements", &unpinned).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = assert_error(&body, "invalid_element");
    assert!(message.contains("oauth1.allowedHosts"), "{message}");
    assert!(app.get("/elements/templatedtokens").await.0 == StatusCode::NOT_FOUND);

    // Trello pins its hosts: a request-token URL elsewhere is refused before any call.
    let (status, body) = app
        .get(&format!(
            "/elements/trello/oauth/token?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl=https://app.example.test/cb&requestTokenUrl=https://evil.example/request_token"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "host_not_allowed");
}
