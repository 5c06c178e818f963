//! The hosted Connect page's API: per-account OAuth apps and Connect sessions (platform
//! calls), the page's own calls (authenticated by `Connect <token>`), and the provider's
//! callback at `/connect/callback`.

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, Auth, authorization_header};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use junction_service::{
    AccountParams, ConnectCallback, ConnectNext, ConnectPageView, ConnectSessionBody,
    ConnectSessionCreated, ConnectSessionView, ConnectStartBody, OAuthAppBody, OAuthAppView,
};

/// Routes under the API prefix.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth-apps", get(list_apps).post(put_app))
        .route("/oauth-apps/{id}", delete(remove_app))
        .route("/connect/sessions", axum::routing::post(create_session))
        .route("/connect/sessions/{id}", get(show_session))
        .route("/connect/session", get(page).post(start))
}

/// The provider's callback, at the root beside the page.
pub fn callback_router() -> Router<AppState> {
    Router::new().route(junction_service::CONNECT_CALLBACK_PATH, get(callback))
}

/// Junction's address, which the Connect page's link and the provider's callback are
/// built on: `JUNCTION_PUBLIC_URL` when set, since behind a proxy the Host a request
/// arrives with need not be the one customers can reach; else the address the caller
/// reached, made https by `X-Forwarded-Proto: https` from a TLS-ending proxy.
fn base_url(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(public) = &state.public_url {
        return Ok(public.as_str().trim_end_matches('/').to_owned());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    let candidate = format!("{scheme}://{host}");
    // Only a bare host and port: anything else in Host would end up in a link.
    match url::Url::parse(&candidate) {
        Ok(u)
            if !host.is_empty()
                && u.path() == "/"
                && u.query().is_none()
                && u.username().is_empty()
                && candidate.len() + 1 == u.as_str().len() =>
        {
            Ok(candidate)
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "the Host header must name this server as host[:port]",
        )),
    }
}

/// `?accountId=`, or a clear 400 naming what is wrong with the query.
fn account_params(
    query: Result<Query<AccountParams>, QueryRejection>,
) -> Result<AccountParams, ApiError> {
    query
        .map(|Query(params)| params)
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
}

#[utoipa::path(
    post,
    path = "/oauth-apps",
    tag = "connect",
    summary = "Store the account's OAuth app (client id and secret) for an element",
    request_body = OAuthAppBody,
    security(("authorization" = [])),
    responses((status = 200, body = OAuthAppView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn put_app(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<OAuthAppBody>,
) -> Result<Json<OAuthAppView>, ApiError> {
    Ok(Json(state.services.put_oauth_app(&caller, body).await?))
}

#[utoipa::path(
    get,
    path = "/oauth-apps",
    tag = "connect",
    summary = "List the account's OAuth apps (secrets masked)",
    params(AccountParams),
    security(("authorization" = [])),
    responses((status = 200, body = [OAuthAppView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list_apps(
    State(state): State<AppState>,
    Auth(caller): Auth,
    query: Result<Query<AccountParams>, QueryRejection>,
) -> Result<Json<Vec<OAuthAppView>>, ApiError> {
    let params = account_params(query)?;
    Ok(Json(state.services.list_oauth_apps(&caller, params).await?))
}

#[utoipa::path(
    delete,
    path = "/oauth-apps/{id}",
    tag = "connect",
    summary = "Delete one of the account's OAuth apps",
    params(("id" = i64, Path, description = "OAuth app id"), AccountParams),
    security(("authorization" = [])),
    responses((status = 200), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn remove_app(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    query: Result<Query<AccountParams>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = account_params(query)?;
    let id = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "oauth_app_not_found",
            "no such OAuth app",
        )
    })?;
    state.services.delete_oauth_app(&caller, id, params).await?;
    Ok(Json(serde_json::json!({})))
}

#[utoipa::path(
    post,
    path = "/connect/sessions",
    tag = "connect",
    summary = "Create a single-use Connect session for one end customer",
    description = "With `eventNotificationCallbackUrl`, Junction POSTs one notification there when the session ends: completed (with the instance id), failed at the provider (denied included) or expired. Its body is a `ConnectSessionEvent`; it goes through the same outbox as instance events (retries, `Elements-Webhook-Id`, and `Elements-Webhook-Signature` plus the Standard Webhooks headers when `eventNotificationSignatureKey` is set).",
    request_body = ConnectSessionBody,
    security(("authorization" = [])),
    responses((status = 201, body = ConnectSessionCreated), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn create_session(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConnectSessionBody>,
) -> Result<Response, ApiError> {
    let base = base_url(&state, &headers)?;
    let created = state
        .services
        .create_connect_session(&caller, &base, body)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/connect/sessions/{id}",
    tag = "connect",
    summary = "A Connect session's status, and its instance once completed",
    params(("id" = i64, Path, description = "Connect session id"), AccountParams),
    security(("authorization" = [])),
    responses((status = 200, body = ConnectSessionView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show_session(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    query: Result<Query<AccountParams>, QueryRejection>,
) -> Result<Json<ConnectSessionView>, ApiError> {
    let params = account_params(query)?;
    let id = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "connect_session_not_found",
            "no such Connect session",
        )
    })?;
    Ok(Json(
        state
            .services
            .get_connect_session(&caller, id, params)
            .await?,
    ))
}

/// `Authorization: Connect <token>`, the page's proof of its session.
struct ConnectToken(String);

impl FromRequestParts<AppState> for ConnectToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let header = authorization_header(parts)?.unwrap_or_default();
        match header.strip_prefix("Connect ") {
            Some(token) if !token.trim().is_empty() => Ok(Self(token.trim().to_owned())),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "connect_session_invalid",
                "send the Connect session's token as 'Authorization: Connect <token>'",
            )),
        }
    }
}

#[utoipa::path(
    get,
    path = "/connect/session",
    tag = "connect",
    summary = "What the Connect page shows: the elements and what the customer must provide",
    security(("connect" = [])),
    responses((status = 200, body = ConnectPageView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 410, body = ApiErrorBody)),
)]
async fn page(
    State(state): State<AppState>,
    ConnectToken(token): ConnectToken,
) -> Result<Json<ConnectPageView>, ApiError> {
    Ok(Json(state.services.connect_page(&token).await?))
}

#[utoipa::path(
    post,
    path = "/connect/session",
    tag = "connect",
    summary = "Connect: the provider's authorization URL, or the app's returnUrl once provisioned",
    request_body = ConnectStartBody,
    security(("connect" = [])),
    responses((status = 200, body = ConnectNext), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 410, body = ApiErrorBody), (status = 502, body = ApiErrorBody), (status = 504, body = ApiErrorBody)),
)]
async fn start(
    State(state): State<AppState>,
    ConnectToken(token): ConnectToken,
    ApiJson(body): ApiJson<ConnectStartBody>,
) -> Result<Json<ConnectNext>, ApiError> {
    Ok(Json(state.services.connect_start(&token, body).await?))
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ConnectCallback>,
) -> Result<Redirect, ApiError> {
    let fallback = base_url(&state, &headers).unwrap_or_default();
    let next = state.services.connect_callback(&fallback, query).await?;
    Ok(Redirect::to(&next))
}
