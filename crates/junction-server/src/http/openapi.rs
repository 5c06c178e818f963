//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types,
//! served at `/elements/api-v2/openapi.json` with an offline Swagger UI at `/docs`.

use super::error::ApiErrorBody;
use super::{accounts, elements, instances, proxy};
use junction_core::ElementSummary;
use junction_core::element::{Authentication, AuthenticationType, ConfigType};
use junction_service::{
    AccountBody, AccountUserView, AccountView, ConfigEntryView, ElementRef, InstanceBody,
    InstanceView, NewUserView, OAuthUrlParams, OAuthUrlResponse, PingView, ProviderData,
    TraceLogView, TraceLoggingConfig, UserBody, UserView,
};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Ref};
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
    ),
    components(schemas(
        ApiErrorBody,
        ElementSummary,
        Authentication,
        AuthenticationType,
        ConfigType,
        OAuthUrlParams,
        OAuthUrlResponse,
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
    )),
    modifiers(&Security),
    tags(
        (name = "elements", description = "The element catalog and step 1 of provisioning"),
        (name = "instances", description = "Step 2 of provisioning and the instance lifecycle"),
        (name = "accounts", description = "Accounts and users, for organization administrators"),
        (name = "hubs", description = "Calls to an instance's provider, authenticated by its Element token"),
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
        }
        // Any operation that checks credentials may answer 429 to an address that failed
        // too often; one place says so for all of them.
        let limited = || {
            ResponseBuilder::new()
                .description(
                    "`too_many_requests`: this address failed to authenticate too often; \
                     retry after `Retry-After` seconds",
                )
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ApiErrorBody"))),
                )
                .header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(Object::with_type(Type::Integer)))
                        .description(Some("Seconds until the address may try again"))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if operation.security.is_some() {
                    operation
                        .responses
                        .responses
                        .insert("429".to_owned(), limited().into());
                }
            }
        }
    }
}

/// The document as served. `/health` lives outside the API prefix and is not part of it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
