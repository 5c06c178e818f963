//! A bound on the calls one caller may have in progress at once.
//!
//! The database pool is shared by every tenant. Without a bound, one caller sending
//! many expensive calls at once holds every connection, and everyone else's calls (and
//! the refresh sweep) wait for a connection until they fail. Calls over the bound are
//! refused at once with `429 too_many_requests` and `Retry-After`, rather than queued:
//! a queue would hold the caller's requests in memory and hide the overload from it,
//! while a 429 tells a well-behaved client to slow down. Proxied calls are not counted:
//! they hold no database connection while the provider answers.

use junction_service::{Caller, ServiceError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Who is counted: a user, or an Element token's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CallerKey {
    User(i64),
    Instance(i64),
}

impl CallerKey {
    fn of(caller: &Caller) -> Self {
        match caller {
            Caller::User(p) => Self::User(p.user_id.0),
            Caller::Instance(t) => Self::Instance(t.instance_id.0),
        }
    }
}

pub struct CallerLimits {
    max: usize,
    in_progress: Mutex<HashMap<CallerKey, usize>>,
}

impl CallerLimits {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            in_progress: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more call of `caller`, unless it already has `max` in progress.
    pub fn try_acquire(self: &Arc<Self>, caller: &Caller) -> Result<CallerPermit, ServiceError> {
        let key = CallerKey::of(caller);
        let mut counts = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return Err(ServiceError::TooManyRequests {
                message: "too many calls in progress for this caller; retry when one has finished"
                    .to_owned(),
                retry_after: 1,
            });
        }
        *count += 1;
        Ok(CallerPermit {
            limits: Arc::clone(self),
            key,
        })
    }
}

/// One call in progress; dropping it (the response is ready, or the client went away)
/// frees the place.
pub struct CallerPermit {
    limits: Arc<CallerLimits>,
    key: CallerKey,
}

impl Drop for CallerPermit {
    fn drop(&mut self) {
        let mut counts = self
            .limits
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Only callers with calls in progress take memory.
                counts.remove(&self.key);
            }
        }
    }
}
