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
/// answer holds no list there (a single object). The records are moved out, leaving
/// null in their place, so a page is never copied; the rest of the answer (where the
/// next page is named) stays as it was.
pub(super) fn records(answer: &mut Value, root_key: Option<&str>) -> Option<Vec<Value>> {
    let selected = match root_key {
        Some(key) => lookup_mut(answer, key.trim_start_matches('|'))?,
        None => answer,
    };
    match selected {
        Value::Array(items) => Some(std::mem::take(items)),
        // An empty page of some vendors drops the list rather than sending `[]`.
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// [`lookup`], for changing what it finds.
fn lookup_mut<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(value, |v, key| match v {
            Value::Object(map) => map.get_mut(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        })
}

/// A single-object answer as the hub returns it: the object at `root_key` when the key
/// selects one (Zendesk wraps each record, `{"ticket": {…}}`), else the answer as sent.
pub(super) fn single(answer: Value, root_key: Option<&str>) -> Value {
    match root_key.and_then(|key| lookup(&answer, key.trim_start_matches('|'))) {
        Some(inner @ Value::Object(_)) => inner.clone(),
        _ => answer,
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
        let mut v = json!({"QueryResponse": {"Customer": [{"id": 1}]}});
        assert_eq!(
            records(&mut v, Some("|QueryResponse.Customer"))
                .unwrap()
                .len(),
            1
        );
        assert!(records(&mut json!({"id": 1}), None).is_none());
        assert_eq!(records(&mut json!([1, 2]), None).unwrap().len(), 2);
    }

    #[test]
    fn a_root_key_naming_an_object_unwraps_a_single_answer() {
        let wrapped = json!({"ticket": {"id": 7}});
        assert_eq!(single(wrapped.clone(), Some("ticket")), json!({"id": 7}));
        assert_eq!(single(wrapped.clone(), None), wrapped);
        assert_eq!(single(wrapped.clone(), Some("missing")), wrapped);
        assert_eq!(
            single(json!({"id": 7, "tags": "x"}), Some("tags")),
            json!({"id": 7, "tags": "x"})
        );
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
