//! Outbound rate-limit budgets (GCRA), kept where every replica sees them: in memory on
//! SQLite (one server per database), in `rate_budgets` on PostgreSQL.
//!
//! A budget is one number, its theoretical arrival time (`tat`). A call may go at any
//! time `at` no earlier than `tat - tolerance`, and that grant moves `tat` to
//! `max(tat, at) + interval`. Since every grant adds at least `interval` to `tat`, any
//! `m` grants sent within a window `w` satisfy `(m - 1) * interval - tolerance < w`,
//! whatever order they were granted in, so a grant may be booked for a later time
//! (`not_before`) without breaking the bound. On PostgreSQL each grant is one
//! `insert … on conflict … do update … returning` on the database's clock, so two
//! replicas together are held to the same bound.

use crate::{Dialect, Store, StoreError};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// How one budget paces, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Time each grant books (`window / sustained requests per window`).
    pub interval: i64,
    /// How far ahead of `tat` a grant may go: `(burst - 1) * interval`.
    pub tolerance: i64,
    /// The latest a grant may be booked, counted from now.
    pub max_wait: i64,
}

/// The answer to a request for a slot; times are microseconds on the budget's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Send at `at` (`at - now` from now). `tat` identifies the grant for
    /// [`Store::return_rate_slot`].
    Granted { at: i64, now: i64, tat: i64 },
    /// No slot within `max_wait`; one is free without waiting in `free_in`.
    Refused { free_in: i64 },
}

/// The GCRA step, for a budget whose state is `tat` (`None`: never used, or long idle).
/// Returns the new state and the answer. The PostgreSQL statement in
/// [`Store::take_rate_slot`] is this same arithmetic.
fn take(tat: Option<i64>, now: i64, pace: Pace, not_before: Option<i64>) -> (i64, Slot) {
    let floor = now.max(not_before.unwrap_or(now));
    let (at, booked) = match tat {
        Some(tat) => (
            floor.max(tat.saturating_sub(pace.tolerance)),
            tat.max(floor),
        ),
        None => (floor, floor),
    };
    if at - now > pace.max_wait {
        return (tat.unwrap_or(now), Slot::Refused { free_in: at - now });
    }
    let tat = booked.saturating_add(pace.interval);
    (tat, Slot::Granted { at, now, tat })
}

/// Budgets of a single server, on its monotonic clock.
#[derive(Debug)]
pub(crate) struct MemoryBudgets {
    start: Instant,
    /// Keys are Junction's own (element and instance ids): a fast hash is safe.
    budgets: Mutex<HashMap<String, i64, foldhash::fast::RandomState>>,
    taken: AtomicU64,
}

/// Every this many grants, budgets whose `tat` has passed are forgotten.
const PRUNE_EVERY: u64 = 1024;

impl MemoryBudgets {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            budgets: Mutex::new(HashMap::default()),
            taken: AtomicU64::new(0),
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    fn take(&self, key: &str, pace: Pace, not_before: Option<i64>) -> Slot {
        let now = self.now();
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        if self.taken.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            budgets.retain(|_, tat| *tat >= now);
        }
        // The key is copied only the first time: most calls find their budget.
        match budgets.get_mut(key) {
            Some(kept) => {
                let (tat, slot) = take(Some(*kept), now, pace, not_before);
                *kept = tat;
                slot
            }
            None => {
                let (tat, slot) = take(None, now, pace, not_before);
                budgets.insert(key.to_owned(), tat);
                slot
            }
        }
    }

    fn give_back(&self, key: &str, pace: Pace, granted_tat: i64) {
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tat) = budgets.get_mut(key)
            && *tat == granted_tat
        {
            *tat -= pace.interval;
        }
    }

    fn defer(&self, key: &str, at_least: i64) {
        let until = self.now().saturating_add(at_least);
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = budgets.entry(key.to_owned()).or_insert(until);
        *tat = (*tat).max(until);
    }
}

/// The database's clock in microseconds, read once per statement.
const DB_NOW: &str = "select (extract(epoch from clock_timestamp()) * 1000000)::bigint as now";

impl Store {
    /// A keyed hash of `value` (an OAuth client id) to name a budget by: the database
    /// and the logs never hold the id itself.
    pub fn budget_hash(&self, value: &str) -> String {
        self.keyring()
            .lookup_hash(&format!("rate budget\u{0}{value}"))
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Books the earliest slot of budget `key` at or after `not_before` (a time on the
    /// same clock, from an earlier [`Slot::Granted`]), unless it lies beyond
    /// `pace.max_wait`. One atomic step: concurrent callers, on any replica, each get a
    /// different slot.
    pub async fn take_rate_slot(
        &self,
        key: &str,
        pace: Pace,
        not_before: Option<i64>,
    ) -> Result<Slot, StoreError> {
        if self.dialect == Dialect::Sqlite {
            return Ok(self.budgets.take(key, pace, not_before));
        }
        // $5: not_before, 0 when none (the database's clock is far past 0).
        let sql = format!(
            "with c as ({DB_NOW}) \
             insert into rate_budgets as b (key, tat, granted_at) \
             select $1, \
               case when greatest(c.now, $5) - c.now <= $4 then greatest(c.now, $5) + $2 else c.now end, \
               case when greatest(c.now, $5) - c.now <= $4 then greatest(c.now, $5) else null end \
             from c \
             on conflict (key) do update set \
               tat = case when greatest((select now from c), $5, b.tat - $3) - (select now from c) <= $4 \
                     then greatest(b.tat, (select now from c), $5) + $2 else b.tat end, \
               granted_at = case when greatest((select now from c), $5, b.tat - $3) - (select now from c) <= $4 \
                     then greatest((select now from c), $5, b.tat - $3) else null end \
             returning tat, granted_at, (select now from c) as now"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(pace.interval)
            .bind(pace.tolerance)
            .bind(pace.max_wait)
            .bind(not_before.unwrap_or(0))
            .fetch_one(self.writer())
            .await?;
        let tat: i64 = row.try_get("tat")?;
        let now: i64 = row.try_get("now")?;
        Ok(match row.try_get::<Option<i64>, _>("granted_at")? {
            Some(at) => Slot::Granted { at, now, tat },
            None => {
                let at = now.max(not_before.unwrap_or(now)).max(tat - pace.tolerance);
                Slot::Refused { free_in: at - now }
            }
        })
    }

    /// Gives back a grant that will not be used (its caller went away while waiting),
    /// if no later grant was booked after it; otherwise it stays booked, unused, which
    /// delays nobody beyond what was already promised.
    pub async fn return_rate_slot(
        &self,
        key: &str,
        pace: Pace,
        granted_tat: i64,
    ) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite {
            self.budgets.give_back(key, pace, granted_tat);
            return Ok(());
        }
        sqlx::query("update rate_budgets set tat = tat - $2 where key = $1 and tat = $3")
            .bind(key)
            .bind(pace.interval)
            .bind(granted_tat)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Grants no slot of budget `key` sooner than `delay` (microseconds) from now: the
    /// provider asked to be left alone that long.
    pub async fn defer_rate_budget(
        &self,
        key: &str,
        pace: Pace,
        delay: i64,
    ) -> Result<(), StoreError> {
        // A slot is free once `tat - tolerance` has passed.
        let at_least = delay.saturating_add(pace.tolerance);
        if self.dialect == Dialect::Sqlite {
            self.budgets.defer(key, at_least);
            return Ok(());
        }
        let sql = format!(
            "with c as ({DB_NOW}) \
             insert into rate_budgets as b (key, tat, granted_at) \
             select $1, c.now + $2, null from c \
             on conflict (key) do update set tat = greatest(b.tat, excluded.tat)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(at_least)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// Deletes the budgets whose `tat` has passed (they hold nothing a missing row would
    /// not); returns how many. On SQLite the budgets prune themselves as they are used.
    pub async fn prune_rate_budgets(&self) -> Result<u64, StoreError> {
        if self.dialect == Dialect::Sqlite {
            return Ok(0);
        }
        let sql = format!("delete from rate_budgets where tat < ({DB_NOW})");
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 per 2 s, bursts of 3: three sustained per window after a burst.
    const PACE: Pace = Pace {
        interval: 666_667,
        tolerance: 2 * 666_667,
        max_wait: 10_000_000,
    };

    fn granted(slot: Slot) -> i64 {
        match slot {
            Slot::Granted { at, .. } => at,
            Slot::Refused { .. } => panic!("refused"),
        }
    }

    #[test]
    fn a_burst_goes_at_once_and_the_rest_is_spaced() {
        let mut tat = None;
        let mut at = Vec::new();
        for _ in 0..6 {
            let (t, slot) = take(tat, 0, PACE, None);
            tat = Some(t);
            at.push(granted(slot));
        }
        assert_eq!(
            at,
            [0, 0, 0, 666_667, 2 * 666_667, 3 * 666_667],
            "three at once, then one per interval"
        );
    }

    #[test]
    fn no_window_holds_more_than_the_limit_whatever_the_order_of_bookings() {
        // Callers arrive at scattered times, some booking for later (`not_before`).
        let mut tat = None;
        let mut sends = Vec::new();
        let mut seed: u64 = 7;
        let mut now = 0;
        for _ in 0..400 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            now += i64::try_from(seed >> 44).unwrap() % 400_000;
            let not_before = seed
                .is_multiple_of(3)
                .then(|| now + i64::try_from(seed >> 50).unwrap());
            let (t, slot) = take(tat, now, PACE, not_before);
            tat = Some(t);
            if let Slot::Granted { at, .. } = slot {
                sends.push(at);
            }
        }
        sends.sort_unstable();
        // R + B - 1 = 3 + 3 - 1 = 5 in any window of 3 intervals (2 s).
        let window = 3 * PACE.interval;
        for (i, start) in sends.iter().enumerate() {
            let inside = sends[i..]
                .iter()
                .take_while(|s| **s < start + window)
                .count();
            assert!(inside <= 5, "{inside} sends in the window from {start}");
        }
        assert!(sends.len() > 100);
    }

    #[test]
    fn beyond_the_longest_wait_a_call_is_refused_and_told_when_a_slot_is_free() {
        let pace = Pace {
            max_wait: 1_000_000,
            ..PACE
        };
        let mut tat = None;
        let mut answers = Vec::new();
        for _ in 0..6 {
            let (t, slot) = take(tat, 0, pace, None);
            tat = Some(t);
            answers.push(slot);
        }
        assert!(matches!(answers[3], Slot::Granted { at: 666_667, .. }));
        assert_eq!(
            answers[5],
            Slot::Refused {
                free_in: 2 * 666_667
            }
        );
    }

    #[test]
    fn a_returned_slot_is_free_again_only_if_it_was_the_last_one() {
        let budgets = MemoryBudgets::new();
        let pace = Pace {
            tolerance: 0,
            ..PACE
        };
        let Slot::Granted { tat: first, .. } = budgets.take("k", pace, None) else {
            panic!()
        };
        let Slot::Granted {
            tat: second,
            at,
            now,
        } = budgets.take("k", pace, None)
        else {
            panic!()
        };
        assert!(at - now > 600_000, "the second waits an interval");
        budgets.give_back("k", pace, first);
        assert_eq!(budgets.budgets.lock().unwrap()["k"], second, "kept");
        budgets.give_back("k", pace, second);
        let Slot::Granted { at, now, .. } = budgets.take("k", pace, None) else {
            panic!()
        };
        assert!(at - now > 600_000 - 100_000 && at - now <= 666_667);
    }

    #[test]
    fn a_deferred_budget_grants_nothing_before_the_delay() {
        let budgets = MemoryBudgets::new();
        budgets.take("k", PACE, None);
        budgets.defer("k", 3_000_000 + PACE.tolerance);
        let Slot::Granted { at, now, .. } = budgets.take("k", PACE, None) else {
            panic!()
        };
        assert!(at - now >= 2_900_000, "{}", at - now);
    }
}
