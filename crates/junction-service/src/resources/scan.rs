//! A JSON scanner that checks a vendor's list answer and finds where its records are,
//! and where their `null` members are, without building any of them.
//!
//! serde_json checks a value it skips as carefully as one it builds, one token at a
//! time, and dropping nulls took a second pass; over a page of records that was most of
//! the hub's own work. This scanner accepts exactly the grammar of RFC 8259 as
//! serde_json reads it (the same escapes, numbers, literals and nesting limit, lone
//! surrogates in `\u` escapes allowed), crosses string contents sixteen bytes at a
//! time, and refuses anything else by returning `None`, so the caller falls back to
//! serde_json and its error. The property tests below hold it to serde_json on
//! generated and mutated documents.
//!
//! Strings are most of a record's bytes and their tokens, so they are what is
//! vectorized; the structure between them is read a byte at a time, the scalars of an
//! object inline and only nested objects and arrays by a call. (sonic-rs, a vectorized
//! parser, was measured for this and not taken: its fast skipping of whole objects and
//! arrays does not check them, and its checking path, token by token, took as many
//! instructions to find the list as this scanner took to check the whole page before
//! strings were vectorized, and twice as many to walk the records.)

use wide::u8x16;

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
    scan.token_or_end()?;
    (scan.at == scan.s.len()).then_some(found)
}

/// Whether `text` is one JSON document (for the tests).
#[cfg(test)]
pub(super) fn is_json(text: &str) -> bool {
    let mut scan = Scan::new(text);
    scan.value::<false>().is_some() && scan.token_or_end().is_some() && scan.at == scan.s.len()
}

/// The scanner's state. Its methods that read a value take the cursor at the value's
/// first byte; `RECORD` says whether the objects being read belong to a record (whose
/// nulls are noted), as a constant so that the scan outside the list does not test it.
struct Scan<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
    nulls: Vec<(usize, usize)>,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            s: text.as_bytes(),
            at: 0,
            depth: 0,
            nulls: Vec::new(),
        }
    }

    /// The next byte that is not whitespace, left unconsumed; `None` at the end. Compact
    /// JSON has none between tokens, so that case is tested before the loop.
    #[inline(always)]
    fn token(&mut self) -> Option<u8> {
        let b = *self.s.get(self.at)?;
        if b > b' ' { Some(b) } else { self.after_ws() }
    }

    #[inline(never)]
    fn after_ws(&mut self) -> Option<u8> {
        loop {
            let b = *self.s.get(self.at)?;
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
    }

    /// Skips whitespace up to a token or the end; `None` never (for `?` chains).
    fn token_or_end(&mut self) -> Option<()> {
        let _ = self.token();
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A value at the next token.
    #[inline(always)]
    fn value<const RECORD: bool>(&mut self) -> Option<()> {
        let b = self.token()?;
        self.value_at::<RECORD>(b)
    }

    /// A value whose first byte, `b`, is at the cursor.
    #[inline(always)]
    fn value_at<const RECORD: bool>(&mut self, b: u8) -> Option<()> {
        match b {
            b'"' => self.string().map(drop),
            b'{' => self.object::<RECORD>(),
            b'[' => self.plain_array::<RECORD>(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.s.get(self.at..end)? == word).then(|| self.at = end)
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.s.get(self.at) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        if self.s.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match *self.s.get(self.at)? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.s.get(self.at) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.s.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.s.get(self.at) {
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
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.at + 1;
        let stop = stop_in_string(self.s, start);
        if *self.s.get(stop)? == b'"' {
            self.at = stop + 1;
            return Some((start, stop, false));
        }
        self.escaped_string(start, stop)
    }

    /// The rest of a string from `at`, the first byte that ended its plain run.
    #[inline(never)]
    fn escaped_string(&mut self, start: usize, mut at: usize) -> Option<(usize, usize, bool)> {
        loop {
            match *self.s.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some((start, at, true));
                }
                b'\\' => {}
                _ => return None,
            }
            at += 1;
            match *self.s.get(at)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 1,
                b'u' => {
                    let hex = self.s.get(at + 1..at + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    at += 5;
                }
                _ => return None,
            }
            at = stop_in_string(self.s, at);
        }
    }

    /// An array from its `[`, calling `each` with every element's range.
    #[inline(always)]
    fn array<const RECORD: bool>(
        &mut self,
        mut each: impl FnMut(&mut Self, usize, usize),
    ) -> Option<()> {
        self.enter()?;
        self.at += 1;
        let mut b = self.token()?;
        if b != b']' {
            loop {
                let start = self.at;
                self.value_at::<RECORD>(b)?;
                each(self, start, self.at);
                match self.token()? {
                    b',' => {
                        self.at += 1;
                        b = self.token()?;
                    }
                    b']' => break,
                    _ => return None,
                }
            }
        }
        self.at += 1;
        self.depth -= 1;
        Some(())
    }

    /// An array from its `[`, every element checked and skipped. Containers are read out
    /// of line, so that the scalars that make up most of a document are read inline.
    #[inline(never)]
    fn plain_array<const RECORD: bool>(&mut self) -> Option<()> {
        self.array::<RECORD>(|_, _, _| {})
    }

    /// An object from its `{`, every member checked and skipped. Inside a record,
    /// notes the range that drops each member whose value is `null`: with the comma
    /// before it when an earlier member stays, else with the comma after it, if any.
    #[inline(never)]
    fn object<const RECORD: bool>(&mut self) -> Option<()> {
        self.enter()?;
        self.at += 1;
        let mut b = self.token()?;
        if b != b'}' {
            let mut comma_before = None;
            let mut kept = false;
            loop {
                if b != b'"' {
                    return None;
                }
                let quote = self.at;
                self.string()?;
                if self.token()? != b':' {
                    return None;
                }
                self.at += 1;
                let first = self.token()?;
                self.value_at::<RECORD>(first)?;
                let value_end = self.at;
                let next = self.token()?;
                if RECORD {
                    if first == b'n' {
                        let cut = match (kept, comma_before) {
                            (true, Some(comma)) => (comma, value_end),
                            _ if next == b',' => (quote, self.at + 1),
                            _ => (quote, value_end),
                        };
                        self.nulls.push(cut);
                    } else {
                        kept = true;
                    }
                }
                match next {
                    b',' => {
                        comma_before = Some(self.at);
                        self.at += 1;
                        b = self.token()?;
                    }
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.at += 1;
        self.depth -= 1;
        Some(())
    }

    /// The list value at the cursor: an array's records, or `null` for none.
    fn list(&mut self) -> Option<Found> {
        let first = self.token()?;
        let start = self.at;
        let mut records = Vec::new();
        match first {
            b'[' => {
                let mut first_null = 0;
                self.array::<true>(|scan, a, b| {
                    let last = scan.nulls.len();
                    records.push(Record {
                        start: a,
                        end: b,
                        nulls: (first_null, last),
                    });
                    first_null = last;
                })?;
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

    /// Finds the list at `path` from the cursor, checking every member on the way.
    fn find(&mut self, path: &[&str]) -> Option<Found> {
        let Some((first, deeper)) = path.split_first() else {
            return self.list();
        };
        if self.token()? != b'{' {
            return None;
        }
        self.enter()?;
        self.at += 1;
        let mut found = None;
        let mut b = self.token()?;
        if b != b'}' {
            loop {
                if b != b'"' {
                    return None;
                }
                let (start, end, escapes) = self.string()?;
                if self.token()? != b':' {
                    return None;
                }
                self.at += 1;
                let key = Key {
                    start,
                    end,
                    escapes,
                };
                if found.is_none() && key.is(self.s, first) {
                    found = Some(self.find(deeper)?);
                } else {
                    self.value::<false>()?;
                }
                match self.token()? {
                    b',' => {
                        self.at += 1;
                        b = self.token()?;
                    }
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.at += 1;
        self.depth -= 1;
        found
    }
}

/// The first byte at or after `at` that ends a string's plain run: a quote, a
/// backslash, or a control character (which JSON forbids there); `s.len()` if none.
/// Sixteen bytes are tested at once (SSE2 on x86-64, NEON on AArch64), which covers
/// most keys and values of a record in one step; the last few bytes of a document
/// one at a time.
#[inline(always)]
fn stop_in_string(s: &[u8], mut at: usize) -> usize {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let below_space = u8x16::splat(0x1f);
    while let Some(Ok(chunk)) = s.get(at..at + 16).map(<[u8; 16]>::try_from) {
        let x = u8x16::new(chunk);
        let stops =
            x.simd_eq(quote) | x.simd_eq(backslash) | x.max(below_space).simd_eq(below_space);
        let mask = stops.to_bitmask();
        if mask != 0 {
            return at + mask.trailing_zeros() as usize;
        }
        at += 16;
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
        // Every stop byte at every place of a first and second block of sixteen and of
        // the shorter tail, among bytes that must not stop (high ones included).
        for len in [1, 15, 16, 17, 31, 32, 33, 40] {
            for stop in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
                for at in 0..len {
                    for from in [0, at / 2, at] {
                        let mut bytes: Vec<u8> = (0..len)
                            .map(|i| [b'x', 0x20, 0x7f, 0x80, 0xff, b'!'][i % 6])
                            .collect();
                        bytes[at] = stop;
                        assert_eq!(
                            stop_in_string(&bytes, from),
                            at,
                            "byte {stop:#x} at {at} of {len}"
                        );
                    }
                }
                let plain = vec![b'y'; len];
                assert_eq!(stop_in_string(&plain, 0), len);
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
            "[a-z\"\\\\/\u{1}\u{e9}\u{1F600} ]{0,24}".prop_map(Value::String),
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
