//! How a Connect session ended, told to the app: one signed notification per session
//! through the events outbox, to a real local receiver, when the customer completes,
//! when the provider refuses, and when the session expires.

use crate::connect::{
    RETURN_URL, as_page, authorize, expire, follow_callback, new_session, peer_for, pool, store_app,
};
use crate::events::{Received, Receiver};
use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use junction_testkit::db::Backend;
use junction_testkit::peers::Peer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

on_both_backends!(
    a_completed_session_sends_one_signed_event_with_its_instance,
    a_denied_authorization_sends_a_failed_event,
    an_expired_session_sends_one_expired_event_however_often_expiry_runs,
    a_session_without_a_callback_sends_no_event,
    a_bad_callback_url_is_refused_naming_the_field_and_nothing_is_stored,
    a_failed_delivery_is_retried_with_the_same_id_and_body,
    a_session_is_purged_only_once_its_notification_is_out,
    the_openapi_document_describes_the_callback_and_its_event,
);

const KEY: &str = "connect-callback-signature-key";

fn hmac_base64(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    BASE64.encode(mac.finalize().into_bytes())
}

/// What a receiver does to trust a notification: recompute both signatures with the key.
fn assert_signed_with(got: &Received, key: &str) {
    let body = got.body.as_ref();
    assert_eq!(
        got.header("elements-webhook-signature"),
        format!("sha256={}", hmac_base64(key.as_bytes(), &[body]))
    );
    let id = got.header("webhook-id");
    let ts = got.header("webhook-timestamp");
    assert_eq!(id, got.header("elements-webhook-id"));
    assert_eq!(
        got.header("webhook-signature"),
        format!(
            "v1,{}",
            hmac_base64(
                key.as_bytes(),
                &[id.as_bytes(), b".", ts.as_bytes(), b".", body]
            )
        )
    );
}

/// An `sfdc` session with a callback, taken to the provider: its id and the redirect.
async fn authorizing(app: &TestApp, peer: &Peer, receiver: &Receiver) -> (i64, String) {
    store_app(app, peer).await;
    let created = new_session(
        app,
        json!({"element": "sfdc", "returnUrl": RETURN_URL, "tags": ["customer-9"],
               "eventNotificationCallbackUrl": receiver.url,
               "eventNotificationSignatureKey": KEY}),
    )
    .await;
    let token = created["token"].as_str().unwrap();
    let (status, next) = as_page(app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    (
        created["id"].as_i64().unwrap(),
        next["redirectUrl"].as_str().unwrap().to_owned(),
    )
}

/// Notifications stored about a session and how many were delivered, once they all were
/// (deliveries are asynchronous; the deadline only keeps a broken build from hanging).
async fn settled_deliveries(app: &TestApp, session: i64) -> (i64, i64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let counts = session_deliveries(app, session).await;
        if counts.0 == counts.1 || tokio::time::Instant::now() > deadline {
            return counts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Notifications stored about a session, and how many of them were delivered.
async fn session_deliveries(app: &TestApp, session: i64) -> (i64, i64) {
    let pool = pool(app).await;
    let all: i64 =
        sqlx::query_scalar("select count(*) from event_deliveries where connect_session_id = $1")
            .bind(session)
            .fetch_one(&pool)
            .await
            .unwrap();
    let delivered: i64 = sqlx::query_scalar(
        "select count(*) from event_deliveries where connect_session_id = $1 and state = 'delivered'",
    )
    .bind(session)
    .fetch_one(&pool)
    .await
    .unwrap();
    (all, delivered)
}

async fn a_completed_session_sends_one_signed_event_with_its_instance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    let receiver = Receiver::start(&[], 200).await;
    let (id, redirect) = authorizing(&app, &peer, &receiver).await;

    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["eventNotificationCallbackUrl"], receiver.url);
    assert!(!view.to_string().contains(KEY), "the key is never returned");
    let sealed: Vec<u8> =
        sqlx::query_scalar("select callback_key_sealed from connect_sessions where id = $1")
            .bind(id)
            .fetch_one(&pool(&app).await)
            .await
            .unwrap();
    assert!(
        !sealed.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the key is sealed at rest"
    );

    let callback = authorize(&app, &peer, &redirect, "").await;
    let back = follow_callback(&app, &callback).await;
    let instance_id: i64 = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "instanceId")
        .unwrap()
        .1
        .parse()
        .unwrap();

    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let message = &got[0].json()["message"];
    assert_eq!(message["status"], "completed", "{message}");
    assert_eq!(message["sessionStatus"], "completed");
    assert_eq!(message["sessionId"], id);
    assert_eq!(message["instanceId"], instance_id);
    assert_eq!(message["elementKey"], "sfdc");
    assert_eq!(message["tags"], json!(["customer-9"]));
    assert!(message["eventId"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(message.get("error").is_none(), "{message}");
    assert!(!got[0].header("elements-webhook-id").is_empty());
    assert_signed_with(&got[0], KEY);
    // The instance's own events list is not where a session's event lives.
    let (status, events) = app.get(&format!("/instances/{instance_id}/events")).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(!events.to_string().contains("connect"), "{events}");
}

async fn a_denied_authorization_sends_a_failed_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    let receiver = Receiver::start(&[], 200).await;
    let (id, redirect) = authorizing(&app, &peer, &receiver).await;
    let callback = authorize(&app, &peer, &redirect, "&login_hint=deny").await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    follow_callback(&app, &callback).await;

    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let message = &got[0].json()["message"];
    assert_eq!(message["status"], "failed", "{message}");
    assert_eq!(message["sessionStatus"], "denied");
    assert_eq!(message["sessionId"], id);
    assert_eq!(message["elementKey"], "sfdc");
    assert!(message.get("instanceId").is_none(), "{message}");
    assert!(
        message["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{message}"
    );
    assert_signed_with(&got[0], KEY);
}

async fn an_expired_session_sends_one_expired_event_however_often_expiry_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // On PostgreSQL a second replica's job races this one; SQLite serves one process.
    let replica = match backend {
        Backend::Postgres => Some(app.replica().await),
        Backend::Sqlite => None,
    };
    let other = replica.as_ref().map_or(&app.services, |r| &r.services);
    let receiver = Receiver::start(&[], 200).await;
    let created = new_session(
        &app,
        json!({"element": "airtable", "returnUrl": RETURN_URL, "expiresIn": 60,
               "eventNotificationCallbackUrl": receiver.url}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    let open = new_session(
        &app,
        json!({"element": "airtable", "returnUrl": RETURN_URL, "expiresIn": 60,
               "eventNotificationCallbackUrl": receiver.url}),
    )
    .await;
    // Its time ran out a second ago: well inside the retention, so the purge keeps it.
    sqlx::query("update connect_sessions set expires_at = $1 where id = $2")
        .bind(chrono::Utc::now().timestamp_millis() - 1000)
        .bind(id)
        .execute(&pool(&app).await)
        .await
        .unwrap();

    // Two expiry passes at once, then again, then the purge's own pass.
    let (a, b) = tokio::join!(
        junction_server::jobs::expire_connect_sessions_once(&app.services, 10),
        junction_server::jobs::expire_connect_sessions_once(other, 10),
    );
    assert_eq!(a + b, 1);
    assert_eq!(
        junction_server::jobs::expire_connect_sessions_once(&app.services, 10).await,
        0
    );
    junction_server::jobs::purge_connect_sessions_once(
        &app.services,
        std::time::Duration::from_secs(3600),
        10,
    )
    .await;

    let got = receiver.wait_for(1).await;
    let message = &got[0].json()["message"];
    assert_eq!(message["status"], "expired", "{message}");
    assert_eq!(message["sessionId"], id);
    assert_eq!(message["elements"], json!(["airtable"]));
    assert_eq!(message["elementKey"], Value::Null);
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "expired");
    let (_, view) = app.get(&format!("/connect/sessions/{}", open["id"])).await;
    assert_eq!(
        view["status"], "pending",
        "a session with time left is left alone"
    );

    // Once delivered, exactly one notification exists for the session, and none for the
    // session still open.
    assert_eq!(settled_deliveries(&app, id).await, (1, 1));
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(
        session_deliveries(&app, open["id"].as_i64().unwrap()).await,
        (0, 0)
    );
}

async fn a_session_without_a_callback_sends_no_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    store_app(&app, &peer).await;
    let created = new_session(&app, json!({"element": "sfdc", "returnUrl": RETURN_URL})).await;
    let id = created["id"].as_i64().unwrap();
    let token = created["token"].as_str().unwrap();
    let (_, next) = as_page(&app, token, Method::POST, Some(&json!({"element": "sfdc"}))).await;
    let callback = authorize(&app, &peer, next["redirectUrl"].as_str().unwrap(), "").await;
    follow_callback(&app, &callback).await;
    let (_, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["eventNotificationCallbackUrl"], Value::Null);

    let stale = new_session(
        &app,
        json!({"element": "airtable", "returnUrl": RETURN_URL}),
    )
    .await;
    expire(&app, stale["id"].as_i64().unwrap()).await;
    assert_eq!(
        junction_server::jobs::expire_connect_sessions_once(&app.services, 10).await,
        1
    );

    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool(&app).await)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

async fn a_bad_callback_url_is_refused_naming_the_field_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            allow_private: false,
            ..Options::default()
        },
    )
    .await;
    for (url, code) in [
        ("not a url", "invalid_parameter"),
        ("ftp://app.example.test/hook", "invalid_parameter"),
        ("/relative/hook", "invalid_parameter"),
        ("http://127.0.0.1:9/hook", "outbound_address_refused"),
        (
            "http://169.254.169.254/latest/meta-data",
            "outbound_address_refused",
        ),
    ] {
        let (status, body) = app
            .post(
                "/connect/sessions",
                &json!({"element": "airtable", "returnUrl": RETURN_URL,
                        "eventNotificationCallbackUrl": url}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        let message = assert_error(&body, code);
        assert!(
            message.contains("eventNotificationCallbackUrl"),
            "{message}"
        );
    }
    let (status, body) = app
        .post(
            "/connect/sessions",
            &json!({"element": "airtable", "returnUrl": RETURN_URL,
                    "eventNotificationSignatureKey": KEY}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(assert_error(&body, "invalid_parameter").contains("eventNotificationCallbackUrl"));

    let sessions: i64 = sqlx::query_scalar("select count(*) from connect_sessions")
        .fetch_one(&pool(&app).await)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

async fn a_failed_delivery_is_retried_with_the_same_id_and_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let peer = peer_for(&app).await;
    let receiver = Receiver::start(&[500], 200).await;
    let (id, redirect) = authorizing(&app, &peer, &receiver).await;
    let callback = authorize(&app, &peer, &redirect, "").await;
    follow_callback(&app, &callback).await;

    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("elements-webhook-id"),
        got[1].header("elements-webhook-id")
    );
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].json()["message"]["status"], "completed");
    assert_signed_with(&got[1], KEY);
    assert_eq!(
        settled_deliveries(&app, id).await,
        (1, 1),
        "one notification, delivered on its second attempt"
    );
    assert_eq!(receiver.got().len(), 2);
}

async fn a_session_is_purged_only_once_its_notification_is_out(backend: Backend) {
    // The first attempt fails and the retry is a minute away: the notification is pending.
    let app = TestApp::spawn_with(
        backend,
        Options {
            events_retry_delay_ms: 60_000,
            ..Options::default()
        },
    )
    .await;
    let receiver = Receiver::start(&[500], 200).await;
    let created = new_session(
        &app,
        json!({"element": "airtable", "returnUrl": RETURN_URL,
               "eventNotificationCallbackUrl": receiver.url,
               "eventNotificationSignatureKey": KEY}),
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    // Expired long before the retention: due for the purge.
    expire(&app, id).await;
    let purge = || {
        junction_server::jobs::purge_connect_sessions_once(
            &app.services,
            std::time::Duration::from_secs(3600),
            10,
        )
    };
    assert_eq!(
        purge().await,
        0,
        "ended, but its notification is still pending"
    );
    assert_eq!(receiver.wait_for(1).await.len(), 1);
    assert_eq!(
        purge().await,
        0,
        "the retry still needs the callback and its key"
    );
    let (status, view) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "expired");

    // The retry comes due now and is delivered; then the session and its event go.
    sqlx::query("update event_deliveries set next_attempt_at = 0 where connect_session_id = $1")
        .bind(id)
        .execute(&pool(&app).await)
        .await
        .unwrap();
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert_signed_with(&got[1], KEY);
    assert_eq!(settled_deliveries(&app, id).await, (1, 1));
    assert_eq!(purge().await, 1);
    let (status, _) = app.get(&format!("/connect/sessions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool(&app).await)
        .await
        .unwrap();
    assert_eq!(events, 0, "the session's event went with it");
}

async fn the_openapi_document_describes_the_callback_and_its_event(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let openapi: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &openapi["components"]["schemas"];
    let body = &schemas["ConnectSessionBody"]["properties"];
    assert!(body["eventNotificationCallbackUrl"].is_object(), "{body}");
    assert!(body["eventNotificationSignatureKey"].is_object(), "{body}");
    let view = &schemas["ConnectSessionView"]["properties"];
    assert!(view["eventNotificationCallbackUrl"].is_object(), "{view}");
    assert!(
        view.get("eventNotificationSignatureKey").is_none(),
        "{view}"
    );
    let message = &schemas["ConnectSessionEventMessage"]["properties"];
    for field in [
        "eventId",
        "sessionId",
        "status",
        "instanceId",
        "elementKey",
        "error",
    ] {
        assert!(message[field].is_object(), "{field}: {message}");
    }
    let create = &openapi["paths"]["/connect/sessions"]["post"];
    assert!(
        create["description"]
            .as_str()
            .is_some_and(|d| d.contains("ConnectSessionEvent")),
        "{create}"
    );
}
