//! `GET /metrics` in the Prometheus text format, on its own listener
//! (`JUNCTION_METRICS_LISTEN`) so that it is never exposed where the API is.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use junction_store::Store;

/// Prometheus' text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(store)
}

async fn metrics(State(store): State<Store>) -> impl IntoResponse {
    // Pool gauges are sampled when read: between reads nobody looks at them.
    store.record_pool_metrics();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        junction_telemetry::render(),
    )
}
