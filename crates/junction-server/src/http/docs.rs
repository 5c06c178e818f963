//! Each element's API documentation, the Swagger 2.0 document Cloud Elements serves:
//! `/elements/{keyOrId}/docs`, `/instances/{id}/docs` and the Element token's
//! `/instances/docs`; and a Swagger UI page per element, `/docs/elements/{keyOrId}/`,
//! that opens one (its assets are compiled in, as for `/docs`).

use super::error::{ApiError, ApiErrorBody};
use super::extract::{MaybeAuth, ReadingAuth, TwinReadingAuth};
use super::instances::instance_id;
use super::{API_PREFIX, AppState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use junction_core::hub::is_catalog_key;
use junction_service::ServiceError;
use serde_json::Value;
use std::sync::Arc;
use url::Url;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/elements/{key_or_id}/docs", get(element))
        .route("/instances/docs", get(own_instance))
        .route("/instances/{id}/docs", get(instance))
}

/// Swagger UI pages, outside the API prefix like `/docs`.
pub fn ui_router() -> Router<AppState> {
    Router::new()
        .route("/docs/elements/{key_or_id}", get(ui_redirect))
        .route("/docs/elements/{key_or_id}/", get(ui_index))
        .route("/docs/elements/{key_or_id}/{*file}", get(ui_file))
}

/// The public URL of `/elements/api-v2`: `JUNCTION_PUBLIC_URL` when set, else the host
/// the request was sent to, over http. A Host that is not a plain `host[:port]` is not
/// repeated into the document; `localhost` stands in for it.
fn api_base(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Url, ApiError> {
    if let Some(public) = &state.public_url {
        let mut url = Url::clone(public);
        let path = format!("{}{API_PREFIX}", public.path().trim_end_matches('/'));
        url.set_path(&path);
        return Ok(url);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .filter(|h| is_authority(h))
        .unwrap_or("localhost");
    Url::parse(&format!("http://{host}{API_PREFIX}"))
        .or_else(|_| Url::parse(&format!("http://localhost{API_PREFIX}")))
        .map_err(|e| ApiError::from(ServiceError::Internal(format!("the API's URL: {e}"))))
}

/// `host`, `host:port`, or a bracketed IPv6 literal with an optional port.
fn is_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/docs",
    tag = "elements",
    summary = "The element's hub API as a Swagger 2.0 document",
    description = "Generated from the element's resources, parameters, models and objects, with the standard `/ping`, `/objects` and `/objects/{objectName}/metadata`. `host` and `basePath` say where the hub API is reached (`JUNCTION_PUBLIC_URL`, or the request's Host). Custom elements only for their organization, as `GET /elements/{keyOrId}`.",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security((), ("authorization" = [])),
    responses((status = 200, body = Object, description = "A Swagger 2.0 document"), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn element(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let base = api_base(&state, &headers, &uri)?;
    Ok(Json(
        state
            .services
            .element_docs(caller.as_ref(), &key_or_id, &base)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/docs",
    tag = "instances",
    summary = "The instance's hub API as a Swagger 2.0 document",
    description = "Its element's document, naming the instance. A disabled instance answers too.",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object, description = "A Swagger 2.0 document"), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn instance(
    State(state): State<AppState>,
    ReadingAuth(caller): ReadingAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let id = instance_id(&id)?;
    let base = api_base(&state, &headers, &uri)?;
    Ok(Json(
        state
            .services
            .instance_docs(&caller, Some(id), &base)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/instances/docs",
    tag = "instances",
    summary = "The Element token's instance hub API as a Swagger 2.0 document",
    description = "A disabled instance's token still reads it.",
    security(("authorization" = [])),
    responses((status = 200, body = Object, description = "A Swagger 2.0 document"), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn own_instance(
    State(state): State<AppState>,
    TwinReadingAuth(caller): TwinReadingAuth,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let base = api_base(&state, &headers, &uri)?;
    Ok(Json(
        state.services.instance_docs(&caller, None, &base).await?,
    ))
}

/// Only a key or an id names an element page: whatever else reaches the page's script
/// is not repeated into it.
fn page_element(key_or_id: &str) -> Option<&str> {
    let is_id = !key_or_id.is_empty()
        && key_or_id.len() <= 19
        && key_or_id.chars().all(|c| c.is_ascii_digit());
    (is_id || is_catalog_key(key_or_id)).then_some(key_or_id)
}

async fn ui_redirect(Path(key_or_id): Path<String>) -> Response {
    match page_element(&key_or_id) {
        Some(key) => Redirect::to(&format!("/docs/elements/{key}/")).into_response(),
        None => ui_not_found(),
    }
}

async fn ui_index(Path(key_or_id): Path<String>) -> Response {
    ui_serve(&key_or_id, "")
}

async fn ui_file(Path((key_or_id, file)): Path<(String, String)>) -> Response {
    ui_serve(&key_or_id, &file)
}

/// One file of Swagger UI, configured to open the element's document. Like `/docs`, it
/// sends the document to no outside validator, and it keeps the Authorization value
/// entered for "Try it out" across reloads.
fn ui_serve(key_or_id: &str, file: &str) -> Response {
    let Some(key) = page_element(key_or_id) else {
        return ui_not_found();
    };
    let url = format!("{API_PREFIX}/elements/{key}/docs");
    let config = utoipa_swagger_ui::Config::from(url.as_str())
        .validator_url("none")
        .persist_authorization(true);
    match utoipa_swagger_ui::serve(file, Arc::new(config)) {
        Ok(Some(found)) => {
            let mut response = (
                [(header::CONTENT_TYPE, found.content_type)],
                found.bytes.into_owned(),
            )
                .into_response();
            if found.gzpipped
                && let Ok(value) = header::HeaderValue::from_str("gzip")
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, value);
            }
            response
        }
        Ok(None) => ui_not_found(),
        Err(e) => {
            ApiError::from(ServiceError::Internal(format!("Swagger UI: {e}"))).into_response()
        }
    }
}

fn ui_not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page: /docs/elements/{keyOrId}/ takes an element key or id",
    )
    .into_response()
}
