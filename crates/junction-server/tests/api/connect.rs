//! The hosted Connect page's API: OAuth apps, Connect sessions, and the end customer's
//! path through a real authorization server back to the app.

use crate::helpers::{ORG_SECRET, Options, TestApp, assert_error};
use crate::on_both_backends;
use junction_store::ConnectStatus;
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
    an_error_and_a_code_for_one_state_end_the_session_once,
    a_code_for_a_replaced_state_cannot_finish_the_session,
    the_authorization_url_takes_the_oauth_apps_values_and_scope,
    an_admin_lists_deletes_and_polls_what_they_made_for_another_account,
    sessions_past_their_retention_are_purged_in_batches_with_their_tokens,
    the_link_and_callback_follow_the_host_without_a_public_url,
    the_link_and_callback_follow_the_public_url_when_set,
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

pub(crate) async fn as_page(
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
pub(crate) async fn follow_callback(app: &TestApp, callback: &str) -> String {
    let response = app.http.get(callback).send().await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers()["location"].to_str().unwrap().to_owned()
}

pub(crate) async fn pool(app: &TestApp) -> sqlx::AnyPool {
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

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

/// The `state` Junction sent the provider in an authorization URL.
/// These sessions have no callback: no notification body is ever asked for.
fn no_body(_: &junction_store::ConnectSessionEnd, _: i64) -> String {
    String::new()
}

fn state_of(redirect: &str) -> String {
    url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

/// An authorizing `sfdc` session: its id, and the page's answer to Connect.
async fn authorizing(app: &TestApp, peer: &Peer) -> (i64, String) {
    store_app(app, peer).await;
    let created = new_session(app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    let (status, next) = as_page(app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    (
        created["id"].as_i64().unwrap(),
        next["redirectUrl"].as_str().unwrap().to_owned(),
    )
}

/// Two answers for one `state`, an `error=` and a `code=`, whose callbacks both read the
/// session before either wrote: whichever writes first ends it, and the other changes
/// nothing (a code that claimed the session keeps it while it makes the instance).
async fn an_error_and_a_code_for_one_state_end_the_session_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    let store = &app.services.store;

    // The code first: the error's write must not turn a finishing session into a failure.
    let (id, redirect) = authorizing(&app, &peer).await;
    let state = state_of(&redirect);
    let read_by_error = store
        .connect_session_by_state(&state, now_ms())
        .await
        .unwrap()
        .unwrap();
    let read_by_code = store
        .connect_session_by_state(&state, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .claim_connect_authorization(&read_by_code, now_ms())
            .await
            .unwrap()
    );
    let ended = store
        .end_connect_authorization(
            &read_by_error,
            ConnectStatus::Denied,
            "access_denied",
            &no_body,
            now_ms(),
        )
        .await
        .unwrap();
    assert!(!ended);
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "completing", "{view}");
    assert_eq!(view["error"], Value::Null);

    // The error first: the code's claim finds nothing to finish.
    let (id, redirect) = authorizing(&app, &peer).await;
    let state = state_of(&redirect);
    let read_by_error = store
        .connect_session_by_state(&state, now_ms())
        .await
        .unwrap()
        .unwrap();
    let read_by_code = store
        .connect_session_by_state(&state, now_ms())
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .end_connect_authorization(
                &read_by_error,
                ConnectStatus::Denied,
                "access_denied",
                &no_body,
                now_ms(),
            )
            .await
            .unwrap()
    );
    let claimed = store
        .claim_connect_authorization(&read_by_code, now_ms())
        .await
        .unwrap();
    assert!(!claimed);
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "denied", "{view}");
    assert_eq!(view["error"], "access_denied");
}

/// The customer pressed Connect again while an earlier answer's callback had read the
/// session: only the latest authorization's `state` may finish it.
async fn a_code_for_a_replaced_state_cannot_finish_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    store_app(&app, &peer).await;
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    let connect_body = json!({"element": "sfdc"});
    let connect = || as_page(&app, token, Method::POST, Some(&connect_body));
    let (_, first) = connect().await;
    let store = &app.services.store;
    let read_with_first = store
        .connect_session_by_state(&state_of(first["redirectUrl"].as_str().unwrap()), now_ms())
        .await
        .unwrap()
        .unwrap();
    let (_, second) = connect().await;

    let claimed = store
        .claim_connect_authorization(&read_with_first, now_ms())
        .await
        .unwrap();
    assert!(!claimed);
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "authorizing", "{view}");
    // The latest authorization still finishes it.
    let callback = authorize(&app, &peer, second["redirectUrl"].as_str().unwrap(), "").await;
    let back = follow_callback(&app, &callback).await;
    assert!(back.starts_with(RETURN_URL), "{back}");
}

/// An app that fills the element's templated subdomain and sets a scope: the customer is
/// not asked for the subdomain, and is sent to the app's host to approve the app's scope.
async fn the_authorization_url_takes_the_oauth_apps_values_and_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "zendesk", "clientId": "zd-client", "clientSecret": "zd-secret",
                    "configuration": {"zendesk.subdomain": "acme", "oauth.scope": "tickets:read users:read"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = new_session(&app, json!({"element": "zendesk", "returnUrl": RETURN_URL})).await;
    let token = created["token"].as_str().unwrap();
    let (_, page) = as_page(&app, token, Method::GET, None).await;
    assert_eq!(page["elements"][0]["fields"], json!([]), "{page}");

    let (status, next) = as_page(
        &app,
        token,
        Method::POST,
        Some(&json!({"element": "zendesk"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let redirect = url::Url::parse(next["redirectUrl"].as_str().unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("acme.zendesk.com"), "{redirect}");
    assert_eq!(redirect.path(), "/oauth/authorizations/new");
    let q: std::collections::HashMap<_, _> = redirect.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "zd-client");
    assert_eq!(q["scope"], "tickets:read users:read");
}

/// A new account of the test organization with one user who is not an administrator;
/// answers the account's id and that user's credentials.
async fn account_with_user(app: &TestApp, name: &str) -> (i64, String) {
    let (status, account) = app.post("/accounts", &json!({"name": name})).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    let id = account["id"].as_i64().unwrap();
    let (status, user) = app
        .post(
            &format!("/accounts/{id}/users"),
            &json!({"emailAddress": format!("user@{name}.test"), "firstName": "A", "lastName": "User"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let auth = format!(
        "User {}, Organization {ORG_SECRET}",
        user["secret"].as_str().unwrap()
    );
    (id, auth)
}

/// What an administrator creates for another account (`accountId`) they can also list,
/// poll and delete with the same `accountId`; a user of a third account finds none of it.
async fn an_admin_lists_deletes_and_polls_what_they_made_for_another_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (acme, acme_user) = account_with_user(&app, "acme").await;
    let (_, stranger) = account_with_user(&app, "globex").await;
    let (status, oauth_app) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "accountId": acme}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{oauth_app}");
    let app_id = oauth_app["id"].as_i64().unwrap();
    let created = new_session(
        &app,
        json!({"element": "sfdc", "returnUrl": RETURN_URL, "accountId": acme}),
    )
    .await;
    let session = format!("/connect/sessions/{}", created["id"]);

    // The administrator, for the other account.
    let (status, view) = app.get(&format!("{session}?accountId={acme}")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "pending");
    let (status, apps) = app.get(&format!("/oauth-apps?accountId={acme}")).await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps[0]["id"], app_id, "{apps}");
    assert_eq!(apps[0]["accountId"], acme);
    // Without accountId, the administrator's own account, which has none of it.
    let (status, body) = app.get(&session).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "connect_session_not_found");
    let (_, apps) = app.get("/oauth-apps").await;
    assert_eq!(apps, json!([]));
    let (status, body) = app.get("/oauth-apps?accountId=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_query");

    // A user of a third account neither sees nor deletes any of it.
    let (status, body) = app.call_as(&stranger, Method::GET, &session, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "connect_session_not_found");
    let delete = format!("/oauth-apps/{app_id}");
    let (status, body) = app.call_as(&stranger, Method::DELETE, &delete, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "oauth_app_not_found");
    let (status, body) = app
        .call_as(
            &stranger,
            Method::DELETE,
            &format!("{delete}?accountId={acme}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The account's own user sees its session.
    let (status, view) = app.call_as(&acme_user, Method::GET, &session, None).await;
    assert_eq!(status, StatusCode::OK, "{view}");

    // The administrator revokes the secret they stored for the other account.
    let (status, body) = app.call(Method::DELETE, &delete, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call(Method::DELETE, &format!("{delete}?accountId={acme}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, apps) = app.get(&format!("/oauth-apps?accountId={acme}")).await;
    assert_eq!(apps, json!([]));
}

async fn sessions_past_their_retention_are_purged_in_batches_with_their_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(
            new_session(
                &app,
                json!({"element": "airtable", "returnUrl": RETURN_URL, "expiresIn": 60}),
            )
            .await,
        );
    }
    let id = |s: &Value| s["id"].as_i64().unwrap();
    let (old, kept) = sessions.split_at(3);
    for session in old {
        expire(&app, id(session)).await;
    }
    // Expired an hour ago: still inside a day's retention.
    let an_hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
    sqlx::query("update connect_sessions set expires_at = $1 where id = $2")
        .bind(an_hour_ago)
        .bind(id(&kept[0]))
        .execute(&pool(&app).await)
        .await
        .unwrap();

    // Two per batch: three old sessions take two batches.
    let purged = junction_server::jobs::purge_connect_sessions_once(
        &app.services,
        std::time::Duration::from_secs(24 * 3600),
        2,
    )
    .await;
    assert_eq!(purged, 3);

    for session in old {
        let (status, body) = app.get(&format!("/connect/sessions/{}", id(session))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_error(&body, "connect_session_not_found");
        let token = session["token"].as_str().unwrap();
        let (status, body) = as_page(&app, token, Method::GET, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_error(&body, "connect_session_invalid");
    }
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", id(&kept[0])))
        .await;
    assert_eq!(view["status"], "expired");
    let (_, view) = app
        .get(&format!("/connect/sessions/{}", id(&kept[1])))
        .await;
    assert_eq!(view["status"], "pending");
    let rows: Vec<i64> = sqlx::query_scalar("select id from connect_sessions order by id")
        .fetch_all(&pool(&app).await)
        .await
        .unwrap();
    assert_eq!(rows, vec![id(&kept[0]), id(&kept[1])]);
}

/// Creates an sfdc session through a proxy that names Junction `junction.internal:8443`
/// over https, starts its authorization, and returns the link and the `redirect_uri`.
async fn link_and_callback(app: &TestApp) -> (String, String) {
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = app
        .http
        .post(app.url("/connect/sessions"))
        .header("Authorization", app.platform_auth())
        .header("Host", "junction.internal:8443")
        .header("X-Forwarded-Proto", "https")
        .json(&json!({"element": "sfdc", "returnUrl": RETURN_URL}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    let (status, next) = as_page(app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    let redirect = url::Url::parse(next["redirectUrl"].as_str().unwrap()).unwrap();
    let (_, callback) = redirect
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap();
    let link = created["url"].as_str().unwrap().replace(token, "TOKEN");
    (link, callback.into_owned())
}

async fn the_link_and_callback_follow_the_host_without_a_public_url(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (link, callback) = link_and_callback(&app).await;
    assert_eq!(link, "https://junction.internal:8443/connect#TOKEN");
    assert_eq!(callback, "https://junction.internal:8443/connect/callback");
}

async fn the_link_and_callback_follow_the_public_url_when_set(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            public_url: Some("https://hub.example.com/junction/".into()),
            ..Options::default()
        },
    )
    .await;
    let (link, callback) = link_and_callback(&app).await;
    assert_eq!(link, "https://hub.example.com/junction/connect#TOKEN");
    assert_eq!(
        callback,
        "https://hub.example.com/junction/connect/callback"
    );
}
