//! The CRM hub's resources of built-in elements, end to end: Junction's hub routes
//! against the Close and HubSpot stand-ins (`junction_testkit::vendors`), which check
//! the credential and answer in the vendors' documented shapes. Each test reads what the
//! stand-in received, so a wrong mapping in `elements/closeio.yaml` or
//! `elements/hubspot.yaml` fails here. The helpers are shared with `hub_helpdesk.rs`.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use base64::Engine;
use junction_testkit::db::Backend;
use junction_testkit::vendors::closeio::{Close, CloseConfig, CloseServer};
use junction_testkit::vendors::hubspot::{HubSpot, HubSpotConfig, HubSpotServer};
use junction_testkit::vendors::{RecordedRequest, VendorServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    close_lists_send_skip_limit_and_the_api_key_and_answer_plain_arrays,
    close_walks_a_thousand_leads_contacts_and_opportunities_without_gap_or_repeat,
    close_records_are_created_read_updated_and_deleted,
    close_errors_keep_their_status_and_objects_describe_the_fields,
    hubspot_lists_send_limit_and_the_bearer_token_and_answer_plain_arrays,
    hubspot_walks_a_thousand_contacts_companies_and_deals_by_after,
    hubspot_records_are_created_read_updated_and_deleted_as_properties,
    hubspot_errors_keep_their_status_and_objects_describe_the_fields,
    close_where_is_filtered_by_junction_and_fields_projected,
    hubspot_where_is_filtered_by_junction_over_the_properties_asked_for,
);

/// A hub call's answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a list, failing the test when it is not one.
    pub fn list(&self) -> &Vec<Value> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("not a list ({}): {}", self.status, self.body))
    }
}

/// One hub call with the instance's Element token.
pub(crate) async fn hub(
    app: &TestApp,
    instance: &Value,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let token = instance["token"].as_str().unwrap();
    let mut request = app
        .http
        .request(method, app.url(path))
        .header("Authorization", format!("Element {token}"));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(app: &TestApp, instance: &Value, path: &str) -> Answer {
    hub(app, instance, Method::GET, path, None).await
}

/// Follows `Elements-Next-Page-Token` from `first` until a page comes without one, and
/// returns each record's `key` in order and the number of pages.
pub(crate) async fn walk(
    app: &TestApp,
    instance: &Value,
    first: &str,
    key: impl Fn(&Value) -> String,
) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let page = get(app, instance, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let records = page.list();
        assert_eq!(
            page.header("elements-returned-count"),
            Some(records.len().to_string().as_str()),
            "{path}"
        );
        seen.extend(records.iter().map(&key));
        pages += 1;
        assert!(pages <= 100, "{first} does not end");
        match page.header("elements-next-page-token") {
            Some(token) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}nextPage={token}");
            }
            None => return (seen, pages),
        }
    }
}

/// The text of a JSON string or number, as record keys compare.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value` without null members, at every depth: what the hub answers by default.
pub(crate) fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

pub(crate) fn has_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().any(has_null),
        Value::Array(items) => items.iter().any(has_null),
        _ => false,
    }
}

/// The last request the stand-in received on `path`.
pub(crate) fn last_to<V>(vendor: &VendorServer<V>, method: &str, path: &str) -> RecordedRequest
where
    V: junction_testkit::vendors::Vendor,
{
    vendor
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == method && r.path == path)
        .unwrap_or_else(|| panic!("no {method} reached {path}"))
}

/// A vendor's refusal as the hub answers it: the vendor's status and words.
pub(crate) fn assert_provider_error(answer: &Answer, status: StatusCode, message: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_error(&answer.body, "provider_error");
    assert_eq!(answer.body["providerMessage"], message, "{}", answer.body);
    assert_eq!(answer.header("elements-error"), Some("true"));
    assert!(answer.header("elements-element-instance-id").is_some());
}

/// `GET /objects` lists `names`; each one's metadata has `id_field` as its read-only
/// primary key and `required`, if any, among the fields the vendor requires.
pub(crate) async fn assert_objects(
    app: &TestApp,
    instance: &Value,
    hub_name: &str,
    objects: &[(&str, &str, Option<&str>)],
) {
    let listed = get(app, instance, &format!("/hubs/{hub_name}/objects")).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let names: Vec<&str> = objects.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(listed.body, json!(names));
    for (name, id_field, required) in objects {
        let metadata = get(app, instance, &format!("/objects/{name}/metadata")).await;
        assert_eq!(metadata.status, StatusCode::OK, "{name}: {}", metadata.body);
        let fields = metadata.body["fields"].as_array().unwrap();
        let field = |path: &str| {
            fields
                .iter()
                .find(|f| f["vendorPath"] == path)
                .unwrap_or_else(|| panic!("{name} has no field {path}: {}", metadata.body))
        };
        assert_eq!(field(id_field)["primaryKey"], true, "{name}");
        assert_eq!(field(id_field)["vendorReadOnly"], true, "{name}");
        if let Some(required) = required {
            assert_eq!(field(required)["vendorRequired"], true, "{name}");
        }
        assert!(fields.iter().all(|f| f["type"].is_string()), "{name}");
    }
    let missing = get(app, instance, "/objects/tickets/metadata").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

// ---- Close --------------------------------------------------------------------------

/// Close's `query` search, `_fields` and everything else the caller adds pass through.
const CLOSE_KINDS: [(&str, &str); 3] = [
    ("accounts", "lead"),
    ("contacts", "contact"),
    ("opportunities", "opportunity"),
];

async fn close(app: &TestApp, records: usize) -> (CloseServer, Value) {
    let config = CloseConfig {
        records,
        ..CloseConfig::default()
    };
    let close = Close::start(config.clone()).await;
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "closeio"},
                "name": "Close",
                "configuration": {
                    "closeio.api.key": config.api_key,
                    "base.url": format!("{}/api/v1", close.url()),
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    (close, instance)
}

fn close_auth() -> String {
    let key = CloseConfig::default().api_key;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
    format!("Basic {encoded}")
}

async fn close_lists_send_skip_limit_and_the_api_key_and_answer_plain_arrays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (close, instance) = close(&app, 1050).await;
    for (resource, kind) in CLOSE_KINDS {
        let page = get(
            &app,
            &instance,
            &format!("/hubs/crm/{resource}?pageSize=12"),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{resource}: {}", page.body);
        let sent = last_to(&close, "GET", &format!("/api/v1/{kind}/"));
        assert_eq!(sent.param("_skip"), Some("0"), "{resource}");
        assert_eq!(sent.param("_limit"), Some("12"), "{resource}");
        assert_eq!(sent.header("authorization"), Some(close_auth().as_str()));
        assert_eq!(sent.header("accept"), Some("application/json"));
        assert!(sent.body.is_empty());
        // Close's records as a plain array, nulls stripped.
        let stored: Vec<Value> = close.store().all(kind)[..12]
            .iter()
            .map(|r| (**r).clone())
            .collect();
        assert!(
            stored.iter().any(has_null),
            "{resource}: the page holds nulls"
        );
        let expected: Vec<Value> = stored.iter().map(without_nulls).collect();
        assert_eq!(page.list(), &expected, "{resource}");
        assert_eq!(page.header("elements-returned-count"), Some("12"));
        assert!(page.header("elements-next-page-token").is_some());
    }
    // Close's own parameters, such as its search `query`, reach it as written.
    let found = get(
        &app,
        &instance,
        "/hubs/crm/accounts?query=status_label%3AQualified&pageSize=100",
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let sent = last_to(&close, "GET", "/api/v1/lead/");
    assert_eq!(sent.param("query"), Some("status_label:Qualified"));
    assert!(!found.list().is_empty());
    assert!(
        found
            .list()
            .iter()
            .all(|lead| lead["status_label"] == "Qualified")
    );
}

async fn close_walks_a_thousand_leads_contacts_and_opportunities_without_gap_or_repeat(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let (close, instance) = close(&app, 1050).await;
    for (resource, kind) in CLOSE_KINDS {
        let expected: Vec<String> = close
            .store()
            .all(kind)
            .iter()
            .map(|r| text(&r["id"]))
            .collect();
        assert_eq!(expected.len(), 1050);
        close.clear_requests();
        let (seen, pages) = walk(
            &app,
            &instance,
            &format!("/hubs/crm/{resource}?pageSize=100"),
            |r| text(&r["id"]),
        )
        .await;
        assert_eq!(seen, expected, "{resource}: a gap or a repeat");
        assert_eq!(pages, 11, "{resource}");
        // Each step is one Close call, `_skip` advancing by what Close returned; the last
        // answered `has_more: false`, so no empty page is asked for.
        let skips: Vec<String> = close
            .requests()
            .iter()
            .map(|r| r.param("_skip").unwrap().to_owned())
            .collect();
        let want: Vec<String> = (0..11).map(|i| (i * 100).to_string()).collect();
        assert_eq!(skips, want, "{resource}");
    }
    // Above Close's maximum of 100, the page size is lowered to it.
    let capped = get(&app, &instance, "/hubs/crm/contacts?pageSize=500").await;
    assert_eq!(capped.list().len(), 100);
    assert_eq!(
        last_to(&close, "GET", "/api/v1/contact/").param("_limit"),
        Some("100")
    );
    // Close addresses pages by offset, so `page` works too.
    let third = get(
        &app,
        &instance,
        "/hubs/crm/opportunities?page=3&pageSize=50",
    )
    .await;
    assert_eq!(
        last_to(&close, "GET", "/api/v1/opportunity/").param("_skip"),
        Some("100")
    );
    assert_eq!(
        third.list()[0]["id"],
        close.store().all("opportunity")[100]["id"]
    );
}

async fn close_records_are_created_read_updated_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (close, instance) = close(&app, 20).await;
    let lead = text(&close.store().all("lead")[0]["id"]);
    for (resource, kind, create, change) in [
        (
            "accounts",
            "lead",
            json!({"name": "Churros Inc", "url": "https://churros.example.test"}),
            json!({"description": "Sells churros"}),
        ),
        (
            "contacts",
            "contact",
            json!({"lead_id": lead, "name": "Ada Churro", "emails": [{"type": "office", "email": "ada@churros.example.test"}]}),
            json!({"title": "CTO"}),
        ),
        (
            "opportunities",
            "opportunity",
            json!({"lead_id": lead, "value": 50000, "value_currency": "USD", "note": null}),
            json!({"confidence": 80}),
        ),
    ] {
        let created = hub(
            &app,
            &instance,
            Method::POST,
            &format!("/hubs/crm/{resource}"),
            Some(&create),
        )
        .await;
        assert_eq!(
            created.status,
            StatusCode::OK,
            "{resource}: {}",
            created.body
        );
        let sent = last_to(&close, "POST", &format!("/api/v1/{kind}/"));
        assert_eq!(sent.json().unwrap(), create, "{resource}: the body as sent");
        assert_eq!(sent.header("content-type"), Some("application/json"));
        let id = text(&created.body["id"]);
        assert!(id.starts_with(&kind[..4]), "{resource}: {}", created.body);
        // The null the caller sent is stored by Close and stripped from the answer.
        assert!(created.body.get("note").is_none(), "{}", created.body);

        let one = get(&app, &instance, &format!("/hubs/crm/{resource}/{id}")).await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.body);
        assert_eq!(one.body["id"], id.as_str());
        last_to(&close, "GET", &format!("/api/v1/{kind}/{id}/"));

        let updated = hub(
            &app,
            &instance,
            Method::PATCH,
            &format!("/hubs/crm/{resource}/{id}"),
            Some(&change),
        )
        .await;
        assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
        let sent = last_to(&close, "PUT", &format!("/api/v1/{kind}/{id}/"));
        assert_eq!(sent.json().unwrap(), change);
        let (field, value) = change.as_object().unwrap().iter().next().unwrap();
        assert_eq!(&updated.body[field], value, "{}", updated.body);
        let reread = get(&app, &instance, &format!("/hubs/crm/{resource}/{id}")).await;
        assert_eq!(&reread.body[field], value);

        let deleted = hub(
            &app,
            &instance,
            Method::DELETE,
            &format!("/hubs/crm/{resource}/{id}"),
            None,
        )
        .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        last_to(&close, "DELETE", &format!("/api/v1/{kind}/{id}/"));
        assert!(close.store().get(kind, &id).is_none());
        let gone = get(&app, &instance, &format!("/hubs/crm/{resource}/{id}")).await;
        assert_provider_error(
            &gone,
            StatusCode::NOT_FOUND,
            "Empty query: The object you are looking for does not exist.",
        );
    }
    // A create without its body is refused before anything reaches Close.
    let before = close.requests().len();
    let missing = hub(&app, &instance, Method::POST, "/hubs/crm/accounts", None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert!(assert_error(&missing.body, "missing_parameter").contains("'body'"));
    assert_eq!(close.requests().len(), before);
}

async fn close_errors_keep_their_status_and_objects_describe_the_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (close, instance) = close(&app, 20).await;
    let missing = get(&app, &instance, "/hubs/crm/accounts/lead_nope").await;
    assert_provider_error(
        &missing,
        StatusCode::NOT_FOUND,
        "Empty query: The object you are looking for does not exist.",
    );
    // Close's own answer to a broken search.
    let broken = get(&app, &instance, "/hubs/crm/accounts?query=name%3A%22open").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    assert_error(&broken.body, "provider_error");
    assert!(
        broken.body["providerMessage"]
            .as_str()
            .unwrap()
            .starts_with("Unterminated quote"),
        "{}",
        broken.body
    );
    // A key Close no longer accepts: its 401, passed on.
    close.set_credential(junction_testkit::vendors::Credential::Basic {
        user: "another-key".into(),
        password: String::new(),
    });
    let refused = get(&app, &instance, "/hubs/crm/contacts").await;
    assert_provider_error(
        &refused,
        StatusCode::UNAUTHORIZED,
        "The API key you provided is invalid.",
    );
    assert_objects(
        &app,
        &instance,
        "crm",
        &[
            ("accounts", "id", Some("name")),
            ("contacts", "id", Some("lead_id")),
            ("opportunities", "id", Some("lead_id")),
        ],
    )
    .await;
}

// ---- HubSpot ------------------------------------------------------------------------

const HUBSPOT_TOKEN: &str = "hubspot-access-token-1";
const HUBSPOT_KINDS: [&str; 3] = ["contacts", "companies", "deals"];

/// A HubSpot instance holding tokens the caller brought, pointed at the stand-in.
async fn hubspot(app: &TestApp) -> (HubSpotServer, Value) {
    let hubspot = HubSpot::start(HubSpotConfig {
        token: HUBSPOT_TOKEN.into(),
        ..HubSpotConfig::default()
    })
    .await;
    let (status, instance) = app
        .post(
            "/instances",
            &json!({
                "element": {"key": "hubspot"},
                "name": "HubSpot",
                "externalAuthentication": "initial",
                "configuration": {
                    "oauth.api.key": "client-id",
                    "oauth.api.secret": "client-secret",
                    "oauth.callback.url": "https://app.example.test/cb",
                    "oauth.user.token": HUBSPOT_TOKEN,
                    "base.url": hubspot.url(),
                },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    (hubspot, instance)
}

async fn hubspot_lists_send_limit_and_the_bearer_token_and_answer_plain_arrays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (hubspot, instance) = hubspot(&app).await;
    for kind in HUBSPOT_KINDS {
        let page = get(&app, &instance, &format!("/hubs/crm/{kind}?pageSize=10")).await;
        assert_eq!(page.status, StatusCode::OK, "{kind}: {}", page.body);
        let sent = last_to(&hubspot, "GET", &format!("/crm/v3/objects/{kind}"));
        assert_eq!(sent.param("limit"), Some("10"), "{kind}");
        assert_eq!(sent.param("after"), None, "{kind}");
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {HUBSPOT_TOKEN}").as_str())
        );
        let records = page.list();
        assert_eq!(records.len(), 10);
        let stored = hubspot.store().all(kind);
        for (got, want) in records.iter().zip(stored.iter()) {
            assert_eq!(got["id"], want["id"], "{kind}");
            assert_eq!(got["createdAt"], want["createdAt"]);
            assert_eq!(got["archived"], false);
            for (name, value) in got["properties"].as_object().unwrap() {
                assert_eq!(value, &want["properties"][name], "{kind}.{name}");
            }
        }
        assert!(page.header("elements-next-page-token").is_some());
    }
    // HubSpot's null properties are stripped: contact 1009 has no first name.
    let contacts = get(&app, &instance, "/hubs/crm/contacts?pageSize=10").await;
    let ninth = &contacts.list()[8];
    assert_eq!(ninth["id"], "1009");
    assert!(hubspot.store().get("contacts", "1009").unwrap()["properties"]["firstname"].is_null());
    assert!(ninth["properties"].get("firstname").is_none(), "{ninth}");
    assert!(ninth["properties"]["lastname"].as_str().is_some());
    // HubSpot's own parameters pass through.
    let some = get(
        &app,
        &instance,
        "/hubs/crm/companies?properties=name,city&pageSize=3",
    )
    .await;
    assert_eq!(some.status, StatusCode::OK, "{}", some.body);
    assert_eq!(
        last_to(&hubspot, "GET", "/crm/v3/objects/companies").param("properties"),
        Some("name,city")
    );
    let keys: Vec<&String> = some.list()[0]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, vec!["city", "name"], "{}", some.body);
}

async fn hubspot_walks_a_thousand_contacts_companies_and_deals_by_after(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (hubspot, instance) = hubspot(&app).await;
    for kind in HUBSPOT_KINDS {
        let expected: Vec<String> = hubspot
            .store()
            .all(kind)
            .iter()
            .map(|r| text(&r["id"]))
            .collect();
        assert_eq!(expected.len(), 1050);
        hubspot.clear_requests();
        let (seen, pages) = walk(
            &app,
            &instance,
            &format!("/hubs/crm/{kind}?pageSize=100"),
            |r| text(&r["id"]),
        )
        .await;
        assert_eq!(seen, expected, "{kind}: a gap or a repeat");
        assert_eq!(pages, 11, "{kind}");
        // Each call continues after the last id of the one before, as HubSpot said.
        let afters: Vec<Option<String>> = hubspot
            .requests()
            .iter()
            .map(|r| r.param("after").map(str::to_owned))
            .collect();
        assert_eq!(afters[0], None);
        for (i, after) in afters.iter().enumerate().skip(1) {
            assert_eq!(
                after.as_deref(),
                Some(expected[i * 100 - 1].as_str()),
                "{kind}"
            );
        }
    }
    assert_eq!(hubspot.vendor().rate_limited(), 0);
    // HubSpot pages by cursor: `page` is refused, saying to use nextPage.
    let numbered = get(&app, &instance, "/hubs/crm/deals?page=2").await;
    assert_eq!(numbered.status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&numbered.body, "invalid_parameter").contains("nextPage"));
}

async fn hubspot_records_are_created_read_updated_and_deleted_as_properties(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (hubspot, instance) = hubspot(&app).await;
    for (kind, create, change) in [
        (
            "contacts",
            json!({"email": "ada@churros.example.test", "firstname": "Ada"}),
            json!({"lifecyclestage": "customer"}),
        ),
        (
            "companies",
            json!({"name": "Churros Inc", "domain": "churros.example.test"}),
            json!({"city": "Lisbon"}),
        ),
        (
            "deals",
            json!({"dealname": "Churros for all", "amount": "1200", "pipeline": "default"}),
            json!({"dealstage": "closedwon"}),
        ),
    ] {
        let created = hub(
            &app,
            &instance,
            Method::POST,
            &format!("/hubs/crm/{kind}"),
            Some(&create),
        )
        .await;
        assert_eq!(created.status, StatusCode::OK, "{kind}: {}", created.body);
        let sent = last_to(&hubspot, "POST", &format!("/crm/v3/objects/{kind}"));
        assert_eq!(sent.json().unwrap(), json!({"properties": create}));
        let id = text(&created.body["id"]);
        for (name, value) in create.as_object().unwrap() {
            assert_eq!(&created.body["properties"][name], value, "{kind}");
        }

        let updated = hub(
            &app,
            &instance,
            Method::PATCH,
            &format!("/hubs/crm/{kind}/{id}"),
            Some(&change),
        )
        .await;
        assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
        let sent = last_to(&hubspot, "PATCH", &format!("/crm/v3/objects/{kind}/{id}"));
        assert_eq!(sent.json().unwrap(), json!({"properties": change}));

        let (name, value) = change.as_object().unwrap().iter().next().unwrap();
        let one = get(
            &app,
            &instance,
            &format!("/hubs/crm/{kind}/{id}?properties={name}"),
        )
        .await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.body);
        assert_eq!(&one.body["properties"][name], value, "{}", one.body);

        let deleted = hub(
            &app,
            &instance,
            Method::DELETE,
            &format!("/hubs/crm/{kind}/{id}"),
            None,
        )
        .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        last_to(&hubspot, "DELETE", &format!("/crm/v3/objects/{kind}/{id}"));
        let gone = get(&app, &instance, &format!("/hubs/crm/{kind}/{id}")).await;
        assert_provider_error(
            &gone,
            StatusCode::NOT_FOUND,
            &format!("resource not found: no {kind} with id {id}"),
        );
    }
}

async fn hubspot_errors_keep_their_status_and_objects_describe_the_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_hubspot, instance) = hubspot(&app).await;
    // HubSpot refuses a property that is not a scalar.
    let refused = hub(
        &app,
        &instance,
        Method::POST,
        "/hubs/crm/contacts",
        Some(&json!({"email": {"not": "a scalar"}})),
    )
    .await;
    assert_provider_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "Property values were not valid: property email must be a scalar",
    );
    assert_objects(
        &app,
        &instance,
        "crm",
        &[
            ("contacts", "id", None),
            ("companies", "id", None),
            ("deals", "id", Some("properties.dealname")),
        ],
    )
    .await;
}

/// `text` percent-encoded for a query string.
pub(crate) fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn close_where_is_filtered_by_junction_and_fields_projected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (close, instance) = close(&app, 1050).await;
    let expected: Vec<String> = close
        .store()
        .all("lead")
        .iter()
        .filter(|l| l["status_label"] == "Qualified" && !l["description"].is_null())
        .map(|l| text(&l["id"]))
        .collect();
    assert!(expected.len() > 100, "{}", expected.len());
    close.clear_requests();
    let (seen, _) = walk(
        &app,
        &instance,
        &format!(
            "/hubs/crm/accounts?pageSize=100&where={}",
            enc("status_label = 'Qualified' AND description IS NOT NULL")
        ),
        |r| text(&r["id"]),
    )
    .await;
    assert_eq!(seen, expected, "a gap or a repeat among the matches");
    // Close has no CEQL: it was asked for its plain pages, to the last one.
    let requests = close.requests();
    assert!(requests.iter().all(|r| r.param("query").is_none()));
    assert!(
        requests
            .iter()
            .any(|r| r.param("_skip").unwrap().parse::<usize>().unwrap() >= 1000)
    );
    let projected = get(
        &app,
        &instance,
        "/hubs/crm/contacts?pageSize=3&fields=id,name",
    )
    .await;
    assert_eq!(projected.status, StatusCode::OK, "{}", projected.body);
    for contact in projected.list() {
        let mut keys: Vec<&String> = contact.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["id", "name"], "{contact}");
    }
    // Close's lists are paged, so Junction cannot sort them; nothing is sent.
    let before = close.requests().len();
    let sorted = get(
        &app,
        &instance,
        "/hubs/crm/opportunities?orderBy=value%20desc",
    )
    .await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST, "{}", sorted.body);
    let message = assert_error(&sorted.body, "unsupported_query");
    assert!(
        message.contains("orderBy") && message.contains("closeio"),
        "{message}"
    );
    let broken = get(
        &app,
        &instance,
        &format!("/hubs/crm/accounts?where={}", enc("name = ")),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);
    assert_error(&broken.body, "invalid_query");
    assert_eq!(close.requests().len(), before);
}

async fn hubspot_where_is_filtered_by_junction_over_the_properties_asked_for(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (hubspot, instance) = hubspot(&app).await;
    let expected: Vec<String> = hubspot
        .store()
        .all("contacts")
        .iter()
        .filter(|c| {
            c["properties"]["lifecyclestage"] == "customer" && !c["properties"]["email"].is_null()
        })
        .map(|c| text(&c["id"]))
        .collect();
    assert!(expected.len() > 100, "{}", expected.len());
    hubspot.clear_requests();
    let (seen, _) = walk(
        &app,
        &instance,
        &format!(
            "/hubs/crm/contacts?pageSize=100&properties=email,lifecyclestage&where={}",
            enc("properties.lifecyclestage = 'customer' AND properties.email IS NOT NULL")
        ),
        |r| text(&r["id"]),
    )
    .await;
    assert_eq!(seen, expected, "a gap or a repeat among the matches");
    let requests = hubspot.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.param("properties") == Some("email,lifecyclestage"))
    );
    // HubSpot filters only through its search body, so nothing of the where is sent.
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.param("where").is_none())
    );
    let before = hubspot.requests().len();
    let sorted = get(&app, &instance, "/hubs/crm/deals?orderBy=properties.amount").await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST, "{}", sorted.body);
    assert!(assert_error(&sorted.body, "unsupported_query").contains("orderBy"));
    assert_eq!(hubspot.requests().len(), before);
}
