//! Instance configuration: Cloud Elements' flat `key → string|null` map.

use serde_json::Value;
use std::collections::BTreeMap;

/// What every secret configuration value looks like in a response.
pub const MASK: &str = "********";

/// One configuration value as Junction stores it: a string, or explicitly null. The wire
/// format always shows strings (`"true"`, `"200"`), whatever JSON type the request used.
pub type ConfigValue = Option<String>;

/// An instance's merged configuration, ordered so responses are stable.
pub type ConfigMap = BTreeMap<String, ConfigValue>;

/// Why a request's configuration value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration value for '{key}' must be a string, number, boolean, object or null")]
pub struct BadConfigValue {
    pub key: String,
}

/// Turns a request's JSON value into a stored configuration value. Cloud Elements clients
/// send booleans as JSON booleans or strings and some objects (`event.poller.configuration`)
/// as JSON; all are kept as their string form. Arrays have no meaning in configuration.
pub fn config_value_from_json(key: &str, value: &Value) -> Result<ConfigValue, BadConfigValue> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Object(_) => Ok(Some(value.to_string())),
        Value::Array(_) => Err(BadConfigValue {
            key: key.to_owned(),
        }),
    }
}

/// Words that make a configuration key a secret wherever they appear as a word of it.
const SECRET_WORDS: &[&str] = &["secret", "password", "passwd", "token", "key", "credential"];

/// What may precede `key` in a lowercase compound that names a secret key (`apikey`,
/// `privatekey`). Any other start is an ordinary word that happens to end in `key`
/// (`monkey`, `turkey`, `hockey`).
const KEY_QUALIFIERS: &[&str] = &[
    "access",
    "account",
    "api",
    "app",
    "auth",
    "client",
    "consumer",
    "developer",
    "encryption",
    "license",
    "master",
    "pass",
    "private",
    "secret",
    "service",
    "session",
    "shared",
    "signing",
    "subscription",
    "user",
];

/// What may follow a secret word in a lowercase compound that names a secret
/// (`secretkey`, `tokenvalue`); other endings make other words (`secretary`,
/// `tokenizer`, `passwordless`).
const SECRET_ENDINGS: &[&str] = &["key", "secret", "token", "value"];

/// Words that, in an HTTP header, query parameter or body field name, mark a credential
/// beyond what marks a secret configuration key (see [`looks_like_credential`]).
const CREDENTIAL_WORDS: &[&str] = &["authorization", "cookie", "session", "signature", "pwd"];

/// Whether a key an element does not declare names a secret, so that its value is sealed
/// at rest and masked on output. Clients send extra keys (and mistype known ones, such as
/// `oauth.api.secert`), so Junction cannot know them all; it goes by the words of the key.
///
/// A key is split into words at every character that is not a letter or digit and at
/// camel-case humps (`apiKey` → `api`, `key`; `OAuthToken` → `o`, `auth`, `token`), and
/// it is secret when any word, ignoring case and a plural `s`:
/// - is one of `secret`, `password`, `passwd`, `token`, `key` or `credential`, or one
///   typo (a letter added, dropped, changed, or two neighbours swapped) away from one of
///   the longer ones, since a mistyped secret is still a secret;
/// - or is a lowercase compound of one: ending in one of the longer ones
///   (`clientsecret`, `accesstoken`), ending in `key` after a word that makes it a
///   credential (`apikey`, `privatekey`), or starting with one of the longer ones followed
///   by `key`, `secret`, `token` or `value` (`secretkey`, `tokenvalue`).
///
/// Ordinary words are not: `monkey`, `keyboard`, `secretary`, `tokenizer`, `passwordless`
/// and `event.vendor.type` are not secrets; `client_secret`, `oauth.user.token`, `apiKey`,
/// `apikey`, `x-api-keys`, `DB_PASSWORD` and `oauth.api.secert` are. A key an element
/// declares (`oauth.token.url`) is secret only if declared so.
pub fn looks_secret(key: &str) -> bool {
    key_words(key).any(|word| {
        let word = word.to_lowercase();
        let singular = word.strip_suffix('s').unwrap_or(&word);
        SECRET_WORDS.iter().any(|secret| {
            *secret == word
                || *secret == singular
                || (secret.len() >= 5 && (one_typo(secret, &word) || one_typo(secret, singular)))
        }) || is_secret_compound(singular)
    })
}

/// Whether a header, query parameter or body field name looks like it carries a
/// credential: [`looks_secret`], or a word containing `authorization`, `cookie`,
/// `session`, `signature` or `pwd` (`JSESSIONID`, `Set-Cookie`), or exactly `code` (an OAuth authorization
/// code). Used where masking too much costs nothing, such as trace logs, so it casts
/// wider than the configuration rule, which must leave `oauth.authorization.url` and
/// `signature.method` readable.
pub fn looks_like_credential(name: &str) -> bool {
    looks_secret(name)
        || name.eq_ignore_ascii_case("code")
        || key_words(name).any(|word| {
            let word = word.to_lowercase();
            CREDENTIAL_WORDS.iter().any(|w| word.contains(w))
        })
}

/// See [`looks_secret`]: `word` is lowercase and singular.
fn is_secret_compound(word: &str) -> bool {
    SECRET_WORDS.iter().any(|secret| {
        if let Some(before) = word.strip_suffix(secret).filter(|b| !b.is_empty()) {
            let before = before.trim_end_matches(|c: char| c.is_ascii_digit());
            return if *secret == "key" {
                KEY_QUALIFIERS.contains(&before)
            } else {
                before.len() >= 2
            };
        }
        secret.len() >= 5
            && word
                .strip_prefix(secret)
                .is_some_and(|after| SECRET_ENDINGS.contains(&after))
    })
}

/// Whether `b` is `a` with exactly one letter added, dropped, changed, or two neighbouring
/// letters swapped.
fn one_typo(a: &str, b: &str) -> bool {
    // Every header and field name of every webhook passes here: names are ASCII, and
    // comparing their bytes needs no copy of either.
    if a.is_ascii() && b.is_ascii() {
        return one_typo_in(a.as_bytes(), b.as_bytes());
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    one_typo_in(&a, &b)
}

fn one_typo_in<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    if a == b || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Greater => ra[1..] == *rb,
        std::cmp::Ordering::Less => *ra == rb[1..],
    }
}

/// The words of a configuration key (see [`looks_secret`]).
fn key_words(key: &str) -> impl Iterator<Item = &str> {
    key.split(|c: char| !c.is_alphanumeric())
        .flat_map(camel_words)
        .filter(|w| !w.is_empty())
}

/// Splits `apiKey` into `api`, `Key` and `HTTPToken` into `HTTP`, `Token`.
fn camel_words(part: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = part.char_indices().collect();
    let mut words = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (at, c) = chars[i];
        let prev = chars[i - 1].1;
        let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
        let hump = c.is_uppercase()
            && (prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_lower));
        if hump {
            words.push(&part[start..at]);
            start = at;
        }
    }
    words.push(&part[start..]);
    words
}

/// Well-known keys, named once.
pub mod keys {
    pub const API_KEY: &str = "oauth.api.key";
    pub const API_SECRET: &str = "oauth.api.secret";
    pub const CALLBACK_URL: &str = "oauth.callback.url";
    pub const SCOPE: &str = "oauth.scope";
    pub const AUTHORIZATION_URL: &str = "oauth.authorization.url";
    pub const TOKEN_URL: &str = "oauth.token.url";
    pub const USER_TOKEN: &str = "oauth.user.token";
    pub const REFRESH_TOKEN: &str = "oauth.user.refresh_token";
    pub const REFRESH_INTERVAL: &str = "oauth.user.refresh_interval";
    pub const REFRESH_TIME: &str = "oauth.user.refresh_time";
    /// OAuth 1.0a: the token secret that signs with `oauth.user.token`.
    pub const USER_TOKEN_SECRET: &str = "oauth.user.token.secret";
    /// OAuth 1.0a: where temporary credentials (the request token) are asked for.
    pub const REQUEST_URL: &str = "oauth.request.url";
    pub const BASE_URL: &str = "base.url";
    pub const EVENTS_ENABLED: &str = "event.notification.enabled";

    /// What a refresh rewrites. An update that is not a re-authorization must leave
    /// these as they are in the database, or it could put back a refresh token the
    /// provider has already rotated away.
    pub const CREDENTIALS: &[&str] = &[
        USER_TOKEN,
        USER_TOKEN_SECRET,
        REFRESH_TOKEN,
        REFRESH_TIME,
        REFRESH_INTERVAL,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_numbers_and_objects_become_strings() {
        assert_eq!(
            config_value_from_json("a", &json!(true)).unwrap(),
            Some("true".into())
        );
        assert_eq!(
            config_value_from_json("a", &json!(200)).unwrap(),
            Some("200".into())
        );
        assert_eq!(
            config_value_from_json("a", &json!({"x": 1})).unwrap(),
            Some("{\"x\":1}".into())
        );
        assert_eq!(config_value_from_json("a", &json!(null)).unwrap(), None);
    }

    #[test]
    fn keys_are_secret_by_their_words() {
        for key in [
            "oauth.api.secert",
            "pasword",
            "user.credentails",
            "tokne",
            "client_secret",
            "apiKey",
            "x-api-keys",
            "oauth.user.token",
            "OAuthToken",
            "HTTPToken",
            "DB_PASSWORD",
            "userPasswords",
            "service.credentials",
            "signature.key",
            "Secret",
            "apikey",
            "clientsecret",
            "accesstoken",
            "refreshtoken",
            "refreshtokens",
            "privatekey",
            "secretkey",
            "tokenvalue",
            "dbpassword",
            "oauth.user.apikey",
        ] {
            assert!(looks_secret(key), "{key} should be secret");
        }
        for key in [
            "event.vendor.type",
            "monkey",
            "keyboard.layout",
            "tokenizer",
            "secretary.name",
            "base.url",
            "kye.value",
            "passwordless",
            "turkey",
            "hockey.team",
            "keyboard",
            "secretariat",
            "tokenization",
            "event.poller.configuration",
        ] {
            assert!(!looks_secret(key), "{key} should not be secret");
        }
    }

    #[test]
    fn credential_names_cover_secret_keys_and_http_credentials() {
        for name in [
            "access_token",
            "Authorization",
            "proxy-authorization",
            "x-api-key",
            "apikey",
            "client_secret",
            "password",
            "pwd",
            "refreshToken",
            "Set-Cookie",
            "JSESSIONID",
            "X-Amz-Signature",
            "code",
        ] {
            assert!(looks_like_credential(name), "{name}");
        }
        for name in [
            "name",
            "id",
            "fields",
            "content-type",
            "email",
            "zip_code",
            "monkey",
        ] {
            assert!(!looks_like_credential(name), "{name}");
        }
        for key in ["oauth.authorization.url", "oauth.signature.method"] {
            assert!(!looks_secret(key), "{key}");
        }
    }

    #[test]
    fn arrays_are_refused_with_the_key_named() {
        let err = config_value_from_json("event.objects", &json!(["a"])).unwrap_err();
        assert!(err.to_string().contains("event.objects"));
    }
}
