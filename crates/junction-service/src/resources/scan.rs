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
//! object inline and only nested objects and arrays by a call. One pass over the body
//! before the scan, sixteen bytes at a time, tells whether it is all ASCII (UTF-8 is
//! then checked by nothing else) and whether it holds control bytes (compact JSON holds
//! none, and then no string can, so its runs look for two bytes instead of three).
//!
//! (sonic-rs, a vectorized parser, was measured for this and not taken: its fast
//! skipping of whole objects and arrays does not check them, and its checking path,
//! token by token, took as many instructions to find the list as this scanner took to
//! check the whole page before strings were vectorized, and twice as many to walk the
//! records.)

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

/// Checks that `body` is one JSON document in UTF-8 and finds the list at `path`
/// (member names from the top; empty for a top-level array). `None` when `body` is not
/// JSON, or when `path` leads nowhere or to something other than an array or `null`.
pub(super) fn find_list(body: &[u8], path: &[&str]) -> Option<Found> {
    let content = Content::of(body)?;
    if content.controls {
        Scan::<false>::new(body).find_all(path)
    } else {
        Scan::<true>::new(body).find_all(path)
    }
}

/// Whether `text` is one JSON document (for the tests).
#[cfg(test)]
pub(super) fn is_json(text: &str) -> bool {
    fn whole<const PLAIN: bool>(s: &[u8]) -> bool {
        let mut scan = Scan::<PLAIN>::new(s);
        let Some((at, b)) = scan.token(0) else {
            return false;
        };
        scan.value_at::<false>(at, b, 0)
            .is_some_and(|end| scan.end(end))
    }
    // The plain scan is only ever given text without control bytes; the other, any.
    let controls = text.bytes().any(|b| b < 0x20);
    whole::<false>(text.as_bytes()) && (controls || whole::<true>(text.as_bytes()))
}

/// What one pass over the whole body learns before the scan: whether it holds control
/// bytes (compact JSON holds none, and then a string's plain run need not look for
/// them) and whether it is UTF-8 (checked only when a byte is not ASCII).
struct Content {
    controls: bool,
}

impl Content {
    fn of(body: &[u8]) -> Option<Self> {
        let mut low = u8x16::splat(0xff);
        let mut any = u8x16::splat(0);
        // Sixty-four bytes a turn: the loop's own test once for four vectors.
        let mut blocks = body.chunks_exact(64);
        for block in blocks.by_ref() {
            for part in block.chunks_exact(16) {
                let x = u8x16::new(<[u8; 16]>::try_from(part).ok()?);
                low = low.min(x);
                any |= x;
            }
        }
        let rest = blocks.remainder();
        let controls = low.to_array().iter().chain(rest).any(|&b| b < 0x20);
        let high = any.to_bitmask() != 0 || rest.iter().any(|&b| b >= 0x80);
        if high {
            std::str::from_utf8(body).ok()?;
        }
        Some(Self { controls })
    }
}

/// The scanner. Its methods take the position of a value's first byte and return the
/// position after it, so that the position stays in a register. `PLAIN` says the body
/// holds no control byte (no string can hold one); `RECORD` says whether the objects
/// being read belong to a record (whose nulls are noted). Both are constants, so the
/// common case tests neither.
struct Scan<'a, const PLAIN: bool> {
    s: &'a [u8],
    nulls: Vec<(usize, usize)>,
}

impl<'a, const PLAIN: bool> Scan<'a, PLAIN> {
    fn new(s: &'a [u8]) -> Self {
        Self {
            s,
            nulls: Vec::new(),
        }
    }

    /// The list at `path`, and nothing but whitespace after the document.
    fn find_all(mut self, path: &[&str]) -> Option<Found> {
        let (at, found) = self.find(0, path, 0)?;
        self.end(at).then_some(found)
    }

    /// Whether only whitespace follows `at`.
    fn end(&self, at: usize) -> bool {
        self.token(at).is_none()
    }

    /// The next byte at or after `at` that is not whitespace, and where it is; `None`
    /// at the end. Compact JSON has none between tokens, so that case comes first.
    #[inline(always)]
    fn token(&self, at: usize) -> Option<(usize, u8)> {
        let b = *self.s.get(at)?;
        if b > b' ' {
            Some((at, b))
        } else {
            self.after_ws(at)
        }
    }

    #[inline(never)]
    fn after_ws(&self, mut at: usize) -> Option<(usize, u8)> {
        loop {
            let b = *self.s.get(at)?;
            if !is_ws(b) {
                return Some((at, b));
            }
            at += 1;
        }
    }

    /// A value whose first byte, `b`, is at `at`.
    #[inline(always)]
    fn value_at<const RECORD: bool>(&mut self, at: usize, b: u8, depth: usize) -> Option<usize> {
        match b {
            b'"' => self.string(at),
            b'{' => self.object::<RECORD>(at, depth),
            b'[' => self.array::<RECORD>(at, depth),
            b't' => self.literal(at, b"true"),
            b'f' => self.literal(at, b"false"),
            b'n' => self.literal(at, b"null"),
            b'-' | b'0'..=b'9' => self.number(at),
            _ => None,
        }
    }

    #[inline(always)]
    fn literal(&self, at: usize, word: &[u8]) -> Option<usize> {
        let end = at + word.len();
        (self.s.get(at..end)? == word).then_some(end)
    }

    #[inline(always)]
    fn digits(&self, mut at: usize) -> usize {
        while let Some(b'0'..=b'9') = self.s.get(at) {
            at += 1;
        }
        at
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    #[inline(always)]
    fn number(&self, mut at: usize) -> Option<usize> {
        if self.s.get(at) == Some(&b'-') {
            at += 1;
        }
        match *self.s.get(at)? {
            b'0' => {
                at += 1;
                if let Some(b'0'..=b'9') = self.s.get(at) {
                    return None;
                }
            }
            b'1'..=b'9' => at = self.digits(at + 1),
            _ => return None,
        }
        if self.s.get(at) == Some(&b'.') {
            let end = self.digits(at + 1);
            if end == at + 1 {
                return None;
            }
            at = end;
        }
        if let Some(b'e' | b'E') = self.s.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = self.s.get(at) {
                at += 1;
            }
            let end = self.digits(at);
            if end == at {
                return None;
            }
            at = end;
        }
        Some(at)
    }

    /// A string from its opening quote at `at`; the position after its closing quote.
    #[inline(always)]
    fn string(&self, at: usize) -> Option<usize> {
        let stop = stop_in_string::<PLAIN>(self.s, at + 1);
        if *self.s.get(stop)? == b'"' {
            return Some(stop + 1);
        }
        self.escaped_string(stop)
    }

    /// The rest of a string from `at`, the first byte that ended its plain run.
    #[inline(never)]
    fn escaped_string(&self, mut at: usize) -> Option<usize> {
        loop {
            match *self.s.get(at)? {
                b'"' => return Some(at + 1),
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
            at = stop_in_string::<PLAIN>(self.s, at);
        }
    }

    /// An array from its `[` at `at`, every element checked and skipped. Containers
    /// are read out of line, so that the scalars that make up most of a document are
    /// read inline.
    #[inline(never)]
    fn array<const RECORD: bool>(&mut self, at: usize, depth: usize) -> Option<usize> {
        self.elements::<RECORD>(at, depth, |_, _, _| {})
    }

    /// The elements of an array from its `[` at `at`, calling `each` with every
    /// element's range; the position after the `]`.
    #[inline(always)]
    fn elements<const RECORD: bool>(
        &mut self,
        at: usize,
        depth: usize,
        mut each: impl FnMut(&mut Self, usize, usize),
    ) -> Option<usize> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (mut at, mut b) = self.token(at + 1)?;
        if b == b']' {
            return Some(at + 1);
        }
        loop {
            let end = self.value_at::<RECORD>(at, b, depth + 1)?;
            each(self, at, end);
            match self.token(end)? {
                (comma, b',') => (at, b) = self.token(comma + 1)?,
                (close, b']') => return Some(close + 1),
                _ => return None,
            }
        }
    }

    /// An object from its `{` at `at`, every member checked and skipped. Inside a
    /// record, notes the range that drops each member whose value is `null`: with the
    /// comma before it when an earlier member stays, else with the comma after it, if
    /// any.
    #[inline(never)]
    fn object<const RECORD: bool>(&mut self, at: usize, depth: usize) -> Option<usize> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (mut at, mut b) = self.token(at + 1)?;
        if b == b'}' {
            return Some(at + 1);
        }
        let mut comma_before = None;
        let mut kept = false;
        loop {
            if b != b'"' {
                return None;
            }
            let quote = at;
            let (colon, c) = self.token(self.string(at)?)?;
            if c != b':' {
                return None;
            }
            let (first_at, first) = self.token(colon + 1)?;
            let value_end = self.value_at::<RECORD>(first_at, first, depth + 1)?;
            let (next_at, next) = self.token(value_end)?;
            if RECORD {
                if first == b'n' {
                    let cut = match (kept, comma_before) {
                        (true, Some(comma)) => (comma, value_end),
                        _ if next == b',' => (quote, next_at + 1),
                        _ => (quote, value_end),
                    };
                    self.nulls.push(cut);
                } else {
                    kept = true;
                }
            }
            match next {
                b',' => {
                    comma_before = Some(next_at);
                    (at, b) = self.token(next_at + 1)?;
                }
                b'}' => return Some(next_at + 1),
                _ => return None,
            }
        }
    }

    /// The list value at `at`: an array's records, or `null` for none.
    fn list(&mut self, at: usize, depth: usize) -> Option<(usize, Found)> {
        let (start, first) = self.token(at)?;
        let mut records = Vec::new();
        let end = match first {
            b'[' => {
                let mut first_null = 0;
                self.elements::<true>(start, depth, |scan, a, b| {
                    let last = scan.nulls.len();
                    records.push(Record {
                        start: a,
                        end: b,
                        nulls: (first_null, last),
                    });
                    first_null = last;
                })?
            }
            b'n' => self.literal(start, b"null")?,
            _ => return None,
        };
        let found = Found {
            list: (start, end),
            records,
            nulls: std::mem::take(&mut self.nulls),
        };
        Some((end, found))
    }

    /// Finds the list at `path` from `at`, checking every member on the way; the
    /// position after the value that holds it.
    fn find(&mut self, at: usize, path: &[&str], depth: usize) -> Option<(usize, Found)> {
        let Some((first, deeper)) = path.split_first() else {
            return self.list(at, depth);
        };
        let (mut at, b) = self.token(at)?;
        if b != b'{' || depth >= MAX_DEPTH {
            return None;
        }
        let mut found = None;
        let (next, mut b) = self.token(at + 1)?;
        at = next;
        if b != b'}' {
            loop {
                if b != b'"' {
                    return None;
                }
                let key_end = self.string(at)?;
                let s = self.s;
                let key = &s[at..key_end];
                let (colon, c) = self.token(key_end)?;
                if c != b':' {
                    return None;
                }
                let value_end = if found.is_none() && key_is(key, first) {
                    let (end, list) = self.find(colon + 1, deeper, depth + 1)?;
                    found = Some(list);
                    end
                } else {
                    let (value_at, v) = self.token(colon + 1)?;
                    self.value_at::<false>(value_at, v, depth + 1)?
                };
                match self.token(value_end)? {
                    (comma, b',') => (at, b) = self.token(comma + 1)?,
                    (close, b'}') => {
                        at = close;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        Some((at + 1, found?))
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The first byte at or after `at` that ends a string's plain run: a quote, a
/// backslash, or (unless `PLAIN`, a body without any) a control character, which JSON
/// forbids there; `s.len()` if none. Sixteen bytes are tested at once (SSE2 on x86-64,
/// NEON on AArch64), which covers most keys and values of a record in one step; the
/// last few bytes of a document one at a time.
#[inline(always)]
fn stop_in_string<const PLAIN: bool>(s: &[u8], mut at: usize) -> usize {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let below_space = u8x16::splat(0x1f);
    while let Some(Ok(chunk)) = s.get(at..at + 16).map(<[u8; 16]>::try_from) {
        let x = u8x16::new(chunk);
        let mut stops = x.simd_eq(quote) | x.simd_eq(backslash);
        if !PLAIN {
            stops |= x.min(below_space).simd_eq(x);
        }
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

/// Whether a member's key, quotes included as written, is `name`.
fn key_is(quoted: &[u8], name: &str) -> bool {
    let raw = &quoted[1..quoted.len() - 1];
    if !raw.contains(&b'\\') {
        return raw == name.as_bytes();
    }
    serde_json::from_slice::<String>(quoted).is_ok_and(|key| key == name)
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
            stop_in_string::<false>(text, 0),
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
                            stop_in_string::<false>(&bytes, from),
                            at,
                            "byte {stop:#x} at {at} of {len}"
                        );
                    }
                }
                let plain = vec![b'y'; len];
                assert_eq!(stop_in_string::<false>(&plain, 0), len);
            }
        }
        assert_eq!(stop_in_string::<false>(b"plain text", 0), 10);
        assert_eq!(stop_in_string::<false>(&[0x20, 0x7f, 0x80, 0xff], 0), 4);
    }

    #[test]
    fn a_body_must_be_utf8_and_control_bytes_stand_only_between_tokens() {
        let words = "[\"\u{e9}\", {\"\u{fc}\": \"\u{65e5}\u{672c}\"}]";
        assert!(find_list(words.as_bytes(), &[]).is_some());
        assert!(find_list(b"[\"\xff\"]", &[]).is_none());
        assert!(find_list(b"[\"\xc3\"]", &[]).is_none());
        assert!(find_list(b"[\"0123456789abcdef\xed\xa0\x80\"]", &[]).is_none());
        assert!(find_list(b"[\n\"a\",\t1\r]", &[]).is_some());
        assert!(find_list(b"[\"a\tb\"]", &[]).is_none());
        assert!(find_list(b"[\"0123456789abcdefghij\x01\"]", &[]).is_none());
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
        let found = find_list(text.as_bytes(), &["data"]).unwrap();
        let records: Vec<&str> = found
            .records
            .iter()
            .map(|r| &text[r.start..r.end])
            .collect();
        assert_eq!(records, [r#"{"a":1}"#, "2"]);
        assert_eq!(&text[found.list.0..found.list.1], r#"[ {"a":1} , 2 ]"#);
        assert!(find_list(br#"{"data": {"a": 1}}"#, &["data"]).is_none());
        assert!(find_list(br#"{"other": []}"#, &["data"]).is_none());
        assert!(find_list(br#"{"data": []} x"#, &["data"]).is_none());
        let null = find_list(br#"{"q": {"data": null}}"#, &["q", "data"]).unwrap();
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
            let found = find_list(text.as_bytes(), &["data"]).unwrap();
            let got: Vec<Value> = found.records.iter()
                .map(|r| serde_json::from_str(&text[r.start..r.end]).unwrap())
                .collect();
            prop_assert_eq!(&got, body["data"].as_array().unwrap());
        }

        /// Damaged bodies, with bytes that are not UTF-8 and raw control bytes among the
        /// damage: listed exactly when serde_json reads a list.
        #[test]
        fn damaged_bodies_are_listed_exactly_when_serde_json_reads_a_list(
            records in prop::collection::vec(arbitrary_json(), 0..4),
            pretty in any::<bool>(),
            cuts in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                &b""[..], b"\xff", b"\xc3", b"\xc3\xa9", b"\xe6\x97", b"\x01", b"\x1f", b"\t", b"\n",
                b"\"", b"\\", b"]",
            ])), 1..3),
        ) {
            let list = Value::Array(records);
            let mut bytes = if pretty { serde_json::to_vec_pretty(&list) } else { serde_json::to_vec(&list) }.unwrap();
            for (at, with) in cuts {
                let i = at.index(bytes.len() + 1);
                let end = if with.is_empty() { (i + 1).min(bytes.len()) } else { i };
                bytes.splice(i..end, with.iter().copied());
            }
            let serde = serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.is_array() || v.is_null());
            prop_assert_eq!(find_list(&bytes, &[]).is_some(), serde, "{}", String::from_utf8_lossy(&bytes));
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
