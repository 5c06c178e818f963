//! The Salesforce clouds' hub resources (`sfdc`, `sfdcservicecloud`, `sfdcdocuments`,
//! `sfdcmarketingcloud`), end to end: an instance provisioned through Salesforce's code
//! exchange, whose `instance_url` is the Salesforce stand-in, called through Junction.
//! The stand-in parses the SOQL it receives, checks the bearer token and every field
//! written, and records each request, so a wrong mapping fails here.

use crate::helpers::{TestApp, assert_error};
use crate::on_both_backends;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use junction_testkit::db::Backend;
use junction_testkit::vendors::RecordedRequest;
use junction_testkit::vendors::salesforce::{
    Salesforce, SalesforceConfig, SalesforceServer, USER_ID, record_id,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

on_both_backends!(
    sfdc_lists_send_soql_and_walk_every_record_once,
    a_page_size_below_salesforces_batch_is_raised_so_no_locator_is_read_twice,
    sfdc_records_are_created_read_updated_and_deleted,
    sfdc_related_lists_objects_soql_and_the_current_user,
    sfdc_vendor_errors_keep_salesforce_status_and_message,
    service_cloud_serves_contacts_incidents_and_agents,
    marketing_cloud_serves_contacts_and_campaigns,
    documents_upload_download_describe_list_and_delete_files,
    declared_objects_describe_the_other_clouds,
    salesforce_lists_send_where_as_soql_and_return_only_matching_records,
    what_soql_cannot_say_is_refused_and_order_and_fields_are_served,
);

const V: &str = "/services/data/v59.0";
pub(crate) const CLIENT_ID: &str = "3MVG9-junction-connected-app";
pub(crate) const CLIENT_SECRET: &str = "connected-app-secret-0123";
pub(crate) const CALLBACK: &str = "https://app.example/salesforce/callback";
pub(crate) const CODE: &str = "aPrxsf-authorization-code";

/// Salesforce's token endpoint (`/services/oauth2/token`, web server flow): it checks
/// the code exchange and answers with the org's `instance_url`, here the stand-in.
pub(crate) struct Login {
    pub(crate) url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Login {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct LoginState {
    instance_url: String,
    token: String,
}

async fn token_endpoint(
    State(state): State<Arc<LoginState>>,
    form: axum::extract::Form<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let get = |name: &str| {
        form.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let fine = get("grant_type") == Some("authorization_code")
        && get("code") == Some(CODE)
        && get("client_id") == Some(CLIENT_ID)
        && get("client_secret") == Some(CLIENT_SECRET)
        && get("redirect_uri") == Some(CALLBACK);
    if !fine {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_grant", "error_description": "authentication failure"}),
            ),
        )
            .into_response();
    }
    axum::Json(json!({
        "access_token": state.token,
        "refresh_token": "5Aep861-refresh",
        "signature": "c2lnbmF0dXJl",
        "scope": "refresh_token full",
        "instance_url": state.instance_url,
        "id": format!("https://login.salesforce.com/id/00DDn0000000001AAA/{USER_ID}"),
        "token_type": "Bearer",
        "issued_at": "1764180000000",
    }))
    .into_response()
}

impl Login {
    pub(crate) async fn start(sf: &SalesforceServer, token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/oauth2/token",
            listener.local_addr().unwrap()
        );
        let state = Arc::new(LoginState {
            instance_url: sf.url(),
            token: token.to_owned(),
        });
        let app = Router::new()
            .route("/services/oauth2/token", post(token_endpoint))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, task }
    }
}

/// The stand-in (with `config`), its token endpoint, and a provisioned instance of
/// `element` on it.
struct Org {
    sf: SalesforceServer,
    _login: Login,
    instance: Value,
    token: String,
}

impl Org {
    async fn start(app: &TestApp, element: &str, config: SalesforceConfig) -> Self {
        let token = config.token.clone();
        let sf = Salesforce::start(config).await;
        let login = Login::start(&sf, &token).await;
        let (status, instance) = app
            .post(
                "/instances",
                &json!({
                    "element": {"key": element},
                    "providerData": {"code": CODE},
                    "name": format!("{element} org"),
                    "configuration": {
                        "oauth.api.key": CLIENT_ID,
                        "oauth.api.secret": CLIENT_SECRET,
                        "oauth.callback.url": CALLBACK,
                        "oauth.token.url": login.url,
                    },
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{element}: {instance}");
        assert_eq!(instance["configuration"]["base.url"], sf.url());
        Self {
            sf,
            _login: login,
            instance,
            token,
        }
    }

    /// The last request the stand-in received for `path`.
    fn last(&self, method: &str, path: &str) -> RecordedRequest {
        self.sf
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("nothing reached {method} {path}"))
    }

    fn assert_bearer(&self, request: &RecordedRequest) {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {}", self.token).as_str()),
            "{}",
            request.path
        );
    }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn list(&self) -> &Vec<Value> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("not a plain list: {}", self.body))
    }
}

async fn call(
    app: &TestApp,
    org: &Org,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = app.http.request(method, app.url(path)).header(
        "Authorization",
        format!("Element {}", org.instance["token"].as_str().unwrap()),
    );
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

async fn get(app: &TestApp, org: &Org, path: &str) -> Answer {
    call(app, org, Method::GET, path, None).await
}

/// Follows `Elements-Next-Page-Token` from `first` to the end; the ids in order, and
/// how many pages it took.
async fn walk(app: &TestApp, org: &Org, first: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let page = get(app, org, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let list = page.list();
        assert_eq!(
            page.header("elements-returned-count"),
            Some(list.len().to_string().as_str()),
            "{path}"
        );
        ids.extend(list.iter().map(|r| r["Id"].as_str().unwrap().to_owned()));
        pages += 1;
        assert!(pages <= 50, "{first} does not end");
        match page.header("elements-next-page-token") {
            Some(token) => {
                let sep = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{sep}nextPage={token}");
            }
            None => return (ids, pages),
        }
    }
}

/// The ids the stand-in holds for `object`, in its order.
fn stored_ids(org: &Org, object: &str) -> Vec<String> {
    org.sf
        .store()
        .all(object)
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect()
}

/// Walks `hub_path` at 500 a page and checks it returns every stored record of `object`
/// once, in order, and that the walk's calls were Salesforce query calls.
async fn assert_walk(app: &TestApp, org: &Org, hub_path: &str, object: &str, soql: &str) {
    let expected = stored_ids(org, object);
    assert!(expected.len() >= 1000, "{object}: seed at least 1,000");
    org.sf.clear_requests();
    let (ids, pages) = walk(app, org, &format!("{hub_path}?pageSize=500")).await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{hub_path}: a record came twice");
    assert_eq!(
        ids, expected,
        "{hub_path}: a gap, a repeat or another order"
    );
    assert_eq!(pages, expected.len().div_ceil(500), "{hub_path}");
    let requests = org.sf.requests();
    assert_eq!(requests.len(), pages, "{hub_path}: one vendor call a page");
    let first = &requests[0];
    assert_eq!(first.path, format!("{V}/query"));
    assert_eq!(first.param("q"), Some(soql), "{hub_path}");
    assert_eq!(
        first.header("sforce-query-options"),
        Some("batchSize=500"),
        "{hub_path}"
    );
    org.assert_bearer(first);
    // The next batches are Salesforce's own nextRecordsUrl, followed as given.
    for next in &requests[1..] {
        assert!(
            next.path.starts_with(&format!("{V}/query/01g")),
            "{hub_path}: {}",
            next.path
        );
        assert!(next.query.is_empty(), "{:?}", next.query);
        org.assert_bearer(next);
    }
}

fn standard(object: &str) -> String {
    format!("SELECT FIELDS(STANDARD) FROM {object}")
}

fn config_with(small: usize) -> SalesforceConfig {
    SalesforceConfig {
        small,
        ..SalesforceConfig::default()
    }
}

async fn sfdc_lists_send_soql_and_walk_every_record_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    for (path, object) in [
        ("/hubs/crm/accounts", "Account"),
        ("/hubs/crm/contacts", "Contact"),
        ("/hubs/crm/leads", "Lead"),
        ("/hubs/crm/opportunities", "Opportunity"),
    ] {
        assert_walk(&app, &org, path, object, &standard(object)).await;
    }
    // The default page is Salesforce's smallest batch; records come back as a plain
    // list with Salesforce's field names, and without their nulls.
    let page = get(&app, &org, "/accounts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.list().len(), 200);
    assert!(page.header("elements-next-page-token").is_some());
    let request = org.last("GET", &format!("{V}/query"));
    assert_eq!(
        request.header("sforce-query-options"),
        Some("batchSize=200")
    );
    let first = &page.list()[0];
    assert_eq!(first["Id"], record_id("001", 1));
    assert_eq!(first["attributes"]["type"], "Account");
    let seeded = org.sf.store().all("Account");
    let with_null = seeded
        .iter()
        .take(200)
        .position(|r| r["Industry"].is_null())
        .expect("the seed has an account without an industry");
    assert!(
        page.list()[with_null].get("Industry").is_none(),
        "{}",
        page.list()[with_null]
    );
    // A page size above Salesforce's largest batch is lowered to it.
    let capped = get(&app, &org, "/accounts?pageSize=5000").await;
    assert_eq!(capped.list().len(), 1200);
    let request = org.last("GET", &format!("{V}/query"));
    assert_eq!(
        request.header("sforce-query-options"),
        Some("batchSize=2000")
    );
}

async fn a_page_size_below_salesforces_batch_is_raised_so_no_locator_is_read_twice(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    org.sf.clear_requests();
    let (ids, pages) = walk(&app, &org, "/hubs/crm/contacts?pageSize=50").await;
    assert_eq!(ids, stored_ids(&org, "Contact"));
    // Salesforce answers at least 200 a batch: each is one hub page, read once.
    assert_eq!(pages, 1200 / 200);
    let requests = org.sf.requests();
    assert_eq!(requests.len(), pages);
    assert_eq!(
        requests[0].header("sforce-query-options"),
        Some("batchSize=200")
    );
    let locators: HashSet<&str> = requests[1..].iter().map(|r| r.path.as_str()).collect();
    assert_eq!(locators.len(), pages - 1, "a query locator was used twice");
}

async fn sfdc_records_are_created_read_updated_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    for (path, object, create, change) in [
        (
            "/hubs/crm/accounts",
            "Account",
            json!({"Name": "Junction Test Co", "NumberOfEmployees": 12, "IsPartner": true}),
            json!({"Phone": "+1 555 0100"}),
        ),
        (
            "/hubs/crm/contacts",
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Birthdate": "1815-12-10"}),
            json!({"Email": "ada@example.com"}),
        ),
        (
            "/hubs/crm/leads",
            "Lead",
            json!({"LastName": "Hopper", "Company": "Navy", "Status": "Open - Not Contacted"}),
            json!({"Status": "Working - Contacted"}),
        ),
        (
            "/hubs/crm/opportunities",
            "Opportunity",
            json!({"Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": 5000}),
            json!({"StageName": "Negotiation"}),
        ),
    ] {
        let created = call(&app, &org, Method::POST, path, Some(&create)).await;
        assert_eq!(created.status, StatusCode::OK, "{path}: {}", created.body);
        assert_eq!(created.body["success"], true, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let sent = org.last("POST", &format!("{V}/sobjects/{object}"));
        assert_eq!(sent.json(), Some(create.clone()), "{path}");
        assert_eq!(sent.header("content-type"), Some("application/json"));
        org.assert_bearer(&sent);

        let read = get(&app, &org, &format!("{path}/{id}")).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body["Id"], id);
        for (k, v) in create.as_object().unwrap() {
            assert_eq!(&read.body[k], v, "{path}: {k}");
        }
        assert!(
            read.body
                .as_object()
                .unwrap()
                .values()
                .all(|v| !v.is_null()),
            "nulls are stripped: {}",
            read.body
        );

        let updated = call(
            &app,
            &org,
            Method::PATCH,
            &format!("{path}/{id}"),
            Some(&change),
        )
        .await;
        assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
        let sent = org.last("PATCH", &format!("{V}/sobjects/{object}/{id}"));
        assert_eq!(sent.json(), Some(change.clone()));
        let read = get(&app, &org, &format!("{path}/{id}")).await;
        for (k, v) in change.as_object().unwrap() {
            assert_eq!(&read.body[k], v, "{path}: {k}");
        }

        let deleted = call(&app, &org, Method::DELETE, &format!("{path}/{id}"), None).await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        org.last("DELETE", &format!("{V}/sobjects/{object}/{id}"));
        assert!(org.sf.store().get(object, &id).is_none());
        let gone = get(&app, &org, &format!("{path}/{id}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
        assert_error(&gone.body, "provider_error");
    }
    // A create without a body is refused before anything is sent.
    org.sf.clear_requests();
    let empty = call(&app, &org, Method::POST, "/hubs/crm/accounts", None).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    assert_error(&empty.body, "missing_parameter");
    assert!(org.sf.requests().is_empty());
}

async fn sfdc_related_lists_objects_soql_and_the_current_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    let account = record_id("001", 1);
    for (child, relationship, object, field) in [
        ("tasks", "Tasks", "Task", "WhatId"),
        ("notes", "Notes", "Note", "ParentId"),
        ("activities", "Events", "Event", "WhatId"),
    ] {
        let expected: Vec<String> = org
            .sf
            .store()
            .all(object)
            .iter()
            .filter(|r| r[field] == account.as_str())
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect();
        assert!(!expected.is_empty(), "{object}");
        let (ids, _) = walk(&app, &org, &format!("/hubs/crm/accounts/{account}/{child}")).await;
        assert_eq!(ids, expected, "{child}");
        org.last(
            "GET",
            &format!("{V}/sobjects/Account/{account}/{relationship}"),
        );
    }
    let contact = record_id("003", 1);
    let tasks = get(&app, &org, &format!("/contacts/{contact}/tasks")).await;
    assert_eq!(tasks.status, StatusCode::OK, "{}", tasks.body);
    assert!(
        tasks.list().iter().all(|t| t["WhoId"] == contact.as_str()),
        "{}",
        tasks.body
    );
    org.last("GET", &format!("{V}/sobjects/Contact/{contact}/Tasks"));

    // Objects and their fields come from Salesforce itself.
    let objects = get(&app, &org, "/hubs/crm/objects").await;
    assert_eq!(objects.status, StatusCode::OK, "{}", objects.body);
    let names: Vec<&str> = objects
        .list()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for name in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "ContentVersion",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    org.last("GET", &format!("{V}/sobjects"));
    let metadata = get(&app, &org, "/objects/Opportunity/metadata").await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.body);
    assert_eq!(metadata.body["name"], "Opportunity");
    let stage = metadata.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "StageName")
        .unwrap();
    assert_eq!(stage["type"], "picklist");
    org.last("GET", &format!("{V}/sobjects/Opportunity/describe"));

    // SOQL as written, paged like every list.
    let soql = "SELECT Id, Name FROM Account WHERE IsPartner = true";
    let expected: Vec<String> = org
        .sf
        .store()
        .all("Account")
        .iter()
        .filter(|r| r["IsPartner"] == true)
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let encoded = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect::<String>();
    let (ids, pages) = walk(&app, &org, &format!("/query?q={encoded}&pageSize=200")).await;
    assert_eq!(ids, expected);
    assert_eq!(pages, expected.len().div_ceil(200));
    let sent = org
        .sf
        .requests()
        .into_iter()
        .find(|r| r.path == format!("{V}/query") && r.param("q") == Some(soql))
        .expect("the statement reached Salesforce as written");
    assert_eq!(sent.query.len(), 1, "{:?}", sent.query);
    let first = get(&app, &org, &format!("/query?q={encoded}&pageSize=200")).await;
    assert_eq!(
        first.list()[0].as_object().unwrap().len(),
        3,
        "attributes, Id and Name: {}",
        first.list()[0]
    );
    let missing = get(&app, &org, "/query").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let message = assert_error(&missing.body, "missing_parameter");
    assert!(message.contains("'q'"), "{message}");

    let me = get(&app, &org, "/hubs/crm/users/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], USER_ID);
    org.assert_bearer(&org.last("GET", &format!("{V}/chatter/users/me")));
}

async fn sfdc_vendor_errors_keep_salesforce_status_and_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    let missing = get(&app, &org, "/hubs/crm/accounts/001Dn9999999999AAA").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert_error(&missing.body, "provider_error");
    assert_eq!(
        missing.body["providerMessage"],
        "The requested resource does not exist"
    );
    assert_eq!(missing.header("elements-error"), Some("true"));
    assert!(missing.header("elements-element-instance-id").is_some());

    let wrong = call(
        &app,
        &org,
        Method::POST,
        "/hubs/crm/contacts",
        Some(&json!({"LastName": "X", "Shoe": 42})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert_error(&wrong.body, "provider_error");
    assert_eq!(
        wrong.body["providerMessage"],
        "No such column 'Shoe' on sobject of type Contact"
    );
    assert_eq!(wrong.header("elements-error"), Some("true"));

    let malformed = get(&app, &org, "/query?q=SELECT%20Id%20Account").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_error(&malformed.body, "provider_error");
    assert!(
        malformed.body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("unexpected token"),
        "{}",
        malformed.body
    );
}

async fn service_cloud_serves_contacts_incidents_and_agents(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdcservicecloud", config_with(1050)).await;
    for (path, object) in [
        ("/hubs/helpdesk/contacts", "Contact"),
        ("/hubs/helpdesk/incidents", "Case"),
        ("/hubs/helpdesk/agents", "User"),
    ] {
        assert_walk(&app, &org, path, object, &standard(object)).await;
    }
    let case = json!({"Subject": "Printer on fire", "Status": "New", "Priority": "High"});
    let created = call(&app, &org, Method::POST, "/incidents", Some(&case)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("500"), "{id}");
    assert_eq!(
        org.last("POST", &format!("{V}/sobjects/Case")).json(),
        Some(case)
    );
    let closed = call(
        &app,
        &org,
        Method::PATCH,
        &format!("/incidents/{id}"),
        Some(&json!({"Status": "Closed"})),
    )
    .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    let read = get(&app, &org, &format!("/incidents/{id}")).await;
    assert_eq!(read.body["Status"], "Closed", "{}", read.body);
    assert_eq!(read.body["Subject"], "Printer on fire");
    let deleted = call(
        &app,
        &org,
        Method::DELETE,
        &format!("/incidents/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(org.sf.store().get("Case", &id).is_none());

    let contact = get(&app, &org, &format!("/contacts/{}", record_id("003", 2))).await;
    assert_eq!(contact.status, StatusCode::OK, "{}", contact.body);
    assert!(
        contact.body["LastName"].as_str().is_some(),
        "{}",
        contact.body
    );
    let agent = get(&app, &org, &format!("/agents/{USER_ID}")).await;
    assert_eq!(agent.status, StatusCode::OK, "{}", agent.body);
    assert_eq!(agent.body["Id"], USER_ID);
    // Agents are read-only here: Salesforce users are not created through the hub.
    let refused = call(&app, &org, Method::POST, "/agents", Some(&json!({}))).await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);

    // Salesforce's own refusal: a required field left out.
    let incomplete = call(
        &app,
        &org,
        Method::POST,
        "/incidents",
        Some(&json!({"Subject": "no status"})),
    )
    .await;
    assert_eq!(incomplete.status, StatusCode::BAD_REQUEST);
    assert_error(&incomplete.body, "provider_error");
    assert_eq!(
        incomplete.body["providerMessage"],
        "Required fields are missing: [Status]"
    );
    assert_eq!(incomplete.header("elements-error"), Some("true"));
}

async fn marketing_cloud_serves_contacts_and_campaigns(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdcmarketingcloud", config_with(1050)).await;
    for (path, object) in [
        ("/hubs/marketing/contacts", "Contact"),
        ("/hubs/marketing/campaigns", "Campaign"),
    ] {
        assert_walk(&app, &org, path, object, &standard(object)).await;
    }
    let campaign = json!({"Name": "Spring launch", "Status": "Planned", "StartDate": "2027-03-01"});
    let created = call(&app, &org, Method::POST, "/campaigns", Some(&campaign)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        org.last("POST", &format!("{V}/sobjects/Campaign")).json(),
        Some(campaign)
    );
    let started = call(
        &app,
        &org,
        Method::PATCH,
        &format!("/campaigns/{id}"),
        Some(&json!({"Status": "In Progress", "IsActive": true})),
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let read = get(&app, &org, &format!("/campaigns/{id}")).await;
    assert_eq!(read.body["Status"], "In Progress", "{}", read.body);
    assert_eq!(read.body["IsActive"], true);
    let deleted = call(
        &app,
        &org,
        Method::DELETE,
        &format!("/campaigns/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(org.sf.store().get("Campaign", &id).is_none());

    let contact = json!({"LastName": "Curie", "Email": "marie@example.com"});
    let created = call(&app, &org, Method::POST, "/contacts", Some(&contact)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let read = get(&app, &org, &format!("/contacts/{id}")).await;
    assert_eq!(read.body["Email"], "marie@example.com");

    // Salesforce's type check: a number where a date belongs.
    let mistyped = call(
        &app,
        &org,
        Method::PATCH,
        &format!("/campaigns/{}", record_id("701", 1)),
        Some(&json!({"StartDate": 20270301})),
    )
    .await;
    assert_eq!(mistyped.status, StatusCode::BAD_REQUEST);
    assert_error(&mistyped.body, "provider_error");
    assert!(
        mistyped.body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("StartDate"),
        "{}",
        mistyped.body
    );
}

/// Salesforce's multipart ContentVersion insert: an `entity_content` JSON part and the
/// `VersionData` bytes.
fn content_version_multipart(boundary: &str, title: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json\r\n\r\n{}\r\n",
            json!({"Title": title, "PathOnClient": format!("{title}.bin")})
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"VersionData\"; filename=\"{title}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

async fn documents_upload_download_describe_list_and_delete_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdcdocuments", SalesforceConfig::default()).await;
    let auth = format!("Element {}", org.instance["token"].as_str().unwrap());
    let boundary = "junction-boundary-7MA4YWxkTrZu0gW";
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    // A library of 1,000 files already there, then one uploaded through Junction.
    for n in 1..=1000u64 {
        org.sf.store().insert(
            "ContentVersion",
            json!({
                "Id": record_id("068", n), "Title": format!("seeded-{n}"),
                "PathOnClient": format!("seeded-{n}.txt"), "ContentDocumentId": record_id("069", n),
                "FirstPublishLocationId": null, "FileExtension": "txt", "ContentSize": 10,
                "OwnerId": USER_ID, "CreatedDate": "2026-01-01T00:00:00.000+0000",
                "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
            }),
        );
    }
    let response = app
        .http
        .post(app.url("/hubs/documents/files"))
        .header("Authorization", &auth)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(content_version_multipart(boundary, "report", &bytes))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let first = created["id"].as_str().unwrap().to_owned();
    assert!(first.starts_with("068"), "{created}");
    let sent = org.last("POST", &format!("{V}/sobjects/ContentVersion"));
    org.assert_bearer(&sent);
    assert_eq!(
        sent.part_text("entity_content").unwrap(),
        json!({"Title": "report", "PathOnClient": "report.bin"}).to_string()
    );
    let data = sent.parts.iter().find(|p| p.name == "VersionData").unwrap();
    assert_eq!(data.data, bytes);
    // The bytes come back as stored, streamed.
    let response = app
        .http
        .get(app.url(&format!("/hubs/documents/files/{first}")))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    org.last(
        "GET",
        &format!("{V}/sobjects/ContentVersion/{first}/VersionData"),
    );

    let metadata = get(&app, &org, &format!("/files/{first}/metadata")).await;
    assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.body);
    assert_eq!(metadata.body["Title"], "report");
    assert_eq!(metadata.body["ContentSize"], 300_000);
    let document = metadata.body["ContentDocumentId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The folder listing walks every file once; `path` stays with Junction.
    org.sf.clear_requests();
    let (listed, pages) = walk(
        &app,
        &org,
        "/hubs/documents/folders/contents?path=%2F&pageSize=400",
    )
    .await;
    assert_eq!(listed, stored_ids(&org, "ContentVersion"));
    assert_eq!(listed.len(), 1001);
    assert_eq!(pages, 3);
    let query = org.last("GET", &format!("{V}/query"));
    assert!(
        query.param("q").unwrap().ends_with("FROM ContentVersion"),
        "{:?}",
        query.query
    );
    assert!(query.param("path").is_none(), "{:?}", query.query);

    let deleted = call(
        &app,
        &org,
        Method::DELETE,
        &format!("/files/{document}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    org.last(
        "DELETE",
        &format!("{V}/sobjects/ContentDocument/{document}"),
    );
    assert!(org.sf.store().get("ContentVersion", &first).is_none());

    // Salesforce's 404 for a file that is gone, through a streamed resource too.
    let gone = get(&app, &org, &format!("/files/{first}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert_error(&gone.body, "provider_error");
    assert_eq!(
        gone.body["providerMessage"],
        "The requested resource does not exist"
    );
    assert_eq!(gone.header("elements-error"), Some("true"));
}

async fn declared_objects_describe_the_other_clouds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (element, objects, object, field, kind) in [
        (
            "sfdcservicecloud",
            json!(["Contact", "Case", "User"]),
            "Case",
            "Status",
            "picklist",
        ),
        (
            "sfdcmarketingcloud",
            json!(["Contact", "Campaign"]),
            "Campaign",
            "StartDate",
            "date",
        ),
        (
            "sfdcdocuments",
            json!(["ContentVersion", "ContentDocument"]),
            "ContentVersion",
            "ContentSize",
            "int",
        ),
    ] {
        let org = Org::start(&app, element, SalesforceConfig::default()).await;
        org.sf.clear_requests();
        let listed = get(&app, &org, "/objects").await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(listed.body, objects, "{element}");
        let metadata = get(&app, &org, &format!("/objects/{object}/metadata")).await;
        assert_eq!(metadata.status, StatusCode::OK, "{}", metadata.body);
        let fields = metadata.body["fields"].as_array().unwrap();
        assert_eq!(fields[0]["vendorPath"], "Id", "{element}");
        assert_eq!(fields[0]["primaryKey"], true, "{element}");
        let found = fields
            .iter()
            .find(|f| f["vendorPath"] == field)
            .unwrap_or_else(|| panic!("{element}: {field}"));
        assert_eq!(found["type"], kind, "{element}: {field}");
        assert!(
            org.sf.requests().is_empty(),
            "{element}: declared objects need no vendor call"
        );
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

type Keep = fn(&Value) -> bool;

/// Walks `hub_path` with `where`, and checks the SOQL Salesforce received and that the
/// records are exactly the stored ones `keep` selects, in order.
async fn assert_where(
    app: &TestApp,
    org: &Org,
    hub_path: &str,
    object: &str,
    (condition, soql, keep): (&str, &str, Keep),
) {
    let expected: Vec<String> = org
        .sf
        .store()
        .all(object)
        .iter()
        .filter(|r| keep(r))
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!expected.is_empty(), "{hub_path}: {condition} selects none");
    org.sf.clear_requests();
    let first = format!("{hub_path}?where={}&pageSize=200", encode(condition));
    let (ids, _) = walk(app, org, &first).await;
    assert_eq!(ids, expected, "{hub_path}: {condition}");
    let sent = &org.sf.requests()[0];
    assert_eq!(sent.path, format!("{V}/query"));
    assert_eq!(sent.param("q"), Some(soql), "{hub_path}: {condition}");
}

async fn salesforce_lists_send_where_as_soql_and_return_only_matching_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sfdc = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    let cases: [(&str, &str, (&str, &str, Keep)); 4] = [
        (
            "/hubs/crm/accounts",
            "Account",
            (
                "IsPartner = true AND NumberOfEmployees >= 2500",
                "SELECT FIELDS(STANDARD) FROM Account WHERE (IsPartner = true AND NumberOfEmployees >= 2500)",
                |r| {
                    r["IsPartner"] == true
                        && r["NumberOfEmployees"].as_u64().is_some_and(|n| n >= 2500)
                },
            ),
        ),
        (
            "/hubs/crm/contacts",
            "Contact",
            (
                "Birthdate > '2025-06-30' OR Email IS NULL",
                "SELECT FIELDS(STANDARD) FROM Contact WHERE (Birthdate > 2025-06-30 OR Email = null)",
                |r| {
                    r["Birthdate"].as_str().is_some_and(|d| d > "2025-06-30")
                        || r["Email"].is_null()
                },
            ),
        ),
        (
            "/hubs/crm/leads",
            "Lead",
            (
                "Status IN ('Working - Contacted', 'Closed - Converted')",
                "SELECT FIELDS(STANDARD) FROM Lead WHERE (Status IN ('Working - Contacted', 'Closed - Converted'))",
                |r| r["Status"] != "Open - Not Contacted",
            ),
        ),
        (
            "/hubs/crm/opportunities",
            "Opportunity",
            (
                "Name LIKE 'A%' AND NOT StageName = 'Closed Won'",
                "SELECT FIELDS(STANDARD) FROM Opportunity WHERE (Name LIKE 'A%' AND NOT (StageName = 'Closed Won'))",
                |r| {
                    r["Name"].as_str().is_some_and(|n| n.starts_with('A'))
                        && r["StageName"] != "Closed Won"
                },
            ),
        ),
    ];
    for (path, object, case) in cases {
        assert_where(&app, &sfdc, path, object, case).await;
    }

    let service = Org::start(&app, "sfdcservicecloud", config_with(1050)).await;
    let cases: [(&str, &str, (&str, &str, Keep)); 3] = [
        (
            "/hubs/helpdesk/contacts",
            "Contact",
            (
                "HasOptedOutOfEmail = true",
                "SELECT FIELDS(STANDARD) FROM Contact WHERE (HasOptedOutOfEmail = true)",
                |r| r["HasOptedOutOfEmail"] == true,
            ),
        ),
        (
            "/hubs/helpdesk/incidents",
            "Case",
            (
                "Priority = 'High' AND Status != 'Closed'",
                "SELECT FIELDS(STANDARD) FROM Case WHERE (Priority = 'High' AND Status != 'Closed')",
                |r| r["Priority"] == "High" && r["Status"] != "Closed",
            ),
        ),
        (
            "/hubs/helpdesk/agents",
            "User",
            (
                "IsActive = false",
                "SELECT FIELDS(STANDARD) FROM User WHERE (IsActive = false)",
                |r| r["IsActive"] == false,
            ),
        ),
    ];
    for (path, object, case) in cases {
        assert_where(&app, &service, path, object, case).await;
    }

    let marketing = Org::start(&app, "sfdcmarketingcloud", config_with(1050)).await;
    let cases: [(&str, &str, (&str, &str, Keep)); 2] = [
        (
            "/hubs/marketing/contacts",
            "Contact",
            (
                "LastName LIKE 'L%'",
                "SELECT FIELDS(STANDARD) FROM Contact WHERE (LastName LIKE 'L%')",
                |r| r["LastName"].as_str().is_some_and(|n| n.starts_with('L')),
            ),
        ),
        (
            "/hubs/marketing/campaigns",
            "Campaign",
            (
                "StartDate >= '2025-01-01' AND Status IS NOT NULL",
                "SELECT FIELDS(STANDARD) FROM Campaign WHERE (StartDate >= 2025-01-01 AND Status != null)",
                |r| {
                    r["StartDate"].as_str().is_some_and(|d| d >= "2025-01-01")
                        && !r["Status"].is_null()
                },
            ),
        ),
    ];
    for (path, object, case) in cases {
        assert_where(&app, &marketing, path, object, case).await;
    }

    let documents = Org::start(&app, "sfdcdocuments", SalesforceConfig::default()).await;
    for n in 1..=300u64 {
        documents.sf.store().insert(
            "ContentVersion",
            json!({"Id": record_id("068", n), "Title": format!("file-{n}"), "PathOnClient": format!("file-{n}.pdf"),
                   "ContentDocumentId": record_id("069", n), "ContentSize": n * 100, "OwnerId": USER_ID}),
        );
    }
    assert_where(
        &app,
        &documents,
        "/hubs/documents/folders/contents",
        "ContentVersion",
        (
            "ContentSize > 25000",
            "SELECT Id, Title, PathOnClient, ContentDocumentId, FileExtension, ContentSize, FirstPublishLocationId, OwnerId, CreatedDate, LastModifiedDate FROM ContentVersion WHERE (ContentSize > 25000)",
            |r| r["ContentSize"].as_u64().is_some_and(|n| n > 25000),
        ),
    )
    .await;
}

async fn what_soql_cannot_say_is_refused_and_order_and_fields_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let org = Org::start(&app, "sfdc", SalesforceConfig::default()).await;
    // A comparison with null is never true in CEQL; SOQL's `= null` means IS NULL, so
    // it is refused, naming the operator, before anything is sent.
    org.sf.clear_requests();
    let refused = get(
        &app,
        &org,
        &format!("/contacts?where={}", encode("Email = null")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    let message = assert_error(&refused.body, "unsupported_query");
    assert!(message.contains("'sfdc'"), "{message}");
    assert!(message.contains("= in where"), "{message}");
    assert!(message.contains("IS NULL"), "{message}");
    let odd = get(
        &app,
        &org,
        &format!("/accounts?where={}", encode("`Billing City` = 'Oslo'")),
    )
    .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    let message = assert_error(&odd.body, "unsupported_query");
    assert!(message.contains("field name"), "{message}");
    assert!(org.sf.requests().is_empty(), "nothing reached Salesforce");

    // orderBy becomes SOQL's ORDER BY; fields are projected by Junction.
    let sorted = get(
        &app,
        &org,
        &format!(
            "/accounts?where={}&orderBy={}&fields=Id,Name,NumberOfEmployees&pageSize=300",
            encode("NumberOfEmployees > 4000"),
            encode("NumberOfEmployees desc, Name")
        ),
    )
    .await;
    assert_eq!(sorted.status, StatusCode::OK, "{}", sorted.body);
    assert_eq!(
        org.last("GET", &format!("{V}/query")).param("q"),
        Some(
            "SELECT FIELDS(STANDARD) FROM Account WHERE (NumberOfEmployees > 4000) ORDER BY NumberOfEmployees DESC, Name ASC"
        )
    );
    let employees: Vec<u64> = sorted
        .list()
        .iter()
        .map(|r| r["NumberOfEmployees"].as_u64().unwrap())
        .collect();
    assert!(!employees.is_empty());
    assert!(employees.windows(2).all(|w| w[0] >= w[1]), "{employees:?}");
    assert!(employees.iter().all(|n| *n > 4000));
    for record in sorted.list() {
        let mut keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["Id", "Name", "NumberOfEmployees"], "{record}");
    }

    // A literal of the wrong type for the field is Salesforce's to refuse.
    let mistyped = get(
        &app,
        &org,
        &format!("/accounts?where={}", encode("CreatedDate > '2024-06-01'")),
    )
    .await;
    assert_eq!(
        mistyped.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mistyped.body
    );
    assert_error(&mistyped.body, "provider_error");
    assert!(
        mistyped.body["providerMessage"]
            .as_str()
            .unwrap()
            .contains("CreatedDate"),
        "{}",
        mistyped.body
    );
}
