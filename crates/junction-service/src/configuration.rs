//! Instance configuration: merging, validating, and the per-entry configuration API.

use crate::{ServiceError, Services};
use junction_core::config::config_value_from_json;
use junction_core::element::ConfigType;
use junction_core::{ConfigMap, ElementDefinition, MASK};
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest configuration key.
pub const MAX_KEY: usize = 255;
/// Largest single configuration value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Most configuration entries one instance may hold, declared ones included. Extra keys
/// are accepted, so without a bound each update could add more.
pub const MAX_CONFIG_ENTRIES: usize = 100;
/// Most bytes of keys and values one instance's configuration may hold. Every copy of an
/// instance (in memory, in a list page) carries all of it.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// One entry of `GET /instances/{id}/configuration`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEntryView {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub property_value: Option<String>,
    #[serde(rename = "type")]
    pub kind: ConfigType,
    pub required: bool,
    pub hide_from_console: bool,
    pub active: bool,
}

/// A configuration entry's id: stable for its key across instances, restarts and catalog
/// changes (FNV-1a of the key), since clients store it between calls.
pub fn config_id(key: &str) -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i64::from(hash)
}

/// Overlays the request's values on `base`, validating each against the element's entry.
pub(crate) fn overlay(
    element: &ElementDefinition,
    base: &mut ConfigMap,
    given: Option<&Map<String, Value>>,
) -> Result<(), ServiceError> {
    for (key, raw) in given.into_iter().flatten() {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(ServiceError::bad_request(
                "invalid_configuration",
                format!("configuration keys must be 1 to {MAX_KEY} characters"),
            ));
        }
        let value = config_value_from_json(key, raw)
            .map_err(|e| ServiceError::bad_request("invalid_configuration", e.to_string()))?;
        base.insert(key.clone(), normalized(element, key, value)?);
    }
    within_limits(base)
}

/// Refuses a configuration larger than an instance may hold, naming the limit.
pub(crate) fn within_limits(config: &ConfigMap) -> Result<(), ServiceError> {
    if config.len() > MAX_CONFIG_ENTRIES {
        return Err(ServiceError::bad_request(
            "configuration_too_large",
            format!(
                "an instance holds at most {MAX_CONFIG_ENTRIES} configuration entries; this one would hold {}",
                config.len()
            ),
        ));
    }
    let bytes = config_bytes(config);
    if bytes > MAX_CONFIG_BYTES {
        return Err(ServiceError::bad_request(
            "configuration_too_large",
            format!(
                "an instance's configuration holds at most {MAX_CONFIG_BYTES} bytes of keys and values; this one would hold {bytes}"
            ),
        ));
    }
    Ok(())
}

/// Bytes of keys and values, the measure [`MAX_CONFIG_BYTES`] limits.
pub fn config_bytes(config: &ConfigMap) -> usize {
    config
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
        .sum()
}

pub(crate) fn normalized(
    element: &ElementDefinition,
    key: &str,
    value: Option<String>,
) -> Result<Option<String>, ServiceError> {
    let Some(value) = value else { return Ok(None) };
    if value.len() > MAX_VALUE {
        return Err(ServiceError::bad_request(
            "invalid_configuration",
            format!("configuration value for '{key}' is larger than {MAX_VALUE} bytes"),
        ));
    }
    // An empty string means "unset" for optional entries, as Cloud Elements consoles send it.
    if value.is_empty() {
        return Ok(None);
    }
    let value = match element.config_entry(key) {
        Some(entry) => entry
            .normalize(&value)
            .map_err(|m| ServiceError::bad_request("invalid_configuration", m))?,
        None => value,
    };
    if key == crate::events::POLLER_CONFIGURATION {
        crate::events::check_poller_configuration(&value)
            .map_err(|m| ServiceError::bad_request("invalid_configuration", m))?;
    }
    Ok(Some(value))
}

/// Every declared entry at its default (or null).
pub(crate) fn defaults(element: &ElementDefinition) -> ConfigMap {
    element
        .configuration
        .iter()
        .map(|e| (e.key.clone(), e.default.clone()))
        .collect()
}

/// Required entries without a value, in declaration order.
pub(crate) fn missing_required(
    element: &ElementDefinition,
    config: &ConfigMap,
) -> Result<(), ServiceError> {
    let absent = |key: &str| {
        config
            .get(key)
            .and_then(|v| v.as_deref())
            .is_none_or(|v| v.trim().is_empty())
    };
    let mut missing: Vec<String> = element
        .configuration
        .iter()
        .filter(|e| e.required && absent(&e.key))
        .map(|e| e.key.clone())
        .collect();
    // Every value a credential template reads is needed, declared required or not.
    for key in element.credentials.iter().flat_map(|c| c.keys()) {
        if absent(&key) && !missing.contains(&key) {
            missing.push(key);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::MissingConfiguration(missing))
    }
}

pub(crate) fn entry_views(element: &ElementDefinition, config: &ConfigMap) -> Vec<ConfigEntryView> {
    let mut out: Vec<ConfigEntryView> = config
        .iter()
        .map(|(key, value)| {
            let entry = element.config_entry(key);
            let shown = match value {
                Some(_) if element.is_secret_key(key) => Some(MASK.to_owned()),
                other => other.clone(),
            };
            ConfigEntryView {
                id: config_id(key),
                key: key.clone(),
                name: entry.map_or_else(|| key.clone(), |e| e.name.clone()),
                description: entry.and_then(|e| e.description.clone()),
                property_value: shown,
                kind: entry.map_or(ConfigType::Textfield1000, |e| e.kind),
                required: entry.is_some_and(|e| e.required),
                hide_from_console: entry.is_some_and(|e| e.hide_from_console),
                active: true,
            }
        })
        .collect();
    // Declared entries first, in the element's order, then any extra keys by name.
    let position = |key: &str| {
        element
            .configuration
            .iter()
            .position(|e| e.key == key)
            .unwrap_or(usize::MAX)
    };
    out.sort_by(|a, b| {
        position(&a.key)
            .cmp(&position(&b.key))
            .then(a.key.cmp(&b.key))
    });
    out
}

impl Services {
    pub async fn list_configuration(
        &self,
        caller: &crate::Caller,
        id: i64,
    ) -> Result<Vec<ConfigEntryView>, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        let element = self.element_of(&record).await?;
        Ok(entry_views(&element, &record.config))
    }

    pub async fn get_configuration(
        &self,
        caller: &crate::Caller,
        id: i64,
        entry_id: i64,
    ) -> Result<ConfigEntryView, ServiceError> {
        self.list_configuration(caller, id)
            .await?
            .into_iter()
            .find(|e| e.id == entry_id)
            .ok_or(ServiceError::ConfigurationNotFound(entry_id))
    }

    /// Changes one entry's value (`propertyValue`). Entries Junction manages itself
    /// (tokens, refresh times) cannot be set this way.
    pub async fn patch_configuration(
        &self,
        caller: &crate::Caller,
        id: i64,
        entry_id: i64,
        property_value: &Value,
    ) -> Result<ConfigEntryView, ServiceError> {
        let record = self.owned_instance(caller, id).await?;
        let element = self.element_of(&record).await?;
        let key = record
            .config
            .keys()
            .find(|k| config_id(k) == entry_id)
            .cloned()
            .ok_or(ServiceError::ConfigurationNotFound(entry_id))?;
        if element.config_entry(&key).is_some_and(|e| e.internal) {
            return Err(ServiceError::bad_request(
                "read_only_configuration",
                format!("'{key}' is managed by Junction and cannot be set"),
            ));
        }
        let mut map = Map::new();
        map.insert(key.clone(), property_value.clone());
        let record = self
            .change_configuration(caller, record, &element, &map)
            .await?;
        entry_views(&element, &record.config)
            .into_iter()
            .find(|e| e.key == key)
            .ok_or(ServiceError::ConfigurationNotFound(entry_id))
    }
}

impl Services {
    /// Sets the `given` values on the instance's configuration with every check a
    /// configuration update makes (types, required entries, templated defaults, the hosts
    /// credentials are bound to), and stores it: the one path for a `PATCH` and for values
    /// a hub call learned.
    pub(crate) async fn change_configuration(
        &self,
        caller: &crate::Caller,
        record: junction_store::InstanceRecord,
        element: &ElementDefinition,
        given: &Map<String, Value>,
    ) -> Result<junction_store::InstanceRecord, ServiceError> {
        let mut config = record.config.clone();
        overlay(element, &mut config, Some(given))?;
        missing_required(element, &config)?;
        crate::templates::fill_defaults(element, &mut config, Some(&record.config), Some(given))?;
        crate::hosts::check_update(caller, element, &record.config, &config, false)?;
        self.check_pins(element, &config, Some(&record.config))?;
        self.save(record, |r| r.config = config).await
    }
}

#[cfg(test)]
mod tests {
    use super::config_id;

    #[test]
    fn config_ids_are_stable_and_distinct() {
        assert_eq!(config_id("base.url"), config_id("base.url"));
        assert_ne!(config_id("base.url"), config_id("oauth.scope"));
        assert!(config_id("event.notification.enabled") > 0);
    }
}
