//! The page, lead-ads and feed nodes and edges of the Graph stand-in.

// A refusal is Graph's error response itself, as in the other stand-ins.
#![allow(clippy::result_large_err)]

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use url::Url;

use super::{
    DEFAULT_LIMIT, GraphConfig, MAX_LIMIT, PAGE_CATEGORY, Params, Principal, Shared, USER_ID,
    USER_NAME, authenticate, graph_error, invalid_cursor, select_fields,
};
use crate::vendors::{Store, seed};

/// The app every seeded page is subscribed to.
pub const APP_NAME: &str = "Junction";

fn time(index: usize) -> String {
    seed::created(index)
        .format("%Y-%m-%dT%H:%M:%S+0000")
        .to_string()
}

pub(super) fn seed_nodes(config: &GraphConfig) -> Store {
    let store = Store::new();
    let mut forms = Vec::new();
    let mut leads = Vec::new();
    let mut posts = Vec::new();
    let mut comments = Vec::new();
    let mut likes = Vec::new();
    let mut subscriptions = Vec::new();
    for (p, page) in config.pages.iter().enumerate() {
        for n in 0..2 {
            let form_id = format!("20{p:06}{n:04}");
            forms.push(json!({
                "id": form_id,
                "page_id": page.id,
                "name": format!("{} form {}", page.name, n + 1),
                "status": if n == 0 { "ACTIVE" } else { "ARCHIVED" },
                "locale": "en_US",
                "created_time": time(p * 10 + n),
            }));
            let count = if p == 0 && n == 0 { config.leads } else { 3 };
            for i in 0..count {
                let mut field_data = vec![
                    json!({ "name": "email", "values": [seed::email(i)] }),
                    json!({ "name": "full_name", "values": [format!("{} {}", seed::first_name(i), seed::last_name(i))] }),
                ];
                if let Some(phone) = seed::phone(i) {
                    field_data.push(json!({ "name": "phone_number", "values": [phone] }));
                }
                let organic = seed::is_null(i, 1, 4);
                let mut lead = json!({
                    "id": format!("30{p:04}{n:02}{i:07}"),
                    "form_id": form_id,
                    "created_time": time(i),
                    "field_data": field_data,
                    "is_organic": organic,
                    "platform": "fb",
                });
                // Graph leaves ad fields out for organic leads rather than sending null.
                if !organic {
                    lead["ad_id"] = json!(format!("6{:012}", seed::number(i, 80, 1000)));
                    lead["campaign_id"] = json!("6000000000001");
                }
                leads.push(lead);
            }
        }
        subscriptions.push(json!({
            "id": page.id,
            "apps": [{ "id": config.client_id, "name": APP_NAME, "subscribed_fields": ["leadgen"] }],
        }));
        for i in 0..30 {
            let post_id = format!("{}_{:015}", page.id, 500 + i);
            let mut post = json!({
                "id": post_id,
                "owner": page.id,
                "created_time": time(i * 5),
                "from": { "id": page.id, "name": page.name },
            });
            if seed::is_null(i, 2, 5) {
                post["story"] = json!(format!("{} updated their cover photo.", page.name));
            } else {
                post["message"] = json!(format!("News from {} #{}", seed::city(i), i + 1));
            }
            posts.push(post);
            for c in 0..(i % 4) {
                comments.push(json!({
                    "id": format!("{post_id}_{c}"),
                    "post_id": post_id,
                    "message": format!("Comment {}", c + 1),
                    "created_time": time(i * 5 + c + 1),
                    "from": { "id": format!("99{:08}", c), "name": format!("{} {}", seed::first_name(c), seed::last_name(c)) },
                }));
            }
            for l in 0..(i % 5) {
                likes.push(json!({
                    "id": format!("98{:08}", l),
                    "key": format!("{post_id}:{l}"),
                    "post_id": post_id,
                    "name": format!("{} {}", seed::first_name(l + 3), seed::last_name(l + 3)),
                }));
            }
        }
    }
    for i in 0..10 {
        posts.push(json!({
            "id": format!("{USER_ID}_{:015}", 700 + i),
            "owner": USER_ID,
            "created_time": time(i * 7),
            "from": { "id": USER_ID, "name": USER_NAME },
            "message": format!("Status {}", i + 1),
        }));
    }
    store.seed("forms", "id", forms);
    store.seed("leads", "id", leads);
    store.seed("posts", "id", posts);
    store.seed("comments", "id", comments);
    store.seed("likes", "key", likes);
    store.seed("subscriptions", "id", subscriptions);
    store
}

enum Node {
    Page(usize),
    User,
    Form(Value),
    Lead(Value),
    Post(Value),
}

fn classify(shared: &Shared, id: &str) -> Option<Node> {
    if id == "me" || id == USER_ID {
        return Some(Node::User);
    }
    if let Some(index) = shared.config.pages.iter().position(|p| p.id == id) {
        return Some(Node::Page(index));
    }
    let store = &shared.store;
    if let Some(form) = store.get("forms", id) {
        return Some(Node::Form((*form).clone()));
    }
    if let Some(lead) = store.get("leads", id) {
        return Some(Node::Lead((*lead).clone()));
    }
    store.get("posts", id).map(|p| Node::Post((*p).clone()))
}

fn page_index(shared: &Shared, page_id: &str) -> Option<usize> {
    shared.config.pages.iter().position(|p| p.id == page_id)
}

// The page a form, lead or post belongs to.
fn owner_page(shared: &Shared, node: &Node) -> Option<usize> {
    match node {
        Node::Page(index) => Some(*index),
        Node::User => None,
        Node::Form(form) => page_index(shared, form["page_id"].as_str()?),
        Node::Lead(lead) => {
            let form = shared.store.get("forms", lead["form_id"].as_str()?)?;
            page_index(shared, form["page_id"].as_str()?)
        }
        Node::Post(post) => page_index(shared, post["owner"].as_str()?),
    }
}

fn page_token_required() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        210,
        None,
        "(#210) A page access token is required to request this resource.",
    )
}

fn permissions_error() -> Response {
    graph_error(StatusCode::FORBIDDEN, 200, None, "(#200) Permissions error")
}

// Checks the token: `page_only` edges refuse user tokens, and a page token only
// opens its own page's nodes.
fn check(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
    page: Option<usize>,
    page_only: bool,
) -> Result<String, Response> {
    let (token, principal) = authenticate(shared, params, headers).map_err(|r| *r)?;
    match (principal, page) {
        (Principal::User, _) if page_only => Err(page_token_required()),
        (Principal::User, _) => Ok(token),
        (Principal::Page(own), Some(page)) if own == page => Ok(token),
        (Principal::Page(_), _) => Err(permissions_error()),
    }
}

fn ok(value: Value) -> Response {
    Json(value).into_response()
}

pub(super) fn route(
    shared: &Shared,
    version: Option<&str>,
    rest: &[&str],
    method: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Option<Response> {
    let (id, edge) = match rest {
        [id] => (*id, None),
        [id, edge] => (*id, Some(*edge)),
        _ => return None,
    };
    let node = classify(shared, id)?;
    let page = owner_page(shared, &node);
    let result = match (&node, edge, method) {
        (Node::Page(index), None, "GET") => {
            check(shared, params, headers, page, false).map(|token| {
                let p = &shared.config.pages[*index];
                let about = if index % 2 == 0 {
                    json!(format!("About {}", p.name))
                } else {
                    Value::Null
                };
                let mut node = json!({
                    "id": p.id,
                    "name": p.name,
                    "category": PAGE_CATEGORY,
                    "fan_count": 1000 + index * 17,
                    "link": format!("https://www.facebook.com/{}", p.id),
                });
                if !about.is_null() {
                    node["about"] = about;
                }
                // The page's own access token, for a user with a role on it (Graph's
                // "Get a Page Access Token"); only when asked for, as Graph does.
                let wants_token = params
                    .get("fields")
                    .is_some_and(|f| f.split(',').any(|f| f.trim() == "access_token"));
                if wants_token {
                    let own = match authenticate(shared, params, headers) {
                        Ok((_, Principal::Page(_))) => token.clone(),
                        _ => shared.lock().page_token(&token, *index),
                    };
                    node["access_token"] = json!(own);
                }
                ok(select_fields(node, params.get("fields")))
            })
        }
        (Node::Form(form) | Node::Lead(form) | Node::Post(form), None, "GET") => {
            check(shared, params, headers, page, false)
                .map(|_| ok(select_fields(public(form), params.get("fields"))))
        }
        (Node::Post(post), None, "POST") => check(shared, params, headers, page, page.is_some())
            .map(|_| {
                let Some(message) = params.get("message").filter(|m| !m.is_empty()) else {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        100,
                        None,
                        "(#100) Missing message or attachment",
                    );
                };
                let id = post["id"].as_str().unwrap_or_default();
                let mut changes = Map::new();
                changes.insert("message".into(), json!(message));
                shared.store.update("posts", id, &changes);
                ok(json!({ "success": true }))
            }),
        (Node::Post(post), None, "DELETE") => check(shared, params, headers, page, page.is_some())
            .map(|_| {
                let id = post["id"].as_str().unwrap_or_default();
                shared.store.delete("posts", id);
                ok(json!({ "success": true }))
            }),
        (Node::Page(_), Some("leadgen_forms"), "GET") => check(shared, params, headers, page, true)
            .map(|token| {
                let items = children(&shared.store, "forms", "page_id", id);
                paged(shared, version, rest, items, params, &token)
            }),
        (Node::Form(_), Some("leads"), "GET") => {
            check(shared, params, headers, page, false).map(|token| {
                let items = children(&shared.store, "leads", "form_id", id);
                paged(shared, version, rest, items, params, &token)
            })
        }
        (Node::Page(_), Some("subscribed_apps"), _) => check(shared, params, headers, page, true)
            .map(|token| subscribed_apps(shared, version, rest, id, method, params, &token)),
        (Node::Page(_) | Node::User, Some("feed"), "GET") => {
            check(shared, params, headers, page, false).map(|token| {
                let owner = if matches!(node, Node::User) {
                    USER_ID
                } else {
                    id
                };
                let items = children(&shared.store, "posts", "owner", owner);
                paged(shared, version, rest, items, params, &token)
            })
        }
        (Node::Page(_) | Node::User, Some("feed"), "POST") => {
            check(shared, params, headers, page, page.is_some()).map(|_| {
                let owner = if matches!(node, Node::User) {
                    USER_ID
                } else {
                    id
                };
                create_post(shared, owner, params)
            })
        }
        (Node::Post(_), Some(edge @ ("comments" | "likes")), "GET") => {
            check(shared, params, headers, page, false).map(|token| {
                let items = children(&shared.store, edge, "post_id", id);
                let total = items.len();
                match paged_body(shared, version, rest, items, params, &token) {
                    Ok(mut body) => {
                        if params
                            .get("summary")
                            .is_some_and(|s| s == "true" || s == "1")
                        {
                            body.insert("summary".into(), json!({ "total_count": total }));
                        }
                        ok(Value::Object(body))
                    }
                    Err(response) => response,
                }
            })
        }
        _ => return None,
    };
    Some(result.unwrap_or_else(|response| response))
}

// Leaves out the stand-in's bookkeeping fields.
fn public(node: &Value) -> Value {
    let mut node = node.clone();
    if let Some(object) = node.as_object_mut() {
        object.remove("owner");
        object.remove("post_id");
        object.remove("key");
    }
    node
}

fn children(store: &Store, collection: &str, parent_field: &str, parent: &str) -> Vec<Value> {
    store
        .all(collection)
        .iter()
        .filter(|r| r[parent_field] == parent)
        .map(|r| public(r))
        .collect()
}

fn create_post(shared: &Shared, owner: &str, params: &Params) -> Response {
    let message = params.get("message").filter(|m| !m.is_empty());
    let link = params.get("link").filter(|l| !l.is_empty());
    if message.is_none() && link.is_none() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "(#100) Missing message or attachment",
        );
    }
    let n = {
        let mut state = shared.lock();
        state.posts_created += 1;
        state.posts_created
    };
    let id = format!("{owner}_{:015}", 900_000 + n);
    let mut post = json!({
        "id": id,
        "owner": owner,
        "created_time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
    });
    if let Some(message) = message {
        post["message"] = json!(message);
    }
    if let Some(link) = link {
        post["link"] = json!(link);
    }
    shared.store.insert("posts", post);
    ok(json!({ "id": id }))
}

fn subscribed_apps(
    shared: &Shared,
    version: Option<&str>,
    rest: &[&str],
    page_id: &str,
    method: &str,
    params: &Params,
    token: &str,
) -> Response {
    let client_id = shared.config.client_id.clone();
    match method {
        "GET" => {
            let apps = shared
                .store
                .get("subscriptions", page_id)
                .and_then(|s| s["apps"].as_array().cloned())
                .unwrap_or_default();
            paged(shared, version, rest, apps, params, token)
        }
        "POST" => {
            let Some(raw) = params.get("subscribed_fields") else {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    None,
                    "(#100) The parameter subscribed_fields is required",
                );
            };
            let fields: Vec<String> = match serde_json::from_str::<Vec<String>>(raw) {
                Ok(list) => list,
                Err(_) => raw.split(',').map(|f| f.trim().to_owned()).collect(),
            };
            const KNOWN: [&str; 5] = ["leadgen", "feed", "messages", "mention", "ratings"];
            if let Some(bad) = fields.iter().find(|f| !KNOWN.contains(&f.as_str())) {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    None,
                    &format!(
                        "(#100) Param subscribed_fields[0] must be one of {{{}}} - got \"{bad}\"",
                        KNOWN.join(", ")
                    ),
                );
            }
            let app = json!({ "id": client_id, "name": APP_NAME, "subscribed_fields": fields });
            let mut changes = Map::new();
            changes.insert("apps".into(), json!([app]));
            if shared
                .store
                .update("subscriptions", page_id, &changes)
                .is_none()
            {
                shared
                    .store
                    .insert("subscriptions", json!({ "id": page_id, "apps": [app] }));
            }
            ok(json!({ "success": true }))
        }
        "DELETE" => {
            let mut changes = Map::new();
            changes.insert("apps".into(), json!([]));
            shared.store.update("subscriptions", page_id, &changes);
            ok(json!({ "success": true }))
        }
        _ => graph_error(StatusCode::BAD_REQUEST, 100, None, "Unsupported method"),
    }
}

fn paged(
    shared: &Shared,
    version: Option<&str>,
    rest: &[&str],
    items: Vec<Value>,
    params: &Params,
    token: &str,
) -> Response {
    match paged_body(shared, version, rest, items, params, token) {
        Ok(body) => ok(Value::Object(body)),
        Err(response) => response,
    }
}

// Cursor paging as Graph does it: opaque cursors, absolute `next`/`previous` URLs that
// carry the token, `limit` clamped to 1..=100.
fn paged_body(
    shared: &Shared,
    version: Option<&str>,
    rest: &[&str],
    items: Vec<Value>,
    params: &Params,
    token: &str,
) -> Result<Map<String, Value>, Response> {
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let key = |item: &Value| item["id"].as_str().unwrap_or_default().to_owned();
    let position = |cursor: &str| {
        let id = BASE64.decode(cursor).ok()?;
        items.iter().position(|item| key(item).as_bytes() == id)
    };
    let (start, end) = if let Some(after) = params.get("after") {
        match position(after) {
            Some(index) => (index + 1, (index + 1 + limit).min(items.len())),
            None => return Err(invalid_cursor("after")),
        }
    } else if let Some(before) = params.get("before") {
        match position(before) {
            Some(index) => (index.saturating_sub(limit), index),
            None => return Err(invalid_cursor("before")),
        }
    } else {
        (0, limit.min(items.len()))
    };
    let fields = params.get("fields");
    let data: Vec<Value> = items[start..end]
        .iter()
        .map(|item| select_fields(item.clone(), fields))
        .collect();
    let mut body = Map::new();
    body.insert("data".to_owned(), Value::Array(data));
    if start < end {
        let cursor = |index: usize| BASE64.encode(key(&items[index]));
        let page_url = |name: &str, value: String| {
            let mut url = Url::parse(&shared.base_url).expect("the server's base URL parses");
            {
                let mut path = url
                    .path_segments_mut()
                    .expect("an http URL has path segments");
                path.clear();
                if let Some(version) = version {
                    path.push(version);
                }
                for segment in rest {
                    path.push(if *segment == "me" { USER_ID } else { segment });
                }
            }
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("access_token", token);
                if let Some(fields) = fields {
                    query.append_pair("fields", fields);
                }
                query
                    .append_pair("limit", &limit.to_string())
                    .append_pair(name, &value);
            }
            Value::String(url.into())
        };
        let mut paging = Map::new();
        paging.insert(
            "cursors".to_owned(),
            json!({ "before": cursor(start), "after": cursor(end - 1) }),
        );
        if start > 0 {
            paging.insert("previous".to_owned(), page_url("before", cursor(start)));
        }
        if end < items.len() {
            paging.insert("next".to_owned(), page_url("after", cursor(end - 1)));
        }
        body.insert("paging".to_owned(), Value::Object(paging));
    }
    Ok(body)
}
