//! Calls to an instance's provider: the passthrough `ANY /proxy/{*vendorPath}` and
//! `GET /hubs/{hub}/ping`. Both act as one instance, so they need its Element token.

use super::AppState;
use super::error::ApiError;
use super::extract::note_instance;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use junction_oauth::{ProxyBody, REPLAY_LIMIT};
use junction_service::{Caller, PingView, ProxyRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/proxy/{*vendor_path}", any(proxy))
        // Cloud Elements routes by the instance, not by the hub segment: `/hubs/crm/ping`
        // and `/hubs/anything/ping` answer the same.
        .route("/hubs/{hub}/ping", get(ping))
}

/// The instance an Element token names; User and Organization secrets may come along.
struct InstanceAuth(Caller);

impl FromRequestParts<AppState> for InstanceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = state
            .services
            .authenticate_instance(super::extract::authorization_header(parts)?)
            .await?;
        note_instance(parts, &caller);
        Ok(Self(caller))
    }
}

async fn proxy(
    State(state): State<AppState>,
    InstanceAuth(caller): InstanceAuth,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // The raw path keeps the caller's percent-encoding, which the provider must see as is.
    let full = parts.uri.path();
    let path = full.strip_prefix("/proxy").unwrap_or(full).to_owned();
    let body = ProxyBody::read(body, REPLAY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body could not be read",
        )
    })?;
    let answer = state
        .services
        .proxy(
            &caller,
            ProxyRequest {
                method: parts.method,
                path,
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body,
            },
        )
        .await?;
    let mut response = Response::new(Body::new(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    Ok(response)
}

async fn ping(
    State(state): State<AppState>,
    InstanceAuth(caller): InstanceAuth,
) -> Result<Json<PingView>, ApiError> {
    Ok(Json(state.services.ping(&caller).await?))
}
