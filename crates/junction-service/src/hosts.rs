//! Credentials are bound to the hosts they were issued for.
//!
//! `oauth.token.url` receives the client secret and the refresh token, `base.url` the
//! access token, and `oauth.authorization.url` is where the customer granted them. The
//! client secret is the app's, shared by every customer, so whoever can re-point these
//! URLs could collect it. Hence:
//!
//! - an element may pin the hosts they may name (`oauth.allowedHosts`), which also holds
//!   for values the provider's own answers set (Salesforce's `instance_url`);
//! - an Element token (the customer's credential) cannot change them at all;
//! - moving one to another origin (scheme, host, port) comes with a re-authorization,
//!   and the stored tokens are dropped rather than sent to the new host.

use crate::{Caller, ServiceError, Services};
use junction_core::config::keys;
use junction_core::credential::OAuthGrant;
use junction_core::element::{AuthenticationType, OAuthSpec, host_matches};
use junction_core::net::{AddressClass, classify};
use junction_core::{ConfigMap, ElementDefinition};
use serde_json::{Map, Value};
use std::net::IpAddr;
use url::Url;

/// The configuration keys whose URLs credentials are sent to or come from.
pub(crate) const BOUND_KEYS: [&str; 4] = [
    keys::TOKEN_URL,
    keys::AUTHORIZATION_URL,
    keys::BASE_URL,
    keys::REQUEST_URL,
];

/// A bound URL on a host its element does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unpinned {
    pub key: &'static str,
    pub host: String,
}

impl Unpinned {
    fn allowed(spec: &OAuthSpec) -> String {
        spec.allowed_hosts.join(", ")
    }

    /// The error for a value the caller gave.
    pub(crate) fn given(&self, element: &ElementDefinition, pins: &[String]) -> ServiceError {
        ServiceError::bad_request(
            "host_not_allowed",
            format!(
                "'{}' names host '{}', but element '{}' sends credentials only to {}",
                self.key,
                self.host,
                element.key,
                pins.join(", ")
            ),
        )
    }

    /// The error for a value the provider's answer set.
    pub(crate) fn answered(&self, element: &ElementDefinition, spec: &OAuthSpec) -> ServiceError {
        ServiceError::bad_request(
            "provider_bad_response",
            format!(
                "the provider's answer sets '{}' to host '{}', but element '{}' sends credentials only to {}",
                self.key,
                self.host,
                element.key,
                Self::allowed(spec)
            ),
        )
    }
}

impl Services {
    /// Refuses a bound URL in `config` that the caller set (it differs from `stored`) on
    /// a host the element does not allow.
    pub(crate) fn check_pins(
        &self,
        element: &ElementDefinition,
        config: &ConfigMap,
        stored: Option<&ConfigMap>,
    ) -> Result<(), ServiceError> {
        // OAuth 1.0a elements pin their hosts in their own section.
        let pins = match (&element.oauth, &element.oauth1) {
            (Some(spec), _) => &spec.allowed_hosts,
            (None, Some(spec)) => &spec.allowed_hosts,
            (None, None) => return Ok(()),
        };
        match unpinned_by(pins, config, stored) {
            Some(found) => Err(found.given(element, pins)),
            None => Ok(()),
        }
    }

    /// Refuses a provider's answer (a code exchange's) that set a bound URL on a host the
    /// element does not allow, before anything is sent there. `checked`: the bound URLs
    /// before the answer ([`bound_values`]), already held to the pins.
    pub(crate) fn check_answer_pins(
        &self,
        element: &ElementDefinition,
        spec: &OAuthSpec,
        config: &ConfigMap,
        checked: &ConfigMap,
    ) -> Result<(), ServiceError> {
        match unpinned(spec, config, Some(checked)) {
            Some(found) => Err(found.answered(element, spec)),
            None => Ok(()),
        }
    }

    /// A refresh's answer is kept (its tokens exist nowhere else), but not a bound URL
    /// it set on a host the element does not allow: the stored one stays.
    pub(crate) fn keep_pinned_urls(
        &self,
        instance_id: i64,
        spec: &OAuthSpec,
        config: &mut ConfigMap,
        stored: &ConfigMap,
    ) {
        for found in revert_unpinned(spec, config, stored) {
            tracing::warn!(
                instance_id,
                key = found.key,
                host = %found.host,
                "the provider's answer named a host the element does not allow; the stored value stays"
            );
        }
    }
}

/// The first bound URL in `config` on a host the element's pins refuse, skipping those
/// equal to their `stored` value. A host that is no public address (a loopback, private
/// or other special-purpose IP, or `localhost`) is left to the outbound address policy:
/// it refuses such hosts unless the operator opted in to local providers, and then a
/// local stand-in may play a pinned provider.
pub(crate) fn unpinned(
    spec: &OAuthSpec,
    config: &ConfigMap,
    stored: Option<&ConfigMap>,
) -> Option<Unpinned> {
    unpinned_by(&spec.allowed_hosts, config, stored)
}

/// The bound URLs of `config` as they are, for [`Services::check_answer_pins`].
pub(crate) fn bound_values(config: &ConfigMap) -> ConfigMap {
    BOUND_KEYS
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), config.get(key)?.clone())))
        .collect()
}

/// [`unpinned`] for the host patterns `pins` (none: any host).
pub(crate) fn unpinned_by(
    pins: &[String],
    config: &ConfigMap,
    stored: Option<&ConfigMap>,
) -> Option<Unpinned> {
    if pins.is_empty() {
        return None;
    }
    BOUND_KEYS.into_iter().find_map(|key| {
        if stored.is_some_and(|s| s.get(key) == config.get(key)) {
            return None;
        }
        let url = parsed(config, key)?;
        let host = url.host_str()?.to_owned();
        let allowed = pins.iter().any(|p| host_matches(p, &host));
        (!is_local(&url) && !allowed).then_some(Unpinned { key, host })
    })
}

/// Puts back the stored value of every bound URL `config` has on an unpinned host: a
/// refresh's answer cannot be refused (its tokens must be kept), only its URLs.
pub(crate) fn revert_unpinned(
    spec: &OAuthSpec,
    config: &mut ConfigMap,
    stored: &ConfigMap,
) -> Vec<Unpinned> {
    let mut reverted = Vec::new();
    while let Some(found) = unpinned(spec, config, Some(stored)) {
        config.insert(
            found.key.to_owned(),
            stored.get(found.key).cloned().flatten(),
        );
        reverted.push(found);
    }
    reverted
}

/// Checks an update of `stored` into `proposed`. An Element token may not change a bound
/// URL at all; anyone else may move one to another origin only while re-authorizing.
/// Returns whether a bound URL moved, in which case the stored tokens must go.
pub(crate) fn check_update(
    caller: &Caller,
    element: &ElementDefinition,
    stored: &ConfigMap,
    proposed: &ConfigMap,
    reauthorizing: bool,
) -> Result<bool, ServiceError> {
    let mut moved = false;
    for key in BOUND_KEYS {
        let before = stored.get(key).cloned().flatten();
        let after = proposed.get(key).cloned().flatten();
        if before == after {
            continue;
        }
        if caller.only_instance().is_some() {
            return Err(ServiceError::Forbidden(format!(
                "'{key}' decides where the instance's credentials are sent: only a user of the account can change it"
            )));
        }
        if origin(before.as_deref()) != origin(after.as_deref()) {
            if !reauthorizing {
                return Err(ServiceError::bad_request(
                    "host_change_requires_authorization",
                    format!(
                        "changing '{key}' to another host moves the instance's credentials there: \
                         send the new value together with {}",
                        reauthorization(element)
                    ),
                ));
            }
            moved = true;
        }
    }
    Ok(moved)
}

/// What an update must carry to move an instance's credentials to another host: what
/// re-authorizes an instance of this element.
fn reauthorization(element: &ElementDefinition) -> String {
    match element.authentication.kind {
        AuthenticationType::Basic | AuthenticationType::ApiKey | AuthenticationType::Custom => {
            let names = credential_secrets(element);
            format!(
                "the credentials for the new host in the same request (configuration {}), \
                 which are checked there before anything is stored",
                names
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        AuthenticationType::Oauth1 => "providerData.oauth_token, providerData.oauth_verifier \
             and providerData.secret from a new authorization"
            .to_owned(),
        AuthenticationType::Oauth2
            if element
                .oauth
                .as_ref()
                .is_some_and(|o| o.grant == OAuthGrant::ClientCredentials) =>
        {
            format!(
                "the client credentials in the same request (configuration '{}', '{}'), \
                 with which a new token is obtained",
                keys::API_KEY,
                keys::API_SECRET
            )
        }
        AuthenticationType::Oauth2 => "providerData.code from a new authorization".to_owned(),
    }
}

/// The secret configuration keys the element's credential templates read, each once.
pub(crate) fn credential_secrets(element: &ElementDefinition) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for key in element.credentials.iter().flat_map(|c| c.keys()) {
        if element.is_secret_key(&key) && !names.contains(&key) {
            names.push(key);
        }
    }
    names
}

/// A full update (`PUT`) that leaves a bound URL out keeps it: going back to the
/// element's default would move the credentials without a re-authorization.
pub(crate) fn keep_bound_urls(fresh: &mut ConfigMap, stored: &ConfigMap) {
    for key in BOUND_KEYS {
        if let Some(value) = stored.get(key) {
            fresh.insert(key.to_owned(), value.clone());
        }
    }
}

/// Drops the stored tokens (the element's internal secrets) from `config`, except those
/// the request itself gives: they were issued for the old hosts.
pub(crate) fn forget_stored_tokens(
    element: &ElementDefinition,
    config: &mut ConfigMap,
    given: Option<&Map<String, Value>>,
) {
    for entry in &element.configuration {
        let named = given.is_some_and(|g| g.contains_key(&entry.key));
        if entry.internal && entry.is_secret() && !named {
            config.insert(entry.key.clone(), None);
        }
    }
}

/// Drops every stored secret from `config` that the request does not give a value for:
/// after a move, a secret kept from before would be sent to the new host.
pub(crate) fn forget_stored_secrets(
    element: &ElementDefinition,
    config: &mut ConfigMap,
    given: Option<&Map<String, Value>>,
) {
    for (key, value) in config.iter_mut() {
        let named = given.is_some_and(|g| {
            g.get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        });
        if element.is_secret_key(key) && !named {
            *value = None;
        }
    }
}

fn parsed(config: &ConfigMap, key: &str) -> Option<Url> {
    let raw = config.get(key)?.as_deref()?.trim();
    Url::parse(raw).ok()
}

/// Scheme, host and port: what a credential's destination is.
fn origin(raw: Option<&str>) -> Option<(String, String, Option<u16>)> {
    let url = Url::parse(raw?.trim()).ok()?;
    Some((
        url.scheme().to_owned(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default(),
    ))
}

fn is_local(url: &Url) -> bool {
    let ip: IpAddr = match url.host() {
        Some(url::Host::Ipv4(v4)) => v4.into(),
        Some(url::Host::Ipv6(v6)) => v6.into(),
        Some(url::Host::Domain(name)) => return name.eq_ignore_ascii_case("localhost"),
        None => return false,
    };
    classify(ip) != AddressClass::Public
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_core::{AccountId, InstanceId, OrganizationId, UserId};
    use junction_store::{Principal, TokenPrincipal};

    fn spec() -> OAuthSpec {
        serde_json::from_str(r#"{"allowedHosts":["*.salesforce.com","*.force.com"]}"#).unwrap()
    }

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    }

    fn user() -> Caller {
        Caller::User(Principal {
            organization_id: OrganizationId(1),
            account_id: AccountId(1),
            user_id: UserId(1),
            is_admin: true,
        })
    }

    fn element_token() -> Caller {
        Caller::Instance(TokenPrincipal {
            instance_id: InstanceId(1),
            account_id: AccountId(1),
            user_id: UserId(1),
            disabled: false,
        })
    }

    #[test]
    fn an_oauth1_request_token_url_is_held_to_the_pins_too() {
        let pins = vec!["trello.com".to_owned()];
        let ok = config(&[(
            keys::REQUEST_URL,
            "https://trello.com/1/OAuthGetRequestToken",
        )]);
        assert_eq!(unpinned_by(&pins, &ok, None), None);
        let evil = config(&[(keys::REQUEST_URL, "https://evil.example/request")]);
        assert_eq!(
            unpinned_by(&pins, &evil, None),
            Some(Unpinned {
                key: keys::REQUEST_URL,
                host: "evil.example".into()
            })
        );
    }

    #[test]
    fn pinned_hosts_pass_and_others_are_named() {
        let ok = config(&[
            (
                keys::TOKEN_URL,
                "https://login.salesforce.com/services/oauth2/token",
            ),
            (keys::BASE_URL, "https://acme.my.salesforce.com"),
        ]);
        assert_eq!(unpinned(&spec(), &ok, None), None);
        let evil = config(&[
            (
                keys::TOKEN_URL,
                "https://login.salesforce.com@evil.example/token",
            ),
            (keys::BASE_URL, "https://acme.my.salesforce.com"),
        ]);
        assert_eq!(
            unpinned(&spec(), &evil, None),
            Some(Unpinned {
                key: keys::TOKEN_URL,
                host: "evil.example".into()
            })
        );
        // Left to the address policy, which refuses them unless the operator opted in.
        for local in [
            "http://127.0.0.1:8080/api",
            "http://localhost/",
            "http://[fd00::1]/",
        ] {
            let local = config(&[(keys::BASE_URL, local)]);
            assert_eq!(unpinned(&spec(), &local, None), None);
        }
        let public = config(&[(keys::BASE_URL, "http://93.184.216.34/api")]);
        assert!(unpinned(&spec(), &public, None).is_some());
        // A value stored before the pin is not held against an unrelated update.
        assert_eq!(unpinned(&spec(), &public, Some(&public)), None);
    }

    #[test]
    fn an_unpinned_answer_puts_the_stored_url_back() {
        let stored = config(&[(keys::BASE_URL, "https://na1.salesforce.com")]);
        let mut answered = config(&[(keys::BASE_URL, "https://evil.example")]);
        let reverted = revert_unpinned(&spec(), &mut answered, &stored);
        assert_eq!(reverted.len(), 1);
        assert_eq!(answered, stored);
    }

    #[test]
    fn element_tokens_change_no_bound_url_and_moves_need_a_new_code() {
        let stored = config(&[(keys::TOKEN_URL, "https://login.salesforce.com/token")]);
        let same_host = config(&[(keys::TOKEN_URL, "https://login.salesforce.com/v2/token")]);
        let other_host = config(&[(keys::TOKEN_URL, "https://evil.example/token")]);
        let downgrade = config(&[(keys::TOKEN_URL, "http://login.salesforce.com/token")]);

        let e = oauth2_element();
        assert!(check_update(&element_token(), &e, &stored, &stored, false).is_ok());
        let err = check_update(&element_token(), &e, &stored, &same_host, true).unwrap_err();
        assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");

        assert!(!check_update(&user(), &e, &stored, &same_host, false).unwrap());
        for moved in [&other_host, &downgrade] {
            let err = check_update(&user(), &e, &stored, moved, false).unwrap_err();
            assert!(err.to_string().contains("providerData.code"), "{err}");
            assert!(check_update(&user(), &e, &stored, moved, true).unwrap());
        }
    }

    fn oauth2_element() -> ElementDefinition {
        serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "oauth2"},
            "oauth": {},
        }))
        .unwrap()
    }

    #[test]
    fn a_move_of_a_configured_credentials_instance_asks_for_its_credentials_not_a_code() {
        let e: ElementDefinition = serde_json::from_value(serde_json::json!({
            "id": 1, "key": "demo", "name": "Demo", "hookName": "Demo", "hub": "crm",
            "description": "d", "image": "i", "authentication": {"type": "custom"},
            "configuration": [
                {"key": "demo.app", "name": "a", "required": true},
                {"key": "demo.key", "name": "k", "type": "PASSWORD", "required": true},
            ],
            "credentials": [
                {"in": "header", "name": "X-App", "value": "{demo.app}"},
                {"in": "header", "name": "X-Key", "value": "{demo.key}"},
            ],
        }))
        .unwrap();
        let stored = config(&[(keys::BASE_URL, "https://api.example.com")]);
        let moved = config(&[(keys::BASE_URL, "https://other.example.net")]);
        let err = check_update(&user(), &e, &stored, &moved, false).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("providerData"), "{message}");
        assert!(message.contains("'demo.key'"), "{message}");
        assert!(!message.contains("'demo.app'"), "{message}");
    }
}
