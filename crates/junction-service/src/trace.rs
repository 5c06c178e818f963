//! Trace logging: while it is on for an instance, every call Junction makes to the
//! instance's provider (proxied calls, pings, and each of their retries) is kept, redacted,
//! for the instance's owner to read back through `GET /instances/{id}/trace-logs`.
//!
//! Bodies stream as before: the recorder copies the start of each (see [`Redactor::capture_limit`]) as
//! they pass and counts the rest, and the entry is written once the provider's answer has
//! been read to its end (or dropped), without holding up the caller. An instance
//! without trace logging pays one flag check per call.

use crate::instances::{decode_cursor, encode_cursor, page_size};
use crate::redact::Redactor;
use crate::view::iso8601;
use crate::{Caller, InstanceView, ServiceError, Services, now_ms};
use bytes::Bytes;
use futures_util::future::Either;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use http_body::{Body as HttpBody, Frame, SizeHint};
use junction_core::{ElementDefinition, InstanceId};
use junction_oauth::{
    OAuthError, ProxyBody, ProxyCall, ProxyClient, ProxyResponse, ResponseBody, StreamingBody,
};
use junction_store::{InstanceRecord, Store, TraceEntry};
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Trace logging lasts this long (seconds) when `PUT …/trace-logging` names no duration.
pub const DEFAULT_TRACE_SECONDS: u64 = 3600;
/// The longest trace logging period one `PUT` may ask for: a day.
pub const MAX_TRACE_SECONDS: u64 = 86_400;

/// The body of `PUT /instances/{id}/trace-logging` (Cloud Elements' `TraceLoggingConfig`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TraceLoggingConfig {
    /// Seconds to keep logging, 1 to 86400 (a day); default 3600. Logging then stops by
    /// itself.
    pub duration: Option<u64>,
}

/// One recorded provider call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceLogView {
    pub id: i64,
    /// When the call was sent, ISO 8601 in UTC.
    pub created_date: String,
    pub method: String,
    /// The provider URL, with secret-looking query parameters masked.
    pub url: String,
    /// The provider's status; absent when no answer came (see `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Milliseconds until the provider's status and headers arrived.
    pub duration_ms: i64,
    #[schema(value_type = Object)]
    pub request_headers: serde_json::Value,
    /// The first 4 KiB of the request body, redacted; absent when it was empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Bytes of the request body that were sent.
    pub request_body_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response_headers: Option<serde_json::Value>,
    /// The first 4 KiB of the answer's body, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Bytes of the answer's body that reached the caller.
    pub response_body_bytes: i64,
    /// Why no answer came, when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One page of trace log entries, newest first.
#[derive(Debug)]
pub struct TraceLogList {
    pub items: Vec<TraceLogView>,
    pub total: Option<i64>,
    pub next_page: Option<String>,
}

impl TraceLogView {
    fn new(entry: TraceEntry) -> Self {
        let json = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        Self {
            id: entry.id,
            created_date: iso8601(entry.created_at),
            method: entry.method,
            url: entry.url,
            status: entry.status,
            duration_ms: entry.duration_ms,
            request_headers: json(&entry.request_headers),
            request_body: entry.request_body,
            request_body_bytes: entry.request_body_bytes,
            response_headers: entry.response_headers.as_deref().map(json),
            response_body: entry.response_body,
            response_body_bytes: entry.response_body_bytes,
            error: entry.error,
        }
    }
}

impl Services {
    /// Turns trace logging on for `seconds` (see [`TraceLoggingConfig`]) or off.
    pub async fn set_trace_logging(
        &self,
        caller: &Caller,
        id: i64,
        on: Option<TraceLoggingConfig>,
    ) -> Result<InstanceView, ServiceError> {
        let until = match on {
            None => None,
            Some(config) => {
                let seconds = config.duration.unwrap_or(DEFAULT_TRACE_SECONDS);
                if !(1..=MAX_TRACE_SECONDS).contains(&seconds) {
                    return Err(ServiceError::bad_request(
                        "invalid_duration",
                        format!(
                            "duration is in seconds, from 1 to {MAX_TRACE_SECONDS}; got {seconds}"
                        ),
                    ));
                }
                Some(now_ms() + (seconds * 1000) as i64)
            }
        };
        let record = self.owned_instance(caller, id).await?;
        let record = self
            .save(record, |r| {
                r.trace_logging_until = until;
            })
            .await?;
        tracing::info!(instance_id = id, until, "trace logging changed");
        self.view(record).await
    }

    /// The instance's trace log, newest first, `pageSize` at a time.
    pub async fn list_trace_logs(
        &self,
        caller: &Caller,
        id: i64,
        page_size_raw: Option<&str>,
        next_page: Option<&str>,
    ) -> Result<TraceLogList, ServiceError> {
        let limit = page_size(page_size_raw)?;
        let before = next_page
            .filter(|t| !t.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let record = self.owned_instance_shared(caller, id).await?;
        let page = self
            .store
            .list_trace_entries(record.account_id, record.id, before, limit)
            .await?;
        Ok(TraceLogList {
            items: page.items.into_iter().map(TraceLogView::new).collect(),
            total: page.total,
            next_page: page.next_before.map(encode_cursor),
        })
    }
}

/// Entries waiting to be written, at most; more are dropped (and counted) rather than
/// queued without bound. Each is a few KiB at most (two cut bodies and headers).
const WRITE_QUEUE: usize = 1024;
/// Entries written in one transaction, at most.
const WRITE_BATCH: usize = 64;

/// Writes trace entries from one task, in batches, so that a burst of traced calls
/// costs a bounded queue and one transaction per batch, not one task and transaction
/// per call.
#[derive(Clone)]
pub struct TraceWriter {
    queue: tokio::sync::mpsc::Sender<TraceEntry>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl TraceWriter {
    /// Starts the writing task on the current runtime; it ends when the last clone of
    /// the writer is dropped.
    pub fn start(store: Store) -> Self {
        let (writer, mut queue) = Self::with_capacity(WRITE_QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
                if let Err(e) = store.insert_trace_entries(&batch).await {
                    tracing::warn!(entries = batch.len(), error = %e, "trace log entries could not be written");
                }
                batch.clear();
            }
        });
        writer
    }

    fn with_capacity(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<TraceEntry>) {
        let (queue, receiver) = tokio::sync::mpsc::channel(capacity);
        let writer = Self {
            queue,
            dropped: Arc::default(),
        };
        (writer, receiver)
    }

    /// Entries dropped so far because the queue was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn write(&self, entry: TraceEntry) {
        if let Err(e) = self.queue.try_send(entry) {
            let dropped = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            // Logged at 1, 2, 4, 8, … drops, so a flood does not flood the log too.
            if dropped.is_power_of_two() {
                let instance_id = match &e {
                    tokio::sync::mpsc::error::TrySendError::Full(entry)
                    | tokio::sync::mpsc::error::TrySendError::Closed(entry) => entry.instance_id,
                };
                tracing::warn!(
                    %instance_id,
                    dropped,
                    "trace log entries are arriving faster than they can be written; \
                     dropping some"
                );
            }
        }
    }
}

/// Records the provider calls of one instance with trace logging on.
pub(crate) struct Tracer {
    writer: TraceWriter,
    instance_id: InstanceId,
    redactor: Redactor,
}

impl Tracer {
    /// `None`, at the cost of one flag check, unless the instance's trace logging is on.
    pub(crate) fn of(
        writer: &TraceWriter,
        record: &InstanceRecord,
        element: &ElementDefinition,
    ) -> Option<Self> {
        if !record.is_tracing(now_ms()) {
            return None;
        }
        let secrets = record
            .config
            .iter()
            .filter(|(key, _)| element.is_secret_key(key))
            .filter_map(|(_, value)| value.clone());
        Some(Self {
            writer: writer.clone(),
            instance_id: record.id,
            redactor: Redactor::new(secrets),
        })
    }

    /// Sends `call` through `client` and records it: the entry is completed when the
    /// answer's body has been read or dropped.
    async fn send(
        &self,
        client: &ProxyClient,
        mut call: ProxyCall<'_>,
    ) -> Result<ProxyResponse, OAuthError> {
        let redactor = Arc::new(self.redactor.for_call(
            call.auth.secrets(),
            &call.url,
            &call.headers,
        ));
        let request_type = content_type(&call.headers);
        let mut entry = TraceEntry {
            id: 0,
            instance_id: self.instance_id,
            created_at: now_ms(),
            method: call.method.to_string(),
            url: redactor.url(&call.url),
            status: None,
            duration_ms: 0,
            request_headers: redactor.headers(&call.headers),
            response_headers: None,
            request_body: None,
            request_body_bytes: 0,
            response_body: None,
            response_body_bytes: 0,
            error: None,
        };
        // `call.url` and `call.headers` do not carry the credential yet: `send` adds it.
        let limit = redactor.capture_limit();
        let request = Arc::new(Mutex::new(Capture::new(limit)));
        call.body = match call.body {
            ProxyBody::Buffered(bytes) => {
                lock(&request).push(&bytes);
                ProxyBody::Buffered(bytes)
            }
            ProxyBody::Streaming(body) => ProxyBody::Streaming(StreamingBody::wrap(Tee {
                inner: body,
                capture: Arc::clone(&request),
            })),
        };
        let started = Instant::now();
        let sent = client.send(call).await;
        entry.duration_ms = started.elapsed().as_millis() as i64;
        let mut pending = Pending {
            writer: self.writer.clone(),
            redactor,
            entry,
            request,
            request_type,
            response_type: None,
        };
        match sent {
            Ok(response) => {
                pending.entry.status = Some(i64::from(response.status.as_u16()));
                pending.entry.response_headers = Some(pending.redactor.headers(&response.headers));
                pending.response_type = content_type(&response.headers);
                Ok(ProxyResponse {
                    body: ResponseBody::wrap(Recorded {
                        inner: response.body,
                        capture: Capture::new(limit),
                        pending: Some(pending),
                    }),
                    ..response
                })
            }
            Err(e) => {
                pending.entry.error = Some(pending.redactor.scrub(&e.to_string()));
                pending.finish(Capture::default());
                Err(e)
            }
        }
    }
}

/// Sends a provider call, recording it when `tracer` is given. Not an `async fn`, which
/// would hold the call beside the client's future that holds it too.
pub(crate) fn send<'a>(
    client: &'a ProxyClient,
    tracer: Option<&'a Tracer>,
    call: ProxyCall<'a>,
) -> impl Future<Output = Result<ProxyResponse, OAuthError>> + 'a {
    match tracer {
        None => Either::Left(client.send(call)),
        // Boxed: a traced call's future holds its entry, which an untraced call, the
        // usual one, should not carry.
        Some(tracer) => Either::Right(Box::pin(tracer.send(client, call))),
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn lock(capture: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    capture.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first bytes of a body (up to [`Redactor::capture_limit`], a little more than the
/// [`crate::redact::BODY_LIMIT`] an entry keeps), and how many passed in all.
#[derive(Default)]
struct Capture {
    start: Vec<u8>,
    seen: u64,
    limit: usize,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.start.len());
        self.start.extend_from_slice(&data[..room.min(data.len())]);
        self.seen += data.len() as u64;
    }

    fn complete(&self) -> bool {
        self.seen == self.start.len() as u64
    }
}

/// An entry waiting for the answer's body.
struct Pending {
    writer: TraceWriter,
    redactor: Arc<Redactor>,
    entry: TraceEntry,
    request: Arc<Mutex<Capture>>,
    request_type: Option<String>,
    response_type: Option<String>,
}

impl Pending {
    /// Completes the entry and queues it for writing.
    fn finish(mut self, response: Capture) {
        {
            let request = lock(&self.request);
            self.entry.request_body = self.redactor.body(
                self.request_type.as_deref(),
                &request.start,
                request.complete(),
            );
            self.entry.request_body_bytes = request.seen as i64;
        }
        self.entry.response_body = self.redactor.body(
            self.response_type.as_deref(),
            &response.start,
            response.complete(),
        );
        self.entry.response_body_bytes = response.seen as i64;
        self.writer.write(self.entry);
    }
}

/// A request body that streams on while its start is copied.
struct Tee {
    inner: StreamingBody,
    capture: Arc<Mutex<Capture>>,
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            lock(&this.capture).push(data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The provider's answer on its way to the caller; its entry is written when it ends.
struct Recorded {
    inner: ResponseBody,
    capture: Capture,
    pending: Option<Pending>,
}

impl Recorded {
    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(std::mem::take(&mut self.capture));
        }
    }
}

impl HttpBody for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.capture.push(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(instance: i64) -> TraceEntry {
        TraceEntry {
            id: 0,
            instance_id: InstanceId(instance),
            created_at: 0,
            method: "GET".into(),
            url: "https://provider.example/".into(),
            status: Some(200),
            duration_ms: 1,
            request_headers: "{}".into(),
            response_headers: None,
            request_body: None,
            request_body_bytes: 0,
            response_body: None,
            response_body_bytes: 0,
            error: None,
        }
    }

    #[test]
    fn entries_beyond_the_queue_are_dropped_and_counted() {
        let (writer, mut queue) = TraceWriter::with_capacity(3);
        for i in 0..5 {
            writer.write(entry(i));
        }
        assert_eq!(writer.dropped(), 2);
        let queued: Vec<i64> = std::iter::from_fn(|| queue.try_recv().ok())
            .map(|e| e.instance_id.0)
            .collect();
        assert_eq!(queued, [0, 1, 2]);
    }
}
