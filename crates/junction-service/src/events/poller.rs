//! Polling: the changes of `polling` instances, read through the hub resource engine, as events.
//!
//! The watermark of a resource is the start of the last complete poll (`since`) and the
//! changes emitted at or after it (the store's `seen`: id → what the change looked like).
//! A poll reads everything changed since `since`, skips what `seen` already holds, and
//! stores each page's events together with their `seen` rows in one transaction: a poll
//! killed at any point and run again finds the same changes and emits only those it had
//! not stored.
//! Only a complete poll moves `since`, to its own start, so a change made while a poll
//! runs is read again by the next one (and emitted once, thanks to `seen`).

use super::{EventHub, POLLING_EVENTS_PER_NOTIFICATION, keys};
use crate::view::iso8601;
use crate::{Caller, ServiceError, Services, now_ms};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use http::{HeaderMap, Method};
use junction_core::{ConfigMap, ElementDefinition};
use junction_core::{InstanceId, events::text};
use junction_oauth::ProxyBody;
use junction_store::{
    ClaimedPoller, InstanceRecord, NewEvent, PollOutcome, PollerRow, PollerWrite, SeenChange,
    TokenPrincipal,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Configuration entries polling reads.
pub mod poll_keys {
    pub const VENDOR_TYPE: &str = "event.vendor.type";
    pub const REFRESH_INTERVAL: &str = "event.poller.refresh_interval";
    pub const CONFIGURATION: &str = "event.poller.configuration";
    /// The objects a `{objectName}` resource is repeated for (Cloud Elements' key).
    pub const OBJECTS: &str = "event.objects";
}

/// Minutes between polls when the instance does not say.
pub const DEFAULT_REFRESH_MINUTES: u64 = 15;
/// How long a claimed poll may run before another replica may take it over, in poller
/// minutes (five minutes, unless tests shorten the minute); every page stored extends it.
const LEASE_MINUTES: u32 = 5;
/// Pollers one replica runs at once.
pub const POLL_CONCURRENCY: usize = 4;
/// The largest vendor answer read per page.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
/// Pages one resource is read for at most in one poll; the rest waits for the next.
const MAX_PAGES: usize = 10_000;

/// Instances the start-up reconciliation reads at once.
const RECONCILE_PAGE: i64 = 500;

/// What the start-up reconciliation found and fixed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Instances that poll.
    pub polling: usize,
    /// Pollers created for instances that poll but had none.
    pub created: usize,
    /// Pollers removed because their instance does not poll.
    pub removed: usize,
    /// Stopped pollers of valid instances let run again.
    pub resumed: usize,
}

/// What one scheduler round did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PollReport {
    pub polled: usize,
    pub events: usize,
    pub failed: usize,
    pub stopped: usize,
}

/// What the events API shows of an instance's poller.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollerView {
    /// `starting` (events were just turned on), `polling` (a poll runs now), `waiting`
    /// (for its next poll), `backingOff` (after a vendor error) or `stopped` (the
    /// instance must be fixed first).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_polled_at: Option<String>,
    pub next_poll_at: String,
    /// Failed polls in a row.
    pub failures: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Per resource: the start of the last complete poll, from which the next one reads.
    pub since: BTreeMap<String, String>,
}

/// One resource of `event.poller.configuration` (spec §4.2). Numbers may come as text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceConfig {
    url: String,
    #[serde(default)]
    id_field: Option<String>,
    #[serde(default)]
    dates_configuration: DatesConfiguration,
    #[serde(default)]
    filter_by_updated_date: Option<Value>,
    #[serde(default)]
    created_check_tolerance: Option<Value>,
    #[serde(default)]
    page_size: Option<Value>,
    #[serde(default)]
    poll_delay: Option<Value>,
    /// The events' `objectType`; the resource's name by default.
    #[serde(default)]
    object_type: Option<String>,
    /// A field that is `true` on a deleted record (Salesforce's `IsDeleted`, which
    /// `queryAll` returns): such a record is `DELETED`.
    #[serde(default)]
    deleted_field: Option<String>,
    /// For a `{objectName}` resource: the objects when `event.objects` names none, as a
    /// comma-separated list or as a hub list URL whose records' `id`s they are.
    #[serde(default)]
    objects: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatesConfiguration {
    updated_date_field: Option<String>,
    updated_date_format: Option<String>,
    updated_date_timezone: Option<String>,
    created_date_field: Option<String>,
    created_date_format: Option<String>,
    created_date_timezone: Option<String>,
    created_check_tolerance: Option<Value>,
}

/// A resource to poll, its placeholders still in place.
#[derive(Debug, Clone)]
struct PollResource {
    name: String,
    object_type: String,
    url: String,
    id_field: String,
    deleted_field: Option<String>,
    updated: Option<DateField>,
    created: Option<DateField>,
    filter_by_updated: bool,
    tolerance_ms: i64,
    page_size: Option<u64>,
    delay_ms: i64,
}

#[derive(Debug, Clone)]
struct DateField {
    path: String,
    format: Option<String>,
    zone: FixedOffset,
}

/// The stored watermark of one instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Watermark {
    /// Where a resource polled for the first time starts (epoch ms).
    #[serde(default)]
    start: i64,
    #[serde(default)]
    resources: BTreeMap<String, ResourceMark>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ResourceMark {
    since: i64,
}

/// Why a poll did not complete.
enum PollError {
    /// The lease went to another replica: it carries on, this one writes nothing more.
    LeaseLost,
    Service(ServiceError),
}

impl From<ServiceError> for PollError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl From<junction_store::StoreError> for PollError {
    fn from(e: junction_store::StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// A name for one process's poll leases, unique across replicas.
pub fn poller_owner() -> String {
    format!("poller-{}", uuid::Uuid::new_v4())
}

/// The watermark a new poller starts with: changes from `start` on.
pub fn initial_watermark(start: i64) -> String {
    json!({"start": start, "resources": {}}).to_string()
}

/// The wait after `failures` failed polls in a row: `base` doubled per failure, at most
/// `cap`; a provider's `Retry-After` is waited out in full even when longer.
pub fn backoff(
    failures: i64,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = failures.clamp(0, 30) as u32;
    let wait = base.saturating_mul(2u32.saturating_pow(exp)).min(cap);
    match retry_after {
        Some(asked) => wait.max(asked),
        None => wait,
    }
}

impl Services {
    /// One scheduler round: runs the due pollers this replica can claim,
    /// `POLL_CONCURRENCY` at a time. It finds them among the poller rows alone, scanning
    /// no instance (each claimed poll then reads its own): the instance writes keep the
    /// rows (see [`Services::poller_write`]), and [`Services::reconcile_pollers`] repairs
    /// them once at start.
    pub async fn poll_due(&self, owner: &str) -> Result<PollReport, ServiceError> {
        let now = now_ms();
        let claimed = self
            .store
            .claim_pollers(
                owner,
                now,
                now + self.poll_lease_ms(),
                POLL_CONCURRENCY as i64,
            )
            .await?;
        let mut report = PollReport::default();
        let mut tasks = tokio::task::JoinSet::new();
        for claim in claimed {
            let services = self.clone();
            let owner = owner.to_owned();
            tasks.spawn(async move { services.run_poller(&owner, claim).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Some(PollResult::Done(events))) => {
                    report.polled += 1;
                    report.events += events;
                }
                Ok(Some(PollResult::Failed)) => report.failed += 1,
                Ok(Some(PollResult::Stopped)) => report.stopped += 1,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "a poll task ended abnormally"),
            }
        }
        Ok(report)
    }

    fn poll_lease_ms(&self) -> i64 {
        (self.events.settings.poll_minute * LEASE_MINUTES).as_millis() as i64
    }

    /// What writing `record` does to its poller: whether it polls is decided here, from
    /// the instance and its element, for the store to apply in the same transaction. A
    /// poller it creates reports the changes made from `from` on (the write's time: the
    /// moment events were turned on).
    pub(crate) fn poller_write(
        record: &InstanceRecord,
        element: &ElementDefinition,
        from: i64,
    ) -> PollerWrite {
        Self::poller_write_for(&record.config, record.disabled, element, from)
    }

    /// [`Services::poller_write`] for an instance's configuration before it is stored.
    pub(crate) fn poller_write_for(
        config: &ConfigMap,
        disabled: bool,
        element: &ElementDefinition,
        from: i64,
    ) -> PollerWrite {
        if polls(config, disabled, element) {
            PollerWrite::Poll {
                watermark: initial_watermark(from),
            }
        } else {
            PollerWrite::Off
        }
    }

    /// Brings the poller rows in line with the instances that poll: creates missing ones,
    /// drops those of instances that do not poll, and lets a stopped poller of a valid
    /// instance run again. Instance writes keep the rows themselves; this repairs what an
    /// older version wrote or a lost write left, once at start. It walks the instances
    /// whose configuration mentions events and the poller rows together, by id, a page
    /// at a time.
    pub async fn reconcile_pollers(&self) -> Result<ReconcileReport, ServiceError> {
        let mut report = ReconcileReport::default();
        let mut after = 0;
        loop {
            let page = self.store.polling_candidates(after, RECONCILE_PAGE).await?;
            let upto = page.last().map_or(i64::MAX, |r| r.id.0);
            let mut rows: BTreeMap<i64, PollerRow> = self
                .store
                .poller_rows(after, upto)
                .await?
                .into_iter()
                .map(|r| (r.instance_id.0, r))
                .collect();
            for record in &page {
                let row = rows.remove(&record.id.0);
                self.reconcile_poller(record, row, &mut report).await?;
            }
            // Rows of instances the page did not find: disabled, events off, gone, or
            // written since the page was read. Each is read again and decided on its own.
            for row in rows.into_values() {
                let id = row.instance_id;
                let record = match self.store.instance_account(id).await {
                    Ok(account) => self.store.get_instance_fresh(account, id).await,
                    Err(e) => Err(e),
                };
                match record {
                    Ok(record) => {
                        self.reconcile_poller(&record, Some(row), &mut report)
                            .await?;
                    }
                    // Gone: its poller went with it.
                    Err(junction_store::StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if page.is_empty() {
                break;
            }
            after = upto;
        }
        tracing::info!(
            polling = report.polling,
            created = report.created,
            removed = report.removed,
            resumed = report.resumed,
            "pollers reconciled with the instances"
        );
        Ok(report)
    }

    /// Repairs one instance's poller (`row`, as read) if it is not what the instance, as
    /// `record` shows it, asks for. The store applies the repair only while the instance
    /// is still as read: a write since kept the poller itself.
    async fn reconcile_poller(
        &self,
        record: &InstanceRecord,
        row: Option<PollerRow>,
        report: &mut ReconcileReport,
    ) -> Result<(), ServiceError> {
        let Ok(element) = self.element_of(record).await else {
            // Whether it polls cannot be told now: its poller stays as it is.
            return Ok(());
        };
        let now = now_ms();
        // A missing poller reads from the instance's last write, when its events were
        // turned on at the latest, as the scheduler of older versions did.
        let write = Self::poller_write(record, &element, record.updated_at.min(now));
        let fix = match (&write, row) {
            (PollerWrite::Poll { .. }, row) => {
                report.polling += 1;
                row.is_none_or(|r| r.stopped && record.valid)
            }
            (_, row) => row.is_some(),
        };
        if fix
            && self
                .store
                .repair_poller(record.id, record.updated_at, &write, record.valid, now)
                .await?
        {
            match (write, row) {
                (PollerWrite::Poll { .. }, Some(_)) => report.resumed += 1,
                (PollerWrite::Poll { .. }, None) => report.created += 1,
                _ => report.removed += 1,
            }
        }
        Ok(())
    }

    /// Runs one claimed poll to its end and records the outcome.
    async fn run_poller(&self, owner: &str, claim: ClaimedPoller) -> Option<PollResult> {
        let id = claim.instance_id;
        let started = now_ms();
        let settings = self.events.settings;
        let (outcome, result) = match self.poll_instance(owner, &claim, started).await {
            Ok(done) => (
                PollOutcome::Done {
                    next_run_at: done.next_run_at,
                    polled_at: started,
                    watermark: done.watermark,
                    forget_before: done.forget_before,
                },
                PollResult::Done(done.emitted),
            ),
            Err(PollError::LeaseLost) => {
                tracing::warn!(instance_id = %id, "poll lease lost to another replica; its poll carries on");
                return None;
            }
            Err(PollError::Service(ServiceError::ReauthorizationRequired { reason, .. })) => {
                let reason = format!(
                    "the instance must be re-authorized: {}",
                    reason
                        .as_deref()
                        .unwrap_or("the provider refused its credentials")
                );
                tracing::warn!(instance_id = %id, reason = %reason, "polling stopped");
                (PollOutcome::Stopped { reason }, PollResult::Stopped)
            }
            Err(PollError::Service(e)) => {
                let asked = match &e {
                    ServiceError::ProviderStatus { retry_after, .. } => *retry_after,
                    ServiceError::RateLimited { retry_after, .. } => Some(*retry_after),
                    _ => None,
                }
                .map(Duration::from_secs);
                let minute = settings.poll_minute;
                let wait = backoff(claim.failures, minute / 4, minute * 60, asked);
                let error = poll_error_text(&e);
                tracing::warn!(instance_id = %id, failures = claim.failures + 1, wait_ms = wait.as_millis() as u64, error = %error, "poll failed; backing off");
                (
                    PollOutcome::Failed {
                        retry_at: now_ms().saturating_add(wait.as_millis() as i64),
                        error,
                    },
                    PollResult::Failed,
                )
            }
        };
        match self.store.finish_poll(owner, id, &outcome, now_ms()).await {
            Ok(true) => Some(result),
            Ok(false) => None,
            Err(e) => {
                tracing::error!(instance_id = %id, error = %e, "could not record a poll's outcome");
                None
            }
        }
    }

    /// Polls every resource of the instance; returns when the next poll is due, the
    /// watermark to keep and how many events were stored.
    async fn poll_instance(
        &self,
        owner: &str,
        claim: &ClaimedPoller,
        started: i64,
    ) -> Result<PollDone, PollError> {
        let record = self
            .store
            .get_instance_fresh(claim.account_id, claim.instance_id)
            .await?;
        if !record.valid {
            return Err(ServiceError::ReauthorizationRequired {
                instance_id: record.id.0,
                reason: record.invalid_reason.clone(),
            }
            .into());
        }
        let record = Arc::new(record);
        let element = self.element_of(&record).await?;
        let caller = Caller::Instance(TokenPrincipal {
            instance_id: record.id,
            account_id: record.account_id,
            user_id: record.user_id,
            disabled: record.disabled,
        });
        let mut watermark: Watermark =
            serde_json::from_str(&claim.watermark).unwrap_or_else(|_| Watermark {
                start: started,
                ..Watermark::default()
            });
        let resources = self.poll_resources(&caller, &record, &element).await?;
        let mut emitted = 0;
        for resource in &resources {
            emitted += self
                .poll_resource(owner, &caller, &record, resource, &mut watermark)
                .await?;
        }
        // A complete poll: every resource reads from this poll's start next time, and
        // what it emitted before that window is no longer needed to recognise repeats.
        watermark.resources = resources
            .iter()
            .map(|r| (r.name.clone(), ResourceMark { since: started }))
            .collect();
        let forget_before = resources
            .iter()
            .map(|r| (r.name.clone(), started - r.delay_ms))
            .collect();
        let interval = refresh_minutes(&record, &element);
        let next = started.saturating_add(
            (self.events.settings.poll_minute.as_millis() as i64).saturating_mul(interval as i64),
        );
        let watermark = serde_json::to_string(&watermark)
            .map_err(|e| ServiceError::Internal(format!("watermark: {e}")))?;
        Ok(PollDone {
            next_run_at: next,
            watermark,
            forget_before,
            emitted,
        })
    }

    /// The resources to poll: the instance's `event.poller.configuration`, else the
    /// element's; a `{objectName}` resource once per object of `event.objects`.
    async fn poll_resources(
        &self,
        caller: &Caller,
        record: &InstanceRecord,
        element: &ElementDefinition,
    ) -> Result<Vec<PollResource>, ServiceError> {
        let raw = setting(record, element, poll_keys::CONFIGURATION).ok_or_else(|| {
            ServiceError::bad_request(
                "invalid_configuration",
                format!(
                    "polling needs {}: neither the instance nor element '{}' has one",
                    poll_keys::CONFIGURATION,
                    element.key
                ),
            )
        })?;
        let bad = |message: String| {
            ServiceError::bad_request(
                "invalid_configuration",
                format!("{}: {message}", poll_keys::CONFIGURATION),
            )
        };
        let parsed: BTreeMap<String, ResourceConfig> =
            serde_json::from_str(&raw).map_err(|e| bad(e.to_string()))?;
        let named_objects = setting(record, element, poll_keys::OBJECTS);
        let mut out = Vec::new();
        for (name, config) in parsed {
            if !name.contains("{objectName}") && !config.url.contains("{objectName}") {
                out.push(resource(&name, &config, None).map_err(bad)?);
                continue;
            }
            let objects: Vec<String> = match (&named_objects, config.objects.as_deref()) {
                (Some(named), _) => split_list(named),
                // A hub list whose records' ids are the objects (Act-On's lists).
                (None, Some(url)) if url.starts_with('/') => self.object_ids(caller, url).await?,
                (None, Some(list)) => split_list(list),
                (None, None) => Vec::new(),
            };
            for object in objects {
                if object.is_empty()
                    || !object
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                {
                    return Err(bad(format!(
                        "object '{object}' of {} is not a plain name",
                        poll_keys::OBJECTS
                    )));
                }
                out.push(resource(&name, &config, Some(&object)).map_err(bad)?);
            }
        }
        Ok(out)
    }

    /// The ids of every record of a hub list, walked to its end.
    async fn object_ids(&self, caller: &Caller, url: &str) -> Result<Vec<String>, ServiceError> {
        let (path, query) = hub_path(url);
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut pairs = query.clone();
            if let Some(t) = &token {
                pairs.push(("nextPage".to_owned(), t.clone()));
            }
            let query_string = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let (records, next) = self.hub_page(caller, &path, &query_string).await?;
            ids.extend(records.iter().filter_map(|r| r.get("id").and_then(text)));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(ids)
    }

    /// Reads one resource from its watermark on and stores its events page by page.
    async fn poll_resource(
        &self,
        owner: &str,
        caller: &Caller,
        record: &InstanceRecord,
        resource: &PollResource,
        watermark: &mut Watermark,
    ) -> Result<usize, PollError> {
        let since = watermark
            .resources
            .get(&resource.name)
            .map_or(watermark.start, |m| m.since);
        let window = since - resource.delay_ms;
        let mut seen = self.store.poll_seen(record.id, &resource.name).await?;
        let url = substitute(&resource.url, window).map_err(|m| {
            ServiceError::bad_request(
                "invalid_configuration",
                format!("{} of '{}': {m}", poll_keys::CONFIGURATION, resource.name),
            )
        })?;
        let (path, query) = hub_path(&url);
        let mut token: Option<String> = None;
        let mut emitted = 0;
        for _ in 0..MAX_PAGES {
            let mut pairs = query.clone();
            if let Some(size) = resource.page_size {
                pairs.push(("pageSize".to_owned(), size.to_string()));
            }
            if let Some(t) = &token {
                pairs.push(("nextPage".to_owned(), t.clone()));
            }
            let query_string = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let (records, next) = self.hub_page(caller, &path, &query_string).await?;
            let now = now_ms();
            let mut events = Vec::new();
            let mut raws = Vec::new();
            let mut page_seen = Vec::new();
            for item in records {
                let Some(id) = field(&item, &resource.id_field).and_then(text) else {
                    continue;
                };
                let updated_value = resource
                    .updated
                    .as_ref()
                    .and_then(|f| field(&item, &f.path));
                let updated = resource
                    .updated
                    .as_ref()
                    .zip(updated_value)
                    .and_then(|(f, v)| f.parse(v));
                if resource.filter_by_updated && updated.is_some_and(|u| u < window) {
                    continue;
                }
                let change = match updated_value.and_then(text) {
                    Some(t) => t,
                    None => digest(&item),
                };
                if seen.get(&id).is_some_and(|c| *c == change) {
                    continue;
                }
                let created = resource
                    .created
                    .as_ref()
                    .and_then(|f| field(&item, &f.path).and_then(|v| f.parse(v)));
                let deleted = resource.deleted_field.as_deref().is_some_and(|f| {
                    matches!(field(&item, f), Some(Value::Bool(true)))
                        || field(&item, f).and_then(Value::as_str) == Some("true")
                });
                let kind = if deleted {
                    "DELETED"
                } else {
                    event_type(created, updated, resource.tolerance_ms)
                };
                seen.insert(id.clone(), change.clone());
                page_seen.push(SeenChange {
                    resource: resource.name.clone(),
                    object_id: id.clone(),
                    change,
                    changed_at: updated.unwrap_or(now),
                });
                events.push(json!({
                    "objectType": resource.object_type,
                    "objectId": id,
                    "eventType": kind,
                    "date": iso8601(updated.unwrap_or(now)),
                    "elementKey": record.element_key,
                }));
                raws.push(item);
            }
            emitted += events.len();
            let new = self
                .events
                .poll_events(record, &resource.object_type, events, raws);
            let stored = self
                .store
                .save_poll_page(
                    owner,
                    record.id,
                    &new,
                    &page_seen,
                    now + self.poll_lease_ms(),
                    now,
                )
                .await?;
            if stored.is_none() {
                return Err(PollError::LeaseLost);
            }
            if !new.is_empty() {
                self.events.wake.notify_waiters();
            }
            match next {
                Some(t) => token = Some(t),
                None => return Ok(emitted),
            }
        }
        tracing::warn!(instance_id = %record.id, resource = %resource.name, "poll stopped after the most pages one poll reads; the rest waits for the next poll");
        Ok(emitted)
    }

    /// One hub page through the resource engine: its records and the next page's token.
    async fn hub_page(
        &self,
        caller: &Caller,
        path: &str,
        query: &str,
    ) -> Result<(Vec<Value>, Option<String>), ServiceError> {
        let answer = self
            .hub_resource(
                caller,
                crate::resources::HubRequest {
                    method: Method::GET,
                    path: path.to_owned(),
                    query: (!query.is_empty()).then(|| query.to_owned()),
                    headers: HeaderMap::new(),
                    body: ProxyBody::Buffered(bytes::Bytes::new()),
                },
            )
            .await?;
        let next = answer
            .headers
            .get("elements-next-page-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = answer.read_body(MAX_PAGE_BYTES).await?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Array(records)) => Ok((records, next)),
            _ => Err(ServiceError::ProviderAnswer(format!(
                "the poll URL {path} does not answer a list"
            ))),
        }
    }

    /// The poller of an instance the caller may see, as the events API shows it.
    pub async fn poller_status(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<PollerView, ServiceError> {
        let record = self.owned_instance_shared(caller, id).await?;
        let element = self.element_of(&record).await?;
        let now = now_ms();
        let poller = self.store.poller(InstanceId(id), now).await?;
        let Some(poller) = poller else {
            if polls(&record.config, record.disabled, &element) {
                // Turned on by a version of Junction whose writes left the poller to the
                // scheduler: the reconciliation at the next start creates it.
                return Ok(PollerView {
                    state: "starting",
                    last_polled_at: None,
                    next_poll_at: iso8601(now),
                    failures: 0,
                    last_error: None,
                    stopped_reason: None,
                    since: BTreeMap::new(),
                });
            }
            return Err(ServiceError::bad_request(
                "not_polling",
                format!(
                    "instance {id} does not poll: it needs {} true and {} polling",
                    keys::ENABLED,
                    poll_keys::VENDOR_TYPE
                ),
            ));
        };
        let watermark: Watermark = serde_json::from_str(&poller.watermark).unwrap_or_default();
        let state = if poller.stopped_reason.is_some() {
            "stopped"
        } else if poller.leased {
            "polling"
        } else if poller.failures > 0 {
            "backingOff"
        } else if poller.last_polled_at.is_none() {
            "starting"
        } else {
            "waiting"
        };
        Ok(PollerView {
            state,
            last_polled_at: poller.last_polled_at.map(iso8601),
            next_poll_at: iso8601(poller.next_run_at),
            failures: poller.failures,
            last_error: poller.last_error,
            stopped_reason: poller.stopped_reason,
            since: watermark
                .resources
                .iter()
                .map(|(k, m)| (k.clone(), iso8601(m.since)))
                .collect(),
        })
    }
}

/// A complete poll: when the next is due, the watermark it leaves, which emitted changes
/// may be forgotten, and how many events it stored.
struct PollDone {
    next_run_at: i64,
    watermark: String,
    forget_before: Vec<(String, i64)>,
    emitted: usize,
}

enum PollResult {
    Done(usize),
    Failed,
    Stopped,
}

impl EventHub {
    /// A page's changes as event records of at most
    /// [`POLLING_EVENTS_PER_NOTIFICATION`] events each, every one with the records it
    /// is about as its raw payload.
    fn poll_events(
        &self,
        record: &InstanceRecord,
        object_type: &str,
        events: Vec<Value>,
        raws: Vec<Value>,
    ) -> Vec<NewEvent> {
        events
            .chunks(POLLING_EVENTS_PER_NOTIFICATION)
            .zip(raws.chunks(POLLING_EVENTS_PER_NOTIFICATION))
            .map(|(events, raws)| {
                let payload = json!({"objectType": object_type, "objects": raws});
                self.new_event(
                    record,
                    "polling",
                    payload.to_string(),
                    payload,
                    events.to_vec(),
                    POLLING_EVENTS_PER_NOTIFICATION,
                )
            })
            .collect()
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks an `event.poller.configuration` as an instance is given it, so a resource
/// that could never be polled (no url, an unknown placeholder or date pattern, a
/// tolerance that is not a number) is refused then rather than failing every poll.
pub fn check_poller_configuration(raw: &str) -> Result<(), String> {
    let key = poll_keys::CONFIGURATION;
    let parsed: BTreeMap<String, ResourceConfig> =
        serde_json::from_str(raw).map_err(|e| format!("'{key}': {e}"))?;
    for (name, config) in &parsed {
        let object = (name.contains("{objectName}") || config.url.contains("{objectName}"))
            .then_some("Object");
        let resource = resource(name, config, object).map_err(|m| format!("'{key}': {m}"))?;
        substitute(&resource.url, 0).map_err(|m| format!("'{key}' resource '{name}': {m}"))?;
    }
    Ok(())
}

/// Whether the instance's events come by polling.
fn polls(config: &ConfigMap, disabled: bool, element: &ElementDefinition) -> bool {
    let on = config_setting(config, element, keys::ENABLED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let kind = config_setting(config, element, poll_keys::VENDOR_TYPE)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("polling"));
    on && kind && !disabled
}

/// The instance's value of a configuration entry, else the element's default.
fn setting(record: &InstanceRecord, element: &ElementDefinition, key: &str) -> Option<String> {
    config_setting(&record.config, element, key)
}

fn config_setting(config: &ConfigMap, element: &ElementDefinition, key: &str) -> Option<String> {
    config
        .get(key)
        .cloned()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| element.config_entry(key).and_then(|e| e.default.clone()))
}

fn refresh_minutes(record: &InstanceRecord, element: &ElementDefinition) -> u64 {
    setting(record, element, poll_keys::REFRESH_INTERVAL)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(DEFAULT_REFRESH_MINUTES)
}

/// A resource's configuration, for `object` when it is a `{objectName}` one.
fn resource(
    name: &str,
    config: &ResourceConfig,
    object: Option<&str>,
) -> Result<PollResource, String> {
    let fill = |s: &str| match object {
        Some(o) => s.replace("{objectName}", o),
        None => s.to_owned(),
    };
    let name = fill(name);
    if config.url.trim().is_empty() {
        return Err(format!("resource '{name}' has no url"));
    }
    let dates = &config.dates_configuration;
    let date = |field: &Option<String>, format: &Option<String>, zone: &Option<String>| {
        field
            .as_ref()
            .filter(|f| !f.is_empty())
            .map(|f| -> Result<DateField, String> {
                if let Some(format) = format {
                    java_to_strftime(format)?;
                }
                Ok(DateField {
                    path: f.clone(),
                    format: format.clone(),
                    zone: zone_offset(zone.as_deref())?,
                })
            })
            .transpose()
    };
    let number = |v: &Option<Value>, what: &str| -> Result<Option<f64>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{what} of '{name}' is not a number: {s}")),
            Some(other) => Err(format!("{what} of '{name}' is not a number: {other}")),
        }
    };
    let tolerance = number(
        config
            .created_check_tolerance
            .as_ref()
            .map_or(&dates.created_check_tolerance, |_| {
                &config.created_check_tolerance
            }),
        "createdCheckTolerance",
    )?
    .unwrap_or(0.0);
    let filter_by_updated = match &config.filter_by_updated_date {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.trim().eq_ignore_ascii_case("false"),
        Some(other) => {
            return Err(format!(
                "filterByUpdatedDate of '{name}' is not a boolean: {other}"
            ));
        }
    };
    Ok(PollResource {
        object_type: config
            .object_type
            .as_deref()
            .map(fill)
            .unwrap_or_else(|| name.clone()),
        url: fill(&config.url),
        id_field: config.id_field.clone().unwrap_or_else(|| "id".to_owned()),
        deleted_field: config.deleted_field.clone().filter(|f| !f.is_empty()),
        updated: date(
            &dates.updated_date_field,
            &dates.updated_date_format,
            &dates.updated_date_timezone,
        )?,
        created: date(
            &dates.created_date_field,
            &dates.created_date_format,
            &dates.created_date_timezone,
        )?,
        filter_by_updated,
        tolerance_ms: (tolerance * 1000.0) as i64,
        page_size: number(&config.page_size, "pageSize")?
            .map(|n| n as u64)
            .filter(|n| *n > 0),
        delay_ms: (number(&config.poll_delay, "pollDelay")?.unwrap_or(0.0) * 1000.0) as i64,
        name,
    })
}

/// `CREATED` when the record was created within the tolerance of its last change,
/// `UPDATED` otherwise (and when either date is unknown).
fn event_type(created: Option<i64>, updated: Option<i64>, tolerance_ms: i64) -> &'static str {
    match (created, updated) {
        (Some(c), Some(u)) if (u - c).abs() <= tolerance_ms => "CREATED",
        _ => "UPDATED",
    }
}

/// A dotted path into a record (`Owner.Name`), or a field whose name has dots.
fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = item.get(path) {
        return Some(v).filter(|v| !v.is_null());
    }
    path.split('.')
        .try_fold(item, |v, part| v.get(part))
        .filter(|v| !v.is_null())
}

/// Stands for a change when a record has no updated date: its content.
fn digest(item: &Value) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(item.to_string().as_bytes());
    format!("#{}", hex::encode(&hash[..12]))
}

impl DateField {
    /// The field's value as epoch ms: per its SimpleDateFormat pattern, else as ISO 8601
    /// or Salesforce's `+0000` form, else as epoch seconds or milliseconds.
    fn parse(&self, value: &Value) -> Option<i64> {
        match value {
            Value::Number(n) => n.as_f64().map(epoch_ms),
            Value::String(s) => {
                let s = s.trim();
                if let Some(ms) = self
                    .format
                    .as_deref()
                    .and_then(|f| parse_java(s, f, self.zone))
                {
                    return Some(ms);
                }
                if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                    return Some(t.timestamp_millis());
                }
                if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                    return Some(t.timestamp_millis());
                }
                s.parse::<f64>().ok().map(epoch_ms)
            }
            _ => None,
        }
    }
}

fn epoch_ms(n: f64) -> i64 {
    if n.abs() < 1e11 {
        (n * 1000.0) as i64
    } else {
        n as i64
    }
}

/// `+hh:mm`, `-8:00`, `GMT`/`UTC`/`Z` (the default) as an offset.
fn zone_offset(zone: Option<&str>) -> Result<FixedOffset, String> {
    let utc = FixedOffset::east_opt(0).ok_or("offset")?;
    let Some(zone) = zone.map(str::trim).filter(|z| !z.is_empty()) else {
        return Ok(utc);
    };
    let rest = zone
        .strip_prefix("GMT")
        .or_else(|| zone.strip_prefix("UTC"))
        .unwrap_or(zone);
    if rest.is_empty() || rest == "Z" {
        return Ok(utc);
    }
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => {
            return Err(format!(
                "time zone '{zone}' is not an offset such as -08:00 or GMT"
            ));
        }
    };
    let (h, m) = digits.split_once(':').unwrap_or((digits, "0"));
    let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) => (h, m),
        _ => {
            return Err(format!(
                "time zone '{zone}' is not an offset such as -08:00 or GMT"
            ));
        }
    };
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
        .ok_or_else(|| format!("time zone '{zone}' is out of range"))
}

/// Parses `value` per a SimpleDateFormat pattern, in `zone` unless the value names its
/// own offset.
fn parse_java(value: &str, pattern: &str, zone: FixedOffset) -> Option<i64> {
    let format = java_to_strftime(pattern).ok()?;
    if let Ok(t) = DateTime::parse_from_str(value, &format) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, &format) {
        return zone
            .from_local_datetime(&t)
            .single()
            .map(|t| t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, &format) {
        let t = d.and_hms_opt(0, 0, 0)?;
        return zone
            .from_local_datetime(&t)
            .single()
            .map(|t| t.timestamp_millis());
    }
    None
}

/// A Java SimpleDateFormat pattern as a chrono format string: letters are fields,
/// `'…'` quotes literal text and `''` is a quote.
fn java_to_strftime(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                push_literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 1) => "%1f",
            ('S', 2) => "%2f",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            ('Z', _) => "%z",
            ('X', 1) => "%#z",
            ('X', 2) => "%z",
            ('X', _) => "%:z",
            ('z', _) => "%Z",
            ('D', _) => "%j",
            _ => {
                return Err(format!(
                    "'{}' is not a date pattern letter Junction knows",
                    c.to_string().repeat(n)
                ));
            }
        };
        out.push_str(spec);
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// Formats `at` (epoch ms) per a SimpleDateFormat pattern in UTC. `X` patterns print
/// `Z` for UTC, as Java does.
fn format_java(at: i64, pattern: &str) -> Result<String, String> {
    let format = java_to_strftime(pattern)?;
    let time = Utc
        .timestamp_millis_opt(at)
        .single()
        .ok_or_else(|| format!("{at} is not a time"))?;
    let format = format.replace("%:z", "Z").replace("%#z", "Z");
    Ok(time.format(&format).to_string())
}

/// Replaces the date placeholders of a poll URL with `at` (epoch ms, the watermark):
/// `${gmtDate:<pattern>}` and `${date:<pattern>}` (Junction runs in UTC),
/// `${epoch}` (milliseconds), `${epoch:s}`, `${epoch:ms}` and `${epoch:us}`.
fn substitute(url: &str, at: i64) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("a placeholder in '{url}' is not closed with '}}'"))?;
        let placeholder = &after[..end];
        let (kind, arg) = placeholder
            .split_once(':')
            .map_or((placeholder, None), |(k, a)| (k, Some(a)));
        let value = match (kind, arg) {
            ("gmtDate" | "date", Some(pattern)) => format_java(at, pattern)?,
            ("epoch", None | Some("ms")) => at.to_string(),
            ("epoch", Some("s")) => (at / 1000).to_string(),
            ("epoch", Some("us")) => at.saturating_mul(1000).to_string(),
            _ => return Err(format!("unknown placeholder '${{{placeholder}}}'")),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A poll URL as the engine's path (without `/hubs/<hub>`) and its decoded query pairs.
/// The URL is written by hand, unencoded (`where=LastModifiedDate > …`): pairs split at
/// `&`, names at the first `=`, and `%XX` escapes are decoded; `+` stays a plus.
fn hub_path(url: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path.trim();
    let path = match path.strip_prefix("/hubs/") {
        Some(rest) => rest
            .find('/')
            .map_or("/".to_owned(), |i| rest[i..].to_owned()),
        None if path.starts_with('/') => path.to_owned(),
        None => format!("/{path}"),
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    (path, pairs)
}

/// What the poller status says of a failure: the provider's status and message, never
/// internals.
fn poll_error_text(e: &ServiceError) -> String {
    match e {
        ServiceError::ProviderStatus {
            status,
            provider_message,
            ..
        } => match provider_message {
            Some(m) => format!("the provider answered HTTP {status}: {m}"),
            None => format!("the provider answered HTTP {status}"),
        },
        ServiceError::Store(_) | ServiceError::Internal(_) => "an internal failure".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_183_845_123; // 2025-11-26T19:04:05.123Z

    #[test]
    fn gmt_date_placeholders_format_the_watermark_with_java_patterns() {
        assert_eq!(
            substitute(
                "where=LastModifiedDate>'${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'",
                T
            )
            .unwrap(),
            "where=LastModifiedDate>'2025-11-26T19:04:05Z'"
        );
        assert_eq!(
            substitute("${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSSZ}", T).unwrap(),
            "2025-11-26T19:04:05.123+0000"
        );
        assert_eq!(
            substitute("${gmtDate:MM/dd/yyyy HH:mm}", T).unwrap(),
            "11/26/2025 19:04"
        );
        assert_eq!(
            substitute("${gmtDate:yyyy-MM-dd'T'HH:mm:ssXXX}", T).unwrap(),
            "2025-11-26T19:04:05Z"
        );
        assert_eq!(
            substitute("${date:EEE, d MMM yy h:mm a}", T).unwrap(),
            "Wed, 26 Nov 25 7:04 PM"
        );
        assert_eq!(substitute("${gmtDate:''yyyy''}", T).unwrap(), "'2025'");
    }

    #[test]
    fn epoch_placeholders_give_milliseconds_seconds_or_microseconds() {
        assert_eq!(
            substitute("a=${epoch}&b=${epoch:s}", T).unwrap(),
            "a=1764183845123&b=1764183845"
        );
        assert_eq!(substitute("${epoch:us}", T).unwrap(), "1764183845123000");
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused() {
        assert!(
            substitute("${now}", T)
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            substitute("${gmtDate:yyyy", T)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            substitute("${gmtDate:yyyy-QQ}", T)
                .unwrap_err()
                .contains("QQ")
        );
    }

    #[test]
    fn dates_parse_per_their_pattern_zone_or_as_iso_and_epoch() {
        let sf = DateField {
            path: "LastModifiedDate".into(),
            format: Some("yyyy-MM-dd'T'HH:mm:ss.SSSZ".into()),
            zone: zone_offset(None).unwrap(),
        };
        assert_eq!(sf.parse(&json!("2025-11-26T19:04:05.123+0000")), Some(T));
        assert_eq!(sf.parse(&json!("2025-11-26T19:04:05.123Z")), Some(T));
        assert_eq!(sf.parse(&json!(T)), Some(T));
        assert_eq!(sf.parse(&json!(1_764_183_845)), Some(T - 123));
        let pacific = DateField {
            path: "d".into(),
            format: Some("MM/dd/yyyy HH:mm".into()),
            zone: zone_offset(Some("-08:00")).unwrap(),
        };
        assert_eq!(pacific.parse(&json!("11/26/2025 11:04")), Some(T - 5_123));
        assert_eq!(sf.parse(&json!("yesterday")), None);
        assert!(zone_offset(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn a_record_changed_within_the_tolerance_of_its_creation_is_created() {
        assert_eq!(event_type(Some(T), Some(T), 0), "CREATED");
        assert_eq!(event_type(Some(T), Some(T + 4_000), 5_000), "CREATED");
        assert_eq!(event_type(Some(T), Some(T + 5_000), 5_000), "CREATED");
        assert_eq!(event_type(Some(T), Some(T + 5_001), 5_000), "UPDATED");
        assert_eq!(event_type(Some(T), Some(T + 1), 0), "UPDATED");
        assert_eq!(event_type(None, Some(T), 5_000), "UPDATED");
        assert_eq!(event_type(Some(T), None, 5_000), "UPDATED");
    }

    #[test]
    fn tolerance_reads_from_the_resource_or_its_dates_configuration() {
        let config: ResourceConfig = serde_json::from_value(json!({
            "url": "/hubs/crm/contacts",
            "datesConfiguration": {"updatedDateField": "u", "createdDateField": "c", "createdCheckTolerance": "10"}
        }))
        .unwrap();
        assert_eq!(
            resource("contacts", &config, None).unwrap().tolerance_ms,
            10_000
        );
        let config: ResourceConfig = serde_json::from_value(json!({
            "url": "/hubs/crm/contacts", "createdCheckTolerance": 2.5, "pageSize": "200"
        }))
        .unwrap();
        let r = resource("contacts", &config, None).unwrap();
        assert_eq!(r.tolerance_ms, 2_500);
        assert_eq!(r.page_size, Some(200));
        assert_eq!(r.id_field, "id");
    }

    #[test]
    fn object_resources_are_named_and_addressed_per_object() {
        let config: ResourceConfig = serde_json::from_value(json!({
            "url": "/hubs/crm/query?q=SELECT Id FROM {objectName}", "idField": "Id"
        }))
        .unwrap();
        let r = resource("{objectName}", &config, Some("Contact")).unwrap();
        assert_eq!(r.name, "Contact");
        assert_eq!(r.object_type, "Contact");
        assert_eq!(r.url, "/hubs/crm/query?q=SELECT Id FROM Contact");
    }

    #[test]
    fn poll_urls_split_into_the_engine_path_and_decoded_pairs() {
        let (path, pairs) = hub_path(
            "/hubs/crm/query?q=SELECT Id FROM Contact WHERE LastModifiedDate > 2025-11-26T19:04:05.123+0000&x=a%20b",
        );
        assert_eq!(path, "/query");
        assert_eq!(
            pairs[0].1,
            "SELECT Id FROM Contact WHERE LastModifiedDate > 2025-11-26T19:04:05.123+0000"
        );
        assert_eq!(pairs[1], ("x".to_owned(), "a b".to_owned()));
        assert_eq!(hub_path("/contacts").0, "/contacts");
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_waits_out_retry_after() {
        let base = Duration::from_secs(15);
        let cap = Duration::from_secs(3600);
        assert_eq!(backoff(0, base, cap, None), base);
        assert_eq!(backoff(3, base, cap, None), Duration::from_secs(120));
        assert_eq!(backoff(40, base, cap, None), cap);
        assert_eq!(
            backoff(0, base, cap, Some(Duration::from_secs(90))),
            Duration::from_secs(90)
        );
        assert_eq!(
            backoff(9, base, cap, Some(Duration::from_secs(7200))),
            Duration::from_secs(7200)
        );
    }
}
