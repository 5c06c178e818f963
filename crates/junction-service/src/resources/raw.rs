//! A list answer read as bytes: the records under `rootKey` are cut out of the vendor's
//! body without building a tree of them, and nulls are dropped as they are copied.
//!
//! A list page is most of what a hub serves, and building a `Value` for every field of
//! every record, only to write it out again, cost more than the vendor's own work. The
//! records stay slices of the vendor's body (checked JSON, through `RawValue`); only the
//! rest of the answer (where the next page is named) is parsed.

use memchr::memmem;
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
/// any depth when `strip` is set (array slots stay, as in the tree path). Everything
/// else, whitespace included, is copied as the vendor wrote it.
pub(super) fn write_list(records: &[&RawValue], strip: bool, out: &mut Vec<u8>) {
    let nulls = memmem::Finder::new(b"null");
    out.push(b'[');
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let bytes = record.get().as_bytes();
        if strip {
            copy_stripped(bytes, &nulls, out);
        } else {
            out.extend_from_slice(bytes);
        }
    }
    out.push(b']');
}

// The copier below reads JSON that serde_json has already checked (a `RawValue`), so it
// trusts the grammar. Most records hold few nulls, so rather than walk every byte it
// jumps from one `null` to the next (memchr's vectorized search), copies the runs in
// between whole, and looks around each one only to see whether it is a member's value
// outside any string. Every index it reads is checked, so input that is not JSON makes
// wrong output, never a panic.

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The last non-whitespace byte before `at`.
fn back(s: &[u8], at: usize) -> Option<usize> {
    s.get(..at)?.iter().rposition(|&b| !is_ws(b))
}

/// The first non-whitespace byte at or after `at`.
fn ahead(s: &[u8], at: usize) -> Option<usize> {
    s.get(at..)?.iter().position(|&b| !is_ws(b)).map(|i| at + i)
}

/// Whether the quote at `at` is escaped (an odd run of backslashes before it).
fn escaped(s: &[u8], at: usize) -> bool {
    let run = s[..at].iter().rev().take_while(|&&b| b == b'\\').count();
    run % 2 == 1
}

/// A member whose value is `null`: where its key opens, and the byte before the key.
struct NullMember {
    open: usize,
    lead: usize,
    /// Just past the `null`.
    end: usize,
}

/// The member whose value is the `null` starting at `at`, or `None` when that null is
/// not an object member's value (an array slot, or the record itself).
fn member_at(s: &[u8], at: usize) -> Option<NullMember> {
    let colon = back(s, at)?;
    if s[colon] != b':' {
        return None;
    }
    let close = back(s, colon)?;
    if s[close] != b'"' {
        return None;
    }
    // The key's opening quote: the nearest unescaped quote before its closing one.
    let mut open = close;
    loop {
        open = memchr::memrchr(b'"', &s[..open])?;
        if !escaped(s, open) {
            break;
        }
    }
    let lead = back(s, open)?;
    matches!(s[lead], b',' | b'{').then_some(NullMember {
        open,
        lead,
        end: at + 4,
    })
}

fn copy_stripped(s: &[u8], nulls: &memmem::Finder<'_>, out: &mut Vec<u8>) {
    let mut copied = 0;
    // Where the string state is known, and that state.
    let mut scanned = 0;
    let mut in_string = false;
    for at in nulls.find_iter(s) {
        if at < scanned {
            continue;
        }
        for quote in memchr::memchr_iter(b'"', &s[scanned..at]) {
            if !escaped(s, scanned + quote) {
                in_string = !in_string;
            }
        }
        scanned = at;
        if in_string {
            continue;
        }
        let Some(member) = member_at(s, at) else {
            continue;
        };
        // A later member goes with the comma before it. The first one, or one whose
        // comma went with an earlier cut, goes with the comma after it, if any.
        let (from, to) = if s[member.lead] == b',' && member.lead >= copied {
            (member.lead, member.end)
        } else {
            match ahead(s, member.end) {
                Some(comma) if s[comma] == b',' => (member.open, comma + 1),
                _ => (member.open, member.end),
            }
        };
        out.extend_from_slice(s.get(copied..from).unwrap_or_default());
        copied = to;
        scanned = to;
    }
    out.extend_from_slice(s.get(copied..).unwrap_or_default());
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

    /// Text made of the pieces that could mislead the copier: `null` in strings and
    /// keys, quotes, backslashes, colons and commas.
    fn tricky_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("null"),
            Just(":null"),
            Just("\""),
            Just("\\"),
            Just("\\\""),
            Just(","),
            Just(" "),
            Just("{"),
            Just("a"),
            Just("\u{e9}"),
        ];
        prop::collection::vec(piece, 0..5).prop_map(|p| p.concat())
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\"\\\\ {}:,\\[\\]n\u{e9}]{0,8}".prop_map(Value::String),
            tricky_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            let key = prop_oneof!["[a-z\"\\\\]{0,4}", tricky_text()];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6)
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
