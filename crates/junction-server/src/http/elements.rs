//! The catalog: `/elements`, `/elements/keys`, `/elements/{keyOrId}`, element metadata
//! (`/elements/metadata`, `/elements/{keyOrId}/metadata`) and step 1 of provisioning,
//! `/elements/{keyOrId}/oauth/url` and `/oauth/token`; and the Element Builder: custom
//! elements and their parts (`/elements/{keyOrId}/configuration`, `/resources`,
//! `/parameters`, `/hooks`, `/objects[/{name}/fields]`).

use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, Auth, MaybeAuth, query_flag};
use super::{AppState, json_bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use junction_catalog::Catalog;
use junction_core::element::ConfigEntry;
use junction_core::{ElementDefinition, ElementSummary, OrganizationId};
use junction_service::{
    Caller, ElementMetadata, ElementPart, FoundElement, OAuthTokenParams, OAuthTokenResponse,
    OAuthUrlParams, OAuthUrlResponse,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/elements", get(list).post(create))
        .route("/elements/keys", get(keys))
        .route("/elements/metadata", get(metadata_list))
        .route("/elements/{key_or_id}/metadata", get(metadata))
        .route(
            "/elements/{key_or_id}",
            get(show).put(replace).delete(remove),
        )
        .route(
            "/elements/{key_or_id}/active",
            put(activate).delete(deactivate),
        )
        .route("/elements/{key_or_id}/clone", post(clone))
        .route("/elements/{key_or_id}/export", get(export))
        .route(
            "/elements/{key_or_id}/oauth/url",
            get(oauth_url_get).post(oauth_url_post),
        )
        .route("/elements/{key_or_id}/oauth/token", get(oauth_token))
        .route(
            "/elements/{key_or_id}/configuration",
            get(configuration_list).post(configuration_create),
        )
        .route(
            "/elements/{key_or_id}/configuration/{item}",
            get(configuration_get)
                .put(configuration_put)
                .delete(configuration_delete),
        )
        .route(
            "/elements/{key_or_id}/resources",
            get(resources_list).post(resources_create),
        )
        .route(
            "/elements/{key_or_id}/resources/{item}",
            get(resources_get)
                .put(resources_put)
                .delete(resources_delete),
        )
        .route(
            "/elements/{key_or_id}/parameters",
            get(parameters_list).post(parameters_create),
        )
        .route(
            "/elements/{key_or_id}/parameters/{item}",
            get(parameters_get)
                .put(parameters_put)
                .delete(parameters_delete),
        )
        .route(
            "/elements/{key_or_id}/hooks",
            get(hooks_list).post(hooks_create),
        )
        .route(
            "/elements/{key_or_id}/hooks/{item}",
            get(hooks_get).put(hooks_put).delete(hooks_delete),
        )
        .route(
            "/elements/{key_or_id}/objects",
            get(objects_list).post(objects_create),
        )
        .route(
            "/elements/{key_or_id}/objects/{name}",
            get(objects_get).put(objects_put).delete(objects_delete),
        )
        .route(
            "/elements/{key_or_id}/objects/{name}/fields",
            get(fields_list).post(fields_create),
        )
        .route(
            "/elements/{key_or_id}/objects/{name}/fields/{item}",
            get(fields_get).put(fields_put).delete(fields_delete),
        )
}

/// The built-in catalog's JSON, serialized once at start. Custom elements' JSON is
/// kept with their in-memory copies (`junction_store::CustomElement::detail_json`,
/// `OrganizationElements::list_json`) and dropped with them on any change.
pub struct CatalogJson {
    list: Bytes,
    keys: Bytes,
    by_key: HashMap<String, Bytes>,
    /// The built-ins' summaries, for joining with an organization's custom elements.
    summaries: Vec<junction_core::element::SharedJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ElementDetail<'a> {
    #[serde(flatten)]
    summary: ElementSummary,
    configuration: Vec<ConfigView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigView<'a> {
    key: &'a str,
    name: &'a str,
    description: Option<&'a str>,
    #[serde(rename = "type")]
    kind: junction_core::element::ConfigType,
    required: bool,
    default_value: Option<&'a str>,
    hide_from_console: bool,
    internal: bool,
    active: bool,
}

impl CatalogJson {
    pub fn build(catalog: &Catalog) -> anyhow::Result<Self> {
        let elements = catalog.list();
        let summaries: Vec<ElementSummary> = elements.iter().map(|e| e.summary()).collect();
        let keys: Vec<&str> = elements.iter().map(|e| e.key.as_str()).collect();
        let mut by_key = HashMap::new();
        for e in &elements {
            by_key.insert(e.key.clone(), detail_json(e)?);
        }
        Ok(Self {
            list: Bytes::from(serde_json::to_vec(&summaries)?),
            keys: Bytes::from(serde_json::to_vec(&keys)?),
            by_key,
            summaries: elements.iter().map(|e| e.summary_json()).collect(),
        })
    }
}

/// `GET /elements/{key}`'s body: the summary and the configuration entries.
fn detail_json(e: &ElementDefinition) -> anyhow::Result<Bytes> {
    let detail = ElementDetail {
        summary: e.summary(),
        configuration: e.configuration.iter().map(config_view).collect(),
    };
    Ok(Bytes::from(serde_json::to_vec(&detail)?))
}

async fn organization(
    state: &AppState,
    caller: Option<&Caller>,
) -> Result<Option<OrganizationId>, ApiError> {
    match caller {
        Some(caller) => Ok(Some(state.services.organization_of(caller).await?)),
        None => Ok(None),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::from(junction_service::ServiceError::Internal(e.to_string()))
}

fn config_view(e: &ConfigEntry) -> ConfigView<'_> {
    ConfigView {
        key: &e.key,
        name: &e.name,
        description: e.description.as_deref(),
        kind: e.kind,
        required: e.required,
        default_value: e.default.as_deref(),
        hide_from_console: e.hide_from_console,
        internal: e.internal,
        active: true,
    }
}

#[utoipa::path(
    get,
    path = "/elements",
    tag = "elements",
    summary = "List the element catalog",
    security((), ("authorization" = [])),
    responses((status = 200, body = [ElementSummary]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn list(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
) -> Result<Response, ApiError> {
    let Some(org) = organization(&state, caller.as_ref()).await? else {
        return Ok(json_bytes(state.catalog_json.list.clone()));
    };
    let custom = state.services.custom_elements(org).await?;
    if custom.elements.is_empty() {
        return Ok(json_bytes(state.catalog_json.list.clone()));
    }
    if let Some(kept) = custom.list_json.get() {
        return Ok(json_bytes(kept.clone()));
    }
    let all: Vec<junction_core::element::SharedJson> = state
        .catalog_json
        .summaries
        .iter()
        .cloned()
        .chain(custom.elements.iter().map(|c| c.definition.summary_json()))
        .collect();
    let bytes = Bytes::from(serde_json::to_vec(&all).map_err(internal)?);
    Ok(json_bytes(custom.list_json.get_or_init(|| bytes).clone()))
}

#[utoipa::path(
    get,
    path = "/elements/keys",
    tag = "elements",
    summary = "List element keys",
    security((), ("authorization" = [])),
    responses((status = 200, body = [String]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn keys(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
) -> Result<Response, ApiError> {
    let Some(org) = organization(&state, caller.as_ref()).await? else {
        return Ok(json_bytes(state.catalog_json.keys.clone()));
    };
    let custom = state.services.custom_elements(org).await?;
    if custom.elements.is_empty() {
        return Ok(json_bytes(state.catalog_json.keys.clone()));
    }
    let keys: Vec<&str> = state
        .services
        .catalog
        .list()
        .into_iter()
        .map(|e| e.key.as_str())
        .chain(custom.elements.iter().map(|c| c.definition.key.as_str()))
        .collect();
    Ok(json_bytes(Bytes::from(
        serde_json::to_vec(&keys).map_err(internal)?,
    )))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}",
    tag = "elements",
    summary = "Get an element with its configuration entries",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security((), ("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn show(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
) -> Result<Response, ApiError> {
    let org = organization(&state, caller.as_ref()).await?;
    match state.services.lookup_element(org, &key_or_id).await? {
        FoundElement::BuiltIn(element) => Ok(json_bytes(
            state
                .catalog_json
                .by_key
                .get(&element.key)
                .cloned()
                .unwrap_or_default(),
        )),
        FoundElement::Custom(custom) => {
            if let Some(kept) = custom.detail_json.get() {
                return Ok(json_bytes(kept.clone()));
            }
            let bytes = detail_json(&custom.definition).map_err(internal)?;
            Ok(json_bytes(custom.detail_json.get_or_init(|| bytes).clone()))
        }
    }
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/oauth/url",
    tag = "elements",
    summary = "Step 1: the OAuth URL to send the customer to",
    params(("key_or_id" = String, Path, description = "Element key or id"), OAuthUrlParams),
    security((), ("authorization" = [])),
    responses((status = 200, body = OAuthUrlResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn oauth_url_get(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    query: Result<Query<OAuthUrlParams>, QueryRejection>,
) -> Result<Json<OAuthUrlResponse>, ApiError> {
    let Query(params) = query.map_err(|r| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            r.body_text(),
        )
    })?;
    Ok(Json(
        state
            .services
            .oauth_url(caller.as_ref(), &key_or_id, &params)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/elements/{key_or_id}/oauth/url",
    tag = "elements",
    summary = "Step 1, with the parameters as JSON",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    request_body = OAuthUrlParams,
    security((), ("authorization" = [])),
    responses((status = 200, body = OAuthUrlResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn oauth_url_post(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    ApiJson(params): ApiJson<OAuthUrlParams>,
) -> Result<Json<OAuthUrlResponse>, ApiError> {
    Ok(Json(
        state
            .services
            .oauth_url(caller.as_ref(), &key_or_id, &params)
            .await?,
    ))
}

fn definition_json(
    definition: &std::sync::Arc<ElementDefinition>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(serde_json::to_value(&**definition).map_err(internal)?))
}

#[utoipa::path(
    post,
    path = "/elements",
    tag = "elements",
    summary = "Create a custom element (Element Builder)",
    description = "The element JSON, the same model as the catalog's files. `key` is derived from `name` when absent; the id is assigned. A bad definition is a 400 `invalid_element` naming the field path and the rule.",
    request_body = Object,
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn create(
    State(state): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    definition_json(&state.services.create_element(&caller, body).await?)
}

#[utoipa::path(
    put,
    path = "/elements/{key_or_id}",
    tag = "elements",
    summary = "Replace a custom element's definition",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    request_body = Object,
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn replace(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    definition_json(
        &state
            .services
            .replace_element(&caller, &key_or_id, body)
            .await?,
    )
}

#[utoipa::path(
    delete,
    path = "/elements/{key_or_id}",
    tag = "elements",
    summary = "Delete a custom element no instance uses",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn remove(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.services.delete_element(&caller, &key_or_id).await?;
    Ok(Json(json!({})))
}

#[utoipa::path(
    put,
    path = "/elements/{key_or_id}/active",
    tag = "elements",
    summary = "Publish a custom element (active: true)",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn activate(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    definition_json(
        &state
            .services
            .set_element_active(&caller, &key_or_id, true)
            .await?,
    )
}

#[utoipa::path(
    delete,
    path = "/elements/{key_or_id}/active",
    tag = "elements",
    summary = "Unpublish a custom element (active: false)",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn deactivate(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    definition_json(
        &state
            .services
            .set_element_active(&caller, &key_or_id, false)
            .await?,
    )
}

#[utoipa::path(
    post,
    path = "/elements/{key_or_id}/clone",
    tag = "elements",
    summary = "Clone an element into a private custom element",
    description = "A copy with a new key (`<key>clone`, then `<key>clone2`, …) and id; its `oauth.api.key` has no default.",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn clone(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    definition_json(&state.services.clone_element(&caller, &key_or_id).await?)
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/export",
    tag = "elements",
    summary = "Export an element's JSON, importable again with POST /elements",
    params(("key_or_id" = String, Path, description = "Element key or id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
)]
async fn export(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(key_or_id): Path<String>,
) -> Result<Response, ApiError> {
    let value = state.services.export_element(&caller, &key_or_id).await?;
    let key = value["key"].as_str().unwrap_or("element").to_owned();
    let mut response = json_bytes(Bytes::from(
        serde_json::to_vec_pretty(&value).map_err(internal)?,
    ));
    if let Ok(disposition) =
        axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{key}.json\""))
    {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// Which part a sub-resource route addresses, and the item its path names: the
/// segments after `/elements/`, in order (`{key}`, then `{name}` for object fields,
/// then the item's key, id or name).
fn address(
    kind: &str,
    segments: &[String],
) -> Result<(String, ElementPart, Option<String>), ApiError> {
    let key = segments.first().cloned().unwrap_or_default();
    let (part, item_at) = match kind {
        "configuration" => (ElementPart::Configuration, 1),
        "resources" => (ElementPart::Resources, 1),
        "parameters" => (ElementPart::Parameters, 1),
        "hooks" => (ElementPart::Hooks, 1),
        "objects" => (ElementPart::Objects, 1),
        _ => (
            ElementPart::ObjectFields(segments.get(1).cloned().unwrap_or_default()),
            2,
        ),
    };
    Ok((key, part, segments.get(item_at).cloned()))
}

async fn part_list(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    segments: &[String],
) -> Result<Json<Value>, ApiError> {
    let (key, part, _) = address(kind, segments)?;
    let items = state
        .services
        .element_part_list(caller, &key, &part)
        .await?;
    if part == ElementPart::Configuration {
        // Cloud Elements answers the configuration as one object holding the entries,
        // each under its key.
        let entries: Map<String, Value> = items
            .into_iter()
            .map(|e| (e["key"].as_str().unwrap_or_default().to_owned(), e))
            .collect();
        return Ok(Json(Value::Object(entries)));
    }
    Ok(Json(Value::Array(items)))
}

async fn part_get(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    segments: &[String],
) -> Result<Json<Value>, ApiError> {
    let (key, part, item) = address(kind, segments)?;
    Ok(Json(
        state
            .services
            .element_part_get(caller, &key, &part, item.as_deref().unwrap_or_default())
            .await?,
    ))
}

async fn part_write(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    segments: &[String],
    body: Option<Value>,
) -> Result<Json<Value>, ApiError> {
    let (key, part, item) = address(kind, segments)?;
    let written = state
        .services
        .element_part_write(caller, &key, &part, item.as_deref(), body)
        .await?;
    Ok(Json(written.unwrap_or_else(|| json!({}))))
}

/// The five handlers of one element part: list, create, get, replace, delete. Their
/// OpenAPI operations are written by `openapi::element_parts`, as utoipa's attribute
/// cannot be generated by a macro.
macro_rules! part_handlers {
    (
        kind: $kind:tt,
        list: $list:ident, create: $create:ident,
        get: $get:ident, put: $put:ident, delete: $delete:ident
    ) => {
        async fn $list(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Path(segments): Path<Vec<String>>,
        ) -> Result<Json<Value>, ApiError> {
            part_list(&state, &caller, $kind, &segments).await
        }

        async fn $create(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Path(segments): Path<Vec<String>>,
            ApiJson(body): ApiJson<Value>,
        ) -> Result<Json<Value>, ApiError> {
            part_write(&state, &caller, $kind, &segments, Some(body)).await
        }

        async fn $get(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Path(segments): Path<Vec<String>>,
        ) -> Result<Json<Value>, ApiError> {
            part_get(&state, &caller, $kind, &segments).await
        }

        async fn $put(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Path(segments): Path<Vec<String>>,
            ApiJson(body): ApiJson<Value>,
        ) -> Result<Json<Value>, ApiError> {
            part_write(&state, &caller, $kind, &segments, Some(body)).await
        }

        async fn $delete(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Path(segments): Path<Vec<String>>,
        ) -> Result<Json<Value>, ApiError> {
            part_write(&state, &caller, $kind, &segments, None).await
        }
    };
}

part_handlers!(
    kind: "configuration",
    list: configuration_list, create: configuration_create,
    get: configuration_get, put: configuration_put, delete: configuration_delete
);
part_handlers!(
    kind: "resources",
    list: resources_list, create: resources_create,
    get: resources_get, put: resources_put, delete: resources_delete
);
part_handlers!(
    kind: "parameters",
    list: parameters_list, create: parameters_create,
    get: parameters_get, put: parameters_put, delete: parameters_delete
);
part_handlers!(
    kind: "hooks",
    list: hooks_list, create: hooks_create,
    get: hooks_get, put: hooks_put, delete: hooks_delete
);
part_handlers!(
    kind: "objects",
    list: objects_list, create: objects_create,
    get: objects_get, put: objects_put, delete: objects_delete
);
part_handlers!(
    kind: "fields",
    list: fields_list, create: fields_create,
    get: fields_get, put: fields_put, delete: fields_delete
);

#[utoipa::path(
    get,
    path = "/elements/metadata",
    tag = "elements",
    summary = "Every element's metadata: events, authentication and, expanded, resources",
    params(("expand" = Option<bool>, Query, description = "Add each element's resources and their operations")),
    responses((status = 200, body = [ElementMetadata]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn metadata_list(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ElementMetadata>>, ApiError> {
    let expand = query_flag(query.as_deref(), "expand")?;
    Ok(Json(
        state
            .services
            .elements_metadata(caller.as_ref(), expand)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/metadata",
    tag = "elements",
    summary = "One element's metadata: events, authentication and, expanded, resources",
    params(("key_or_id" = String, Path, description = "Element key or id"), ("expand" = Option<bool>, Query, description = "Add the element's resources and their operations")),
    responses((status = 200, body = ElementMetadata), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody)),
    security((), ("authorization" = [])),
)]
async fn metadata(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ElementMetadata>, ApiError> {
    let expand = query_flag(query.as_deref(), "expand")?;
    Ok(Json(
        state
            .services
            .element_metadata(caller.as_ref(), &key_or_id, expand)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/elements/{key_or_id}/oauth/token",
    tag = "elements",
    summary = "OAuth 1.0a step 1: a request token for the consumer",
    params(("key_or_id" = String, Path, description = "Element key or id"), OAuthTokenParams),
    security((), ("authorization" = [])),
    responses((status = 200, body = OAuthTokenResponse), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 502, body = ApiErrorBody)),
)]
async fn oauth_token(
    State(state): State<AppState>,
    MaybeAuth(caller): MaybeAuth,
    Path(key_or_id): Path<String>,
    query: Result<Query<OAuthTokenParams>, QueryRejection>,
) -> Result<Json<OAuthTokenResponse>, ApiError> {
    let Query(params) = query.map_err(|r| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            r.body_text(),
        )
    })?;
    Ok(Json(
        state
            .services
            .oauth_request_token(caller.as_ref(), &key_or_id, &params)
            .await?,
    ))
}
