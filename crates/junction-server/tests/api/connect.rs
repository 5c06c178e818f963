//! The hosted Connect page's API: OAuth apps, Connect sessions, and the end customer's
//! path through a real authorization server back to the app.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use junction_testkit::browser::Browser;
use junction_testkit::db::Backend;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

on_both_backends!(
    an_oauth_element_needs_an_oauth_app_whose_secret_is_sealed_and_masked,
    a_session_token_is_single_use_short_lived_and_stored_hashed,
    the_customer_authorizes_and_returns_to_the_app_with_the_instance,
    a_denied_authorization_ends_the_session_as_denied,
    an_expired_session_is_refused_with_its_own_status,
    the_page_takes_only_what_the_customer_must_provide,
    a_non_oauth_element_is_provisioned_from_the_page_and_may_be_retried,
    an_element_that_takes_pkce_gets_a_challenge_and_its_verifier,
    a_code_the_provider_refuses_fails_the_session_with_its_reason,
);

pub const RETURN_URL: &str = "https://app.example.test/connected";

/// The oidc peer with Junction's own Connect callback registered for the test client.
pub async fn peer_for(app: &TestApp) -> Peer {
    let clients = json!([{
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [app.root_url("/connect/callback"), app.root_url("/console/callback")],
    }]);
    Peer::start(PeerKind::Oidc, &[("CLIENTS", &clients.to_string())]).await
}

pub async fn store_app(app: &TestApp, peer: &Peer) -> Value {
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                    "configuration": {"oauth.token.url": peer.token_url(), "base.url": peer.api_url()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub async fn new_session(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post("/connect/sessions", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn as_page(
    app: &TestApp,
    token: &str,
    method: Method,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    app.call_as(
        &format!("Connect {token}"),
        method,
        "/connect/session",
        body,
    )
    .await
}

/// Follows what the page does after Connect: to the provider (whose real host tests
/// cannot reach: the same query goes to the local peer), then back to Junction's callback.
pub async fn authorize(app: &TestApp, peer: &Peer, redirect: &str, extra: &str) -> String {
    let built = url::Url::parse(redirect).unwrap();
    let mut at_peer = url::Url::parse(&peer.authorize_url()).unwrap();
    at_peer.set_query(Some(&format!("{}{extra}", built.query().unwrap())));
    let callback = Browser::new()
        .authorize(at_peer.as_str(), &app.root_url("/connect/callback"))
        .await;
    callback.url
}

/// Where Junction's callback sends the customer.
async fn follow_callback(app: &TestApp, callback: &str) -> String {
    let response = app.http.get(callback).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.db.url).await.unwrap()
}

async fn an_oauth_element_needs_an_oauth_app_whose_secret_is_sealed_and_masked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/connect/sessions",
            &json!({"element": "sfdc", "returnUrl": RETURN_URL}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "missing_oauth_app").contains("sfdc"));

    let (status, stored) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["clientSecret"], "********");
    let (_, list) = app.get("/oauth-apps").await;
    assert_eq!(list[0]["clientId"], CLIENT_ID);
    assert!(!list.to_string().contains(CLIENT_SECRET));
    let row = sqlx::query("select sealed from oauth_apps")
        .fetch_one(&pool(&app).await)
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get("sealed");
    assert!(
        !sealed
            .windows(CLIENT_SECRET.len())
            .any(|w| w == CLIENT_SECRET.as_bytes())
    );

    new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;

    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "airtable", "clientId": "x", "clientSecret": "y"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "not_oauth_element");
    let id = stored["id"].as_i64().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/oauth-apps/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(Method::DELETE, &format!("/oauth-apps/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "oauth_app_not_found");
}

async fn a_session_token_is_single_use_short_lived_and_stored_hashed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = new_session(
        &app,
        json!({"elements": ["airtable", "closeio"], "returnUrl": RETURN_URL, "tags": ["customer-7"]}),
    )
    .await;
    let token = created["token"].as_str().unwrap();
    assert!(token.len() >= 40);
    let url = created["url"].as_str().unwrap();
    assert_eq!(
        url,
        app.root_url(&format!("/connect#{token}")),
        "the token rides in the fragment"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    let minutes = (expires.timestamp() - chrono::Utc::now().timestamp()) / 60;
    assert!(
        (14..=15).contains(&minutes),
        "15 minutes by default: {created}"
    );
    let id = created["id"].as_i64().unwrap();
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "pending");

    let row = sqlx::query("select * from connect_sessions")
        .fetch_one(&pool(&app).await)
        .await
        .unwrap();
    let hash: Vec<u8> = row.get("token_hash");
    assert_eq!(hash.len(), 32, "a keyed hash");
    assert!(
        !hash
            .windows(8)
            .any(|w| token.as_bytes().windows(8).any(|t| t == w))
    );

    for (body, code) in [
        (json!({"returnUrl": RETURN_URL}), "missing_parameter"),
        (
            json!({"element": "airtable", "returnUrl": "javascript:alert(1)"}),
            "invalid_parameter",
        ),
        (
            json!({"element": "airtable", "returnUrl": RETURN_URL, "expiresIn": 5}),
            "invalid_duration",
        ),
        (
            json!({"element": "nope", "returnUrl": RETURN_URL}),
            "element_not_found",
        ),
    ] {
        let (status, answer) = app.post("/connect/sessions", &body).await;
        assert!(status.is_client_error(), "{body}: {answer}");
        assert_error(&answer, code);
    }
    let (status, body) = app
        .call_as("Connect not-a-token", Method::GET, "/connect/session", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "connect_session_invalid");
    let (status, body) = app
        .call_as(
            &format!("Element {token}"),
            Method::GET,
            "/connect/session",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, page) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let keys: Vec<&str> = page["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["airtable", "closeio"]);
}

async fn the_customer_authorizes_and_returns_to_the_app_with_the_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    store_app(&app, &peer).await;
    let created = new_session(
        &app,
        json!({"element": "sfdc", "returnUrl": RETURN_URL, "name": "Acme via Connect", "tags": ["customer-9"]}),
    )
    .await;
    let token = created["token"].as_str().unwrap();
    let (status, page) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["elements"][0]["oauth"], true);
    assert_eq!(
        page["elements"][0]["fields"],
        json!([]),
        "the app provides everything"
    );
    assert!(!page.to_string().contains(CLIENT_SECRET));

    let (status, next) =
        as_page(&app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let redirect = next["redirectUrl"].as_str().unwrap();
    let q: std::collections::HashMap<_, _> = url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], app.root_url("/connect/callback"));
    assert!(
        q["state"].len() >= 40,
        "a fresh state per authorization: {q:?}"
    );
    assert!(
        !redirect.contains(token),
        "the session token never leaves for the provider"
    );
    let id = created["id"].as_i64().unwrap();
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "authorizing");

    let callback = authorize(&app, &peer, redirect, "").await;
    let back = follow_callback(&app, &callback).await;
    let back = url::Url::parse(&back).unwrap();
    assert!(back.as_str().starts_with(RETURN_URL), "{back}");
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    let instance_id: i64 = q["instanceId"].parse().unwrap();
    assert_eq!(q["connectSessionId"], id.to_string());

    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["instanceId"], instance_id);
    let (status, instance) = app.get(&format!("/instances/{instance_id}")).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["name"], "Acme via Connect");
    assert_eq!(instance["tags"], json!(["customer-9"]));
    assert_eq!(instance["valid"], true);
    assert_eq!(
        instance["configuration"]["oauth.callback.url"],
        app.root_url("/connect/callback")
    );
    assert_eq!(instance["configuration"]["base.url"], peer.api_url());

    // The same callback again, or the link again, creates nothing more.
    let again = follow_callback(&app, &callback).await;
    assert!(again.ends_with("/connect?status=used"), "{again}");
    let (status, body) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "connect_session_used");
    let (_, list) = app.get("/instances").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

async fn a_denied_authorization_ends_the_session_as_denied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    store_app(&app, &peer).await;
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    let (_, next) = as_page(&app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    let callback = authorize(
        &app,
        &peer,
        next["redirectUrl"].as_str().unwrap(),
        "&login_hint=deny",
    )
    .await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let back = follow_callback(&app, &callback).await;
    assert!(
        back.starts_with(&app.root_url("/connect?status=denied")),
        "{back}"
    );
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "denied");
    assert_eq!(view["instanceId"], Value::Null);
    let (status, body) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "connect_session_used");
    let (_, list) = app.get("/instances").await;
    assert_eq!(list, json!([]));
}

pub async fn expire(app: &TestApp, id: i64) {
    sqlx::query("update connect_sessions set expires_at = 1 where id = $1")
        .bind(id)
        .execute(&pool(app).await)
        .await
        .unwrap();
}

async fn an_expired_session_is_refused_with_its_own_status(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = new_session(
        &app,
        json!({"element": "airtable", "returnUrl": RETURN_URL, "expiresIn": 60}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    expire(&app, id).await;
    let (status, body) = as_page(&app, created["token"].as_str().unwrap(), Method::GET, None).await;
    assert_eq!(status, StatusCode::GONE);
    assert_error(&body, "connect_session_expired");
    let (status, body) = as_page(
        &app,
        created["token"].as_str().unwrap(),
        Method::POST,
        Some(&json!({"element": "airtable", "configuration": {"airtable.token": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    assert_error(&body, "connect_session_expired");
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "expired");
}

async fn the_page_takes_only_what_the_customer_must_provide(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    store_app(&app, &peer).await;
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    for key in [
        "base.url",
        "oauth.token.url",
        "oauth.api.key",
        "oauth.callback.url",
    ] {
        let (status, body) = as_page(
            &app,
            token,
            Method::POST,
            Some(&json!({"element": "sfdc", "configuration": {key: "https://evil.example"}})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}");
        assert!(assert_error(&body, "invalid_configuration").contains(key));
    }
    let (status, body) = as_page(
        &app,
        token,
        Method::POST,
        Some(&json!({"element": "hubspot"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_parameter");
}

async fn a_non_oauth_element_is_provisioned_from_the_page_and_may_be_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = new_session(&app, json!({"element": "closeio", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    let (_, page) = as_page(&app, token, Method::GET, None).await;
    let fields = page["elements"][0]["fields"].as_array().unwrap();
    assert_eq!(page["elements"][0]["oauth"], false);
    assert!(
        fields
            .iter()
            .any(|f| f["key"] == "closeio.api.key" && f["secret"] == true),
        "{page}"
    );
    // Close's real host cannot be reached: provisioning fails, and the session stays open.
    let (status, body) = as_page(
        &app,
        token,
        Method::POST,
        Some(&json!({"element": "closeio", "configuration": {"closeio.api.key": "api_wrong"}})),
    )
    .await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{body}"
    );
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(
        view["status"], "pending",
        "a refused attempt may be corrected: {view}"
    );
    let (status, _) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn an_element_that_takes_pkce_gets_a_challenge_and_its_verifier(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    // Salesforce takes PKCE; a clone says so in its element data.
    let (status, clone) = app.call(Method::POST, "/elements/sfdc/clone", None).await;
    assert_eq!(status, StatusCode::OK, "{clone}");
    let (status, mut element) = app.get("/elements/sfdcclone/export").await;
    assert_eq!(status, StatusCode::OK, "{element}");
    element["oauth"]["pkce"] = json!(true);
    let (status, body) = app
        .call(Method::PUT, "/elements/sfdcclone", Some(&element))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdcclone", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                    "configuration": {"oauth.token.url": peer.token_url(), "base.url": peer.api_url()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = new_session(
        &app,
        json!({"element": "sfdcclone", "returnUrl": RETURN_URL}),
    )
    .await;
    let token = created["token"].as_str().unwrap();
    let (status, next) = as_page(
        &app,
        token,
        Method::POST,
        Some(&json!({"element": "sfdcclone"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let redirect = next["redirectUrl"].as_str().unwrap();
    let q: std::collections::HashMap<_, _> = url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["code_challenge_method"], "S256", "{redirect}");
    assert_eq!(q["code_challenge"].len(), 43, "{redirect}");

    // The provider checks the verifier against the challenge at the code exchange.
    let callback = authorize(&app, &peer, redirect, "").await;
    let back = follow_callback(&app, &callback).await;
    assert!(back.starts_with(RETURN_URL), "{back}");
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "completed", "{view}");

    // An element that does not take it gets no challenge.
    store_app(&app, &peer).await;
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let (_, next) = as_page(
        &app,
        created["token"].as_str().unwrap(),
        Method::POST,
        Some(&json!({"element": "sfdc"})),
    )
    .await;
    assert!(
        !next["redirectUrl"]
            .as_str()
            .unwrap()
            .contains("code_challenge"),
        "{next}"
    );
}

async fn a_code_the_provider_refuses_fails_the_session_with_its_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": "not-the-secret",
                    "configuration": {"oauth.token.url": peer.token_url(), "base.url": peer.api_url()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let (_, next) = as_page(
        &app,
        created["token"].as_str().unwrap(),
        Method::POST,
        Some(&json!({"element": "sfdc"})),
    )
    .await;
    let callback = authorize(&app, &peer, next["redirectUrl"].as_str().unwrap(), "").await;
    let back = follow_callback(&app, &callback).await;
    let back = url::Url::parse(&back).unwrap();
    assert_eq!(back.path(), "/connect");
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(q["status"], "failed");
    assert!(q["message"].contains("provider"), "{q:?}");
    assert!(!back.as_str().contains("not-the-secret"));
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "failed", "{view}");
    assert!(
        view["error"].as_str().unwrap().contains("provider"),
        "{view}"
    );
    let (_, list) = app.get("/instances").await;
    assert_eq!(list, json!([]));
}
