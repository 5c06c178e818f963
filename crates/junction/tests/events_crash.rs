//! A `junction serve` process killed with SIGKILL while it accepts webhooks and while it
//! delivers their notifications, then started again on the same database: every webhook
//! it answered "accepted" reaches the app's callback at least once, a notification sent
//! again carries the same `Elements-Webhook-Id`, and nothing arrives that was never sent.
//!
//! Likewise while it polls: a Salesforce stand-in (in this test process) gets thousands
//! of new Contacts, the process is killed in the middle of reading their pages and
//! started again, and every new Contact reaches the app at least once, nothing else.
//!
//! The webhooks go to `/events/sfdc` with the `Element-Instances` header (Cloud Elements'
//! documented way to simulate a Salesforce event), each carrying a sequence number the
//! receiver reads back from `message.raw`.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use junction_testkit::db::{Backend, TestDatabase};
use junction_testkit::vendors::salesforce::{
    Salesforce, SalesforceConfig, SalesforceServer, record_id,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use support::{Junction, ORG_SECRET, USER_SECRET};

/// What every process of these tests runs with: notifications retried quickly and, for
/// polling, a poll every 100 ms (`refresh_interval: 1`) whose lease lapses after 500 ms
/// in a dead process.
const SETTINGS: &[(&str, &str)] = &[
    ("JUNCTION_EVENTS_TIMEOUT", "1"),
    ("JUNCTION_EVENTS_RETRIES", "50"),
    ("JUNCTION_EVENTS_RETRY_DELAY_MS", "100"),
    ("JUNCTION_EVENTS_POLL_TICK_MS", "50"),
    ("JUNCTION_EVENTS_POLL_MINUTE_MS", "100"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    killed_while_receiving_and_delivering(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    killed_while_receiving_and_delivering(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_sqlite() {
    killed_while_polling(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_postgres() {
    killed_while_polling(Backend::Postgres).await;
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The app's receiver: every notification's sequence number and webhook id.
#[derive(Default)]
struct Seen {
    /// seq → the webhook ids it arrived under.
    by_seq: Mutex<BTreeMap<u64, BTreeSet<String>>>,
    /// Milliseconds each answer waits, so that deliveries are in flight at a kill.
    delay_ms: AtomicU64,
}

async fn receive(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> AxumStatus {
    let delay = seen.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let message: Value = serde_json::from_str(&body).unwrap();
    let seq = message["message"]["raw"]["seq"].as_u64().unwrap();
    let id = headers["elements-webhook-id"].to_str().unwrap().to_owned();
    seen.by_seq
        .lock()
        .unwrap()
        .entry(seq)
        .or_default()
        .insert(id);
    AxumStatus::OK
}

async fn start_receiver() -> (Arc<Seen>, String) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, format!("http://{addr}/hook"))
}

async fn create_instance(junction: &Junction, callback: &str) -> i64 {
    let response = http()
        .post(junction.url("/instances"))
        .header(
            "Authorization",
            format!("User {USER_SECRET}, Organization {ORG_SECRET}"),
        )
        .json(&json!({
            "element": {"key": "sfdc"},
            "externalAuthentication": "initial",
            "configuration": {
                "oauth.api.key": "client",
                "oauth.api.secret": "client-secret",
                "oauth.callback.url": "https://app.example.test/cb",
                "oauth.user.token": "access-token",
                "oauth.user.refresh_token": "refresh-token",
                "event.notification.enabled": true,
                "event.notification.callback.url": callback,
            },
            "name": "events survive a crash",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let instance: Value = response.json().await.unwrap();
    instance["id"].as_i64().unwrap()
}

/// Sends webhooks `from..to` from four concurrent senders until they are done or the
/// process dies; returns the sequence numbers Junction answered "accepted".
async fn send_webhooks(url: String, instance: i64, from: u64, to: u64) -> BTreeSet<u64> {
    let next = Arc::new(AtomicU64::new(from));
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (next, accepted, url) = (Arc::clone(&next), Arc::clone(&accepted), url.clone());
            tokio::spawn(async move {
                let client = http();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= to {
                        return;
                    }
                    let sent = client
                        .post(&url)
                        .header("element-instances", instance.to_string())
                        .json(&json!({"seq": seq, "objects": [{"attributes": {"type": "Contact"}, "Id": seq}], "action": "update"}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            if body["accepted"] == true {
                                accepted.lock().unwrap().insert(seq);
                            }
                        }
                        // The process was killed: this one may or may not be stored.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    accepted.lock().unwrap().clone()
}

/// Waits until every sequence number in `want` reached the receiver (the deadline only
/// keeps a broken build from hanging: the assertions are on what arrived).
async fn wait_delivered(seen: &Seen, want: &BTreeSet<u64>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let got = seen
            .by_seq
            .lock()
            .unwrap()
            .keys()
            .copied()
            .collect::<BTreeSet<_>>();
        if want.is_subset(&got) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn killed_while_receiving_and_delivering(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (seen, callback) = start_receiver().await;
    let junction = Junction::start(&db.url, dir.path(), SETTINGS);
    let instance = create_instance(&junction, &callback).await;
    let url = junction.url("/events/sfdc");

    // 1. Killed while accepting webhooks.
    let sending = tokio::spawn(send_webhooks(url, instance, 0, 1_000_000));
    let started = Instant::now();
    while seen.by_seq.lock().unwrap().len() < 200 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    junction.kill();
    let mut accepted = sending.await.unwrap();
    assert!(accepted.len() >= 200, "only {} accepted", accepted.len());
    let sent_before_kill = accepted.iter().max().copied().unwrap_or(0) + 8;

    // 2. Restarted: everything accepted arrives; then killed while notifications are in
    //    flight (the receiver answers slowly).
    let junction = Junction::start(&db.url, dir.path(), SETTINGS);
    wait_delivered(&seen, &accepted).await;
    seen.delay_ms.store(300, Ordering::Relaxed);
    let url = junction.url("/events/sfdc");
    let second = send_webhooks(url, instance, 2_000_000, 2_000_100).await;
    assert_eq!(
        second.len(),
        100,
        "every webhook of the second round is accepted"
    );
    accepted.extend(&second);
    tokio::time::sleep(Duration::from_millis(500)).await;
    junction.kill();
    seen.delay_ms.store(0, Ordering::Relaxed);

    // 3. Restarted again: the interrupted notifications go out again, under their ids.
    let junction = Junction::start(&db.url, dir.path(), SETTINGS);
    wait_delivered(&seen, &accepted).await;
    let by_seq = seen.by_seq.lock().unwrap().clone();
    let got: BTreeSet<u64> = by_seq.keys().copied().collect();
    let lost: Vec<_> = accepted.difference(&got).collect();
    assert!(lost.is_empty(), "accepted but never delivered: {lost:?}");
    for (seq, ids) in &by_seq {
        assert!(
            *seq < sent_before_kill || (2_000_000..2_000_100).contains(seq),
            "delivered but never sent: {seq}"
        );
        assert_eq!(ids.len(), 1, "seq {seq} arrived under several ids: {ids:?}");
    }
    drop(junction);
}

type Reported = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

/// The app's receiver for polled events: every Contact id reported, with the webhook ids
/// it came under (a notification sent again keeps its id; a change emitted again would
/// come under a new one).
async fn start_poll_receiver() -> (Reported, String) {
    async fn receive(State(seen): State<Reported>, headers: HeaderMap, body: String) -> AxumStatus {
        let message: Value = serde_json::from_str(&body).unwrap();
        let id = headers["elements-webhook-id"].to_str().unwrap().to_owned();
        let mut seen = seen.lock().unwrap();
        for event in message["message"]["events"].as_array().unwrap() {
            seen.entry(event["objectId"].as_str().unwrap().to_owned())
                .or_default()
                .insert(id.clone());
        }
        AxumStatus::OK
    }
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, format!("http://{addr}/hook"))
}

/// `count` new Contacts at the stand-in, numbered from `from`; returns their ids.
fn create_contacts(sf: &SalesforceServer, from: u64, count: u64) -> BTreeSet<String> {
    let store = sf.store();
    let template = store.all("Contact")[0].as_object().unwrap().clone();
    (from..from + count)
        .map(|n| {
            let mut record = template.clone();
            let id = record_id("003", 800_000 + n);
            let now = chrono_now();
            record.insert("Id".into(), json!(id));
            record.insert("CreatedDate".into(), json!(now));
            record.insert("LastModifiedDate".into(), json!(now));
            store.insert("Contact", Value::Object(record));
            id
        })
        .collect()
}

/// Now, as Salesforce writes dates: milliseconds and a `+0000` offset.
fn chrono_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Query pages the stand-in served (first pages and the `nextRecordsUrl` ones).
fn query_pages(sf: &SalesforceServer) -> usize {
    sf.requests()
        .iter()
        .filter(|r| r.path.contains("/query"))
        .count()
}

async fn killed_while_polling(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sf = Salesforce::start(SalesforceConfig {
        accounts: 5,
        contacts: 20,
        others: 5,
        small: 2,
        ..SalesforceConfig::default()
    })
    .await;
    let (seen, callback) = start_poll_receiver().await;
    let junction = Junction::start(&db.url, dir.path(), SETTINGS);
    let response = http()
        .post(junction.url("/instances"))
        .header(
            "Authorization",
            format!("User {USER_SECRET}, Organization {ORG_SECRET}"),
        )
        .json(&json!({
            "element": {"key": "sfdc"},
            "externalAuthentication": "initial",
            "configuration": {
                "base.url": sf.url(),
                "oauth.api.key": "client",
                "oauth.api.secret": "client-secret",
                "oauth.callback.url": "https://app.example.test/cb",
                "oauth.user.token": SalesforceConfig::default().token,
                "oauth.user.refresh_token": "refresh-token",
                "event.notification.enabled": true,
                "event.notification.callback.url": callback,
                "event.poller.refresh_interval": 1,
                "event.objects": "Contact",
            },
            "name": "polling survives a crash",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    // Polling has begun once the stand-in is asked.
    let started = Instant::now();
    while query_pages(&sf) == 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 1. Killed in the middle of a poll: 4,000 new Contacts are 20 pages of 200; the kill
    //    comes once a few of them were read.
    let mut created = create_contacts(&sf, 0, 4_000);
    let before = query_pages(&sf);
    let started = Instant::now();
    while query_pages(&sf) < before + 4 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    junction.kill();
    assert!(
        query_pages(&sf) < before + 20,
        "the kill came after the poll ended"
    );

    // 2. Restarted: more changes arrive while it catches up.
    let junction = Junction::start(&db.url, dir.path(), SETTINGS);
    created.extend(create_contacts(&sf, 10_000, 500));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<String> = seen.lock().unwrap().keys().cloned().collect();
        if created.is_subset(&got) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = seen.lock().unwrap().clone();
    let reported: BTreeSet<String> = got.keys().cloned().collect();
    let lost: Vec<_> = created.difference(&reported).take(5).collect();
    assert!(lost.is_empty(), "changed but never reported: {lost:?}…");
    let invented: Vec<_> = reported.difference(&created).take(5).collect();
    assert!(
        invented.is_empty(),
        "reported but never changed: {invented:?}"
    );
    // What the killed poll had stored is not emitted again by the next one.
    let twice: Vec<_> = got
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .take(5)
        .collect();
    assert!(twice.is_empty(), "emitted twice: {twice:?}");
    drop(junction);
}
