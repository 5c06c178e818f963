//! `/instances`: step 2 of provisioning and the instance lifecycle. Every
//! `/instances/{id}/…` route has an Element-token twin `/instances/…` that addresses the
//! token's own instance (`TwinAuth`), also when the User and Organization secrets come
//! with the token.

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, Auth, OptionalJson, TwinAuth};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use junction_service::{
    ConfigEntryView, InstanceBody, InstanceView, ListInstances, ServiceError, TraceLogView,
    TraceLoggingConfig, UpdateMode,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/instances",
            get(list)
                .post(create)
                .put(replace_own)
                .patch(merge_own)
                .delete(remove_own),
        )
        .route(
            "/instances/{id}",
            get(show).put(replace).patch(merge).delete(remove),
        )
        .route("/instances/configuration", get(configuration_own))
        .route("/instances/{id}/configuration", get(configuration))
        .route(
            "/instances/configuration/{config_id}",
            get(configuration_entry_own).patch(patch_configuration_entry_own),
        )
        .route(
            "/instances/{id}/configuration/{config_id}",
            get(configuration_entry).patch(patch_configuration_entry),
        )
        .route("/instances/enabled", put(enable_own).delete(disable_own))
        .route("/instances/{id}/enabled", put(enable).delete(disable))
        .route(
            "/instances/trace-logging",
            put(trace_on_own).delete(trace_off_own),
        )
        .route(
            "/instances/{id}/trace-logging",
            put(trace_on).delete(trace_off),
        )
        .route("/instances/trace-logs", get(trace_logs_own))
        .route("/instances/{id}/trace-logs", get(trace_logs))
        .route(
            "/elements/{key_or_id}/instances",
            get(list_for_element).post(create_for_element),
        )
        .route(
            "/elements/{key_or_id}/instances/{id}",
            get(show_of_element)
                .put(replace_of_element)
                .patch(merge_of_element)
                .delete(remove_of_element),
        )
}

fn number(raw: &str, what: &'static str, code: &'static str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("{what} must be a number, got '{raw}'"),
        )
    })
}

pub(super) fn instance_id(raw: &str) -> Result<i64, ApiError> {
    number(raw, "instance id", "invalid_instance_id")
}

/// `tags[]=a&tags[]=b` (Cloud Elements' spelling) or `tags=a`, `searchText`, `pageSize`,
/// `nextPage`.
fn list_query(raw: Option<String>, element: Option<String>) -> ListInstances {
    let mut query = ListInstances {
        element,
        ..ListInstances::default()
    };
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "tags[]" | "tags" => query.tags.push(value),
            "searchText" => query.search_text = Some(value),
            "pageSize" => query.page_size = Some(value),
            "nextPage" => query.next_page = Some(value),
            _ => {}
        }
    }
    query
}

async fn list_response(
    state: &AppState,
    caller: &junction_service::Caller,
    query: ListInstances,
) -> Result<(HeaderMap, Json<Vec<InstanceView>>), ApiError> {
    let page = state.services.list_instances(caller, query).await?;
    let headers = page_headers(page.items.len(), page.total, page.next_page);
    Ok((headers, Json(page.items)))
}

/// The paging headers every list answers with.
fn page_headers(returned: usize, total: Option<i64>, next_page: Option<String>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("elements-returned-count", returned.to_string());
    if let Some(total) = total {
        set("elements-total-count", total.to_string());
    }
    if let Some(token) = next_page {
        set("elements-next-page-token", token);
    }
    headers
}

#[utoipa::path(
    get,
    path = "/instances",
    tag = "instances",
    summary = "List instances, one page at a time",
    params(("tags[]" = Option<Vec<String>>, Query, description = "Only instances with every one of these tags"), ("searchText" = Option<String>, Query, description = "Only names containing this text"), ("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [InstanceView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<InstanceView>>), ApiError> {
    list_response(&state, &caller, list_query(query, None)).await
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/instances",
    tag = "instances",
    summary = "List an element's instances",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("tags[]" = Option<Vec<String>>, Query, description = "Only instances with every one of these tags"), ("searchText" = Option<String>, Query, description = "Only names containing this text"), ("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [InstanceView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list_for_element(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<InstanceView>>), ApiError> {
    list_response(&state, &caller, list_query(query, Some(key_or_id))).await
}

#[utoipa::path(
    post,
    path = "/instances",
    tag = "instances",
    summary = "Create (provision) an instance",
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        state.services.create_instance(&caller, None, body).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/elements/{key_or_id}/instances",
    tag = "instances",
    summary = "Create an instance of this element",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn create_for_element(
    State(state): State<AppState>,
    Path(key_or_id): Path<String>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    Ok(Json(
        state
            .services
            .create_instance(&caller, Some(&key_or_id), body)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/instances/{id}",
    tag = "instances",
    summary = "Get an instance",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
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

async fn update(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    body: InstanceBody,
    mode: UpdateMode,
) -> Result<Json<InstanceView>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    Ok(Json(
        state
            .services
            .update_instance(caller, id, body, mode)
            .await?,
    ))
}

#[utoipa::path(
    put,
    path = "/instances/{id}",
    tag = "instances",
    summary = "Replace an instance (re-provision with providerData.code)",
    params(("id" = i64, Path, description = "Instance id")),
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replace(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(
        &state,
        &caller,
        Some(instance_id(&id)?),
        body,
        UpdateMode::Replace,
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/instances/{id}",
    tag = "instances",
    summary = "Change part of an instance",
    params(("id" = i64, Path, description = "Instance id")),
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn merge(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(
        &state,
        &caller,
        Some(instance_id(&id)?),
        body,
        UpdateMode::Merge,
    )
    .await
}

#[utoipa::path(
    put,
    path = "/instances",
    tag = "instances",
    summary = "Replace the Element token's instance",
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replace_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, None, body, UpdateMode::Replace).await
}

#[utoipa::path(
    patch,
    path = "/instances",
    tag = "instances",
    summary = "Change part of the Element token's instance",
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn merge_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, None, body, UpdateMode::Merge).await
}

/// Cloud Elements clients send `DELETE` with `Content-Type: application/json` and the
/// body `null`; the body is never read, so that and an empty body are both fine.
async fn delete(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
) -> Result<Json<Value>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    state.services.delete_instance(caller, id).await?;
    Ok(Json(json!({})))
}

#[utoipa::path(
    delete,
    path = "/instances/{id}",
    tag = "instances",
    summary = "Delete an instance",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn remove(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete(&state, &caller, Some(instance_id(&id)?)).await
}

#[utoipa::path(
    delete,
    path = "/instances",
    tag = "instances",
    summary = "Delete the Element token's instance",
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn remove_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<Value>, ApiError> {
    delete(&state, &caller, None).await
}

async fn config_list(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
) -> Result<Json<Vec<ConfigEntryView>>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    Ok(Json(state.services.list_configuration(caller, id).await?))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/configuration",
    tag = "instances",
    summary = "List an instance's configuration entries",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = [ConfigEntryView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn configuration(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<ConfigEntryView>>, ApiError> {
    config_list(&state, &caller, Some(instance_id(&id)?)).await
}

#[utoipa::path(
    get,
    path = "/instances/configuration",
    tag = "instances",
    summary = "List the Element token's instance configuration",
    security(("authorization" = [])),
    responses((status = 200, body = [ConfigEntryView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn configuration_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<Vec<ConfigEntryView>>, ApiError> {
    config_list(&state, &caller, None).await
}

fn config_entry_id(raw: &str) -> Result<i64, ApiError> {
    number(raw, "configuration id", "invalid_configuration_id")
}

async fn config_entry(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    config_id: &str,
) -> Result<Json<ConfigEntryView>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    Ok(Json(
        state
            .services
            .get_configuration(caller, id, config_entry_id(config_id)?)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/configuration/{config_id}",
    tag = "instances",
    summary = "Get one configuration entry",
    params(("id" = i64, Path, description = "Instance id"), ("config_id" = i64, Path, description = "Configuration entry id")),
    security(("authorization" = [])),
    responses((status = 200, body = ConfigEntryView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn configuration_entry(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, config_id)): Path<(String, String)>,
) -> Result<Json<ConfigEntryView>, ApiError> {
    config_entry(&state, &caller, Some(instance_id(&id)?), &config_id).await
}

#[utoipa::path(
    get,
    path = "/instances/configuration/{config_id}",
    tag = "instances",
    summary = "Get one of the Element token's instance configuration entries",
    params(("config_id" = i64, Path, description = "Configuration entry id")),
    security(("authorization" = [])),
    responses((status = 200, body = ConfigEntryView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn configuration_entry_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    Path(config_id): Path<String>,
) -> Result<Json<ConfigEntryView>, ApiError> {
    config_entry(&state, &caller, None, &config_id).await
}

/// The body of a configuration entry `PATCH`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPatch {
    /// The new value: a string, number, boolean, object or null.
    #[schema(value_type = Object)]
    property_value: Option<Value>,
}

async fn config_patch(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    config_id: &str,
    body: ConfigPatch,
) -> Result<Json<ConfigEntryView>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    let value = body.property_value.ok_or_else(|| {
        ApiError::from(ServiceError::bad_request(
            "missing_parameter",
            "propertyValue is required",
        ))
    })?;
    Ok(Json(
        state
            .services
            .patch_configuration(caller, id, config_entry_id(config_id)?, &value)
            .await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/instances/{id}/configuration/{config_id}",
    tag = "instances",
    summary = "Set one configuration entry's propertyValue",
    params(("id" = i64, Path, description = "Instance id"), ("config_id" = i64, Path, description = "Configuration entry id")),
    request_body = ConfigPatch,
    security(("authorization" = [])),
    responses((status = 200, body = ConfigEntryView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn patch_configuration_entry(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, config_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ConfigPatch>,
) -> Result<Json<ConfigEntryView>, ApiError> {
    config_patch(&state, &caller, Some(instance_id(&id)?), &config_id, body).await
}

#[utoipa::path(
    patch,
    path = "/instances/configuration/{config_id}",
    tag = "instances",
    summary = "Set one of the Element token's instance configuration entries",
    params(("config_id" = i64, Path, description = "Configuration entry id")),
    request_body = ConfigPatch,
    security(("authorization" = [])),
    responses((status = 200, body = ConfigEntryView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn patch_configuration_entry_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    Path(config_id): Path<String>,
    ApiJson(body): ApiJson<ConfigPatch>,
) -> Result<Json<ConfigEntryView>, ApiError> {
    config_patch(&state, &caller, None, &config_id, body).await
}

/// `PUT …/enabled` may come with no body at all; none is read.
async fn enabled(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    on: bool,
) -> Result<Json<InstanceView>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    Ok(Json(state.services.set_enabled(caller, id, on).await?))
}

#[utoipa::path(
    put,
    path = "/instances/{id}/enabled",
    tag = "instances",
    summary = "Enable an instance",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn enable(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    enabled(&state, &caller, Some(instance_id(&id)?), true).await
}

#[utoipa::path(
    delete,
    path = "/instances/{id}/enabled",
    tag = "instances",
    summary = "Disable an instance (its Element token then gets 403)",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn disable(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    enabled(&state, &caller, Some(instance_id(&id)?), false).await
}

#[utoipa::path(
    put,
    path = "/instances/enabled",
    tag = "instances",
    summary = "Enable the Element token's instance",
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn enable_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<InstanceView>, ApiError> {
    enabled(&state, &caller, None, true).await
}

#[utoipa::path(
    delete,
    path = "/instances/enabled",
    tag = "instances",
    summary = "Disable the Element token's instance",
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn disable_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<InstanceView>, ApiError> {
    enabled(&state, &caller, None, false).await
}

async fn trace(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    on: Option<TraceLoggingConfig>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = state.services.target_instance(caller, id)?;
    Ok(Json(
        state.services.set_trace_logging(caller, id, on).await?,
    ))
}

#[utoipa::path(
    put,
    path = "/instances/{id}/trace-logging",
    tag = "instances",
    summary = "Turn trace logging on for `duration` seconds",
    description = "Every call Junction then makes to the instance's provider is recorded, redacted, \
        and readable at `/instances/{id}/trace-logs`. The body may be left out: logging then lasts an hour.",
    params(("id" = i64, Path, description = "Instance id")),
    request_body(content = Option<TraceLoggingConfig>, content_type = "application/json"),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_on(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    OptionalJson(config): OptionalJson<TraceLoggingConfig>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = instance_id(&id)?;
    trace(&state, &caller, Some(id), Some(config.unwrap_or_default())).await
}

#[utoipa::path(
    delete,
    path = "/instances/{id}/trace-logging",
    tag = "instances",
    summary = "Turn trace logging off (the entries recorded stay readable)",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_off(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<InstanceView>, ApiError> {
    trace(&state, &caller, Some(instance_id(&id)?), None).await
}

#[utoipa::path(
    put,
    path = "/instances/trace-logging",
    tag = "instances",
    summary = "Turn trace logging on for the Element token's instance",
    request_body(content = Option<TraceLoggingConfig>, content_type = "application/json"),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_on_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    OptionalJson(config): OptionalJson<TraceLoggingConfig>,
) -> Result<Json<InstanceView>, ApiError> {
    trace(&state, &caller, None, Some(config.unwrap_or_default())).await
}

#[utoipa::path(
    delete,
    path = "/instances/trace-logging",
    tag = "instances",
    summary = "Turn trace logging off for the Element token's instance",
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_off_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<InstanceView>, ApiError> {
    trace(&state, &caller, None, None).await
}

/// `pageSize` and `nextPage`, as on `GET /instances`.
fn page_query(raw: Option<String>) -> (Option<String>, Option<String>) {
    let (mut size, mut next) = (None, None);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "pageSize" => size = Some(value.into_owned()),
            "nextPage" => next = Some(value.into_owned()),
            _ => {}
        }
    }
    (size, next)
}

async fn trace_logs_response(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    query: Option<String>,
) -> Result<(HeaderMap, Json<Vec<TraceLogView>>), ApiError> {
    let id = state.services.target_instance(caller, id)?;
    let (size, next) = page_query(query);
    let page = state
        .services
        .list_trace_logs(caller, id, size.as_deref(), next.as_deref())
        .await?;
    let headers = page_headers(page.items.len(), page.total, page.next_page);
    Ok((headers, Json(page.items)))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/trace-logs",
    tag = "instances",
    summary = "Read the calls recorded while trace logging was on, newest first",
    params(("id" = i64, Path, description = "Instance id"), ("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [TraceLogView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_logs(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<TraceLogView>>), ApiError> {
    trace_logs_response(&state, &caller, Some(instance_id(&id)?), query).await
}

#[utoipa::path(
    get,
    path = "/instances/trace-logs",
    tag = "instances",
    summary = "Read the Element token's instance trace log, newest first",
    params(("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [TraceLogView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn trace_logs_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<TraceLogView>>), ApiError> {
    trace_logs_response(&state, &caller, None, query).await
}

/// `/elements/{keyOrId}/instances/{id}`: the instance, if it is one of that element's.
async fn of_element(
    state: &AppState,
    caller: &junction_service::Caller,
    key_or_id: &str,
    id: &str,
) -> Result<i64, ApiError> {
    let id = instance_id(id)?;
    state
        .services
        .check_instance_of_element(caller, key_or_id, id)
        .await?;
    Ok(id)
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/instances/{id}",
    tag = "instances",
    summary = "Get an instance of this element",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show_of_element(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((key_or_id, id)): Path<(String, String)>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = of_element(&state, &caller, &key_or_id, &id).await?;
    Ok(Json(state.services.get_instance(&caller, id).await?))
}

#[utoipa::path(
    put,
    path = "/elements/{key_or_id}/instances/{id}",
    tag = "instances",
    summary = "Replace an instance of this element",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("id" = i64, Path, description = "Instance id")),
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replace_of_element(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((key_or_id, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = of_element(&state, &caller, &key_or_id, &id).await?;
    update(&state, &caller, Some(id), body, UpdateMode::Replace).await
}

#[utoipa::path(
    patch,
    path = "/elements/{key_or_id}/instances/{id}",
    tag = "instances",
    summary = "Change part of an instance of this element",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("id" = i64, Path, description = "Instance id")),
    request_body = InstanceBody,
    security(("authorization" = [])),
    responses((status = 200, body = InstanceView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn merge_of_element(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((key_or_id, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let id = of_element(&state, &caller, &key_or_id, &id).await?;
    update(&state, &caller, Some(id), body, UpdateMode::Merge).await
}

#[utoipa::path(
    delete,
    path = "/elements/{key_or_id}/instances/{id}",
    tag = "instances",
    summary = "Delete an instance of this element",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn remove_of_element(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((key_or_id, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = of_element(&state, &caller, &key_or_id, &id).await?;
    delete(&state, &caller, Some(id)).await
}
