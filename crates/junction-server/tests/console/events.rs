//! An instance's events in the console: its webhook URL, events posted as the provider
//! sends them, their status and attempts, and replay of one and of every failed one,
//! with a real local receiver standing in for the app's callback.

use crate::helpers::TestApp;
use crate::{screenshot_path, signed_in};
use hmac::{Hmac, KeyInit, Mac};
use junction_testkit::chromium::Chromium;
use junction_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

const APP_SECRET: &str = "facebook-app-secret";

/// The app's callback: answers every notification with the status it is set to.
struct Receiver {
    url: String,
    answer: Arc<AtomicU16>,
    got: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let answer = Arc::new(AtomicU16::new(status));
        let got = Arc::new(AtomicUsize::new(0));
        let (a, g) = (Arc::clone(&answer), Arc::clone(&got));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let (a, g) = (Arc::clone(&a), Arc::clone(&g));
                async move {
                    g.fetch_add(1, Ordering::SeqCst);
                    axum::http::StatusCode::from_u16(a.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook"),
            answer,
            got,
        }
    }
}

/// A Facebook Lead Ads instance with events on, written through the store as
/// provisioning would leave it (provisioning calls Graph, which tests cannot reach).
async fn facebook_instance(app: &TestApp, callback: &str) -> i64 {
    let entries = |pairs: &[(&str, &str)]| -> junction_core::ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    };
    let config = entries(&[
        ("base.url", "https://graph.facebook.com/v2.8"),
        (
            "oauth.authorization.url",
            "https://www.facebook.com/v2.8/dialog/oauth",
        ),
        (
            "oauth.token.url",
            "https://graph.facebook.com/v2.8/oauth/access_token",
        ),
        ("oauth.callback.url", "https://app.example.test/cb"),
        ("event.vendor.type", "webhooks"),
        ("event.vendor.verify.token", "CloudElements@123"),
        ("facebookleadads.pages", "111"),
        ("event.notification.enabled", "true"),
        ("event.notification.callback.url", callback),
    ]);
    let secrets = entries(&[
        ("oauth.api.key", "app-id"),
        ("oauth.api.secret", APP_SECRET),
        ("oauth.user.token", "page-token"),
    ]);
    let token = junction_core::Secret::new("facebook-events-token".to_owned());
    let record = app
        .services
        .store
        .insert_instance(junction_store::NewInstance {
            account_id: junction_core::AccountId(1),
            user_id: junction_core::UserId(1),
            element_id: 202,
            element_key: "facebookleadads",
            name: "Acme pages",
            token: &token,
            config: &config,
            secrets: &secrets,
            tags: &[],
            external_authentication: "initial",
            token_expires_at: None,
            now: 0,
        })
        .await
        .unwrap();
    record.id.0
}

/// Posts a `leadgen` change as Facebook sends it, signed with the app secret; returns
/// the event's id.
async fn lead(app: &TestApp, lead: &str) -> String {
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{
        "id": "111", "time": 1502905576, "changes": [{"field": "leadgen", "value": {
            "ad_id": "444444444", "form_id": "444444444444", "leadgen_id": lead,
            "created_time": 1502905576, "page_id": "111", "adgroup_id": "44444444444"}}]}]}))
    .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let answer: Value = app
        .http
        .post(app.url("/events/facebookleadads"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["eventId"].as_str().unwrap().to_owned()
}

/// The event's status once it is `want` (delivery is asynchronous; the deadline only
/// keeps a broken build from hanging, the assertion is on the status).
async fn status_when(app: &TestApp, instance: i64, event: &str, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, record) = app
            .get(&format!("/instances/{instance}/events/{event}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{record}");
        let now = record["status"].as_str().unwrap().to_owned();
        if now == want || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status the console's events table shows for `event`, once it shows `want`.
async fn row_status(browser: &Chromium, event: &str, want: &str) -> String {
    let script = "const row = [...document.querySelectorAll('table[aria-label=Events] tbody tr')]\
        .find((r) => r.cells[0].textContent === arguments[0]);\
        return row ? row.cells[2].textContent : '';";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = browser
            .execute(script, vec![json!(event)])
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if shown == want || tokio::time::Instant::now() > deadline {
            return shown;
        }
        browser.click("Refresh events").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_page_shows_its_webhook_url_and_events_and_replays_them() {
    let Some(browser) = Chromium::start().await else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let receiver = Receiver::start(503).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let first = lead(&app, "L1").await;
    let second = lead(&app, "L2").await;
    for event in [&first, &second] {
        assert_eq!(status_when(&app, id, event, "FAILED").await, "FAILED");
    }

    signed_in(&app, &browser).await;
    browser.click("Acme pages").await;
    let webhook = browser.control("Webhook URL").await;
    assert_eq!(
        webhook.prop("value").await.unwrap().unwrap_or_default(),
        app.root_url(&format!("/elements/api-v2/events/facebookleadads/{id}"))
    );
    assert_eq!(row_status(&browser, &first, "FAILED").await, "FAILED");
    assert_eq!(row_status(&browser, &second, "FAILED").await, "FAILED");

    browser.click(&format!("Details of event {first}")).await;
    browser.control(&format!("Attempts of event {first}")).await;
    let attempts = browser
        .execute(
            "return document.querySelectorAll(`table[aria-label='Attempts of event ${arguments[0]}'] tbody tr`).length",
            vec![json!(first)],
        )
        .await;
    // The first attempt and the tests' three retries, each answered 503.
    assert_eq!(attempts, json!(4));
    browser.see("503").await;
    browser.screenshot(&screenshot_path("events")).await;

    receiver.answer.store(200, Ordering::SeqCst);
    let before = receiver.got.load(Ordering::SeqCst);
    browser.click(&format!("Replay event {first}")).await;
    browser.see(&format!("Event {first} is sent again.")).await;
    assert_eq!(status_when(&app, id, &first, "NOTIFIED").await, "NOTIFIED");
    assert_eq!(row_status(&browser, &first, "NOTIFIED").await, "NOTIFIED");
    assert_eq!(row_status(&browser, &second, "FAILED").await, "FAILED");
    assert!(receiver.got.load(Ordering::SeqCst) > before);

    browser.click("Replay failed events").await;
    browser.see("1 failed event is sent again.").await;
    assert_eq!(status_when(&app, id, &second, "NOTIFIED").await, "NOTIFIED");
    assert_eq!(row_status(&browser, &second, "NOTIFIED").await, "NOTIFIED");

    browser.select("Event status", "FAILED").await;
    browser.see("No FAILED events.").await;
}
