//! A list answer read as bytes: the records under `rootKey` are cut out of the vendor's
//! body without building a tree of them, and nulls are dropped as they are copied.
//!
//! A list page is most of what a hub serves, and building a `Value` for every field of
//! every record, only to write it out again, cost more than the vendor's own work. The
//! records stay slices of the vendor's body, checked by [`super::scan`]; only the rest
//! of the answer (where the next page is named) is parsed.

use super::scan;
use serde_json::Value;
use std::ops::Range;

/// A vendor's list answer, split.
pub(super) struct Split<'a> {
    /// The answer without its records (the list's place holds `null`): paging reads it.
    pub rest: Value,
    text: &'a [u8],
    /// Each record, as the vendor wrote it.
    pub records: Vec<scan::Record>,
    nulls: Vec<(usize, usize)>,
}

/// Splits `body` at `root_key` (dotted; Cloud Elements' leading `|` accepted). `None`
/// when the body is not JSON or holds no list there (an array, or `null` for none): a
/// single-object answer, which the caller reads as a tree.
pub(super) fn split<'a>(body: &'a [u8], root_key: Option<&str>) -> Option<Split<'a>> {
    let path: Vec<&str> = root_key
        .map(|key| {
            key.trim_start_matches('|')
                .split('.')
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let found = scan::find_list(body, &path)?;
    let rest = if path.is_empty() {
        Value::Null
    } else {
        let (from, to) = found.list;
        let mut envelope = Vec::with_capacity(body.len() - (to - from) + 4);
        envelope.extend_from_slice(&body[..from]);
        envelope.extend_from_slice(b"null");
        envelope.extend_from_slice(&body[to..]);
        serde_json::from_slice(&envelope).ok()?
    };
    Some(Split {
        rest,
        text: body,
        records: found.records,
        nulls: found.nulls,
    })
}

/// Writes the JSON array of the records in `range` to `out`, dropping `null` members of
/// objects at any depth when `strip` is set (array slots stay, as in the tree path).
/// Everything else, whitespace and the commas between records included, is copied as
/// the vendor wrote it: one copy from cut to cut, not one per record.
pub(super) fn write_list(split: &Split<'_>, range: Range<usize>, strip: bool, out: &mut Vec<u8>) {
    let text = split.text;
    out.push(b'[');
    let records = &split.records[range];
    if let (Some(first), Some(last)) = (records.first(), records.last()) {
        let mut copied = first.start;
        if strip {
            // A record's cuts lie inside it, so those of a run of records lie between
            // its first record's start and its last record's end, in order.
            for &(from, to) in &split.nulls[first.nulls.0..last.nulls.1] {
                out.extend_from_slice(&text[copied..from]);
                copied = to;
            }
        }
        out.extend_from_slice(&text[copied..last.end]);
    }
    out.push(b']');
}

/// The byte range of the body that already is [`write_list`]'s answer, if there is
/// one: the whole list, nothing in it to drop, no whitespace around its records (a
/// compact page, as vendors send them). The answer is then the vendor's own buffer,
/// not a copy of it.
pub(super) fn as_sent(split: &Split<'_>, range: Range<usize>, strip: bool) -> Option<Range<usize>> {
    let records = split.records.get(range)?;
    let (first, last) = (records.first()?, records.last()?);
    if strip && first.nulls.0 != last.nulls.1 {
        return None;
    }
    // The byte before an element is `[`, a comma or whitespace, and `[` only before
    // the first; the byte after one likewise `]` only after the last.
    let from = first.start.checked_sub(1)?;
    let opens = split.text.get(from) == Some(&b'[');
    let closes = split.text.get(last.end) == Some(&b']');
    (opens && closes).then_some(from..last.end + 1)
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
        write_list(&split, 0..split.records.len(), strip, &mut out);
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
    fn a_compact_page_with_nothing_to_drop_is_answered_with_the_vendors_bytes() {
        let page = br#"{"done":true,"records":[{"Id":"1","N":2},{"Id":"2","N":[3]}]}"#;
        let split = split(page, Some("records")).unwrap();
        assert_eq!(
            as_sent(&split, 0..2, true).map(|r| &page[r]),
            Some(&br#"[{"Id":"1","N":2},{"Id":"2","N":[3]}]"#[..])
        );
        // Part of the list, whitespace around it, or a null to drop: copied as before.
        assert_eq!(as_sent(&split, 1..2, true), None);
        assert_eq!(as_sent(&split, 0..1, true), None);
        let spaced = br#"{"records":[ {"Id":"1"} ]}"#;
        assert_eq!(
            as_sent(&super::split(spaced, Some("records")).unwrap(), 0..1, true),
            None
        );
        let nulls = br#"{"records":[{"Id":"1","N":null}]}"#;
        let with_nulls = super::split(nulls, Some("records")).unwrap();
        assert_eq!(as_sent(&with_nulls, 0..1, true), None);
        assert_eq!(
            as_sent(&with_nulls, 0..1, false).map(|r| &nulls[r]),
            Some(&br#"[{"Id":"1","N":null}]"#[..])
        );
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
            cut in (0usize..7, 0usize..7),
        ) {
            let body = json!({"data": records});
            let bytes = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }.unwrap();
            let split = split(&bytes, Some("data")).unwrap();
            // Any run of the records, as a page handed out in pieces asks for.
            let n = split.records.len();
            let (from, to) = (cut.0.min(cut.1).min(n), cut.0.max(cut.1).min(n));
            let mut out = Vec::new();
            write_list(&split, from..to, strip, &mut out);
            if let Some(sent) = as_sent(&split, from..to, strip) {
                prop_assert_eq!(&bytes[sent], &out[..]);
            }
            let mut want = Value::Array(body["data"].as_array().unwrap()[from..to].to_vec());
            if strip {
                strip_nulls(&mut want);
            }
            let got: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(got, want);
        }
    }
}
