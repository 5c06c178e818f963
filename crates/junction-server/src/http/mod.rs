//! The HTTP surface. Every API route lives under `/elements/api-v2`, as in Cloud
//! Elements; `/health` sits at the root for load balancers.

mod accounts;
mod connect;
mod console;
mod docs;
mod elements;
pub mod error;
pub mod extract;
mod health;
mod hubs;
mod instances;
pub mod limit;
pub mod openapi;
mod proxy;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use error::{ApiError, REQUEST_ID};
use junction_service::Services;
use std::sync::Arc;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const API_PREFIX: &str = "/elements/api-v2";
const BODY_LIMIT: usize = 1024 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// One shared counter to bump per request, rather than one per client and pool.
    pub services: Arc<Services>,
    pub catalog_json: Arc<elements::CatalogJson>,
    /// Calls in progress per caller (`JUNCTION_CALLER_CONCURRENCY`).
    pub limits: Arc<limit::CallerLimits>,
    /// Where clients reach Junction (`JUNCTION_PUBLIC_URL`), for documents that name it.
    pub public_url: Option<Arc<url::Url>>,
}

pub fn router(
    services: Services,
    caller_concurrency: usize,
    public_url: Option<url::Url>,
) -> anyhow::Result<Router> {
    let state = AppState {
        catalog_json: Arc::new(elements::CatalogJson::build(&services.catalog)?),
        services: Arc::new(services),
        limits: limit::CallerLimits::new(caller_concurrency),
        public_url: public_url.map(Arc::new),
    };
    let document = openapi::document().context("building the OpenAPI document")?;
    let api = Router::new()
        .merge(elements::router())
        .merge(docs::router())
        .merge(instances::router())
        .merge(accounts::router())
        .merge(hubs::router())
        .merge(connect::router())
        .merge(proxy::router())
        .fallback(|| async { ApiError::not_found("no such API route") })
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // The bare-path rule must see the path before the API's routes do.
    let api = middleware::from_fn(hub_paths).layer(api);
    Ok(Router::new()
        .nest_service(API_PREFIX, api)
        .merge(health::router())
        .merge(console::router())
        .merge(connect::callback_router())
        // Swagger UI's assets are compiled in (`vendored`), so /docs works offline. Its
        // default `validatorUrl` would send the document to validator.swagger.io from
        // every browser that opens the page.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .external_url_unchecked(format!("{API_PREFIX}/openapi.json"), document)
                .config(utoipa_swagger_ui::Config::default().validator_url("none")),
        )
        .merge(docs::ui_router())
        .fallback(|| async {
            ApiError::not_found("no such route; the API lives under /elements/api-v2")
        })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
        .layer(middleware::from_fn(console::security_headers))
        .layer(middleware::from_fn(request_context))
        .with_state(state))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// First path segments of platform routes that keep their meaning with an Element token:
/// the routes that address the token's own instance (`/instances…`), act as it
/// (`/proxy/…`, `/hubs/{hub}/…`), or describe the catalog (`/elements…`). `/docs`,
/// `/health` and the OpenAPI document live outside the API prefix.
const INSTANCE_PLATFORM_ROUTES: [&str; 4] = ["instances", "proxy", "hubs", "elements"];

/// The one rule for bare hub paths (spec §5.1): a call with an Element token to any
/// other API path is a hub resource call, as if sent to `/hubs/<hub>/<path>` (the hub
/// segment means nothing), so `GET /accounts` with an Element token reaches the
/// element's `accounts` resource. Without an Element token the platform routes answer
/// as always (`GET /accounts` with User and Organization secrets is the accounts API).
async fn hub_paths(mut req: Request, next: Next) -> Response {
    let has_element_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| junction_service::parse_authorization(v).ok())
        .is_some_and(|p| p.element.is_some());
    let path = req.uri().path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if has_element_token && !first.is_empty() && !INSTANCE_PLATFORM_ROUTES.contains(&first) {
        let rewritten = match req.uri().query() {
            Some(query) => format!("/hubs/_{path}?{query}"),
            None => format!("/hubs/_{path}"),
        };
        if let Ok(uri) = rewritten.parse() {
            *req.uri_mut() = uri;
        }
    }
    next.run(req).await
}

/// Gives every request an id: in the `Elements-Request-Id` header, in error bodies and in
/// the log, so one failing call can be traced from a customer's report to the log line.
/// Every response to a call an Element token authenticated also names the token's
/// instance (`Elements-Element-Instance-Id`), as Cloud Elements does, so a caller
/// juggling many tokens can tell answers apart. At debug level it logs each request's
/// method, path, status and duration (never headers: they carry secrets). One
/// middleware does all of it: it runs on every request, proxied calls included.
async fn request_context(mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    // Exposing headers means something on actual responses only, as the CORS layer has it.
    let preflight = req.method() == Method::OPTIONS;
    let logged = tracing::enabled!(tracing::Level::DEBUG)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    // 128 random bits from the thread's generator: unique enough for a trace id, and
    // no system call on the hot path.
    let id = format!("{:032x}", rand::random::<u128>());
    let slot = extract::ElementInstance::default();
    req.extensions_mut().insert(slot.clone());
    // Holds the caller's permit (see `limit.rs`) until the response is ready.
    let permit = limit::PermitSlot::default();
    req.extensions_mut().insert(permit.clone());
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    drop(permit);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert("elements-request-id", value);
    }
    if !preflight {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    if let Some(instance) = slot.0.get() {
        headers.insert("elements-element-instance-id", HeaderValue::from(*instance));
    }
    if let Some((method, path)) = logged {
        tracing::debug!(
            request_id = %id,
            %method,
            path,
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request answered"
        );
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

/// The response headers a browser script may read, as Cloud Elements lists them, in its
/// case and order. `tower-http` would lower-case the names, so `request_context` writes
/// the header itself. `Elements-Element-Instance-Id` is still sent, just not listed.
pub const EXPOSED_HEADERS: &str = "Elements-Returned-Count, Elements-Total-Count, \
    Elements-Request-Id, Elements-Next-Page-Token, Elements-Trace-Id, Elements-Error, \
    Content-Disposition";

fn cors() -> CorsLayer {
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
}

/// A JSON response from pre-serialized bytes (the catalog never changes at run time).
pub(crate) fn json_bytes(bytes: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}
