//! HubSpot CRM v3 objects stand-in (shapes from HubSpot's *CRM API: Objects* and
//! *CRM Search* references, *Error handling* and *API usage guidelines and limits*).
//!
//! - `GET /crm/v3/objects/{contacts|companies|deals}` with `limit` (at most 100),
//!   `after`, `properties`; answers `{"results":[{"id","properties",
//!   "createdAt","updatedAt","archived"}],"paging":{"next":{"after","link"}}}`.
//! - `GET|PATCH|DELETE /crm/v3/objects/{type}/{id}` (PATCH and POST take
//!   `{"properties":{…}}`; DELETE → 204), `POST /crm/v3/objects/{type}` → 201.
//! - `POST /crm/v3/objects/{type}/search` with `filterGroups` (at most 5 groups, 6
//!   filters each, 18 in all), operators `EQ NEQ LT LTE GT GTE BETWEEN IN NOT_IN
//!   HAS_PROPERTY NOT_HAS_PROPERTY CONTAINS_TOKEN NOT_CONTAINS_TOKEN`, `sorts`,
//!   `properties`, `limit` (at most 200), `after`; the shape is checked and a bad one
//!   is a 400 `VALIDATION_ERROR`.
//! - Errors: `{"status":"error","message","correlationId","category"}`; a wrong bearer
//!   token gets 401 `INVALID_AUTHENTICATION`.
//! - A rolling rate limit (default 100 requests per 10 s, as for private apps): beyond
//!   it, 429 with HubSpot's `RATE_LIMITS` body; [`HubSpot::rate_limited`] counts them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::filter::{Expr, Lit, Op, order};
use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, lock, seed};

const TYPES: [&str; 3] = ["contacts", "companies", "deals"];
const MAX_LIMIT: usize = 100;
const MAX_SEARCH_LIMIT: usize = 200;

/// Settings of the HubSpot stand-in.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// The accepted private-app token.
    pub token: String,
    /// Records per object type.
    pub records: usize,
    /// Requests allowed per window.
    pub limit: usize,
    /// The rolling window.
    pub window: Duration,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        HubSpotConfig {
            token: "pat-na1-11111111-2222-3333-4444-555555555555".to_owned(),
            records: 1050,
            limit: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// A running HubSpot stand-in.
pub type HubSpotServer = VendorServer<HubSpot>;

/// The HubSpot vendor: rate-limit state and id allocation.
#[derive(Debug)]
pub struct HubSpot {
    limit: usize,
    window: Duration,
    recent: Mutex<VecDeque<Instant>>,
    refused: AtomicUsize,
    next_id: AtomicU64,
}

impl HubSpot {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: HubSpotConfig) -> HubSpotServer {
        let store = Store::new();
        let n = config.records;
        store.seed("contacts", "id", (0..n).map(contact).collect());
        store.seed("companies", "id", (0..n).map(company).collect());
        store.seed("deals", "id", (0..n).map(deal).collect());
        let vendor = HubSpot {
            limit: config.limit,
            window: config.window,
            recent: Mutex::new(VecDeque::new()),
            refused: AtomicUsize::new(0),
            next_id: AtomicU64::new(900_000),
        };
        VendorServer::spawn(vendor, Credential::Bearer(config.token), store).await
    }

    /// How many requests were answered 429 so far.
    pub fn rate_limited(&self) -> usize {
        self.refused.load(AtomicOrdering::Relaxed)
    }

    // Whether one more request fits in the rolling window (and counts it if so).
    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            recent.pop_front();
        }
        if recent.len() >= self.limit {
            return false;
        }
        recent.push_back(now);
        true
    }
}

fn object(id: usize, index: usize, properties: Map<String, Value>) -> Value {
    let created = seed::rfc3339_millis(seed::created(index));
    let mut properties = properties;
    properties.insert("hs_object_id".into(), json!(id.to_string()));
    properties.insert("createdate".into(), json!(created));
    properties.insert(
        "hs_lastmodifieddate".into(),
        json!(seed::rfc3339_millis(seed::created(index + 48))),
    );
    json!({
        "id": id.to_string(),
        "properties": properties,
        "createdAt": created,
        "updatedAt": seed::rfc3339_millis(seed::created(index + 48)),
        "archived": false,
    })
}

fn maybe(index: usize, salt: u64, every: usize, value: Value) -> Value {
    if seed::is_null(index, salt, every) {
        Value::Null
    } else {
        value
    }
}

fn contact(i: usize) -> Value {
    let mut p = Map::new();
    p.insert(
        "firstname".into(),
        maybe(i, 1, 9, json!(seed::first_name(i))),
    );
    p.insert("lastname".into(), json!(seed::last_name(i)));
    p.insert("email".into(), maybe(i, 2, 8, json!(seed::email(i))));
    p.insert("phone".into(), json!(seed::phone(i)));
    p.insert(
        "lifecyclestage".into(),
        json!(seed::choice(&["lead", "customer", "subscriber"], i, 30)),
    );
    object(1001 + i, i, p)
}

fn company(i: usize) -> Value {
    let mut p = Map::new();
    p.insert("name".into(), json!(seed::company(i)));
    p.insert(
        "domain".into(),
        maybe(i, 1, 7, json!(format!("company{}.example.test", i + 1))),
    );
    p.insert("city".into(), maybe(i, 2, 6, json!(seed::city(i))));
    p.insert("industry".into(), json!(seed::industry(i).to_uppercase()));
    p.insert(
        "numberofemployees".into(),
        maybe(i, 3, 5, json!((seed::number(i, 31, 5000) + 1).to_string())),
    );
    object(5001 + i, i, p)
}

fn deal(i: usize) -> Value {
    let mut p = Map::new();
    p.insert(
        "dealname".into(),
        json!(format!("{} deal", seed::company(i))),
    );
    p.insert(
        "amount".into(),
        maybe(i, 1, 7, json!(seed::number(i, 32, 100_000).to_string())),
    );
    p.insert(
        "dealstage".into(),
        json!(seed::choice(
            &["appointmentscheduled", "closedwon", "closedlost"],
            i,
            33
        )),
    );
    p.insert("pipeline".into(), json!("default"));
    p.insert(
        "closedate".into(),
        maybe(
            i,
            2,
            4,
            json!(format!("{}T00:00:00.000Z", seed::date(i, 34))),
        ),
    );
    object(9001 + i, i, p)
}

fn default_properties(kind: &str) -> &'static [&'static str] {
    match kind {
        "contacts" => &[
            "firstname",
            "lastname",
            "email",
            "createdate",
            "lastmodifieddate",
            "hs_object_id",
        ],
        "companies" => &[
            "name",
            "domain",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
        _ => &[
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "closedate",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
    }
}

/// A HubSpot error response.
pub fn hs_error(status: StatusCode, category: &str, message: &str) -> Response {
    super::json(
        status,
        &json!({
            "status": "error",
            "message": message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "category": category,
        }),
    )
}

fn not_found(kind: &str, id: &str) -> Response {
    hs_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        &format!("resource not found: no {kind} with id {id}"),
    )
}

fn validation(message: &str) -> Response {
    hs_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

impl Vendor for HubSpot {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        if !core.authorized(request) {
            return hs_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            );
        }
        if !self.admit() {
            self.refused.fetch_add(1, AtomicOrdering::Relaxed);
            let mut response = super::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": uuid::Uuid::new_v4().to_string(),
                    "policyName": "TEN_SECONDLY_ROLLING",
                    "category": "RATE_LIMITS",
                }),
            );
            let headers = response.headers_mut();
            headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(self.limit));
            headers.insert("x-hubspot-ratelimit-remaining", HeaderValue::from(0));
            headers.insert(
                "x-hubspot-ratelimit-interval-milliseconds",
                HeaderValue::from(self.window.as_millis() as u64),
            );
            return response;
        }
        let segments = request.segments();
        let method = request.method.as_str();
        let mut response = match segments.as_slice() {
            ["crm", "v3", "objects", kind, rest @ ..] if TYPES.contains(kind) => {
                match (rest, method) {
                    ([], "GET") => list(core, request, kind),
                    ([], "POST") => self.create(core, request, kind),
                    (["search"], "POST") => search(core, request, kind),
                    ([id], "GET") => get(core, request, kind, id),
                    ([id], "PATCH") => update(core, request, kind, id),
                    ([id], "DELETE") => {
                        if core.store.delete(kind, id) {
                            StatusCode::NO_CONTENT.into_response()
                        } else {
                            not_found(kind, id)
                        }
                    }
                    _ => hs_error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "VALIDATION_ERROR",
                        "Method not allowed",
                    ),
                }
            }
            _ => hs_error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", "Unknown path"),
        };
        let remaining = self.limit.saturating_sub(lock(&self.recent).len());
        let headers = response.headers_mut();
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(self.limit));
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from(remaining),
        );
        response
    }
}

fn select(record: &Value, wanted: &[String]) -> Value {
    let mut out = record.clone();
    if let Some(Value::Object(properties)) = out.get_mut("properties") {
        let source = properties.clone();
        properties.clear();
        for name in wanted {
            properties.insert(
                name.clone(),
                source.get(name).cloned().unwrap_or(Value::Null),
            );
        }
    }
    out
}

fn wanted(request: &RecordedRequest, kind: &str) -> Vec<String> {
    let named: Vec<String> = request
        .query
        .iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if named.is_empty() {
        default_properties(kind)
            .iter()
            .map(|p| (*p).to_owned())
            .collect()
    } else {
        named
    }
}

fn list(core: &Core, request: &RecordedRequest, kind: &str) -> Response {
    let limit = match request.param("limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return validation(&format!(
                "limit must be an integer between 1 and {MAX_LIMIT}"
            ));
        }
    };
    let records = core.store.all(kind);
    let start = match request.param("after") {
        None => 0,
        Some(after) => match after.parse::<u64>() {
            // `after` is the id to continue past, as HubSpot's opaque cursor is in practice.
            Ok(after) => records.partition_point(|r| id_number(r) <= after),
            Err(_) => return validation(&format!("Invalid after value: {after}")),
        },
    };
    let end = (start + limit).min(records.len());
    let fields = wanted(request, kind);
    let results: Vec<Value> = records[start..end]
        .iter()
        .map(|r| select(r, &fields))
        .collect();
    let mut body = json!({ "results": results });
    if end < records.len() {
        let after = id_number(&records[end - 1]).to_string();
        let mut query = vec![("limit", limit.to_string()), ("after", after.clone())];
        if request.param("properties").is_some() {
            query.push(("properties", fields.join(",")));
        }
        let link = super::absolute(core, &request.path, &query);
        body["paging"] = json!({ "next": { "after": after, "link": link } });
    }
    super::json(StatusCode::OK, &body)
}

fn id_number(record: &Value) -> u64 {
    record
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

fn get(core: &Core, request: &RecordedRequest, kind: &str, id: &str) -> Response {
    match core.store.get(kind, id) {
        Some(record) => super::json(StatusCode::OK, &select(&record, &wanted(request, kind))),
        None => not_found(kind, id),
    }
}

fn properties_of(request: &RecordedRequest) -> Result<Map<String, Value>, Response> {
    let Some(body) = request.json() else {
        return Err(validation("Invalid input JSON: the body is not JSON"));
    };
    let Some(Value::Object(properties)) = body.get("properties") else {
        return Err(validation(
            "Invalid input JSON on line 1: expected an object with a \"properties\" object",
        ));
    };
    for (name, value) in properties {
        if !(value.is_string() || value.is_number() || value.is_boolean() || value.is_null()) {
            return Err(validation(&format!(
                "Property values were not valid: property {name} must be a scalar"
            )));
        }
    }
    // HubSpot stores every property as a string.
    Ok(properties
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Null => Value::Null,
                Value::String(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            };
            (k.clone(), v)
        })
        .collect())
}

impl HubSpot {
    fn create(&self, core: &Core, request: &RecordedRequest, kind: &str) -> Response {
        let properties = match properties_of(request) {
            Ok(p) => p,
            Err(response) => return response,
        };
        let id = self.next_id.fetch_add(1, AtomicOrdering::Relaxed) as usize;
        let mut record = object(id, 0, properties);
        let now = seed::rfc3339_millis(chrono::Utc::now());
        record["createdAt"] = json!(now);
        record["updatedAt"] = json!(now);
        record["properties"]["createdate"] = json!(now);
        core.store.insert(kind, record.clone());
        super::json(StatusCode::CREATED, &record)
    }
}

fn update(core: &Core, request: &RecordedRequest, kind: &str, id: &str) -> Response {
    let changes = match properties_of(request) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let now = seed::rfc3339_millis(chrono::Utc::now());
    let updated = core.store.modify(kind, id, |record| {
        if let Some(Value::Object(properties)) = record.get_mut("properties") {
            properties.extend(changes);
            properties.insert("hs_lastmodifieddate".into(), json!(now));
        }
        record.insert("updatedAt".into(), json!(now));
    });
    match updated {
        Some(record) => super::json(StatusCode::OK, &record),
        None => not_found(kind, id),
    }
}

fn search(core: &Core, request: &RecordedRequest, kind: &str) -> Response {
    let Some(Value::Object(body)) = request.json() else {
        return validation("Invalid input JSON: the body is not a JSON object");
    };
    let known = [
        "filterGroups",
        "sorts",
        "properties",
        "limit",
        "after",
        "query",
    ];
    if let Some(unknown) = body.keys().find(|k| !known.contains(&k.as_str())) {
        return validation(&format!("Unrecognized field \"{unknown}\""));
    }
    let filter = match body.get("filterGroups") {
        None => None,
        Some(groups) => match filter_groups(groups) {
            Ok(f) => f,
            Err(message) => return validation(&message),
        },
    };
    let limit = match body.get("limit") {
        None => 10,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(l) if (1..=MAX_SEARCH_LIMIT as u64).contains(&l) => l as usize,
            _ => return validation(&format!("limit must be between 1 and {MAX_SEARCH_LIMIT}")),
        },
        Some(_) => return validation("limit must be a number"),
    };
    let start = match body.get("after") {
        None => 0,
        Some(Value::String(s)) => match s.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return validation(&format!("Invalid after value: {s}")),
        },
        Some(Value::Number(n)) => n.as_u64().unwrap_or_default() as usize,
        Some(_) => return validation("after must be a string"),
    };
    let fields: Vec<String> = match body.get("properties") {
        None => default_properties(kind)
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        Some(Value::Array(items)) => {
            let mut fields = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => fields.push(s.to_owned()),
                    None => return validation("properties must be an array of strings"),
                }
            }
            fields
        }
        Some(_) => return validation("properties must be an array of strings"),
    };
    let text = body
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    let mut matched: Vec<_> = core
        .store
        .all(kind)
        .into_iter()
        .filter(|r| {
            let props = r.get("properties").unwrap_or(&Value::Null);
            filter.as_ref().is_none_or(|f| f.matches(props))
                && text.as_ref().is_none_or(|t| {
                    props.as_object().is_some_and(|o| {
                        o.values()
                            .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(t)))
                    })
                })
        })
        .collect();
    if let Some(sorts) = body.get("sorts") {
        let Some(sorts) = sorts.as_array() else {
            return validation("sorts must be an array");
        };
        let mut keys = Vec::new();
        for sort in sorts {
            let name = sort.get("propertyName").and_then(Value::as_str);
            let direction = sort
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING");
            match (name, direction) {
                (Some(name), "ASCENDING" | "DESCENDING") => {
                    keys.push((name.to_owned(), direction == "DESCENDING"));
                }
                _ => {
                    return validation(
                        "each sort needs propertyName and direction ASCENDING or DESCENDING",
                    );
                }
            }
        }
        matched.sort_by(|a, b| {
            for (name, desc) in &keys {
                let x = &a["properties"][name.as_str()];
                let y = &b["properties"][name.as_str()];
                let o = order(x, y);
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let total = matched.len();
    let (start, end) = super::page_bounds(total, start, limit);
    let results: Vec<Value> = matched[start..end]
        .iter()
        .map(|r| select(r, &fields))
        .collect();
    let mut out = json!({ "total": total, "results": results });
    if end < total {
        out["paging"] = json!({ "next": { "after": end.to_string() } });
    }
    super::json(StatusCode::OK, &out)
}

fn filter_groups(groups: &Value) -> Result<Option<Expr>, String> {
    let groups = groups.as_array().ok_or("filterGroups must be an array")?;
    if groups.len() > 5 {
        return Err(format!(
            "Too many filter groups ({}); the maximum is 5",
            groups.len()
        ));
    }
    let mut total = 0;
    let mut any: Option<Expr> = None;
    for group in groups {
        let filters = group
            .get("filters")
            .and_then(Value::as_array)
            .ok_or("each filter group needs a filters array")?;
        if filters.len() > 6 {
            return Err(format!(
                "Too many filters in a group ({}); the maximum is 6",
                filters.len()
            ));
        }
        total += filters.len();
        let mut all: Option<Expr> = None;
        for f in filters {
            let cond = one_filter(f)?;
            all = Some(match all {
                None => cond,
                Some(prev) => Expr::And(Box::new(prev), Box::new(cond)),
            });
        }
        if let Some(all) = all {
            any = Some(match any {
                None => all,
                Some(prev) => Expr::Or(Box::new(prev), Box::new(all)),
            });
        }
    }
    if total > 18 {
        return Err(format!("Too many filters ({total}); the maximum is 18"));
    }
    Ok(any)
}

fn lit(value: &Value) -> Result<Lit, String> {
    match value {
        Value::String(s) => Ok(match s.parse::<f64>() {
            Ok(n) => Lit::Num(n),
            Err(_) => Lit::Str(s.clone()),
        }),
        Value::Number(n) => Ok(Lit::Num(n.as_f64().unwrap_or_default())),
        Value::Bool(b) => Ok(Lit::Str(b.to_string())),
        _ => Err(format!(
            "filter value {value} must be a string, number or boolean"
        )),
    }
}

fn one_filter(f: &Value) -> Result<Expr, String> {
    let object = f.as_object().ok_or("each filter must be an object")?;
    let known = ["propertyName", "operator", "value", "values", "highValue"];
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("Unrecognized field \"{unknown}\" in filter"));
    }
    let field = object
        .get("propertyName")
        .and_then(Value::as_str)
        .ok_or("filter is missing propertyName")?
        .to_owned();
    let operator = object
        .get("operator")
        .and_then(Value::as_str)
        .ok_or("filter is missing operator")?;
    let value = || -> Result<Lit, String> {
        lit(object
            .get("value")
            .ok_or_else(|| format!("operator {operator} requires value"))?)
    };
    let values = || -> Result<Vec<Lit>, String> {
        let items = object
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("operator {operator} requires values"))?;
        if items.is_empty() {
            return Err(format!("operator {operator} requires at least one value"));
        }
        items.iter().map(lit).collect()
    };
    let cond = |op, values| Expr::Cond {
        field: field.clone(),
        op,
        values,
    };
    Ok(match operator {
        "EQ" => cond(Op::Eq, vec![value()?]),
        "NEQ" => cond(Op::Ne, vec![value()?]),
        "LT" => cond(Op::Lt, vec![value()?]),
        "LTE" => cond(Op::Le, vec![value()?]),
        "GT" => cond(Op::Gt, vec![value()?]),
        "GTE" => cond(Op::Ge, vec![value()?]),
        "BETWEEN" => {
            let high = lit(object
                .get("highValue")
                .ok_or("operator BETWEEN requires highValue")?)?;
            Expr::And(
                Box::new(cond(Op::Ge, vec![value()?])),
                Box::new(cond(Op::Le, vec![high])),
            )
        }
        "IN" => cond(Op::In, values()?),
        "NOT_IN" => cond(Op::NotIn, values()?),
        "HAS_PROPERTY" => cond(Op::IsNotNull, Vec::new()),
        "NOT_HAS_PROPERTY" => cond(Op::IsNull, Vec::new()),
        "CONTAINS_TOKEN" => {
            let token = match value()? {
                Lit::Str(s) => Lit::Str(s.trim_matches('*').to_owned()),
                Lit::Num(n) => Lit::Str(n.to_string()),
                other => other,
            };
            cond(Op::Contains, vec![token])
        }
        "NOT_CONTAINS_TOKEN" => cond(Op::NotContains, vec![value()?]),
        other => return Err(format!("Unknown filter operator: {other}")),
    })
}
