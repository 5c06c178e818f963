//! Act-On REST API v1 stand-in (shapes from Act-On's developer docs: *List API
//! Overview*, *Marketing List Contact API Overview*, *Download a List*, *Add a Contact*,
//! *Update Contact by Record ID*, *Delete a Contact*, *Get Subscription Categories*,
//! *Get Opt-Outs by Subscription Category*).
//!
//! - `GET /api/1/list?listingtype=CONTACT_LIST` lists the lists (`result`, with
//!   `offset`/`count` paging).
//! - `POST /api/1/list` creates a list from a multipart form, as *Create a New List*
//!   documents: `listname`, `quotecharacter` and `uploadspecs` required, `foldername`,
//!   `headings`, `fieldseparator` and a CSV `file` optional; without a file the answer
//!   is the new list's id (`{"listId","status","message"}`). `PUT /api/1/list/{listid}`
//!   merges a CSV `file` (`mergemode`, `mergekeyheading`); `DELETE /api/1/list/{listid}`
//!   removes a list. Upload specs (*UploadSpecs Overview*) name each column's
//!   `columnHeading` and `columnIndex`, one of them with `columnType` `EMAIL`, and any
//!   other `columnType` is one of Act-On's system fields.
//! - `GET /api/1/list/{listid}` downloads a list with `offset`/`count` (at most 1000)
//!   paging and optional `fields` (`;`-separated headers), answering
//!   `{"listId","count","offset","totalCount","headers":[…],"data":[[…],…]}`.
//! - `POST /api/1/list/{listid}/record` adds a contact, `GET|PUT|DELETE
//!   /api/1/list/{listid}/record/{recordid}` reads, updates and removes one; record ids
//!   look like `l-0001:2a`. Bodies are JSON objects keyed by header.
//! - `GET /api/1/list/optout` (the account's opt-out list, same shape as a download),
//!   `GET /api/1/subscription/category` (categories as `result` entries; Act-On does not
//!   document this body), `GET /api/1/subscription/optout?category=` (paged
//!   `{"offset","count","totalCount","result":[{"email","timestamp"}]}`) and
//!   `PUT /api/1/subscription/optout` (form `email`, `category`, `action`).
//! - A download filters with `modafter`, `modbefore`, `createdafter` and `createdbefore`
//!   (Unix times in milliseconds, exclusive) and, with `datequalifiers=true`, adds the
//!   columns `__created_date` and `__modified_date` (Unix milliseconds), as *Download a
//!   List* documents. Every add, update and merge sets a record's modification time.
//! - Auth: a bearer token; 401 `{"error":"invalid_token","error_description"}`; other
//!   errors `{"status":"failure","message"}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, lock, seed};

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
const CATEGORIES: [&str; 3] = ["Newsletter", "Events", "Product updates"];
/// The `columnType` values an upload spec may name (*UploadSpecs Overview*).
const COLUMN_TYPES: [&str; 24] = [
    "EMAIL",
    "FIRSTNAME",
    "LASTNAME",
    "MIDDLENAME",
    "COMPANY",
    "JOBTITLE",
    "DEPT",
    "BIZ_STREET",
    "BIZ_CITY",
    "BIZ_STATE",
    "BIZ_ZIP",
    "BIZ_COUNTRY",
    "HOME_STREET",
    "HOME_CITY",
    "HOME_STATE",
    "HOME_ZIP",
    "HOME_COUNTRY",
    "BIZ_PHONE",
    "BIZ_FAX",
    "HOME_PHONE",
    "HOME_FAX",
    "CELL_PHONE",
    "BIZ_WEB",
    "HOME_WEB",
];
/// Where a list goes when the upload names no `foldername`.
const DEFAULT_FOLDER: &str = "Default Folder";

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
    next_id: AtomicU64,
    next_list: AtomicU64,
    /// Record id → (created, last modified), Unix milliseconds.
    dates: Mutex<HashMap<String, (i64, i64)>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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

fn list_entry(id: &str, name: &str, folder: &str, headers: &[String]) -> Value {
    json!({ "id": id, "name": name, "type": "CONTACT_LIST", "folderName": folder, "headers": headers })
}

impl ActOn {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: ActOnConfig) -> ActOnServer {
        let store = Store::new();
        let headers: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
        let mut lists = Vec::new();
        let mut dates = HashMap::new();
        for (n, (id, name)) in LISTS.iter().enumerate() {
            let count = if n == 0 { config.contacts } else { 25 };
            for i in 0..count {
                let at = seed::created(i).timestamp_millis();
                dates.insert(format!("{id}:{:x}", i + 1), (at, at));
            }
            store.seed(id, ID_HEADER, (0..count).map(|i| contact(id, i)).collect());
            lists.push(list_entry(id, name, "Contact Lists", &headers));
        }
        store.seed("lists", "id", lists);
        store.seed(
            "optout",
            ID_HEADER,
            (0..40).map(|i| contact("l-optout", i * 25)).collect(),
        );
        for (n, category) in CATEGORIES.iter().enumerate() {
            store.seed(
                &format!("subscription:{category}"),
                "email",
                (0..30)
                    .map(|i| json!({ "email": seed::email(i * 7 + n), "timestamp": seed::created(i).timestamp_millis() }))
                    .collect(),
            );
        }
        let vendor = ActOn {
            next_id: AtomicU64::new(0x10_0000),
            next_list: AtomicU64::new(LISTS.len() as u64 + 1),
            dates: Mutex::new(dates),
        };
        VendorServer::spawn(vendor, Credential::Bearer(config.token), store).await
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    super::json(status, &json!({ "status": "failure", "message": message }))
}

fn success(message: &str, extra: Value) -> Response {
    let mut body = json!({ "status": "success", "message": message });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    super::json(StatusCode::OK, &body)
}

fn headers_of(core: &Core, list: &str) -> Option<Vec<String>> {
    let entry = core.store.get("lists", list)?;
    Some(
        entry["headers"]
            .as_array()?
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect(),
    )
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
        let no_list = |id: &str| failure(StatusCode::NOT_FOUND, &format!("List {id} not found"));
        match (segments.as_slice(), method) {
            (["api", "1", "list"], "GET") => listing(core, request),
            (["api", "1", "list"], "POST") => self.create_list(core, request),
            (["api", "1", "list", "optout"], "GET") => {
                self.download(core, request, "optout", &HEADERS.map(str::to_owned))
            }
            (["api", "1", "list", id], _) => match headers_of(core, id) {
                None => no_list(id),
                Some(headers) => match method {
                    "GET" => self.download(core, request, id, &headers),
                    "PUT" => self.merge_list(core, request, id, &headers),
                    "DELETE" => {
                        core.store.delete("lists", id);
                        core.store.seed(id, ID_HEADER, Vec::new());
                        success("List deleted", json!({}))
                    }
                    _ => failure(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
                },
            },
            (["api", "1", "list", id, "record"], "POST") => match headers_of(core, id) {
                Some(headers) => self.add(core, request, id, &headers),
                None => no_list(id),
            },
            (["api", "1", "list", list, "record", record], _) => match headers_of(core, list) {
                Some(headers) => self.record_op(core, request, list, record, &headers),
                None => no_list(list),
            },
            (["api", "1", "subscription", "category"], "GET") => super::json(
                StatusCode::OK,
                &json!({ "result": CATEGORIES.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>() }),
            ),
            (["api", "1", "subscription", "optout"], "GET") => optouts(core, request),
            (["api", "1", "subscription", "optout"], "PUT") => set_subscription(core, request),
            _ => failure(StatusCode::NOT_FOUND, "Resource not found"),
        }
    }
}

fn paging(request: &RecordedRequest) -> Result<(usize, usize), Response> {
    let offset = super::number_param(request, "offset")
        .map_err(|m| failure(StatusCode::BAD_REQUEST, &m))?
        .unwrap_or(0);
    let count = match super::number_param(request, "count") {
        Ok(None) => MAX_COUNT,
        Ok(Some(n)) if (1..=MAX_COUNT).contains(&n) => n,
        Ok(Some(_)) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                &format!("count must be between 1 and {MAX_COUNT}"),
            ));
        }
        Err(message) => return Err(failure(StatusCode::BAD_REQUEST, &message)),
    };
    Ok((offset, count))
}

fn listing(core: &Core, request: &RecordedRequest) -> Response {
    match request.param("listingtype") {
        None | Some("CONTACT_LIST") => {}
        Some(other) => {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("Invalid listingtype {other}"),
            );
        }
    }
    let (offset, count) = match paging(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let lists = core.store.all("lists");
    let (start, end) = super::page_bounds(lists.len(), offset, count);
    let result: Vec<Value> = lists[start..end]
        .iter()
        .map(|l| {
            let mut entry = (**l).clone();
            let id = entry["id"].as_str().unwrap_or_default().to_owned();
            entry["size"] = json!(core.store.len(&id));
            entry
        })
        .collect();
    super::json(
        StatusCode::OK,
        &json!({ "listType": "CONTACT_LIST", "offset": offset, "count": result.len(), "totalCount": lists.len(), "result": result }),
    )
}

struct Upload {
    headings: Vec<String>,
    rows: Vec<Vec<String>>,
}

// Reads an upload: `uploadspecs` names the columns; the CSV `file` holds the rows.
fn read_upload(request: &RecordedRequest, file_required: bool) -> Result<Upload, String> {
    let specs = request
        .part_text("uploadspecs")
        .ok_or("uploadspecs is required")?;
    let specs: Vec<Value> = serde_json::from_str(&specs)
        .map_err(|e| format!("uploadspecs is not a JSON array: {e}"))?;
    let mut headings = Vec::new();
    let mut has_email = false;
    for spec in &specs {
        let heading = spec
            .get("columnHeading")
            .and_then(Value::as_str)
            .ok_or("each uploadspec needs a columnHeading")?;
        if !spec
            .get("columnIndex")
            .is_some_and(|i| i.is_u64() || i.as_str().is_some_and(|i| i.parse::<u64>().is_ok()))
        {
            return Err(format!("uploadspec {heading} needs a columnIndex"));
        }
        match spec.get("columnType").map(|t| t.as_str()) {
            None => {}
            Some(Some("EMAIL")) => has_email = true,
            Some(Some(kind)) if COLUMN_TYPES.contains(&kind) => {}
            Some(_) => return Err("Upload specs contain an invalid column type value.".to_owned()),
        }
        match spec.get("ignoreColumn").and_then(Value::as_str) {
            None | Some("N") => headings.push(heading.to_owned()),
            Some("Y") => headings.push(String::new()),
            Some(other) => return Err(format!("ignoreColumn must be Y or N, got {other}")),
        }
    }
    if !has_email {
        return Err("Upload specs must name the EMAIL column (columnType EMAIL)".to_owned());
    }
    let separator = match request.part_text("fieldseparator").as_deref() {
        None | Some("COMMA") => ',',
        Some("TAB") => '\t',
        Some("SEMI") => ';',
        Some(other) => {
            return Err(format!(
                "fieldseparator must be COMMA, TAB or SEMI, got {other}"
            ));
        }
    };
    let quote = match request.part_text("quotecharacter").as_deref() {
        None => return Err("quotecharacter is required".to_owned()),
        Some("NONE") => None,
        Some("DOUBLE_QUOTE") => Some('"'),
        Some("SINGLE_QUOTE") => Some('\''),
        Some(other) => {
            return Err(format!(
                "quotecharacter must be NONE, SINGLE_QUOTE or DOUBLE_QUOTE, got {other}"
            ));
        }
    };
    // "Y" by default; any other value is "N".
    let has_headings = request.part_text("headings").is_none_or(|h| h == "Y");
    let file = match request.part_text("file") {
        Some(file) => file,
        None if file_required => return Err("file is required".to_owned()),
        None => String::new(),
    };
    let mut rows: Vec<Vec<String>> = file
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| split_row(line, separator, quote))
        .collect();
    if has_headings && !rows.is_empty() {
        rows.remove(0);
    }
    if let Some((n, row)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != headings.len())
    {
        return Err(format!(
            "row {} has {} columns but uploadspecs names {}",
            n + 1,
            row.len(),
            headings.len()
        ));
    }
    Ok(Upload { headings, rows })
}

fn split_row(line: &str, separator: char, quote: Option<char>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    for c in line.chars() {
        if Some(c) == quote {
            quoted = !quoted;
        } else if c == separator && !quoted {
            out.push(std::mem::take(&mut cell));
        } else {
            cell.push(c);
        }
    }
    out.push(cell);
    out
}

impl ActOn {
    fn new_record_id(&self, list: &str) -> String {
        let id = format!(
            "{list}:{:x}",
            self.next_id.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let now = now_ms();
        lock(&self.dates).insert(id.clone(), (now, now));
        id
    }

    /// The record changed now.
    fn touch(&self, id: &str) {
        let now = now_ms();
        lock(&self.dates)
            .entry(id.to_owned())
            .and_modify(|d| d.1 = now)
            .or_insert((now, now));
    }

    fn row(&self, list: &str, headings: &[String], cells: &[String]) -> Value {
        let mut row = Map::new();
        for (heading, cell) in headings.iter().zip(cells) {
            if !heading.is_empty() {
                row.insert(heading.clone(), json!(cell));
            }
        }
        row.insert(ID_HEADER.into(), json!(self.new_record_id(list)));
        Value::Object(row)
    }

    fn create_list(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !request
            .header("content-type")
            .is_some_and(|t| t.starts_with("multipart/form-data"))
        {
            return failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "A list is created from a multipart/form-data request",
            );
        }
        let Some(name) = request
            .part_text("listname")
            .filter(|n| !n.trim().is_empty())
        else {
            return failure(StatusCode::BAD_REQUEST, "listname is required");
        };
        let upload = match read_upload(request, false) {
            Ok(u) => u,
            Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
        };
        let id = format!(
            "l-{:04}",
            self.next_list.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let headers: Vec<String> = upload
            .headings
            .iter()
            .filter(|h| !h.is_empty())
            .cloned()
            .collect();
        let rows = upload
            .rows
            .iter()
            .map(|cells| self.row(&id, &upload.headings, cells))
            .collect();
        let folder = request
            .part_text("foldername")
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_FOLDER.to_owned());
        core.store.seed(&id, ID_HEADER, rows);
        core.store
            .insert("lists", list_entry(&id, &name, &folder, &headers));
        success("List created", json!({ "listId": id }))
    }
}

impl ActOn {
    fn merge_list(
        &self,
        core: &Core,
        request: &RecordedRequest,
        list: &str,
        headers: &[String],
    ) -> Response {
        let upload = match read_upload(request, true) {
            Ok(u) => u,
            Err(message) => return failure(StatusCode::BAD_REQUEST, &message),
        };
        if let Some(unknown) = upload
            .headings
            .iter()
            .find(|h| !h.is_empty() && !headers.contains(h))
        {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("Unknown column heading: {unknown}"),
            );
        }
        let mode = request
            .part_text("mergemode")
            .unwrap_or_else(|| "APPEND".to_owned());
        let key = request
            .part_text("mergekeyheading")
            .unwrap_or_else(|| "E-mail Address".to_owned());
        let Some(key_index) = upload.headings.iter().position(|h| *h == key) else {
            return failure(
                StatusCode::BAD_REQUEST,
                &format!("mergekeyheading {key} is not an uploaded column"),
            );
        };
        let existing = |value: &str| {
            core.store
                .all(list)
                .iter()
                .find(|r| r.get(&key).and_then(Value::as_str) == Some(value))
                .and_then(|r| r[ID_HEADER].as_str().map(str::to_owned))
        };
        let fields = |cells: &Vec<String>| -> Map<String, Value> {
            upload
                .headings
                .iter()
                .zip(cells)
                .filter(|(h, _)| !h.is_empty())
                .map(|(h, c)| (h.clone(), json!(c)))
                .collect()
        };
        let add = |cells: &Vec<String>| {
            let mut row = fields(cells);
            row.insert(ID_HEADER.into(), json!(self.new_record_id(list)));
            core.store.insert(list, Value::Object(row));
        };
        match mode.as_str() {
            "REPLACE" => {
                core.store.seed(list, ID_HEADER, Vec::new());
                upload.rows.iter().for_each(add);
            }
            "APPEND" => upload.rows.iter().for_each(add),
            "APPEND_NO_DUPLICATES" | "UPSERT" | "UPDATE_ONLY" => {
                for cells in &upload.rows {
                    match existing(&cells[key_index]) {
                        Some(id) if mode != "APPEND_NO_DUPLICATES" => {
                            core.store.update(list, &id, &fields(cells));
                            self.touch(&id);
                        }
                        Some(_) => {}
                        None if mode != "UPDATE_ONLY" => add(cells),
                        None => {}
                    }
                }
            }
            other => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "mergemode must be APPEND, APPEND_NO_DUPLICATES, UPSERT, UPDATE_ONLY or REPLACE, got {other}"
                    ),
                );
            }
        }
        success("List updated", json!({ "listId": list }))
    }
}

impl ActOn {
    fn add(
        &self,
        core: &Core,
        request: &RecordedRequest,
        list: &str,
        headers: &[String],
    ) -> Response {
        let Some(Value::Object(fields)) = request.json() else {
            return failure(
                StatusCode::BAD_REQUEST,
                "The body must be a JSON object of header/value pairs",
            );
        };
        if let Err(response) = check_headers(&fields, headers) {
            return response;
        }
        if fields
            .get("E-mail Address")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return failure(StatusCode::BAD_REQUEST, "E-mail Address is required");
        }
        let id = self.new_record_id(list);
        let mut row = Map::new();
        for header in headers {
            row.insert(
                header.clone(),
                fields.get(header).cloned().unwrap_or(Value::Null),
            );
        }
        row.insert(ID_HEADER.into(), json!(id));
        core.store.insert(list, Value::Object(row));
        success("Record added", json!({ "id": id, "contact_id": id }))
    }
}

fn check_headers(fields: &Map<String, Value>, headers: &[String]) -> Result<(), Response> {
    match fields.keys().find(|k| !headers.contains(k)) {
        Some(unknown) => Err(failure(
            StatusCode::BAD_REQUEST,
            &format!("Unknown column heading: {unknown}"),
        )),
        None => Ok(()),
    }
}

impl ActOn {
    fn record_op(
        &self,
        core: &Core,
        request: &RecordedRequest,
        list: &str,
        record: &str,
        headers: &[String],
    ) -> Response {
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
                if let Err(response) = check_headers(&fields, headers) {
                    return response;
                }
                match core.store.update(list, record, &fields) {
                    Some(_) => {
                        self.touch(record);
                        success(
                            "Record updated",
                            json!({ "id": record, "contact_id": record }),
                        )
                    }
                    None => missing(),
                }
            }
            "DELETE" => {
                if core.store.delete(list, record) {
                    success("Record deleted", json!({}))
                } else {
                    missing()
                }
            }
            _ => failure(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        }
    }
}

fn category(name: Option<&str>) -> Result<&'static str, Response> {
    let Some(name) = name else {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "The category parameter is required",
        ));
    };
    CATEGORIES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            failure(
                StatusCode::BAD_REQUEST,
                &format!("Unknown subscription category {name}"),
            )
        })
}

fn optouts(core: &Core, request: &RecordedRequest) -> Response {
    let category = match category(request.param("category")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (offset, count) = match paging(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let entries = core.store.all(&format!("subscription:{category}"));
    let (start, end) = super::page_bounds(entries.len(), offset, count);
    let result: Vec<Value> = entries[start..end].iter().map(|e| (**e).clone()).collect();
    super::json(
        StatusCode::OK,
        &json!({ "offset": offset, "count": result.len(), "totalCount": entries.len(), "result": result }),
    )
}

fn set_subscription(core: &Core, request: &RecordedRequest) -> Response {
    let form = request.form();
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(email) = get("email").filter(|e| e.contains('@')) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "A valid email is required (form-encoded body)",
        );
    };
    let category = match category(get("category")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let collection = format!("subscription:{category}");
    match get("action").unwrap_or("optout") {
        "optout" => {
            if core.store.get(&collection, email).is_none() {
                core.store.insert(
                    &collection,
                    json!({ "email": email, "timestamp": chrono::Utc::now().timestamp_millis() }),
                );
            }
            success(
                &format!("OptOut entry added for subscription category : {category}"),
                json!({}),
            )
        }
        "optin" => {
            core.store.delete(&collection, email);
            success(
                &format!("OptIn entry added for subscription category : {category}"),
                json!({}),
            )
        }
        other => failure(
            StatusCode::BAD_REQUEST,
            &format!("action must be optin or optout, got {other}"),
        ),
    }
}

impl ActOn {
    fn download(
        &self,
        core: &Core,
        request: &RecordedRequest,
        list: &str,
        known: &[String],
    ) -> Response {
        let (offset, count) = match paging(request) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let mut bounds = [None; 4];
        for (slot, name) in
            bounds
                .iter_mut()
                .zip(["modafter", "modbefore", "createdafter", "createdbefore"])
        {
            if let Some(v) = request.param(name) {
                match v.trim().parse::<i64>() {
                    Ok(n) => *slot = Some(n),
                    Err(_) => {
                        return failure(
                            StatusCode::BAD_REQUEST,
                            &format!("{name} must be a Unix timestamp in milliseconds"),
                        );
                    }
                }
            }
        }
        let qualifiers = request.param("datequalifiers") == Some("true");
        if qualifiers && request.param("fields").is_some() {
            return failure(
                StatusCode::BAD_REQUEST,
                "datequalifiers cannot be used with fields",
            );
        }
        let headers: Vec<String> = match request.param("fields") {
            None => std::iter::once(ID_HEADER.to_owned())
                .chain(known.iter().cloned())
                .collect(),
            Some(list) => {
                let mut headers = vec![ID_HEADER.to_owned()];
                for h in list.split(';').map(str::trim).filter(|h| !h.is_empty()) {
                    if !known.iter().any(|k| k == h) {
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
        let dates = lock(&self.dates).clone();
        let date_of = |row: &Value| {
            row[ID_HEADER]
                .as_str()
                .and_then(|id| dates.get(id).copied())
                .unwrap_or((0, 0))
        };
        let [mod_after, mod_before, created_after, created_before] = bounds;
        let rows: Vec<_> = core
            .store
            .all(list)
            .into_iter()
            .filter(|row| {
                let (created, modified) = date_of(row);
                mod_after.is_none_or(|t| modified > t)
                    && mod_before.is_none_or(|t| modified < t)
                    && created_after.is_none_or(|t| created > t)
                    && created_before.is_none_or(|t| created < t)
            })
            .collect();
        let (start, end) = super::page_bounds(rows.len(), offset, count);
        let data: Vec<Value> = rows[start..end]
            .iter()
            .map(|row| {
                let mut cells: Vec<Value> = headers
                    .iter()
                    .map(|h| row.get(h).cloned().unwrap_or(Value::Null))
                    .collect();
                if qualifiers {
                    let (created, modified) = date_of(row);
                    cells.push(json!(created));
                    cells.push(json!(modified));
                }
                Value::Array(cells)
            })
            .collect();
        let mut headers = headers;
        if qualifiers {
            headers.push("__created_date".to_owned());
            headers.push("__modified_date".to_owned());
        }
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
}
