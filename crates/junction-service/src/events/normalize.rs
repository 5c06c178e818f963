//! Payload → normalized events: `{objectType, objectId, eventType, date, elementKey}`.
//! The element's `event` hook decides when it has one; otherwise its `events.normalize`
//! data does; an element with neither passes the payload on with no events, raw only.

use super::EventHub;
use crate::ServiceError;
use crate::view::iso8601;
use junction_core::ElementDefinition;
use junction_core::events::{EVENT_TYPES, Normalize, select, text};
use junction_core::hub::HookType;
use serde_json::{Map, Value, json};

impl EventHub {
    /// The events `payload` holds for an instance of `element`.
    pub(crate) async fn normalize(
        &self,
        element: &ElementDefinition,
        payload: &Value,
        headers: &Map<String, Value>,
        configuration: Map<String, Value>,
        now: i64,
    ) -> Result<Vec<Value>, ServiceError> {
        if let Some(hook) = element.hooks.iter().find(|h| h.kind == HookType::Event) {
            let mut events = payload.clone();
            if let Value::Object(map) = &mut events {
                map.insert("eventHeaders".into(), Value::Object(headers.clone()));
            }
            let mut input = Map::new();
            input.insert("events".into(), events);
            input.insert("configuration".into(), Value::Object(configuration));
            input.insert("meta_data".into(), json!({"now": now}));
            let name = format!("'event' of element '{}'", element.key);
            let result = self
                .sandbox
                .run(&name, &hook.body, input)
                .await
                .map_err(|e| ServiceError::bad_request("event_hook_failed", e.to_string()))?;
            let items = match result.output.get("events") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => {
                    return Err(ServiceError::bad_request(
                        "event_hook_failed",
                        format!("hook {name} gave 'events' that is not an array"),
                    ));
                }
            };
            return items
                .iter()
                .map(|item| from_hook(item, &element.key, now, &name))
                .collect();
        }
        match element.events.as_ref().and_then(|e| e.normalize.as_ref()) {
            Some(spec) => Ok(from_data(spec, payload, &element.key, now)),
            None => Ok(Vec::new()),
        }
    }
}

/// Events as the element's `events.normalize` data finds them.
pub(crate) fn from_data(spec: &Normalize, payload: &Value, element: &str, now: i64) -> Vec<Value> {
    select(payload, &spec.items)
        .into_iter()
        .filter_map(|item| {
            let object_type = spec.object_type.read(item, payload)?;
            let object_id = spec.object_id.read(item, payload)?;
            let event_type = spec
                .event_type
                .read(item, payload)
                .map(|t| t.to_ascii_uppercase())
                .filter(|t| EVENT_TYPES.contains(&t.as_str()))
                .unwrap_or_else(|| "UPDATED".into());
            let date = spec
                .date
                .as_ref()
                .and_then(|d| match &d.path {
                    Some(path) => d.at(item, payload, path).cloned(),
                    None => d.value.clone().map(Value::String),
                })
                .and_then(|v| date_text(&v))
                .unwrap_or_else(|| iso8601(now));
            Some(event(object_type, object_id, event_type, date, element))
        })
        .collect()
}

/// One event a hook gave, in Cloud Elements' hook spelling (`event_object_type`, …) or
/// the notification's (`objectType`, …).
fn from_hook(item: &Value, element: &str, now: i64, name: &str) -> Result<Value, ServiceError> {
    let read = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| item.get(*k).and_then(text))
            .filter(|v| !v.is_empty())
    };
    let bad = |what: &str| {
        ServiceError::bad_request(
            "event_hook_failed",
            format!("hook {name} gave an event without {what}"),
        )
    };
    let object_type = read(["objectType", "event_object_type"]).ok_or_else(|| bad("objectType"))?;
    let object_id = read(["objectId", "event_object_id"]).ok_or_else(|| bad("objectId"))?;
    let event_type = read(["eventType", "event_type"])
        .map(|t| t.to_ascii_uppercase())
        .ok_or_else(|| bad("eventType"))?;
    if !EVENT_TYPES.contains(&event_type.as_str()) {
        return Err(ServiceError::bad_request(
            "event_hook_failed",
            format!(
                "hook {name} gave eventType '{event_type}'; it must be CREATED, UPDATED or DELETED"
            ),
        ));
    }
    let date = ["date", "event_date"]
        .iter()
        .find_map(|k| item.get(*k))
        .and_then(date_text)
        .unwrap_or_else(|| iso8601(now));
    Ok(event(object_type, object_id, event_type, date, element))
}

fn event(
    object_type: String,
    object_id: String,
    event_type: String,
    date: String,
    element: &str,
) -> Value {
    json!({
        "objectType": object_type,
        "objectId": object_id,
        "eventType": event_type,
        "date": date,
        "elementKey": element,
    })
}

/// A date as ISO 8601: numbers are epoch seconds (or milliseconds, when that large);
/// text is kept as the provider wrote it.
fn date_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => {
            let n = n.as_f64()?;
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
            Some(iso8601(ms as i64))
        }
        Value::String(s) if !s.is_empty() => match s.parse::<f64>() {
            Ok(_) => date_text(&Value::Number(serde_json::Number::from_f64(
                s.parse().ok()?,
            )?)),
            Err(_) => Some(s.clone()),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_core::events::Field;
    use std::collections::BTreeMap;

    fn path(p: &str) -> Field {
        Field {
            value: None,
            path: Some(p.into()),
            map: BTreeMap::new(),
            default: None,
        }
    }

    #[test]
    fn a_facebook_leadgen_delivery_becomes_one_created_lead_per_change() {
        let spec = Normalize {
            items: "entry.*.changes.*".into(),
            object_type: Field {
                value: Some("leads".into()),
                ..path("")
            },
            object_id: path("value.leadgen_id"),
            event_type: Field {
                value: Some("CREATED".into()),
                ..path("")
            },
            date: Some(path("value.created_time")),
        };
        let payload = json!({"object": "page", "entry": [{"id": "p1", "time": 1, "changes": [
            {"field": "leadgen", "value": {"leadgen_id": "L1", "created_time": 1502905576}},
            {"field": "leadgen", "value": {"leadgen_id": "L2", "created_time": 1502905577}}]}]});
        let events = from_data(&spec, &payload, "facebookleadads", 0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["objectId"], "L1");
        assert_eq!(events[1]["eventType"], "CREATED");
        assert_eq!(events[0]["date"], "2017-08-16T17:46:16Z");
        assert_eq!(events[0]["objectType"], "leads");
    }

    #[test]
    fn items_without_an_id_are_skipped_and_unknown_types_are_updates() {
        let spec = Normalize {
            items: "items.*".into(),
            object_type: path("kind"),
            object_id: path("id"),
            event_type: path("verb"),
            date: None,
        };
        let payload =
            json!({"items": [{"kind": "file", "id": 1, "verb": "touched"}, {"kind": "file"}]});
        let events = from_data(&spec, &payload, "x", 0);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["eventType"], "UPDATED");
        assert_eq!(events[0]["objectId"], "1");
    }
}
