//! The scanner Junction used before the two-stage one, kept as the tests' reference:
//! a recursive descent that crosses strings sixteen bytes at a time. The tests hold the
//! two-stage scanner's [`Found`] to this one's, field by field.

use super::{Found, MAX_DEPTH, Record, key_is};
use wide::u8x16;

/// Checks that `body` is one JSON document in UTF-8 and finds the list at `path`
/// (member names from the top; empty for a top-level array). `None` when `body` is not
/// JSON, or when `path` leads nowhere or to something other than an array or `null`.
pub(super) fn find_list_as_before(body: &[u8], path: &[&str]) -> Option<Found> {
    let content = Content::of(body)?;
    if content.controls {
        Scan::<false>::new(body).find_all(path)
    } else {
        Scan::<true>::new(body).find_all(path)
    }
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
