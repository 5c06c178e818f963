//! Redaction of what trace logging records: the instance's own secrets wherever they
//! appear, secret-looking query parameters, headers, JSON fields and form fields, and
//! bodies cut to [`BODY_LIMIT`] bytes.

use http::HeaderMap;
use serde_json::Value;
use url::Url;

/// Bytes of each body a trace entry keeps.
pub const BODY_LIMIT: usize = 4096;

const MASK: &str = "********";
/// Shorter values are not searched for: masking every "abc" in a body hides nothing.
const SHORTEST_SECRET: usize = 6;

/// The one rule for secret-looking names, shared with configuration keys.
pub use junction_core::config::looks_like_credential as is_secret_name;

/// What one instance's trace entries must not show.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Values masked wherever they appear: the instance's tokens and client secret.
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= SHORTEST_SECRET)
            .collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// This redactor, also masking `secrets` and every value a secret-looking query
    /// parameter or header of one call carries, so that a provider echoing them back
    /// (in a body, under another name) does not reveal them.
    pub fn for_call(&self, secrets: Vec<String>, url: &Url, headers: &HeaderMap) -> Self {
        let from_query = url
            .query_pairs()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.into_owned());
        let from_headers = headers
            .iter()
            .filter(|(name, _)| is_secret_name(name.as_str()))
            .filter_map(|(_, v)| v.to_str().ok())
            // `Bearer <token>`: the token alone may come back too.
            .flat_map(|v| [v.to_owned(), v.rsplit(' ').next().unwrap_or(v).to_owned()]);
        Self::new(
            self.secrets
                .iter()
                .cloned()
                .chain(secrets)
                .chain(from_query)
                .chain(from_headers),
        )
    }

    /// Bytes of a body to capture so that [`Self::body`] can cut it to [`BODY_LIMIT`]
    /// after masking: a secret that starts before the cut is captured whole, and masked
    /// whole, instead of being cut into a prefix no search would find.
    pub fn capture_limit(&self) -> usize {
        // Longest first (see `new`).
        BODY_LIMIT + self.secrets.first().map_or(0, String::len)
    }

    /// Masks every known secret in `text`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// The URL with secret-looking query values masked.
    pub fn url(&self, url: &Url) -> String {
        let mut shown = url.clone();
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_name(&k) {
                        MASK.to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let _ = shown.set_password(None);
        self.scrub(shown.as_str())
    }

    /// Headers as a JSON object, secret-looking ones masked.
    pub fn headers(&self, headers: &HeaderMap) -> String {
        let mut out = serde_json::Map::new();
        for (name, value) in headers {
            let shown = if is_secret_name(name.as_str()) {
                MASK.to_owned()
            } else {
                self.scrub(&String::from_utf8_lossy(value.as_bytes()))
            };
            match out.get_mut(name.as_str()) {
                Some(Value::String(earlier)) => {
                    earlier.push_str(", ");
                    earlier.push_str(&shown);
                }
                _ => {
                    out.insert(name.as_str().to_owned(), Value::String(shown));
                }
            }
        }
        Value::Object(out).to_string()
    }

    /// The start of a body (`complete` when nothing followed it), captured up to
    /// [`Self::capture_limit`], as at most [`BODY_LIMIT`] bytes of text with secrets
    /// masked; `None` for an empty body.
    pub fn body(&self, content_type: Option<&str>, start: &[u8], complete: bool) -> Option<String> {
        if start.is_empty() {
            return None;
        }
        let text = match std::str::from_utf8(start) {
            Ok(text) => text,
            // Cut inside a character: keep what precedes it.
            Err(e) if e.error_len().is_none() && !complete => {
                std::str::from_utf8(&start[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return Some(format!("[{} bytes of binary data]", start.len())),
        };
        let kind = content_type.unwrap_or_default().to_ascii_lowercase();
        let trimmed = text.trim_start();
        let redacted =
            if kind.contains("json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
                match serde_json::from_str::<Value>(text) {
                    Ok(mut value) if complete => {
                        mask_json(&mut value);
                        value.to_string()
                    }
                    _ => mask_partial_json(text),
                }
            } else if kind.contains("x-www-form-urlencoded") {
                mask_form(text)
            } else {
                text.to_owned()
            };
        Some(cut(&self.scrub(&redacted), BODY_LIMIT))
    }
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn mask_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_name(key) && !inner.is_null() {
                    *inner = Value::String(MASK.to_owned());
                } else {
                    mask_json(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

fn mask_form(text: &str) -> String {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| {
            let v = if is_secret_name(&k) {
                MASK.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// JSON cut short cannot be parsed: masks the value after every secret-looking key by
/// scanning the text.
fn mask_partial_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = string_end(rest);
        let name = &rest[..close];
        out.push_str(name);
        let Some(after) = rest[close..].strip_prefix('"') else {
            return out;
        };
        out.push('"');
        rest = after;
        // The string is a key when a colon follows it.
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        if !is_secret_name(name) {
            continue;
        }
        out.push_str(&rest[..rest.len() - value.len()]);
        out.push_str(if value.starts_with('"') { "\"" } else { "" });
        out.push_str(MASK);
        if let Some(string) = value.strip_prefix('"') {
            let end = string_end(string);
            match string[end..].strip_prefix('"') {
                Some(tail) => {
                    out.push('"');
                    rest = tail;
                }
                None => return out,
            }
        } else {
            let end = value.find([',', '}', ']']).unwrap_or(value.len());
            rest = &value[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Where a JSON string that began just before `text` ends (the index of its closing
/// quote, or the end of the text).
fn string_end(text: &str) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return i,
            _ => escaped = false,
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn urls_lose_secret_parameters_and_known_secrets() {
        let r = Redactor::new(["instance-secret-value".to_owned()]);
        let url = Url::parse(
            "https://graph.example/me?fields=id&access_token=abc123&x=instance-secret-value",
        )
        .unwrap();
        let shown = r.url(&url);
        assert!(
            !shown.contains("abc123") && !shown.contains("instance-secret-value"),
            "{shown}"
        );
        assert!(shown.contains("fields=id"), "{shown}");
    }

    #[test]
    fn headers_lose_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        headers.insert("x-api-key", HeaderValue::from_static("k1"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let shown = Redactor::default().headers(&headers);
        assert!(!shown.contains("abc") && !shown.contains("k1"), "{shown}");
        assert!(shown.contains("application/json"), "{shown}");
    }

    #[test]
    fn json_bodies_lose_secret_fields_whole_or_cut() {
        let r = Redactor::default();
        let body = br#"{"name":"Acme","nested":{"refresh_token":"rt-1","list":[{"password":"pw-1"}]},"n":1}"#;
        let shown = r.body(Some("application/json"), body, true).unwrap();
        assert!(shown.contains("Acme"), "{shown}");
        assert!(
            !shown.contains("rt-1") && !shown.contains("pw-1"),
            "{shown}"
        );

        let cut = br#"{"name":"Acme","access_token":"at-1","expires_in":3600,"client_secret": "cs-1","tok"#;
        let shown = r.body(Some("application/json"), cut, false).unwrap();
        assert!(shown.contains("Acme") && shown.contains("3600"), "{shown}");
        assert!(
            !shown.contains("at-1") && !shown.contains("cs-1"),
            "{shown}"
        );

        let unterminated = br#"{"a":1,"password":"pw-unterminated"#;
        let shown = r.body(None, unterminated, false).unwrap();
        assert!(!shown.contains("pw-unterminated"), "{shown}");
    }

    #[test]
    fn form_bodies_lose_secret_fields() {
        let shown = Redactor::default()
            .body(
                Some("application/x-www-form-urlencoded"),
                b"grant_type=refresh_token&refresh_token=rt-1&client_id=c",
                true,
            )
            .unwrap();
        assert!(
            !shown.contains("rt-1") && shown.contains("client_id=c"),
            "{shown}"
        );
    }

    #[test]
    fn known_secrets_are_masked_anywhere_and_bodies_are_cut() {
        let r = Redactor::new(["the-access-token".to_owned()]);
        let shown = r
            .body(Some("text/plain"), b"you sent the-access-token", true)
            .unwrap();
        assert_eq!(shown, "you sent ********");
        let long = "é".repeat(r.capture_limit());
        let shown = r
            .body(
                Some("text/plain"),
                &long.as_bytes()[..r.capture_limit() + 1],
                false,
            )
            .unwrap();
        assert!(shown.len() <= BODY_LIMIT && shown.chars().all(|c| c == 'é'));
        assert_eq!(
            r.body(None, &[0xff, 0x00, 0x12], true).unwrap(),
            "[3 bytes of binary data]"
        );
    }

    #[test]
    fn a_secret_across_the_cut_is_masked_not_shown_in_part() {
        let secret = "straddling-secret-value-0123456789";
        let r = Redactor::new([secret.to_owned()]);
        let body = format!("{}{secret}{}", "a".repeat(BODY_LIMIT - 10), "b".repeat(100));
        let captured = &body.as_bytes()[..r.capture_limit().min(body.len())];
        let shown = r.body(Some("text/plain"), captured, false).unwrap();
        assert!(shown.len() <= BODY_LIMIT, "{}", shown.len());
        assert!(
            !shown.contains("straddling"),
            "{}",
            &shown[shown.len() - 20..]
        );
        assert!(
            shown.contains("a********b"),
            "{}",
            &shown[shown.len() - 20..]
        );
    }
}
