//! The console and the hosted Connect page: static pages from `junction-console`, with
//! the security headers every HTML response carries.

use super::AppState;
use super::error::ApiError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use junction_console::Asset;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(console))
        .route("/console/callback", get(console))
        .route("/console/{file}", get(asset))
        .route("/connect", get(connect))
}

async fn console() -> Response {
    serve(junction_console::console_page())
}

async fn connect() -> Response {
    serve(junction_console::connect_page())
}

async fn asset(Path(file): Path<String>) -> Response {
    match junction_console::asset(&file) {
        Some(asset) => serve(asset),
        None => ApiError::not_found("no such console file").into_response(),
    }
}

fn serve(asset: Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Small files on the same host: revalidating costs less than a stale console
            // after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

/// Scripts only from Junction's own files (never inline, never another origin), calls
/// only to Junction, and no page may be framed: a page holding secrets in its tab cannot
/// be dressed up by another site.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";
/// Swagger UI sets inline styles and data: images; it still runs only its own scripts.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the HTML security headers to every HTML response, whichever route made it; JSON
/// answers are left as they are, so the API stays callable from other origins. A policy
/// the route already set stands: a provider's page relayed by the passthrough or a stream
/// resource carries a sandboxing policy, and Junction's own would let it run as
/// Junction's origin. `docs` says whether the request was for `/docs`. Called by the
/// request middleware for every response.
pub fn add_security_headers(docs: bool, response: &mut Response) {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        let headers = response.headers_mut();
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            let policy = if docs { DOCS_POLICY } else { PAGE_POLICY };
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(policy),
            );
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
}
