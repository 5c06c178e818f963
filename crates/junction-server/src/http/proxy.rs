//! Calls to an instance's provider: the passthrough `ANY /proxy/{*vendorPath}`,
//! `GET /hubs/{hub}/ping` and the hub resources `/hubs/{hub}/{resource…}`. Each acts as
//! one instance, so it needs its Element token: without one the answer is 401, whatever
//! the path names.

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::note_instance;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodRouter, any, get};
use axum::{Json, Router};
use junction_oauth::{ProxyBody, REPLAY_LIMIT};
use junction_service::{Addressing, Caller, HubRequest, PingView, ProxyRequest};

/// The passthrough's route template. Its calls do not go through the API's route table
/// (see `super::Split`): this is the route they are counted under.
pub const PASSTHROUGH_ROUTE: &str = "/proxy/{*vendor_path}";

/// The passthrough, for every method.
pub fn passthrough() -> MethodRouter<AppState> {
    any(proxy)
}

/// The hub resources' route template. Their calls, like the passthrough's, are sent to
/// their handler directly (see `super::Split` and [`is_hub_resource`]): this is the route
/// they are counted under, the one `router` matches them by.
pub const HUB_RESOURCE_ROUTE: &str = "/hubs/{hub}/{*resource}";

/// The hub resources, for every method.
pub fn hub_resources() -> MethodRouter<AppState> {
    any(hub_resource)
}

/// Whether `path` (inside the API) is one [`HUB_RESOURCE_ROUTE`] matches in `router`: a
/// hub segment (empty too, as the route table reads it), then anything but nothing or
/// `ping` (which is its own route).
pub fn is_hub_resource(path: &str) -> bool {
    path.strip_prefix("/hubs/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, resource)| !resource.is_empty() && resource != "ping")
}

pub fn router() -> Router<AppState> {
    Router::new()
        // Cloud Elements routes by the instance, not by the hub segment: `/hubs/crm/ping`
        // and `/hubs/anything/ping` answer the same.
        .route("/hubs/{hub}/ping", get(ping))
        .route(HUB_RESOURCE_ROUTE, hub_resources())
}

/// The instance an Element token names; User and Organization secrets may come along.
struct InstanceAuth(Caller);

/// [`InstanceAuth`] for hub resources, which a disabled instance may call too (the
/// engine answers 403 for every resource but its `/objects`).
struct HubAuth(Caller);

impl FromRequestParts<AppState> for HubAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = super::extract::authenticated(parts, state, Addressing::HubInstance).await?;
        // A hub call holds a provider connection and perhaps a hook slot: it counts
        // against the caller's calls in progress like every other call.
        super::extract::admit(parts, state, caller).map(Self)
    }
}

impl FromRequestParts<AppState> for InstanceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller =
            super::extract::authenticated(parts, state, Addressing::ActingInstance).await?;
        note_instance(parts, &caller);
        Ok(Self(caller))
    }
}

/// A passthrough call: everything after `/proxy` is appended to the instance's
/// `base.url`, with the query, body and safe headers; the instance's credential is added
/// the way its element says; the provider's status, headers (minus hop-by-hop ones) and
/// body come back as they are. A provider 401 is answered by one refresh and one replay
/// (bodies up to 1 MiB); idempotent calls wait out a short `Retry-After`.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/proxy/{vendor_path}",
    tag = "hubs",
    summary = "Call the instance's provider",
    params(("vendor_path" = String, Path, description = "The provider path after the instance's base.url, e.g. `sobjects/Account`")),
    responses(
        (status = "default", description = "The provider's answer, passed through"),
        (status = 400, body = ApiErrorBody, description = "`invalid_path`, or `reauthorization_required` when the instance's grant is gone"),
        (status = 401, body = ApiErrorBody, description = "No Element token, or one that names no instance"),
        (status = 403, body = ApiErrorBody, description = "The instance is disabled"),
        (status = 502, body = ApiErrorBody, description = "The provider could not be reached"),
        (status = 504, body = ApiErrorBody, description = "The provider did not answer in time"),
    ),
    security(("authorization" = [])),
)]
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

/// A cheap authenticated call to the instance's provider, declared by its element.
#[utoipa::path(
    get,
    path = "/hubs/{hub}/ping",
    tag = "hubs",
    summary = "Check that the provider accepts the instance's credentials",
    params(("hub" = String, Path, description = "Any hub name: the Element token decides the instance")),
    responses(
        (status = 200, body = PingView),
        (status = 400, body = ApiErrorBody, description = "`ping_not_supported`, `reauthorization_required`, or the provider's refusal"),
        (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody),
        (status = 502, body = ApiErrorBody),
        (status = 504, body = ApiErrorBody),
    ),
    security(("authorization" = [])),
)]
async fn ping(
    State(state): State<AppState>,
    InstanceAuth(caller): InstanceAuth,
) -> Result<Json<PingView>, ApiError> {
    Ok(Json(state.services.ping(&caller).await?))
}

/// A hub resource call (`/hubs/{hub}/{resource…}`, or the bare path: see
/// [`super::bare_hub_call`]). The Element token decides the instance, so it is checked
/// before the path means anything: a caller without one learns 401, never whether a
/// resource exists.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/hubs/{hub}/{resource}",
    tag = "hubs",
    summary = "Call one of the instance's hub resources",
    description = "Runs the element's resource for the path (the hub segment is ignored; \
        the bare `/{resource}` is the same call). Lists are plain JSON arrays with \
        `Elements-Returned-Count`, and `Elements-Next-Page-Token` while more follow \
        (send it back as `nextPage`).",
    params(
        ("hub" = String, Path, description = "Any hub name: the Element token decides the instance"),
        ("resource" = String, Path, description = "The resource path, e.g. `contacts/42`"),
        ("pageSize" = Option<u32>, Query, description = "Records per page"),
        ("page" = Option<u32>, Query, description = "1-based page, where the vendor addresses pages"),
        ("nextPage" = Option<String>, Query, description = "The previous page's `Elements-Next-Page-Token`"),
        ("where" = Option<String>, Query, description = "A CEQL condition, where the element serves it"),
        ("orderBy" = Option<String>, Query, description = "CEQL ordering, e.g. `Name asc, CreatedDate desc`"),
        ("fields" = Option<String>, Query, description = "Fields to keep, e.g. `Id,Name`"),
    ),
    responses(
        (status = 200, description = "The resource's answer: a list as a JSON array, or one object"),
        (status = 400, body = ApiErrorBody, description = "`missing_parameter`, `invalid_page_token`, `invalid_parameter`, `invalid_query`, `unsupported_query`, `invalid_body`, `hook_failed` (a hook threw), or the provider's own 400 (`provider_error`)"),
        (status = 401, body = ApiErrorBody, description = "No Element token, or one that names no instance"),
        (status = 403, body = ApiErrorBody, description = "The instance is disabled"),
        (status = 404, body = ApiErrorBody, description = "The instance's element has no such resource"),
        (status = 405, body = ApiErrorBody, description = "The resource exists for other methods (see `Allow`)"),
        (status = 502, body = ApiErrorBody, description = "The provider failed, its answer could not be used, or a hook failed (`hook_failed`)"),
        (status = 504, body = ApiErrorBody, description = "The provider did not answer in time"),
    ),
    security(("authorization" = [])),
)]
async fn hub_resource(
    State(state): State<AppState>,
    HubAuth(caller): HubAuth,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // `/hubs/{hub}/…`: the hub segment is ignored, as Cloud Elements does.
    let full = parts.uri.path();
    let resource = full
        .strip_prefix("/hubs/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(full, |(_, resource)| resource);
    let mut path = String::with_capacity(resource.len() + 1);
    path.push('/');
    path.push_str(resource);
    let body = ProxyBody::read(body, REPLAY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body could not be read",
        )
    })?;
    let answer = state
        .services
        .hub_resource(
            &caller,
            HubRequest {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::MatchedPath;
    use axum::http::Method;
    use tower::ServiceExt;

    #[tokio::test]
    async fn hub_calls_sent_directly_are_those_the_route_table_gives_the_hub_resources() {
        // The table as `router` and `super::super::hubs::router` write it, each route
        // answering its template.
        let template = |path: MatchedPath| async move { path.as_str().to_owned() };
        let table: Router = Router::new()
            .route("/hubs/{hub}", get(template))
            .route("/hubs/{hub}/ping", get(template))
            .route(HUB_RESOURCE_ROUTE, any(template))
            .fallback(|| async { "none" });
        let mut taken = 0;
        for path in [
            "/hubs/crm/accounts",
            "/hubs/_/accounts/1/notes",
            "/hubs/crm/ping",
            "/hubs/crm/ping/",
            "/hubs/crm/PING",
            "/hubs/crm/%70ing",
            "/hubs/crm/pings",
            "/hubs/crm/",
            "/hubs/crm//",
            "/hubs/crm//a",
            "/hubs//accounts",
            "/hubs/crm",
            "/hubs",
            "/hubsx/crm/a",
            "/hub/crm/a",
        ] {
            for method in [Method::GET, Method::POST] {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                let answer = table.clone().oneshot(request).await.unwrap();
                let body = axum::body::to_bytes(answer.into_body(), 1024)
                    .await
                    .unwrap();
                assert_eq!(
                    body == HUB_RESOURCE_ROUTE.as_bytes(),
                    is_hub_resource(path),
                    "{method} {path}"
                );
                taken += usize::from(is_hub_resource(path));
            }
        }
        assert_eq!(taken, 2 * 9);
    }
}
