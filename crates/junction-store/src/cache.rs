//! In-process copies of what every call made with an Element token reads: the instance
//! behind the token, and the principal behind a `User …, Organization …` pair.
//!
//! A proxied call would otherwise spend two or three database round trips before it
//! reaches the provider. The copies stay exact rather than "fresh enough":
//!
//! - every write of an instance, user or account drops the affected copies in this
//!   process after it commits, and on PostgreSQL also sends a `NOTIFY` inside its
//!   transaction, which every other replica's listener turns into the same drop;
//! - a copy read before a write committed is never kept after the write dropped it: each
//!   fill takes the invalidation epoch before reading and checks it again after storing,
//!   and every invalidation moves the epoch before it removes anything;
//! - while a replica's listener is not connected it may have missed notifications, so it
//!   reads from the database until the listener is back, and empties its copies then;
//! - a time to live bounds what a notification lost without a visible disconnect (a
//!   silent network partition) could leave behind.
//!
//! Reads that must see the latest committed row, such as a refresh deciding whether to
//! spend a refresh token, bypass the copies (`Store::get_instance_fresh`).

use crate::elements::{CustomElement, OrganizationElements};
use crate::{InstanceRecord, Principal};
use junction_core::Secret;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The PostgreSQL channel replicas announce their writes on.
pub(crate) const CHANNEL: &str = "junction_cache";

/// What a write changed, as far as the copies are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// One instance's row (its configuration, flags, credentials) or its existence.
    Instance(i64),
    /// Every instance and user of an account (the account was deleted).
    Account(i64),
    /// A user was removed, so some `User …, Organization …` pair no longer proves anyone.
    Users,
    /// A custom element of an organization was created, changed or deleted.
    Element { organization: i64, id: i64 },
}

impl Change {
    /// The `NOTIFY` payload: only numbers and fixed words, so it is safe to put in SQL.
    pub(crate) fn payload(self) -> String {
        match self {
            Self::Instance(id) => format!("instance:{id}"),
            Self::Account(id) => format!("account:{id}"),
            Self::Users => "users".to_owned(),
            Self::Element { organization, id } => format!("element:{organization}:{id}"),
        }
    }

    /// Reads a payload back; anything unknown means "drop everything", which is always safe.
    pub(crate) fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':').unwrap_or((payload, ""));
        if kind == "element" {
            let (organization, id) = id.split_once(':')?;
            return Some(Self::Element {
                organization: organization.parse().ok()?,
                id: id.parse().ok()?,
            });
        }
        match (kind, id.parse::<i64>()) {
            ("instance", Ok(id)) => Some(Self::Instance(id)),
            ("account", Ok(id)) => Some(Self::Account(id)),
            ("users", _) => Some(Self::Users),
            _ => None,
        }
    }
}

/// How much to keep, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Longest a copy is used; zero turns the copies off.
    pub ttl: Duration,
    /// Most instances kept (users are bounded by the same number), counting an instance
    /// as many typical ones as its size makes it: the memory held is at most about
    /// `capacity` × `TYPICAL_INSTANCE_BYTES`, however large instances are.
    pub capacity: u64,
}

/// What a typical instance's copy takes: the unit `CacheSettings::capacity` counts in.
pub(crate) const TYPICAL_INSTANCE_BYTES: u64 = 2048;

/// Roughly the bytes one instance's copy holds, for weighing it against the budget.
fn instance_weight(record: &InstanceRecord) -> u32 {
    let text: usize = record
        .config
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + 48)
        .sum::<usize>()
        + record.tags.iter().map(|t| t.len() + 24).sum::<usize>()
        + record.name.len()
        + record.element_key.len()
        + record.external_authentication.len()
        + record.invalid_reason.as_ref().map_or(0, String::len)
        + 256;
    u32::try_from(text).unwrap_or(u32::MAX)
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            capacity: 10_000,
        }
    }
}

/// A permission to keep what is read next, valid while no invalidation happens meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

type UserKey = (Vec<u8>, Vec<u8>);

/// An Element token as a map key: hashed and compared as its text, never printed.
#[derive(Clone, PartialEq, Eq)]
struct TokenKey(Secret);

impl std::hash::Hash for TokenKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.expose().hash(state);
    }
}

impl std::borrow::Borrow<str> for TokenKey {
    fn borrow(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The hot caches' hasher: every call looks its instance and token up, and the standard
/// library's SipHash costs several times more; their keys are ids and tokens Junction
/// issued, which a caller cannot choose to collide.
type FastHash = foldhash::fast::RandomState;

pub(crate) struct Cache {
    instances: moka::sync::Cache<i64, Arc<InstanceRecord>, FastHash>,
    /// Element token → instance id. A token never moves to another instance and ids are
    /// never reused, so only the instance copy needs invalidating. Keyed by the token
    /// itself, not its lookup hash: a kept call then computes no HMAC, and the tokens are
    /// in the kept records already.
    tokens: moka::sync::Cache<TokenKey, i64, FastHash>,
    users: moka::sync::Cache<UserKey, Principal>,
    /// Each organization's custom elements, weighed by their size.
    organization_elements: moka::sync::Cache<i64, Arc<OrganizationElements>>,
    /// Custom elements by id, for resolving an instance's element on every call.
    custom_elements: moka::sync::Cache<i64, Arc<CustomElement>>,
    enabled: bool,
    /// False while a replica may have missed another replica's writes.
    coherent: AtomicBool,
    epoch: AtomicU64,
}

impl Cache {
    pub(crate) fn new(settings: CacheSettings, coherent: bool) -> Self {
        let ttl = settings.ttl.max(Duration::from_millis(1));
        Self {
            // Weighed by size: a count alone let a few huge instances hold gigabytes.
            instances: moka::sync::Cache::builder()
                .max_capacity(settings.capacity.saturating_mul(TYPICAL_INSTANCE_BYTES))
                .weigher(|_, record: &Arc<InstanceRecord>| instance_weight(record))
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            tokens: moka::sync::Cache::builder()
                .max_capacity(settings.capacity)
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            users: moka::sync::Cache::builder()
                .max_capacity(settings.capacity)
                .time_to_live(ttl)
                .build(),
            organization_elements: moka::sync::Cache::builder()
                .max_capacity(settings.capacity.saturating_mul(TYPICAL_INSTANCE_BYTES))
                .weigher(|_, elements: &Arc<OrganizationElements>| elements.weight())
                .time_to_live(ttl)
                .build(),
            custom_elements: moka::sync::Cache::builder()
                .max_capacity(settings.capacity.saturating_mul(TYPICAL_INSTANCE_BYTES))
                .weigher(|_, element: &Arc<CustomElement>| {
                    u32::try_from(element.stored_bytes + 256).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            enabled: !settings.ttl.is_zero() && settings.capacity > 0,
            coherent: AtomicBool::new(coherent),
            epoch: AtomicU64::new(0),
        }
    }

    /// Whether copies are kept at all (a zero TTL turns them off).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn usable(&self) -> bool {
        self.enabled && self.coherent.load(Ordering::Acquire)
    }

    /// Taken before reading what may be kept.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.usable()
            .then(|| Ticket(self.epoch.load(Ordering::SeqCst)))
    }

    pub(crate) fn instance(&self, id: i64) -> Option<Arc<InstanceRecord>> {
        if !self.usable() {
            return None;
        }
        looked_up("instance", self.instances.get(&id))
    }

    /// The instance `token` belongs to. The record's own token is compared too: ids are
    /// never reused, but a copy must not be what decides who a caller is.
    pub(crate) fn instance_by_token(&self, token: &str) -> Option<Arc<InstanceRecord>> {
        if !self.usable() {
            return None;
        }
        let id = looked_up("token", self.tokens.get(token))?;
        self.instances
            .get(&id)
            .filter(|record| record.token.expose() == token)
    }

    /// Keeps a record read after `ticket` was taken, unless something was invalidated since.
    pub(crate) fn keep_instance(&self, ticket: Ticket, record: Arc<InstanceRecord>) {
        let id = record.id.0;
        self.tokens.insert(TokenKey(record.token.clone()), id);
        self.instances.insert(id, record);
        // An invalidation moves the epoch before it removes; one that raced this insert
        // either removed it already or shows here.
        if self.epoch.load(Ordering::SeqCst) != ticket.0 {
            self.instances.invalidate(&id);
        }
    }

    pub(crate) fn user(&self, key: &UserKey) -> Option<Principal> {
        if !self.usable() {
            return None;
        }
        looked_up("user", self.users.get(key))
    }

    pub(crate) fn keep_user(&self, ticket: Ticket, key: UserKey, principal: Principal) {
        self.users.insert(key.clone(), principal);
        if self.epoch.load(Ordering::SeqCst) != ticket.0 {
            self.users.invalidate(&key);
        }
    }

    pub(crate) fn organization_elements(
        &self,
        organization: i64,
    ) -> Option<Arc<OrganizationElements>> {
        if !self.usable() {
            return None;
        }
        looked_up("elements", self.organization_elements.get(&organization))
    }

    pub(crate) fn keep_organization_elements(
        &self,
        ticket: Ticket,
        organization: i64,
        elements: Arc<OrganizationElements>,
    ) {
        self.organization_elements.insert(organization, elements);
        if self.epoch.load(Ordering::SeqCst) != ticket.0 {
            self.organization_elements.invalidate(&organization);
        }
    }

    pub(crate) fn custom_element(&self, id: i64) -> Option<Arc<CustomElement>> {
        if !self.usable() {
            return None;
        }
        looked_up("element", self.custom_elements.get(&id))
    }

    pub(crate) fn keep_custom_element(&self, ticket: Ticket, element: Arc<CustomElement>) {
        let id = element.definition.id;
        self.custom_elements.insert(id, element);
        if self.epoch.load(Ordering::SeqCst) != ticket.0 {
            self.custom_elements.invalidate(&id);
        }
    }

    /// Drops the copies a committed write made stale.
    pub(crate) fn forget(&self, change: Change) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::Instance(id) => self.instances.invalidate(&id),
            Change::Account(_) => {
                self.instances.invalidate_all();
                self.users.invalidate_all();
            }
            Change::Users => self.users.invalidate_all(),
            Change::Element { organization, id } => {
                self.organization_elements.invalidate(&organization);
                self.custom_elements.invalidate(&id);
            }
        }
    }

    pub(crate) fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.instances.invalidate_all();
        self.tokens.invalidate_all();
        self.users.invalidate_all();
        self.organization_elements.invalidate_all();
        self.custom_elements.invalidate_all();
    }

    /// Whether this replica currently hears every other replica's writes.
    pub(crate) fn set_coherent(&self, coherent: bool) {
        if coherent {
            // Whatever was kept before may predate writes that were not heard.
            self.forget_all();
            self.coherent.store(true, Ordering::Release);
        } else {
            self.coherent.store(false, Ordering::Release);
            self.forget_all();
        }
    }

    pub(crate) fn is_coherent(&self) -> bool {
        self.coherent.load(Ordering::Acquire)
    }
}

/// Counts a lookup's hit or miss; lookups while the copies are unusable are not counted.
fn looked_up<T>(kind: &'static str, found: Option<T>) -> Option<T> {
    junction_telemetry::cache_lookup(kind, found.is_some());
    found
}

/// Follows the other replicas' writes on PostgreSQL until `stop` fires or is dropped.
pub(crate) async fn follow(
    url: String,
    cache: Arc<Cache>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use sqlx::postgres::PgListener;
    let mut backoff = Duration::from_millis(250);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = &mut stop => return,
            result = connected => match result {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot listen for other replicas' writes; reading instances from the database meanwhile");
                    tokio::select! {
                        _ = &mut stop => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(250);
        cache.set_coherent(true);
        tracing::debug!("listening for other replicas' writes");
        loop {
            let next = tokio::select! {
                _ = &mut stop => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(notification)) => match Change::parse(notification.payload()) {
                    Some(change) => cache.forget(change),
                    None => cache.forget_all(),
                },
                // The connection dropped. The listener would quietly connect again on the
                // next call, but copies filled before its LISTEN is back could miss writes
                // announced meanwhile: stop using copies until it is, as for an error.
                Ok(None) => {
                    tracing::warn!(
                        "lost the database connection for other replicas' writes; reading instances from the database until it is back"
                    );
                    cache.set_coherent(false);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the database connection for other replicas' writes; reading instances from the database until it is back");
                    cache.set_coherent(false);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_core::{AccountId, ConfigMap, InstanceId, Secret, UserId};

    fn record(id: i64) -> Arc<InstanceRecord> {
        Arc::new(InstanceRecord {
            id: InstanceId(id),
            account_id: AccountId(1),
            user_id: UserId(1),
            element_id: 1,
            element_key: "sfdc".into(),
            name: "x".into(),
            token: Secret::new("t".to_owned()),
            config: ConfigMap::new(),
            tags: vec![],
            valid: true,
            disabled: false,
            trace_logging_until: None,
            external_authentication: "none".into(),
            token_expires_at: None,
            invalid_reason: None,
            refresh_retry_at: None,
            refresh_failures: 0,
            created_at: 0,
            updated_at: 0,
        })
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let cache = Cache::new(CacheSettings::default(), true);
        let ticket = cache.ticket().unwrap();
        // A write commits and invalidates while the fill is reading the old row.
        cache.forget(Change::Instance(7));
        cache.keep_instance(ticket, record(7));
        assert!(cache.instance(7).is_none());
        assert!(cache.instance_by_token("t").is_none());

        let ticket = cache.ticket().unwrap();
        cache.keep_instance(ticket, record(7));
        assert_eq!(cache.instance_by_token("t").unwrap().id, InstanceId(7));
        assert!(cache.instance_by_token("other").is_none());
    }

    #[test]
    fn nothing_is_served_while_other_replicas_writes_may_be_missed() {
        let cache = Cache::new(CacheSettings::default(), true);
        let ticket = cache.ticket().unwrap();
        cache.keep_instance(ticket, record(3));
        cache.set_coherent(false);
        assert!(!cache.is_coherent());
        assert!(cache.ticket().is_none());
        assert!(cache.instance(3).is_none());
        cache.set_coherent(true);
        // What was kept before the gap is gone, not merely hidden.
        assert!(cache.instance(3).is_none());
    }

    #[test]
    fn copies_are_weighed_by_size_not_counted() {
        let cache = Cache::new(
            CacheSettings {
                ttl: Duration::from_secs(60),
                capacity: 100,
            },
            true,
        );
        let mut big = Arc::unwrap_or_clone(record(1));
        // Half the whole budget in one instance's configuration.
        big.config.insert("x".into(), Some("v".repeat(100 * 1024)));
        let big = Arc::new(big);
        assert!(u64::from(instance_weight(&big)) > 50 * TYPICAL_INSTANCE_BYTES);
        for id in 1..=10 {
            let mut r = Arc::unwrap_or_clone(Arc::clone(&big));
            r.id = InstanceId(id);
            let ticket = cache.ticket().unwrap();
            cache.keep_instance(ticket, Arc::new(r));
        }
        cache.instances.run_pending_tasks();
        assert!(
            cache.instances.weighted_size() <= 100 * TYPICAL_INSTANCE_BYTES,
            "{} bytes kept",
            cache.instances.weighted_size()
        );
        assert!(cache.instances.entry_count() < 10);
    }

    #[test]
    fn a_zero_ttl_turns_the_copies_off() {
        let cache = Cache::new(
            CacheSettings {
                ttl: Duration::ZERO,
                capacity: 10,
            },
            true,
        );
        assert!(cache.ticket().is_none());
    }

    #[test]
    fn payloads_round_trip_and_unknown_ones_are_refused() {
        for change in [
            Change::Instance(42),
            Change::Account(9),
            Change::Users,
            Change::Element {
                organization: 3,
                id: 100_004,
            },
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change));
        }
        assert_eq!(Change::parse("instance:x"), None);
        assert_eq!(Change::parse("something"), None);
        assert_eq!(Change::parse("element:3"), None);
    }
}
