//! Keeping an instance's provider credentials alive.
//!
//! A token is renewed the way the element's `oauth.refresh` section says: the standard
//! refresh-token grant, or Graph's token extension. Three rules hold whoever asks (a
//! call about to use an expiring token, a call whose token the provider just refused, the
//! background sweep):
//!
//! - a refresh token is spent at most once: calls in this process queue on a
//!   per-instance mutex, and replicas sharing the database on the instance's refresh
//!   lease; whoever comes second re-reads the stored token instead of refreshing again;
//! - the provider's answer is written before anything else happens, fenced by the lease,
//!   so a rotated refresh token cannot be lost;
//! - a refusal for good (`invalid_grant`, `invalid_client`, …) turns the instance invalid
//!   with the provider's reason, and a transient failure backs off without invalidating.

use crate::credentials::value;
use crate::instances::split;
use crate::{ServiceError, Services, now_ms};
use junction_core::config::keys;
use junction_core::element::{OAuthSpec, RefreshGrant};
use junction_core::{AccountId, ConfigMap, ElementDefinition, InstanceId, Secret};
use junction_oauth::{
    ClientCredentials, OAuthError, TokenResponse, client_credentials_grant, exchange_long_lived,
    refresh_grant,
};
use junction_store::{InstanceRecord, RefreshedCredentials, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A token is renewed this long before it expires at most…
const MAX_MARGIN_MS: i64 = 5 * 60 * 1000;
/// …and at least this share of its lifetime before (a 2-second token, 0.2 s before).
const MARGIN_DIVISOR: i64 = 10;
/// Lifetime assumed when neither the provider nor the configuration said.
const DEFAULT_LIFETIME_MS: i64 = 3600 * 1000;
/// A lease outlives the token request by this much, so a live holder never loses it (the
/// database write after the answer is all that is left); a dead holder's lease frees
/// itself this long after its request would have timed out.
const LEASE_SLACK_MS: i64 = 10_000;
/// How often a caller waiting for another replica's refresh looks again.
const LEASE_POLL: Duration = Duration::from_millis(50);
/// First pause before writing a refresh's answer again while the database is away…
const SAVE_RETRY_FIRST: Duration = Duration::from_millis(50);
/// …doubled up to this.
const SAVE_RETRY_MAX: Duration = Duration::from_secs(1);
/// Backoff after the first transient failure: the token's renewal margin (a tenth of its
/// lifetime), so a token is tried again before it has long expired, but at least this…
const MIN_BACKOFF_MS: i64 = 1_000;
/// …and at most this; doubled for each further failure…
const BASE_BACKOFF_MS: i64 = 30_000;
/// …up to this.
const MAX_BACKOFF_MS: i64 = 3600 * 1000;
/// Instances a sweep reads (and refreshes) at a time; it goes on until none is due.
const SWEEP_BATCH: i64 = 500;
/// The longest lifetime a token is taken at, whoever says otherwise (ten years): every
/// expiry is computed in epoch milliseconds, which a larger number of seconds overflows.
pub(crate) const MAX_LIFETIME_S: i64 = 10 * 365 * 24 * 3600;

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// When a token issued at `now` and living `seconds` expires, without overflowing.
pub(crate) fn expiry(now: i64, seconds: i64) -> i64 {
    now.saturating_add(seconds.clamp(0, MAX_LIFETIME_S).saturating_mul(1000))
}

/// A lifetime a provider or the configuration gave, within what Junction takes: a
/// negative one means nothing, a longer one than [`MAX_LIFETIME_S`] is cut to it.
pub(crate) fn sane_lifetime(seconds: i64) -> Option<i64> {
    (seconds >= 0).then(|| seconds.min(MAX_LIFETIME_S))
}

/// Single-flight of refreshes in this process, and this process's lease owner name.
pub struct RefreshCoordinator {
    owner: String,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl RefreshCoordinator {
    pub fn new() -> Self {
        Self {
            owner: format!("junction-{}", uuid::Uuid::new_v4().simple()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The name this process writes into the leases it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lock_for(&self, id: InstanceId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds now and then, so the map does not keep one entry per
        // instance ever refreshed.
        if locks.len() > 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(id.0).or_default())
    }
}

impl Default for RefreshCoordinator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RefreshCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshCoordinator")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// What one background sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Instances whose token was close enough to expiry to look at.
    pub due: usize,
    /// Instances given a new token by this sweep.
    pub refreshed: usize,
    /// Instances whose refresh failed (each is logged with its id).
    pub failed: usize,
}

/// Why a refresh is wanted; each is re-checked against the stored record once the
/// refresh is ours to do, because someone else may have done it meanwhile.
enum Need<'a> {
    /// The token expires within its margin (plus `ahead_ms`, for the sweep).
    Expiring { ahead_ms: i64 },
    /// The provider refused this token.
    Rejected(&'a Secret),
}

enum Outcome {
    /// This call refreshed.
    Renewed(Secret),
    /// The stored token is good (someone else refreshed, or nothing was needed).
    Current(Secret),
}

impl Outcome {
    fn token(self) -> Secret {
        match self {
            Self::Renewed(t) | Self::Current(t) => t,
        }
    }
}

/// How long before expiry a token is renewed.
fn margin_ms(record: &InstanceRecord) -> i64 {
    let lifetime = record
        .config
        .get(keys::REFRESH_INTERVAL)
        .and_then(|s| s.as_deref())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map(|s| s.min(MAX_LIFETIME_S) * 1000)
        .unwrap_or(DEFAULT_LIFETIME_MS);
    (lifetime / MARGIN_DIVISOR).min(MAX_MARGIN_MS)
}

fn is_needed(record: &InstanceRecord, need: &Need<'_>, now: i64) -> bool {
    let stored = record
        .config
        .get(keys::USER_TOKEN)
        .and_then(|t| t.as_deref());
    needs_renewal(
        stored,
        record.token_expires_at,
        margin_ms(record),
        need,
        now,
    )
}

/// Whether the stored token (`stored`, running out at `expires_at`) must be renewed.
fn needs_renewal(
    stored: Option<&str>,
    expires_at: Option<i64>,
    margin_ms: i64,
    need: &Need<'_>,
    now: i64,
) -> bool {
    match need {
        Need::Expiring { ahead_ms } => expires_at
            .is_some_and(|at| at.saturating_sub(now) <= margin_ms.saturating_add(*ahead_ms)),
        // A stored token other than the one refused was renewed meanwhile and is used
        // as it is, unless it has run out too: after a pause in renewals (the database
        // away, every replica restarted) the stored token can be older than its lifetime,
        // and replaying the call with it would only be refused again.
        Need::Rejected(rejected) => {
            stored.is_none_or(|stored| stored == rejected.expose())
                || expires_at.is_some_and(|at| at <= now)
        }
    }
}

fn stored_token(record: &InstanceRecord) -> Result<Secret, ServiceError> {
    record
        .config
        .get(keys::USER_TOKEN)
        .and_then(|t| t.as_deref())
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| ServiceError::ReauthorizationRequired {
            instance_id: record.id.0,
            reason: Some("the instance has no access token".to_owned()),
        })
}

fn ensure_valid(record: &InstanceRecord) -> Result<(), ServiceError> {
    if record.valid {
        Ok(())
    } else {
        Err(ServiceError::ReauthorizationRequired {
            instance_id: record.id.0,
            reason: record.invalid_reason.clone(),
        })
    }
}

/// Writes a token response into the configuration: the tokens, when they were issued,
/// how long they live, and the element's `tokenResponse` fields (Salesforce's
/// `instance_url` becomes `base.url` again on every refresh). Without a new refresh token
/// the old one stays when `keep_refresh_token`. Returns when the token expires.
pub(crate) fn apply_tokens(
    spec: &OAuthSpec,
    config: &mut ConfigMap,
    tokens: &TokenResponse,
    now: i64,
    keep_refresh_token: bool,
) -> Option<i64> {
    config.insert(
        keys::USER_TOKEN.into(),
        Some(tokens.access_token.expose().to_owned()),
    );
    match &tokens.refresh_token {
        Some(rotated) => {
            config.insert(
                keys::REFRESH_TOKEN.into(),
                Some(rotated.expose().to_owned()),
            );
        }
        None if !keep_refresh_token => {
            config.insert(keys::REFRESH_TOKEN.into(), None);
        }
        None => {}
    }
    let expires_in = tokens.expires_in.and_then(sane_lifetime);
    if let Some(expires_in) = expires_in {
        config.insert(keys::REFRESH_INTERVAL.into(), Some(expires_in.to_string()));
    }
    config.insert(keys::REFRESH_TIME.into(), Some(now.to_string()));
    for (field, key) in &spec.token_response {
        if let Some(v) = tokens.fields.get(field) {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            config.insert(key.clone(), Some(text));
        }
    }
    expires_in.map(|s| expiry(now, s))
}

/// The configured `oauth.user.refresh_interval`, when it is a positive number of seconds:
/// how long a token lives when the provider does not say (Salesforce sends no
/// `expires_in`), as in Cloud Elements.
pub(crate) fn configured_lifetime(config: &ConfigMap) -> Option<i64> {
    config
        .get(keys::REFRESH_INTERVAL)
        .cloned()
        .flatten()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map(|s| s.min(MAX_LIFETIME_S))
}

/// When the credentials in `config` must be renewed next: when the access token expires,
/// and for elements renewing with a refresh token at the latest one keep-alive period from
/// now, so the refresh token is used before a provider would drop it for disuse and a
/// token without `expires_in` is still renewed.
pub(crate) fn renew_by(
    spec: &OAuthSpec,
    config: &ConfigMap,
    expires_at: Option<i64>,
    now: i64,
) -> Option<i64> {
    let keep_alive = spec
        .refresh
        .as_ref()
        .filter(|r| r.grant == RefreshGrant::RefreshToken && r.keep_alive > 0)
        .filter(|_| {
            config
                .get(keys::REFRESH_TOKEN)
                .and_then(|t| t.as_deref())
                .is_some_and(|t| !t.is_empty())
        })
        .map(|r| expiry(now, i64::try_from(r.keep_alive).unwrap_or(i64::MAX)));
    match (expires_at, keep_alive) {
        (Some(expires), Some(keep)) => Some(expires.min(keep)),
        (expires, keep) => expires.or(keep),
    }
}

impl Services {
    /// The access token to call the provider with now, renewed first when it expires
    /// within its margin. An invalid instance fails fast with `reauthorization_required`.
    pub async fn current_access_token(
        &self,
        instance: &InstanceRecord,
    ) -> Result<Secret, ServiceError> {
        ensure_valid(instance)?;
        let need = Need::Expiring { ahead_ms: 0 };
        if !is_needed(instance, &need, now_ms()) {
            return stored_token(instance);
        }
        // Boxed: a renewal's future is several kilobytes, which every provider call's
        // future would otherwise carry (and copy) for the rare call that renews.
        Ok(
            Box::pin(self.refresh_instance(instance.account_id, instance.id, need))
                .await?
                .token(),
        )
    }

    /// The provider refused `rejected`: refresh unless another caller already did, and
    /// return the token to replay the request with.
    pub async fn refresh_after_rejection(
        &self,
        instance: &InstanceRecord,
        rejected: &Secret,
    ) -> Result<Secret, ServiceError> {
        let rejected = Need::Rejected(rejected);
        // Boxed for the same reason as in `current_access_token`.
        Ok(
            Box::pin(self.refresh_instance(instance.account_id, instance.id, rejected))
                .await?
                .token(),
        )
    }

    /// One sweep of the background job: renews every valid instance whose token expires
    /// before the next sweep (`ahead`) plus its margin, `concurrency` at a time, in
    /// batches until none is left. One instance's failure is logged with its id and does
    /// not stop the others.
    pub async fn refresh_expiring(
        &self,
        ahead: Duration,
        concurrency: usize,
    ) -> Result<SweepReport, ServiceError> {
        let now = now_ms();
        let ahead_ms = i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX / 4);
        let mut report = SweepReport::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut after = None;
        loop {
            let batch = self
                .store
                .instances_due_for_refresh(
                    now,
                    now.saturating_add(ahead_ms).saturating_add(MAX_MARGIN_MS),
                    after,
                    SWEEP_BATCH,
                )
                .await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = Some((last.expires_at, last.id));
            let full = batch.len() as i64 == SWEEP_BATCH;
            let mut tasks = tokio::task::JoinSet::new();
            for candidate in batch {
                let services = self.clone();
                let permits = Arc::clone(&permits);
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let result = services
                        .refresh_instance(
                            candidate.account_id,
                            candidate.id,
                            Need::Expiring { ahead_ms },
                        )
                        .await;
                    (candidate.id, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((_, Ok(Outcome::Renewed(_)))) => {
                        report.due += 1;
                        report.refreshed += 1;
                    }
                    Ok((_, Ok(Outcome::Current(_)))) => {}
                    Ok((id, Err(e))) => {
                        report.due += 1;
                        report.failed += 1;
                        tracing::warn!(instance_id = %id, error = %e, "background refresh failed");
                    }
                    Err(e) => {
                        report.failed += 1;
                        tracing::error!(error = %e, "background refresh task failed");
                    }
                }
            }
            if !full {
                break;
            }
        }
        Ok(report)
    }

    fn lease_ms(&self) -> i64 {
        let timeout = self.outbound.settings().request_timeout.as_millis();
        i64::try_from(timeout).unwrap_or(i64::MAX / 4) + LEASE_SLACK_MS
    }

    /// The record as last committed, never an in-process copy: whether to spend a
    /// refresh token is decided on what another replica may have written a moment ago.
    async fn load(
        &self,
        account: AccountId,
        id: InstanceId,
    ) -> Result<InstanceRecord, ServiceError> {
        self.store
            .get_credentials_fresh(account, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ServiceError::InstanceNotFound(id.0),
                other => other.into(),
            })
    }

    /// The single-flight refresh: in-process mutex, then the database lease, re-reading
    /// the stored record at each step so a refresh someone else did is reused.
    async fn refresh_instance(
        &self,
        account: AccountId,
        id: InstanceId,
        need: Need<'_>,
    ) -> Result<Outcome, ServiceError> {
        let lock = self.refresh.lock_for(id);
        let _single_flight = lock.lock().await;
        let owner = self.refresh.owner();
        let lease_ms = self.lease_ms();
        // A holder that crashed frees its lease when it expires; waiting longer than
        // twice that means something else is wrong.
        let give_up_at = now_ms().saturating_add(lease_ms.saturating_mul(2));
        loop {
            let now = now_ms();
            let record = self.load(account, id).await?;
            ensure_valid(&record)?;
            if !is_needed(&record, &need, now) {
                return Ok(Outcome::Current(stored_token(&record)?));
            }
            let element = self.element_of(&record).await?;
            let Some((spec, grant)) = element
                .oauth
                .as_ref()
                .and_then(|spec| spec.renewal_grant().map(|g| (spec, g)))
            else {
                return not_renewable(&record, &need, &element);
            };
            let not_expired = record.token_expires_at.is_some_and(|at| at > now);
            if let Some(retry_at) = record.refresh_retry_at.filter(|at| *at > now) {
                return match need {
                    // The token still works for now; the backoff is respected.
                    Need::Expiring { .. } => Ok(Outcome::Current(stored_token(&record)?)),
                    Need::Rejected(_) => Err(ServiceError::Provider(OAuthError::Unreachable {
                        reason: format!(
                            "renewing the access token failed recently; the next attempt is in {} s",
                            retry_at.saturating_sub(now).saturating_add(999) / 1000
                        ),
                    })),
                };
            }
            if !self
                .store
                .acquire_refresh_lease(id, owner, now, now.saturating_add(lease_ms))
                .await?
            {
                // Another replica is refreshing. A token that has not expired yet is
                // still good to use meanwhile; otherwise wait for its result.
                if matches!(need, Need::Expiring { .. }) && not_expired {
                    return Ok(Outcome::Current(stored_token(&record)?));
                }
                if now > give_up_at {
                    return Err(ServiceError::Internal(format!(
                        "instance {id}'s refresh lease was not released in time"
                    )));
                }
                tokio::time::sleep(LEASE_POLL).await;
                continue;
            }
            // The lease is ours. Its previous holder may have finished between the read
            // above and the claim, so decide again on what is stored now.
            let record = match self.load(account, id).await {
                Ok(record) => record,
                Err(e) => {
                    self.store.release_refresh_lease(id, owner).await?;
                    return Err(e);
                }
            };
            if !record.valid || !is_needed(&record, &need, now_ms()) {
                self.store.release_refresh_lease(id, owner).await?;
                ensure_valid(&record)?;
                return Ok(Outcome::Current(stored_token(&record)?));
            }
            return self.refresh_leased(&element, spec, grant, record).await;
        }
    }

    /// Spends the refresh grant while holding the lease and records its outcome.
    async fn refresh_leased(
        &self,
        element: &ElementDefinition,
        spec: &OAuthSpec,
        grant: RefreshGrant,
        record: InstanceRecord,
    ) -> Result<Outcome, ServiceError> {
        let owner = self.refresh.owner();
        let id = record.id;
        let now = now_ms();
        let mut config = record.config.clone();
        let renewed = self.renew(spec, grant, &config).await;
        crate::metered::token_refresh(element, &renewed);
        match renewed {
            Ok(Some(tokens)) => {
                // Persisted before anything else: a rotated refresh token exists nowhere
                // but in this response.
                let expires_at = apply_tokens(spec, &mut config, &tokens, now, true)
                    .or_else(|| configured_lifetime(&config).map(|s| expiry(now, s)));
                self.keep_pinned_urls(id.0, spec, &mut config, &record.config);
                let expires_at = renew_by(spec, &config, expires_at, now);
                // Only what the refresh changed is written, so an update of other entries
                // that lands meanwhile is kept.
                let changed: ConfigMap = config
                    .into_iter()
                    .filter(|(key, value)| record.config.get(key) != Some(value))
                    .collect();
                let (public, secrets) = split(element, changed);
                let saved = self
                    .save_refreshed(
                        RefreshedCredentials {
                            id,
                            owner,
                            config: &public,
                            secrets: &secrets,
                            token_expires_at: expires_at,
                            now,
                        },
                        now.saturating_add(self.lease_ms()),
                    )
                    .await
                    .inspect_err(|e| {
                        tracing::error!(instance_id = %id, error = %e, "refreshed credentials could not be stored")
                    })?;
                let saved = saved
                    || match self.load(record.account_id, id).await {
                        // A write that committed although its answer was lost to the
                        // connection dropping: the credentials are stored.
                        Ok(stored) => {
                            stored
                                .config
                                .get(keys::USER_TOKEN)
                                .cloned()
                                .flatten()
                                .as_deref()
                                == Some(tokens.access_token.expose())
                        }
                        Err(_) => false,
                    };
                if !saved {
                    tracing::error!(instance_id = %id, "the refresh lease expired before the refreshed credentials were stored");
                    return Err(ServiceError::Internal(format!(
                        "instance {id}'s refresh lease expired during the refresh"
                    )));
                }
                tracing::info!(instance_id = %id, element = %element.key, "access token refreshed");
                Ok(Outcome::Renewed(tokens.access_token))
            }
            Ok(None) => {
                self.store.release_refresh_lease(id, owner).await?;
                tracing::info!(instance_id = %id, element = %element.key, "no credential to refresh with");
                match record.token_expires_at {
                    Some(at) if at <= now => Err(ServiceError::ReauthorizationRequired {
                        instance_id: id.0,
                        reason: Some(
                            "the access token expired and there is no refresh token".to_owned(),
                        ),
                    }),
                    _ => Ok(Outcome::Current(stored_token(&record)?)),
                }
            }
            Err(e) if e.is_permanent_refusal() => {
                let reason = e.provider_message().unwrap_or_else(|| e.to_string());
                self.store
                    .invalidate_after_refresh(id, owner, &reason, now)
                    .await?;
                tracing::warn!(instance_id = %id, element = %element.key, reason = %reason, "the provider refused the refresh; the instance needs re-authorization");
                Err(ServiceError::ReauthorizationRequired {
                    instance_id: id.0,
                    reason: Some(reason),
                })
            }
            Err(e) if e.is_transient() => {
                let exponent = u32::try_from(record.refresh_failures.clamp(0, 20)).unwrap_or(20);
                let backoff = margin_ms(&record)
                    .clamp(MIN_BACKOFF_MS, BASE_BACKOFF_MS)
                    .saturating_mul(1i64 << exponent)
                    .min(MAX_BACKOFF_MS);
                self.store
                    .defer_refresh(id, owner, now.saturating_add(backoff))
                    .await?;
                tracing::warn!(instance_id = %id, element = %element.key, error = %e, backoff_ms = backoff, "refresh failed; retrying later");
                Err(e.into())
            }
            Err(e) => {
                self.store.release_refresh_lease(id, owner).await?;
                tracing::warn!(instance_id = %id, element = %element.key, error = %e, "refresh failed");
                Err(e.into())
            }
        }
    }

    /// Writes a refresh's answer, trying again while the database is away and the lease
    /// lasts (until `lease_until`): a rotated refresh token exists nowhere else, so a
    /// PostgreSQL restart or failover in the moment after the provider answered must not
    /// cost the instance its grant. The write is fenced by the lease owner, so a retry
    /// can never overwrite what a later holder stored.
    async fn save_refreshed(
        &self,
        new: RefreshedCredentials<'_>,
        lease_until: i64,
    ) -> Result<bool, ServiceError> {
        let mut pause = SAVE_RETRY_FIRST;
        loop {
            let attempt = RefreshedCredentials { ..new };
            match self.store.save_refreshed_credentials(attempt).await {
                Err(e @ (StoreError::Unavailable(_) | StoreError::Timeout(_)))
                    if now_ms().saturating_add(duration_ms(pause)) < lease_until =>
                {
                    tracing::warn!(instance_id = %new.id, error = %e, "refreshed credentials could not be stored yet; trying again while the lease holds");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SAVE_RETRY_MAX);
                }
                other => return Ok(other?),
            }
        }
    }

    /// Asks the provider for a renewed token as `grant` says; `None` when the
    /// configuration holds nothing to renew with.
    pub(crate) async fn renew(
        &self,
        spec: &OAuthSpec,
        grant: RefreshGrant,
        config: &ConfigMap,
    ) -> Result<Option<TokenResponse>, OAuthError> {
        let client_secret = Secret::new(value(config, keys::API_SECRET));
        let token_url = value(config, keys::TOKEN_URL);
        let client_id = value(config, keys::API_KEY);
        let credentials = ClientCredentials {
            token_url: &token_url,
            client_id: &client_id,
            client_secret: &client_secret,
        };
        let held = |key: &str| {
            config
                .get(key)
                .cloned()
                .flatten()
                .filter(|t| !t.is_empty())
                .map(Secret::new)
        };
        match grant {
            RefreshGrant::RefreshToken => match held(keys::REFRESH_TOKEN) {
                Some(refresh_token) => {
                    refresh_grant(&self.outbound, spec, &credentials, &refresh_token)
                        .await
                        .map(Some)
                }
                None => Ok(None),
            },
            RefreshGrant::FbExchangeToken => match held(keys::USER_TOKEN) {
                Some(token) => exchange_long_lived(&self.outbound, &credentials, &token)
                    .await
                    .map(Some),
                None => Ok(None),
            },
            RefreshGrant::ClientCredentials => {
                let scope = value(config, keys::SCOPE);
                client_credentials_grant(&self.outbound, spec, &credentials, Some(&scope))
                    .await
                    .map(Some)
            }
        }
    }
}

/// The element has no way to renew a token.
fn not_renewable(
    record: &InstanceRecord,
    need: &Need<'_>,
    element: &ElementDefinition,
) -> Result<Outcome, ServiceError> {
    match need {
        Need::Expiring { .. } => Ok(Outcome::Current(stored_token(record)?)),
        Need::Rejected(_) => Err(ServiceError::ReauthorizationRequired {
            instance_id: record.id.0,
            reason: Some(format!(
                "the provider refused the access token and element '{}' cannot renew it",
                element.key
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_oauth::TokenResponse;

    const NOW: i64 = 1_790_000_000_000;

    fn spec(json: &str) -> OAuthSpec {
        serde_json::from_str(json).unwrap()
    }

    fn tokens(expires_in: Option<i64>) -> TokenResponse {
        TokenResponse {
            access_token: Secret::new("at"),
            refresh_token: Some(Secret::new("rt")),
            expires_in,
            fields: serde_json::Map::new(),
        }
    }

    #[test]
    fn a_refused_token_is_renewed_unless_a_newer_unexpired_one_is_stored() {
        let refused = Secret::new("old");
        let rejected = Need::Rejected(&refused);
        let needed = |stored, expires_at| needs_renewal(stored, expires_at, 0, &rejected, NOW);
        assert!(needed(Some("old"), Some(NOW + 60_000)));
        assert!(needed(None, Some(NOW + 60_000)));
        assert!(!needed(Some("new"), Some(NOW + 60_000)));
        assert!(!needed(Some("new"), None));
        // Renewed by someone else, but long enough ago that it has run out as well.
        assert!(needed(Some("new"), Some(NOW - 1)));
        assert!(needed(Some("new"), Some(NOW)));
    }

    #[test]
    fn a_huge_provider_lifetime_is_capped_instead_of_wrapping_into_the_past() {
        let mut config = ConfigMap::new();
        let at = apply_tokens(&spec("{}"), &mut config, &tokens(Some(i64::MAX)), NOW, true);
        assert_eq!(at, Some(NOW + MAX_LIFETIME_S * 1000));
        assert_eq!(
            config[keys::REFRESH_INTERVAL].as_deref(),
            Some(MAX_LIFETIME_S.to_string().as_str())
        );
        let mut config = ConfigMap::new();
        let at = apply_tokens(&spec("{}"), &mut config, &tokens(Some(i64::MIN)), NOW, true);
        assert_eq!(at, None, "a negative lifetime says nothing");
    }

    #[test]
    fn a_huge_configured_interval_or_keep_alive_still_lies_in_the_future() {
        let mut config = ConfigMap::new();
        config.insert(keys::REFRESH_INTERVAL.into(), Some(i64::MAX.to_string()));
        config.insert(keys::REFRESH_TOKEN.into(), Some("rt".into()));
        let lifetime = configured_lifetime(&config).unwrap();
        assert!(expiry(NOW, lifetime) > NOW);
        let keep = spec(r#"{"refresh":{"grant":"refreshToken","keepAlive":9223372036854775807}}"#);
        let by = renew_by(&keep, &config, None, NOW).unwrap();
        assert!(by > NOW, "{by}");
        assert_eq!(expiry(i64::MAX - 1, i64::MAX), i64::MAX);
    }
}
