//! The instance JSON of the Cloud Elements pages, with every secret masked.

use junction_core::config::keys;
use junction_core::element::SharedJson;
use junction_core::{ConfigMap, ElementDefinition, ElementSummary, MASK};
use junction_store::{InstanceRecord, UserRecord};
use serde::Serialize;
use std::sync::Arc;

/// The user who created an instance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: i64,
    pub email_address: String,
    pub first_name: String,
    pub last_name: String,
}

/// An instance as every `/instances` route returns it; secrets are masked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub id: i64,
    pub name: String,
    pub created_date: String,
    /// The Element token: the credential the instance's owner calls the hub with.
    pub token: String,
    #[schema(value_type = ElementSummary)]
    pub element: SharedJson,
    pub element_id: i64,
    pub tags: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub provision_interactions: Vec<serde_json::Value>,
    pub valid: bool,
    /// Why the instance is not valid: the provider's answer to a refresh that failed for
    /// good. Re-provisioning with a new code clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    pub disabled: bool,
    pub max_cache_size: i64,
    pub cache_time_to_live: i64,
    /// Every configuration value as a string or null; secrets are `********`.
    #[schema(value_type = std::collections::HashMap<String, Option<String>>)]
    pub configuration: MaskedConfig,
    pub events_enabled: bool,
    /// Where the provider sends this instance's webhooks, under the API's base URL
    /// (the "Webhook URL" of Cloud Elements' console).
    pub event_webhook_url: String,
    pub trace_logging_enabled: bool,
    pub caching_enabled: bool,
    pub external_authentication: String,
    pub user: UserView,
}

/// Cloud Elements shows dates as ISO-8601 UTC to the second.
pub(crate) fn iso8601(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An instance's configuration as shown: every secret value replaced with the mask while
/// it is written out, nulls kept so callers can see what is unset.
#[derive(Debug)]
pub struct MaskedConfig {
    element: Arc<ElementDefinition>,
    config: ConfigMap,
}

impl MaskedConfig {
    pub(crate) fn new(element: Arc<ElementDefinition>, config: ConfigMap) -> Self {
        Self { element, config }
    }
}

impl Serialize for MaskedConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.config.len()))?;
        for (key, value) in &self.config {
            match value {
                Some(_) if self.element.is_secret_key(key) => map.serialize_entry(key, MASK)?,
                other => map.serialize_entry(key, other)?,
            }
        }
        map.end()
    }
}

impl InstanceView {
    pub(crate) fn new(
        element: &Arc<ElementDefinition>,
        record: InstanceRecord,
        user: UserRecord,
    ) -> Self {
        let events_enabled = record
            .config
            .get(keys::EVENTS_ENABLED)
            .and_then(|v| v.as_deref())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let trace_logging_enabled = record.is_tracing(crate::now_ms());
        Self {
            id: record.id.0,
            name: record.name,
            created_date: iso8601(record.created_at),
            token: record.token.expose().to_owned(),
            element: element.summary_json(),
            element_id: element.id,
            tags: record.tags,
            provision_interactions: Vec::new(),
            valid: record.valid,
            invalid_reason: record.invalid_reason,
            disabled: record.disabled,
            max_cache_size: 0,
            cache_time_to_live: 0,
            configuration: MaskedConfig::new(Arc::clone(element), record.config),
            events_enabled,
            event_webhook_url: format!("/elements/api-v2/events/{}/{}", element.key, record.id),
            trace_logging_enabled,
            caching_enabled: false,
            external_authentication: record.external_authentication,
            user: UserView {
                id: user.id.0,
                email_address: user.email,
                first_name: user.first_name,
                last_name: user.last_name,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso8601_utc_seconds() {
        assert_eq!(iso8601(1_488_842_276_000), "2017-03-06T23:17:56Z");
    }
}
