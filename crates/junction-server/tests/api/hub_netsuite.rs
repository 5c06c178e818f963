//! The NetSuite CRM element's hub resources, end to end: an instance provisioned through
//! a real OAuth server, its REST web services on the NetSuite stand-in
//! (`junction_testkit::vendors::netsuite`). Lists are SuiteQL queries POSTed with
//! `Prefer: transient` and paged by `limit`/`offset` until `hasMore` is false; single
//! records come from the record service; NetSuite's refusals keep their status and words.

use crate::helpers::TestApp;
use crate::hub_client::access_token;
use crate::hub_crm::{assert_objects, assert_provider_error, enc, get, last_to, walk};
use crate::on_both_backends;
use crate::provisioning::{Provider, authorize, instance_body};
use junction_testkit::db::Backend;
use junction_testkit::peers::{Peer, PeerKind};
use junction_testkit::vendors::Credential;
use junction_testkit::vendors::netsuite::{NetSuite, NetSuiteConfig, NetSuiteServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

on_both_backends!(
    netsuite_lists_post_suiteql_with_prefer_transient_and_walk_by_offset,
    netsuite_records_queries_and_refusals_reach_the_record_service_and_suiteql,
);

const ACCOUNT_ID: &str = "tstdrv1234567";
const SUITEQL: &str = "/services/rest/query/v1/suiteql";

/// A `netsuitecrm` instance provisioned through the authorization code grant of a real
/// OAuth server, its `base.url` on `netsuite` (which then accepts its access token), with
/// `configuration` added at creation.
pub(crate) async fn netsuite_instance(
    app: &TestApp,
    netsuite: &NetSuiteServer,
    configuration: Value,
) -> Value {
    let peer = Peer::shared(PeerKind::Authlib).await;
    let provider = Provider {
        api: format!("{}/services/rest", netsuite.url()),
        ..Provider::peer(peer)
    };
    let extra = format!("&netsuite.account.id={ACCOUNT_ID}");
    let code = authorize(app, "netsuitecrm", &provider, &extra).await;
    let mut body = instance_body("netsuitecrm", &code, &provider);
    body["configuration"]["netsuite.account.id"] = json!(ACCOUNT_ID);
    for (k, v) in configuration.as_object().unwrap() {
        body["configuration"][k] = v.clone();
    }
    let (status, instance) = app.post("/instances", &body).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    let token = access_token(app, &instance).await;
    netsuite.add_credential(Credential::Bearer(token));
    instance
}

async fn netsuite_lists_post_suiteql_with_prefer_transient_and_walk_by_offset(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let netsuite = NetSuite::start(NetSuiteConfig {
        records: 25,
        ..NetSuiteConfig::default()
    })
    .await;
    let instance = netsuite_instance(&app, &netsuite, json!({})).await;
    let token = access_token(&app, &instance).await;
    for (resource, table, from) in [
        ("accounts", "customer", "FROM customer ORDER BY id"),
        ("contacts", "contact", "FROM contact ORDER BY id"),
        (
            "opportunities",
            "transaction",
            "FROM transaction WHERE type = 'Opprtnty' ORDER BY id",
        ),
    ] {
        netsuite.clear_requests();
        let first = format!("/hubs/crm/{resource}?pageSize=10");
        let (ids, pages) = walk(&app, &instance, &first, |r| {
            r["id"].as_str().unwrap().into()
        })
        .await;
        let stored: Vec<String> = netsuite
            .store()
            .all(table)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, stored, "{resource}");
        assert_eq!(pages, 3, "{resource}: 10, 10 and 5, then hasMore is false");
        let sent = netsuite.requests();
        assert_eq!(sent.len(), 3, "{resource}: one SuiteQL call a page");
        for (n, request) in sent.iter().enumerate() {
            assert_eq!(
                (request.method.as_str(), request.path.as_str()),
                ("POST", SUITEQL)
            );
            assert_eq!(request.header("prefer"), Some("transient"), "{resource}");
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {token}").as_str())
            );
            assert!(
                request
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("application/json"))
            );
            assert_eq!(request.param("limit"), Some("10"));
            assert_eq!(request.param("offset"), Some((n * 10).to_string().as_str()));
            let q = request.json().unwrap()["q"].as_str().unwrap().to_owned();
            assert!(q.starts_with("SELECT id, "), "{q}");
            assert!(q.ends_with(from), "{resource}: {q}");
        }
    }
    // Dates come whole, not in the account's date-only format.
    let page = get(&app, &instance, "/hubs/crm/accounts?pageSize=1").await;
    let first = &page.list()[0];
    let modified = first["lastmodifieddate"].as_str().unwrap();
    assert_eq!(modified.len(), "2026-11-26 21:00:00".len(), "{first}");
    assert_eq!(first["links"], json!([]));
    // `where` is Junction's, over NetSuite's rows.
    let name = netsuite.store().all("customer")[3]["companyname"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = get(
        &app,
        &instance,
        &format!(
            "/hubs/crm/accounts?where={}",
            enc(&format!("companyname = '{name}'"))
        ),
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert!(
        found
            .list()
            .iter()
            .all(|r| r["companyname"] == name.as_str())
            && !found.list().is_empty(),
        "{}",
        found.body
    );
}

async fn netsuite_records_queries_and_refusals_reach_the_record_service_and_suiteql(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let netsuite = NetSuite::start(NetSuiteConfig::default()).await;
    let instance = netsuite_instance(&app, &netsuite, json!({})).await;
    // The ping reads one customer id from the record service, under `base.url`.
    let ping = get(&app, &instance, "/hubs/crm/ping").await;
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);
    assert_eq!(ping.body["endpoint"], "netsuitecrm");
    let sent = last_to(&netsuite, "GET", "/services/rest/record/v1/customer");
    assert_eq!(sent.param("limit"), Some("1"));
    let customer = netsuite.store().all("customer")[2].clone();
    let id = customer["id"].as_str().unwrap();
    let one = get(&app, &instance, &format!("/hubs/crm/accounts/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["id"], id);
    assert_eq!(one.body["companyName"], customer["companyname"]);
    let sent = last_to(
        &netsuite,
        "GET",
        &format!("/services/rest/record/v1/customer/{id}"),
    );
    assert_eq!(sent.header("prefer"), None);
    for (resource, kind, table) in [
        ("contacts", "contact", "contact"),
        ("opportunities", "opportunity", "transaction"),
    ] {
        let id = netsuite.store().all(table)[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let one = get(&app, &instance, &format!("/hubs/crm/{resource}/{id}")).await;
        assert_eq!(one.status, StatusCode::OK, "{resource}: {}", one.body);
        assert_eq!(one.body["id"], id.as_str());
        last_to(
            &netsuite,
            "GET",
            &format!("/services/rest/record/v1/{kind}/{id}"),
        );
    }
    assert_objects(
        &app,
        &instance,
        "crm",
        &[
            ("accounts", "id", None),
            ("contacts", "id", None),
            ("opportunities", "id", Some("entity")),
        ],
    )
    .await;
    let missing = get(&app, &instance, "/hubs/crm/accounts/999999").await;
    assert_provider_error(
        &missing,
        StatusCode::NOT_FOUND,
        "Record with id 999999 of type customer was not found.",
    );

    // A statement as written, in the body, paged like any list.
    let q = format!("SELECT id, email FROM customer WHERE id = '{id}'");
    let found = get(&app, &instance, &format!("/hubs/crm/query?q={}", enc(&q))).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(
        found.body,
        json!([{"id": id, "email": customer["email"], "links": []}])
    );
    let sent = last_to(&netsuite, "POST", SUITEQL);
    assert_eq!(sent.json().unwrap(), json!({"q": q}));
    assert_eq!(sent.param("q"), None, "the statement is not in the URL");
    let refused = get(
        &app,
        &instance,
        &format!(
            "/hubs/crm/query?q={}",
            enc("SELECT nosuchcolumn FROM customer")
        ),
    )
    .await;
    assert_provider_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "Invalid search query. Unknown identifier 'nosuchcolumn'.",
    );
    let without = get(&app, &instance, "/hubs/crm/query").await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST, "{}", without.body);
    crate::helpers::assert_error(&without.body, "missing_parameter");
}
