//! `/instances`: step 2 of provisioning, and reading, listing and deleting instances.

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use junction_service::{CreateInstance, InstanceView, ListInstances};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances", post(create).get(list))
        .route("/instances/{id}", get(show).delete(remove))
        .route(
            "/elements/{key_or_id}/instances",
            post(create_for_element).get(list_for_element),
        )
}

fn instance_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_instance_id",
            format!("instance id must be a number, got '{raw}'"),
        )
    })
}

/// `tags[]=a&tags[]=b` (Cloud Elements' spelling) or `tags=a`.
fn list_query(raw: Option<String>) -> ListInstances {
    let tags = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "tags[]" || k == "tags")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    ListInstances { tags }
}

async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateInstance>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        state.services.create_instance(&caller, None, body).await?,
    ))
}

async fn create_for_element(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<CreateInstance>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        state
            .services
            .create_instance(&caller, Some(&key_or_id), body)
            .await?,
    ))
}

async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
    Ok(Json(
        state
            .services
            .list_instances(&caller, list_query(query))
            .await?,
    ))
}

async fn list_for_element(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
    let element = state
        .services
        .catalog
        .get(&key_or_id)
        .cloned()
        .ok_or_else(|| {
            ApiError::from(junction_service::ServiceError::ElementNotFound(key_or_id))
        })?;
    let all = state
        .services
        .list_instances(&caller, list_query(query))
        .await?;
    Ok(Json(
        all.into_iter()
            .filter(|i| i.element.key == element.key)
            .collect(),
    ))
}

async fn show(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        state
            .services
            .get_instance(&caller, instance_id(&id)?)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .services
        .delete_instance(&caller, instance_id(&id)?)
        .await?;
    Ok(Json(json!({})))
}
