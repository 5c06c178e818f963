//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types,
//! served at `/elements/api-v2/openapi.json` with an offline Swagger UI at `/docs`.

use super::error::ApiErrorBody;
use super::{accounts, connect, docs, elements, events, hubs, instances, proxy};
use junction_core::ElementSummary;
use junction_core::element::{Authentication, AuthenticationType, ConfigType};
use junction_service::{
    AccountBody, AccountUserView, AccountView, ConfigEntryView, ElementMetadata, ElementRef,
    EventsMetadata, HubBody, HubView, InstanceBody, InstanceView, NewUserView, OAuthTokenParams,
    OAuthTokenResponse, OAuthUrlParams, OAuthUrlResponse, OperationMetadata, PingView,
    ProviderData, ResourceMetadata, TraceLogView, TraceLoggingConfig, UserBody, UserView,
};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Junction",
        description = "A self-hosted integration hub speaking the Cloud Elements API v2: an element \
            catalog, two-step OAuth provisioning of instances, the instance lifecycle, and calls to \
            the provider through an instance. \
            Authenticate platform calls with `Authorization: User <secret>, Organization <secret>`; \
            calls about one instance may use `Authorization: Element <token>`."
    ),
    servers((url = "/elements/api-v2", description = "This server")),
    paths(
        elements::list,
        elements::keys,
        elements::show,
        elements::oauth_url_get,
        elements::oauth_url_post,
        elements::create,
        elements::replace,
        elements::remove,
        elements::activate,
        elements::deactivate,
        elements::clone,
        elements::export,
        elements::oauth_token,
        elements::metadata_list,
        elements::metadata,
        docs::element,
        docs::instance,
        docs::own_instance,
        hubs::list,
        hubs::create,
        hubs::show,
        hubs::remove,
        instances::list,
        instances::create,
        instances::replace_own,
        instances::merge_own,
        instances::remove_own,
        instances::show,
        instances::replace,
        instances::merge,
        instances::remove,
        instances::configuration_own,
        instances::configuration,
        instances::configuration_entry_own,
        instances::patch_configuration_entry_own,
        instances::configuration_entry,
        instances::patch_configuration_entry,
        instances::enable_own,
        instances::disable_own,
        instances::enable,
        instances::disable,
        instances::trace_on_own,
        instances::trace_off_own,
        instances::trace_on,
        instances::trace_off,
        instances::trace_logs_own,
        instances::trace_logs,
        instances::list_for_element,
        instances::create_for_element,
        instances::show_of_element,
        instances::replace_of_element,
        instances::merge_of_element,
        instances::remove_of_element,
        events::handshake,
        events::handshake_for_instance,
        events::receive,
        events::receive_for_instance,
        events::list,
        events::list_own,
        events::poller,
        events::poller_own,
        events::show,
        events::show_own,
        events::replay,
        events::replay_own,
        events::replay_failed,
        events::replay_failed_own,
        accounts::list,
        accounts::create,
        accounts::show,
        accounts::update,
        accounts::remove,
        accounts::list_users,
        accounts::create_user,
        accounts::show_user,
        accounts::remove_user,
        proxy::proxy,
        proxy::ping,
        proxy::hub_resource,
        connect::put_app,
        connect::list_apps,
        connect::remove_app,
        connect::create_session,
        connect::show_session,
        connect::page,
        connect::start,
    ),
    components(schemas(
        ApiErrorBody,
        ElementSummary,
        Authentication,
        AuthenticationType,
        ConfigType,
        OAuthUrlParams,
        OAuthUrlResponse,
        OAuthTokenParams,
        OAuthTokenResponse,
        InstanceBody,
        ElementRef,
        ProviderData,
        InstanceView,
        UserView,
        ConfigEntryView,
        instances::ConfigPatch,
        AccountBody,
        AccountView,
        UserBody,
        AccountUserView,
        NewUserView,
        PingView,
        TraceLoggingConfig,
        TraceLogView,
        ElementMetadata,
        EventsMetadata,
        ResourceMetadata,
        OperationMetadata,
        HubBody,
        HubView,
        events::WebhookAccepted,
        junction_service::events::EventView,
        junction_service::events::NotifiedAttempt,
        junction_service::events::ReplayView,
        junction_service::events::PollerView,
        junction_service::OAuthAppBody,
        junction_service::OAuthAppView,
        junction_service::InlineOAuthApp,
        junction_service::ConnectSessionBody,
        junction_service::ConnectSessionCreated,
        junction_service::ConnectSessionView,
        junction_service::ConnectSessionEvent,
        junction_service::ConnectSessionEventMessage,
        junction_service::ConnectPageView,
        junction_service::ConnectElementView,
        junction_service::ConnectFieldView,
        junction_service::ConnectStartBody,
        junction_service::ConnectNext,
    )),
    modifiers(&Security),
    tags(
        (name = "elements", description = "The element catalog and step 1 of provisioning"),
        (name = "instances", description = "Step 2 of provisioning and the instance lifecycle"),
        (name = "accounts", description = "Accounts and users, for organization administrators"),
        (name = "hubs", description = "Calls to an instance's provider, authenticated by its Element token"),
        (name = "catalog", description = "Hubs: the built-in ones and the organization's own"),
        (name = "events", description = "Provider webhooks in, and the event records of an instance"),
        (name = "connect", description = "The hosted Connect page: OAuth apps, Connect sessions and the page's own calls"),
        (name = "operations", description = "Running Junction: readiness for load balancers"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "authorization",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`User <user secret>, Organization <organization secret>`, or `Element <token>`",
                ))),
            );
            components.add_security_scheme(
                "connect",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`Connect <token>`: a Connect session's token, as the hosted page sends it",
                ))),
            );
        }
    }
}

/// The document as served. `/health` lives outside the API prefix and is not part of it.
/// It is served as JSON because the limits written into it use JSON Schema keywords
/// (`propertyNames`, `maxLength` on nullable strings) that utoipa's types do not carry.
/// Built once, at startup: a document that cannot be built stops the start rather than
/// being served empty.
pub fn document() -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    element_parts(&mut doc);
    state_limits(&mut doc);
    readiness(&mut doc);
    Ok(doc)
}

/// `GET /ready`, served at the root for load balancers and under the API prefix, where
/// this document lists it.
fn readiness(doc: &mut Value) {
    let schema = json!({
        "type": "object",
        "required": ["status", "database", "migrations", "listener"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "database": {"type": "string", "enum": ["reachable", "unreachable"]},
            "migrations": {"type": "string", "enum": ["current", "pending", "unknown"]},
            "listener": {
                "type": "string",
                "enum": ["connected", "disconnected", "not used"],
                "description": "PostgreSQL: the connection that hears other replicas' writes"
            },
        },
    });
    let answer = |description: &str| json!({"description": description, "content": {"application/json": {"schema": schema.clone()}}});
    let mut unavailable = answer("Something is missing: the body says what");
    unavailable["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait before asking again",
        "schema": {"type": "integer"},
    }});
    let operation = json!({
        "tags": ["operations"],
        "summary": "Whether this server can serve every call",
        "description": "The database answers within 2 s, its migrations are current and, on PostgreSQL, the connection that hears other replicas' writes is up. Also served at `/ready`, outside the API prefix.",
        "operationId": "ready",
        "responses": {
            "200": answer("Ready"),
            "503": unavailable,
        },
    });
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.insert("/ready".into(), json!({"get": operation}));
    }
}

/// The Element Builder's part routes (`elements::part_handlers!`): five operations on
/// each of configuration entries, resources, parameters, hooks, objects and fields.
fn element_parts(doc: &mut Value) {
    let param = |name: &str, description: &str| json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}});
    let error = json!({"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}}});
    let object = json!({"description": "The item (the configuration list: an object holding the entries by key)", "content": {"application/json": {"schema": {}}}});
    let body =
        json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    let operation = |summary: String, params: &[Value], with_body: bool, writes: bool| {
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), object.clone());
        for status in ["400", "401", "404"] {
            responses.insert(status.into(), error.clone());
        }
        if writes {
            responses.insert("403".into(), error.clone());
            responses.insert("409".into(), error.clone());
        }
        let mut op = json!({
            "tags": ["elements"],
            "summary": summary,
            "parameters": params,
            "security": [{"authorization": []}],
            "responses": responses,
        });
        if with_body {
            op["requestBody"] = body.clone();
        }
        op
    };
    let element = param("key_or_id", "Element key or id");
    let parts = [
        ("configuration", "configuration entry", "key", None),
        ("resources", "resource", "id", None),
        ("parameters", "element-wide parameter", "id", None),
        ("hooks", "element-wide hook", "id", None),
        ("objects", "object", "name", None),
        ("fields", "object field", "name", Some("name")),
    ];
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (part, noun, by, parent) in parts {
        let (collection, mut params) = match parent {
            Some(object) => (
                format!("/elements/{{key_or_id}}/objects/{{{object}}}/fields"),
                vec![element.clone(), param(object, "Object name")],
            ),
            None => (
                format!("/elements/{{key_or_id}}/{part}"),
                vec![element.clone()],
            ),
        };
        // Objects are addressed by `{name}`, which their fields' routes share.
        let item_name = if part == "objects" { "name" } else { "item" };
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(format!("List the element's {noun}s"), &params, false, false),
                "post": operation(format!("Add a {noun} to a custom element"), &params, true, true),
            }),
        );
        params.push(param(item_name, &format!("The {noun}'s {by}")));
        paths.insert(
            format!("{collection}/{{{item_name}}}"),
            json!({
                "get": operation(format!("Get one {noun}"), &params, false, false),
                "put": operation(format!("Replace a {noun} of a custom element"), &params, true, true),
                "delete": operation(format!("Remove a {noun} from a custom element"), &params, false, true),
            }),
        );
    }
}

/// Writes what Junction enforces into the document: the size limits on lists, strings
/// and bodies (so that generated requests probe exactly those boundaries), and the
/// overload answers every authenticated call may get.
fn state_limits(doc: &mut Value) {
    use junction_service::limits;
    let string = |max: usize| json!({"type": "string", "maxLength": max});
    let nullable_string = |max: usize| json!({"type": ["string", "null"], "maxLength": max});
    for path in ["/instances", "/elements/{key_or_id}/instances"] {
        let Some(params) = doc
            .pointer_mut(&format!("/paths/{}/get/parameters", escape(path)))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for param in params {
            let limited = match param["name"].as_str() {
                Some("tags[]") => json!({
                    "type": "array",
                    "items": string(limits::MAX_TAG),
                    "maxItems": limits::MAX_TAG_FILTERS,
                }),
                Some("searchText") => string(limits::MAX_SEARCH_TEXT),
                Some("pageSize") => json!({
                    "type": "integer", "format": "int64", "minimum": 1, "maximum": limits::MAX_PAGE_SIZE,
                }),
                _ => continue,
            };
            param["schema"] = limited;
        }
    }
    let schemas = [
        (
            "InstanceBody",
            vec![
                ("name", nullable_string(limits::MAX_NAME)),
                (
                    "tags",
                    json!({
                        "type": ["array", "null"],
                        "items": string(limits::MAX_TAG),
                        "maxItems": limits::MAX_TAGS,
                    }),
                ),
                (
                    "configuration",
                    json!({
                        "type": ["object", "null"],
                        "description": format!(
                            "Configuration values: strings, numbers, booleans, objects or null. An \
                             instance holds at most {} entries and {} bytes of keys and values.",
                            limits::MAX_CONFIG_ENTRIES,
                            limits::MAX_CONFIG_BYTES
                        ),
                        "maxProperties": limits::MAX_CONFIG_ENTRIES,
                        "propertyNames": {"minLength": 1, "maxLength": limits::MAX_KEY},
                    }),
                ),
            ],
        ),
        (
            "AccountBody",
            vec![
                ("name", nullable_string(limits::accounts::MAX_NAME)),
                (
                    "description",
                    nullable_string(limits::accounts::MAX_DESCRIPTION),
                ),
                (
                    "externalId",
                    nullable_string(limits::accounts::MAX_EXTERNAL_ID),
                ),
            ],
        ),
        (
            "HubBody",
            vec![
                ("key", nullable_string(64)),
                ("name", nullable_string(limits::hubs::MAX_NAME)),
                ("description", nullable_string(limits::hubs::MAX_TEXT)),
                ("videoLink", nullable_string(limits::hubs::MAX_TEXT)),
            ],
        ),
        (
            "UserBody",
            vec![
                ("emailAddress", nullable_string(limits::accounts::MAX_EMAIL)),
                ("firstName", nullable_string(limits::accounts::MAX_NAME)),
                ("lastName", nullable_string(limits::accounts::MAX_NAME)),
            ],
        ),
    ];
    for (schema, fields) in schemas {
        for (field, limited) in fields {
            let pointer = format!("/components/schemas/{schema}/properties/{field}");
            if let Some(slot) = doc.pointer_mut(&pointer) {
                *slot = limited;
            }
        }
    }
    let error = |description: &str| {
        json!({
            "description": description,
            "headers": {"Retry-After": {
                "description": "Seconds to wait before trying again",
                "schema": {"type": "integer"},
            }},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}},
        })
    };
    // Any call that checks credentials may meet the failed-authentication limit; calls
    // that reach the database may also meet the per-caller bound.
    let busy = error(
        "`too_many_requests`: this address failed to authenticate too often, or the caller \
         already has JUNCTION_CALLER_CONCURRENCY calls in progress",
    );
    let guessing = error(
        "`too_many_requests`: this address failed to authenticate too often; \
         `rate_limited`: the element's declared provider rate limit has no free slot \
         within its `maxWait`, so the provider was not called",
    );
    let timeout = error("`database_timeout`: the database did not answer in time");
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            if operation.get("security").is_none() {
                continue;
            }
            // Proxied calls are not counted against the caller (see `limit.rs`).
            let proxied = operation["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == "hubs"));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let limited = if proxied { &guessing } else { &busy };
            responses.entry("429").or_insert_with(|| limited.clone());
            responses.entry("503").or_insert_with(|| timeout.clone());
        }
    }
}

/// A path as one JSON pointer segment.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
