//! Outbound rate limits: Junction paces its calls to a provider so that they stay under
//! the limits the element declares (`rateLimits`), instead of learning them from the
//! provider's 429s.
//!
//! Each declared limit of a call is one budget (see `junction_store::rate`): the
//! instance's own, or one shared by every instance of the organization that uses the same
//! OAuth client (the provider's app). A call books a slot in each of its budgets for one
//! common time and sleeps until then; when that time lies beyond the limit's `maxWait`
//! the call is refused with `429 rate_limited` and the provider never sees it. A provider
//! that answers 429 or 503 with `Retry-After` anyway pushes every budget of the call past
//! that time, for every caller and replica sharing them.

use crate::{ServiceError, Services};
use http::{HeaderMap, StatusCode};
use junction_core::config::keys;
use junction_core::element::AuthenticationType;
use junction_core::rate::{RateLimit, RateScope};
use junction_core::{AccountId, ElementDefinition, OrganizationId};
use junction_store::{InstanceRecord, Pace, Slot, Store};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// What a provider's clock may see of the time between Junction's grant and the call's
/// arrival, which varies from call to call: each window is paced this much longer than
/// declared, so no window the provider measures holds one call too many.
const JITTER: Duration = Duration::from_millis(250);
/// Longest a provider's `Retry-After` holds a budget back: a larger one is nonsense.
const MAX_DEFERRAL: Duration = Duration::from_secs(86_400);
/// How often one process deletes the budgets that have run out.
const PRUNE_INTERVAL_MS: i64 = 60_000;
/// Rounds of booking a common time for all budgets of a call before giving up.
const MAX_ROUNDS: usize = 4;
/// How much earlier than the call's time a budget's slot may be and still count as the
/// same time (microseconds): the budgets are booked one statement after another, and
/// the clock moves in between. Sending that much after a booked time stays within
/// [`JITTER`].
const SAME_TIME: i64 = 100_000;

/// The pacer of one process.
#[derive(Debug)]
pub struct Pacer {
    /// No call waits longer than the provider call timeout.
    max_wait_cap: Duration,
    /// Accounts never change organization, so this only ever saves lookups.
    organizations: moka::sync::Cache<AccountId, OrganizationId>,
    last_prune_ms: AtomicI64,
}

/// One limit as applied to one call.
#[derive(Debug, Clone)]
struct Budget {
    key: String,
    pace: Pace,
    /// Described only when a call is refused: most calls never need the words.
    limit: RateLimit,
    max_wait: Duration,
}

/// The budgets a provider call of an instance spends from; none when its element
/// declares no limit, and then the pacer costs nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budgets(Vec<Budget>);

impl Pacer {
    pub fn new(max_wait_cap: Duration) -> Self {
        Self {
            max_wait_cap,
            organizations: moka::sync::Cache::builder().max_capacity(100_000).build(),
            last_prune_ms: AtomicI64::new(0),
        }
    }

    fn budget(&self, limit: &RateLimit, scope_key: &str) -> Budget {
        let window = micros(limit.per.0 + JITTER);
        let burst = i64::from(limit.burst());
        // A burst of B followed by one call per interval keeps any window to
        // R + B - 1 calls (see `junction_store::rate`), so R = requests - B + 1.
        let sustained = (i64::from(limit.requests) - burst + 1).max(1);
        let interval = (window + sustained - 1) / sustained;
        let max_wait = limit.max_wait().min(self.max_wait_cap);
        Budget {
            // Budgets are shared only by calls that pace alike: one schedule kept under
            // two pacings would hold to neither.
            key: budget_key(scope_key, limit.requests, micros(limit.per.0), burst),
            pace: Pace {
                interval,
                tolerance: (burst - 1) * interval,
                max_wait: micros(max_wait),
            },
            limit: limit.clone(),
            max_wait,
        }
    }
}

/// `{scope}:{requests}/{per µs}/{burst}`, written without `format!`: every provider call
/// of an element with limits builds one per limit.
fn budget_key(scope: &str, requests: u32, per: i64, burst: i64) -> String {
    let (mut a, mut b, mut c) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    let (requests, per, burst) = (a.format(requests), b.format(per), c.format(burst));
    let mut key = String::with_capacity(scope.len() + requests.len() + per.len() + burst.len() + 3);
    for part in [scope, ":", requests, "/", per, "/", burst] {
        key.push_str(part);
    }
    key
}

/// The key of an instance's own budgets.
fn instance_scope(id: i64) -> String {
    let mut number = itoa::Buffer::new();
    let digits = number.format(id);
    let mut key = String::with_capacity(digits.len() + 1);
    key.push('i');
    key.push_str(digits);
    key
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Seconds, rounded up, at least 1: what `Retry-After` says.
fn whole_seconds(micros: i64) -> u64 {
    u64::try_from(micros.max(1))
        .unwrap_or(1)
        .div_ceil(1_000_000)
}

impl Services {
    /// The budgets a call of `record` (an instance of `element`) spends from.
    pub(crate) async fn rate_budgets(
        &self,
        element: &ElementDefinition,
        record: &InstanceRecord,
    ) -> Result<Budgets, ServiceError> {
        if element.rate_limits.is_empty() {
            return Ok(Budgets::default());
        }
        let mut app_key: Option<String> = None;
        let mut budgets = Vec::with_capacity(element.rate_limits.len());
        for limit in &element.rate_limits {
            let scope_key = match limit.scope {
                RateScope::Instance => instance_scope(record.id.0),
                RateScope::App => match &app_key {
                    Some(key) => key.clone(),
                    None => {
                        let key = self.app_scope_key(element, record).await?;
                        app_key = Some(key.clone());
                        key
                    }
                },
            };
            budgets.push(self.pacer.budget(limit, &scope_key));
        }
        Ok(Budgets(budgets))
    }

    /// The provider counts an app's calls by its OAuth client id, which the budget's key
    /// holds only as a keyed hash. The organization is part of the key, so that no
    /// tenant can spend another's budget by naming its client id.
    async fn app_scope_key(
        &self,
        element: &ElementDefinition,
        record: &InstanceRecord,
    ) -> Result<String, ServiceError> {
        let organization = match self.pacer.organizations.get(&record.account_id) {
            Some(id) => id,
            None => {
                let id = self.store.account_organization(record.account_id).await?;
                self.pacer.organizations.insert(record.account_id, id);
                id
            }
        };
        let oauth = matches!(
            element.authentication.kind,
            AuthenticationType::Oauth2 | AuthenticationType::Oauth1
        );
        let client = record
            .config
            .get(keys::API_KEY)
            .cloned()
            .flatten()
            .filter(|id| oauth && !id.is_empty());
        Ok(match client {
            Some(client) => format!("a{}:{}", organization.0, self.store.budget_hash(&client)),
            None => format!("e{}:{}", organization.0, element.id),
        })
    }

    /// Waits for a slot in every budget of a call, or refuses the call with
    /// `rate_limited` when one lies beyond its limit's `maxWait`. Dropped while waiting,
    /// it gives its slots back.
    ///
    /// All budgets must book the same time. A budget whose slot comes later than the
    /// others' raises that time, and only the budgets booked earlier are booked again,
    /// so the budget that holds the call back is booked once: a booking that cannot be
    /// given back (another call was booked after it) then costs only a budget with room.
    pub(crate) async fn pace(&self, budgets: &Budgets) -> Result<(), ServiceError> {
        if budgets.0.is_empty() {
            return Ok(());
        }
        self.prune_now_and_then();
        let mut held = Held {
            store: self.store.clone(),
            slots: Vec::new(),
        };
        let mut target: Option<i64> = None;
        let mut clock = 0;
        for _ in 0..MAX_ROUNDS {
            for (index, budget) in budgets.0.iter().enumerate() {
                let booked_in_time = held
                    .slots
                    .iter()
                    .any(|b| b.index == index && target.is_none_or(|t| b.at + SAME_TIME >= t));
                if booked_in_time {
                    continue;
                }
                held.give_back_one(index).await;
                match self
                    .store
                    .take_rate_slot(&budget.key, budget.pace, target)
                    .await?
                {
                    Slot::Refused { free_in } => {
                        held.give_back().await;
                        return Err(refused(budget, free_in));
                    }
                    Slot::Granted { at, now, tat } => {
                        held.slots.push(Booked {
                            index,
                            budget: budget.clone(),
                            tat,
                            at,
                        });
                        clock = now;
                        target = Some(target.map_or(at, |t| t.max(at)));
                    }
                }
            }
            let Some(target) = target else {
                break;
            };
            if held.slots.iter().all(|b| b.at + SAME_TIME >= target) {
                let wait = target - clock;
                if wait > 0 {
                    tracing::debug!(wait_ms = wait / 1000, "waiting for a rate-limit slot");
                    tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                }
                held.slots.clear();
                return Ok(());
            }
        }
        held.give_back().await;
        let budget = &budgets.0[0];
        Err(refused(budget, micros(budget.max_wait)))
    }

    /// A provider that answered 429 or 503 with `Retry-After` gets no call from any
    /// budget of this one before that time.
    pub(crate) async fn heed_provider_limit(
        &self,
        budgets: &Budgets,
        status: StatusCode,
        headers: &HeaderMap,
    ) {
        if budgets.0.is_empty()
            || !matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
        {
            return;
        }
        let Some(delay) = crate::proxy::retry_after(headers, chrono::Utc::now()) else {
            return;
        };
        let delay = micros(delay.min(MAX_DEFERRAL));
        for budget in &budgets.0 {
            if let Err(e) = self
                .store
                .defer_rate_budget(&budget.key, budget.pace, delay)
                .await
            {
                tracing::warn!(error = %e, "could not record a provider's Retry-After");
            }
        }
    }

    fn prune_now_and_then(&self) {
        let now = crate::now_ms();
        let last = self.pacer.last_prune_ms.load(Ordering::Relaxed);
        if now - last < PRUNE_INTERVAL_MS
            || self
                .pacer
                .last_prune_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            match store.prune_rate_budgets().await {
                Ok(n) if n > 0 => tracing::debug!(pruned = n, "pruned idle rate budgets"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not prune rate budgets"),
            }
        });
    }
}

fn refused(budget: &Budget, free_in: i64) -> ServiceError {
    let retry_after = whole_seconds(free_in);
    ServiceError::RateLimited {
        message: format!(
            "the provider allows {}; no slot is free within {} s, so the call was not sent; retry after {retry_after} s",
            budget.limit.describe(),
            budget.max_wait.as_secs_f64()
        ),
        retry_after,
    }
}

/// Slots booked for a call that has not gone out yet. Dropped with slots in it (the
/// caller went away while waiting), it gives them back.
struct Held {
    store: Store,
    slots: Vec<Booked>,
}

/// One budget's booking for a call.
struct Booked {
    /// Which of the call's budgets.
    index: usize,
    budget: Budget,
    /// Identifies the booking when it is given back.
    tat: i64,
    /// When it lets the call go.
    at: i64,
}

impl Held {
    async fn give_back(&mut self) {
        for booked in self.slots.drain(..) {
            return_slot(&self.store, booked).await;
        }
    }

    async fn give_back_one(&mut self, index: usize) {
        if let Some(at) = self.slots.iter().position(|b| b.index == index) {
            return_slot(&self.store, self.slots.swap_remove(at)).await;
        }
    }
}

async fn return_slot(store: &Store, booked: Booked) {
    if let Err(e) = store
        .return_rate_slot(&booked.budget.key, booked.budget.pace, booked.tat)
        .await
    {
        tracing::warn!(error = %e, "could not give back a rate-limit slot");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = Held {
            store: self.store.clone(),
            slots: std::mem::take(&mut self.slots),
        };
        runtime.spawn(async move { rest.give_back().await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(json: &str) -> RateLimit {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_budget_keeps_every_window_to_the_limit_with_room_for_jitter() {
        let pacer = Pacer::new(Duration::from_secs(30));
        let b = pacer.budget(&limit(r#"{"requests": 5, "per": 2}"#), "i1");
        // Burst 3, then 3 per window: (2 s + jitter) / 3.
        assert_eq!(b.pace.interval, 750_000);
        assert_eq!(b.pace.tolerance, 1_500_000);
        assert_eq!(b.pace.max_wait, 10_000_000);
        assert_eq!(b.key, "i1:5/2000000/3");
        let b = pacer.budget(
            &limit(r#"{"requests": 100, "per": 10, "burst": 1, "maxWait": 60}"#),
            "i1",
        );
        assert_eq!(b.pace.interval, 102_500, "one call per 1/100 of the window");
        assert_eq!(b.pace.tolerance, 0);
        assert_eq!(b.pace.max_wait, 30_000_000, "capped by the call timeout");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(1), 1);
        assert_eq!(whole_seconds(0), 1);
        assert_eq!(whole_seconds(1_000_000), 1);
        assert_eq!(whole_seconds(1_000_001), 2);
    }
}
