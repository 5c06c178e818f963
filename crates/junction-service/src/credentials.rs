//! Getting an instance its provider credentials: exchanging an authorization code, or
//! taking tokens the caller obtained itself (`externalAuthentication: "initial"`), then
//! running the element's provisioning calls.

use crate::hosts;
use crate::refresh::{
    MAX_LIFETIME_S, apply_tokens, configured_lifetime, expiry, renew_by, sane_lifetime,
};
use crate::schemes::oauth1_credentials;
use crate::{ServiceError, Services, now_ms};
use junction_core::config::keys;
use junction_core::element::{AuthenticationType, OAuthSpec, RefreshGrant};
use junction_core::{ConfigMap, ElementDefinition, Secret};
use junction_oauth::oauth1::access_token;
use junction_oauth::{CodeExchange, exchange_code, run_provision_step};

/// How the caller wants the instance authenticated.
pub(crate) enum Authorization<'a> {
    /// Exchange this authorization code (with the PKCE verifier of its authorization).
    Code {
        code: &'a str,
        verifier: Option<&'a str>,
    },
    /// Use the tokens already in the configuration.
    External,
    /// Obtain a token with the client id and secret alone (`grant: clientCredentials`).
    ClientCredentials,
    /// Exchange an authorized OAuth 1.0a request token.
    OAuth1 {
        token: &'a str,
        secret: &'a str,
        verifier: &'a str,
    },
    /// The credentials are configuration values (`basic`, `apiKey`, `custom`).
    Configured,
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
        config: &mut ConfigMap,
        authorization: Authorization<'_>,
    ) -> Result<Option<i64>, ServiceError> {
        match (authorization, element.authentication.kind) {
            (Authorization::Configured, _) => {
                self.validate_credentials(element, config).await?;
                Ok(None)
            }
            (
                Authorization::OAuth1 {
                    token,
                    secret,
                    verifier,
                },
                _,
            ) => {
                let request_token = Some((token.to_owned(), Secret::new(secret)));
                let credentials = oauth1_credentials(element, config, request_token);
                let answer = access_token(
                    &self.outbound,
                    &value(config, keys::TOKEN_URL),
                    &credentials,
                    verifier,
                )
                .await
                .inspect_err(|e| tracing::info!(element = %element.key, error = %e, "OAuth 1.0a token exchange failed"))?;
                config.insert(keys::USER_TOKEN.into(), Some(answer.token));
                config.insert(
                    keys::USER_TOKEN_SECRET.into(),
                    Some(answer.secret.expose().to_owned()),
                );
                config.insert(keys::REFRESH_TIME.into(), Some(now_ms().to_string()));
                Ok(None)
            }
            (Authorization::External, AuthenticationType::Oauth1) => {
                let missing: Vec<String> = [keys::USER_TOKEN, keys::USER_TOKEN_SECRET]
                    .iter()
                    .filter(|k| value(config, k).trim().is_empty())
                    .map(|k| (*k).to_owned())
                    .collect();
                if !missing.is_empty() {
                    return Err(ServiceError::MissingConfiguration(missing));
                }
                Ok(None)
            }
            (authorization, _) => {
                let spec = element.oauth.as_ref().ok_or_else(|| {
                    ServiceError::bad_request(
                        "not_oauth_element",
                        format!("element '{}' does not use OAuth 2.0", element.key),
                    )
                })?;
                self.obtain_oauth2(element, spec, config, authorization)
                    .await
            }
        }
    }

    async fn obtain_oauth2(
        &self,
        element: &ElementDefinition,
        spec: &OAuthSpec,
        config: &mut ConfigMap,
        authorization: Authorization<'_>,
    ) -> Result<Option<i64>, ServiceError> {
        let now = now_ms();
        let configured = refresh_interval(config)?;
        // Every caller held these to the element's pins already; the answer is judged on
        // what it changes.
        let checked = hosts::bound_values(config);
        let (access_token, expires_in) = match authorization {
            Authorization::Code { code, verifier } => {
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
                        code_verifier: verifier,
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
            Authorization::ClientCredentials => {
                let tokens = self
                    .renew(spec, RefreshGrant::ClientCredentials, config)
                    .await
                    .inspect_err(|e| {
                        tracing::info!(element = %element.key, error = %e, "client-credentials grant failed")
                    })?
                    .ok_or_else(|| {
                        ServiceError::Internal("the client-credentials grant gave no token".into())
                    })?;
                apply_tokens(spec, config, &tokens, now, false);
                let expires_in = tokens
                    .expires_in
                    .and_then(sane_lifetime)
                    .or_else(|| configured_lifetime(config));
                (tokens.access_token, expires_in)
            }
            Authorization::OAuth1 { .. } | Authorization::Configured => {
                return Err(ServiceError::Internal(
                    "not an OAuth 2.0 authorization".into(),
                ));
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
        self.check_answer_pins(element, spec, config, &checked)?;
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
