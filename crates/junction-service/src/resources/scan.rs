//! A JSON scanner that checks a vendor's list answer and finds where its records are,
//! and where their `null` members are, without building any of them.
//!
//! serde_json checks a value it skips as carefully as one it builds, one token at a
//! time, and dropping nulls took a second pass; over a page of records that was most of
//! the hub's own work. This scanner accepts exactly the grammar of RFC 8259 as
//! serde_json reads it (the same escapes, numbers, literals and nesting limit, lone
//! surrogates in `\u` escapes allowed), crosses string contents eight bytes at a time,
//! and refuses anything else by returning `None`, so the caller falls back to
//! serde_json and its error. The property tests below hold it to serde_json on
//! generated and mutated documents.

/// Nesting at which serde_json stops (its recursion limit of 128 levels).
const MAX_DEPTH: usize = 127;

/// Where the list is in a document, and where each of its records is.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// The byte range of the list's value (an array, or `null`).
    pub list: (usize, usize),
    /// Each record: its byte range, and the range of `nulls` inside it.
    pub records: Vec<Record>,
    /// The byte ranges that drop the records' `null` members (with the comma that
    /// goes with each), at any depth, in document order.
    pub nulls: Vec<(usize, usize)>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Record {
    pub start: usize,
    pub end: usize,
    /// Indexes into [`Found::nulls`].
    pub nulls: (usize, usize),
}

/// Checks that `text` is one JSON document and finds the list at `path` (member names
/// from the top; empty for a top-level array). `None` when `text` is not JSON, or when
/// `path` leads nowhere or to something other than an array or `null`.
pub(super) fn find_list(text: &str, path: &[&str]) -> Option<Found> {
    let mut scan = Scan::new(text);
    let found = scan.find(path)?;
    scan.ws();
    (scan.at == scan.s.len()).then_some(found)
}

/// Whether `text` is one JSON document (for the tests).
#[cfg(test)]
pub(super) fn is_json(text: &str) -> bool {
    let mut scan = Scan::new(text);
    scan.value().is_some() && {
        scan.ws();
        scan.at == scan.s.len()
    }
}

struct Scan<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
    /// Whether the objects being read belong to a record (whose nulls are noted).
    in_record: bool,
    nulls: Vec<(usize, usize)>,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            s: text.as_bytes(),
            at: 0,
            depth: 0,
            in_record: false,
            nulls: Vec::new(),
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// Consumes `b` after any whitespace.
    fn expect(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.peek()? == b).then(|| self.at += 1)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(|_, _, _| {}),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.s.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A string from its opening quote; returns the range of its contents and whether
    /// they hold an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.at += 1;
        let start = self.at;
        let mut escapes = false;
        loop {
            self.at = stop_in_string(self.s, self.at);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some((start, self.at - 1, escapes));
                }
                b'\\' => {}
                _ => return None,
            }
            escapes = true;
            self.at += 1;
            match self.peek()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                b'u' => {
                    let hex = self.s.get(self.at + 1..self.at + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at += 5;
                }
                _ => return None,
            }
        }
    }

    /// An array from its `[`, calling `each` with every element's range.
    fn array(&mut self, mut each: impl FnMut(&mut Self, usize, usize)) -> Option<()> {
        self.enter()?;
        self.at += 1;
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            self.ws();
            let start = self.at;
            self.value()?;
            let end = self.at;
            each(self, start, end);
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object from its `{`, every member checked and skipped.
    fn object(&mut self) -> Option<()> {
        self.members(|scan, _| scan.value())
    }

    /// An object from its `{`; `member` reads each member's value, given the key's text
    /// as written (between its quotes) and whether it holds escapes. Inside a record,
    /// notes the range that drops each member whose value is `null`: with the comma
    /// before it when an earlier member stays, else with the comma after it, if any.
    fn members(&mut self, mut member: impl FnMut(&mut Self, Key) -> Option<()>) -> Option<()> {
        self.enter()?;
        self.at += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            self.depth -= 1;
            return Some(());
        }
        let mut comma_before = None;
        let mut kept = false;
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            let quote = self.at;
            let (start, end, escapes) = self.string()?;
            self.expect(b':')?;
            self.ws();
            let value = self.at;
            member(
                self,
                Key {
                    start,
                    end,
                    escapes,
                },
            )?;
            let value_end = self.at;
            let dropped = self.in_record && self.s[value] == b'n';
            self.ws();
            let next = self.peek()?;
            if dropped {
                let cut = match (kept, comma_before) {
                    (true, Some(comma)) => (comma, value_end),
                    _ if next == b',' => (quote, self.at + 1),
                    _ => (quote, value_end),
                };
                self.nulls.push(cut);
            } else {
                kept = true;
            }
            match next {
                b',' => {
                    comma_before = Some(self.at);
                    self.at += 1;
                }
                b'}' => {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The list value at the cursor: an array's records, or `null` for none.
    fn list(&mut self) -> Option<Found> {
        self.ws();
        let start = self.at;
        let mut records = Vec::new();
        match self.peek()? {
            b'[' => {
                self.in_record = true;
                let mut first_null = 0;
                self.array(|scan, a, b| {
                    let last = scan.nulls.len();
                    records.push(Record {
                        start: a,
                        end: b,
                        nulls: (first_null, last),
                    });
                    first_null = last;
                })?;
                self.in_record = false;
            }
            b'n' => self.literal(b"null")?,
            _ => return None,
        }
        Some(Found {
            list: (start, self.at),
            records,
            nulls: std::mem::take(&mut self.nulls),
        })
    }

    fn find(&mut self, path: &[&str]) -> Option<Found> {
        let Some((first, deeper)) = path.split_first() else {
            return self.list();
        };
        self.ws();
        if self.peek()? != b'{' {
            return None;
        }
        let mut found = None;
        self.members(|scan, key| {
            if found.is_none() && key.is(scan.s, first) {
                found = Some(scan.find(deeper)?);
                Some(())
            } else {
                scan.value()
            }
        })?;
        found
    }
}

/// The first byte at or after `at` that ends a string's plain run: a quote, a
/// backslash, or a control character (which JSON forbids there); `s.len()` if none.
/// Most strings in a record are short, where a vectorized search costs more to start
/// than it saves: eight bytes are tested at a time in a word instead.
fn stop_in_string(s: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = s.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        // A byte below 0x20 borrows when 0x20 is taken from it; bytes at or above 0x80
        // are never flagged (`!x` clears them).
        let found = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if found != 0 {
            // The lowest flagged byte is exact; only bytes after it can be false hits.
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = s.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

/// A member's key as written.
struct Key {
    start: usize,
    end: usize,
    escapes: bool,
}

impl Key {
    fn is(&self, s: &[u8], name: &str) -> bool {
        let raw = &s[self.start..self.end];
        if !self.escapes {
            return raw == name.as_bytes();
        }
        let quoted = &s[self.start - 1..self.end + 1];
        serde_json::from_slice::<String>(quoted).is_ok_and(|key| key == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;
    use serde_json::{Value, json};

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok()
    }

    #[test]
    fn the_grammar_is_serde_jsons() {
        for good in [
            "0",
            "-0",
            "1.5e-3",
            "-12E+4",
            "[]",
            "{}",
            " [ 1 , {\"a\" : [true,false,null]} ] ",
            "\"\\u00e9\\ud800\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
            "\"é\"",
        ] {
            assert!(is_json(good), "{good}");
            assert!(serde_accepts(good), "{good}");
        }
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\u{1}\"",
            "\"open",
            "tru",
            "nul",
            "[",
            "{\"a\"}",
            "1 2",
            "NaN",
            "[\"a\":1]",
        ] {
            assert!(!is_json(bad), "{bad}");
            assert!(!serde_accepts(bad), "{bad}");
        }
    }

    #[test]
    fn a_plain_run_stops_at_the_first_quote_backslash_or_control_byte() {
        let text = "abcdefghij\u{e9}klmnopq\"rest".as_bytes();
        assert_eq!(
            stop_in_string(text, 0),
            text.iter().position(|&b| b == b'"').unwrap()
        );
        for (i, stop) in [b'"', b'\\', 0x00, 0x1f].into_iter().enumerate() {
            for at in 0..20 {
                let mut bytes = vec![b'x'; 24];
                bytes[at] = stop;
                bytes[at.saturating_sub(i)..at].fill(0xff);
                assert_eq!(stop_in_string(&bytes, 0), at, "byte {stop:#x} at {at}");
            }
        }
        assert_eq!(stop_in_string(b"plain text", 0), 10);
        assert_eq!(stop_in_string(&[0x20, 0x7f, 0x80, 0xff], 0), 4);
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [126, 127, 128, 129] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let built = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(is_json(&text), built, "depth {depth}");
        }
    }

    #[test]
    fn the_list_is_found_by_its_decoded_name_first_occurrence_first() {
        let text = r#"{"x": 1, "d\u0061ta": [ {"a":1} , 2 ], "data": [3]}"#;
        let found = find_list(text, &["data"]).unwrap();
        let records: Vec<&str> = found
            .records
            .iter()
            .map(|r| &text[r.start..r.end])
            .collect();
        assert_eq!(records, [r#"{"a":1}"#, "2"]);
        assert_eq!(&text[found.list.0..found.list.1], r#"[ {"a":1} , 2 ]"#);
        assert!(find_list(r#"{"data": {"a": 1}}"#, &["data"]).is_none());
        assert!(find_list(r#"{"other": []}"#, &["data"]).is_none());
        assert!(find_list(r#"{"data": []} x"#, &["data"]).is_none());
        let null = find_list(r#"{"q": {"data": null}}"#, &["q", "data"]).unwrap();
        assert!(null.records.is_empty());
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[a-z\"\\\\/\u{1}\u{e9}\u{1F600} ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 60, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn valid_documents_split_as_serde_json_reads_them(
            records in prop::collection::vec(arbitrary_json(), 0..6),
            pretty in any::<bool>(),
        ) {
            let body = json!({"meta": {"next": "x"}, "data": records});
            let text = if pretty { serde_json::to_string_pretty(&body) } else { serde_json::to_string(&body) }.unwrap();
            let found = find_list(&text, &["data"]).unwrap();
            let got: Vec<Value> = found.records.iter()
                .map(|r| serde_json::from_str(&text[r.start..r.end]).unwrap())
                .collect();
            prop_assert_eq!(&got, body["data"].as_array().unwrap());
        }

        /// Damaged documents: whatever the scanner accepts, serde_json accepts too.
        #[test]
        fn damaged_documents_are_never_accepted_where_serde_json_refuses(
            value in arbitrary_json(),
            cuts in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                "", "\"", "\\", ",", ":", "[", "]", "{", "}", "0", "-", ".", "e", "n", "\u{1}", " ", "u", "\\u",
            ])), 1..4),
        ) {
            let mut text = serde_json::to_string(&value).unwrap();
            for (at, with) in cuts {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                let keep = if with.is_empty() { i + 1 } else { i };
                let mut end = keep.min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(i..end, with);
            }
            prop_assert_eq!(is_json(&text), serde_accepts(&text), "{}", text);
        }
    }
}
