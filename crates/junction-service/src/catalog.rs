//! What the catalog offers a caller: the elements it may see, their metadata
//! (`/elements/metadata`, `/elements/{keyOrId}/metadata`), their API documentation
//! (`/elements/{keyOrId}/docs`, `/instances/{id}/docs`), and hubs (`/hubs`).
//!
//! Every listing here gets its elements from [`Services::visible_elements`] and
//! [`Services::find_element`] (in `elements.rs`), the one place that decides which
//! elements a caller sees: the built-ins and the caller's organization's custom elements.

use crate::docs::{self, InstanceLabel};
use crate::elements::derive_key;
use crate::instances::platform_user;
use crate::{Caller, ServiceError, Services};
use junction_catalog::CUSTOM_HUB_IDS;
use junction_core::element::Authentication;
use junction_core::hub::{HubDefinition, ResourceType, is_catalog_key};
use junction_core::sanitize::strip_html;
use junction_core::{ElementDefinition, ElementSummary};
use junction_store::{HubRecord, NewHub, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// Longest hub name.
pub const MAX_HUB_NAME: usize = 255;
/// Longest hub description and video link.
pub const MAX_HUB_TEXT: usize = 1000;

/// `GET /elements/{keyOrId}/metadata`: what an element is and offers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElementMetadata {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub description: String,
    pub hub: String,
    pub authentication: Authentication,
    pub events: EventsMetadata,
    /// With `expand=true`: the element's hub resources and their operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceMetadata>>,
}

/// How the element learns about changes at the provider.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsMetadata {
    pub supported: bool,
    /// `polling`, `webhook`, or both.
    pub methods: Vec<String>,
    /// Per resource, what is polled (`pollUrl`) and which changes are reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub polling: Option<Value>,
    /// Per resource, which changes the provider's webhooks report.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub webhook: Option<Value>,
}

/// One hub resource (`contacts`) with every operation on it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetadata {
    pub name: String,
    pub operations: Vec<OperationMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationMetadata {
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A hub as `/hubs` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubView {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_link: Option<String>,
    pub active: bool,
    /// Created by the caller's organization (built-in hubs are not).
    pub private: bool,
    /// With `hydrate=true`: the hub's elements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elements: Option<Vec<ElementSummary>>,
    /// With `hydrate=true`: the resources the hub's elements offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceMetadata>>,
}

/// `POST /hubs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubBody {
    /// Lower-case letters and digits; derived from `name` when absent ("Field Ops" →
    /// `fieldops`).
    pub key: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub video_link: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

impl Services {
    /// `GET /elements/metadata`.
    pub async fn elements_metadata(
        &self,
        caller: Option<&Caller>,
        expand: bool,
    ) -> Result<Vec<ElementMetadata>, ServiceError> {
        Ok(self
            .visible_elements(caller)
            .await?
            .iter()
            .map(|e| metadata(e, expand))
            .collect())
    }

    /// `GET /elements/{keyOrId}/metadata`.
    pub async fn element_metadata(
        &self,
        caller: Option<&Caller>,
        key_or_id: &str,
        expand: bool,
    ) -> Result<ElementMetadata, ServiceError> {
        let element = self.find_element(caller, key_or_id).await?;
        Ok(metadata(&element, expand))
    }

    /// `GET /elements/{keyOrId}/docs`: the element's Swagger 2.0 document, for an
    /// element the caller may see (see [`Services::find_element`]).
    pub async fn element_docs(
        &self,
        caller: Option<&Caller>,
        key_or_id: &str,
        api_base: &Url,
    ) -> Result<Value, ServiceError> {
        let element = self.find_element(caller, key_or_id).await?;
        Ok(docs::swagger(&element, api_base, None))
    }

    /// `GET /instances/{id}/docs` (or, with `id` absent, the Element token's instance):
    /// its element's document, naming the instance. Disabled instances answer too.
    pub async fn instance_docs(
        &self,
        caller: &Caller,
        id: Option<i64>,
        api_base: &Url,
    ) -> Result<Value, ServiceError> {
        let id = self.target_instance(caller, id)?;
        let record = self.owned_instance_shared(caller, id).await?;
        let element = self.element_of(&record).await?;
        let label = InstanceLabel {
            id: record.id.0,
            name: record.name.clone(),
        };
        Ok(docs::swagger(&element, api_base, Some(&label)))
    }

    /// `GET /hubs`: the built-in hubs, then the caller's organization's own.
    pub async fn list_hubs(
        &self,
        caller: Option<&Caller>,
        hydrate: bool,
    ) -> Result<Vec<HubView>, ServiceError> {
        let elements = if hydrate {
            self.visible_elements(caller).await?
        } else {
            Vec::new()
        };
        let mut hubs: Vec<HubView> = self.catalog.hubs().iter().map(built_in).collect();
        if let Some(caller) = caller {
            let organization = self.organization_of(caller).await?;
            hubs.extend(
                self.store
                    .list_hubs(organization)
                    .await?
                    .into_iter()
                    .map(custom),
            );
        }
        if hydrate {
            for hub in &mut hubs {
                hydrate_hub(hub, &elements);
            }
        }
        Ok(hubs)
    }

    /// `GET /hubs/{key}`.
    pub async fn get_hub(
        &self,
        caller: Option<&Caller>,
        key: &str,
        hydrate: bool,
    ) -> Result<HubView, ServiceError> {
        let mut hub = match self.catalog.hubs().iter().find(|h| h.key == key) {
            Some(h) => built_in(h),
            None => {
                let caller = caller.ok_or_else(|| ServiceError::HubNotFound(key.to_owned()))?;
                let organization = self.organization_of(caller).await?;
                custom(
                    self.store
                        .get_hub(organization, key)
                        .await
                        .map_err(|e| hub_not_found(e, key))?,
                )
            }
        };
        if hydrate {
            hydrate_hub(&mut hub, &self.visible_elements(caller).await?);
        }
        Ok(hub)
    }

    /// `POST /hubs`: a hub of the caller's organization.
    pub async fn create_hub(
        &self,
        caller: &Caller,
        body: HubBody,
    ) -> Result<HubView, ServiceError> {
        platform_user(caller)?;
        let bad = |message: String| ServiceError::bad_request("invalid_hub", message);
        let name = body.name.as_deref().map(strip_html).unwrap_or_default();
        if name.is_empty() || name.chars().count() > MAX_HUB_NAME {
            return Err(bad(format!(
                "name is required: 1 to {MAX_HUB_NAME} characters"
            )));
        }
        let key = match body.key.as_deref() {
            Some(key) => key.to_owned(),
            None => derive_key(&name),
        };
        if !is_catalog_key(&key) {
            return Err(bad(format!(
                "key must be 1 to 64 lower-case letters and digits, got '{key}'"
            )));
        }
        let description = body
            .description
            .as_deref()
            .map(strip_html)
            .unwrap_or_default();
        if description.chars().count() > MAX_HUB_TEXT {
            return Err(bad(format!(
                "description is longer than {MAX_HUB_TEXT} characters"
            )));
        }
        if let Some(link) = body.video_link.as_deref()
            && (link.chars().count() > MAX_HUB_TEXT || !is_http_url(link))
        {
            return Err(bad(format!(
                "videoLink must be an http(s) URL of at most {MAX_HUB_TEXT} characters"
            )));
        }
        if self.catalog.hubs().iter().any(|h| h.key == key) {
            return Err(ServiceError::Conflict(format!(
                "'{key}' is a built-in hub; choose another key"
            )));
        }
        let organization = self.organization_of(caller).await?;
        let record = self
            .store
            .insert_hub(NewHub {
                organization_id: organization,
                key: &key,
                name: &name,
                description: &description,
                video_link: body.video_link.as_deref(),
                active: body.active.unwrap_or(true),
                now: crate::now_ms(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("the organization already has a hub '{key}'"))
                }
                other => other.into(),
            })?;
        Ok(custom(record))
    }

    /// `DELETE /hubs/{key}`: one of the organization's own hubs that no element names.
    pub async fn delete_hub(&self, caller: &Caller, key: &str) -> Result<(), ServiceError> {
        platform_user(caller)?;
        if self.catalog.hubs().iter().any(|h| h.key == key) {
            return Err(ServiceError::Forbidden(format!(
                "'{key}' is a built-in hub, which cannot be changed or deleted"
            )));
        }
        let organization = self.organization_of(caller).await?;
        self.store
            .get_hub(organization, key)
            .await
            .map_err(|e| hub_not_found(e, key))?;
        let naming = self
            .visible_elements(Some(caller))
            .await?
            .iter()
            .filter(|e| e.hub == key)
            .count();
        if naming > 0 {
            return Err(ServiceError::Conflict(format!(
                "{naming} element(s) still belong to hub '{key}'"
            )));
        }
        self.store
            .delete_hub(organization, key)
            .await
            .map_err(|e| hub_not_found(e, key))
    }
}

fn hub_not_found(e: StoreError, key: &str) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::HubNotFound(key.to_owned()),
        other => other.into(),
    }
}

fn is_http_url(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

fn built_in(hub: &HubDefinition) -> HubView {
    HubView {
        id: hub.id,
        key: hub.key.clone(),
        name: hub.name.clone(),
        description: hub.description.clone(),
        video_link: hub.video_link.clone(),
        active: true,
        private: false,
        elements: None,
        resources: None,
    }
}

fn custom(record: HubRecord) -> HubView {
    debug_assert!(record.id >= CUSTOM_HUB_IDS);
    HubView {
        id: record.id,
        key: record.key,
        name: record.name,
        description: record.description,
        video_link: record.video_link,
        active: record.active,
        private: true,
        elements: None,
        resources: None,
    }
}

fn hydrate_hub(hub: &mut HubView, elements: &[Arc<ElementDefinition>]) {
    let members: Vec<&Arc<ElementDefinition>> =
        elements.iter().filter(|e| e.hub == hub.key).collect();
    hub.elements = Some(members.iter().map(|e| e.summary()).collect());
    hub.resources = Some(resources(members.iter().map(|e| e.as_ref())));
}

fn metadata(element: &ElementDefinition, expand: bool) -> ElementMetadata {
    ElementMetadata {
        id: element.id,
        key: element.key.clone(),
        name: element.name.clone(),
        description: element.description.clone(),
        hub: element.hub.clone(),
        authentication: element.authentication.clone(),
        events: events(element),
        resources: expand.then(|| resources(std::iter::once(element))),
    }
}

/// The hub resources of some elements, grouped by resource name, each operation once.
/// Resources Junction runs itself at moments of an instance's life (`onProvision`, …)
/// are no part of the hub's API.
fn resources<'a>(elements: impl Iterator<Item = &'a ElementDefinition>) -> Vec<ResourceMetadata> {
    let mut grouped: BTreeMap<String, Vec<OperationMetadata>> = BTreeMap::new();
    for element in elements {
        for resource in &element.resources {
            if !matches!(
                resource.kind,
                ResourceType::Api | ResourceType::ApiNoDocumentation
            ) {
                continue;
            }
            let operation = OperationMetadata {
                method: resource.method.as_str().to_owned(),
                path: resource.path.clone(),
                operation_id: resource.operation_id.clone(),
                description: resource.description.clone(),
            };
            let operations = grouped.entry(resource_name(&resource.path)).or_default();
            if !operations
                .iter()
                .any(|o| o.method == operation.method && o.path == operation.path)
            {
                operations.push(operation);
            }
        }
    }
    grouped
        .into_iter()
        .map(|(name, mut operations)| {
            operations.sort();
            ResourceMetadata { name, operations }
        })
        .collect()
}

/// `contacts` for `/hubs/crm/contacts/{id}` and for a bare `/contacts`.
fn resource_name(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let rest = rest
        .strip_prefix("hubs/")
        .and_then(|r| r.split_once('/').map(|(_, after)| after))
        .unwrap_or(rest);
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// The element's event support, read from its event configuration: the default of
/// `event.vendor.type`, and the per-resource details of `event.metadata` (Cloud Elements'
/// `{"webhook": {...}, "polling": {...}}`) and `event.poller.configuration`.
fn events(element: &ElementDefinition) -> EventsMetadata {
    let default_of = |key: &str| {
        element
            .config_entry(key)
            .and_then(|e| e.default.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let object_of = |key: &str| match default_of(key).map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(map))) => Some(map),
        _ => None,
    };
    let mut methods: Vec<String> = Vec::new();
    let mut add = |method: &str| {
        let method = match method {
            "webhooks" => "webhook",
            other => other,
        };
        if matches!(method, "polling" | "webhook") && !methods.iter().any(|m| m == method) {
            methods.push(method.to_owned());
        }
    };
    if let Some(kind) = default_of("event.vendor.type") {
        for method in kind.split([',', '|', ' ']).filter(|m| !m.is_empty()) {
            add(&method.to_ascii_lowercase());
        }
    }
    let declared = object_of("event.metadata").unwrap_or_default();
    for method in declared.keys() {
        add(method);
    }
    let mut polling = declared.get("polling").cloned();
    let webhook = declared
        .get("webhook")
        .or_else(|| declared.get("webhooks"))
        .cloned();
    if polling.is_none() && methods.iter().any(|m| m == "polling") {
        polling = object_of("event.poller.configuration").map(|resources| {
            let described: Map<String, Value> = resources
                .into_iter()
                .map(|(name, config)| {
                    let mut entry = Map::new();
                    if let Some(url) = config.get("url") {
                        entry.insert("pollUrl".to_owned(), url.clone());
                    }
                    (name, Value::Object(entry))
                })
                .collect();
            Value::Object(described)
        });
    }
    methods.sort();
    EventsMetadata {
        supported: !methods.is_empty(),
        methods,
        polling,
        webhook,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(extra: Value) -> ElementDefinition {
        let mut json = serde_json::json!({
            "id": 7, "key": "x", "name": "X", "hookName": "X", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "basic"}
        });
        if let (Some(base), Value::Object(more)) = (json.as_object_mut(), extra) {
            base.extend(more);
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn events_come_from_the_event_configuration() {
        let none = element(serde_json::json!({}));
        assert!(!events(&none).supported);
        let polling = element(serde_json::json!({"configuration": [
            {"key": "event.vendor.type", "name": "t", "default": "polling"},
            {"key": "event.poller.configuration", "name": "p",
             "default": "{\"contacts\": {\"url\": \"/hubs/crm/contacts\"}}"}
        ]}));
        let e = events(&polling);
        assert!(e.supported);
        assert_eq!(e.methods, ["polling"]);
        assert_eq!(
            e.polling.unwrap()["contacts"]["pollUrl"],
            "/hubs/crm/contacts"
        );
        let webhooks = element(serde_json::json!({"configuration": [
            {"key": "event.vendor.type", "name": "t", "default": "webhooks"},
            {"key": "event.metadata", "name": "m",
             "default": "{\"webhook\": {\"file\": {\"eventTypes\": [\"created\"]}}}"}
        ]}));
        let e = events(&webhooks);
        assert_eq!(e.methods, ["webhook"]);
        assert_eq!(e.webhook.unwrap()["file"]["eventTypes"][0], "created");
    }

    #[test]
    fn resources_are_grouped_by_name_with_their_operations() {
        let e = element(serde_json::json!({"resources": [
            {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/c"},
            {"path": "/hubs/crm/contacts/{id}", "method": "DELETE", "vendorPath": "/c/{id}"},
            {"path": "/accounts", "method": "POST", "vendorPath": "/a"},
            {"path": "/hubs/crm/contacts", "method": "GET", "vendorPath": "/c", "type": "onProvision"}
        ]}));
        let r = resources(std::iter::once(&e));
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["accounts", "contacts"]);
        assert_eq!(r[1].operations.len(), 2);
    }
}
