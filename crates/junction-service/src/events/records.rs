//! The events API (spec §4.5): an instance's event records, newest first, and replays.
//! Scoped like every instance route: another account's instance or event is not found.

use crate::instances::{decode_cursor, encode_cursor, page_size};
use crate::view::iso8601;
use crate::{Caller, ServiceError, Services, now_ms};
use junction_core::InstanceId;
use junction_store::{EventQuery, EventRecord, StoreError, events::status};
use serde::Serialize;

/// One event record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// The `eventId` of its notifications.
    pub id: String,
    pub instance_id: i64,
    pub element_key: String,
    /// When Junction received it, ISO 8601 in UTC.
    pub event_date: String,
    /// RECEIVED, DISPATCHED, NOTIFIED or FAILED.
    pub status: String,
    /// `webhook` or `polling`.
    pub source: String,
    /// The provider's payload as received.
    pub provider_data: String,
    /// The normalized events.
    #[schema(value_type = Vec<Object>)]
    pub events: serde_json::Value,
    /// Every delivery attempt, oldest first.
    pub notified_data: Vec<NotifiedAttempt>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAttempt {
    /// When it was made, ISO 8601 in UTC.
    pub date: String,
    /// The receiver's status; absent when no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to a replay.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayView {
    /// Events whose notifications are sent again.
    pub replayed: u64,
}

/// Filters of `GET …/events`, as given.
#[derive(Debug, Default, Clone)]
pub struct EventListQuery {
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub page_size: Option<String>,
    pub next_page: Option<String>,
}

/// One page of events.
#[derive(Debug)]
pub struct EventList {
    pub items: Vec<EventView>,
    pub total: Option<i64>,
    pub next_page: Option<String>,
}

const STATUSES: &[&str] = &[
    status::RECEIVED,
    status::DISPATCHED,
    status::NOTIFIED,
    status::FAILED,
];

impl EventView {
    fn new(record: EventRecord) -> Self {
        Self {
            id: record.id.to_string(),
            instance_id: record.instance_id.0,
            element_key: record.element_key,
            event_date: iso8601(record.created_at),
            status: record.status,
            source: record.source,
            provider_data: record.provider_data,
            events: serde_json::from_str(&record.events).unwrap_or_default(),
            notified_data: record
                .attempts
                .into_iter()
                .map(|a| NotifiedAttempt {
                    date: iso8601(a.attempted_at),
                    status_code: a.status_code,
                    duration_ms: a.duration_ms,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// A date filter: ISO 8601 (a date, or a date and time) or epoch milliseconds.
fn date(raw: &str, what: &str) -> Result<i64, ServiceError> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(ServiceError::bad_request(
        "invalid_parameter",
        format!(
            "{what} must be an ISO 8601 date or time (2026-11-26 or 2026-11-26T10:00:00Z), got '{raw}'"
        ),
    ))
}

fn event_id(raw: &str) -> Result<i64, ServiceError> {
    raw.trim().parse().map_err(|_| {
        ServiceError::bad_request(
            "invalid_event_id",
            format!("event id must be a number, got '{raw}'"),
        )
    })
}

impl Services {
    /// An instance's events, newest first, `pageSize` at a time.
    pub async fn list_events(
        &self,
        caller: &Caller,
        id: i64,
        query: EventListQuery,
    ) -> Result<EventList, ServiceError> {
        let status = match query.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let upper = s.to_ascii_uppercase();
                if !STATUSES.contains(&upper.as_str()) {
                    return Err(ServiceError::bad_request(
                        "invalid_parameter",
                        format!("status must be one of {}, got '{s}'", STATUSES.join(", ")),
                    ));
                }
                Some(upper)
            }
        };
        let filter = EventQuery {
            status,
            from: query.from.as_deref().map(|f| date(f, "from")).transpose()?,
            to: query.to.as_deref().map(|t| date(t, "to")).transpose()?,
            before: query
                .next_page
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: page_size(query.page_size.as_deref())?,
        };
        let record = self.owned_instance_shared(caller, id).await?;
        let page = self
            .store
            .list_events(record.account_id, record.id, &filter)
            .await?;
        Ok(EventList {
            items: page.items.into_iter().map(EventView::new).collect(),
            total: page.total,
            next_page: page.next_before.map(encode_cursor),
        })
    }

    /// One event of the instance (of the caller's account, when `instance` is `None`
    /// and the caller is a user; of its own instance for an Element token).
    pub async fn get_event(
        &self,
        caller: &Caller,
        instance: Option<i64>,
        raw_event_id: &str,
    ) -> Result<EventView, ServiceError> {
        let id = event_id(raw_event_id)?;
        let scope = match (instance, caller.only_instance()) {
            (Some(i), _) => Some(self.owned_instance_shared(caller, i).await?.id),
            (None, Some(own)) => Some(own),
            (None, None) => None,
        };
        match self.store.get_event(caller.account_id(), scope, id).await {
            Ok(record) => Ok(EventView::new(record)),
            Err(StoreError::NotFound) => Err(ServiceError::EventNotFound(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one event's notifications again, under their ids.
    pub async fn replay_event(
        &self,
        caller: &Caller,
        instance: i64,
        raw_event_id: &str,
    ) -> Result<ReplayView, ServiceError> {
        let id = event_id(raw_event_id)?;
        let record = self.owned_instance_shared(caller, instance).await?;
        if !self
            .store
            .replay_event(record.account_id, record.id, id, now_ms())
            .await?
        {
            return Err(ServiceError::EventNotFound(id));
        }
        self.close_circuit_of(&record);
        self.events.wake.notify_waiters();
        Ok(ReplayView { replayed: 1 })
    }

    /// Sends every FAILED event of the instance again.
    pub async fn replay_failed_events(
        &self,
        caller: &Caller,
        instance: i64,
    ) -> Result<ReplayView, ServiceError> {
        let record = self.owned_instance_shared(caller, instance).await?;
        let replayed = self
            .store
            .replay_failed_events(record.account_id, InstanceId(record.id.0), now_ms())
            .await?;
        self.close_circuit_of(&record);
        self.events.wake.notify_waiters();
        Ok(ReplayView { replayed })
    }

    fn close_circuit_of(&self, record: &junction_store::InstanceRecord) {
        if let Some(Some(url)) = record.config.get(super::keys::CALLBACK_URL) {
            self.events.close_circuit(url);
        }
    }
}
