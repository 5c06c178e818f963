//! The built-in hubs (`elements/hubs/hubs.yaml`): names and descriptions as data, checked
//! against the elements that name them.

use crate::{CatalogError, invalid};
use junction_core::ElementDefinition;
use junction_core::hub::{HubDefinition, is_catalog_key};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// Where the hub list lives, relative to `elements/`.
pub(crate) const HUBS_FILE: &str = "hubs/hubs.yaml";

/// Ids at or above this are left to the hubs organizations create.
pub const CUSTOM_HUB_IDS: i64 = 100_000;

/// Parses the hub list and keeps the hubs some element names, ordered by id. Every hub an
/// element names must be described, so none is listed without a name.
pub(crate) fn load(
    text: &str,
    elements: &[Arc<ElementDefinition>],
) -> Result<Vec<HubDefinition>, CatalogError> {
    let all: Vec<HubDefinition> =
        serde_norway::from_str(text).map_err(|e| invalid(HUBS_FILE, e.to_string()))?;
    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    for hub in &all {
        if !is_catalog_key(&hub.key) {
            return Err(invalid(
                HUBS_FILE,
                format!("hub key '{}' must be lowercase letters and digits", hub.key),
            ));
        }
        if !(1..CUSTOM_HUB_IDS).contains(&hub.id) {
            return Err(invalid(
                HUBS_FILE,
                format!(
                    "hub '{}': id must be from 1 to {}",
                    hub.key,
                    CUSTOM_HUB_IDS - 1
                ),
            ));
        }
        if hub.name.trim().is_empty() || hub.description.trim().is_empty() {
            return Err(invalid(
                HUBS_FILE,
                format!("hub '{}' needs a name and a description", hub.key),
            ));
        }
        if !keys.insert(hub.key.as_str()) {
            return Err(invalid(
                HUBS_FILE,
                format!("duplicate hub key '{}'", hub.key),
            ));
        }
        if !ids.insert(hub.id) {
            return Err(invalid(HUBS_FILE, format!("duplicate hub id {}", hub.id)));
        }
    }
    let named: BTreeSet<&str> = elements.iter().map(|e| e.hub.as_str()).collect();
    for hub in &named {
        if !keys.contains(hub) {
            return Err(invalid(
                HUBS_FILE,
                format!("an element names hub '{hub}', which the file does not describe"),
            ));
        }
    }
    let mut used: Vec<HubDefinition> = all
        .into_iter()
        .filter(|h| named.contains(h.key.as_str()))
        .collect();
    used.sort_by_key(|h| h.id);
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(key: &str, hub: &str) -> Arc<ElementDefinition> {
        let json = serde_json::json!({
            "id": 1, "key": key, "name": key, "hookName": key, "hub": hub,
            "description": "d", "image": "i", "authentication": {"type": "basic"}
        });
        Arc::new(serde_json::from_value(json).unwrap())
    }

    const TWO: &str = "- {id: 1, key: crm, name: CRM, description: d}\n\
                       - {id: 2, key: social, name: Social, description: d}\n";

    #[test]
    fn only_hubs_an_element_names_are_listed() {
        let hubs = load(TWO, &[element("a", "social")]).unwrap();
        assert_eq!(hubs.len(), 1);
        assert_eq!(hubs[0].key, "social");
    }

    #[test]
    fn a_hub_no_entry_describes_is_refused() {
        let err = load(TWO, &[element("a", "finance")]).unwrap_err();
        assert!(err.to_string().contains("'finance'"), "{err}");
    }

    #[test]
    fn duplicate_and_reserved_ids_are_refused() {
        for bad in [
            "- {id: 1, key: crm, name: C, description: d}\n- {id: 1, key: x, name: X, description: d}\n",
            "- {id: 100000, key: crm, name: C, description: d}\n",
            "- {id: 1, key: CRM, name: C, description: d}\n",
            "- {id: 1, key: crm, name: ' ', description: d}\n",
        ] {
            assert!(load(bad, &[element("a", "crm")]).is_err(), "{bad}");
        }
    }
}
