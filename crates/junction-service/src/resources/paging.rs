//! Paging over every vendor style behind one cursor.
//!
//! The caller walks with `nextPage`; the token is the vendor's position (an offset, a
//! page number, a cursor or the next page's URL) plus how many records of the page at
//! that position were already returned, so a vendor page larger than the caller's
//! `pageSize` (Salesforce sends at least 200) is handed out in pieces without a gap or a
//! repeat. Tokens are sealed with the keyring (AES-GCM) and bound, as associated data,
//! to the instance, the resource and the query, so a caller can neither read, forge nor
//! move one to another instance or query.

use super::request::{HubQuery, VendorRequest, lookup};
use crate::ServiceError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use junction_core::hub::{PageSizeIn, Paging, PagingStyle};
use junction_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// Records per page for a resource whose vendor does not page, when the caller pages.
pub(super) const UNPAGED_PAGE_SIZE: usize = 200;
/// The largest `pageSize` of a resource whose vendor does not page.
const UNPAGED_MAX: usize = 1000;

/// Where the vendor's next page is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Vendor {
    Start,
    Offset(u64),
    Page(u64),
    Cursor(String),
    Url(String),
}

/// A point in the walk: the vendor page, and how many of its records were handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Position {
    #[serde(rename = "v")]
    pub vendor: Vendor,
    #[serde(rename = "s")]
    pub skip: usize,
}

impl Position {
    pub(super) fn start() -> Self {
        Self {
            vendor: Vendor::Start,
            skip: 0,
        }
    }
}

/// What the caller asked for, read once per hub call.
#[derive(Debug)]
pub(super) struct Plan<'a> {
    pub paging: Option<&'a Paging>,
    /// Records per hub page; `None` returns a vendor's unpaged list whole.
    pub size: Option<usize>,
    pub position: Position,
}

fn invalid_token() -> ServiceError {
    ServiceError::bad_request(
        "invalid_page_token",
        "nextPage is not a page token Junction issued for this instance, resource and query; \
         start again without it",
    )
}

fn positive(query: &HubQuery, name: &str) -> Result<Option<usize>, ServiceError> {
    query
        .get(name)
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ServiceError::bad_request(
                        "invalid_parameter",
                        format!("'{name}' must be a whole number above 0, got '{v}'"),
                    )
                })
        })
        .transpose()
}

/// How long a page token opens after it was issued. A walk is a run of calls, not a
/// bookmark; a bound keeps an old position (and a vendor URL in it) from being replayed
/// long after the instance changed.
pub(super) const TOKEN_MAX_AGE_MS: i64 = 24 * 60 * 60 * 1000;

/// A position as sealed: its members, and when it was issued. Written out rather than
/// as a flattened [`Position`], which serde reads through a buffer of every member: the
/// same JSON (`{"v":…,"s":…,"t":…}`) at a fraction of the cost.
#[derive(Serialize)]
struct Sealing<'a> {
    v: &'a Vendor,
    s: usize,
    t: i64,
}

/// [`Sealing`] as opened.
#[derive(Deserialize)]
struct Sealed {
    v: Vendor,
    s: usize,
    t: i64,
}

/// Whether a token issued at `issued_ms` still opens at `now_ms`; a little clock skew
/// between replicas is allowed.
fn fresh(issued_ms: i64, now_ms: i64) -> bool {
    const SKEW_MS: i64 = 60 * 1000;
    issued_ms <= now_ms.saturating_add(SKEW_MS)
        && now_ms.saturating_sub(issued_ms) <= TOKEN_MAX_AGE_MS
}

/// Seals and opens page tokens for one hub call's context.
pub(super) struct Tokens<'a> {
    pub store: &'a Store,
    /// Everything a token is bound to, serialized.
    pub context: Vec<u8>,
}

impl Tokens<'_> {
    pub(super) fn seal(&self, position: &Position) -> Result<String, ServiceError> {
        let sealing = Sealing {
            v: &position.vendor,
            s: position.skip,
            t: crate::now_ms(),
        };
        let plain = serde_json::to_vec(&sealing)
            .map_err(|e| ServiceError::Internal(format!("page token: {e}")))?;
        let sealed = self.store.seal_opaque(&self.context, &plain)?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    fn open(&self, token: &str) -> Result<Position, ServiceError> {
        let blob = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid_token())?;
        let plain = self
            .store
            .open_opaque(&self.context, &blob)
            .ok_or_else(invalid_token)?;
        let sealed: Sealed = serde_json::from_slice(&plain).map_err(|_| invalid_token())?;
        if !fresh(sealed.t, crate::now_ms()) {
            return Err(invalid_token());
        }
        Ok(Position {
            vendor: sealed.v,
            skip: sealed.s,
        })
    }
}

impl<'a> Plan<'a> {
    /// Reads `pageSize`, `page` and `nextPage`. `page` needs a vendor that addresses
    /// pages; the others are walked with `nextPage` only.
    pub(super) fn read(
        paging: Option<&'a Paging>,
        query: &HubQuery,
        tokens: &Tokens<'_>,
    ) -> Result<Self, ServiceError> {
        let asked = positive(query, "pageSize")?;
        let page = positive(query, "page")?;
        let token = query.get("nextPage").filter(|t| !t.is_empty());
        let size = match paging {
            Some(p) => Some(
                asked
                    .unwrap_or(p.page_size.default as usize)
                    .min(p.page_size.max as usize)
                    .max(p.page_size.min.unwrap_or(0) as usize),
            ),
            None if asked.is_some() || page.is_some() || token.is_some() => {
                Some(asked.unwrap_or(UNPAGED_PAGE_SIZE).min(UNPAGED_MAX))
            }
            None => None,
        };
        let position = match (token, page) {
            (Some(token), _) => tokens.open(token)?,
            (None, None) | (None, Some(1)) => Position::start(),
            (None, Some(n)) => {
                let too_far = || {
                    ServiceError::bad_request(
                        "invalid_parameter",
                        format!("'page' {n} is beyond the last page anyone can address"),
                    )
                };
                let n = n as u64;
                let before = (n - 1)
                    .checked_mul(size.unwrap_or(UNPAGED_PAGE_SIZE) as u64)
                    .ok_or_else(too_far)?;
                match paging {
                    None => Position {
                        vendor: Vendor::Start,
                        skip: usize::try_from(before).map_err(|_| too_far())?,
                    },
                    Some(p) if p.style == PagingStyle::Offset => Position {
                        vendor: Vendor::Offset(before),
                        skip: 0,
                    },
                    Some(p) if p.style == PagingStyle::Page => Position {
                        vendor: Vendor::Page(p.first_page.checked_add(n - 1).ok_or_else(too_far)?),
                        skip: 0,
                    },
                    Some(_) => {
                        return Err(ServiceError::bad_request(
                            "invalid_parameter",
                            "this resource's vendor pages by cursor: walk it with nextPage \
                             (from the Elements-Next-Page-Token header), not page",
                        ));
                    }
                }
            }
        };
        Ok(Self {
            paging,
            size,
            position,
        })
    }

    /// The page size sent to the vendor.
    fn vendor_size(&self) -> Option<u32> {
        let paging = self.paging?;
        let size = self.size.unwrap_or(paging.page_size.default as usize);
        Some(u32::try_from(size).unwrap_or(paging.page_size.max))
    }

    /// Points the vendor call at `position`. Returns the URL to call instead of the
    /// resource's own when the vendor named the next page by URL.
    pub(super) fn apply(
        &self,
        position: &Position,
        vendor: &mut VendorRequest,
    ) -> Result<Option<String>, ServiceError> {
        let Some(paging) = self.paging else {
            return Ok(None);
        };
        if let Some(size) = self.vendor_size() {
            let value = match &paging.page_size.template {
                Some(template) => fill(template, "{pageSize}", itoa::Buffer::new().format(size)),
                None => size.to_string(),
            };
            match paging.page_size.location {
                PageSizeIn::Query => vendor.set_query(&paging.page_size.name, value),
                PageSizeIn::Header => vendor.set_header(&paging.page_size.name, &value)?,
            }
        }
        let param = paging.param.as_deref();
        match (&position.vendor, param) {
            (Vendor::Start, Some(param)) => match paging.style {
                PagingStyle::Offset => vendor.set_query(param, "0".to_owned()),
                PagingStyle::Page => vendor.set_query(param, paging.first_page.to_string()),
                _ => {}
            },
            (Vendor::Offset(n) | Vendor::Page(n), Some(param)) => {
                vendor.set_query(param, n.to_string());
            }
            (Vendor::Cursor(c), Some(param)) => vendor.set_query(param, c.clone()),
            (Vendor::Url(url), _) => return Ok(Some(url.clone())),
            _ => {}
        }
        Ok(None)
    }

    /// The vendor's next page after the one at `current`, or `None` at the end.
    /// `base` is the instance's `base.url`: a next-page URL must stay on its origin, so a
    /// vendor answer cannot send the instance's credential elsewhere.
    pub(super) fn next(
        &self,
        current: &Vendor,
        answer: &Value,
        headers: &HeaderMap,
        count: usize,
        base: &Base,
    ) -> Result<Option<Vendor>, ServiceError> {
        let Some(paging) = self.paging else {
            return Ok(None);
        };
        if let Some(more) = &paging.more {
            let (negated, path) = match more.strip_prefix('!') {
                Some(path) => (true, path),
                None => (false, more.as_str()),
            };
            let flag = lookup(answer, path).and_then(Value::as_bool);
            if flag.is_some_and(|f| f == negated) {
                return Ok(None);
            }
        }
        let full = self
            .vendor_size()
            .is_some_and(|size| count >= size as usize);
        let next = match paging.style {
            PagingStyle::Offset | PagingStyle::Page if count == 0 => None,
            PagingStyle::Offset | PagingStyle::Page if !full && paging.more.is_none() => None,
            PagingStyle::Offset => {
                let at = match current {
                    Vendor::Offset(n) => *n,
                    _ => 0,
                };
                // At the end of the numbers there is no next page to name.
                at.checked_add(count as u64).map(Vendor::Offset)
            }
            PagingStyle::Page => {
                let at = match current {
                    Vendor::Page(n) => *n,
                    _ => paging.first_page,
                };
                at.checked_add(1).map(Vendor::Page)
            }
            PagingStyle::Cursor => {
                let cursor = match &paging.next_header {
                    Some(name) => headers
                        .get(name.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    None => paging
                        .next
                        .as_deref()
                        .and_then(|p| lookup(answer, p))
                        .and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        }),
                };
                cursor
                    .filter(|c| !c.is_empty() && count > 0)
                    .map(Vendor::Cursor)
            }
            PagingStyle::NextUrl => paging
                .next
                .as_deref()
                .and_then(|p| lookup(answer, p))
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(|u| next_address(base, u))
                .transpose()?
                .map(Vendor::Url),
            PagingStyle::LinkHeader => link_next(headers)
                .map(|u| same_origin(base, &u))
                .transpose()?
                .map(|u| Vendor::Url(u.into())),
        };
        Ok(next)
    }
}

/// The instance's `base.url` as one hub call reads it: parsed once, with the directory
/// a relative next-page address resolves against.
pub(super) struct Base {
    pub url: Url,
    /// `url` with a `/` after its path, when its path has none.
    directory: Option<Url>,
}

impl Base {
    pub(super) fn new(url: Url) -> Self {
        let directory = (!url.path().ends_with('/')).then(|| {
            let mut directory = url.clone();
            let path = format!("{}/", url.path());
            directory.set_path(&path);
            directory
        });
        Self { url, directory }
    }
}

/// `template` with every `placeholder` (which starts with `{`) replaced by `value`, as
/// `str::replace` would: found from each `{` by a byte search rather than by a
/// substring searcher set up for every call.
fn fill(template: &str, placeholder: &str, value: &str) -> String {
    let mut out = String::with_capacity(template.len() + value.len());
    let mut rest = template;
    while let Some(at) = memchr::memchr(b'{', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        if rest[at..].starts_with(placeholder) {
            out.push_str(value);
            rest = &rest[at + placeholder.len()..];
        } else {
            out.push('{');
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// A next-page address, checked to be on the instance's origin.
pub(super) enum NextPage<'t> {
    Parsed(Url),
    /// A URL as Junction writes one (see [`recheck`]), read without parsing it again.
    Plain {
        path: &'t str,
        query: Option<&'t str>,
    },
}

impl NextPage<'_> {
    pub(super) fn path(&self) -> &str {
        match self {
            Self::Parsed(url) => url.path(),
            Self::Plain { path, .. } => path,
        }
    }

    pub(super) fn query(&self) -> Option<&str> {
        match self {
            Self::Parsed(url) => url.query(),
            Self::Plain { query, .. } => *query,
        }
    }

    /// The origin to send the page to, as a URL with the path `/`: the base's, whose
    /// scheme, host and port a plain address shares to the byte.
    pub(super) fn origin(&self, base: &Url) -> Url {
        let mut origin = match self {
            Self::Parsed(url) => url.clone(),
            Self::Plain { .. } => base.clone(),
        };
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        origin
    }
}

/// A next-page URL taken from a token, checked again when used: the instance's
/// `base.url` may have moved since the token was issued.
///
/// The token holds the URL as Junction serialized it. When it starts with the base's
/// scheme, host and port followed by `/`, and the rest holds only bytes the URL parser
/// keeps as they are (no `%`, no `\`, no dot segment, no fragment), parsing it would
/// give back the same text on the same origin: its path and query are read off it. Any
/// other address is parsed and checked as before.
pub(super) fn recheck<'t>(base: &Base, next: &'t str) -> Result<NextPage<'t>, ServiceError> {
    if let Some(plain) = plain_on_origin(&base.url, next) {
        return Ok(plain);
    }
    same_origin(base, next)
        .map(NextPage::Parsed)
        .map_err(|_| invalid_token())
}

fn plain_on_origin<'t>(base: &Url, next: &'t str) -> Option<NextPage<'t>> {
    if !matches!(base.scheme(), "http" | "https") {
        return None;
    }
    let rest = next.strip_prefix(&base[..url::Position::BeforePath])?;
    if !is_plain_path(rest) {
        return None;
    }
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    Some(NextPage::Plain { path, query })
}

/// Whether `rest` is a path (and query) from the root that the URL parser keeps as it
/// is: a `/` first, not `//`, no dot segment, and only bytes it never escapes, folds
/// or drops.
fn is_plain_path(rest: &str) -> bool {
    let kept = |b: &u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-' | b'_' | b'~' | b'.' | b'?' | b'=' | b'&' | b',' | b':' | b'@'
            )
    };
    let bytes = rest.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && bytes.iter().all(kept)
        && !bytes.windows(2).any(|w| w == b"/.")
}

/// The next page's address as a token keeps it: `next` resolved against `base` and
/// refused off its origin (see [`same_origin`]). A plain address from the root, as
/// Salesforce's `nextRecordsUrl`, resolves to the base's scheme, host and port followed
/// by it, written without parsing.
fn next_address(base: &Base, next: &str) -> Result<String, ServiceError> {
    if matches!(base.url.scheme(), "http" | "https") && is_plain_path(next) {
        let origin = &base.url[..url::Position::BeforePath];
        let mut address = String::with_capacity(origin.len() + next.len());
        address.push_str(origin);
        address.push_str(next);
        return Ok(address);
    }
    same_origin(base, next).map(String::from)
}

/// `next` resolved against `base` (absolute, root-relative as Salesforce's
/// `nextRecordsUrl`, or relative to the base path), refused unless on `base`'s origin.
fn same_origin(base: &Base, next: &str) -> Result<Url, ServiceError> {
    let url = base
        .directory
        .as_ref()
        .unwrap_or(&base.url)
        .join(next)
        .map_err(|_| {
            ServiceError::ProviderAnswer(format!("the next page's address '{next}' is not a URL"))
        })?;
    if !same_tuple_origin(&url, &base.url) {
        return Err(ServiceError::ProviderAnswer(
            "the next page is on another host than the instance's base.url".to_owned(),
        ));
    }
    Ok(url)
}

/// `url.origin() == base.origin()` for an http(s) `base`, without building either
/// origin (each a copy of the host). Any other scheme has an opaque origin, equal to
/// none.
fn same_tuple_origin(url: &Url, base: &Url) -> bool {
    matches!(base.scheme(), "http" | "https")
        && url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
}

/// The `rel="next"` target of RFC 8288 `Link` headers.
fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        let mut rest = value;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = &after[..close];
            let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(target.to_owned());
            }
            rest = &after[params_end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_is_filled_as_replace_fills_it() {
        for template in [
            "batchSize={pageSize}",
            "{pageSize}",
            "{pageSize}{pageSize}",
            "{{pageSize}}",
            "{page{pageSize}",
            "{pageSiz",
            "none",
            "",
            "{",
            "caf\u{e9}{pageSize}\u{e9}",
        ] {
            assert_eq!(
                fill(template, "{pageSize}", "200"),
                template.replace("{pageSize}", "200"),
                "{template}"
            );
        }
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::LINK,
            http::HeaderValue::from_static(
                r#"<https://a.example/x?page=1>; rel="prev first", <https://a.example/x?page=3>; rel="next""#,
            ),
        );
        assert_eq!(link_next(&h).as_deref(), Some("https://a.example/x?page=3"));
        assert_eq!(link_next(&HeaderMap::new()), None);
    }

    /// How a position was sealed before [`Sealing`]: tokens issued then must open, and
    /// new ones must read the same.
    #[derive(Serialize, Deserialize)]
    struct Flattened {
        #[serde(flatten)]
        position: Position,
        #[serde(rename = "t")]
        issued_ms: i64,
    }

    #[test]
    fn a_sealed_position_is_the_json_it_always_was() {
        let positions = [
            Position::start(),
            Position {
                vendor: Vendor::Offset(400),
                skip: 7,
            },
            Position {
                vendor: Vendor::Page(3),
                skip: 0,
            },
            Position {
                vendor: Vendor::Cursor("c\"\u{e9}".to_owned()),
                skip: 1,
            },
            Position {
                vendor: Vendor::Url("https://sf.example/q/01g-200?x=1".to_owned()),
                skip: 199,
            },
        ];
        for position in positions {
            let old = serde_json::to_vec(&Flattened {
                position: position.clone(),
                issued_ms: -5,
            })
            .unwrap();
            let new = serde_json::to_vec(&Sealing {
                v: &position.vendor,
                s: position.skip,
                t: -5,
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(new).unwrap(),
                String::from_utf8(old.clone()).unwrap()
            );
            let opened: Sealed = serde_json::from_slice(&old).unwrap();
            assert_eq!(
                (opened.v, opened.s, opened.t),
                (position.vendor, position.skip, -5)
            );
        }
    }

    #[test]
    fn page_tokens_open_for_a_day_after_they_were_issued() {
        let issued = 1_700_000_000_000;
        assert!(fresh(issued, issued));
        assert!(fresh(issued, issued + TOKEN_MAX_AGE_MS));
        assert!(!fresh(issued, issued + TOKEN_MAX_AGE_MS + 1));
        assert!(!fresh(issued, i64::MIN));
        assert!(
            !fresh(issued + 2 * 60 * 1000, issued),
            "issued in the future"
        );
    }

    #[test]
    fn a_next_page_url_stays_on_the_base_origin() {
        for raw in [
            "https://sf.example/services/data/v58.0",
            "https://sf.example/services/data/v58.0/",
        ] {
            let base = Base::new(Url::parse(raw).unwrap());
            assert_eq!(
                same_origin(&base, "/services/data/v58.0/query/01g-200")
                    .unwrap()
                    .as_str(),
                "https://sf.example/services/data/v58.0/query/01g-200"
            );
            assert_eq!(
                same_origin(&base, "query/2").unwrap().as_str(),
                "https://sf.example/services/data/v58.0/query/2"
            );
            assert_eq!(
                same_origin(&base, "https://SF.example:443/x")
                    .unwrap()
                    .as_str(),
                "https://sf.example/x"
            );
            for elsewhere in [
                "https://evil.example/x",
                "//evil.example/x",
                "http://sf.example/x",
                "https://sf.example:8443/x",
                "https://a@sf.example.evil.example/x",
                "file:///etc/passwd",
                "data:text/plain,x",
            ] {
                assert!(same_origin(&base, elsewhere).is_err(), "{elsewhere}");
            }
        }
    }

    #[test]
    fn a_plain_next_address_reads_as_its_parse_would() {
        let bases = [
            "http://127.0.0.1:8080",
            "https://sf.example/services/data/v59.0",
            "https://u:p@sf.example/a/",
        ];
        let tails = [
            "/",
            "/x",
            "/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
            "/a?b=1&c=2?d",
            "/a?",
            "/a/b.c/d..e?x=.",
            "/a/./b",
            "/a/../b",
            "/a/%2e%2E/b",
            "/a%20b",
            "/a b",
            "/a\\b",
            "/a#f",
            "/a?b#f",
            "/caf\u{e9}",
            "/a\tb",
            "//evil.example/x",
            "/a{b}",
            "/a\"b",
            "/a<b>",
            "/a'b",
            "/a`b",
            ":8443/x",
            ".evil.example/x",
            "@evil.example/x",
            "",
        ];
        let mut plain_ones = 0;
        for raw in bases {
            let base = Base::new(Url::parse(raw).unwrap());
            let prefixes = [
                base.url[..url::Position::BeforePath].to_owned(),
                "https://sf.example".to_owned(),
                "HTTP://127.0.0.1:8080".to_owned(),
                "http://127.0.0.1:8081".to_owned(),
            ];
            for prefix in &prefixes {
                for tail in tails {
                    let next = format!("{prefix}{tail}");
                    let parsed = same_origin(&base, &next);
                    let Some(plain) = plain_on_origin(&base.url, &next) else {
                        continue;
                    };
                    plain_ones += 1;
                    let parsed = parsed.unwrap_or_else(|_| panic!("{next} on {raw}"));
                    assert_eq!(parsed.as_str(), next, "{next} on {raw}");
                    assert_eq!(plain.path(), parsed.path(), "{next} on {raw}");
                    assert_eq!(plain.query(), parsed.query(), "{next} on {raw}");
                    assert_eq!(
                        plain.origin(&base.url),
                        NextPage::Parsed(parsed.clone()).origin(&base.url),
                        "{next} on {raw}"
                    );
                }
            }
        }
        // Six plain tails on each base's own prefix, and again on https://sf.example's
        // listed one.
        assert_eq!(plain_ones, 6 * 4);
        let base = Base::new(Url::parse("http://127.0.0.1:8080/api").unwrap());
        assert!(matches!(
            recheck(&base, "http://127.0.0.1:8080/api/q/01g-200?x=1"),
            Ok(NextPage::Plain {
                path: "/api/q/01g-200",
                query: Some("x=1")
            })
        ));
        assert!(matches!(
            recheck(&base, "http://127.0.0.1:8080/api/q/a%20b"),
            Ok(NextPage::Parsed(_))
        ));
        assert!(recheck(&base, "http://127.0.0.1:8081/api/q").is_err());
        assert!(recheck(&base, "http://127.0.0.1:8080@evil.example/api/q").is_err());
    }

    #[test]
    fn a_plain_next_address_from_the_root_is_written_as_resolving_it_would() {
        let nexts = [
            "/services/data/v59.0/query/01gD0000002HU6KIAW-2000",
            "/a?b=1&c=2?d",
            "/",
            "/a?",
            "//evil.example/x",
            "/a/../b",
            "/a/%2e%2e/b",
            "/a b",
            "/caf\u{e9}",
            "/a\\b",
            "/a#f",
            "query/2",
            "https://evil.example/x",
            "",
        ];
        let mut written = 0;
        for raw in [
            "http://127.0.0.1:8080",
            "https://sf.example/services/data/v59.0",
            "https://u:p@sf.example/a/",
        ] {
            let base = Base::new(Url::parse(raw).unwrap());
            for next in nexts {
                let resolved = same_origin(&base, next).map(String::from);
                written += usize::from(is_plain_path(next));
                match (next_address(&base, next), resolved) {
                    (Ok(address), Ok(resolved)) => assert_eq!(address, resolved, "{next} on {raw}"),
                    (Err(_), Err(_)) => {}
                    (ours, theirs) => panic!("{next} on {raw}: {ours:?} against {theirs:?}"),
                }
            }
        }
        assert_eq!(written, 4 * 3);
    }

    #[test]
    fn origins_compare_as_the_url_crate_compares_them() {
        let urls = [
            "https://sf.example/a",
            "https://sf.example:443/b",
            "https://sf.example:444/b",
            "http://sf.example/a",
            "http://sf.example:80/a",
            "http://127.0.0.1:8080/a",
            "http://127.0.0.1:8081/a",
            "http://[::1]:8080/a",
            "https://xn--caf-dma.example/",
            "https://café.example/",
            "ftp://sf.example/a",
            "file:///a",
            "data:text/plain,x",
            "mailto:a@sf.example",
        ];
        for a in urls {
            for b in urls {
                let (a, b) = (Url::parse(a).unwrap(), Url::parse(b).unwrap());
                if matches!(b.scheme(), "http" | "https") {
                    assert_eq!(
                        same_tuple_origin(&a, &b),
                        a.origin() == b.origin(),
                        "{a} {b}"
                    );
                } else {
                    assert!(!same_tuple_origin(&a, &b), "{a} {b}");
                }
            }
        }
    }
}
