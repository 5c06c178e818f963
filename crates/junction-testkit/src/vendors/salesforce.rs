//! Salesforce REST API stand-in (shapes from the *REST API Developer Guide*: Query,
//! Query More Results, SObject Describe, SObject Rows, Insert/Update/Delete, Status
//! Codes and Error Responses; *SOQL and SOSL Reference* for the query language).
//!
//! - `GET /services/data/vNN.N/query?q=<SOQL>` answers
//!   `{"totalSize","done","records":[{"attributes":{"type","url"},…}],"nextRecordsUrl"}`;
//!   the batch size comes from `Sforce-Query-Options: batchSize=N` (clamped to
//!   200..=2000, default 2000) and `GET …/query/<locator>` serves the next batch.
//! - SOQL is parsed and checked here against each object's describe: unknown fields are
//!   `INVALID_FIELD`, and a literal of the wrong type (a quoted date for a date field, a
//!   number for a text field), `AND` mixed with `OR` without parentheses, or anything
//!   else it cannot parse is `MALFORMED_QUERY`, as Salesforce answers.
//! - `sobjects`, `sobjects/{Object}/describe`, `sobjects/{Object}/{id}` (GET, PATCH →
//!   204, DELETE → 204), `POST sobjects/{Object}` → `{"id","success":true,"errors":[]}`,
//!   multipart `POST sobjects/ContentVersion` (or `Attachment`) and the binary
//!   `…/ContentVersion/{id}/VersionData` / `…/Attachment/{id}/Body`; child
//!   relationships `sobjects/{Object}/{id}/{Contacts|Opportunities|Cases|Tasks|Events|Notes|Attachments}`.
//! - `chatter/users/me`, `/services/oauth2/userinfo` and the version list `/services/data`.
//! - Errors are arrays `[{"message","errorCode"}]`; a wrong bearer token gets 401
//!   `INVALID_SESSION_ID`. Answers carry `Sforce-Limit-Info: api-usage=N/15000`;
//!   `queryAll` is served like `query`, and also returns deleted records (Salesforce's
//!   recycle bin) with `"IsDeleted": true` and the deletion as their `LastModifiedDate`.
//!
//! Records are kept shared (`Arc`) and a query snapshots the matches once, so a paged
//! walk of 100,000 records costs one filter pass and one serialization per record.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::filter::{Expr, Lit, Op, order, parse_instant};
use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, lock, seed};

/// The API version the stand-in advertises (any `vNN.N` is served).
pub const API_VERSION: &str = "v59.0";
/// The organization id.
pub const ORG_ID: &str = "00DDn0000000001AAA";
/// The id of the user the token belongs to.
pub const USER_ID: &str = "005Dn0000000001AAA";
/// That user's username.
pub const USERNAME: &str = "admin@junction.example.test";

const LEAD_STATUS: [&str; 3] = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
];
const STAGES: [&str; 3] = ["Prospecting", "Negotiation", "Closed Won"];
const CASE_STATUS: [&str; 3] = ["New", "Working", "Closed"];
const PRIORITIES: [&str; 3] = ["Low", "Medium", "High"];
const TASK_STATUS: [&str; 2] = ["Not Started", "Completed"];
const CAMPAIGN_STATUS: [&str; 2] = ["Planned", "In Progress"];

// The values of each picklist field, as its describe lists them and the seed uses them.
fn picklist(object: &str, field: &str) -> &'static [&'static str] {
    match (object, field) {
        ("Account", "Industry") => &seed::INDUSTRIES,
        ("Lead", "Status") => &LEAD_STATUS,
        ("Opportunity", "StageName") => &STAGES,
        ("Case", "Status") => &CASE_STATUS,
        ("Case", "Priority") => &PRIORITIES,
        ("Task", "Status") => &TASK_STATUS,
        ("Campaign", "Status") => &CAMPAIGN_STATUS,
        _ => &[],
    }
}

// The objects a reference field may point at.
fn reference_to(field: &str) -> &'static [&'static str] {
    match field {
        "AccountId" => &["Account"],
        "ContactId" => &["Contact"],
        "OwnerId" => &["User"],
        "WhoId" => &["Contact", "Lead"],
        "WhatId" => &["Account", "Opportunity", "Case"],
        "ParentId" | "FirstPublishLocationId" => {
            &["Account", "Contact", "Lead", "Opportunity", "Case"]
        }
        "ContentDocumentId" => &["ContentDocument"],
        "LatestPublishedVersionId" => &["ContentVersion"],
        _ => &[],
    }
}

const DEFAULT_BATCH: usize = 2000;
// The daily API request allocation reported in `Sforce-Limit-Info`.
const DAILY_API_LIMIT: u64 = 15_000;
const MIN_BATCH: usize = 200;

/// How many records of each object to seed.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The bearer token that is accepted.
    pub token: String,
    /// Accounts (the benchmark raises this to 100,000).
    pub accounts: usize,
    /// Contacts.
    pub contacts: usize,
    /// Leads, Opportunities and Cases each.
    pub others: usize,
    /// Users, Tasks, Notes, Events, Campaigns each.
    pub small: usize,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        SalesforceConfig {
            token: "00DDn0000000001!sf-test-token".to_owned(),
            accounts: 1200,
            contacts: 1200,
            others: 1050,
            small: 60,
        }
    }
}

/// A running Salesforce stand-in.
pub type SalesforceServer = VendorServer<Salesforce>;

/// The Salesforce vendor: describes, query cursors, file contents.
#[derive(Debug)]
pub struct Salesforce {
    objects: Vec<ObjectInfo>,
    cursors: Mutex<HashMap<String, Arc<Cursor>>>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    next_id: AtomicU64,
    next_cursor: AtomicU64,
    api_calls: AtomicU64,
}

#[derive(Debug)]
struct Cursor {
    object: String,
    fields: Vec<String>,
    records: Vec<Arc<Value>>,
    batch: usize,
}

#[derive(Debug, Clone)]
struct ObjectInfo {
    name: &'static str,
    plural: &'static str,
    prefix: &'static str,
    fields: Vec<FieldInfo>,
}

#[derive(Debug, Clone)]
struct FieldInfo {
    name: &'static str,
    kind: &'static str,
    nillable: bool,
    writable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Text,
    Number,
    Boolean,
    Date,
    DateTime,
}

fn family(kind: &str) -> Family {
    match kind {
        "double" | "currency" | "int" | "percent" => Family::Number,
        "boolean" => Family::Boolean,
        "date" => Family::Date,
        "datetime" => Family::DateTime,
        _ => Family::Text,
    }
}

fn objects() -> Vec<ObjectInfo> {
    // (name, type, nillable, writable)
    let f = |name, kind, nillable, writable| FieldInfo {
        name,
        kind,
        nillable,
        writable,
    };
    let id = || f("Id", "id", false, false);
    let created = || f("CreatedDate", "datetime", false, false);
    let modified = || f("LastModifiedDate", "datetime", false, false);
    let owner = || f("OwnerId", "reference", false, true);
    let object = |name, plural, prefix, fields| ObjectInfo {
        name,
        plural,
        prefix,
        fields,
    };
    vec![
        object(
            "Account",
            "Accounts",
            "001",
            vec![
                id(),
                f("Name", "string", false, true),
                f("Industry", "picklist", true, true),
                f("Phone", "phone", true, true),
                f("BillingCity", "string", true, true),
                f("NumberOfEmployees", "int", true, true),
                f("AnnualRevenue", "currency", true, true),
                f("IsPartner", "boolean", false, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Contact",
            "Contacts",
            "003",
            vec![
                id(),
                f("FirstName", "string", true, true),
                f("LastName", "string", false, true),
                f("Email", "email", true, true),
                f("Phone", "phone", true, true),
                f("AccountId", "reference", true, true),
                f("Birthdate", "date", true, true),
                f("HasOptedOutOfEmail", "boolean", false, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Lead",
            "Leads",
            "00Q",
            vec![
                id(),
                f("FirstName", "string", true, true),
                f("LastName", "string", false, true),
                f("Company", "string", false, true),
                f("Email", "email", true, true),
                f("Status", "picklist", false, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Opportunity",
            "Opportunities",
            "006",
            vec![
                id(),
                f("Name", "string", false, true),
                f("AccountId", "reference", true, true),
                f("Amount", "currency", true, true),
                f("StageName", "picklist", false, true),
                f("CloseDate", "date", false, true),
                f("IsWon", "boolean", false, false),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Case",
            "Cases",
            "500",
            vec![
                id(),
                f("Subject", "string", true, true),
                f("Status", "picklist", false, true),
                f("Priority", "picklist", true, true),
                f("ContactId", "reference", true, true),
                f("Description", "textarea", true, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "User",
            "Users",
            "005",
            vec![
                id(),
                f("Username", "string", false, true),
                f("Name", "string", false, false),
                f("FirstName", "string", true, true),
                f("LastName", "string", false, true),
                f("Email", "email", false, true),
                f("IsActive", "boolean", false, true),
                created(),
                modified(),
            ],
        ),
        object(
            "Task",
            "Tasks",
            "00T",
            vec![
                id(),
                f("Subject", "string", true, true),
                f("WhoId", "reference", true, true),
                f("WhatId", "reference", true, true),
                f("Status", "picklist", false, true),
                f("ActivityDate", "date", true, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Note",
            "Notes",
            "002",
            vec![
                id(),
                f("Title", "string", false, true),
                f("Body", "textarea", true, true),
                f("ParentId", "reference", false, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Event",
            "Events",
            "00U",
            vec![
                id(),
                f("Subject", "string", true, true),
                f("WhoId", "reference", true, true),
                f("WhatId", "reference", true, true),
                f("StartDateTime", "datetime", true, true),
                f("EndDateTime", "datetime", true, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Campaign",
            "Campaigns",
            "701",
            vec![
                id(),
                f("Name", "string", false, true),
                f("Status", "picklist", true, true),
                f("StartDate", "date", true, true),
                f("IsActive", "boolean", false, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "Attachment",
            "Attachments",
            "00P",
            vec![
                id(),
                f("Name", "string", false, true),
                f("ParentId", "reference", false, true),
                f("ContentType", "string", true, true),
                f("BodyLength", "int", true, false),
                f("Body", "base64", true, true),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "ContentDocument",
            "Content Documents",
            "069",
            vec![
                id(),
                f("Title", "string", false, true),
                f("FileExtension", "string", true, false),
                f("ContentSize", "int", true, false),
                f("LatestPublishedVersionId", "reference", true, false),
                owner(),
                created(),
                modified(),
            ],
        ),
        object(
            "ContentVersion",
            "Content Versions",
            "068",
            vec![
                id(),
                f("Title", "string", false, true),
                f("PathOnClient", "string", false, true),
                f("ContentDocumentId", "reference", true, false),
                f("FirstPublishLocationId", "reference", true, true),
                f("FileExtension", "string", true, false),
                f("ContentSize", "int", true, false),
                f("VersionData", "base64", true, true),
                owner(),
                created(),
                modified(),
            ],
        ),
    ]
}

/// An 18-character Salesforce id with that key prefix.
pub fn record_id(prefix: &str, n: u64) -> String {
    format!("{prefix}Dn{n:010}AAA")
}

fn sf_datetime(index: usize) -> String {
    seed::created(index)
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

fn seed_store(config: &SalesforceConfig) -> Store {
    let store = Store::new();
    let common = |i: usize, prefix: &str| {
        let mut m = Map::new();
        m.insert("Id".into(), json!(record_id(prefix, i as u64 + 1)));
        m.insert("OwnerId".into(), json!(USER_ID));
        m.insert("CreatedDate".into(), json!(sf_datetime(i)));
        m.insert("LastModifiedDate".into(), json!(sf_datetime(i + 24)));
        m
    };
    let nullable = |i: usize, salt: u64, every: usize, v: Value| {
        if seed::is_null(i, salt, every) {
            Value::Null
        } else {
            v
        }
    };
    let build = |n: usize, prefix: &str, fill: &dyn Fn(usize, &mut Map<String, Value>)| {
        (0..n)
            .map(|i| {
                let mut m = common(i, prefix);
                fill(i, &mut m);
                Value::Object(m)
            })
            .collect::<Vec<_>>()
    };
    let accounts = config.accounts.max(1);
    store.seed(
        "Account",
        "Id",
        build(accounts, "001", &|i, m| {
            m.insert("Name".into(), json!(seed::company(i)));
            m.insert(
                "Industry".into(),
                nullable(i, 1, 5, json!(seed::industry(i))),
            );
            m.insert("Phone".into(), json!(seed::phone(i)));
            m.insert(
                "BillingCity".into(),
                nullable(i, 2, 9, json!(seed::city(i))),
            );
            m.insert(
                "NumberOfEmployees".into(),
                nullable(i, 3, 6, json!(seed::number(i, 11, 5000) + 1)),
            );
            m.insert(
                "AnnualRevenue".into(),
                nullable(i, 4, 8, json!(seed::number(i, 12, 1_000_000) as f64)),
            );
            m.insert("IsPartner".into(), json!(i % 3 == 0));
        }),
    );
    store.seed(
        "Contact",
        "Id",
        build(config.contacts, "003", &|i, m| {
            m.insert(
                "FirstName".into(),
                nullable(i, 1, 11, json!(seed::first_name(i))),
            );
            m.insert("LastName".into(), json!(seed::last_name(i)));
            m.insert("Email".into(), nullable(i, 2, 10, json!(seed::email(i))));
            m.insert("Phone".into(), json!(seed::phone(i)));
            m.insert(
                "AccountId".into(),
                nullable(i, 3, 13, json!(record_id("001", (i % accounts) as u64 + 1))),
            );
            m.insert(
                "Birthdate".into(),
                nullable(i, 4, 4, json!(seed::date(i, 13).to_string())),
            );
            m.insert("HasOptedOutOfEmail".into(), json!(i % 10 == 0));
        }),
    );
    store.seed(
        "Lead",
        "Id",
        build(config.others, "00Q", &|i, m| {
            m.insert(
                "FirstName".into(),
                nullable(i, 1, 12, json!(seed::first_name(i + 7))),
            );
            m.insert("LastName".into(), json!(seed::last_name(i + 7)));
            m.insert("Company".into(), json!(seed::company(i + 7)));
            m.insert("Email".into(), nullable(i, 2, 9, json!(seed::email(i + 7))));
            m.insert("Status".into(), json!(seed::choice(&LEAD_STATUS, i, 14)));
        }),
    );
    store.seed(
        "Opportunity",
        "Id",
        build(config.others, "006", &|i, m| {
            m.insert("Name".into(), json!(format!("{} deal", seed::company(i))));
            m.insert(
                "AccountId".into(),
                json!(record_id("001", (i % accounts) as u64 + 1)),
            );
            m.insert(
                "Amount".into(),
                nullable(i, 1, 7, json!(seed::number(i, 15, 100_000) as f64)),
            );
            let stage = seed::choice(&STAGES, i, 16);
            m.insert("StageName".into(), json!(stage));
            m.insert("CloseDate".into(), json!(seed::date(i, 17).to_string()));
            m.insert("IsWon".into(), json!(stage == "Closed Won"));
        }),
    );
    store.seed(
        "Case",
        "Id",
        build(config.others, "500", &|i, m| {
            m.insert(
                "Subject".into(),
                json!(format!("Case {}: {} is down", i + 1, seed::city(i))),
            );
            m.insert("Status".into(), json!(seed::choice(&CASE_STATUS, i, 18)));
            m.insert(
                "Priority".into(),
                nullable(i, 1, 6, json!(seed::choice(&PRIORITIES, i, 19))),
            );
            m.insert(
                "ContactId".into(),
                json!(record_id("003", (i % config.contacts.max(1)) as u64 + 1)),
            );
            m.insert("Description".into(), nullable(i, 2, 3, json!("Details")));
        }),
    );
    store.seed(
        "User",
        "Id",
        build(config.small, "005", &|i, m| {
            let first = seed::first_name(i);
            let last = seed::last_name(i);
            let username = if i == 0 {
                USERNAME.to_owned()
            } else {
                seed::email(i)
            };
            m.insert("Username".into(), json!(username));
            m.insert("Name".into(), json!(format!("{first} {last}")));
            m.insert("FirstName".into(), json!(first));
            m.insert("LastName".into(), json!(last));
            m.insert("Email".into(), json!(username));
            m.insert("IsActive".into(), json!(i % 8 != 7));
        }),
    );
    let related = |i: usize| record_id("003", (i % config.contacts.max(1)) as u64 + 1);
    let account = |i: usize| record_id("001", (i % accounts) as u64 + 1);
    store.seed(
        "Task",
        "Id",
        build(config.small, "00T", &|i, m| {
            m.insert("Subject".into(), json!(format!("Call {}", i + 1)));
            m.insert("WhoId".into(), json!(related(i % 5)));
            m.insert("WhatId".into(), json!(account(i % 5)));
            m.insert("Status".into(), json!(seed::choice(&TASK_STATUS, i, 20)));
            m.insert(
                "ActivityDate".into(),
                nullable(i, 1, 4, json!(seed::date(i, 21).to_string())),
            );
        }),
    );
    store.seed(
        "Note",
        "Id",
        build(config.small, "002", &|i, m| {
            m.insert("Title".into(), json!(format!("Note {}", i + 1)));
            m.insert(
                "Body".into(),
                nullable(i, 1, 3, json!("Talked about pricing.")),
            );
            m.insert("ParentId".into(), json!(account(i % 5)));
        }),
    );
    store.seed(
        "Event",
        "Id",
        build(config.small, "00U", &|i, m| {
            m.insert("Subject".into(), json!(format!("Meeting {}", i + 1)));
            m.insert("WhoId".into(), json!(related(i % 5)));
            m.insert("WhatId".into(), json!(account(i % 5)));
            m.insert("StartDateTime".into(), json!(sf_datetime(i + 100)));
            m.insert("EndDateTime".into(), json!(sf_datetime(i + 101)));
        }),
    );
    store.seed(
        "Campaign",
        "Id",
        build(config.small, "701", &|i, m| {
            m.insert("Name".into(), json!(format!("Campaign {}", i + 1)));
            m.insert(
                "Status".into(),
                nullable(i, 1, 5, json!(seed::choice(&CAMPAIGN_STATUS, i, 22))),
            );
            m.insert(
                "StartDate".into(),
                nullable(i, 2, 5, json!(seed::date(i, 23).to_string())),
            );
            m.insert("IsActive".into(), json!(i % 2 == 0));
        }),
    );
    store.seed(
        "Attachment",
        "Id",
        build(config.small, "00P", &|i, m| {
            m.insert("Name".into(), json!(format!("scan-{}.txt", i + 1)));
            m.insert("ParentId".into(), json!(account(i % 5)));
            m.insert("ContentType".into(), nullable(i, 1, 3, json!("text/plain")));
            m.insert("BodyLength".into(), json!(attachment_body(i).len()));
            m.insert(
                "Body".into(),
                json!(format!(
                    "/services/data/{API_VERSION}/sobjects/Attachment/{}/Body",
                    record_id("00P", i as u64 + 1)
                )),
            );
        }),
    );
    store.seed("ContentDocument", "Id", Vec::new());
    store.seed("ContentVersion", "Id", Vec::new());
    store
}

/// The bytes of seeded attachment `index`.
pub fn attachment_body(index: usize) -> Vec<u8> {
    format!(
        "attachment {} for {}\n",
        index + 1,
        seed::company(index % 5)
    )
    .into_bytes()
}

// The binary field of the objects that carry one.
fn blob_field(object: &str) -> Option<&'static str> {
    match object {
        "ContentVersion" => Some("VersionData"),
        "Attachment" => Some("Body"),
        _ => None,
    }
}

// Child relationships served under `sobjects/{Object}/{id}/{Relationship}`:
// (relationship, child object, child field pointing at the parent).
fn relationship(parent: &str, name: &str) -> Option<(&'static str, &'static str)> {
    let person = matches!(parent, "Contact" | "Lead");
    match (parent, name) {
        ("Account", "Contacts") => Some(("Contact", "AccountId")),
        ("Account", "Opportunities") => Some(("Opportunity", "AccountId")),
        ("Contact", "Cases") => Some(("Case", "ContactId")),
        (_, "Tasks") => Some(("Task", if person { "WhoId" } else { "WhatId" })),
        (_, "Events") => Some(("Event", if person { "WhoId" } else { "WhatId" })),
        (_, "Notes") => Some(("Note", "ParentId")),
        (_, "Attachments") => Some(("Attachment", "ParentId")),
        _ => None,
    }
}

impl Salesforce {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: SalesforceConfig) -> SalesforceServer {
        let store = seed_store(&config);
        let files = (0..config.small)
            .map(|i| (record_id("00P", i as u64 + 1), attachment_body(i)))
            .collect();
        let vendor = Salesforce {
            objects: objects(),
            cursors: Mutex::new(HashMap::new()),
            files: Mutex::new(files),
            next_id: AtomicU64::new(900_000),
            next_cursor: AtomicU64::new(1),
            api_calls: AtomicU64::new(0),
        };
        VendorServer::spawn(vendor, Credential::Bearer(config.token), store).await
    }

    /// How many query cursors (`nextRecordsUrl` locators) are open.
    pub fn open_cursors(&self) -> usize {
        lock(&self.cursors).len()
    }

    fn object(&self, name: &str) -> Option<&ObjectInfo> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }
}

impl ObjectInfo {
    fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// A Salesforce error array response.
pub fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    super::json(status, &json!([{ "message": message, "errorCode": code }]))
}

fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

impl Vendor for Salesforce {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        // The version list is the one resource Salesforce serves without a session.
        if request.method == "GET" && request.segments() == ["services", "data"] {
            return super::json(
                StatusCode::OK,
                &json!([{ "label": "Winter '24", "url": format!("/services/data/{API_VERSION}"), "version": &API_VERSION[1..] }]),
            );
        }
        if !core.authorized(request) {
            return sf_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            );
        }
        let segments = request.segments();
        let method = request.method.as_str();
        let mut response = match segments.as_slice() {
            ["services", "oauth2", "userinfo"] if method == "GET" => userinfo(core),
            ["services", "data", version, rest @ ..] if is_version(version) => {
                self.data(core, request, version, rest)
            }
            _ => not_found(),
        };
        let calls = self.api_calls.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if let Ok(value) =
            header::HeaderValue::from_str(&format!("api-usage={calls}/{DAILY_API_LIMIT}"))
        {
            response.headers_mut().insert("sforce-limit-info", value);
        }
        response
    }
}

impl Salesforce {
    fn data(
        &self,
        core: &Core,
        request: &RecordedRequest,
        version: &str,
        rest: &[&str],
    ) -> Response {
        let method = request.method.as_str();
        match (rest, method) {
            (["query"], "GET") => self.query(core, request, version, false),
            (["queryAll"], "GET") => self.query(core, request, version, true),
            (["query" | "queryAll", locator], "GET") => self.query_more(version, locator),
            (["sobjects"], "GET") => self.list_objects(version),
            (["sobjects", object, "describe"], "GET") => self.describe(version, object),
            (["sobjects", object], "POST") => self.create(core, request, version, object),
            (["sobjects", object, id, field], "GET") => {
                self.sub_resource(core, version, object, id, field)
            }
            (["sobjects", object, id], "GET") => self.get(core, request, version, object, id),
            (["sobjects", object, id], "PATCH") => self.update(core, request, object, id),
            (["sobjects", object, id], "DELETE") => self.delete(core, object, id),
            (["chatter", "users", "me"], "GET") => chatter_me(core),
            _ => not_found(),
        }
    }

    fn list_objects(&self, version: &str) -> Response {
        let sobjects: Vec<Value> = self
            .objects
            .iter()
            .map(|o| {
                json!({
                    "name": o.name,
                    "label": o.name,
                    "labelPlural": o.plural,
                    "keyPrefix": o.prefix,
                    "custom": false,
                    "queryable": true,
                    "createable": true,
                    "updateable": true,
                    "deletable": true,
                    "urls": {
                        "sobject": format!("/services/data/{version}/sobjects/{}", o.name),
                        "describe": format!("/services/data/{version}/sobjects/{}/describe", o.name),
                        "rowTemplate": format!("/services/data/{version}/sobjects/{}/{{ID}}", o.name),
                    },
                })
            })
            .collect();
        super::json(
            StatusCode::OK,
            &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects }),
        )
    }

    fn describe(&self, version: &str, object: &str) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        let fields: Vec<Value> = o
            .fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "label": label(f.name),
                    "type": f.kind,
                    "soapType": soap_type(f.kind),
                    "nillable": f.nillable,
                    "createable": f.writable,
                    "updateable": f.writable,
                    "filterable": true,
                    "sortable": true,
                    "custom": false,
                    "length": if family(f.kind) == Family::Text { 255 } else { 0 },
                    "picklistValues": picklist(o.name, f.name)
                        .iter()
                        .enumerate()
                        .map(|(i, v)| json!({ "active": true, "defaultValue": i == 0, "label": v, "value": v }))
                        .collect::<Vec<_>>(),
                    "referenceTo": reference_to(f.name),
                })
            })
            .collect();
        super::json(
            StatusCode::OK,
            &json!({
                "name": o.name,
                "label": o.name,
                "labelPlural": o.plural,
                "keyPrefix": o.prefix,
                "custom": false,
                "queryable": true,
                "createable": true,
                "updateable": true,
                "deletable": true,
                "fields": fields,
                "urls": {
                    "sobject": format!("/services/data/{version}/sobjects/{}", o.name),
                    "describe": format!("/services/data/{version}/sobjects/{}/describe", o.name),
                },
            }),
        )
    }

    fn query(
        &self,
        core: &Core,
        request: &RecordedRequest,
        version: &str,
        deleted_too: bool,
    ) -> Response {
        let Some(q) = request.param("q") else {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "A query string has to be specified",
            );
        };
        let query = match parse_soql(q, self) {
            Ok(query) => query,
            Err(error) => return error.response(),
        };
        let mut all = core.store.all(query.object);
        if deleted_too {
            all.extend(core.store.all(&recycle_bin(query.object)));
        }
        let mut records: Vec<Arc<Value>> = all
            .into_iter()
            .filter(|r| query.filter.as_ref().is_none_or(|f| f.matches(r)))
            .collect();
        if !query.order.is_empty() {
            records.sort_by(|a, b| {
                for (field, desc, nulls_last) in &query.order {
                    let x = a.get(field).unwrap_or(&Value::Null);
                    let y = b.get(field).unwrap_or(&Value::Null);
                    let ordering = match (x.is_null(), y.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) if *nulls_last => std::cmp::Ordering::Greater,
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) if *nulls_last => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        (false, false) if *desc => order(x, y).reverse(),
                        (false, false) => order(x, y),
                    };
                    if ordering != std::cmp::Ordering::Equal {
                        return ordering;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let records: Vec<Arc<Value>> = records
            .into_iter()
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX))
            .collect();
        let batch = batch_size(request);
        let cursor = Arc::new(Cursor {
            object: query.object.to_owned(),
            fields: query.fields,
            records,
            batch,
        });
        let locator = format!(
            "01gDn{:013}",
            self.next_cursor.fetch_add(1, AtomicOrdering::Relaxed)
        );
        if cursor.records.len() > batch {
            lock(&self.cursors).insert(locator.clone(), Arc::clone(&cursor));
        }
        page(&cursor, &locator, 0, version)
    }

    fn query_more(&self, version: &str, locator: &str) -> Response {
        let invalid = || {
            sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        };
        let Some((id, offset)) = locator.split_once('-') else {
            return invalid();
        };
        let Ok(offset) = offset.parse::<usize>() else {
            return invalid();
        };
        let Some(cursor) = lock(&self.cursors).get(id).cloned() else {
            return invalid();
        };
        if offset == 0 || offset >= cursor.records.len() {
            return invalid();
        }
        if offset + cursor.batch >= cursor.records.len() {
            lock(&self.cursors).remove(id);
        }
        page(&cursor, id, offset, version)
    }

    fn get(
        &self,
        core: &Core,
        request: &RecordedRequest,
        version: &str,
        object: &str,
        id: &str,
    ) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        let Some(record) = core.store.get(o.name, id) else {
            return not_found();
        };
        let fields: Vec<String> = match request.param("fields") {
            Some(list) => {
                let mut fields = Vec::new();
                for name in list.split(',').map(str::trim) {
                    match o.field(name) {
                        Some(f) => fields.push(f.name.to_owned()),
                        None => return invalid_field(name, o.name),
                    }
                }
                fields
            }
            None => o.fields.iter().map(|f| f.name.to_owned()).collect(),
        };
        let mut body = String::new();
        write_record(&mut body, o.name, &fields, &record, version);
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            body,
        )
            .into_response()
    }

    // Checks a JSON body against the describe; Err is the Salesforce error to answer.
    fn check_body(
        &self,
        o: &ObjectInfo,
        request: &RecordedRequest,
        creating: bool,
    ) -> Result<Map<String, Value>, Response> {
        let Some(Value::Object(body)) = request.json() else {
            return Err(sf_error(
                StatusCode::BAD_REQUEST,
                "JSON_PARSER_ERROR",
                "The request body is not a JSON object",
            ));
        };
        let mut clean = Map::new();
        for (name, value) in body {
            if name == "attributes" {
                continue;
            }
            let Some(field) = o.field(&name) else {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!("No such column '{name}' on sobject of type {}", o.name),
                ));
            };
            if !field.writable {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    &format!(
                        "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                        field.name
                    ),
                ));
            }
            let ok = match (&value, family(field.kind)) {
                (Value::Null, _) => field.nillable,
                (Value::String(_), Family::Text) => true,
                (Value::Number(_), Family::Number) => true,
                (Value::Bool(_), Family::Boolean) => true,
                (Value::String(s), Family::Date) => {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
                }
                (Value::String(s), Family::DateTime) => parse_instant(s).is_some(),
                _ => false,
            };
            if !ok {
                return Err(sf_error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    &format!(
                        "Cannot deserialize instance of {} from {} value for field {}",
                        soap_type(field.kind),
                        value,
                        field.name
                    ),
                ));
            }
            clean.insert(field.name.to_owned(), value);
        }
        if creating {
            let missing: Vec<&str> = o
                .fields
                .iter()
                .filter(|f| {
                    !f.nillable
                        && f.writable
                        && f.kind != "boolean"
                        && f.name != "OwnerId"
                        && clean.get(f.name).is_none_or(Value::is_null)
                })
                .map(|f| f.name)
                .collect();
            if !missing.is_empty() {
                return Err(super::json(
                    StatusCode::BAD_REQUEST,
                    &json!([{
                        "message": format!("Required fields are missing: [{}]", missing.join(", ")),
                        "errorCode": "REQUIRED_FIELD_MISSING",
                        "fields": missing,
                    }]),
                ));
            }
        }
        Ok(clean)
    }

    fn new_id(&self, prefix: &str) -> String {
        record_id(prefix, self.next_id.fetch_add(1, AtomicOrdering::Relaxed))
    }

    fn create(
        &self,
        core: &Core,
        request: &RecordedRequest,
        version: &str,
        object: &str,
    ) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        if blob_field(o.name).is_some() && !request.parts.is_empty() {
            return self.create_file(core, request, o);
        }
        let mut fields = match self.check_body(o, request, true) {
            Ok(fields) => fields,
            Err(response) => return response,
        };
        let id = self.new_id(o.prefix);
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        let mut record = Map::new();
        for f in &o.fields {
            record.insert(
                f.name.to_owned(),
                fields.remove(f.name).unwrap_or(Value::Null),
            );
        }
        record.insert("Id".into(), json!(id));
        record.insert("OwnerId".into(), json!(USER_ID));
        record.insert("CreatedDate".into(), json!(now));
        record.insert("LastModifiedDate".into(), json!(now));
        for f in &o.fields {
            if f.kind == "boolean" && record.get(f.name).is_some_and(Value::is_null) {
                record.insert(f.name.to_owned(), json!(false));
            }
        }
        if let Some(blob) = blob_field(o.name) {
            let data = record
                .get(blob)
                .and_then(Value::as_str)
                .and_then(|b| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .unwrap_or_default();
            return self.store_file(core, o, record, data, version);
        }
        core.store.insert(o.name, Value::Object(record));
        created(&id)
    }

    fn sub_resource(
        &self,
        core: &Core,
        version: &str,
        object: &str,
        id: &str,
        field: &str,
    ) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        if core.store.get(o.name, id).is_none() {
            return not_found();
        }
        if blob_field(o.name) == Some(field) {
            return match lock(&self.files).get(id) {
                Some(bytes) => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    bytes.clone(),
                )
                    .into_response(),
                None => not_found(),
            };
        }
        let Some((child, parent_field)) = relationship(o.name, field) else {
            return not_found();
        };
        let Some(c) = self.object(child) else {
            return not_found();
        };
        let records: Vec<Arc<Value>> = core
            .store
            .all(child)
            .into_iter()
            .filter(|r| r.get(parent_field).and_then(Value::as_str) == Some(id))
            .collect();
        let cursor = Cursor {
            object: child.to_owned(),
            fields: c
                .fields
                .iter()
                .filter(|f| f.kind != "base64")
                .map(|f| f.name.to_owned())
                .collect(),
            batch: records.len().max(1),
            records,
        };
        page(&cursor, "", 0, version)
    }

    fn create_file(&self, core: &Core, request: &RecordedRequest, o: &ObjectInfo) -> Response {
        let blob = blob_field(o.name).unwrap_or_default();
        let entity = request
            .parts
            .iter()
            .find(|p| p.name.starts_with("entity_"))
            .and_then(|p| serde_json::from_slice::<Value>(&p.data).ok());
        let data = request.parts.iter().find(|p| p.name == blob);
        let (Some(Value::Object(entity)), Some(data)) = (entity, data) else {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_MULTIPART_REQUEST",
                &format!(
                    "A multipart {} insert needs an entity_ JSON part and a {blob} part",
                    o.name
                ),
            );
        };
        let mut record = Map::new();
        for f in &o.fields {
            record.insert(f.name.to_owned(), Value::Null);
        }
        for (k, v) in entity {
            match o.field(&k) {
                Some(f) if f.writable && f.name != blob => {
                    record.insert(f.name.to_owned(), v);
                }
                _ => {
                    return sf_error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FIELD",
                        &format!("No such column '{k}' on sobject of type {}", o.name),
                    );
                }
            }
        }
        let missing: Vec<&str> = o
            .fields
            .iter()
            .filter(|f| !f.nillable && f.writable && f.name != "OwnerId")
            .filter(|f| record.get(f.name).is_none_or(Value::is_null))
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return super::json(
                StatusCode::BAD_REQUEST,
                &json!([{
                    "message": format!("Required fields are missing: [{}]", missing.join(", ")),
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": missing,
                }]),
            );
        }
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string();
        record.insert("OwnerId".into(), json!(USER_ID));
        record.insert("CreatedDate".into(), json!(now));
        record.insert("LastModifiedDate".into(), json!(now));
        self.store_file(core, o, record, data.data.clone(), API_VERSION)
    }

    fn store_file(
        &self,
        core: &Core,
        o: &ObjectInfo,
        mut record: Map<String, Value>,
        data: Vec<u8>,
        version: &str,
    ) -> Response {
        let id = self.new_id(o.prefix);
        let blob = blob_field(o.name).unwrap_or_default();
        record.insert("Id".into(), json!(id));
        record.insert(
            blob.into(),
            json!(format!(
                "/services/data/{version}/sobjects/{}/{id}/{blob}",
                o.name
            )),
        );
        if o.name == "Attachment" {
            record.insert("BodyLength".into(), json!(data.len()));
        } else {
            let document = self.new_id("069");
            let extension = record
                .get("PathOnClient")
                .and_then(Value::as_str)
                .and_then(|p| p.rsplit_once('.'))
                .map(|(_, e)| e.to_owned());
            record.insert("ContentDocumentId".into(), json!(document));
            record.insert("FileExtension".into(), json!(extension));
            record.insert("ContentSize".into(), json!(data.len()));
            core.store.insert(
                "ContentDocument",
                json!({
                    "Id": document,
                    "Title": record.get("Title"),
                    "FileExtension": extension,
                    "ContentSize": data.len(),
                    "LatestPublishedVersionId": id,
                    "OwnerId": USER_ID,
                    "CreatedDate": record.get("CreatedDate"),
                    "LastModifiedDate": record.get("LastModifiedDate"),
                }),
            );
        }
        core.store.insert(o.name, Value::Object(record));
        lock(&self.files).insert(id.clone(), data);
        created(&id)
    }

    fn update(&self, core: &Core, request: &RecordedRequest, object: &str, id: &str) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        if core.store.get(o.name, id).is_none() {
            return not_found();
        }
        let mut changes = match self.check_body(o, request, false) {
            Ok(changes) => changes,
            Err(response) => return response,
        };
        for required in o.fields.iter().filter(|f| !f.nillable) {
            if changes.get(required.name).is_some_and(Value::is_null) {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "REQUIRED_FIELD_MISSING",
                    &format!("Required fields are missing: [{}]", required.name),
                );
            }
        }
        changes.insert(
            "LastModifiedDate".into(),
            json!(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string()
            ),
        );
        core.store.update(o.name, id, &changes);
        StatusCode::NO_CONTENT.into_response()
    }

    fn delete(&self, core: &Core, object: &str, id: &str) -> Response {
        let Some(o) = self.object(object) else {
            return not_found();
        };
        let Some(record) = core.store.get(o.name, id) else {
            return not_found();
        };
        if !core.store.delete(o.name, id) {
            return not_found();
        }
        let mut record = (*record).clone();
        record["IsDeleted"] = json!(true);
        record["LastModifiedDate"] = json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                .to_string()
        );
        let bin = recycle_bin(o.name);
        if core.store.is_empty(&bin) {
            core.store.seed(&bin, "Id", vec![record]);
        } else {
            core.store.insert(&bin, record);
        }
        if blob_field(o.name).is_some() {
            lock(&self.files).remove(id);
        }
        // Deleting a file's ContentDocument deletes all of its versions, as in Salesforce.
        if o.name == "ContentDocument" {
            let versions: Vec<String> = core
                .store
                .all("ContentVersion")
                .iter()
                .filter(|v| v["ContentDocumentId"] == id)
                .filter_map(|v| v["Id"].as_str().map(str::to_owned))
                .collect();
            for version in versions {
                core.store.delete("ContentVersion", &version);
                lock(&self.files).remove(&version);
            }
        }
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Where deleted records of an object wait, for `queryAll`.
fn recycle_bin(object: &str) -> String {
    format!("{object}#deleted")
}

fn created(id: &str) -> Response {
    super::json(
        StatusCode::CREATED,
        &json!({ "id": id, "success": true, "errors": [] }),
    )
}

fn invalid_field(name: &str, object: &str) -> Response {
    sf_error(
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
        &format!(
            "No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

fn batch_size(request: &RecordedRequest) -> usize {
    request
        .header("sforce-query-options")
        .and_then(|options| {
            options.split(',').find_map(|option| {
                let (k, v) = option.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("batchSize"))
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .map_or(DEFAULT_BATCH, |n| n.clamp(MIN_BATCH, DEFAULT_BATCH))
}

fn page(cursor: &Cursor, locator: &str, offset: usize, version: &str) -> Response {
    let total = cursor.records.len();
    let end = (offset + cursor.batch).min(total);
    let done = end >= total;
    let mut body = String::with_capacity((end - offset) * 256 + 128);
    let _ = write!(body, "{{\"totalSize\":{total},\"done\":{done},");
    if !done {
        let _ = write!(
            body,
            "\"nextRecordsUrl\":\"/services/data/{version}/query/{locator}-{end}\","
        );
    }
    body.push_str("\"records\":[");
    for (i, record) in cursor.records[offset..end].iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        write_record(&mut body, &cursor.object, &cursor.fields, record, version);
    }
    body.push_str("]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

fn write_record(out: &mut String, object: &str, fields: &[String], record: &Value, version: &str) {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let _ = write!(
        out,
        "{{\"attributes\":{{\"type\":\"{object}\",\"url\":\"/services/data/{version}/sobjects/{object}/{id}\"}}"
    );
    for field in fields {
        let value = record.get(field).unwrap_or(&Value::Null);
        // Field names come from the describe: plain identifiers that need no escaping.
        let _ = write!(out, ",\"{field}\":{value}");
    }
    if record.get("IsDeleted") == Some(&Value::Bool(true)) {
        out.push_str(",\"IsDeleted\":true");
    }
    out.push('}');
}

fn label(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn soap_type(kind: &str) -> &'static str {
    match kind {
        "id" | "reference" => "tns:ID",
        "double" | "currency" | "percent" => "xsd:double",
        "int" => "xsd:int",
        "boolean" => "xsd:boolean",
        "date" => "xsd:date",
        "datetime" => "xsd:dateTime",
        "base64" => "xsd:base64Binary",
        _ => "xsd:string",
    }
}

fn userinfo(core: &Core) -> Response {
    let user = core.store.get("User", USER_ID);
    let name = user
        .as_ref()
        .and_then(|u| u.get("Name").cloned())
        .unwrap_or(Value::Null);
    super::json(
        StatusCode::OK,
        &json!({
            "sub": format!("{}/id/{ORG_ID}/{USER_ID}", core.base_url()),
            "user_id": USER_ID,
            "organization_id": ORG_ID,
            "preferred_username": USERNAME,
            "name": name,
            "email": USERNAME,
            "email_verified": true,
            "active": true,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": format!("{}/services/data/v{{version}}/", core.base_url()),
                "sobjects": format!("{}/services/data/v{{version}}/sobjects/", core.base_url()),
                "query": format!("{}/services/data/v{{version}}/query/", core.base_url()),
            },
        }),
    )
}

fn chatter_me(core: &Core) -> Response {
    let Some(user) = core.store.get("User", USER_ID) else {
        return not_found();
    };
    super::json(
        StatusCode::OK,
        &json!({
            "id": USER_ID,
            "name": user.get("Name"),
            "firstName": user.get("FirstName"),
            "lastName": user.get("LastName"),
            "email": user.get("Email"),
            "username": user.get("Username"),
            "isActive": user.get("IsActive"),
            "companyName": "Junction",
            "userType": "Internal",
            "type": "User",
            "url": format!("/services/data/{API_VERSION}/chatter/users/{USER_ID}"),
        }),
    )
}

// ---- SOQL -----------------------------------------------------------------------------

struct Query<'a> {
    object: &'a str,
    fields: Vec<String>,
    filter: Option<Expr>,
    order: Vec<(String, bool, bool)>,
    limit: Option<usize>,
    offset: usize,
}

/// Why a SOQL query was refused.
#[derive(Debug)]
pub struct SoqlError {
    /// `MALFORMED_QUERY` or `INVALID_FIELD`.
    pub code: &'static str,
    /// Salesforce-style message.
    pub message: String,
}

impl SoqlError {
    fn response(&self) -> Response {
        sf_error(StatusCode::BAD_REQUEST, self.code, &self.message)
    }
}

fn malformed(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Date(NaiveDate),
    DateTime(chrono::DateTime<chrono::Utc>),
    Sym(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, SoqlError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(malformed("unterminated string literal")),
                    Some('\\') => {
                        let escaped = match chars.get(i + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(&e @ ('\'' | '"' | '\\' | '%' | '_' | 'b' | 'f')) => e,
                            _ => return Err(malformed("Invalid string literal: bad escape")),
                        };
                        if escaped == '%' || escaped == '_' {
                            s.push('\\');
                        }
                        s.push(escaped);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(literal(&text)?);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "!=" => "!=",
                "<>" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    _ => return Err(malformed(format!("unexpected token: '{c}'"))),
                },
            };
            i += if matches!(two.as_str(), "!=" | "<>" | "<=" | ">=") {
                2
            } else {
                1
            };
            out.push(Tok::Sym(sym));
        }
    }
    Ok(out)
}

fn literal(text: &str) -> Result<Tok, SoqlError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Tok::Date(date));
    }
    if text.len() > 10 && text.as_bytes().get(10) == Some(&b'T') {
        let parsed = chrono::DateTime::parse_from_rfc3339(text)
            .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"));
        return parsed
            .map(|t| Tok::DateTime(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                malformed(format!(
                    "line 1:0 no viable alternative at character '{text}'"
                ))
            });
    }
    text.parse::<f64>()
        .map(Tok::Num)
        .map_err(|_| malformed(format!("unexpected token: '{text}'")))
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    object: Option<&'a ObjectInfo>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), SoqlError> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(malformed(format!(
                "unexpected token: '{}', expecting {word}",
                self.describe_next()
            )))
        }
    }

    fn sym(&mut self, sym: &str) -> bool {
        if self.peek()
            == Some(&Tok::Sym(match sym {
                "(" => "(",
                ")" => ")",
                "," => ",",
                _ => return false,
            }))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe_next(&self) -> String {
        match self.peek() {
            None => "<EOF>".to_owned(),
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => n.to_string(),
            Some(Tok::Date(d)) => d.to_string(),
            Some(Tok::DateTime(t)) => t.to_rfc3339(),
            Some(Tok::Sym(s)) => (*s).to_owned(),
        }
    }

    fn word(&mut self) -> Result<String, SoqlError> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(malformed(format!(
                "unexpected token: '{}'",
                self.describe_next()
            ))),
        }
    }

    fn field(&self, name: &str) -> Result<&'a FieldInfo, SoqlError> {
        let object = self.object.ok_or_else(|| malformed("no object"))?;
        object.field(name).ok_or_else(|| SoqlError {
            code: "INVALID_FIELD",
            message: format!(
                "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                object.name
            ),
        })
    }

    fn or(&mut self) -> Result<Expr, SoqlError> {
        let first = self.not()?;
        let mut joiner: Option<&str> = None;
        let mut expr = first;
        loop {
            let next = if self.keyword("AND") {
                "AND"
            } else if self.keyword("OR") {
                "OR"
            } else {
                break;
            };
            if joiner.is_some_and(|j| j != next) {
                return Err(malformed(format!(
                    "unexpected token: '{next}': AND and OR must be grouped with parentheses"
                )));
            }
            joiner = Some(next);
            let right = self.not()?;
            expr = if next == "AND" {
                Expr::And(Box::new(expr), Box::new(right))
            } else {
                Expr::Or(Box::new(expr), Box::new(right))
            };
        }
        Ok(expr)
    }

    fn not(&mut self) -> Result<Expr, SoqlError> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        if self.sym("(") {
            let inner = self.or()?;
            if !self.sym(")") {
                return Err(malformed(format!(
                    "unexpected token: '{}', expecting ')'",
                    self.describe_next()
                )));
            }
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, SoqlError> {
        let name = self.word()?;
        let field = self.field(&name)?;
        let fam = family(field.kind);
        let op = match self.peek() {
            Some(Tok::Sym(s)) => {
                let op = match *s {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    other => return Err(malformed(format!("unexpected token: '{other}'"))),
                };
                self.pos += 1;
                op
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("LIKE") => {
                self.pos += 1;
                Op::Like
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN") => {
                self.pos += 1;
                Op::In
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => {
                self.pos += 1;
                self.expect_keyword("IN")?;
                Op::NotIn
            }
            _ => {
                return Err(malformed(format!(
                    "unexpected token: '{}'",
                    self.describe_next()
                )));
            }
        };
        let values = if matches!(op, Op::In | Op::NotIn) {
            if !self.sym("(") {
                return Err(malformed("IN must be followed by a parenthesized list"));
            }
            let mut values = vec![self.value(field, fam)?];
            while self.sym(",") {
                values.push(self.value(field, fam)?);
            }
            if !self.sym(")") {
                return Err(malformed(format!(
                    "unexpected token: '{}', expecting ')'",
                    self.describe_next()
                )));
            }
            values
        } else {
            vec![self.value(field, fam)?]
        };
        if op == Op::Like && (fam != Family::Text || !matches!(values[0], Lit::Str(_))) {
            return Err(malformed(format!(
                "invalid operator on field '{}': LIKE applies to text fields and quoted strings",
                field.name
            )));
        }
        if values[0] == Lit::Null && !matches!(op, Op::Eq | Op::Ne) {
            return Err(malformed("null can only be compared with = or !="));
        }
        let values = if op == Op::Like {
            // Salesforce's `\%` and `\_` are literal; the shared matcher has no escape, so
            // they become characters that cannot be wildcards.
            values
                .into_iter()
                .map(|v| match v {
                    Lit::Str(s) => Lit::Str(s.replace("\\%", "\u{1}").replace("\\_", "\u{2}")),
                    other => other,
                })
                .collect()
        } else {
            values
                .into_iter()
                .map(|v| match v {
                    Lit::Str(s) => Lit::Str(s.replace("\\%", "%").replace("\\_", "_")),
                    other => other,
                })
                .collect()
        };
        Ok(Expr::Cond {
            field: field.name.to_owned(),
            op,
            values,
        })
    }

    fn value(&mut self, field: &FieldInfo, fam: Family) -> Result<Lit, SoqlError> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| malformed("unexpected end of query"))?;
        self.pos += 1;
        let wrong = |shape: &str| {
            let expected = match fam {
                Family::Text => "string",
                Family::Number => "number",
                Family::Boolean => "boolean",
                Family::Date => "date",
                Family::DateTime => "dateTime",
            };
            let quotes = match fam {
                Family::Text => "and should be enclosed in quotes",
                _ => "and should not be enclosed in quotes",
            };
            malformed(format!(
                "value of filter criterion for field '{}' must be of type {expected} {quotes} (got {shape})",
                field.name
            ))
        };
        match (tok, fam) {
            (Tok::Word(w), _) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            (Tok::Str(s), Family::Text) => Ok(Lit::Str(s)),
            (Tok::Num(n), Family::Number) => Ok(Lit::Num(n)),
            (Tok::Word(w), Family::Boolean) if w.eq_ignore_ascii_case("true") => {
                Ok(Lit::Bool(true))
            }
            (Tok::Word(w), Family::Boolean) if w.eq_ignore_ascii_case("false") => {
                Ok(Lit::Bool(false))
            }
            (Tok::Date(d), Family::Date) => Ok(Lit::Date(d)),
            (Tok::DateTime(t), Family::DateTime) => Ok(Lit::DateTime(t)),
            (Tok::Str(_), _) => Err(wrong("a quoted string")),
            (Tok::Num(_), _) => Err(wrong("a number")),
            (Tok::Date(_), _) => Err(wrong("a date")),
            (Tok::DateTime(_), _) => Err(wrong("a dateTime")),
            (Tok::Word(w), _) => Err(malformed(format!("unexpected token: '{w}'"))),
            (Tok::Sym(s), _) => Err(malformed(format!("unexpected token: '{s}'"))),
        }
    }
}

fn parse_soql<'a>(src: &str, salesforce: &'a Salesforce) -> Result<Query<'a>, SoqlError> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
        object: None,
    };
    p.expect_keyword("SELECT")?;
    enum Selected {
        Field(String),
        All,
    }
    let mut selected = Vec::new();
    let mut bounded_all = false;
    loop {
        let word = p.word()?;
        if word.eq_ignore_ascii_case("FIELDS") {
            if !p.sym("(") {
                return Err(malformed("FIELDS must be followed by ("));
            }
            let which = p.word()?.to_ascii_uppercase();
            if !p.sym(")") {
                return Err(malformed("FIELDS( must be closed"));
            }
            match which.as_str() {
                "ALL" | "CUSTOM" => bounded_all = true,
                "STANDARD" => {}
                other => return Err(malformed(format!("unexpected token: '{other}'"))),
            }
            selected.push(Selected::All);
        } else if word.eq_ignore_ascii_case("FROM") {
            return Err(malformed("unexpected token: 'FROM'"));
        } else {
            selected.push(Selected::Field(word));
        }
        if !p.sym(",") {
            break;
        }
    }
    p.expect_keyword("FROM")?;
    let object_name = p.word()?;
    let object = salesforce.object(&object_name).ok_or_else(|| SoqlError {
        code: "INVALID_TYPE",
        message: format!(
            "sObject type '{object_name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    })?;
    p.object = Some(object);
    let mut fields = Vec::new();
    for s in selected {
        match s {
            Selected::All => fields.extend(
                object
                    .fields
                    .iter()
                    .filter(|f| f.kind != "base64")
                    .map(|f| f.name.to_owned()),
            ),
            Selected::Field(name) => {
                let field = p.field(&name)?;
                fields.push(field.name.to_owned());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in &fields {
        if !seen.insert(f.to_ascii_lowercase()) {
            return Err(malformed(format!("duplicate field selected: {f}")));
        }
    }
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let name = p.word()?;
            let field = p.field(&name)?.name.to_owned();
            let desc = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            let nulls_last = if p.keyword("NULLS") {
                if p.keyword("LAST") {
                    true
                } else {
                    p.expect_keyword("FIRST")?;
                    false
                }
            } else {
                desc
            };
            order.push((field, desc, nulls_last));
            if !p.sym(",") {
                break;
            }
        }
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        match p.peek() {
            Some(Tok::Num(n)) if *n >= 0.0 && n.fract() == 0.0 => {
                limit = Some(*n as usize);
                p.pos += 1;
            }
            _ => return Err(malformed("LIMIT must be a non-negative integer")),
        }
    }
    let mut offset = 0;
    if p.keyword("OFFSET") {
        match p.peek() {
            Some(Tok::Num(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= 2000.0 => {
                offset = *n as usize;
                p.pos += 1;
            }
            _ => return Err(malformed("OFFSET must be an integer of at most 2000")),
        }
    }
    if p.pos < p.toks.len() {
        return Err(malformed(format!(
            "unexpected token: '{}'",
            p.describe_next()
        )));
    }
    if bounded_all && limit.is_none_or(|l| l > 200) {
        return Err(malformed(
            "The SOQL FIELDS function must have a LIMIT of at most 200",
        ));
    }
    Ok(Query {
        object: object.name,
        fields,
        filter,
        order,
        limit,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> Salesforce {
        Salesforce {
            objects: objects(),
            cursors: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_cursor: AtomicU64::new(1),
            api_calls: AtomicU64::new(0),
        }
    }

    #[test]
    fn soql_accepts_typed_literals_and_refuses_mistyped_ones() {
        let sf = vendor();
        let ok = [
            "SELECT Id, Name FROM Account WHERE Name = 'O\\'Brien' AND NumberOfEmployees >= 10",
            "select fields(standard) from contact where Birthdate > 2024-05-01 order by LastName desc nulls last limit 5",
            "SELECT Id FROM Account WHERE (Industry = null OR Industry IN ('Banking', 'Retail')) AND IsPartner = true",
            "SELECT Id FROM Account WHERE CreatedDate < 2024-02-01T00:00:00Z AND NOT Name LIKE 'Acme%'",
        ];
        for q in ok {
            assert!(parse_soql(q, &sf).is_ok(), "{q}");
        }
        let refused = [
            (
                "SELECT Id FROM Contact WHERE Birthdate > '2024-05-01'",
                "MALFORMED_QUERY",
            ),
            ("SELECT Id FROM Account WHERE Name = 5", "MALFORMED_QUERY"),
            ("SELECT Id FROM Account WHERE A = 1", "INVALID_FIELD"),
            (
                "SELECT Id FROM Account WHERE Name = 'a' AND Phone = 'b' OR Industry = 'c'",
                "MALFORMED_QUERY",
            ),
            (
                "SELECT Id FROM Account WHERE Name = 'unterminated",
                "MALFORMED_QUERY",
            ),
            ("SELECT FIELDS(ALL) FROM Account", "MALFORMED_QUERY"),
            ("SELECT Id FROM Account LIMIT", "MALFORMED_QUERY"),
        ];
        for (q, code) in refused {
            match parse_soql(q, &sf) {
                Err(e) => assert_eq!(e.code, code, "{q}: {}", e.message),
                Ok(_) => panic!("accepted: {q}"),
            }
        }
    }
}
