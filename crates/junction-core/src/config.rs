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
    pub const BASE_URL: &str = "base.url";
    pub const EVENTS_ENABLED: &str = "event.notification.enabled";

    /// What a refresh rewrites. An update that is not a re-authorization must leave
    /// these as they are in the database, or it could put back a refresh token the
    /// provider has already rotated away.
    pub const CREDENTIALS: &[&str] = &[USER_TOKEN, REFRESH_TOKEN, REFRESH_TIME, REFRESH_INTERVAL];
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
    fn arrays_are_refused_with_the_key_named() {
        let err = config_value_from_json("event.objects", &json!(["a"])).unwrap_err();
        assert!(err.to_string().contains("event.objects"));
    }
}
