//! Hub management: `GET`/`POST /hubs`, `GET`/`DELETE /hubs/{key}`. A single segment
//! after `/hubs/` names a hub; two or more are a call to an instance (see `proxy.rs`).

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, Auth, MaybeAuth, query_flag};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use junction_service::{HubBody, HubView};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hubs", get(list).post(create))
        // `{hub}`, as in the instance routes under it: one name per segment.
        .route("/hubs/{hub}", get(show).delete(remove))
}

#[utoipa::path(
    get,
    path = "/hubs",
    tag = "catalog",
    summary = "List the hubs: the built-in ones, then the organization's own",
    params(("hydrate" = Option<bool>, Query, description = "Add each hub's elements and resources")),
    responses((status = 200, body = [HubView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn list(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<HubView>>, ApiError> {
    let hydrate = query_flag(query.as_deref(), "hydrate")?;
    Ok(Json(
        state.services.list_hubs(caller.as_ref(), hydrate).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/hubs",
    tag = "catalog",
    summary = "Create a hub of the organization",
    request_body = HubBody,
    security(("authorization" = [])),
    responses((status = 200, body = HubView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<HubBody>,
) -> Result<Json<HubView>, ApiError> {
    Ok(Json(state.services.create_hub(&caller, body).await?))
}

#[utoipa::path(
    get,
    path = "/hubs/{hub}",
    tag = "catalog",
    summary = "Get a hub",
    params(("hub" = String, Path, description = "Hub key"), ("hydrate" = Option<bool>, Query, description = "Add the hub's elements and resources")),
    responses((status = 200, body = HubView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn show(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(hub): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<HubView>, ApiError> {
    let hydrate = query_flag(query.as_deref(), "hydrate")?;
    Ok(Json(
        state
            .services
            .get_hub(caller.as_ref(), &hub, hydrate)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/hubs/{hub}",
    tag = "catalog",
    summary = "Delete one of the organization's hubs (built-in hubs are read-only)",
    params(("hub" = String, Path, description = "Hub key")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn remove(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(hub): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.services.delete_hub(&caller, &hub).await?;
    Ok(Json(json!({})))
}
