//! A provider's documented request limits, as element data (`rateLimits`): so many
//! requests per period, counted per instance or per OAuth app. Junction paces its own
//! calls to stay under them rather than learn them from the provider's 429s.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a call may wait for a slot when its limit names no `maxWait`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// One limit the provider enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed in any window of `per`.
    pub requests: u32,
    /// The window: seconds (`10`) or a duration (`10s`, `1m`, `24h`, `1day`).
    pub per: Period,
    /// Whose calls count together.
    #[serde(default)]
    pub scope: RateScope,
    /// Requests that may go out at once after a quiet spell; the rest are spaced so that
    /// no window of `per` ever holds more than `requests`. Default: half of `requests`,
    /// rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// How long a call may wait for a slot before it is refused with 429 (seconds or a
    /// duration). Default 10 s; never longer than the provider call timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<Period>,
}

impl RateLimit {
    /// See [`RateLimit::burst`].
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.requests.div_ceil(2))
            .clamp(1, self.requests.max(1))
    }

    pub fn max_wait(&self) -> Duration {
        self.max_wait.map_or(DEFAULT_MAX_WAIT, |p| p.0)
    }

    /// `100 requests per 10s (instance)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} requests per {} ({})",
            self.requests,
            self.per,
            self.scope.as_str()
        )
    }
}

/// Whose calls one budget counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    /// Each instance (the provider's account, org or token) has its own budget.
    #[default]
    Instance,
    /// Every instance of an organization that uses the same OAuth client (the provider's
    /// app) shares one budget; for elements without OAuth, every instance of the element.
    App,
}

impl RateScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::App => "app",
        }
    }
}

/// A length of time written as seconds (`10`, `0.5`) or as a duration (`10s`, `1m`,
/// `24h`, `1day`, `500ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(pub Duration);

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Period {
    /// Whole seconds as a number, anything finer as a duration string, so a definition
    /// reads back the same.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            serializer.serialize_u64(self.0.as_secs())
        } else {
            serializer.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "seconds, or a duration such as \"10s\" or \"1m\""
        )]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Period::from_seconds(s).map_err(serde::de::Error::custom),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Period {
    fn from_seconds(seconds: f64) -> Result<Self, String> {
        Duration::try_from_secs_f64(seconds)
            .map(Self)
            .map_err(|_| format!("{seconds} is not a number of seconds of zero or more"))
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<f64>() {
            return Self::from_seconds(seconds);
        }
        humantime::parse_duration(text)
            .map(Self)
            .map_err(|e| format!("'{text}' is not a duration ({e}); write seconds or e.g. \"10s\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(json: &str) -> RateLimit {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn periods_are_seconds_or_durations_and_read_back_the_same() {
        for (written, seconds) in [
            ("10", 10.0),
            ("\"10s\"", 10.0),
            ("\"1m\"", 60.0),
            ("\"24h\"", 86_400.0),
            ("\"1day\"", 86_400.0),
            ("0.5", 0.5),
            ("\"500ms\"", 0.5),
        ] {
            let l = limit(&format!(r#"{{"requests": 5, "per": {written}}}"#));
            assert_eq!(l.per.0.as_secs_f64(), seconds, "{written}");
            let again: RateLimit =
                serde_json::from_value(serde_json::to_value(&l).unwrap()).unwrap();
            assert_eq!(again, l, "{written}");
        }
        assert_eq!(
            serde_json::to_value(limit(r#"{"requests": 5, "per": "1m"}"#)).unwrap()["per"],
            60
        );
        for bad in ["-1", "\"soon\"", "true"] {
            assert!(
                serde_json::from_str::<RateLimit>(&format!(r#"{{"requests": 5, "per": {bad}}}"#))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn scope_defaults_to_the_instance_and_burst_to_half_the_requests() {
        let l = limit(r#"{"requests": 5, "per": 2}"#);
        assert_eq!(l.scope, RateScope::Instance);
        assert_eq!(l.burst(), 3);
        assert_eq!(l.max_wait(), DEFAULT_MAX_WAIT);
        let l =
            limit(r#"{"requests": 100, "per": 10, "scope": "app", "burst": 1, "maxWait": "2s"}"#);
        assert_eq!(l.scope, RateScope::App);
        assert_eq!(l.burst(), 1);
        assert_eq!(l.max_wait(), Duration::from_secs(2));
        assert_eq!(l.describe(), "100 requests per 10s (app)");
        assert!(serde_json::from_str::<RateLimit>(r#"{"requests": 1, "per": 1, "x": 1}"#).is_err());
    }
}
