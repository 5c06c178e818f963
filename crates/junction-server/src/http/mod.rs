//! The HTTP surface. Every API route lives under `/elements/api-v2`, as in Cloud
//! Elements; `/health` sits at the root for load balancers.

mod accounts;
mod elements;
pub mod error;
pub mod extract;
mod health;
mod instances;
pub mod openapi;
mod proxy;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use error::{ApiError, REQUEST_ID};
use junction_service::Services;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub const API_PREFIX: &str = "/elements/api-v2";
const BODY_LIMIT: usize = 1024 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub catalog_json: Arc<elements::CatalogJson>,
}

pub fn router(services: Services) -> anyhow::Result<Router> {
    let state = AppState {
        catalog_json: Arc::new(elements::CatalogJson::build(&services.catalog)?),
        services,
    };
    let api = Router::new()
        .merge(elements::router())
        .merge(instances::router())
        .merge(accounts::router())
        .merge(proxy::router())
        .fallback(|| async { ApiError::not_found("no such API route") });
    Ok(Router::new()
        .nest(API_PREFIX, api)
        .merge(health::router())
        // Swagger UI's assets are compiled in (`vendored`), so /docs works offline.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .url(format!("{API_PREFIX}/openapi.json"), openapi::document()),
        )
        .fallback(|| async {
            ApiError::not_found("no such route; the API lives under /elements/api-v2")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(TraceLayer::new_for_http())
        .layer(middleware::from_fn(element_instance_id))
        .layer(middleware::from_fn(request_id))
        .with_state(state))
}

/// Gives every request an id: in the `Elements-Request-Id` header, in error bodies and in
/// the log, so one failing call can be traced from a customer's report to the log line.
async fn request_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("elements-request-id", value);
    }
    response
}

/// Every response to a call an Element token authenticated names the token's instance,
/// as Cloud Elements does, so a caller juggling many tokens can tell answers apart.
async fn element_instance_id(mut req: Request, next: Next) -> Response {
    let slot = extract::ElementInstance::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    if let Some(id) = slot.0.get() {
        response
            .headers_mut()
            .insert("elements-element-instance-id", HeaderValue::from(*id));
    }
    response
}

/// A bug must not take the connection down or leak a backtrace: log it, answer a plain
/// 500 in the API's error format.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Junction failed to complete the request; the request id identifies it in the server log",
    )
    .into_response()
}

fn cors() -> CorsLayer {
    let exposed = [
        "elements-returned-count",
        "elements-total-count",
        "elements-request-id",
        "elements-next-page-token",
        "elements-trace-id",
        "elements-error",
        "elements-element-instance-id",
        "content-disposition",
    ]
    .map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers(exposed)
}

/// A JSON response from pre-serialized bytes (the catalog never changes at run time).
pub(crate) fn json_bytes(bytes: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
