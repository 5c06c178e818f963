//! Act-On REST API v1 stand-in (shapes from Act-On's developer docs: *List API
//! Overview*, *Marketing List Contact API Overview*, *Download a List*, *Add a Contact*,
//! *Update Contact by Record ID*, *Delete a Contact*, *Get Subscription Categories*,
//! *Get Opt-Outs by Subscription Category*).
//!
//! - `GET /api/1/list?listingtype=CONTACT_LIST` lists the lists in folders.
//! - `GET /api/1/list/{listid}` downloads a list with `offset`/`count` (at most 1000)
//!   paging and optional `fields` (`;`-separated headers), answering
//!   `{"listId","count","offset","totalCount","headers":[…],"data":[[…],…]}`.
//! - `POST /api/1/list/{listid}/record` adds a contact, `GET|PUT|DELETE
//!   /api/1/list/{listid}/record/{recordid}` reads, updates and removes one; record ids
//!   look like `l-0001:2a`. Bodies are JSON objects keyed by header.
//! - `GET /api/1/list/optout` (the account's opt-out list, same shape as a download),
//!   `GET /api/1/subscription/category`, `GET /api/1/subscription/optout?category=`.
//! - Auth: a bearer token; 401 `{"error":"invalid_token","error_description"}`; other
//!   errors `{"status":"failure","message"}`.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};

const MAX_COUNT: usize = 1000;
const HEADERS: [&str; 7] = [
    "E-mail Address",
    "First Name",
    "Last Name",
    "Company",
    "Business Phone",
    "City",
    "Created Date",
];
/// The header that holds each row's record id in a list download.
pub const ID_HEADER: &str = "_contact_id_";
const CATEGORIES: [(&str, &str); 3] = [
    ("newsletter", "Newsletter"),
    ("events", "Events"),
    ("product", "Product updates"),
];

/// Settings of the Act-On stand-in.
#[derive(Debug, Clone)]
pub struct ActOnConfig {
    /// The accepted bearer token.
    pub token: String,
    /// Contacts in the first list (the others hold 25 each).
    pub contacts: usize,
}

impl Default for ActOnConfig {
    fn default() -> Self {
        ActOnConfig {
            token: "acton-0a1b2c3d-4e5f-6789-abcd-ef0123456789".to_owned(),
            contacts: 1050,
        }
    }
}

/// A running Act-On stand-in.
pub type ActOnServer = VendorServer<ActOn>;

/// The Act-On vendor.
#[derive(Debug)]
pub struct ActOn {
    lists: Vec<(String, String)>,
    next_id: AtomicU64,
}

/// The ids of the seeded lists, first one the big one.
pub const LISTS: [(&str, &str); 3] = [
    ("l-0001", "Customers"),
    ("l-0002", "Prospects"),
    ("l-0003", "Partners"),
];

fn contact(list: &str, i: usize) -> Value {
    let mut row = Map::new();
    row.insert(ID_HEADER.into(), json!(format!("{list}:{:x}", i + 1)));
    row.insert("E-mail Address".into(), json!(seed::email(i)));
    row.insert(
        "First Name".into(),
        if seed::is_null(i, 1, 8) {
            Value::Null
        } else {
            json!(seed::first_name(i))
        },
    );
    row.insert("Last Name".into(), json!(seed::last_name(i)));
    row.insert(
        "Company".into(),
        if seed::is_null(i, 2, 5) {
            Value::Null
        } else {
            json!(seed::company(i))
        },
    );
    row.insert("Business Phone".into(), json!(seed::phone(i)));
    row.insert("City".into(), json!(seed::city(i)));
    row.insert(
        "Created Date".into(),
        json!(seed::created(i).format("%m/%d/%Y %H:%M").to_string()),
    );
    Value::Object(row)
}

impl ActOn {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: ActOnConfig) -> ActOnServer {
        let store = Store::new();
        for (n, (id, _)) in LISTS.iter().enumerate() {
            let count = if n == 0 { config.contacts } else { 25 };
            store.seed(id, ID_HEADER, (0..count).map(|i| contact(id, i)).collect());
        }
        store.seed(
            "optout",
            ID_HEADER,
            (0..40).map(|i| contact("l-optout", i * 25)).collect(),
        );
        let vendor = ActOn {
            lists: LISTS
                .iter()
                .map(|(i, n)| ((*i).to_owned(), (*n).to_owned()))
                .collect(),
            next_id: AtomicU64::new(0x10_0000),
        };
        VendorServer::spawn(vendor, Credential::Bearer(config.token), store).await
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    super::json(status, &json!({ "status": "failure", "message": message }))
}

impl Vendor for ActOn {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return super::json(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": "invalid_token", "error_description": "Access token is invalid or has expired" }),
            );
        }
        let segments = request.segments();
        let method = request.method.as_str();
        match (segments.as_slice(), method) {
            (["api", "1", "list"], "GET") => self.listing(core, request),
            (["api", "1", "list", "optout"], "GET") => download(core, request, "optout"),
            (["api", "1", "list", id], "GET") => match self.list(id) {
                Some(id) => download(core, request, id),
                None => failure(StatusCode::NOT_FOUND, &format!("List {id} not found")),
            },
            (["api", "1", "list", id, "record"], "POST") => match self.list(id) {
                Some(id) => self.add(core, request, id),
                None => failure(StatusCode::NOT_FOUND, &format!("List {id} not found")),
            },
            (["api", "1", "list", list, "record", record], _) => {
                let Some(list) = self.list(list) else {
                    return failure(StatusCode::NOT_FOUND, &format!("List {list} not found"));
                };
                record_op(core, request, list, record)
            }
            (["api", "1", "subscription", "category"], "GET") => super::json(
                StatusCode::OK,
                &json!({
                    "categories": CATEGORIES.iter().map(|(id, name)| json!({ "header": id, "name": name })).collect::<Vec<_>>()
                }),
            ),
            (["api", "1", "subscription", "optout"], "GET") => {
                let Some(category) = request.param("category") else {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        "The category parameter is required",
                    );
                };
                let Some(n) = CATEGORIES.iter().position(|(id, _)| *id == category) else {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        &format!("Unknown subscription category {category}"),
                    );
                };
                let emails: Vec<String> = (0..30).map(|i| seed::email(i * 7 + n)).collect();
                super::json(
                    StatusCode::OK,
                    &json!({ "category": category, "optouts": emails }),
                )
            }
            _ => failure(StatusCode::NOT_FOUND, "Resource not found"),
        }
    }
}

impl ActOn {
    fn list(&self, id: &str) -> Option<&str> {
        self.lists
            .iter()
            .find(|(i, _)| i == id)
            .map(|(i, _)| i.as_str())
    }

    fn listing(&self, core: &Core, request: &RecordedRequest) -> Response {
        match request.param("listingtype") {
            None | Some("CONTACT_LIST") => {}
            Some(other) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid listingtype {other}"),
                );
            }
        }
        let entries: Vec<Value> = self
            .lists
            .iter()
            .map(|(id, name)| {
                json!({ "id": id, "name": name, "size": core.store.len(id), "type": "CONTACT_LIST", "folderName": "Contact Lists" })
            })
            .collect();
        super::json(
            StatusCode::OK,
            &json!({ "listType": "CONTACT_LIST", "folders": [{ "name": "Contact Lists", "id": "f-0001", "entries": entries }] }),
        )
    }

    fn add(&self, core: &Core, request: &RecordedRequest, list: &str) -> Response {
        let Some(Value::Object(fields)) = request.json() else {
            return failure(
                StatusCode::BAD_REQUEST,
                "The body must be a JSON object of header/value pairs",
            );
        };
        if let Err(response) = check_headers(&fields) {
            return response;
        }
        if fields
            .get("E-mail Address")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return failure(StatusCode::BAD_REQUEST, "E-mail Address is required");
        }
        let id = format!(
            "{list}:{:x}",
            self.next_id.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let mut row = Map::new();
        for header in HEADERS {
            row.insert(
                header.into(),
                fields.get(header).cloned().unwrap_or(Value::Null),
            );
        }
        row.insert(ID_HEADER.into(), json!(id));
        core.store.insert(list, Value::Object(row));
        super::json(
            StatusCode::OK,
            &json!({ "status": "success", "message": "Record added", "id": id, "contact_id": id }),
        )
    }
}

fn check_headers(fields: &Map<String, Value>) -> Result<(), Response> {
    match fields.keys().find(|k| !HEADERS.contains(&k.as_str())) {
        Some(unknown) => Err(failure(
            StatusCode::BAD_REQUEST,
            &format!("Unknown column heading: {unknown}"),
        )),
        None => Ok(()),
    }
}

fn record_op(core: &Core, request: &RecordedRequest, list: &str, record: &str) -> Response {
    let missing = || failure(StatusCode::NOT_FOUND, &format!("Record {record} not found"));
    match request.method.as_str() {
        "GET" => match core.store.get(list, record) {
            Some(row) => super::json(StatusCode::OK, &row),
            None => missing(),
        },
        "PUT" => {
            let Some(Value::Object(fields)) = request.json() else {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "The body must be a JSON object of header/value pairs",
                );
            };
            if let Err(response) = check_headers(&fields) {
                return response;
            }
            match core.store.update(list, record, &fields) {
                Some(_) => super::json(
                    StatusCode::OK,
                    &json!({ "status": "success", "message": "Record updated", "id": record, "contact_id": record }),
                ),
                None => missing(),
            }
        }
        "DELETE" => {
            if core.store.delete(list, record) {
                super::json(
                    StatusCode::OK,
                    &json!({ "status": "success", "message": "Record deleted" }),
                )
            } else {
                missing()
            }
        }
        _ => failure(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
}

fn download(core: &Core, request: &RecordedRequest, list: &str) -> Response {
    let offset = match super::number_param(request, "offset") {
        Ok(n) => n.unwrap_or(0),
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let count = match super::number_param(request, "count") {
        Ok(None) => MAX_COUNT,
        Ok(Some(n)) if (1..=MAX_COUNT).contains(&n) => n,
        Ok(Some(_)) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("count must be between 1 and {MAX_COUNT}"),
            );
        }
        Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
    };
    let headers: Vec<String> = match request.param("fields") {
        None => std::iter::once(ID_HEADER)
            .chain(HEADERS)
            .map(str::to_owned)
            .collect(),
        Some(list) => {
            let mut headers = vec![ID_HEADER.to_owned()];
            for h in list.split(';').map(str::trim).filter(|h| !h.is_empty()) {
                if !HEADERS.contains(&h) {
                    return failure(
                        StatusCode::BAD_REQUEST,
                        &format!("Unknown column heading: {h}"),
                    );
                }
                headers.push(h.to_owned());
            }
            headers
        }
    };
    let rows = core.store.all(list);
    let (start, end) = super::page_bounds(rows.len(), offset, count);
    let data: Vec<Value> = rows[start..end]
        .iter()
        .map(|row| {
            Value::Array(
                headers
                    .iter()
                    .map(|h| row.get(h).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect();
    super::json(
        StatusCode::OK,
        &json!({
            "listId": list,
            "count": end - start,
            "offset": offset,
            "totalCount": rows.len(),
            "headers": headers,
            "data": data,
        }),
    )
}
