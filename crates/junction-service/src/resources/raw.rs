//! A list answer read as bytes: the records under `rootKey` are cut out of the vendor's
//! body without building a tree of them, and nulls are dropped as they are copied.
//!
//! A list page is most of what a hub serves, and building a `Value` for every field of
//! every record, only to write it out again, cost more than the vendor's own work. The
//! records stay slices of the vendor's body (checked JSON, through `RawValue`); only the
//! rest of the answer (where the next page is named) is parsed.

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// A vendor's list answer, split.
pub(super) struct Split<'a> {
    /// The answer without its records (the list's place holds `null`): paging reads it.
    pub rest: Value,
    /// Each record, as the vendor wrote it.
    pub records: Vec<&'a RawValue>,
}

/// Splits `body` at `root_key` (dotted; Cloud Elements' leading `|` accepted). `None`
/// when the body is not JSON or holds no list there: the caller reads it as a tree.
/// The records are read once, to find where each one ends; nothing else reads them.
pub(super) fn split<'a>(body: &'a [u8], root_key: Option<&str>) -> Option<Split<'a>> {
    let path: Vec<&str> = root_key
        .map(|key| {
            key.trim_start_matches('|')
                .split('.')
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let text = std::str::from_utf8(body).ok()?;
    let (rest, records) = cut(text, &path)?;
    Some(Split { rest, records })
}

/// `text` with the member at `path` replaced by null, and that member's records (none
/// when it is null). `None` when `text` is not JSON, or `path` names nothing or
/// something other than an array or null: a single-object answer, which the tree path
/// reads.
fn cut<'a>(text: &'a str, path: &[&str]) -> Option<(Value, Vec<&'a RawValue>)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let cut = match path.split_first() {
        None => match text.trim_start().as_bytes().first() {
            Some(b'[') => (Value::Null, Vec::<&RawValue>::deserialize(&mut de).ok()?),
            // An empty page of some vendors drops the list rather than sending `[]`.
            Some(b'n') => (
                Value::Null,
                Option::<Vec<&RawValue>>::deserialize(&mut de)
                    .ok()?
                    .unwrap_or_default(),
            ),
            _ => return None,
        },
        Some((first, deeper)) => {
            if !text.trim_start().starts_with('{') {
                // Array indexes in a root key are rare enough to take the tree path.
                return None;
            }
            let (rest, found) = de.deserialize_map(Level { first, deeper }).ok()?;
            (Value::Object(rest), found?)
        }
    };
    de.end().ok()?;
    Some(cut)
}

/// One object on the way to the list: its other members parsed, the list's members
/// only delimited.
struct Level<'p> {
    first: &'p str,
    deeper: &'p [&'p str],
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = (Map<String, Value>, Option<Vec<&'de RawValue>>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut rest = Map::new();
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if found.is_some() || key != self.first {
                let value = map.next_value::<Value>()?;
                rest.insert(key, value);
            } else if self.deeper.is_empty() {
                let list = map
                    .next_value::<Option<Vec<&'de RawValue>>>()
                    .map_err(|_| A::Error::custom("the root key names no list"))?;
                found = Some(list.unwrap_or_default());
                rest.insert(key, Value::Null);
            } else {
                let inner = map.next_value::<&'de RawValue>()?;
                let (value, list) = cut(inner.get(), self.deeper)
                    .ok_or_else(|| A::Error::custom("the root key names no list"))?;
                found = Some(list);
                rest.insert(key, value);
            }
        }
        Ok((rest, found))
    }
}

/// Writes the JSON array of `records` to `out`, dropping `null` members of objects at
/// any depth when `strip` is set (array slots stay, as in the tree path). Whitespace
/// between tokens is dropped; strings and numbers are copied as the vendor wrote them.
pub(super) fn write_list(records: &[&RawValue], strip: bool, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let bytes = record.get().as_bytes();
        if strip {
            let mut at = 0;
            copy_value(bytes, &mut at, out);
        } else {
            out.extend_from_slice(bytes);
        }
    }
    out.push(b']');
}

// The copier below reads JSON that serde_json has already checked (a `RawValue`), so
// it trusts the grammar: every index it reads is in bounds for valid JSON, and it stops
// at the end of the input for anything else instead of panicking.

fn skip_ws(s: &[u8], at: &mut usize) {
    while *at < s.len() && matches!(s[*at], b' ' | b'\n' | b'\r' | b'\t') {
        *at += 1;
    }
}

/// Moves past the string starting at `at` (on its opening quote).
fn skip_string(s: &[u8], at: &mut usize) {
    *at += 1;
    while *at < s.len() {
        match s[*at] {
            b'\\' => *at += 2,
            b'"' => {
                *at += 1;
                return;
            }
            _ => *at += 1,
        }
    }
}

fn copy_value(s: &[u8], at: &mut usize, out: &mut Vec<u8>) {
    skip_ws(s, at);
    let Some(&first) = s.get(*at) else { return };
    match first {
        b'{' => copy_object(s, at, out),
        b'[' => copy_array(s, at, out),
        b'"' => {
            let start = *at;
            skip_string(s, at);
            out.extend_from_slice(&s[start..(*at).min(s.len())]);
        }
        _ => {
            let start = *at;
            while *at < s.len()
                && !matches!(s[*at], b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
            {
                *at += 1;
            }
            out.extend_from_slice(&s[start..*at]);
        }
    }
}

fn copy_object(s: &[u8], at: &mut usize, out: &mut Vec<u8>) {
    *at += 1;
    out.push(b'{');
    let mut first = true;
    loop {
        skip_ws(s, at);
        match s.get(*at) {
            Some(b'"') => {}
            Some(b'}') => {
                *at += 1;
                break;
            }
            _ => break,
        }
        let key = *at;
        skip_string(s, at);
        let key_end = (*at).min(s.len());
        skip_ws(s, at);
        *at += 1; // the colon
        skip_ws(s, at);
        if s.get(*at..*at + 4) == Some(b"null") {
            *at += 4;
        } else {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&s[key..key_end]);
            out.push(b':');
            copy_value(s, at, out);
        }
        skip_ws(s, at);
        if s.get(*at) == Some(&b',') {
            *at += 1;
        }
    }
    out.push(b'}');
}

fn copy_array(s: &[u8], at: &mut usize, out: &mut Vec<u8>) {
    *at += 1;
    out.push(b'[');
    let mut first = true;
    loop {
        skip_ws(s, at);
        match s.get(*at) {
            None => break,
            Some(b']') => {
                *at += 1;
                break;
            }
            _ => {}
        }
        if !first {
            out.push(b',');
        }
        first = false;
        copy_value(s, at, out);
        skip_ws(s, at);
        if s.get(*at) == Some(&b',') {
            *at += 1;
        }
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::response::strip_nulls;
    use proptest::prelude::*;
    use serde_json::json;

    fn listed(body: &Value, root_key: Option<&str>, strip: bool) -> Option<(Value, Value)> {
        let bytes = serde_json::to_vec_pretty(body).unwrap();
        let split = split(&bytes, root_key)?;
        let mut out = Vec::new();
        write_list(&split.records, strip, &mut out);
        Some((split.rest, serde_json::from_slice(&out).unwrap()))
    }

    #[test]
    fn the_records_are_cut_out_and_the_rest_keeps_the_next_page() {
        let body = json!({"totalSize": 3, "done": false, "nextRecordsUrl": "/q/01g-2",
            "records": [{"Id": "1", "Name": null}, {"Id": "2", "Sub": {"a": null, "b": [null, 1]}}]});
        let (rest, list) = listed(&body, Some("records"), true).unwrap();
        assert_eq!(
            rest,
            json!({"totalSize": 3, "done": false, "nextRecordsUrl": "/q/01g-2", "records": null})
        );
        assert_eq!(
            list,
            json!([{"Id": "1"}, {"Id": "2", "Sub": {"b": [null, 1]}}])
        );
        let (_, kept) = listed(&body, Some("records"), false).unwrap();
        assert_eq!(kept, body["records"]);
    }

    #[test]
    fn nested_and_barred_root_keys_and_bare_arrays_are_lists() {
        let body = json!({"QueryResponse": {"Customer": [{"Id": 1}], "startPosition": 1}});
        let (rest, list) = listed(&body, Some("|QueryResponse.Customer"), true).unwrap();
        assert_eq!(
            rest,
            json!({"QueryResponse": {"Customer": null, "startPosition": 1}})
        );
        assert_eq!(list, json!([{"Id": 1}]));
        let (_, bare) = listed(&json!([{"a": null}, 2]), None, true).unwrap();
        assert_eq!(bare, json!([{}, 2]));
    }

    #[test]
    fn a_null_list_is_an_empty_page_and_an_object_or_no_list_is_not_a_list() {
        assert_eq!(
            listed(&json!({"data": null}), Some("data"), true)
                .unwrap()
                .1,
            json!([])
        );
        assert!(listed(&json!({"other": 1}), Some("data"), true).is_none());
        assert!(listed(&json!({"data": {"id": 1}}), Some("data"), true).is_none());
        assert!(listed(&json!({"id": 1}), None, true).is_none());
        assert!(split(b"not json", Some("data")).is_none());
    }

    #[test]
    fn strings_that_look_like_json_are_copied_untouched() {
        let body = json!([{"k\"ey": "null, \"x\": null}", "n": null, "esc": "a\\\"b\u{e9}", "num": -1.5e3}]);
        let (_, list) = listed(&body, None, true).unwrap();
        assert_eq!(
            list,
            json!([{"k\"ey": "null, \"x\": null}", "esc": "a\\\"b\u{e9}", "num": -1.5e3}])
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\"\\\\ {}:,\\[\\]n\u{e9}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn copying_bytes_strips_exactly_what_the_tree_path_strips(
            records in prop::collection::vec(arbitrary_json(), 0..6),
            pretty in any::<bool>(),
            strip in any::<bool>(),
        ) {
            let body = json!({"data": records});
            let bytes = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }.unwrap();
            let split = split(&bytes, Some("data")).unwrap();
            let mut out = Vec::new();
            write_list(&split.records, strip, &mut out);
            let mut want = body["data"].clone();
            if strip {
                strip_nulls(&mut want);
            }
            let got: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
