//! The HTTP surface. Every API route lives under `/elements/api-v2`, as in Cloud
//! Elements; `/health` and `/ready` sit at the root for load balancers, and `/metrics`
//! on a listener of its own (`metrics.rs`).

mod accounts;
mod connect;
mod console;
mod docs;
mod elements;
pub mod error;
mod events;
pub mod extract;
mod health;
mod hubs;
mod instances;
pub mod limit;
pub mod metrics;
pub mod openapi;
mod proxy;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use error::{ApiError, REQUEST_ID, RequestId};
use junction_service::Services;
use junction_telemetry::trace_context::TraceContext;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tower::Service;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub const API_PREFIX: &str = "/elements/api-v2";
// Names made once: a name given as a string is copied into a new allocation each time.
const ELEMENTS_REQUEST_ID: header::HeaderName =
    header::HeaderName::from_static("elements-request-id");
const ELEMENTS_TRACE_ID: header::HeaderName = header::HeaderName::from_static("elements-trace-id");
const ELEMENTS_ELEMENT_INSTANCE_ID: header::HeaderName =
    header::HeaderName::from_static("elements-element-instance-id");
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
    let document = bytes::Bytes::from(
        serde_json::to_vec(&openapi::document().context("building the OpenAPI document")?)
            .context("serializing the OpenAPI document")?,
    );
    let api = Router::new()
        .merge(elements::router())
        .merge(docs::router())
        .merge(instances::router())
        .merge(events::router())
        .merge(accounts::router())
        .merge(hubs::router())
        .merge(connect::router())
        .merge(proxy::router())
        .merge(health::api_router())
        .route(
            "/openapi.json",
            axum::routing::get(move || std::future::ready(json_bytes(document.clone()))),
        )
        .fallback(|| async { ApiError::not_found("no such API route") })
        .method_not_allowed_fallback(method_not_allowed)
        // Plain request maps rather than `from_fn` middlewares, which would box their
        // futures and clone the router's service per request.
        .layer(tower::util::MapRequestLayer::new(note_route::<true>))
        .with_state(state.clone());
    let rest = Router::new()
        .merge(health::router())
        .merge(console::router())
        .merge(connect::callback_router())
        // Swagger UI's assets are compiled in (`vendored`), so /docs works offline. Its
        // default `validatorUrl` would send the document to validator.swagger.io from
        // every browser that opens the page.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").config(
                utoipa_swagger_ui::Config::new([format!("{API_PREFIX}/openapi.json")])
                    .validator_url("none"),
            ),
        )
        .merge(docs::ui_router())
        .fallback(|| async {
            ApiError::not_found("no such route; the API lives under /elements/api-v2")
        })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower::util::MapRequestLayer::new(note_route::<false>))
        .with_state(state.clone());
    // The whole stack wraps the split once, outermost first: `Router::layer` would wrap
    // every route in a boxed service of its own, cloned box by box per request (so the
    // HTML security headers are added by `RequestContext` rather than by a middleware
    // of their own).
    let app = tower::ServiceBuilder::new()
        .layer(tower::layer::layer_fn(RequestContext))
        .layer(cors())
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .service(Split {
            api,
            passthrough: proxy::passthrough().with_state(state.clone()),
            hub: proxy::hub_resources().with_state(state.clone()),
            rest,
        });
    Ok(Router::new().fallback_service(app))
}

/// Sends API paths to the API's router with the prefix taken off, everything else to
/// the root's. `Router::nest_service` would do the same with a second route match, a
/// formatted copy of the URI and two more layers per request. Passthrough calls
/// (`/proxy/…`), the bulk of a busy Junction's requests, and hub resource calls go to
/// their handlers directly: the route table's lookup, path parameters and matched-path
/// records would cost them as much as the rest of the routing.
#[derive(Clone)]
struct Split {
    api: Router,
    passthrough: axum::routing::MethodRouter,
    hub: axum::routing::MethodRouter,
    rest: Router,
}

impl Service<Request> for Split {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let Some(uri) = api_uri(&req) else {
            return self.rest.call(req);
        };
        let passthrough = uri
            .path()
            .strip_prefix("/proxy/")
            .is_some_and(|vendor_path| !vendor_path.is_empty());
        let hub = !passthrough && proxy::is_hub_resource(uri.path());
        *req.uri_mut() = uri;
        if passthrough {
            note_template(
                &req,
                true,
                extract::RouteTemplate::Fixed(proxy::PASSTHROUGH_ROUTE),
            );
            self.passthrough.call(req)
        } else if hub {
            note_template(
                &req,
                true,
                extract::RouteTemplate::Fixed(proxy::HUB_RESOURCE_ROUTE),
            );
            self.hub.call(req)
        } else {
            self.api.call(req)
        }
    }
}

/// The URI an API request has inside the API: without the prefix and, under the
/// bare-path rule, as the hub call it stands for. `None` for paths outside the API.
fn api_uri(req: &Request) -> Option<axum::http::Uri> {
    let uri = req.uri();
    let inner = match uri.path().strip_prefix(API_PREFIX)? {
        "" => "/",
        rest if rest.starts_with('/') => rest,
        _ => return None,
    };
    let hub = bare_hub_call(inner, req.headers());
    let query = uri.query();
    let mut path_and_query = String::with_capacity(
        inner.len() + query.map_or(0, |q| q.len() + 1) + if hub { HUB_PREFIX.len() } else { 0 },
    );
    if hub {
        path_and_query.push_str(HUB_PREFIX);
    }
    path_and_query.push_str(inner);
    if let Some(query) = query {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    axum::http::Uri::from_parts(parts).ok()
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
/// (`/proxy/…`, `/hubs/{hub}/…`), or describe the catalog (`/elements…`), and the
/// routes of the app that embeds Junction (`/oauth-apps…`, `/connect/…`), which never
/// act as an instance but are sent by SDKs that put the Element token on every call.
/// An element resource of one of these names is reached as `/hubs/{hub}/<name>`. `/docs`,
/// `/health`, the console and the OpenAPI document live outside the API prefix.
const KEPT_PLATFORM_ROUTES: [&str; 6] = [
    "instances",
    "proxy",
    "hubs",
    "elements",
    "oauth-apps",
    "connect",
];

/// The one rule for bare hub paths (spec §5.1): a call with an Element token to any
/// other API path is a hub resource call, as if sent to `/hubs/<hub>/<path>` (the hub
/// segment means nothing), so `GET /accounts` with an Element token reaches the
/// element's `accounts` resource, also when User and Organization secrets come along
/// (Cloud Elements' SDKs send all three). Without an Element token the platform routes
/// answer as always (`GET /accounts` with User and Organization secrets is the accounts
/// API).
fn bare_hub_call(path: &str, headers: &header::HeaderMap) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    // The platform routes keep their meaning whatever the credentials: their calls (every
    // proxied one among them) need not have their `Authorization` parsed here.
    let rewritable = !first.is_empty() && !KEPT_PLATFORM_ROUTES.contains(&first);
    rewritable && has_element_token(headers)
}

/// What the bare-path rule puts before a path: `/hubs/<hub>`, with a hub name that means
/// nothing.
const HUB_PREFIX: &str = "/hubs/_";

fn has_element_token(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| junction_service::parse_authorization(v).ok())
        .is_some_and(|p| p.element.is_some())
}

/// The request middleware (see [`RequestContext`]'s `call`). A plain service rather than
/// a `from_fn` middleware, which would box the rest of the stack anew and clone it, box by
/// box, for every request.
#[derive(Clone)]
struct RequestContext<S>(S);

impl<S> Service<Request> for RequestContext<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    /// Gives every request an id: in the `Elements-Request-Id` header, in error bodies and
    /// in the log, so one failing call can be traced from a customer's report to the log
    /// line. Every request also belongs to a trace: the caller's W3C `traceparent` is
    /// continued, otherwise one starts here; its id is in `Elements-Trace-Id` and on the
    /// request's span. Every response to a call an Element token authenticated also names
    /// the token's instance (`Elements-Element-Instance-Id`), as Cloud Elements does, so a
    /// caller juggling many tokens can tell answers apart. HTML responses get the security
    /// headers (`console::add_security_headers`). At debug level it logs each request's
    /// method, path, status and duration (never headers: they carry secrets), and it
    /// counts the request by its route template. One middleware does all of it: it runs
    /// on every request, proxied calls included.
    fn call(&mut self, mut req: Request) -> Self::Future {
        let context = RequestRecord::begin(&mut req);
        // The rest of the stack starts inside the request's span and id too: routing and
        // the layers do part of their work as they are called, before their future runs.
        let answer = context
            .span
            .in_scope(|| REQUEST_ID.sync_scope(context.id, || self.0.call(req)));
        Box::pin(context.finish(answer))
    }
}

/// What `RequestContext` notes of a request on its way in, for its response.
struct RequestRecord {
    started: std::time::Instant,
    preflight: bool,
    method: Method,
    logged: Option<String>,
    docs: bool,
    slots: extract::RequestSlots,
    id: RequestId,
    trace_id: String,
    span: tracing::Span,
}

impl RequestRecord {
    fn begin(req: &mut Request) -> Self {
        let started = std::time::Instant::now();
        // Exposing headers means something on actual responses only, as the CORS layer
        // has it.
        let preflight = req.method() == Method::OPTIONS;
        let method = req.method().clone();
        let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
        let docs = req.uri().path().starts_with("/docs");
        let slots = extract::RequestSlots::default();
        req.extensions_mut().insert(slots.clone());
        let id = RequestId::random();
        let trace = TraceContext::continue_or_start(
            req.headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        );
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            trace_id = tracing::field::Empty,
            parent_id = trace.parent_id.as_deref(),
            method = %method,
            // The template, never the path: paths carry ids. Known once routed
            // (`note_route`).
            route = tracing::field::Empty,
        );
        let trace_id = trace.adopt(&span);
        span.record("trace_id", trace_id.as_str());
        Self {
            started,
            preflight,
            method,
            logged,
            docs,
            slots,
            id,
            trace_id,
            span,
        }
    }

    async fn finish<F, R>(self, answer: F) -> Result<Response, Infallible>
    where
        F: Future<Output = Result<R, Infallible>>,
        R: IntoResponse,
    {
        let Self {
            started,
            preflight,
            method,
            logged,
            docs,
            slots,
            id,
            trace_id,
            span,
        } = self;
        let Ok(answered) = REQUEST_ID
            .scope(id, tracing::Instrument::instrument(answer, span))
            .await;
        let mut response = answered.into_response();
        // The caller's permit is held until the response is ready, not while it streams.
        drop(
            slots
                .0
                .permit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        console::add_security_headers(docs, &mut response);
        let headers = response.headers_mut();
        // Room for the four below at once, rather than a regrowth of the table midway.
        headers.reserve(4);
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            headers.insert(ELEMENTS_REQUEST_ID, value);
        }
        if let Ok(value) = HeaderValue::from_str(&trace_id) {
            headers.insert(ELEMENTS_TRACE_ID, value);
        }
        if !preflight {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
        if let Some(instance) = slots.0.instance.get() {
            headers.insert(ELEMENTS_ELEMENT_INSTANCE_ID, HeaderValue::from(*instance));
        }
        let status = response.status().as_u16();
        let (prefix, route) = slots.0.route.get().map_or(("", None), |note| {
            (note.prefix, Some(note.template.as_str()))
        });
        junction_telemetry::http_request(prefix, route, method.as_str(), status, started.elapsed());
        if let Some(path) = logged {
            tracing::debug!(
                request_id = %id,
                trace_id,
                %method,
                path,
                status,
                micros = started.elapsed().as_micros() as u64,
                "request answered"
            );
        }
        Ok(response)
    }
}

/// Notes the route template a request matched, for the metrics and the request's span:
/// `RequestContext` runs before routing, so it cannot read it from the request itself.
/// `API` says whether the template is the API's, which is matched without its prefix.
fn note_route<const API: bool>(req: Request) -> Request {
    if let Some(path) = req.extensions().get::<MatchedPath>() {
        note_template(&req, API, extract::RouteTemplate::Matched(path.clone()));
    }
    req
}

fn note_template(req: &Request, api: bool, template: extract::RouteTemplate) {
    if let Some(slots) = req.extensions().get::<extract::RequestSlots>() {
        let prefix = if api { API_PREFIX } else { "" };
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("route", format!("{prefix}{}", template.as_str()));
        }
        let _ = slots.0.route.set(extract::RouteNote { prefix, template });
    }
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
/// case and order. `tower-http` would lower-case the names, so `RequestContext` writes
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
