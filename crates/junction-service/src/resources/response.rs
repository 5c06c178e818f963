//! The vendor's answer as the hub returns it: the list under `rootKey` as a plain JSON
//! array, single objects as sent, nulls stripped unless the instance keeps them; and a
//! vendor's error text, wherever in its body the vendor puts it.

use super::request::lookup;
use junction_core::config::ConfigMap;
use serde_json::Value;

/// The instance setting that keeps nulls in answers (spec §4.1); on unless `false`.
pub(super) const FILTER_NULLS: &str = "filter.response.nulls";

/// Whether nulls are stripped, as the instance's configuration says right now.
pub(super) fn strips_nulls(config: &ConfigMap) -> bool {
    !config
        .get(FILTER_NULLS)
        .cloned()
        .flatten()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// Removes `null` members from every object, at any depth. Array elements stay, so
/// positions keep their meaning.
pub(super) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The records of a list answer: the array at `root_key` (dotted; Cloud Elements'
/// leading `|` is accepted), or the answer itself when it is an array. `None` when the
/// answer holds no list there (a single object).
pub(super) fn records(answer: &Value, root_key: Option<&str>) -> Option<Vec<Value>> {
    let selected = match root_key {
        Some(key) => lookup(answer, key.trim_start_matches('|'))?,
        None => answer,
    };
    match selected {
        Value::Array(items) => Some(items.clone()),
        // An empty page of some vendors drops the list rather than sending `[]`.
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// The vendor's own words in an error body: at the element's declared path first, then
/// in the shapes vendors commonly use.
pub(super) fn error_message(body: &[u8], declared: Option<&str>) -> Option<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => error_message_of(&json, declared),
        Err(_) => junction_oauth::provider_message(body),
    }
}

/// [`error_message`] of a body already read: JSON, or the vendor's text as a string.
pub(super) fn error_message_of(json: &Value, declared: Option<&str>) -> Option<String> {
    if let Value::String(text) = json {
        return junction_oauth::provider_message(text.as_bytes());
    }
    let text = |v: Option<&Value>| match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(path) = declared
        && let Some(found) = text(lookup(json, path.trim_start_matches('|')))
    {
        return Some(found);
    }
    let candidates = [
        "message",
        "error.message",
        "error_description",
        "errorMessages.0",
        "0.message",
        "error",
        "description",
        "errors.0.message",
    ];
    candidates
        .iter()
        .find_map(|path| text(lookup(json, path)))
        .or_else(|| {
            serde_json::to_vec(json)
                .ok()
                .and_then(|b| junction_oauth::provider_message(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_go_at_every_depth_and_array_slots_stay() {
        let mut v = json!({"a": null, "b": {"c": null, "d": 1}, "e": [null, {"f": null}]});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"b": {"d": 1}, "e": [null, {}]}));
    }

    #[test]
    fn the_root_key_selects_the_list_with_or_without_a_bar() {
        let v = json!({"QueryResponse": {"Customer": [{"id": 1}]}});
        assert_eq!(
            records(&v, Some("|QueryResponse.Customer")).unwrap().len(),
            1
        );
        assert!(records(&json!({"id": 1}), None).is_none());
        assert_eq!(records(&json!([1, 2]), None).unwrap().len(), 2);
    }

    #[test]
    fn vendor_messages_are_found_in_the_common_shapes_and_the_declared_one() {
        for (body, want) in [
            (json!({"message": "m1"}), "m1"),
            (json!({"error": {"message": "m2"}}), "m2"),
            (
                json!({"error": "invalid_grant", "error_description": "m3"}),
                "m3",
            ),
            (json!({"errorMessages": ["m4"], "errors": {}}), "m4"),
            (json!([{"message": "m5", "errorCode": "X"}]), "m5"),
            (json!({"error": "m6"}), "m6"),
            (json!({"description": "m7"}), "m7"),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            assert_eq!(error_message(&bytes, None).as_deref(), Some(want), "{body}");
        }
        let odd = serde_json::to_vec(&json!({"fault": {"text": "m8"}})).unwrap();
        assert_eq!(
            error_message(&odd, Some("fault.text")).as_deref(),
            Some("m8")
        );
    }
}
