//! Events end to end: provider webhooks in (Facebook's handshake and signed deliveries,
//! Dropbox's challenge and signature, Box's two signatures), signed notifications out to
//! a real local receiver that answers scripted statuses, retries, 410, FAILED and
//! replay, and the events API.

use crate::helpers::{Options, TestApp, assert_error};
use crate::on_both_backends;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use junction_testkit::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP_SECRET: &str = "facebook-app-secret";
const SIGNATURE_KEY: &str = "callback-signature-key";

/// What the receiver answers: a scripted status per request (then `otherwise`), and
/// optionally a delay before answering the first `slow` requests.
#[derive(Default)]
struct Script {
    statuses: VecDeque<u16>,
    otherwise: u16,
    slow: usize,
    delay: Duration,
}

#[derive(Clone)]
pub(crate) struct Received {
    headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    arrived: Arc<tokio::sync::Notify>,
}

/// The app's side: a real HTTP server that records every notification.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: ReceiverState,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let (status, delay) = {
        let mut script = state.script.lock().unwrap();
        let status = script.statuses.pop_front().unwrap_or(script.otherwise);
        let delay = if script.slow > 0 {
            script.slow -= 1;
            script.delay
        } else {
            Duration::ZERO
        };
        (status, delay)
    };
    tokio::time::sleep(delay).await;
    state.got.lock().unwrap().push(Received { headers, body });
    state.arrived.notify_waiters();
    AxumStatus::from_u16(status).unwrap()
}

impl Receiver {
    pub(crate) async fn start(statuses: &[u16], otherwise: u16) -> Self {
        let state = ReceiverState {
            got: Arc::default(),
            script: Arc::new(Mutex::new(Script {
                statuses: statuses.iter().copied().collect(),
                otherwise,
                ..Script::default()
            })),
            arrived: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn answer(&self, otherwise: u16) {
        self.state.script.lock().unwrap().otherwise = otherwise;
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits until `n` notifications arrived (a deadline only keeps a broken build from
    /// hanging: the assertion is on what arrived).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.state.arrived.notified();
            if self.got().len() >= n || tokio::time::Instant::now() > deadline {
                return self.got();
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), arrived).await;
        }
    }
}

pub(crate) fn hmac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What Facebook sends: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
fn facebook_signature(body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(APP_SECRET, &[body])))
}

/// A Facebook Page `leadgen` delivery, as Facebook documents it.
fn leadgen(page: &str, leads: &[&str]) -> Vec<u8> {
    let changes: Vec<Value> = leads
        .iter()
        .map(|id| {
            json!({"field": "leadgen", "value": {
                "ad_id": "444444444", "form_id": "444444444444", "leadgen_id": id,
                "created_time": 1502905576, "page_id": page, "adgroup_id": "44444444444"}})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "page", "entry": [
        {"id": page, "time": 1502905576, "changes": changes}]}))
    .unwrap()
}

/// A Facebook Lead Ads instance with events on, as provisioning leaves it. It is
/// written through the store because provisioning calls Graph (`/me/accounts`), which
/// tests cannot reach and the element's host pins keep from being moved.
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
        ("facebookleadads.pages", "111|222"),
        ("event.notification.enabled", "true"),
        ("event.notification.callback.url", callback),
    ]);
    let secrets = entries(&[
        ("oauth.api.key", "app-id"),
        ("oauth.api.secret", APP_SECRET),
        ("oauth.user.token", "page-token"),
        ("event.notification.signature.key", SIGNATURE_KEY),
    ]);
    let token = junction_core::Secret::new(format!("token-{}", rand_suffix()));
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
    let id = record.id.0;
    let (status, instance) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(
        instance["configuration"]["event.notification.signature.key"], "********",
        "the signature key is masked: {instance}"
    );
    assert_eq!(
        instance["eventWebhookUrl"],
        format!("/elements/api-v2/events/facebookleadads/{id}")
    );
    id
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn post_webhook(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn signed_lead(app: &TestApp, page: &str, leads: &[&str]) -> String {
    let body = leadgen(page, leads);
    let (status, answer) = post_webhook(
        app,
        "/events/facebookleadads",
        &[("x-hub-signature-256", facebook_signature(&body))],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], true, "{answer}");
    answer["eventId"].as_str().unwrap().to_owned()
}

/// The event record, once its status is one of `want` (deliveries are asynchronous).
async fn event_when(app: &TestApp, instance: i64, event: &str, want: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, record) = app
            .get(&format!("/instances/{instance}/events/{event}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{record}");
        if want.contains(&record["status"].as_str().unwrap())
            || tokio::time::Instant::now() > deadline
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(
    facebook_handshake_echoes_the_challenge_for_the_documented_verify_token,
    a_signed_facebook_lead_reaches_the_callback_signed_and_is_recorded,
    bad_webhooks_are_refused_and_nothing_is_stored,
    a_receiver_failing_then_recovering_gets_the_same_webhook_id,
    a_receiver_that_answers_410_turns_the_instance_events_off,
    a_receiver_down_for_the_whole_retry_window_leaves_the_event_failed_until_replayed,
    a_receiver_too_slow_to_answer_is_retried,
    notifications_waiting_on_a_resting_receiver_keep_their_retries_for_when_it_answers,
    notifications_about_one_object_arrive_in_order_despite_failures,
    webhooks_for_an_instance_with_events_off_are_accepted_and_dropped,
    dropbox_challenge_and_signature_and_box_signatures_are_checked,
    the_events_api_pages_filters_and_stays_in_the_account,
);

async fn facebook_handshake_echoes_the_challenge_for_the_documented_verify_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let handshake = |token: &str| {
        app.http
            .get(app.url("/events/facebookleadads"))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "1158201444"),
            ])
            .send()
    };
    let answer = handshake("CloudElements@123").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "1158201444");
    let refused = handshake("guess").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // The per-instance URL compares the instance's own token.
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"event.vendor.verify.token": "our-own-token"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let per_instance = |token: &'static str| {
        app.http
            .get(app.url(&format!("/events/facebookleadads/{id}")))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "42"),
            ])
            .send()
    };
    assert_eq!(
        per_instance("our-own-token")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "42"
    );
    assert_eq!(
        per_instance("CloudElements@123").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn a_signed_facebook_lead_reaches_the_callback_signed_and_is_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    // The instance finder: page 222 is one of the instance's pages.
    let event_id = signed_lead(&app, "222", &["L1", "L2"]).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let note = &got[0];
    let body = note.json();
    let message = &body["message"];
    assert_eq!(message["eventId"], event_id);
    assert_eq!(message["instanceId"], id);
    assert_eq!(message["elementKey"], "facebookleadads");
    let events = message["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["objectType"], "leads");
    assert_eq!(events[0]["objectId"], "L1");
    assert_eq!(events[1]["objectId"], "L2");
    assert_eq!(events[0]["eventType"], "CREATED");
    assert_eq!(events[0]["date"], "2017-08-16T17:46:16Z");
    assert_eq!(message["raw"]["entry"][0]["id"], "222");
    // The receiver checks the signature as Cloud Elements documents it.
    let expected = format!(
        "sha256={}",
        BASE64.encode(hmac(SIGNATURE_KEY, &[&note.body]))
    );
    assert_eq!(note.header("elements-webhook-signature"), expected);
    let webhook_id = note.header("elements-webhook-id");
    assert!(!webhook_id.is_empty());
    // …and the Standard Webhooks one.
    let ts = note.header("webhook-timestamp");
    let standard = format!(
        "v1,{}",
        BASE64.encode(hmac(
            SIGNATURE_KEY,
            &[webhook_id.as_bytes(), b".", ts.as_bytes(), b".", &note.body]
        ))
    );
    assert_eq!(note.header("webhook-signature"), standard);
    assert_eq!(note.header("webhook-id"), webhook_id);
    let record = event_when(&app, id, &event_id, &["NOTIFIED"]).await;
    assert_eq!(record["status"], "NOTIFIED", "{record}");
    assert_eq!(record["id"], event_id);
    let raw: Value = serde_json::from_str(record["providerData"].as_str().unwrap()).unwrap();
    assert_eq!(raw["entry"][0]["changes"][1]["value"]["leadgen_id"], "L2");
    assert_eq!(record["notifiedData"][0]["statusCode"], 200, "{record}");
    assert!(record["notifiedData"][0]["durationMs"].is_i64());
    // The token-addressed twin finds the same record.
    let (status, same) = app.get(&format!("/instances/events/{event_id}")).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["id"], event_id);
}

async fn bad_webhooks_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let body = leadgen("222", &["L1"]);
    let (status, answer) = post_webhook(
        &app,
        "/events/facebookleadads",
        &[(
            "x-hub-signature-256",
            format!("sha256={}", hex::encode([0u8; 32])),
        )],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_error(&answer, "invalid_signature");
    let (status, answer) = post_webhook(&app, "/events/facebookleadads", &[], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        assert_error(&answer, "invalid_signature").contains("X-Hub-Signature-256"),
        "{answer}"
    );
    // Signed with another app's secret.
    let other = format!("sha256={}", hex::encode(hmac("other-secret", &[&body])));
    let (status, _) = post_webhook(
        &app,
        "/events/facebookleadads",
        &[("x-hub-signature-256", other)],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let junk = b"not json".to_vec();
    let (status, answer) = post_webhook(
        &app,
        "/events/facebookleadads",
        &[("x-hub-signature-256", facebook_signature(&junk))],
        junk,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&answer, "invalid_body");
    let (status, answer) = post_webhook(&app, "/events/nosuchelement", &[], body.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&answer, "element_not_found");
    // An unknown page, an unknown instance, another element's instance: one answer.
    for (path, headers) in [
        (
            "/events/facebookleadads",
            vec![("element-instances", "99999".to_owned())],
        ),
        (&*format!("/events/facebooksocial/{id}"), vec![]),
    ] {
        let (status, answer) = post_webhook(&app, path, &headers, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert_error(&answer, "instance_not_found");
    }
    let stranger = leadgen("333", &["L9"]);
    let (status, _) = post_webhook(
        &app,
        "/events/facebookleadads",
        &[("x-hub-signature-256", facebook_signature(&stranger))],
        stranger,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let huge = vec![b' '; 10 * 1024 * 1024 + 1];
    let (status, answer) = post_webhook(&app, "/events/facebookleadads", &[], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_error(&answer, "body_too_large");
    let (status, events) = app.get(&format!("/instances/{id}/events")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events, json!([]), "nothing was stored");
    assert!(receiver.got().is_empty());
}

async fn a_receiver_failing_then_recovering_gets_the_same_webhook_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[500, 503], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let event_id = signed_lead(&app, "111", &["L1"]).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("elements-webhook-id"))
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "retries send the same bytes"
    );
    let record = event_when(&app, id, &event_id, &["NOTIFIED"]).await;
    let codes: Vec<i64> = record["notifiedData"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 503, 200], "{record}");
}

async fn a_receiver_that_answers_410_turns_the_instance_events_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[410], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let event_id = signed_lead(&app, "111", &["L1"]).await;
    let record = event_when(&app, id, &event_id, &["FAILED"]).await;
    assert_eq!(record["status"], "FAILED", "{record}");
    assert_eq!(receiver.got().len(), 1, "410 is not retried");
    let (_, instance) = app.get(&format!("/instances/{id}")).await;
    assert_eq!(
        instance["configuration"]["event.notification.enabled"], "false",
        "{instance}"
    );
    let body = leadgen("111", &["L2"]);
    let (status, answer) = post_webhook(
        &app,
        "/events/facebookleadads",
        &[("x-hub-signature-256", facebook_signature(&body))],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["dropped"], true, "{answer}");
}

async fn a_receiver_down_for_the_whole_retry_window_leaves_the_event_failed_until_replayed(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 503).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let first = signed_lead(&app, "111", &["L1"]).await;
    let second = signed_lead(&app, "111", &["L2"]).await;
    for event in [&first, &second] {
        let record = event_when(&app, id, event, &["FAILED"]).await;
        assert_eq!(record["status"], "FAILED", "{record}");
        // The first attempt and three retries (the tests' JUNCTION_EVENTS_RETRIES).
        assert_eq!(
            record["notifiedData"].as_array().unwrap().len(),
            4,
            "{record}"
        );
    }
    let (_, failed) = app
        .get(&format!("/instances/{id}/events?status=FAILED"))
        .await;
    assert_eq!(failed.as_array().unwrap().len(), 2);
    let before = receiver.got();
    let first_id = before
        .iter()
        .find(|r| r.json()["message"]["eventId"] == first.as_str())
        .unwrap()
        .header("elements-webhook-id");
    receiver.answer(200);
    // One replayed by itself, then the rest in bulk.
    let (status, replayed) = app
        .post(
            &format!("/instances/{id}/events/{first}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    let record = event_when(&app, id, &first, &["NOTIFIED"]).await;
    assert_eq!(record["status"], "NOTIFIED");
    let last = receiver.got().last().unwrap().clone();
    assert_eq!(
        last.header("elements-webhook-id"),
        first_id,
        "a replay keeps the id"
    );
    let (status, bulk) = app
        .post(&format!("/instances/{id}/events/replay"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bulk["replayed"], 1, "{bulk}");
    let record = event_when(&app, id, &second, &["NOTIFIED"]).await;
    assert_eq!(record["status"], "NOTIFIED", "{record}");
}

async fn notifications_waiting_on_a_resting_receiver_keep_their_retries_for_when_it_answers(
    backend: Backend,
) {
    // Five attempts 10, 40, 160 and 640 ms apart: the whole retry window is shorter
    // than the second the circuit stays open after five failures in a row.
    let app = TestApp::spawn_with(
        backend,
        Options {
            events_retries: 4,
            events_retry_delay_ms: 10,
            ..Options::default()
        },
    )
    .await;
    let receiver = Receiver::start(&[503; 5], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let first = signed_lead(&app, "111", &["L1"]).await;
    let record = event_when(&app, id, &first, &["FAILED"]).await;
    assert_eq!(
        record["notifiedData"].as_array().unwrap().len(),
        5,
        "{record}"
    );
    // The receiver now rests; an event arriving meanwhile waits for it.
    let second = signed_lead(&app, "111", &["L2"]).await;
    let record = event_when(&app, id, &second, &["NOTIFIED", "FAILED"]).await;
    assert_eq!(record["status"], "NOTIFIED", "{record}");
    let attempts = record["notifiedData"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{record}");
    assert_eq!(attempts[0]["statusCode"], 200, "{record}");
    assert_eq!(
        receiver.got().len(),
        6,
        "five failures, then the waiting one"
    );
}

async fn a_receiver_too_slow_to_answer_is_retried(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            events_timeout: 1,
            ..Options::default()
        },
    )
    .await;
    let receiver = Receiver::start(&[], 200).await;
    {
        let mut script = receiver.state.script.lock().unwrap();
        script.slow = 1;
        script.delay = Duration::from_secs(3);
    }
    let id = facebook_instance(&app, &receiver.url).await;
    let event_id = signed_lead(&app, "111", &["L1"]).await;
    let record = event_when(&app, id, &event_id, &["NOTIFIED"]).await;
    assert_eq!(record["status"], "NOTIFIED", "{record}");
    let attempts = record["notifiedData"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{record}");
    assert!(attempts[0]["statusCode"].is_null(), "{record}");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("in"),
        "{record}"
    );
}

async fn notifications_about_one_object_arrive_in_order_despite_failures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The first notification fails twice; the second, about the same lead, must wait.
    let receiver = Receiver::start(&[500, 500], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let first = signed_lead(&app, "111", &["L1"]).await;
    let second = signed_lead(&app, "111", &["L1"]).await;
    event_when(&app, id, &second, &["NOTIFIED"]).await;
    event_when(&app, id, &first, &["NOTIFIED"]).await;
    let order: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| r.json()["message"]["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, vec![first.clone(), first.clone(), first, second]);
}

async fn webhooks_for_an_instance_with_events_off_are_accepted_and_dropped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {"event.notification.enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = leadgen("111", &["L1"]);
    let (status, answer) = post_webhook(
        &app,
        &format!("/events/facebookleadads/{id}"),
        &[("x-hub-signature-256", facebook_signature(&body))],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"accepted": true, "dropped": true}));
    assert_eq!(
        app.services
            .events
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let (_, events) = app.get(&format!("/instances/{id}/events")).await;
    assert_eq!(events, json!([]));
}

async fn dropbox_challenge_and_signature_and_box_signatures_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let challenge = app
        .http
        .get(app.url("/events/dropbox?challenge=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), StatusCode::OK);
    assert_eq!(challenge.headers()["x-content-type-options"], "nosniff");
    assert_eq!(challenge.text().await.unwrap(), "abc123");
    let (status, dropbox) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "dropbox"},
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "app-key",
                    "oauth.api.secret": "dropbox-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "t",
                    "oauth.user.refresh_token": "r",
                    "dropbox.account.id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
                    "event.notification.enabled": true,
                    "event.notification.callback.url": receiver.url,
                },
                "name": "files",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dropbox}");
    let body = serde_json::to_vec(&json!({
        "list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},
        "delta": {"users": [12345678]}}))
    .unwrap();
    let signed = hex::encode(hmac("dropbox-secret", &[&body]));
    let (status, answer) = post_webhook(
        &app,
        "/events/dropbox",
        &[("x-dropbox-signature", signed)],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = receiver.wait_for(1).await;
    assert_eq!(
        got[0].json()["message"]["events"][0]["objectId"],
        "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
    );
    let (status, _) = post_webhook(
        &app,
        "/events/dropbox",
        &[("x-dropbox-signature", hex::encode([1u8; 32]))],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, box_instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "box"},
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "box-client",
                    "oauth.api.secret": "box-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": "t",
                    "oauth.user.refresh_token": "r",
                    "box.webhook.primary.key": "primary-key",
                    "box.webhook.secondary.key": "secondary-key",
                    "event.notification.enabled": true,
                    "event.notification.callback.url": receiver.url,
                },
                "name": "box",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{box_instance}");
    let box_id = box_instance["id"].as_i64().unwrap();
    let body = serde_json::to_vec(&json!({
        "type": "webhook_event", "id": "e1", "created_at": "2026-11-26T10:00:00-08:00",
        "trigger": "FILE.TRASHED", "webhook": {"id": "w1"},
        "source": {"id": "f-42", "type": "file"}}))
    .unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let sign = |key: &str, ts: &str| BASE64.encode(hmac(key, &[&body, ts.as_bytes()]));
    let path = format!("/events/box/{box_id}");
    // Only the secondary valid (the primary being rotated): accepted.
    let (status, answer) = post_webhook(
        &app,
        &path,
        &[
            ("box-delivery-timestamp", now.clone()),
            ("box-signature-primary", sign("old-primary", &now)),
            ("box-signature-secondary", sign("secondary-key", &now)),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = receiver.wait_for(2).await;
    let event = &got[1].json()["message"]["events"][0];
    assert_eq!(event["objectType"], "file");
    assert_eq!(event["objectId"], "f-42");
    assert_eq!(event["eventType"], "DELETED");
    // A delivery signed long ago is a replay.
    let old = "2020-01-01T00:00:00Z".to_owned();
    let (status, answer) = post_webhook(
        &app,
        &path,
        &[
            ("box-delivery-timestamp", old.clone()),
            ("box-signature-primary", sign("primary-key", &old)),
        ],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}

async fn the_events_api_pages_filters_and_stays_in_the_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&app, &receiver.url).await;
    let mut ids = Vec::new();
    for lead in ["L1", "L2", "L3"] {
        ids.push(signed_lead(&app, "111", &[lead]).await);
    }
    for event in &ids {
        event_when(&app, id, event, &["NOTIFIED"]).await;
    }
    let response = app
        .http
        .get(app.url(&format!("/instances/{id}/events?pageSize=2")))
        .header("Authorization", app.platform_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["elements-total-count"], "3");
    let next = response.headers()["elements-next-page-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let page: Value = response.json().await.unwrap();
    let first: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        first,
        vec![ids[2].as_str(), ids[1].as_str()],
        "newest first"
    );
    let (_, rest) = app
        .get(&format!(
            "/instances/{id}/events?pageSize=2&nextPage={next}"
        ))
        .await;
    assert_eq!(rest[0]["id"], ids[0]);
    let (_, none) = app
        .get(&format!("/instances/{id}/events?status=FAILED"))
        .await;
    assert_eq!(none, json!([]));
    let (_, future) = app
        .get(&format!("/instances/{id}/events?from=2999-01-01"))
        .await;
    assert_eq!(future, json!([]));
    let (status, bad) = app
        .get(&format!("/instances/{id}/events?status=LOST"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&bad, "invalid_parameter");
    let (status, missing) = app.get(&format!("/instances/{id}/events/999999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&missing, "event_not_found");
    // Another organization sees neither the instance's events nor the event itself.
    let other = crate::accounts::other_organization(&app).await;
    let (status, _) = app
        .call_as(
            &other,
            Method::GET,
            &format!("/instances/{id}/events"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call_as(
            &other,
            Method::GET,
            &format!("/instances/events/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call_as(
            &other,
            Method::POST,
            &format!("/instances/{id}/events/{}/replay", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

mod two_replicas {
    /// Two Junction processes on one PostgreSQL, both receiving webhooks and both
    /// delivering: every event reaches the app, and (nothing failing) exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::two_replicas_deliver_each_event_once(junction_testkit::db::Backend::Postgres).await
    }
}

async fn two_replicas_deliver_each_event_once(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = first.replica().await;
    let receiver = Receiver::start(&[], 200).await;
    let id = facebook_instance(&first, &receiver.url).await;
    let mut events = Vec::new();
    for n in 0..100 {
        let app = if n % 2 == 0 { &first } else { &second };
        events.push(signed_lead(app, "111", &[&format!("L{n}")]).await);
    }
    let got = receiver.wait_for(100).await;
    // Settle: a duplicate would arrive within a lease's time; none may.
    for event in &events {
        let record = event_when(&first, id, event, &["NOTIFIED"]).await;
        assert_eq!(
            record["notifiedData"].as_array().unwrap().len(),
            1,
            "{record}"
        );
    }
    let got_ids: std::collections::BTreeSet<String> = got
        .iter()
        .map(|r| r.json()["message"]["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(receiver.got().len(), 100, "each event delivered once");
    assert_eq!(got_ids, events.into_iter().collect());
}

on_both_backends!(an_element_event_hook_turns_the_payload_into_events);

/// A custom element's `event` hook (JavaScript, Cloud Elements' spelling) decides the
/// events; the hook sees the payload, the provider's headers and the configuration.
async fn an_element_event_hook_turns_the_payload_into_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let hook = r#"
        const out = events.changes.map(c => ({
            event_object_type: configuration['ticker.object'],
            event_object_id: String(c.ref),
            event_type: c.gone ? 'DELETED' : 'UPDATED',
            event_date: events.at,
        }));
        done({events: out, ignored: events.eventHeaders['x-ticker-source']});
    "#;
    let (status, element) = app
        .post(
            "/elements",
            &json!({
                "name": "Ticker",
                "key": "ticker",
                "description": "d",
                "hub": "general",
                "authentication": {"type": "custom"},
                "uses": ["events"],
                "configuration": [
                    {"key": "base.url", "name": "b", "default": "https://api.ticker.example"},
                    {"key": "ticker.secret", "name": "Secret", "type": "PASSWORD", "required": true},
                    {"key": "ticker.object", "name": "Object", "default": "quotes"},
                ],
                "credentials": [{"in": "header", "name": "X-Secret", "value": "{ticker.secret}"}],
                "hooks": [{"type": "event", "body": hook}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{element}");
    let (status, instance) = app
        .post(
            "/elements/ticker/instances",
            &json!({"name": "t", "configuration": {
                "ticker.secret": "s3",
                "event.notification.enabled": true,
                "event.notification.callback.url": receiver.url,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let id = instance["id"].as_i64().unwrap();
    let body = serde_json::to_vec(&json!({"at": "2026-11-26T10:00:00Z",
        "changes": [{"ref": 7}, {"ref": 8, "gone": true}]}))
    .unwrap();
    let (status, answer) = post_webhook(
        &app,
        &format!("/events/ticker/{id}"),
        &[("x-ticker-source", "feed".to_owned())],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = receiver.wait_for(1).await;
    let events = got[0].json()["message"]["events"].clone();
    assert_eq!(
        events,
        json!([
            {"objectType": "quotes", "objectId": "7", "eventType": "UPDATED",
             "date": "2026-11-26T10:00:00Z", "elementKey": "ticker"},
            {"objectType": "quotes", "objectId": "8", "eventType": "DELETED",
             "date": "2026-11-26T10:00:00Z", "elementKey": "ticker"},
        ])
    );
    // A hook that fails stores nothing and says which hook.
    let (status, answer) = post_webhook(
        &app,
        &format!("/events/ticker/{id}"),
        &[],
        serde_json::to_vec(&json!({"at": 1})).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        assert_error(&answer, "event_hook_failed").contains("'event' of element 'ticker'"),
        "{answer}"
    );
    let (_, stored) = app.get(&format!("/instances/{id}/events")).await;
    assert_eq!(stored.as_array().unwrap().len(), 1);
}

on_both_backends!(a_salesforce_webhook_named_by_its_header_becomes_one_event_per_object);

/// Cloud Elements' simulated Salesforce event: the instance comes from the
/// `Element-Instances` header, the event type from the payload's `action`.
async fn a_salesforce_webhook_named_by_its_header_becomes_one_event_per_object(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let receiver = Receiver::start(&[], 200).await;
    let instance = crate::lifecycle::external_instance(&app, "crm").await;
    let id = instance["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {
                "event.notification.enabled": true,
                "event.notification.callback.url": receiver.url,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = serde_json::to_vec(&json!({"objects": [
        {"attributes": {"type": "Contact", "url": "/services/data/v36.0/sobjects/Contact/003A"},
         "Id": "003A", "LastModifiedDate": "2026-11-26T09:00:00.000+0000"},
        {"attributes": {"type": "Account"}, "Id": "001B"}],
        "action": "create"}))
    .unwrap();
    let (status, answer) = post_webhook(
        &app,
        "/events/sfdc",
        &[("element-instances", id.to_string())],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let got = receiver.wait_for(1).await;
    let events = got[0].json()["message"]["events"].clone();
    assert_eq!(events[0]["objectType"], "Contact");
    assert_eq!(events[0]["objectId"], "003A");
    assert_eq!(events[0]["eventType"], "CREATED");
    assert_eq!(events[0]["date"], "2026-11-26T09:00:00.000+0000");
    assert_eq!(events[1]["objectType"], "Account");
    assert!(
        got[0].header("elements-webhook-signature").is_empty(),
        "no key, no signature"
    );
}
