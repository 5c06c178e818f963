//! Instagram API v1 stand-in. The v1 API is retired; this follows its last documented
//! shapes (*Endpoints: Users*, *Pagination*, *Response codes*):
//!
//! - every answer is `{"meta":{"code":200},"data":…}`, lists add
//!   `"pagination":{"next_url","next_max_id"}`;
//! - `GET /v1/users/self` and `GET /v1/users/self/media/recent` with `count` (at most 33)
//!   and `max_id` (media older than that id, newest first);
//! - the token is the `access_token` query parameter (a header is not read, as in v1);
//!   a wrong or missing one is 400
//!   `{"meta":{"error_type":"OAuthAccessTokenException","code":400,"error_message"}}`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Core, Credential, RecordedRequest, Store, Vendor, VendorServer, seed};

/// The id of the token's user.
pub const USER_ID: &str = "1574083";
/// That user's username.
pub const USERNAME: &str = "junction_snaps";
const MAX_COUNT: usize = 33;
const DEFAULT_COUNT: usize = 20;

/// Settings of the Instagram stand-in.
#[derive(Debug, Clone)]
pub struct InstagramConfig {
    /// The accepted access token.
    pub token: String,
    /// Media items of the user.
    pub media: usize,
}

impl Default for InstagramConfig {
    fn default() -> Self {
        InstagramConfig {
            token: format!("{USER_ID}.a1b2c3d.0123456789abcdef0123456789abcdef"),
            media: 120,
        }
    }
}

/// A running Instagram stand-in.
pub type InstagramServer = VendorServer<Instagram>;

/// The Instagram vendor.
#[derive(Debug)]
pub struct Instagram;

impl Instagram {
    /// Starts a stand-in seeded per `config`.
    pub async fn start(config: InstagramConfig) -> InstagramServer {
        let store = Store::new();
        // Newest first, ids decreasing, as the feed is served.
        let n = config.media;
        store.seed(
            "media",
            "id",
            (0..n)
                .rev()
                .map(|i| {
                    json!({
                        "id": format!("{}_{USER_ID}", 1_000_000 + i),
                        "type": if i % 5 == 0 { "video" } else { "image" },
                        "created_time": seed::created(i).timestamp().to_string(),
                        "link": format!("https://www.instagram.com/p/J{i:06}/"),
                        "caption": if seed::is_null(i, 1, 4) { Value::Null } else {
                            json!({ "id": format!("{}", 5_000_000 + i), "text": format!("Sunset in {}", seed::city(i)), "created_time": seed::created(i).timestamp().to_string() })
                        },
                        "likes": { "count": seed::number(i, 70, 500) },
                        "comments": { "count": seed::number(i, 71, 40) },
                        "tags": if i % 2 == 0 { json!(["travel"]) } else { json!([]) },
                        "location": Value::Null,
                        "images": { "standard_resolution": { "url": format!("https://scontent.example.test/{i}.jpg"), "width": 640, "height": 640 } },
                        "user": { "id": USER_ID, "username": USERNAME },
                    })
                })
                .collect(),
        );
        VendorServer::spawn(Instagram, Credential::Bearer(config.token), store).await
    }
}

fn ig_error(kind: &str, message: &str) -> Response {
    super::json(
        StatusCode::BAD_REQUEST,
        &json!({ "meta": { "error_type": kind, "code": 400, "error_message": message } }),
    )
}

fn media_number(id: &str) -> Option<u64> {
    id.split('_').next()?.parse().ok()
}

impl Vendor for Instagram {
    fn handle(&self, core: &Core, request: &RecordedRequest) -> Response {
        let token_ok = request
            .param("access_token")
            .is_some_and(|t| core.accepts_token(t));
        if !token_ok {
            return ig_error(
                "OAuthAccessTokenException",
                "The access_token provided is invalid.",
            );
        }
        match (request.segments().as_slice(), request.method.as_str()) {
            (["v1", "users", "self"], "GET") => super::json(
                StatusCode::OK,
                &json!({
                    "meta": { "code": 200 },
                    "data": {
                        "id": USER_ID,
                        "username": USERNAME,
                        "full_name": "Junction Snaps",
                        "profile_picture": "https://scontent.example.test/profile.jpg",
                        "bio": "",
                        "website": Value::Null,
                        "counts": { "media": core.store.len("media"), "follows": 12, "followed_by": 345 },
                    },
                }),
            ),
            (["v1", "users", "self", "media", "recent"], "GET") => recent(core, request),
            (["v1", ..], _) => ig_error("APINotFoundError", "this endpoint has been retired"),
            _ => super::json(
                StatusCode::NOT_FOUND,
                &json!({ "meta": { "error_type": "APINotFoundError", "code": 404, "error_message": "invalid path" } }),
            ),
        }
    }
}

fn recent(core: &Core, request: &RecordedRequest) -> Response {
    let count = match request.param("count").map(str::parse::<usize>) {
        None => DEFAULT_COUNT,
        Some(Ok(n)) if n >= 1 => n.min(MAX_COUNT),
        Some(_) => {
            return ig_error(
                "APIInvalidParametersError",
                "count must be a positive integer",
            );
        }
    };
    let media = core.store.all("media");
    let start = match request.param("max_id") {
        None => 0,
        Some(max_id) => match media_number(max_id) {
            // Newest first: skip everything at or newer than max_id.
            Some(max) => media.partition_point(|m| {
                m["id"]
                    .as_str()
                    .and_then(media_number)
                    .is_some_and(|n| n >= max)
            }),
            None => return ig_error("APIInvalidParametersError", "max_id is not a media id"),
        },
    };
    let (start, end) = super::page_bounds(media.len(), start, count);
    let data: Vec<Value> = media[start..end].iter().map(|m| (**m).clone()).collect();
    let mut pagination = json!({});
    if end < media.len() && end > start {
        let next_max_id = media[end - 1]["id"].as_str().unwrap_or_default().to_owned();
        let token = request.param("access_token").unwrap_or_default().to_owned();
        pagination = json!({
            "next_max_id": next_max_id,
            "next_url": super::absolute(
                core,
                "/v1/users/self/media/recent",
                &[("access_token", token), ("count", count.to_string()), ("max_id", next_max_id.clone())],
            ),
        });
    }
    super::json(
        StatusCode::OK,
        &json!({ "pagination": pagination, "meta": { "code": 200 }, "data": data }),
    )
}
