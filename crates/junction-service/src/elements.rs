//! Elements as callers see them: the built-in catalog plus their organization's custom
//! elements (the Element Builder), found through one lookup, and the Builder's writes.
//!
//! A custom element is the same model as a catalog file (`ElementDefinition`), checked
//! by the same `junction_catalog` validation, and stored by `junction-store` with the
//! in-memory copies kept exact across replicas.

use crate::{Caller, ServiceError, Services, now_ms};
use junction_core::element::CUSTOM_ELEMENT_IDS_START;
use junction_core::{ElementDefinition, OrganizationId};
use junction_store::{CustomElement, InstanceRecord, OrganizationElements, StoreError};
use serde_json::{Map, Value};
use std::sync::Arc;

/// An element a caller can see.
#[derive(Debug, Clone)]
pub enum FoundElement {
    BuiltIn(Arc<ElementDefinition>),
    Custom(Arc<CustomElement>),
}

impl FoundElement {
    pub fn definition(&self) -> &Arc<ElementDefinition> {
        match self {
            Self::BuiltIn(d) => d,
            Self::Custom(c) => &c.definition,
        }
    }
}

/// The parts of an element the Builder's sub-resources address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementPart {
    /// `configuration`, entries addressed by `key`.
    Configuration,
    /// `resources`, by numeric `id` (each with its own parameters and hooks).
    Resources,
    /// Element-wide `parameters`, by `id`.
    Parameters,
    /// Element-wide `hooks`, by `id`.
    Hooks,
    /// `objects`, by `name`.
    Objects,
    /// The `fields` of one object, by `name`.
    ObjectFields(String),
}

impl ElementPart {
    fn noun(&self) -> &'static str {
        match self {
            Self::Configuration => "configuration entry",
            Self::Resources => "resource",
            Self::Parameters => "parameter",
            Self::Hooks => "hook",
            Self::Objects => "object",
            Self::ObjectFields(_) => "object field",
        }
    }

    fn field(&self) -> &'static str {
        match self {
            Self::Configuration => "configuration",
            Self::Resources => "resources",
            Self::Parameters => "parameters",
            Self::Hooks => "hooks",
            Self::Objects => "objects",
            Self::ObjectFields(_) => "fields",
        }
    }

    /// The member that identifies an item, and whether Junction numbers it.
    fn id_field(&self) -> (&'static str, bool) {
        match self {
            Self::Configuration => ("key", false),
            Self::Resources | Self::Parameters | Self::Hooks => ("id", true),
            Self::Objects | Self::ObjectFields(_) => ("name", false),
        }
    }
}

/// Summary fields Cloud Elements puts in an element's JSON that say nothing a definition
/// holds: accepted on input, so its exports import as they are.
const SUMMARY_ONLY_FIELDS: &[&str] = &[
    "deleted",
    "trialAccount",
    "private",
    "cloneable",
    "extendable",
    "extended",
    "transformationsEnabled",
    "bulkDownloadEnabled",
    "bulkUploadEnabled",
];

/// `key` from a name, as Cloud Elements derives it: lower case, anything but letters
/// and digits removed ("Churros DB element" → `churrosdbelement`).
pub fn derive_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The key of the `n`th copy of `source`: `{source}clone`, then `{source}clone2`, …, with
/// `source` shortened so that the key stays within the key length limit.
fn clone_key(source: &str, n: u32) -> String {
    let suffix = if n == 1 {
        "clone".to_owned()
    } else {
        format!("clone{n}")
    };
    let room = junction_catalog::MAX_KEY.saturating_sub(suffix.len());
    let base: String = source.chars().take(room).collect();
    format!("{base}{suffix}")
}

fn invalid(e: junction_catalog::DefinitionError) -> ServiceError {
    ServiceError::bad_request("invalid_element", e.to_string())
}

impl Services {
    /// The organization a caller acts in. A user's is known from authentication; an
    /// Element token's is its instance's account's.
    pub async fn organization_of(&self, caller: &Caller) -> Result<OrganizationId, ServiceError> {
        match caller {
            Caller::User(p) => Ok(p.organization_id),
            Caller::Instance(t) => Ok(self.store.account_organization(t.account_id).await?),
        }
    }

    /// THE element lookup, by key or id: the built-in catalog, then the organization's
    /// custom elements. Another organization's custom element is not found. Every route
    /// that names an element resolves it here (most through [`Services::find_element`]).
    pub async fn lookup_element(
        &self,
        organization: Option<OrganizationId>,
        key_or_id: &str,
    ) -> Result<FoundElement, ServiceError> {
        if let Some(built_in) = self.catalog.get(key_or_id) {
            return Ok(FoundElement::BuiltIn(Arc::clone(built_in)));
        }
        if let Some(organization) = organization {
            let custom = self.store.organization_elements(organization).await?;
            if let Some(found) = custom.get(key_or_id) {
                return Ok(FoundElement::Custom(Arc::clone(found)));
            }
        }
        Err(ServiceError::ElementNotFound(key_or_id.to_owned()))
    }

    /// The element `key_or_id` names, if `caller` may see it (an anonymous caller sees
    /// the built-ins alone); otherwise 404.
    pub async fn find_element(
        &self,
        caller: Option<&Caller>,
        key_or_id: &str,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        // Built-ins need no organization, which spares an Element token a query.
        if let Some(built_in) = self.catalog.get(key_or_id) {
            return Ok(Arc::clone(built_in));
        }
        let organization = match caller {
            Some(caller) => Some(self.organization_of(caller).await?),
            None => None,
        };
        Ok(Arc::clone(
            self.lookup_element(organization, key_or_id)
                .await?
                .definition(),
        ))
    }

    /// The organization's custom elements (in memory, with their serialized answers).
    pub async fn custom_elements(
        &self,
        organization: OrganizationId,
    ) -> Result<Arc<OrganizationElements>, ServiceError> {
        Ok(self.store.organization_elements(organization).await?)
    }

    /// Every element `caller` may see: the built-ins by id, then its organization's
    /// custom elements by id (an anonymous caller sees the built-ins alone). The one
    /// source for every listing of elements: metadata, hubs and the Builder.
    pub async fn visible_elements(
        &self,
        caller: Option<&Caller>,
    ) -> Result<Vec<Arc<ElementDefinition>>, ServiceError> {
        let mut all: Vec<Arc<ElementDefinition>> =
            self.catalog.list().into_iter().cloned().collect();
        if let Some(caller) = caller {
            let organization = self.organization_of(caller).await?;
            let custom = self.store.organization_elements(organization).await?;
            all.extend(custom.elements.iter().map(|c| Arc::clone(&c.definition)));
        }
        Ok(all)
    }

    /// The element an instance was made from. Custom element ids are global, so the
    /// instance's element id finds it without knowing the organization; both kinds come
    /// from memory on the proxy's hot path.
    pub(crate) async fn element_of(
        &self,
        record: &InstanceRecord,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let found = if record.element_id >= CUSTOM_ELEMENT_IDS_START {
            self.store
                .custom_element(record.element_id)
                .await?
                .map(|c| Arc::clone(&c.definition))
        } else {
            self.catalog.get(&record.element_key).cloned()
        };
        found.ok_or_else(|| {
            ServiceError::Internal(format!(
                "instance {} uses element '{}', which no longer exists",
                record.id, record.element_key
            ))
        })
    }

    /// For `/elements/{keyOrId}/instances/{id}`: the instance must be one of that
    /// element's, or it is not found there.
    pub async fn check_instance_of_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
        id: i64,
    ) -> Result<(), ServiceError> {
        let element = self.find_element(Some(caller), key_or_id).await?;
        let record = self.owned_instance_shared(caller, id).await?;
        if record.element_id == element.id {
            Ok(())
        } else {
            Err(ServiceError::InstanceNotFound(id))
        }
    }

    /// A custom element of the caller's organization, for a write. A built-in answers
    /// 403 saying to clone it.
    async fn writable_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
    ) -> Result<(OrganizationId, Arc<CustomElement>), ServiceError> {
        let organization = platform_organization(caller)?;
        match self.lookup_element(Some(organization), key_or_id).await? {
            FoundElement::BuiltIn(d) => Err(ServiceError::ReadOnlyElement(d.key.clone())),
            FoundElement::Custom(c) => Ok((organization, c)),
        }
    }

    /// `POST /elements`: a new custom element from the element JSON. `key` is derived
    /// from `name` when absent; any `id` given is replaced by a new one.
    pub async fn create_element(
        &self,
        caller: &Caller,
        body: Value,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let organization = platform_organization(caller)?;
        let mut body = object(body)?;
        let key = match body.get("key") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            _ => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
                derive_key(name)
            }
        };
        body.insert("key".into(), Value::String(key));
        body.insert("id".into(), Value::from(CUSTOM_ELEMENT_IDS_START));
        let definition = self.checked_definition(body)?;
        self.check_hub(organization, &definition).await?;
        self.check_key_is_free(organization, &definition.key, None)
            .await?;
        let id = self
            .store
            .insert_element(organization, &definition, now_ms())
            .await
            .map_err(|e| key_taken(e, &definition.key))?;
        self.stored_element(id).await
    }

    /// `PUT /elements/{keyOrId}`: replaces a custom element's definition. Its id and key
    /// stay: instances and other elements' references know it by them.
    pub async fn replace_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
        body: Value,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let (organization, current) = self.writable_element(caller, key_or_id).await?;
        let mut body = object(body)?;
        let key = current.definition.key.clone();
        match body.get("key") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) if *k == key => {}
            Some(_) => {
                return Err(ServiceError::bad_request(
                    "invalid_element",
                    format!("key: cannot change ('{key}'); create a new element instead"),
                ));
            }
        }
        body.insert("key".into(), Value::String(key));
        body.insert("id".into(), Value::from(current.definition.id));
        let definition = self.checked_definition(body)?;
        self.check_hub(organization, &definition).await?;
        self.store_update(organization, &current.definition, &definition)
            .await?;
        self.stored_element(definition.id).await
    }

    /// Stores `definition` over `current`. A change that would expose or misread what
    /// instances already store (a secret entry made plain text, another authentication
    /// type) is made only while no instance uses the element.
    async fn store_update(
        &self,
        organization: OrganizationId,
        current: &ElementDefinition,
        definition: &ElementDefinition,
    ) -> Result<(), ServiceError> {
        let change = unsafe_change(current, definition);
        self.store
            .update_unused_element(organization, definition, now_ms(), change.is_some())
            .await
            .map_err(|e| match (e, change) {
                (StoreError::ElementInUse { instances }, Some(change)) => {
                    ServiceError::ElementChangeInUse {
                        key: definition.key.clone(),
                        instances,
                        change,
                    }
                }
                (e, _) => gone_as_not_found(e, &definition.key),
            })
    }

    /// `DELETE /elements/{keyOrId}`: only an element no instance uses.
    pub async fn delete_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
    ) -> Result<(), ServiceError> {
        let (organization, current) = self.writable_element(caller, key_or_id).await?;
        let key = &current.definition.key;
        match self
            .store
            .delete_element(organization, current.definition.id)
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::ElementInUse { instances }) => Err(ServiceError::ElementInUse {
                key: key.clone(),
                instances,
            }),
            Err(StoreError::NotFound) => Err(ServiceError::ElementNotFound(key.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// `PUT`/`DELETE /elements/{keyOrId}/active`.
    pub async fn set_element_active(
        &self,
        caller: &Caller,
        key_or_id: &str,
        active: bool,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let (organization, current) = self.writable_element(caller, key_or_id).await?;
        let mut definition = ElementDefinition::clone(&current.definition);
        definition.active = active;
        self.store
            .update_element(organization, &definition, now_ms())
            .await
            .map_err(|e| gone_as_not_found(e, &definition.key))?;
        self.stored_element(definition.id).await
    }

    /// `POST /elements/{keyOrId}/clone`: a private copy, with a new key and id, of any
    /// element the caller sees. The copy's `oauth.api.key` and secret entries have no
    /// default: a clone is usually made to bring one's own OAuth application, and a
    /// secret default would be served to anyone who reads the element.
    pub async fn clone_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
    ) -> Result<Arc<ElementDefinition>, ServiceError> {
        let organization = platform_organization(caller)?;
        let source = self.lookup_element(Some(organization), key_or_id).await?;
        let mut copy = ElementDefinition::clone(source.definition());
        copy.private = false;
        let secrets: Vec<String> = copy
            .configuration
            .iter()
            .filter(|e| copy.is_secret_key(&e.key))
            .map(|e| e.key.clone())
            .collect();
        for entry in &mut copy.configuration {
            if entry.key == "oauth.api.key" || secrets.contains(&entry.key) {
                entry.default = None;
            }
        }
        let taken = self.store.organization_elements(organization).await?;
        let source_key = &source.definition().key;
        let mut n = 1;
        let mut key = clone_key(source_key, n);
        while self.catalog.get(&key).is_some() || taken.get(&key).is_some() {
            n += 1;
            key = clone_key(source_key, n);
        }
        copy.key = key;
        junction_catalog::validate(&copy).map_err(invalid)?;
        let id = self
            .store
            .insert_element(organization, &copy, now_ms())
            .await
            .map_err(|e| key_taken(e, &copy.key))?;
        self.stored_element(id).await
    }

    /// `GET /elements/{keyOrId}/export`: the element JSON, which `POST /elements` takes
    /// back as it is.
    pub async fn export_element(
        &self,
        caller: &Caller,
        key_or_id: &str,
    ) -> Result<Value, ServiceError> {
        let organization = self.organization_of(caller).await?;
        let found = self.lookup_element(Some(organization), key_or_id).await?;
        serde_json::to_value(&**found.definition())
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// The items of one part of an element (`GET /elements/{keyOrId}/resources`, …).
    pub async fn element_part_list(
        &self,
        caller: &Caller,
        key_or_id: &str,
        part: &ElementPart,
    ) -> Result<Vec<Value>, ServiceError> {
        let organization = self.organization_of(caller).await?;
        let found = self.lookup_element(Some(organization), key_or_id).await?;
        let mut document = to_document(found.definition())?;
        let items = part_items(&mut document, part, &found.definition().key)?;
        Ok(items.clone())
    }

    /// One item of a part, by its key, id or name.
    pub async fn element_part_get(
        &self,
        caller: &Caller,
        key_or_id: &str,
        part: &ElementPart,
        item: &str,
    ) -> Result<Value, ServiceError> {
        let items = self.element_part_list(caller, key_or_id, part).await?;
        let (field, _) = part.id_field();
        items
            .into_iter()
            .find(|i| matches_id(i, field, item))
            .ok_or_else(|| part_not_found(key_or_id, part, item))
    }

    /// Adds, replaces (`item`: `Some`, `value`: `Some`) or removes (`value`: `None`) one
    /// item of a part of a custom element, then checks and stores the whole definition:
    /// a change that breaks it is refused and nothing is stored. Returns the item as
    /// stored.
    pub async fn element_part_write(
        &self,
        caller: &Caller,
        key_or_id: &str,
        part: &ElementPart,
        item: Option<&str>,
        value: Option<Value>,
    ) -> Result<Option<Value>, ServiceError> {
        let (organization, current) = self.writable_element(caller, key_or_id).await?;
        let key = current.definition.key.clone();
        let mut document = to_document(&current.definition)?;
        let (field, numbered) = part.id_field();
        let items = part_items(&mut document, part, &key)?;
        let position = match item {
            Some(id) => Some(
                items
                    .iter()
                    .position(|i| matches_id(i, field, id))
                    .ok_or_else(|| part_not_found(&key, part, id))?,
            ),
            None => None,
        };
        let written = match (position, value) {
            (Some(at), None) => {
                items.remove(at);
                None
            }
            (at, Some(value)) => {
                let mut value = match value {
                    Value::Object(map) => map,
                    _ => {
                        return Err(ServiceError::bad_request(
                            "invalid_body",
                            format!("the body must be a {} object", part.noun()),
                        ));
                    }
                };
                match at {
                    // The address names the item: its id cannot move under it.
                    Some(at) => {
                        if let Some(old) = items[at].get(field) {
                            value.insert(field.into(), old.clone());
                        }
                    }
                    None if numbered && !matches!(value.get(field), Some(Value::Number(_))) => {
                        let next = items
                            .iter()
                            .filter_map(|i| i.get(field).and_then(Value::as_i64))
                            .max()
                            .unwrap_or(0)
                            .checked_add(1)
                            .ok_or_else(|| {
                                ServiceError::bad_request(
                                    "invalid_body",
                                    format!(
                                        "element '{key}' has a {} with the largest possible \
                                         {field}: give this one's {field}",
                                        part.noun()
                                    ),
                                )
                            })?;
                        value.insert(field.into(), Value::from(next));
                    }
                    None => {
                        let given = value.get(field).cloned().unwrap_or(Value::Null);
                        if items.iter().any(|i| i.get(field) == Some(&given)) {
                            return Err(ServiceError::Conflict(format!(
                                "element '{key}' already has a {} with {field} {given}",
                                part.noun()
                            )));
                        }
                    }
                }
                let value = Value::Object(value);
                match at {
                    Some(at) => items[at] = value.clone(),
                    None => items.push(value.clone()),
                }
                Some(value)
            }
            (None, None) => None,
        };
        let definition = self.checked_definition(object(document)?)?;
        self.store_update(organization, &current.definition, &definition)
            .await?;
        Ok(written)
    }

    /// The hub a custom element names is one `/hubs` lists to its organization: a
    /// built-in hub, or one of the organization's own. The catalog's files are held to
    /// the built-in hub list when they load.
    async fn check_hub(
        &self,
        organization: OrganizationId,
        definition: &ElementDefinition,
    ) -> Result<(), ServiceError> {
        let hub = &definition.hub;
        if self.catalog.hubs().iter().any(|h| &h.key == hub) {
            return Ok(());
        }
        match self.store.get_hub(organization, hub).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(ServiceError::bad_request(
                "invalid_element",
                format!(
                    "hub: names no hub '{hub}'; use a built-in hub or one of the organization's (POST /hubs)"
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a definition the catalog's way (fragments, schema, rules).
    fn checked_definition(
        &self,
        mut body: Map<String, Value>,
    ) -> Result<ElementDefinition, ServiceError> {
        for field in SUMMARY_ONLY_FIELDS {
            body.remove(*field);
        }
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let key = body
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // What the catalog's files must spell out, the Builder fills in (spec §6.1 asks
        // only for name, key, description and authentication).
        body.entry("hookName")
            .or_insert_with(|| Value::String(name));
        body.entry("hub")
            .or_insert_with(|| Value::String("general".into()));
        body.entry("image")
            .or_insert_with(|| Value::String(String::new()));
        if key.is_empty() {
            return Err(ServiceError::bad_request(
                "invalid_element",
                "key: is required, or a name with letters or digits to derive it from",
            ));
        }
        junction_catalog::definition_from_json(&Value::Object(body)).map_err(invalid)
    }

    async fn check_key_is_free(
        &self,
        organization: OrganizationId,
        key: &str,
        own_id: Option<i64>,
    ) -> Result<(), ServiceError> {
        if self.catalog.get(key).is_some() {
            return Err(ServiceError::Conflict(format!(
                "key '{key}' is a built-in element's; choose another"
            )));
        }
        let taken = self.store.organization_elements(organization).await?;
        if let Some(other) = taken.get(key)
            && other.definition.key == key
            && Some(other.definition.id) != own_id
        {
            return Err(ServiceError::Conflict(format!(
                "the organization already has an element with key '{key}'"
            )));
        }
        Ok(())
    }

    async fn stored_element(&self, id: i64) -> Result<Arc<ElementDefinition>, ServiceError> {
        self.store
            .custom_element(id)
            .await?
            .map(|c| Arc::clone(&c.definition))
            .ok_or_else(|| ServiceError::ElementNotFound(id.to_string()))
    }
}

/// What in the change from `current` to `proposed` instances of the element could not
/// survive, in words: their sealed secrets would be shown, or their credentials read
/// the wrong way.
fn unsafe_change(current: &ElementDefinition, proposed: &ElementDefinition) -> Option<String> {
    if current.authentication.kind != proposed.authentication.kind {
        // The wire name, as the caller wrote it.
        let name = |d: &ElementDefinition| {
            serde_json::to_value(d.authentication.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        return Some(format!(
            "changing authentication.type from '{}' to '{}'",
            name(current),
            name(proposed)
        ));
    }
    current
        .configuration
        .iter()
        .map(|e| e.key.as_str())
        .find(|key| current.is_secret_key(key) && !proposed.is_secret_key(key))
        .map(|key| format!("making secret entry '{key}' plain text"))
}

fn platform_organization(caller: &Caller) -> Result<OrganizationId, ServiceError> {
    match caller {
        Caller::User(p) => Ok(p.organization_id),
        Caller::Instance(_) => Err(ServiceError::Unauthorized(
            "this call needs 'User <secret>, Organization <secret>', not an Element token"
                .to_owned(),
        )),
    }
}

fn object(body: Value) -> Result<Map<String, Value>, ServiceError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ServiceError::bad_request(
            "invalid_body",
            "the body must be an element JSON object",
        )),
    }
}

/// An element deleted between reading and writing it is simply not found.
fn gone_as_not_found(e: StoreError, key: &str) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::ElementNotFound(key.to_owned()),
        other => other.into(),
    }
}

fn key_taken(e: StoreError, key: &str) -> ServiceError {
    match e {
        StoreError::Conflict(_) => ServiceError::Conflict(format!(
            "the organization already has an element with key '{key}'"
        )),
        other => other.into(),
    }
}

fn to_document(definition: &ElementDefinition) -> Result<Value, ServiceError> {
    serde_json::to_value(definition).map_err(|e| ServiceError::Internal(e.to_string()))
}

fn part_not_found(element: &str, part: &ElementPart, id: &str) -> ServiceError {
    ServiceError::ElementPartNotFound {
        element: element.to_owned(),
        part: part.noun(),
        id: id.to_owned(),
    }
}

/// The array holding a part's items inside the definition document (created when the
/// element has none yet).
fn part_items<'a>(
    document: &'a mut Value,
    part: &ElementPart,
    element: &str,
) -> Result<&'a mut Vec<Value>, ServiceError> {
    let holder = match part {
        ElementPart::ObjectFields(object) => {
            let objects = document
                .get_mut("objects")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| part_not_found(element, &ElementPart::Objects, object))?;
            objects
                .iter_mut()
                .find(|o| matches_id(o, "name", object))
                .ok_or_else(|| part_not_found(element, &ElementPart::Objects, object))?
        }
        _ => document,
    };
    let map = holder
        .as_object_mut()
        .ok_or_else(|| ServiceError::Internal("an element is not a JSON object".into()))?;
    let items = map
        .entry(part.field())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !items.is_array() {
        *items = Value::Array(Vec::new());
    }
    items
        .as_array_mut()
        .ok_or_else(|| ServiceError::Internal("an element part is not an array".into()))
}

fn matches_id(item: &Value, field: &str, id: &str) -> bool {
    match item.get(field) {
        Some(Value::String(s)) => s == id,
        Some(Value::Number(n)) => n.to_string() == id,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_derive_from_names_as_cloud_elements_does() {
        assert_eq!(derive_key("Churros DB element"), "churrosdbelement");
        assert_eq!(derive_key("Über-CRM 2!"), "bercrm2");
        assert_eq!(derive_key("  "), "");
    }

    #[test]
    fn clone_keys_shorten_their_source_to_fit_the_limit() {
        assert_eq!(clone_key("sfdc", 1), "sfdcclone");
        assert_eq!(clone_key("sfdc", 12), "sfdcclone12");
        let long = "k".repeat(junction_catalog::MAX_KEY);
        for n in [1, 9, 10, 1000] {
            assert_eq!(clone_key(&long, n).len(), junction_catalog::MAX_KEY);
        }
    }
}
