//! Failed authentications per client address.
//!
//! Secrets are long and random, but nothing else stops a client from trying them as fast
//! as Junction answers. Each address has a bucket of failures that refills at the
//! configured rate; an address whose bucket is empty is answered 429 before any secret
//! is looked at, so it learns nothing more until the bucket refills. Successful calls
//! take nothing from the bucket.

use crate::auth::Disabled;
use crate::{Caller, ServiceError, Services};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Addresses tracked at once; beyond this the least recently used are forgotten.
const TRACKED_ADDRESSES: u64 = 100_000;
/// A bucket refills from empty to full in this time.
const WINDOW: Duration = Duration::from_secs(60);

/// Per-address budget of failed authentications.
#[derive(Debug)]
pub struct FailureLimiter {
    /// Failures an address may make per [`WINDOW`]; 0 turns the limit off.
    per_window: u32,
    /// Take the client address from `X-Forwarded-For` (behind a proxy that sets it).
    trust_forwarded_for: bool,
    buckets: moka::sync::Cache<IpAddr, Arc<Mutex<Bucket>>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FailureLimiter {
    pub fn new(failures_per_minute: u32, trust_forwarded_for: bool) -> Self {
        Self {
            per_window: failures_per_minute,
            trust_forwarded_for,
            // An idle bucket is full again after one window: forgetting it loses nothing.
            buckets: moka::sync::Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                .time_to_idle(WINDOW)
                .build(),
        }
    }

    /// No limit at all.
    pub fn off() -> Self {
        Self::new(0, false)
    }

    pub fn trusts_forwarded_for(&self) -> bool {
        self.trust_forwarded_for
    }

    /// An IPv6 client usually holds a whole /64, so that is what one bucket covers.
    fn key(address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(bits.into())
                }
            },
            v4 => v4,
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let rate = f64::from(self.per_window) / WINDOW.as_secs_f64();
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(f64::from(self.per_window));
        bucket.at = now;
    }

    /// Takes one failure from the address's budget before an attempt, in the same
    /// locked step as the check, so that concurrent guesses cannot all pass a check made
    /// before any of them failed. `Err(wait)` while the budget is spent. An attempt that
    /// turns out not to be a failed guess gives the failure back with [`Self::give_back`].
    pub fn take(&self, address: IpAddr) -> Result<(), Duration> {
        if self.per_window == 0 {
            return Ok(());
        }
        let full = f64::from(self.per_window);
        let bucket = self.buckets.get_with(Self::key(address), || {
            Arc::new(Mutex::new(Bucket {
                tokens: full,
                at: Instant::now(),
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        self.refill(&mut bucket, Instant::now());
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let per_token = WINDOW.as_secs_f64() / full;
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per_token))
    }

    /// Returns a failure taken by [`Self::take`] for an attempt that did not fail.
    pub fn give_back(&self, address: IpAddr) {
        if self.per_window == 0 {
            return;
        }
        if let Some(bucket) = self.buckets.get(&Self::key(address)) {
            let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
            self.refill(&mut bucket, Instant::now());
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.per_window));
        }
    }

    /// Runs an authentication `attempt` from `client` within its budget. A call without
    /// credentials guesses nothing, so only presented ones that fail are counted.
    pub async fn guard(
        &self,
        client: Option<IpAddr>,
        presented: bool,
        attempt: impl Future<Output = Result<Caller, ServiceError>>,
    ) -> Result<Caller, ServiceError> {
        if let Some(address) = client {
            self.take(address)
                .map_err(|wait| ServiceError::TooManyRequests {
                    message: "too many failed authentications from this address; try again later"
                        .to_owned(),
                    retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
                })?;
        }
        let result = attempt.await;
        let failed_guess = presented && matches!(result, Err(ServiceError::Unauthorized(_)));
        if let (Some(address), false) = (client, failed_guess) {
            self.give_back(address);
        }
        result
    }
}

/// What a call's credentials must prove, which decides how the header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// A platform call: a user, or an Element token for its own instance
    /// ([`Services::authenticate`]).
    Platform,
    /// An `/instances/…` twin without an id: the Element token's instance, also beside its
    /// account's user ([`Services::authenticate_addressed`]).
    TokenInstance,
    /// A call that acts as the instance, such as the proxy
    /// ([`Services::authenticate_instance`]).
    ActingInstance,
    /// A hub resource call: as [`Addressing::ActingInstance`], a disabled instance
    /// included ([`Services::authenticate_hub_instance`]).
    HubInstance,
    /// As `Platform`, for a call that only reads what an instance offers (its API
    /// docs): a disabled instance's Element token still proves it.
    PlatformReading,
    /// As `TokenInstance`, reading what the token's instance offers, disabled or not.
    TokenInstanceReading,
}

impl Services {
    /// Authenticates a call from a client at `client`, within that address's budget of
    /// failed authentications.
    pub async fn authenticate_within_budget(
        &self,
        addressing: Addressing,
        client: Option<IpAddr>,
        header: Option<&str>,
    ) -> Result<Caller, ServiceError> {
        let attempt = async {
            match addressing {
                Addressing::Platform => self.authenticate(header).await,
                Addressing::TokenInstance => self.authenticate_addressed(header).await,
                Addressing::ActingInstance => self.authenticate_instance(header).await,
                Addressing::HubInstance => self.authenticate_hub_instance(header).await,
                Addressing::PlatformReading => {
                    self.authenticate_checked(header, Disabled::Admitted).await
                }
                Addressing::TokenInstanceReading => {
                    self.authenticate_addressed_checked(header, Disabled::Admitted)
                        .await
                }
            }
        };
        self.auth_failures
            .guard(client, header.is_some(), attempt)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unauthorized() -> Result<Caller, ServiceError> {
        Err(ServiceError::Unauthorized("bad secret".into()))
    }

    #[test]
    fn an_address_is_stopped_after_its_failures_and_others_are_not() {
        let limiter = FailureLimiter::new(3, false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.take(a).is_ok());
        }
        let wait = limiter.take(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.take(b).is_ok());
    }

    #[test]
    fn one_ipv6_network_shares_a_bucket() {
        let limiter = FailureLimiter::new(1, false);
        limiter.take("2001:db8::1".parse().unwrap()).unwrap();
        assert!(limiter.take("2001:db8::ffff".parse().unwrap()).is_err());
        assert!(limiter.take("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = FailureLimiter::off();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert!(limiter.take(a).is_ok());
        }
    }

    /// Every guess is in flight (its credential being looked up) before any has failed:
    /// only the budget's worth may get that far.
    #[tokio::test]
    async fn concurrent_guesses_get_no_more_than_the_budget() {
        let limiter = FailureLimiter::new(3, false);
        let client = Some("192.0.2.7".parse().unwrap());
        let gate = tokio::sync::Semaphore::new(0);
        let attempted = std::sync::atomic::AtomicUsize::new(0);
        let guesses = (0..10).map(|_| {
            limiter.guard(client, true, async {
                attempted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Held until every guess has been started.
                let _ = gate.acquire().await;
                unauthorized()
            })
        });
        let all = async {
            // Starts every guess once, then lets the started ones finish.
            let mut started = Vec::new();
            let mut results = Vec::new();
            for mut guess in guesses.map(Box::pin) {
                match futures_poll_once(guess.as_mut()).await {
                    Some(result) => results.push(result),
                    None => started.push(guess),
                }
            }
            gate.add_permits(10);
            for guess in started {
                results.push(guess.await);
            }
            results
        };
        let results = all.await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(ServiceError::TooManyRequests { .. })))
            .count();
        assert_eq!(attempted.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(refused, 7, "{results:?}");
    }

    /// Polls a future once; `Some` if it finished.
    async fn futures_poll_once<F: Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn successes_and_calls_without_credentials_spend_nothing() {
        let limiter = FailureLimiter::new(1, false);
        let client = Some("192.0.2.8".parse().unwrap());
        for _ in 0..5 {
            let r = limiter.guard(client, false, async { unauthorized() }).await;
            assert!(matches!(r, Err(ServiceError::Unauthorized(_))), "{r:?}");
        }
        let r = limiter.guard(client, true, async { unauthorized() }).await;
        assert!(matches!(r, Err(ServiceError::Unauthorized(_))), "{r:?}");
        let r = limiter.guard(client, true, async { unauthorized() }).await;
        assert!(
            matches!(r, Err(ServiceError::TooManyRequests { .. })),
            "{r:?}"
        );
    }
}
