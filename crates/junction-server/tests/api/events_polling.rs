//! Polling end to end: instances of `sfdc`, `acton` and `netsuitecrm` with events on poll the vendor
//! stand-ins through the hub resources (their default `event.poller.configuration`), and
//! every record created or changed at the vendor reaches a real local receiver as a
//! signed notification, once; the poller's state is visible in the events API; 429s back
//! off, an instance whose credentials die stops polling and says why, and two replicas
//! never poll one instance at once. The instance writes create and remove their pollers
//! themselves, a scheduler round only claims due pollers, and a start repairs the pollers
//! lost or left behind.

use crate::events::{Received, Receiver, hmac};
use crate::helpers::{Options, TestApp, assert_error};
use crate::hub_client::{access_token, provision_at};
use crate::hub_netsuite::netsuite_instance;
use crate::hub_salesforce::{CALLBACK, CLIENT_ID, CLIENT_SECRET, CODE, Login};
use crate::on_both_backends;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use junction_testkit::db::Backend;
use junction_testkit::vendors::Credential;
use junction_testkit::vendors::acton::{ActOn, ActOnConfig, ID_HEADER};
use junction_testkit::vendors::netsuite::{NetSuite, NetSuiteConfig, NetSuiteRecords};
use junction_testkit::vendors::salesforce::{
    Salesforce, SalesforceConfig, SalesforceServer, record_id,
};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SIGNATURE_KEY: &str = "poll-signature-key";

on_both_backends!(
    salesforce_creations_and_changes_become_signed_notifications,
    a_thousand_changes_in_batches_between_polls_are_each_delivered_once,
    act_on_contacts_added_and_changed_in_any_list_are_polled,
    a_rate_limited_poll_waits_out_retry_after,
    an_instance_whose_refresh_is_refused_stops_polling_and_says_why,
    a_change_made_before_the_first_poll_is_reported,
    netsuite_customers_created_and_changed_become_notifications,
    an_instance_created_with_events_on_polls_with_no_reconciliation,
    turning_events_off_through_the_api_stops_the_polling,
    a_receiver_answering_410_gone_stops_the_polling,
    deleting_an_instance_removes_its_poller,
    a_scheduler_round_claims_poller_rows_and_scans_no_instance,
    the_start_reconciles_pollers_lost_or_left_behind,
    the_reconciliation_leaves_an_instance_written_since_its_read_alone,
);

/// Polls often: a tick of 50 ms, and a poller minute of 100 ms (`refresh_interval: 1`).
fn polling() -> Options {
    Options {
        poll_tick_ms: 50,
        poll_minute_ms: 100,
        ..Options::default()
    }
}

/// No scheduler (the test runs its rounds, so no reconciliation runs either), and a poller
/// minute of 1 ms: a poller is due again at once after each poll.
fn manual_polling() -> Options {
    Options {
        poll_tick_ms: 0,
        poll_minute_ms: 1,
        ..Options::default()
    }
}

/// A pool of its own on the app's database, to change rows behind Junction's back.
async fn sql(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.db.url).await.unwrap()
}

/// The instance's poller row, read from the database.
async fn stored_poller(app: &TestApp, id: i64) -> Option<junction_store::PollerRecord> {
    app.services
        .store
        .poller(junction_core::InstanceId(id), 0)
        .await
        .unwrap()
}

/// A Salesforce org (the stand-in and its token endpoint) and an `sfdc` instance on it
/// whose events are on, polling `objects`.
struct Org {
    sf: SalesforceServer,
    _login: Login,
    id: i64,
}

async fn org(app: &TestApp, receiver: &Receiver, objects: &str) -> Org {
    let config = SalesforceConfig {
        accounts: 50,
        contacts: 50,
        others: 10,
        small: 5,
        ..SalesforceConfig::default()
    };
    let token = config.token.clone();
    let sf = Salesforce::start(config).await;
    let login = Login::start(&sf, &token).await;
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "sfdc"},
                "providerData": {"code": CODE},
                "name": "polled org",
                "configuration": {
                    "oauth.api.key": CLIENT_ID,
                    "oauth.api.secret": CLIENT_SECRET,
                    "oauth.callback.url": CALLBACK,
                    "oauth.token.url": login.url,
                    "event.notification.enabled": true,
                    "event.notification.callback.url": receiver.url,
                    "event.notification.signature.key": SIGNATURE_KEY,
                    "event.poller.refresh_interval": 1,
                    "event.objects": objects,
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    Org {
        sf,
        _login: login,
        id: instance["id"].as_i64().unwrap(),
    }
}

fn sf_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

impl Org {
    /// A new record of `object`, as Salesforce stores one (a copy of the first, new id
    /// and dates).
    fn create(&self, object: &str, prefix: &str, n: u64) -> String {
        let store = self.sf.store();
        let mut record: Map<String, Value> = store.all(object)[0].as_object().unwrap().clone();
        let id = record_id(prefix, 700_000 + n);
        let now = sf_now();
        record.insert("Id".into(), json!(id));
        record.insert("CreatedDate".into(), json!(now));
        record.insert("LastModifiedDate".into(), json!(now));
        store.insert(object, Value::Object(record));
        id
    }

    /// Deletes a record, as a DELETE at Salesforce would (into the recycle bin).
    async fn delete(&self, app: &TestApp, object: &str, id: &str) {
        let answer = app
            .http
            .delete(format!(
                "{}/services/data/v59.0/sobjects/{object}/{id}",
                self.sf.url()
            ))
            .bearer_auth(SalesforceConfig::default().token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    }

    /// Changes an existing record, as a PATCH at Salesforce would.
    fn change(&self, object: &str, id: &str, note: &str) {
        let mut changes = Map::new();
        changes.insert("Description".into(), json!(note));
        changes.insert("LastModifiedDate".into(), json!(sf_now()));
        assert!(
            self.sf.store().update(object, id, &changes).is_some(),
            "{id}"
        );
    }

    fn existing(&self, object: &str, n: usize) -> String {
        self.sf.store().all(object)[n]["Id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

async fn poller(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.get(&format!("/instances/{id}/events/poller")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the poller has finished `n` more complete polls (a deadline only keeps a
/// broken build from hanging).
async fn polls(app: &TestApp, id: i64, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = poller(app, id).await["lastPolledAt"].clone();
    let mut seen = 0;
    while seen < n {
        assert!(tokio::time::Instant::now() < deadline, "no poll completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = poller(app, id).await["lastPolledAt"].clone();
        if now != last && !now.is_null() {
            seen += 1;
            last = now;
        }
    }
}

/// Waits until the poller's status satisfies `done`.
async fn poller_when(app: &TestApp, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = poller(app, id).await;
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "poller never got there: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event the notifications carry: (objectType, objectId, eventType, date).
fn events_of(got: &[Received]) -> Vec<(String, String, String, String)> {
    got.iter()
        .flat_map(|r| {
            let body = r.json();
            body["message"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["objectType"].as_str().unwrap().to_owned(),
                        e["objectId"].as_str().unwrap().to_owned(),
                        e["eventType"].as_str().unwrap().to_owned(),
                        e["date"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits until the notifications carry at least `n` events.
async fn wait_events(receiver: &Receiver, n: usize) -> Vec<(String, String, String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = events_of(&receiver.got());
        if events.len() >= n || tokio::time::Instant::now() > deadline {
            return events;
        }
        let count = receiver.got().len();
        receiver.wait_for(count + 1).await;
    }
}

async fn salesforce_creations_and_changes_become_signed_notifications(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact,Account").await;
    polls(&app, org.id, 1).await;
    assert!(receiver.got().is_empty(), "the seeded past is not news");

    let created = org.create("Contact", "003", 1);
    let changed = org.existing("Account", 3);
    org.change("Account", &changed, "moved offices");
    let deleted = org.existing("Contact", 5);
    org.delete(&app, "Contact", &deleted).await;
    let events = wait_events(&receiver, 3).await;
    let kinds: BTreeSet<(String, String, String)> = events
        .iter()
        .map(|(t, id, kind, _)| (t.clone(), id.clone(), kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("Contact".to_owned(), created.clone(), "CREATED".to_owned()),
            ("Account".to_owned(), changed.clone(), "UPDATED".to_owned()),
            ("Contact".to_owned(), deleted.clone(), "DELETED".to_owned()),
        ])
    );
    for got in receiver.got() {
        let signature = got.header("elements-webhook-signature");
        let expected = format!(
            "sha256={}",
            BASE64.encode(hmac(SIGNATURE_KEY, &[&got.body]))
        );
        assert_eq!(signature, expected);
        let body = got.json();
        assert_eq!(body["message"]["instanceId"], org.id);
        assert_eq!(body["message"]["elementKey"], "sfdc");
        let raw = &body["message"]["raw"];
        let object = raw["objectType"].as_str().unwrap();
        assert!(["Contact", "Account"].contains(&object), "{raw}");
        let id = body["message"]["events"][0]["objectId"].as_str().unwrap();
        assert_eq!(raw["objects"][0]["Id"], id, "the raw payload is the record");
    }
    // The Salesforce query each poll sends: the changes since the last poll's start.
    let query = org
        .sf
        .requests()
        .into_iter()
        .rev()
        .find(|r| {
            r.path.ends_with("/queryAll")
                && r.param("q").is_some_and(|q| q.contains("FROM Contact"))
        })
        .unwrap();
    let q = query.param("q").unwrap();
    assert!(
        q.starts_with("SELECT FIELDS(STANDARD) FROM Contact WHERE LastModifiedDate > 20")
            && q.ends_with("Z ORDER BY LastModifiedDate"),
        "{q}"
    );
    // The events API records them as polled.
    let (status, records) = app.get(&format!("/instances/{}/events", org.id)).await;
    assert_eq!(status, StatusCode::OK);
    let recorded: usize = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["source"], "polling", "{r}");
            r["events"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(recorded, 3, "{records}");
    let status = poller(&app, org.id).await;
    assert_eq!(status["failures"], 0, "{status}");
    assert!(status["since"]["Contact"].is_string(), "{status}");

    // Nothing new: later polls send nothing more.
    polls(&app, org.id, 3).await;
    assert_eq!(events_of(&receiver.got()).len(), 3);
}

async fn a_thousand_changes_in_batches_between_polls_are_each_delivered_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact,Account").await;
    polls(&app, org.id, 1).await;
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut made = 0;
    for batch in 0..4u64 {
        for n in 0..250u64 {
            let (object, prefix) = if n % 2 == 0 {
                ("Contact", "003")
            } else {
                ("Account", "001")
            };
            let id = if n % 5 == 0 {
                org.create(object, prefix, batch * 1000 + n)
            } else {
                let id = org.existing(object, ((batch * 7 + n) % 50) as usize);
                org.change(object, &id, &format!("batch {batch} change {n}"));
                id
            };
            *expected.entry((object.to_owned(), id)).or_default() += 1;
            made += 1;
        }
        polls(&app, org.id, 1).await;
    }
    assert_eq!(made, 1000);
    // Every record changed since the poll before is reported; a record changed twice
    // between two polls is one change to report.
    polls(&app, org.id, 2).await;
    let events = events_of(&receiver.got());
    let reported: BTreeSet<(String, String)> = events
        .iter()
        .map(|(t, id, _, _)| (t.clone(), id.clone()))
        .collect();
    let changed: BTreeSet<(String, String)> = expected.keys().cloned().collect();
    assert_eq!(reported, changed, "nothing missed, nothing invented");
    let mut once = BTreeSet::new();
    for (t, id, _, date) in &events {
        assert!(
            once.insert((t, id, date)),
            "{t} {id} at {date} reported twice"
        );
    }
    assert!(
        receiver
            .got()
            .iter()
            .all(|r| r.json()["message"]["events"].as_array().unwrap().len() <= 10),
        "at most 10 events per notification"
    );
    // The watermark holds: more polls re-emit nothing.
    let before = receiver.got().len();
    polls(&app, org.id, 3).await;
    assert_eq!(receiver.got().len(), before);
}

async fn act_on_contacts_added_and_changed_in_any_list_are_polled(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let acton = ActOn::start(ActOnConfig {
        contacts: 40,
        ..ActOnConfig::default()
    })
    .await;
    let instance = provision_at(&app, "acton", &format!("{}/api/1", acton.url())).await;
    let token = access_token(&app, &instance).await;
    acton.add_credential(Credential::Bearer(token.clone()));
    let id = instance["id"].as_i64().unwrap();
    // Events off: there is no poller to show.
    let (status, body) = app.get(&format!("/instances/{id}/events/poller")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "not_polling");
    // A configuration that could never be polled is refused, and nothing changes.
    for (bad, says) in [
        (
            json!({"contacts": {"url": "/hubs/marketing/lists/l-0001/contacts?after=${now}"}}),
            "unknown placeholder '${now}'",
        ),
        (
            json!({"contacts": {"url": "/x", "datesConfiguration": {"updatedDateField": "u", "updatedDateFormat": "yyyy-QQ"}}}),
            "'QQ'",
        ),
        (
            json!({"contacts": {"url": "/x", "createdCheckTolerance": "soon"}}),
            "createdCheckTolerance",
        ),
        (json!({"contacts": {"idField": "id"}}), "url"),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("/instances/{id}"),
                Some(&json!({"configuration": {"event.poller.configuration": bad.to_string()}})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            assert_error(&body, "invalid_configuration").contains(says),
            "{bad}: {body}"
        );
    }
    let (_, shown) = app.get(&format!("/instances/{id}")).await;
    assert!(
        shown["configuration"]["event.poller.configuration"]
            .as_str()
            .is_none_or(|c| c.contains("modifiedAfter")),
        "{shown}"
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {
                "event.notification.enabled": true,
                "event.notification.callback.url": receiver.url,
                "event.poller.refresh_interval": 1,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    polls(&app, id, 1).await;
    assert!(receiver.got().is_empty());

    // Through Act-On's API: a contact added to one list, another changed in another.
    let http = &app.http;
    let added: Value = http
        .post(format!("{}/api/1/list/l-0002/record", acton.url()))
        .bearer_auth(&token)
        .json(&json!({"E-mail Address": "new@example.test", "First Name": "New"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let added = added["id"].as_str().unwrap().to_owned();
    let changed = acton.store().all("l-0001")[7][ID_HEADER]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = http
        .put(format!(
            "{}/api/1/list/l-0001/record/{changed}",
            acton.url()
        ))
        .bearer_auth(&token)
        .json(&json!({"City": "Portland"}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let events = wait_events(&receiver, 2).await;
    let kinds: BTreeSet<(String, String, String)> = events
        .iter()
        .map(|(t, id, kind, _)| (t.clone(), id.clone(), kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("contacts".to_owned(), added, "CREATED".to_owned()),
            ("contacts".to_owned(), changed.clone(), "UPDATED".to_owned()),
        ])
    );
    let raw = receiver
        .got()
        .into_iter()
        .map(|r| r.json()["message"]["raw"].clone())
        .find(|raw| raw["objects"][0][ID_HEADER] == changed.as_str())
        .unwrap();
    assert_eq!(raw["objects"][0]["City"], "Portland");
    // Act-On was asked only for what changed since the watermark, with its dates.
    let download = acton
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/api/1/list/l-0001")
        .unwrap();
    assert!(download.param("modafter").unwrap().parse::<i64>().unwrap() > 1_700_000_000_000);
    assert_eq!(download.param("datequalifiers"), Some("true"));
    polls(&app, id, 3).await;
    assert_eq!(events_of(&receiver.got()).len(), 2);
}

async fn netsuite_customers_created_and_changed_become_notifications(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let netsuite = NetSuite::start(NetSuiteConfig {
        records: 20,
        ..NetSuiteConfig::default()
    })
    .await;
    let instance = netsuite_instance(&app, &netsuite, json!({})).await;
    let id = instance["id"].as_i64().unwrap();
    // Events go on once NetSuite accepts the instance's token.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(&json!({"configuration": {
                "event.notification.enabled": true,
                "event.notification.callback.url": receiver.url,
                "event.notification.signature.key": SIGNATURE_KEY,
                "event.poller.refresh_interval": 1,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    polls(&app, id, 1).await;
    assert!(receiver.got().is_empty(), "the seeded past is not news");

    let created = netsuite.create(
        "customer",
        json!({"entityid": "Northwind", "companyname": "Northwind", "email": "ap@northwind.test", "isinactive": "F"}),
    );
    let changed = netsuite.store().all("customer")[4]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    netsuite.change("customer", &changed, json!({"phone": "555-0100"}));
    let contact = netsuite.store().all("contact")[2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    netsuite.change("contact", &contact, json!({"email": "moved@example.test"}));
    let opportunity = netsuite.create(
        "transaction",
        json!({"tranid": "OPP09999", "type": "Opprtnty", "title": "Northwind pilot", "entity": created, "probability": 20}),
    );
    let events = wait_events(&receiver, 4).await;
    let kinds: BTreeSet<(String, String, String)> = events
        .iter()
        .map(|(t, id, kind, _)| (t.clone(), id.clone(), kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            ("accounts".to_owned(), created.clone(), "CREATED".to_owned()),
            ("accounts".to_owned(), changed.clone(), "UPDATED".to_owned()),
            ("contacts".to_owned(), contact.clone(), "UPDATED".to_owned()),
            (
                "opportunities".to_owned(),
                opportunity.clone(),
                "CREATED".to_owned()
            ),
        ])
    );
    for got in receiver.got() {
        let expected = format!(
            "sha256={}",
            BASE64.encode(hmac(SIGNATURE_KEY, &[&got.body]))
        );
        assert_eq!(got.header("elements-webhook-signature"), expected);
        let body = got.json();
        assert_eq!(body["message"]["instanceId"], id);
        assert_eq!(body["message"]["elementKey"], "netsuitecrm");
        let raw = &body["message"]["raw"];
        let event_id = body["message"]["events"][0]["objectId"].as_str().unwrap();
        assert_eq!(
            raw["objects"][0]["id"], event_id,
            "the raw payload is the row"
        );
    }
    let raw_of = |wanted: &str| {
        receiver
            .got()
            .into_iter()
            .map(|r| r.json()["message"]["raw"]["objects"][0].clone())
            .find(|row| row["id"] == wanted)
            .unwrap()
    };
    assert_eq!(raw_of(&changed)["phone"], "555-0100");
    assert_eq!(raw_of(&contact)["email"], "moved@example.test");
    // Each poll asks SuiteQL for the rows changed since the last poll's start, in UTC.
    let sent = netsuite
        .requests()
        .into_iter()
        .rev()
        .find(|r| {
            r.json()
                .is_some_and(|b| b["q"].as_str().is_some_and(|q| q.contains("FROM customer")))
        })
        .unwrap();
    assert_eq!(sent.path, "/services/rest/query/v1/suiteql");
    assert_eq!(sent.header("prefer"), Some("transient"));
    let q = sent.json().unwrap()["q"].as_str().unwrap().to_owned();
    let (_, since) = q
        .split_once("WHERE lastmodifieddate >= TO_TIMESTAMP('")
        .unwrap_or_else(|| panic!("{q}"));
    let since = chrono::NaiveDateTime::parse_from_str(&since[..19], "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc();
    let age = chrono::Utc::now() - since;
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 60, "{q}");
    assert!(
        q.ends_with("', 'YYYY-MM-DD HH24:MI:SS') ORDER BY lastmodifieddate"),
        "{q}"
    );
    let status = poller(&app, id).await;
    assert_eq!(status["failures"], 0, "{status}");
    for resource in ["accounts", "contacts", "opportunities"] {
        assert!(status["since"][resource].is_string(), "{status}");
    }

    // Nothing new: later polls send nothing more.
    polls(&app, id, 3).await;
    assert_eq!(events_of(&receiver.got()).len(), 4);
}

/// Events turned on, then a change before the scheduler has even seen the instance (its
/// next look is a second away): the poll starts from when events were turned on, not
/// from when the scheduler noticed.
async fn a_change_made_before_the_first_poll_is_reported(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            poll_tick_ms: 1000,
            ..polling()
        },
    )
    .await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    let early = org.create("Contact", "003", 1);
    let events = wait_events(&receiver, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, early);
    assert_eq!(events[0].2, "CREATED");
}

async fn a_rate_limited_poll_waits_out_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    polls(&app, org.id, 1).await;
    org.sf
        .fail_next(1, reqwest::StatusCode::TOO_MANY_REQUESTS, Some(3600));
    let before = org.sf.requests().len();
    let status = poller_when(&app, org.id, |s| s["failures"] == 1).await;
    assert_eq!(status["state"], "backingOff", "{status}");
    assert!(
        status["lastError"].as_str().unwrap().contains("429"),
        "{status}"
    );
    let next =
        chrono::DateTime::parse_from_rfc3339(status["nextPollAt"].as_str().unwrap()).unwrap();
    let wait = next.signed_duration_since(chrono::Utc::now());
    assert!(
        wait > chrono::Duration::seconds(3500),
        "Retry-After is waited out: {status}"
    );
    // Meanwhile the vendor is left alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(org.sf.requests().len(), before + 1);
}

async fn an_instance_whose_refresh_is_refused_stops_polling_and_says_why(backend: Backend) {
    let app = TestApp::spawn_with(backend, polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    polls(&app, org.id, 1).await;
    // Salesforce revokes the session; its token endpoint refuses the refresh token.
    org.sf
        .set_credential(Credential::Bearer("another-session".to_owned()));
    let status = poller_when(&app, org.id, |s| s["state"] == "stopped").await;
    let reason = status["stoppedReason"].as_str().unwrap();
    assert!(reason.contains("re-authorized"), "{status}");
    let (_, instance) = app.get(&format!("/instances/{}", org.id)).await;
    assert_eq!(instance["valid"], false, "{instance}");
    let calls = org.sf.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        org.sf.requests().len(),
        calls,
        "a stopped poller calls no one"
    );
}

mod two_replicas_poll_each_instance_one_at_a_time {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::two_replicas_poll_each_instance_one_at_a_time(
            junction_testkit::db::Backend::Postgres,
        )
        .await
    }
}

/// Two Junction processes on one PostgreSQL, both polling: their claims never overlap,
/// and every change reaches the app once.
async fn two_replicas_poll_each_instance_one_at_a_time(backend: Backend) {
    let first = TestApp::spawn_with(backend, polling()).await;
    let second = first.replica().await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&first, &receiver, "Contact").await;
    polls(&first, org.id, 1).await;
    // Claims made at the same moment by both take the poller once.
    let now = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let (a, b) = tokio::join!(
        first
            .services
            .store
            .claim_pollers("replica-a", now, now + 60_000, 10),
        second
            .services
            .store
            .claim_pollers("replica-b", now, now + 60_000, 10),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "one claim wins");
    let winner = if a.is_empty() {
        "replica-b"
    } else {
        "replica-a"
    };
    let claimed = if a.is_empty() { &b[0] } else { &a[0] };
    // Hand it back as a finished poll.
    assert!(
        first
            .services
            .store
            .finish_poll(
                winner,
                claimed.instance_id,
                &junction_store::PollOutcome::Done {
                    next_run_at: 0,
                    polled_at: chrono::Utc::now().timestamp_millis(),
                    watermark: claimed.watermark.clone(),
                    forget_before: Vec::new(),
                },
                0,
            )
            .await
            .unwrap()
    );
    let mut ids = BTreeSet::new();
    for batch in 0..3u64 {
        for n in 0..40u64 {
            ids.insert(org.create("Contact", "003", batch * 100 + n));
        }
        polls(&first, org.id, 1).await;
    }
    polls(&second, org.id, 2).await;
    let events = events_of(&receiver.got());
    let reported: Vec<String> = events.iter().map(|(_, id, _, _)| id.clone()).collect();
    assert_eq!(reported.len(), 120, "each change once");
    assert_eq!(reported.into_iter().collect::<BTreeSet<_>>(), ids);
}

/// The instance's own write creates its poller: no scheduler round and no reconciliation
/// has run, yet the poller is stored and its first round polls it.
async fn an_instance_created_with_events_on_polls_with_no_reconciliation(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    let stored = stored_poller(&app, org.id)
        .await
        .expect("the instance write stored its poller");
    assert!(stored.stopped_reason.is_none());
    assert_eq!(poller(&app, org.id).await["state"], "starting");
    let created = org.create("Contact", "003", 1);
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 1, "{report:?}");
    let events = wait_events(&receiver, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, created);
}

/// `event.notification.enabled: false` through the API removes the poller in the same
/// write: later rounds call the vendor no more. Turning events on again (here through the
/// configuration entry), disabling and enabling the instance follow the same way.
async fn turning_events_off_through_the_api_stops_the_polling(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 1, "{report:?}");
    assert!(!org.sf.requests().is_empty());

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{}", org.id),
            Some(&json!({"configuration": {"event.notification.enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(stored_poller(&app, org.id).await.is_none());
    let (status, body) = app
        .get(&format!("/instances/{}/events/poller", org.id))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "not_polling");
    let calls = org.sf.requests().len();
    for _ in 0..3 {
        let report = app.services.poll_due("test-round").await.unwrap();
        assert_eq!(report.polled, 0, "{report:?}");
    }
    assert_eq!(
        org.sf.requests().len(),
        calls,
        "no call after events went off"
    );

    // On again through the configuration entry: polling starts over from that moment.
    let (_, entries) = app
        .get(&format!("/instances/{}/configuration", org.id))
        .await;
    let enabled = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "event.notification.enabled")
        .unwrap()
        .clone();
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/instances/{}/configuration/{}", org.id, enabled["id"]),
            Some(&json!({"propertyValue": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(stored_poller(&app, org.id).await.is_some());
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 1, "{report:?}");

    // A disabled instance does not poll; enabled again, it does.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/instances/{}/enabled", org.id),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert!(stored_poller(&app, org.id).await.is_none());
    let calls = org.sf.requests().len();
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 0, "{report:?}");
    assert_eq!(org.sf.requests().len(), calls);
    let (status, body) = app
        .call(Method::PUT, &format!("/instances/{}/enabled", org.id), None)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 1, "{report:?}");
}

/// A receiver answering 410 Gone turns the instance's events off, and its poller with
/// them.
async fn a_receiver_answering_410_gone_stops_the_polling(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 410).await;
    let org = org(&app, &receiver, "Contact").await;
    org.create("Contact", "003", 1);
    // The poll's own report is not read: the event can be delivered, refused with 410
    // and the poller removed before the poll records its outcome, which then finds no
    // poller to record it on.
    app.services.poll_due("test-round").await.unwrap();
    receiver.wait_for(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, instance) = app.get(&format!("/instances/{}", org.id)).await;
        if instance["configuration"]["event.notification.enabled"] == "false" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events never went off: {instance}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored_poller(&app, org.id).await.is_none());
    let calls = org.sf.requests().len();
    let report = app.services.poll_due("test-round").await.unwrap();
    assert_eq!(report.polled, 0, "{report:?}");
    assert_eq!(org.sf.requests().len(), calls);
}

async fn deleting_an_instance_removes_its_poller(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    org.create("Contact", "003", 1);
    app.services.poll_due("test-round").await.unwrap();
    assert!(stored_poller(&app, org.id).await.is_some());
    let (status, body) = app
        .call(Method::DELETE, &format!("/instances/{}", org.id), None)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert!(stored_poller(&app, org.id).await.is_none());
    let pool = sql(&app).await;
    for table in ["event_pollers", "event_poller_seen"] {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from {table} where instance_id = $1"
        )))
        .bind(org.id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

/// A round claims due poller rows and looks at no instance to find them: an instance
/// whose row is gone is not found again by a round (only the start's reconciliation
/// looks for it).
async fn a_scheduler_round_claims_poller_rows_and_scans_no_instance(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    let pool = sql(&app).await;
    sqlx::query("delete from event_pollers where instance_id = $1")
        .bind(org.id)
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..3 {
        let report = app.services.poll_due("test-round").await.unwrap();
        assert_eq!(report.polled, 0, "{report:?}");
    }
    assert!(stored_poller(&app, org.id).await.is_none());
    assert!(org.sf.requests().is_empty(), "nothing polled the vendor");
}

/// A poller row lost (or never written, by an older version), one left behind by an
/// instance that no longer polls, and one stopped although its instance is valid are all
/// repaired by the next start.
async fn the_start_reconciles_pollers_lost_or_left_behind(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let lost = org(&app, &receiver, "Contact").await;
    let left = org(&app, &receiver, "Contact").await;
    let stopped = org(&app, &receiver, "Contact").await;
    let pool = sql(&app).await;
    sqlx::query("update event_pollers set stopped_reason = 'fixed since' where instance_id = $1")
        .bind(stopped.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("delete from event_pollers where instance_id = $1")
        .bind(lost.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update instances set disabled = 1 where id = $1")
        .bind(left.id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(stored_poller(&app, lost.id).await.is_none());
    assert!(stored_poller(&app, left.id).await.is_some());

    let app = app.restart_with(polling()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stored_poller(&app, lost.id).await.is_none()
        || stored_poller(&app, left.id).await.is_some()
        || stored_poller(&app, stopped.id)
            .await
            .is_none_or(|p| p.stopped_reason.is_some())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the start did not reconcile the pollers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    polls(&app, lost.id, 1).await;
    let created = lost.create("Contact", "003", 1);
    let events = wait_events(&receiver, 1).await;
    assert_eq!(events[0].1, created, "{events:?}");
    // What the start repaired stays repaired: a second pass finds nothing to fix.
    let again = app.services.reconcile_pollers().await.unwrap();
    assert_eq!(
        again,
        junction_service::events::ReconcileReport {
            polling: 2,
            created: 0,
            removed: 0,
            resumed: 0,
        }
    );
}

/// The reconciliation decides from a read of the instance; a write since then kept the
/// poller itself, and the repair made from the older read is not applied.
async fn the_reconciliation_leaves_an_instance_written_since_its_read_alone(backend: Backend) {
    let app = TestApp::spawn_with(backend, manual_polling()).await;
    let receiver = Receiver::start(&[], 200).await;
    let org = org(&app, &receiver, "Contact").await;
    let store = &app.services.store;
    let id = junction_core::InstanceId(org.id);
    let account = store.instance_account(id).await.unwrap();
    let written = store
        .get_instance_fresh(account, id)
        .await
        .unwrap()
        .updated_at;
    let off = junction_store::PollerWrite::Off;
    assert!(
        !store
            .repair_poller(id, written - 1, &off, true, written)
            .await
            .unwrap(),
        "a decision from an older read is dropped"
    );
    assert!(stored_poller(&app, org.id).await.is_some());
    assert!(
        store
            .repair_poller(id, written, &off, true, written)
            .await
            .unwrap()
    );
    assert!(stored_poller(&app, org.id).await.is_none());
}
