//! A JSON scanner that checks a vendor's list answer and finds where its records are,
//! and where their `null` members are, without building any of them.
//!
//! serde_json checks a value it skips as carefully as one it builds, one token at a
//! time, and dropping nulls took a second pass; over a page of records that was most of
//! the hub's own work. This scanner accepts exactly the grammar of RFC 8259 as
//! serde_json reads it (the same escapes, numbers, literals and nesting limit, lone
//! surrogates in `\u` escapes allowed), and refuses anything else by returning `None`,
//! so the caller falls back to serde_json and its error. The property tests below hold
//! it to serde_json on generated and mutated documents.
//!
//! It works in two stages, after simdjson, on safe vectors only (the `wide` crate: SSE2
//! on x86-64, NEON on AArch64; the workspace forbids the `unsafe` of `std::arch`):
//!
//! - **Stage 1** reads the body 64 bytes a turn and turns each block into bit masks: its
//!   quotes, whitespace and backslashes. A prefix XOR of the quotes (shifted and XORed
//!   in doubling steps, its state carried from block to block) marks the bytes inside
//!   strings; a quote escaped by an odd run of backslashes does not count (simdjson's
//!   carry of backslash runs, skipped in blocks without a backslash). Its result is the
//!   block's *tokens*: every byte outside strings that is neither whitespace nor a
//!   quote, i.e. the structural bytes, the bytes of numbers and literals, and anything
//!   that has no business there. Rules that need no grammar are checked here on whole
//!   blocks: no control byte inside a string, every escape one of JSON's, and no string
//!   directly after another (a closing quote followed, past whitespace, by a quote).
//! - **Stage 2** walks the tokens with the grammar, a recursive descent that takes
//!   each token's position from the masks (`trailing_zeros`, then clear the lowest
//!   bit) and asks stage 1 for the next block only when the current one is spent, so no
//!   index of positions is kept. Strings make no tokens at all: between two tokens
//!   there is nothing but whitespace and at most one string, which is the first byte
//!   after the earlier token (a one-byte look in compact JSON), and stage 1 already
//!   checked its contents. A number or literal is read by its token and its other
//!   bytes' tokens dropped; what follows it must be the next token, past whitespace.
//!
//! Most of a page is string contents, which cost only stage 1's few vector operations
//! a byte; stage 2's work is per token, two or three for each member of a record.
//! UTF-8 is checked by `str::from_utf8` only when stage 1 saw a byte that is not ASCII.
//!
//! (sonic-rs, a vectorized parser, was measured for this and not taken: its fast
//! skipping of whole objects and arrays does not check them, and its checking path,
//! token by token, took as many instructions to find the list as the recursive descent
//! this scanner replaces took to check the whole page, and twice as many to walk the
//! records.)

#[cfg(test)]
mod reference;

use wide::{i8x16, u8x16};

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
    let tokens = stage_one(body)?;
    let mut scan = Scan::new(body, &tokens);
    let mut c = scan.start();
    let q = scan.token(&mut c);
    let (mut c, end, found) = scan.find(c, 0, q, path, 0)?;
    let next = scan.token(&mut c);
    scan.finish(end, next).then_some(found)
}

/// Whether `text` is one JSON document (for the tests).
#[cfg(test)]
pub(super) fn is_json(text: &str) -> bool {
    let Some(tokens) = stage_one(text.as_bytes()) else {
        return false;
    };
    let mut scan = Scan::new(text.as_bytes(), &tokens);
    let mut c = scan.start();
    let q = scan.token(&mut c);
    let Some((first, _, end, next)) = scan.value_at::<false>(scan.s, &mut c, 0, q, 0) else {
        return false;
    };
    // A string's end is where the next token is (checked by stage 1).
    let end = if first == b'"' { next } else { end };
    scan.finish(end, next)
}

/// The tokens not yet read: the set bits of the block of 64 bytes at `base`.
#[derive(Clone, Copy)]
struct Cursor {
    bits: u64,
    base: usize,
}

/// What stage 1 carries from one block to the next.
#[derive(Clone, Copy, Default)]
struct Carry {
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// 1 when the previous block's last byte was a backslash that escapes.
    escaped: u64,
    /// 1 when the first byte of this block that is not whitespace comes after a
    /// closing quote (with only whitespace between).
    after_close: u64,
    /// Whether some byte so far is not ASCII.
    not_ascii: bool,
}

impl Carry {
    /// The bytes of a block inside strings, opening quotes included, from its
    /// unescaped quotes: each bit XORed with all those below it, and with the state
    /// the block before ended in.
    #[inline(always)]
    fn strings(&mut self, quote: u64) -> u64 {
        let in_string = prefix_xor(quote) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        in_string
    }

    /// A block's tokens: the bytes outside strings that are neither whitespace nor
    /// quotes. `None` when a string follows a string with only whitespace between
    /// (a closing quote's next byte past whitespace is a quote): the grammar never
    /// allows that, and stage 2 relies on it to find at most one string between two
    /// tokens. The search past whitespace is an addition: the carry out of the bit
    /// after a closing quote runs through the whitespace after it.
    #[inline(always)]
    fn tokens(&mut self, quote: u64, ws: u64, in_string: u64) -> Option<u64> {
        let close = quote & !in_string;
        let (landed, over) = ws.overflowing_add((close << 1) | self.after_close);
        self.after_close = (close >> 63) | u64::from(over);
        (landed & !ws & quote == 0).then_some(!(ws | in_string | quote))
    }
}

/// Stage 2, the grammar over stage 1's tokens. Its methods take the cursor by value or
/// as a local, so that it stays in registers.
struct Scan<'a> {
    s: &'a [u8],
    /// Stage 1's tokens, one mask for each block of 64 bytes.
    tokens: &'a [u64],
    nulls: Vec<(usize, usize)>,
}

impl<'a> Scan<'a> {
    fn new(s: &'a [u8], tokens: &'a [u64]) -> Self {
        Self {
            s,
            tokens,
            nulls: Vec::new(),
        }
    }

    /// The cursor at the first block.
    fn start(&self) -> Cursor {
        Cursor {
            bits: self.tokens.first().copied().unwrap_or(0),
            base: 0,
        }
    }

    /// Whether the document ends well: only whitespace from `end` (after the top-level
    /// value) to `next` (the token after it, the body's length when there is none) and
    /// on to the end.
    fn finish(&self, end: usize, next: usize) -> bool {
        next == self.s.len()
            && self
                .s
                .get(end..)
                .is_some_and(|rest| rest.iter().all(|&b| is_ws(b)))
    }

    /// The next token's position; the body's length when there is none (which no
    /// grammar rule accepts but the end of the document).
    #[inline(always)]
    fn token(&self, c: &mut Cursor) -> usize {
        while c.bits == 0 {
            c.base += 64;
            match self.tokens.get(c.base / 64) {
                Some(&bits) => c.bits = bits,
                None => return self.s.len(),
            }
        }
        let at = c.base + c.bits.trailing_zeros() as usize;
        c.bits &= c.bits - 1;
        at
    }

    /// Drops the tokens before `end`: the rest of a number or literal just read.
    #[inline(always)]
    fn skip_to(&self, c: &mut Cursor, end: usize) {
        while end - c.base >= 64 {
            c.base += 64;
            c.bits = self.tokens.get(c.base / 64).copied().unwrap_or(0);
        }
        c.bits &= u64::MAX << (end - c.base);
    }

    /// What lies between a token and the next one, `from` (just after the first) to
    /// `q`: `Some(None)` for whitespace only, `Some(Some(at))` for one string at `at`
    /// (stage 1 allows no second one).
    #[inline(always)]
    fn gap(s: &[u8], from: usize, q: usize) -> Option<Option<usize>> {
        if from == q {
            return Some(None);
        }
        match *s.get(from)? {
            b'"' => Some(Some(from)),
            _ => Self::gap_after_ws(s, from, q),
        }
    }

    #[inline(never)]
    fn gap_after_ws(s: &[u8], mut at: usize, q: usize) -> Option<Option<usize>> {
        while at < q {
            match *s.get(at)? {
                b'"' => return Some(Some(at)),
                b => {
                    if !is_ws(b) {
                        return None;
                    }
                }
            }
            at += 1;
        }
        Some(None)
    }

    /// Whether only whitespace stands from `from` to `to`.
    #[inline(always)]
    fn blank(s: &[u8], from: usize, to: usize) -> bool {
        from == to || Self::blank_after(s, from, to)
    }

    #[inline(never)]
    fn blank_after(s: &[u8], from: usize, to: usize) -> bool {
        s.get(from..to)
            .is_some_and(|gap| gap.iter().all(|&b| is_ws(b)))
    }

    /// The end of a string value followed by the token at `q`: after its closing quote,
    /// the last byte before `q` that is not whitespace.
    fn string_end(s: &[u8], mut q: usize) -> usize {
        while q > 0 && s.get(q - 1).is_some_and(|&b| is_ws(b)) {
            q -= 1;
        }
        q
    }

    /// A value after a token, `from` just after it, whose next token is at `q`: its
    /// first byte, its start and end (for a string, the next token's position) and the
    /// token after it.
    #[inline(always)]
    fn value_at<const RECORD: bool>(
        &mut self,
        s: &'a [u8],
        c: &mut Cursor,
        from: usize,
        q: usize,
        depth: usize,
    ) -> Option<(u8, usize, usize, usize)> {
        if let Some(at) = Self::gap(s, from, q)? {
            return Some((b'"', at, q, q));
        }
        let b = *s.get(q)?;
        let end = match b {
            b'{' => {
                let (after, end) = self.object::<RECORD>(*c, q, depth)?;
                *c = after;
                end
            }
            b'[' => {
                let (after, end) = self.array::<RECORD>(*c, q, depth)?;
                *c = after;
                end
            }
            b't' => self.literal(c, q, b"true")?,
            b'f' => self.literal(c, q, b"false")?,
            b'n' => self.literal(c, q, b"null")?,
            b'-' | b'0'..=b'9' => {
                let end = Self::number(s, q)?;
                self.skip_to(c, end);
                end
            }
            _ => return None,
        };
        let next = self.token(c);
        Self::blank(s, end, next).then_some((b, q, end, next))
    }

    #[inline(always)]
    fn literal(&mut self, c: &mut Cursor, at: usize, word: &[u8]) -> Option<usize> {
        let s = self.s;
        let end = at + word.len();
        if s.get(at..end)? != word {
            return None;
        }
        self.skip_to(c, end);
        Some(end)
    }

    #[inline(always)]
    fn digits(s: &[u8], mut at: usize) -> usize {
        while let Some(b'0'..=b'9') = s.get(at) {
            at += 1;
        }
        at
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    #[inline(always)]
    fn number(s: &[u8], mut at: usize) -> Option<usize> {
        if s.get(at) == Some(&b'-') {
            at += 1;
        }
        match *s.get(at)? {
            b'0' => {
                at += 1;
                if let Some(b'0'..=b'9') = s.get(at) {
                    return None;
                }
            }
            b'1'..=b'9' => at = Self::digits(s, at + 1),
            _ => return None,
        }
        if s.get(at) == Some(&b'.') {
            let end = Self::digits(s, at + 1);
            if end == at + 1 {
                return None;
            }
            at = end;
        }
        if let Some(b'e' | b'E') = s.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = s.get(at) {
                at += 1;
            }
            let end = Self::digits(s, at);
            if end == at {
                return None;
            }
            at = end;
        }
        Some(at)
    }

    /// An array from its `[` at `at`, every element checked and skipped; the cursor
    /// and the position after its `]`. Containers are read out of line, so that the
    /// scalars that make up most of a document are read inline.
    #[inline(never)]
    fn array<const RECORD: bool>(
        &mut self,
        c: Cursor,
        at: usize,
        depth: usize,
    ) -> Option<(Cursor, usize)> {
        self.elements::<RECORD>(c, at, depth, |_, _, _, _| {})
    }

    /// The elements of an array from its `[` at `at`, calling `each` with every
    /// element's first byte, start, end (for a string, the next token's position) and
    /// the next token's position.
    #[inline(always)]
    fn elements<const RECORD: bool>(
        &mut self,
        mut c: Cursor,
        at: usize,
        depth: usize,
        mut each: impl FnMut(&mut Self, u8, usize, usize),
    ) -> Option<(Cursor, usize)> {
        let s = self.s;
        if depth >= MAX_DEPTH {
            return None;
        }
        let mut from = at + 1;
        let mut q = self.token(&mut c);
        if Self::gap(s, from, q)?.is_none() && s.get(q) == Some(&b']') {
            return Some((c, q + 1));
        }
        loop {
            let (first, start, end, next) =
                self.value_at::<RECORD>(s, &mut c, from, q, depth + 1)?;
            each(self, first, start, end);
            match *s.get(next)? {
                b',' => {
                    from = next + 1;
                    q = self.token(&mut c);
                }
                b']' => return Some((c, next + 1)),
                _ => return None,
            }
        }
    }

    /// An object from its `{` at `at`, every member checked and skipped; the cursor
    /// and the position after its `}`. Inside a record, notes the range that drops each
    /// member whose value is `null`: with the comma before it when an earlier member
    /// stays, else with the comma after it, if any.
    #[inline(never)]
    fn object<const RECORD: bool>(
        &mut self,
        mut c: Cursor,
        at: usize,
        depth: usize,
    ) -> Option<(Cursor, usize)> {
        let s = self.s;
        if depth >= MAX_DEPTH {
            return None;
        }
        let mut colon = self.token(&mut c);
        let mut key = match Self::gap(s, at + 1, colon)? {
            Some(key) => key,
            None => return (s.get(colon) == Some(&b'}')).then_some((c, colon + 1)),
        };
        // The comma before the member being read; set whenever `kept` is.
        let mut comma_before = 0;
        let mut kept = false;
        loop {
            let next = if pair(s, colon) == Some(*b":\"") {
                // A string value, the colon's next byte in compact JSON: no token.
                kept = true;
                self.token(&mut c)
            } else {
                if s.get(colon) != Some(&b':') {
                    return None;
                }
                let q = self.token(&mut c);
                let (first, _, value_end, next) =
                    self.value_at::<RECORD>(s, &mut c, colon + 1, q, depth + 1)?;
                if RECORD {
                    if first == b'n' {
                        let cut = if kept {
                            (comma_before, value_end)
                        } else if s.get(next) == Some(&b',') {
                            (key, next + 1)
                        } else {
                            (key, value_end)
                        };
                        self.nulls.push(cut);
                    } else {
                        kept = true;
                    }
                }
                next
            };
            if pair(s, next) == Some(*b",\"") {
                comma_before = next;
                key = next + 1;
                colon = self.token(&mut c);
                continue;
            }
            match *s.get(next)? {
                b',' => {
                    comma_before = next;
                    colon = self.token(&mut c);
                    key = Self::gap(s, next + 1, colon)??;
                }
                b'}' => return Some((c, next + 1)),
                _ => return None,
            }
        }
    }

    /// The list value after a token (`from` just after it) whose next token is at `q`:
    /// an array's records, or `null` for none; the cursor and the list's end.
    fn list(
        &mut self,
        c: Cursor,
        from: usize,
        q: usize,
        depth: usize,
    ) -> Option<(Cursor, usize, Found)> {
        let s = self.s;
        if Self::gap(s, from, q)?.is_some() {
            return None;
        }
        let mut c = c;
        let mut records = Vec::new();
        let end = match *s.get(q)? {
            b'[' => {
                let mut first_null = 0;
                let (after, end) =
                    self.elements::<true>(c, q, depth, |scan, first, start, end| {
                        let end = if first == b'"' {
                            Self::string_end(scan.s, end)
                        } else {
                            end
                        };
                        let last = scan.nulls.len();
                        records.push(Record {
                            start,
                            end,
                            nulls: (first_null, last),
                        });
                        first_null = last;
                    })?;
                c = after;
                end
            }
            b'n' => self.literal(&mut c, q, b"null")?,
            _ => return None,
        };
        let found = Found {
            list: (q, end),
            records,
            nulls: std::mem::take(&mut self.nulls),
        };
        Some((c, end, found))
    }

    /// Finds the list at `path` in the value after a token (`from` just after it) whose
    /// next token is at `q`, checking every member on the way; the cursor and the
    /// position after the value that holds it.
    fn find(
        &mut self,
        c: Cursor,
        from: usize,
        q: usize,
        path: &[&str],
        depth: usize,
    ) -> Option<(Cursor, usize, Found)> {
        let s = self.s;
        let Some((name, deeper)) = path.split_first() else {
            return self.list(c, from, q, depth);
        };
        if Self::gap(s, from, q)?.is_some() || *s.get(q)? != b'{' || depth >= MAX_DEPTH {
            return None;
        }
        let mut c = c;
        let mut colon = self.token(&mut c);
        let mut key = Self::gap(s, q + 1, colon)??;
        let mut found = None;
        loop {
            if *s.get(colon)? != b':' {
                return None;
            }
            let quoted = s.get(key..Self::string_end(s, colon))?;
            let q = self.token(&mut c);
            let next = if found.is_none() && key_is(quoted, name) {
                let (after, end, list) = self.find(c, colon + 1, q, deeper, depth + 1)?;
                c = after;
                found = Some(list);
                let next = self.token(&mut c);
                if !Self::blank(s, end, next) {
                    return None;
                }
                next
            } else {
                self.value_at::<false>(s, &mut c, colon + 1, q, depth + 1)?
                    .3
            };
            match *s.get(next)? {
                b',' => {
                    colon = self.token(&mut c);
                    key = Self::gap(s, next + 1, colon)??;
                }
                b'}' => return Some((c, next + 1, found?)),
                _ => return None,
            }
        }
    }
}

/// Stage 1: the tokens of each block of 64 bytes of `body`, after checking what can be
/// checked without the grammar (no control byte in a string, JSON's escapes, no string
/// right after another, no string left open, UTF-8); `None` when that finds the body is
/// not JSON. One tight loop, its carry in registers.
fn stage_one(body: &[u8]) -> Option<Vec<u64>> {
    let (blocks, rest) = body.as_chunks::<64>();
    let mut tokens = vec![0; blocks.len() + usize::from(!rest.is_empty())];
    let mut carry = Carry::default();
    for ((at, block), out) in blocks.iter().enumerate().zip(&mut tokens) {
        *out = carry.marks(body, block, at * 64)?;
    }
    if let Some(last) = tokens.get_mut(blocks.len()) {
        // The last, short block, padded with spaces (which make no token).
        let mut padded = [b' '; 64];
        padded.get_mut(..rest.len())?.copy_from_slice(rest);
        *last = carry.marks(body, &padded, blocks.len() * 64)?;
    }
    if carry.in_string != 0 || carry.not_ascii && std::str::from_utf8(body).is_err() {
        return None;
    }
    Some(tokens)
}

impl Carry {
    /// A block's tokens. Most blocks are printable ASCII without a backslash and not
    /// escaped by the block before: whitespace is then the spaces, and only quotes
    /// make strings; any other goes to [`Carry::rare_marks`].
    #[inline(always)]
    fn marks(&mut self, body: &[u8], block: &[u8; 64], base: usize) -> Option<u64> {
        let v = vectors(block);
        let quote = bits(&v, |x| x.simd_eq(u8x16::splat(b'"')));
        // A backslash, a control byte or a byte that is not ASCII (negative as `i8`).
        let rare = |x: u8x16| {
            x.simd_eq(u8x16::splat(b'\\'))
                | x.cast_signed().simd_lt(i8x16::splat(0x20)).cast_unsigned()
        };
        if ((rare(v[0]) | rare(v[1])) | (rare(v[2]) | rare(v[3]))).to_bitmask() != 0
            || self.escaped != 0
        {
            let (carry, tokens) = Self::rare_marks(*self, body, block, base, quote)?;
            *self = carry;
            return Some(tokens);
        }
        let ws = bits(&v, |x| x.simd_eq(u8x16::splat(b' ')));
        let in_string = self.strings(quote);
        self.tokens(quote, ws, in_string)
    }

    /// Any other block: escapes, control bytes, whitespace of all four kinds, bytes
    /// that are not ASCII. The carry goes in and out by value, so that the common
    /// loop keeps it in registers.
    #[inline(never)]
    fn rare_marks(
        mut self,
        body: &[u8],
        block: &[u8; 64],
        base: usize,
        quote: u64,
    ) -> Option<(Self, u64)> {
        let v = vectors(block);
        let high = (v[0] | v[1]) | (v[2] | v[3]);
        self.not_ascii |= high.to_bitmask() != 0;
        let ws = bits(&v, |x| {
            (x.simd_eq(u8x16::splat(b' ')) | x.simd_eq(u8x16::splat(b'\t')))
                | (x.simd_eq(u8x16::splat(b'\n')) | x.simd_eq(u8x16::splat(b'\r')))
        });
        let controls = bits(&v, |x| x.min(u8x16::splat(0x1f)).simd_eq(x));
        let backslash = bits(&v, |x| x.simd_eq(u8x16::splat(b'\\')));
        let escaped = escaped_bytes(backslash, &mut self.escaped);
        let quote = quote & !escaped;
        let in_string = self.strings(quote);
        if controls & in_string != 0 {
            return None;
        }
        let tokens = self.tokens(quote, ws, in_string)?;
        let escapes = escaped & in_string;
        (escapes == 0 || escapes_are_json(body, base, escapes)).then_some((self, tokens))
    }
}

/// Whether each escaped byte of the block at `base` (the bits of `escaped`) is one of
/// JSON's escapes: `\u` with four hex digits, or one of `"\/bfnrt`.
fn escapes_are_json(body: &[u8], base: usize, mut escaped: u64) -> bool {
    while escaped != 0 {
        let at = base + escaped.trailing_zeros() as usize;
        escaped &= escaped - 1;
        match body.get(at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
            Some(b'u') => {
                let Some(hex) = body.get(at + 1..at + 5) else {
                    return false;
                };
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// The two bytes at `at`, if there are two.
#[inline(always)]
fn pair(s: &[u8], at: usize) -> Option<[u8; 2]> {
    s.get(at..).and_then(<[u8]>::first_chunk::<2>).copied()
}

/// A block's four vectors.
#[inline(always)]
fn vectors(block: &[u8; 64]) -> [u8x16; 4] {
    let (lanes, _) = block.as_chunks::<16>();
    [0, 1, 2, 3].map(|i| u8x16::new(lanes.get(i).copied().unwrap_or_default()))
}

/// The bit mask of the lanes of a block's four vectors for which `test` is true.
#[inline(always)]
fn bits(v: &[u8x16; 4], test: impl Fn(u8x16) -> u8x16) -> u64 {
    let m = |x: u8x16| u64::from(test(x).to_bitmask());
    (m(v[0]) | m(v[1]) << 16) | (m(v[2]) | m(v[3]) << 16) << 32
}

/// Each bit of `x` XORed with all those below it: set inside strings (their opening
/// quote included, the closing one not) when `x` holds a block's quotes.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The bytes a backslash escapes in a block whose backslashes are `backslash`: the
/// byte after each odd-numbered backslash of a run (simdjson's subtraction that tells
/// runs starting on odd bytes from those starting on even ones). `carry` is 1 when the
/// previous block's last backslash escapes this block's first byte, and is updated.
#[inline(never)]
fn escaped_bytes(backslash: u64, carry: &mut u64) -> u64 {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    let potential = backslash & !*carry;
    let maybe_escaped = potential << 1;
    let codes = ((maybe_escaped | ODD_BITS).wrapping_sub(potential)) ^ ODD_BITS;
    let escaped = codes ^ (backslash | *carry);
    *carry = (codes & backslash) >> 63;
    escaped
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
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

    /// The bytes inside strings (opening quote included) as stage 1 marks them, block
    /// by block, and as a byte-at-a-time reading marks them.
    fn strings_by_blocks(body: &[u8]) -> Vec<bool> {
        let mut carry = (0u64, 0u64);
        let mut inside = Vec::new();
        for block in body.chunks(64) {
            let mark = |c: u8| {
                block
                    .iter()
                    .enumerate()
                    .filter(|&(_, &b)| b == c)
                    .fold(0u64, |m, (i, _)| m | 1 << i)
            };
            let escaped = escaped_bytes(mark(b'\\'), &mut carry.1);
            let in_string = prefix_xor(mark(b'"') & !escaped) ^ carry.0;
            carry.0 = ((in_string as i64) >> 63) as u64;
            inside.extend((0..block.len()).map(|i| in_string >> i & 1 == 1));
        }
        inside
    }

    /// The same, a byte at a time. A backslash escapes the next byte outside strings
    /// as well (such a body is refused by stage 2 anyway).
    fn strings_byte_by_byte(body: &[u8]) -> Vec<bool> {
        let (mut inside, mut escape) = (false, false);
        body.iter()
            .map(|&b| {
                if escape {
                    escape = false;
                } else if b == b'\\' {
                    escape = true;
                } else if b == b'"' {
                    inside = !inside;
                }
                inside
            })
            .collect()
    }

    #[test]
    fn runs_of_backslashes_escape_across_blocks() {
        // Runs of every length ending at every place around a block's end.
        for len in 1..6 {
            for at in 55..70 {
                let mut body = vec![b'a'; 140];
                body[0] = b'"';
                for b in &mut body[at..at + len] {
                    *b = b'\\';
                }
                body[at + len] = b'"';
                body[at + len + 2] = b'"';
                assert_eq!(
                    strings_by_blocks(&body),
                    strings_byte_by_byte(&body),
                    "{len} backslashes at {at}"
                );
            }
        }
    }

    #[test]
    fn values_that_cross_a_block_are_read_whole() {
        // Each value starts at every place around the first block's end.
        for value in [
            "12345",
            "-1.5e+30",
            "true",
            "false",
            "null",
            "\"ab\\\"\\\\c\"",
            "\"\\u00e9x\"",
            "{\"k\":null,\"l\":[1,\"m\"]}",
            "1x",
            "nul",
            "\"a\\q\"",
            "\"a\" \"b\"",
        ] {
            for pad in 40..70 {
                for ws in ["", " ", "\n  "] {
                    let text = format!(
                        "{{\"records\":[{}{ws}{value}{ws},{ws}{value}{ws}]}}",
                        "1,".repeat(pad / 2) + &" ".repeat(pad % 2),
                    );
                    let serde = serde_json::from_str::<Value>(&text).is_ok();
                    let found = find_list(text.as_bytes(), &["records"]);
                    assert_eq!(found.is_some(), serde, "{text}");
                    assert_eq!(
                        found,
                        reference::find_list_as_before(text.as_bytes(), &["records"]),
                        "{text}"
                    );
                    assert_eq!(is_json(value), serde_accepts(value), "{value}");
                }
            }
        }
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

        /// Bodies of records, compact or pretty, damaged or not: the same `Found` as the
        /// recursive descent this scanner replaced, every range of it.
        #[test]
        fn the_scan_finds_what_the_reference_scan_finds(
            records in prop::collection::vec(arbitrary_json(), 0..6),
            pretty in any::<bool>(),
            cuts in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![
                &b""[..], b"\"", b"\\", b",", b":", b"[", b"]", b"{", b"}", b"null", b"1", b" ",
                b"\n", b"\x01", b"\xff", b"\\u",
            ])), 0..3),
        ) {
            let body = json!({"meta": {"next": "x"}, "data": records});
            let mut bytes = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }.unwrap();
            for (at, with) in cuts {
                let i = at.index(bytes.len() + 1);
                let end = if with.is_empty() { (i + 1).min(bytes.len()) } else { i };
                bytes.splice(i..end, with.iter().copied());
            }
            prop_assert_eq!(
                find_list(&bytes, &["data"]),
                reference::find_list_as_before(&bytes, &["data"]),
                "{}", String::from_utf8_lossy(&bytes)
            );
        }

        #[test]
        fn strings_are_marked_as_a_byte_at_a_time_reading_marks_them(
            body in prop::collection::vec(prop::sample::select(vec![b'"', b'\\', b'a']), 0..300),
        ) {
            prop_assert_eq!(strings_by_blocks(&body), strings_byte_by_byte(&body));
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
