//! `GET /health`: 200 once the server is serving and its database answers.
//! `GET /ready`: 200 once this replica can serve every call: its database answers, its
//! migrations are current and, on PostgreSQL, it hears other replicas' writes.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

/// Longest the readiness checks may take: a load balancer polls often and must not pile
/// up checks against a database that does not answer.
const READY_LIMIT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// The same readiness check under the API prefix, where the API document lists it.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/ready", get(ready))
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.services.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database unreachable"})),
            )
        }
    }
}

/// Every check is reported, so whoever reads the answer sees what is missing.
async fn ready(State(state): State<AppState>) -> Response {
    let readiness = state.services.store.readiness(READY_LIMIT).await;
    let listener = match readiness.listener_connected {
        None => "not used",
        Some(true) => "connected",
        Some(false) => "disconnected",
    };
    let body = json!({
        "status": if readiness.ready() { "ready" } else { "unavailable" },
        "database": if readiness.reachable { "reachable" } else { "unreachable" },
        "migrations": match (readiness.reachable, readiness.migrations_current) {
            (false, _) => "unknown",
            (true, true) => "current",
            (true, false) => "pending",
        },
        "listener": listener,
    });
    if readiness.ready() {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, "1")],
            Json(body),
        )
            .into_response()
    }
}
