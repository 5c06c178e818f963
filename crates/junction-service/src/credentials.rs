//! Getting an instance its provider credentials: exchanging an authorization code, or
//! taking tokens the caller obtained itself (`externalAuthentication: "initial"`), then
//! running the element's provisioning calls.

use crate::refresh::{
    MAX_LIFETIME_S, apply_tokens, configured_lifetime, expiry, renew_by, sane_lifetime,
};
use crate::{ServiceError, Services, now_ms};
use junction_core::config::keys;
use junction_core::element::OAuthSpec;
use junction_core::{ConfigMap, ElementDefinition, Secret};
use junction_oauth::{CodeExchange, exchange_code, run_provision_step};

/// How the caller wants the instance authenticated.
pub(crate) enum Authorization<'a> {
    /// Exchange this authorization code.
    Code(&'a str),
    /// Use the tokens already in the configuration.
    External,
}

/// The caller's `oauth.user.refresh_interval`, checked before any provider is asked: a
/// number of seconds from 1 to [`MAX_LIFETIME_S`], since expiries are computed from it.
fn refresh_interval(config: &ConfigMap) -> Result<Option<i64>, ServiceError> {
    let Some(raw) = config.get(keys::REFRESH_INTERVAL).cloned().flatten() else {
        return Ok(None);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| (1..=MAX_LIFETIME_S).contains(s))
        .map(Some)
        .ok_or_else(|| {
            ServiceError::bad_request(
                "invalid_configuration",
                format!(
                    "'oauth.user.refresh_interval' must be a whole number of seconds from 1 to {MAX_LIFETIME_S}"
                ),
            )
        })
}

pub(crate) fn value(config: &ConfigMap, key: &str) -> String {
    config.get(key).cloned().flatten().unwrap_or_default()
}

impl Services {
    /// Fills `config` with fresh credentials and provisioning results; returns when they
    /// must be renewed (epoch ms; see `renew_by`). Nothing is stored here, so a failure
    /// leaves the instance as it was.
    pub(crate) async fn obtain_credentials(
        &self,
        element: &ElementDefinition,
        spec: &OAuthSpec,
        config: &mut ConfigMap,
        authorization: Authorization<'_>,
    ) -> Result<Option<i64>, ServiceError> {
        let now = now_ms();
        let configured = refresh_interval(config)?;
        let (access_token, expires_in) = match authorization {
            Authorization::Code(code) => {
                let client_secret = Secret::new(value(config, keys::API_SECRET));
                let tokens = exchange_code(
                    &self.outbound,
                    spec,
                    &CodeExchange {
                        token_url: &value(config, keys::TOKEN_URL),
                        client_id: &value(config, keys::API_KEY),
                        client_secret: &client_secret,
                        redirect_uri: &value(config, keys::CALLBACK_URL),
                        code,
                    },
                )
                .await
                .inspect_err(
                    |e| tracing::info!(element = %element.key, error = %e, "code exchange failed"),
                )?;
                apply_tokens(spec, config, &tokens, now, false);
                let tokens = match spec.refresh.as_ref() {
                    // Graph's code gives a short-lived token: trade it for a long-lived one
                    // before anything uses it, so the instance starts with ~60 days.
                    Some(refresh) if refresh.after_code_exchange => {
                        let renewed = self
                            .renew(spec, refresh.grant, config)
                            .await
                            .inspect_err(|e| {
                                tracing::info!(element = %element.key, error = %e, "long-lived token exchange failed")
                            })?;
                        match renewed {
                            Some(renewed) => {
                                apply_tokens(spec, config, &renewed, now, true);
                                renewed
                            }
                            None => tokens,
                        }
                    }
                    _ => tokens,
                };
                // Without `expires_in` (Salesforce) the element's configured
                // `oauth.user.refresh_interval` says how long the token is good for, as in
                // Cloud Elements, instead of "forever".
                let expires_in = tokens
                    .expires_in
                    .and_then(sane_lifetime)
                    .or_else(|| configured_lifetime(config));
                (tokens.access_token, expires_in)
            }
            Authorization::External => {
                let token = value(config, keys::USER_TOKEN);
                if token.trim().is_empty() {
                    return Err(ServiceError::bad_request(
                        "missing_configuration",
                        "externalAuthentication 'initial' needs the access token in oauth.user.token",
                    ));
                }
                let expires_in = configured;
                (Secret::new(token), expires_in)
            }
        };
        config.insert(keys::REFRESH_TIME.into(), Some(now.to_string()));
        // The provider's answer may have moved `base.url` (Salesforce's `instance_url`):
        // held to the element's pins before the provisioning calls send the token there.
        self.check_answer_pins(element, spec, config)?;
        for step in &spec.provision {
            let result = run_provision_step(&self.outbound, spec, &value(config, keys::BASE_URL), step, &access_token)
                .await
                .inspect_err(|e| {
                    tracing::info!(element = %element.key, step = %step.into, error = %e, "provisioning call failed")
                })?;
            config.insert(step.into.clone(), Some(result));
        }
        Ok(renew_by(
            spec,
            config,
            expires_in.map(|s| expiry(now, s)),
            now,
        ))
    }
}
