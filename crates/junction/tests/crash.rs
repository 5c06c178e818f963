//! A `junction serve` process killed with SIGKILL while it renews a rotating refresh token,
//! then started again on the same database, against the real OAuth server
//! (oidc-provider, `ROTATE=1`: a refresh token spent twice revokes the whole grant).
//!
//! The provider's token endpoint is reached through a gate in this test, which can hold
//! a refresh request and decide, once Junction is dead, whether the provider ever sees
//! it. That makes each point of the kill deterministic:
//!
//! 1. killed while the refresh request is on its way: the provider never answered, so the
//!    stored refresh token is still the live one, and the restarted process uses it (on
//!    SQLite at once; on PostgreSQL once the dead process's lease expires);
//! 2. killed right after a refresh answered: the rotated refresh token was written before
//!    anything else happened, so the restarted process holds it;
//! 3. killed after the provider answered but before Junction read the answer: the
//!    rotated token existed only in that answer. No client can keep it; Junction must
//!    then say so (`valid: false`, `reauthorization_required`) instead of failing
//!    silently, and a re-authorization brings the instance back.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use junction_testkit::browser::Browser;
use junction_testkit::db::{Backend, TestDatabase};
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind, REDIRECT_URI};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod support;

use support::{Junction, ORG_SECRET, USER_SECRET};

/// The provider's access-token lifetime, seconds.
const AT_TTL: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    killed_mid_refresh(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    killed_mid_refresh(Backend::Postgres).await;
}

/// A client for the local servers of this test, none of which redirects.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl Junction {
    fn start_on(database_url: &str, dir: &std::path::Path) -> Self {
        Self::start(database_url, dir, &[("JUNCTION_OUTBOUND_TIMEOUT", "3")])
    }

    async fn proxy_me(&self, token: &str) -> (StatusCode, Value) {
        let response = http()
            .get(self.url("/proxy/me"))
            .header("Authorization", format!("Element {token}"))
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn instance(&self, id: i64) -> Value {
        http()
            .get(self.url(&format!("/instances/{id}")))
            .header(
                "Authorization",
                format!("User {USER_SECRET}, Organization {ORG_SECRET}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// What the gate does with the next refresh request.
#[derive(Default)]
struct Gate {
    provider_token_url: String,
    /// Hold the next refresh request until `decided`.
    hold: AtomicBool,
    /// Forward a held request to the provider (otherwise it is dropped unseen).
    forward: AtomicBool,
    held: Notify,
    decided: Notify,
    /// A held, forwarded answer is not returned until this fires.
    answered: Notify,
}

async fn gate(State(gate): State<Arc<Gate>>, body: String) -> Response {
    let is_refresh = body.contains("grant_type=refresh_token");
    let held = is_refresh && gate.hold.swap(false, Ordering::SeqCst);
    if held {
        gate.held.notify_one();
        gate.decided.notified().await;
        if !gate.forward.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let answer = http()
        .post(&gate.provider_token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    if held {
        gate.answered.notify_one();
        // Keep the answer from Junction: it is killed before it could read it.
        std::future::pending::<()>().await;
    }
    (status, [("content-type", "application/json")], text).into_response()
}

async fn start_gate(provider_token_url: String) -> (Arc<Gate>, String) {
    let state = Arc::new(Gate {
        provider_token_url,
        ..Gate::default()
    });
    let app = Router::new()
        .route("/token", axum::routing::post(gate))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

/// Authorizes at the provider and returns the code for `oauth.callback.url`.
async fn authorize(junction: &Junction, peer: &Peer) -> String {
    let oauth: Value = http()
        .get(junction.url(&format!(
            "/elements/sfdc/oauth/url?apiKey={CLIENT_ID}&apiSecret={CLIENT_SECRET}&callbackUrl={REDIRECT_URI}"
        )))
        .header(
            "Authorization",
            format!("User {USER_SECRET}, Organization {ORG_SECRET}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let built = url::Url::parse(oauth["oauthUrl"].as_str().unwrap()).unwrap();
    let mut at_provider = url::Url::parse(&peer.authorize_url()).unwrap();
    at_provider.set_query(built.query());
    Browser::new()
        .authorize(at_provider.as_str(), REDIRECT_URI)
        .await
        .code
        .unwrap()
}

/// Starts a proxied call with the expired token and returns once its refresh request is
/// held at the gate.
async fn held_call(
    junction: &Junction,
    gate: &Gate,
    token: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = junction.url("/proxy/me");
    let token = token.to_owned();
    let call = tokio::spawn(async move {
        http()
            .get(url)
            .header("Authorization", format!("Element {token}"))
            .send()
            .await
    });
    tokio::time::timeout(Duration::from_secs(10), gate.held.notified())
        .await
        .expect("the expired token was not renewed");
    call
}

async fn wait_for_expiry() {
    tokio::time::sleep(Duration::from_millis(AT_TTL * 1000 + 300)).await;
}

async fn killed_mid_refresh(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(
        PeerKind::Oidc,
        &[("ROTATE", "1"), ("AT_TTL", &AT_TTL.to_string())],
    )
    .await;
    let (gate, gate_url) = start_gate(peer.token_url()).await;

    let junction = Junction::start_on(&db.url, dir.path());
    let code = authorize(&junction, &peer).await;
    let body = json!({
        "element": {"key": "sfdc"},
        "providerData": {"code": code},
        "configuration": {
            "oauth.api.key": CLIENT_ID,
            "oauth.api.secret": CLIENT_SECRET,
            "oauth.callback.url": REDIRECT_URI,
            "oauth.token.url": gate_url,
            "base.url": peer.api_url(),
        },
        "name": "survives a crash",
    });
    let auth = format!("User {USER_SECRET}, Organization {ORG_SECRET}");
    let instance: Value = http()
        .post(junction.url("/instances"))
        .header("Authorization", &auth)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = instance["id"].as_i64().unwrap();
    let token = instance["token"].as_str().unwrap().to_owned();
    assert_eq!(junction.proxy_me(&token).await.0, StatusCode::OK);

    // 1. Killed while the refresh request is on its way.
    wait_for_expiry().await;
    gate.hold.store(true, Ordering::SeqCst);
    gate.forward.store(false, Ordering::SeqCst);
    let call = held_call(&junction, &gate, &token).await;
    junction.kill();
    gate.decided.notify_one();
    assert!(
        call.await.unwrap().is_err(),
        "the killed process could not answer"
    );
    assert_eq!(peer.stats().await["refreshGrants"], 0);

    let junction = Junction::start_on(&db.url, dir.path());
    let started = Instant::now();
    let (status, me) = junction.proxy_me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    if backend == Backend::Sqlite {
        // The only process on the database released the dead one's lease at start.
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    let stats = peer.stats().await;
    assert_eq!(stats["refreshGrants"], 1, "{stats}");
    assert_eq!(stats["refreshFailures"], 0, "{stats}");

    // 2. Killed right after a refresh answered.
    wait_for_expiry().await;
    assert_eq!(junction.proxy_me(&token).await.0, StatusCode::OK);
    assert_eq!(peer.stats().await["refreshGrants"], 2);
    junction.kill();
    let junction = Junction::start_on(&db.url, dir.path());
    wait_for_expiry().await;
    assert_eq!(junction.proxy_me(&token).await.0, StatusCode::OK);
    let stats = peer.stats().await;
    assert_eq!(
        stats["refreshGrants"], 3,
        "the rotated refresh token was kept: {stats}"
    );
    assert_eq!(stats["refreshFailures"], 0, "{stats}");
    assert_eq!(junction.instance(id).await["valid"], true);

    // 3. Killed after the provider answered, before Junction could read the answer.
    wait_for_expiry().await;
    gate.hold.store(true, Ordering::SeqCst);
    gate.forward.store(true, Ordering::SeqCst);
    let call = held_call(&junction, &gate, &token).await;
    gate.decided.notify_one();
    tokio::time::timeout(Duration::from_secs(10), gate.answered.notified())
        .await
        .unwrap();
    junction.kill();
    let _ = call.await;
    assert_eq!(peer.stats().await["refreshGrants"], 4);

    let junction = Junction::start_on(&db.url, dir.path());
    let (status, refused) = junction.proxy_me(&token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["code"], "reauthorization_required", "{refused}");
    let shown = junction.instance(id).await;
    assert_eq!(shown["valid"], false, "{shown}");
    assert!(shown["invalidReason"].as_str().is_some(), "{shown}");

    // Re-authorizing brings it back, with the same id and Element token.
    let code = authorize(&junction, &peer).await;
    let response = http()
        .patch(junction.url(&format!("/instances/{id}")))
        .header("Authorization", &auth)
        .json(&json!({"providerData": {"code": code}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(junction.proxy_me(&token).await.0, StatusCode::OK);
    assert_eq!(junction.instance(id).await["valid"], true);
}
