//! The hosted Connect page, end to end in the browser: the customer connects Salesforce
//! through the real OAuth server and lands back at the app; declining, an expired link
//! and a used link each end on a page that says so.

use crate::helpers::TestApp;
use crate::screenshot_path;
use junction_testkit::chromium::Chromium;
use junction_testkit::db::Backend;
use junction_testkit::peers::{CLIENT_ID, CLIENT_SECRET, Peer, PeerKind};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Setup {
    app: TestApp,
    peer: Peer,
    return_url: String,
    _app_server: tokio::task::JoinHandle<()>,
}

/// Junction, the OAuth server, an OAuth app for sfdc, and the app's own page the
/// customer is sent back to.
async fn setup() -> Setup {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let clients = json!([{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uris": [app.root_url("/connect/callback")]}]);
    let peer = Peer::start(PeerKind::Oidc, &[("CLIENTS", &clients.to_string())]).await;
    let (status, body) = app
        .post(
            "/oauth-apps",
            &json!({"element": "sfdc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                    "configuration": {"oauth.token.url": peer.token_url(), "base.url": peer.api_url()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let return_url = format!("http://{}/connected", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/connected",
        axum::routing::get(|| async { "Welcome back to the app" }),
    );
    let app_server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Setup {
        app,
        peer,
        return_url,
        _app_server: app_server,
    }
}

async fn session(s: &Setup) -> Value {
    let (status, created) = s
        .app
        .post(
            "/connect/sessions",
            &json!({"element": "sfdc", "returnUrl": s.return_url, "name": "Acme via Connect"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Presses Connect and takes the browser through the provider (its real host cannot be
/// reached: the same query goes to the local OAuth server).
async fn authorize(browser: &Chromium, s: &Setup, extra: &str) {
    browser.click("Connect").await;
    let at_salesforce = browser
        .wait_for_url("Salesforce's authorization page", |u| {
            u.host_str() == Some("login.salesforce.com")
        })
        .await;
    let mut at_peer = url::Url::parse(&s.peer.authorize_url()).unwrap();
    at_peer.set_query(Some(&format!("{}{extra}", at_salesforce.query().unwrap())));
    browser.goto(at_peer.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_connects_through_the_page_and_returns_to_the_app() {
    let Some(browser) = Chromium::start().await else {
        return;
    };
    let s = setup().await;
    let created = session(&s).await;
    browser.goto(created["url"].as_str().unwrap()).await;
    browser.see("Connect Salesforce Sales Cloud").await;
    let address = browser.url().await;
    assert_eq!(
        address.fragment(),
        None,
        "the token leaves the address bar: {address}"
    );
    assert!(
        !browser.text().await.contains(CLIENT_ID),
        "the app's client stays server side"
    );
    browser.screenshot(&screenshot_path("connect-page")).await;
    let origin = s.app.root_url("");
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)",
            vec![],
        )
        .await;
    for name in loaded.as_array().unwrap() {
        assert!(
            name.as_str().unwrap().starts_with(&origin),
            "the page loaded {name}"
        );
    }

    authorize(&browser, &s, "").await;
    let back = browser
        .wait_for_url("the app's return page", |u| {
            u.as_str().starts_with(&s.return_url)
        })
        .await;
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(q["connectSessionId"], created["id"].to_string());
    let (_, view) = s
        .app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["instanceId"].to_string(), q["instanceId"]);
    let (_, instance) = s.app.get(&format!("/instances/{}", q["instanceId"])).await;
    assert_eq!(instance["name"], "Acme via Connect");

    // The link works once.
    browser.goto(created["url"].as_str().unwrap()).await;
    browser.see("This link was already used").await;
    browser.screenshot(&screenshot_path("connect-used")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_at_the_provider_shows_a_clear_page_and_status() {
    let Some(browser) = Chromium::start().await else {
        return;
    };
    let s = setup().await;
    let created = session(&s).await;
    browser.goto(created["url"].as_str().unwrap()).await;
    browser.see("Connect Salesforce Sales Cloud").await;
    authorize(&browser, &s, "&login_hint=deny").await;
    browser.see("Authorization declined").await;
    assert_eq!(browser.url().await.path(), "/connect");
    browser.screenshot(&screenshot_path("connect-denied")).await;
    let (_, view) = s
        .app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "denied", "{view}");
    let (_, list) = s.app.get("/instances").await;
    assert_eq!(list, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_shows_a_clear_page_and_status() {
    let Some(browser) = Chromium::start().await else {
        return;
    };
    let s = setup().await;
    let created = session(&s).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.app.db.url).await.unwrap();
    sqlx::query("update connect_sessions set expires_at = 1 where id = $1")
        .bind(created["id"].as_i64().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    browser.goto(created["url"].as_str().unwrap()).await;
    browser.see("This link has expired").await;
    browser
        .screenshot(&screenshot_path("connect-expired"))
        .await;
    let (_, view) = s
        .app
        .get(&format!("/connect/sessions/{}", created["id"]))
        .await;
    assert_eq!(view["status"], "expired");
}
