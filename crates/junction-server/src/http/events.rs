//! Events: provider webhooks in (`/events/{elementKey}`, and per instance
//! `/events/{elementKey}/{instanceId}`), and the events API under `/instances`.
//! Webhooks carry no Junction credentials: the element's declared signatures prove the
//! sender, and the answer comes only once the event is stored.

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{Auth, TwinAuth};
use super::instances::{instance_id, page_headers};
use axum::Json;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use junction_service::events::{
    EventListQuery, EventView, MAX_WEBHOOK_BYTES, PollerView, ReplayView, WebhookAnswer,
    WebhookRequest,
};
use serde::Serialize;

pub fn router() -> Router<AppState> {
    let webhooks = Router::new()
        .route("/events/{element_key}", get(handshake).post(receive))
        .route(
            "/events/{element_key}/{instance}",
            get(handshake_for_instance).post(receive_for_instance),
        )
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES));
    Router::new()
        .merge(webhooks)
        .route("/instances/events", get(list_own))
        .route("/instances/{id}/events", get(list))
        .route("/instances/events/poller", get(poller_own))
        .route("/instances/{id}/events/poller", get(poller))
        .route("/instances/events/replay", post(replay_failed_own))
        .route("/instances/{id}/events/replay", post(replay_failed))
        .route("/instances/events/{event_id}", get(show_own))
        .route("/instances/{id}/events/{event_id}", get(show))
        .route("/instances/events/{event_id}/replay", post(replay_own))
        .route("/instances/{id}/events/{event_id}/replay", post(replay))
}

/// What a provider is answered once its webhook is stored (or dropped).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAccepted {
    pub accepted: bool,
    /// The stored event's id; absent when the instance's events are off and the
    /// webhook was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

fn webhook(
    element_key: String,
    instance: Option<String>,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> WebhookRequest {
    WebhookRequest {
        element_key,
        instance,
        instance_header: headers
            .get("element-instances")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        query: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body,
    }
}

fn body(raw: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    raw.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the webhook body is larger than the {} MiB limit; nothing was stored",
                    MAX_WEBHOOK_BYTES / (1024 * 1024)
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the webhook body could not be read",
            )
        }
    })
}

fn answer(answer: WebhookAnswer) -> Response {
    match answer {
        WebhookAnswer::Challenge(text) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            text,
        )
            .into_response(),
        WebhookAnswer::Accepted { event_id } => Json(WebhookAccepted {
            accepted: true,
            event_id: Some(event_id.to_string()),
            dropped: false,
        })
        .into_response(),
        WebhookAnswer::Dropped => Json(WebhookAccepted {
            accepted: true,
            event_id: None,
            dropped: true,
        })
        .into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/events/{element_key}",
    tag = "events",
    summary = "Answer a provider's webhook subscription handshake",
    description = "Facebook's `hub.mode=subscribe` with `hub.verify_token` and `hub.challenge`, or Dropbox's `challenge`: the challenge comes back as plain text.",
    params(("element_key" = String, Path, description = "Element key")),
    responses((status = 200, description = "The challenge", body = String, content_type = "text/plain"), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn handshake(
    State(state): State<AppState>,
    Path(element_key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = webhook(element_key, None, query, &headers, Bytes::new());
    Ok(answer(state.services.webhook_handshake(&request).await?))
}

#[utoipa::path(
    get,
    path = "/events/{element_key}/{instance}",
    tag = "events",
    summary = "Answer a provider's handshake at an instance's webhook URL",
    params(("element_key" = String, Path, description = "Element key"), ("instance" = i64, Path, description = "Instance id")),
    responses((status = 200, description = "The challenge", body = String, content_type = "text/plain"), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn handshake_for_instance(
    State(state): State<AppState>,
    Path((element_key, instance)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = webhook(element_key, Some(instance), query, &headers, Bytes::new());
    Ok(answer(state.services.webhook_handshake(&request).await?))
}

#[utoipa::path(
    post,
    path = "/events/{element_key}",
    tag = "events",
    summary = "Receive a provider webhook",
    description = "The instance is named by the `Element-Instances` header or found from the payload by the element's instance finder. The element's signatures are checked; the answer comes once the event is stored. Bodies up to 10 MiB.",
    params(("element_key" = String, Path, description = "Element key"), ("Element-Instances" = Option<String>, Header, description = "The instance id")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = WebhookAccepted), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 413, body = ApiErrorBody)),
)]
async fn receive(
    State(state): State<AppState>,
    Path(element_key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = webhook(element_key, None, query, &headers, body(raw)?);
    Ok(answer(state.services.receive_webhook(&request).await?))
}

#[utoipa::path(
    post,
    path = "/events/{element_key}/{instance}",
    tag = "events",
    summary = "Receive a provider webhook at an instance's webhook URL",
    params(("element_key" = String, Path, description = "Element key"), ("instance" = i64, Path, description = "Instance id")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = WebhookAccepted), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 413, body = ApiErrorBody)),
)]
async fn receive_for_instance(
    State(state): State<AppState>,
    Path((element_key, instance)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = webhook(element_key, Some(instance), query, &headers, body(raw)?);
    Ok(answer(state.services.receive_webhook(&request).await?))
}

fn list_query(raw: Option<String>) -> EventListQuery {
    let mut query = EventListQuery::default();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = Some(value.into_owned());
        match key.as_ref() {
            "status" => query.status = value,
            "from" => query.from = value,
            "to" => query.to = value,
            "pageSize" => query.page_size = value,
            "nextPage" => query.next_page = value,
            _ => {}
        }
    }
    query
}

async fn list_response(
    state: &AppState,
    caller: &junction_service::Caller,
    id: Option<i64>,
    query: Option<String>,
) -> Result<(HeaderMap, Json<Vec<EventView>>), ApiError> {
    let id = state.services.target_instance(caller, id)?;
    let page = state
        .services
        .list_events(caller, id, list_query(query))
        .await?;
    let headers = page_headers(page.items.len(), page.total, page.next_page);
    Ok((headers, Json(page.items)))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/events",
    tag = "events",
    summary = "List an instance's events, newest first",
    params(("id" = i64, Path, description = "Instance id"), ("status" = Option<String>, Query, description = "RECEIVED, DISPATCHED, NOTIFIED or FAILED"), ("from" = Option<String>, Query, description = "Only events received at or after this ISO 8601 date or time"), ("to" = Option<String>, Query, description = "Only events received before this ISO 8601 date or time"), ("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [EventView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<EventView>>), ApiError> {
    list_response(&state, &caller, Some(instance_id(&id)?), query).await
}

#[utoipa::path(
    get,
    path = "/instances/events",
    tag = "events",
    summary = "List the Element token's instance's events, newest first",
    params(("status" = Option<String>, Query, description = "RECEIVED, DISPATCHED, NOTIFIED or FAILED"), ("from" = Option<String>, Query, description = "Only events received at or after this ISO 8601 date or time"), ("to" = Option<String>, Query, description = "Only events received before this ISO 8601 date or time"), ("pageSize" = Option<i64>, Query, description = "1 to 500, default 200"), ("nextPage" = Option<String>, Query, description = "Elements-Next-Page-Token of the previous page")),
    security(("authorization" = [])),
    responses((status = 200, body = [EventView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Vec<EventView>>), ApiError> {
    list_response(&state, &caller, None, query).await
}

#[utoipa::path(
    get,
    path = "/instances/{id}/events/{event_id}",
    tag = "events",
    summary = "Get one event of an instance",
    params(("id" = i64, Path, description = "Instance id"), ("event_id" = i64, Path, description = "Event id")),
    security(("authorization" = [])),
    responses((status = 200, body = EventView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Json<EventView>, ApiError> {
    let id = instance_id(&id)?;
    Ok(Json(
        state
            .services
            .get_event(&caller, Some(id), &event_id)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/instances/{id}/events/poller",
    tag = "events",
    summary = "How a polling instance's poller is doing: last and next poll, backoff, why it stopped",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = PollerView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn poller(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<PollerView>, ApiError> {
    let id = state
        .services
        .target_instance(&caller, Some(instance_id(&id)?))?;
    Ok(Json(state.services.poller_status(&caller, id).await?))
}

#[utoipa::path(
    get,
    path = "/instances/events/poller",
    tag = "events",
    summary = "How the Element token's instance's poller is doing",
    security(("authorization" = [])),
    responses((status = 200, body = PollerView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn poller_own(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<PollerView>, ApiError> {
    let id = state.services.target_instance(&caller, None)?;
    Ok(Json(state.services.poller_status(&caller, id).await?))
}

#[utoipa::path(
    get,
    path = "/instances/events/{event_id}",
    tag = "events",
    summary = "Get one event (of the Element token's instance, or of any instance of the account)",
    params(("event_id" = i64, Path, description = "Event id")),
    security(("authorization" = [])),
    responses((status = 200, body = EventView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show_own(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(event_id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(
        state.services.get_event(&caller, None, &event_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/instances/{id}/events/{event_id}/replay",
    tag = "events",
    summary = "Send an event's notifications again, under their Elements-Webhook-Id",
    params(("id" = i64, Path, description = "Instance id"), ("event_id" = i64, Path, description = "Event id")),
    security(("authorization" = [])),
    responses((status = 200, body = ReplayView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replay(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Json<ReplayView>, ApiError> {
    let id = instance_id(&id)?;
    Ok(Json(
        state.services.replay_event(&caller, id, &event_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/instances/events/{event_id}/replay",
    tag = "events",
    summary = "Send an event of the Element token's instance again",
    params(("event_id" = i64, Path, description = "Event id")),
    security(("authorization" = [])),
    responses((status = 200, body = ReplayView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replay_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
    Path(event_id): Path<String>,
) -> Result<Json<ReplayView>, ApiError> {
    let id = state.services.target_instance(&caller, None)?;
    Ok(Json(
        state.services.replay_event(&caller, id, &event_id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/instances/{id}/events/replay",
    tag = "events",
    summary = "Send every FAILED event of an instance again",
    params(("id" = i64, Path, description = "Instance id")),
    security(("authorization" = [])),
    responses((status = 200, body = ReplayView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replay_failed(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<Json<ReplayView>, ApiError> {
    let id = instance_id(&id)?;
    Ok(Json(
        state.services.replay_failed_events(&caller, id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/instances/events/replay",
    tag = "events",
    summary = "Send every FAILED event of the Element token's instance again",
    security(("authorization" = [])),
    responses((status = 200, body = ReplayView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replay_failed_own(
    State(state): State<AppState>,
    TwinAuth(caller): TwinAuth,
) -> Result<Json<ReplayView>, ApiError> {
    let id = state.services.target_instance(&caller, None)?;
    Ok(Json(
        state.services.replay_failed_events(&caller, id).await?,
    ))
}
