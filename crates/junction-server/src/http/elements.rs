//! The catalog: `/elements`, `/elements/keys`, `/elements/{keyOrId}`, element metadata
//! (`/elements/metadata`, `/elements/{keyOrId}/metadata`) and step 1 of provisioning,
//! `/elements/{keyOrId}/oauth/url`.

use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, MaybeAuth, query_flag};
use super::{AppState, json_bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use junction_catalog::Catalog;
use junction_core::ElementSummary;
use junction_core::element::ConfigEntry;
use junction_service::{
    ElementMetadata, OAuthTokenParams, OAuthTokenResponse, OAuthUrlParams, OAuthUrlResponse,
};
use serde::Serialize;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/elements", get(list))
        .route("/elements/keys", get(keys))
        .route("/elements/metadata", get(metadata_list))
        .route("/elements/{key_or_id}/metadata", get(metadata))
        .route("/elements/{key_or_id}", get(show))
        .route(
            "/elements/{key_or_id}/oauth/url",
            get(oauth_url_get).post(oauth_url_post),
        )
        .route("/elements/{key_or_id}/oauth/token", get(oauth_token))
}

/// The catalog's JSON, serialized once at start.
pub struct CatalogJson {
    list: Bytes,
    keys: Bytes,
    by_key: HashMap<String, Bytes>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ElementDetail<'a> {
    #[serde(flatten)]
    summary: ElementSummary,
    configuration: Vec<ConfigView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigView<'a> {
    key: &'a str,
    name: &'a str,
    description: Option<&'a str>,
    #[serde(rename = "type")]
    kind: junction_core::element::ConfigType,
    required: bool,
    default_value: Option<&'a str>,
    hide_from_console: bool,
    internal: bool,
    active: bool,
}

impl CatalogJson {
    pub fn build(catalog: &Catalog) -> anyhow::Result<Self> {
        let elements = catalog.list();
        let summaries: Vec<ElementSummary> = elements.iter().map(|e| e.summary()).collect();
        let keys: Vec<&str> = elements.iter().map(|e| e.key.as_str()).collect();
        let mut by_key = HashMap::new();
        for e in &elements {
            let detail = ElementDetail {
                summary: e.summary(),
                configuration: e.configuration.iter().map(config_view).collect(),
            };
            by_key.insert(e.key.clone(), Bytes::from(serde_json::to_vec(&detail)?));
        }
        Ok(Self {
            list: Bytes::from(serde_json::to_vec(&summaries)?),
            keys: Bytes::from(serde_json::to_vec(&keys)?),
            by_key,
        })
    }
}

fn config_view(e: &ConfigEntry) -> ConfigView<'_> {
    ConfigView {
        key: &e.key,
        name: &e.name,
        description: e.description.as_deref(),
        kind: e.kind,
        required: e.required,
        default_value: e.default.as_deref(),
        hide_from_console: e.hide_from_console,
        internal: e.internal,
        active: true,
    }
}

#[utoipa::path(
    get,
    path = "/elements",
    tag = "elements",
    summary = "List the element catalog",
    responses((status = 200, body = [ElementSummary]), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list(State(state): State<AppState>) -> Response {
    json_bytes(state.catalog_json.list.clone())
}

#[utoipa::path(
    get,
    path = "/elements/keys",
    tag = "elements",
    summary = "List element keys",
    responses((status = 200, body = [String]), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn keys(State(state): State<AppState>) -> Response {
    json_bytes(state.catalog_json.keys.clone())
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}",
    tag = "elements",
    summary = "Get an element with its configuration entries",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
) -> Result<Response, ApiError> {
    let element = state.services.catalog.get(&key_or_id).ok_or_else(|| {
        ApiError::from(junction_service::ServiceError::ElementNotFound(
            key_or_id.clone(),
        ))
    })?;
    let bytes = state
        .catalog_json
        .by_key
        .get(&element.key)
        .cloned()
        .unwrap_or_default();
    Ok(json_bytes(bytes))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/oauth/url",
    tag = "elements",
    summary = "Step 1: the OAuth URL to send the customer to",
    params(("key_or_id" = String, Path, description = "Element key or id"), OAuthUrlParams),
    responses((status = 200, body = OAuthUrlResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn oauth_url_get(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    query: Result<Query<OAuthUrlParams>, QueryRejection>,
) -> Result<Json<OAuthUrlResponse>, ApiError> {
    let Query(params) = query.map_err(|r| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            r.body_text(),
        )
    })?;
    Ok(Json(state.services.oauth_url(&key_or_id, &params)?))
}

#[utoipa::path(
    post,
    path = "/elements/{key_or_id}/oauth/url",
    tag = "elements",
    summary = "Step 1, with the parameters as JSON",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    request_body = OAuthUrlParams,
    responses((status = 200, body = OAuthUrlResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn oauth_url_post(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    ApiJson(params): ApiJson<OAuthUrlParams>,
) -> Result<Json<OAuthUrlResponse>, ApiError> {
    Ok(Json(state.services.oauth_url(&key_or_id, &params)?))
}

#[utoipa::path(
    get,
    path = "/elements/metadata",
    tag = "elements",
    summary = "Every element's metadata: events, authentication and, expanded, resources",
    params(("expand" = Option<bool>, Query, description = "Add each element's resources and their operations")),
    responses((status = 200, body = [ElementMetadata]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn metadata_list(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ElementMetadata>>, ApiError> {
    let expand = query_flag(query.as_deref(), "expand")?;
    Ok(Json(
        state
            .services
            .elements_metadata(caller.as_ref(), expand)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/metadata",
    tag = "elements",
    summary = "One element's metadata: events, authentication and, expanded, resources",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("expand" = Option<bool>, Query, description = "Add the element's resources and their operations")),
    responses((status = 200, body = ElementMetadata), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn metadata(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ElementMetadata>, ApiError> {
    let expand = query_flag(query.as_deref(), "expand")?;
    Ok(Json(
        state
            .services
            .element_metadata(caller.as_ref(), &key_or_id, expand)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/oauth/token",
    tag = "elements",
    summary = "OAuth 1.0a step 1: a request token for the consumer",
    params(("key_or_id" = String, Path, description = "Element key or id"), OAuthTokenParams),
    responses((status = 200, body = OAuthTokenResponse), (status = 400, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 502, body = ApiErrorBody)),
)]
async fn oauth_token(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    query: Result<Query<OAuthTokenParams>, QueryRejection>,
) -> Result<Json<OAuthTokenResponse>, ApiError> {
    let Query(params) = query.map_err(|r| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            r.body_text(),
        )
    })?;
    Ok(Json(
        state
            .services
            .oauth_request_token(&key_or_id, &params)
            .await?,
    ))
}
