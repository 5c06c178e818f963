//! The accept loop. `axum::serve` has no timeouts and no connection limit, so a client
//! that opens connections and sends nothing (or half a request) could hold memory and
//! file descriptors without bound and keep the process alive after SIGTERM. This loop
//! serves the same router with hyper-util's connection builder and adds:
//!
//! - HTTP/1 only: HTTP/2 has no header-read timeout, and its keep-alive pings prove only
//!   that a client is alive, so an HTTP/2 client that opens a connection and sends no
//!   request would hold its slot for good. Junction's API needs nothing of HTTP/2;
//! - a header-read timeout, from the moment a connection is accepted (which also closes
//!   kept-alive connections that stay silent);
//! - an idle timeout on request bodies: a body that stops arriving fails its request;
//! - a deadline on the whole request body, so that a body dribbled in just faster than
//!   the idle timeout cannot hold a connection for long either;
//! - at most `max_connections` connections at once: beyond that Junction stops accepting,
//!   and new connections wait in the kernel's backlog until one closes, so a flood costs
//!   no memory and no file descriptors, and the header timeout frees slots held by
//!   clients that send nothing;
//! - a deadline on graceful shutdown, after which open connections are dropped.

use crate::config::ServerLimits;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// How often a full connection table is reported, at most.
const LIMIT_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// File descriptors kept for everything but client connections: the listener, database
/// files and connections, outbound calls, logs.
const RESERVED_FILES: u64 = 128;

pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let max_connections = connection_limit(limits.max_connections);
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut last_full_report: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_full_report.is_none_or(|at| at.elapsed() >= LIMIT_REPORT_INTERVAL) {
                    last_full_report = Some(Instant::now());
                    tracing::warn!(
                        max_connections,
                        "JUNCTION_MAX_CONNECTIONS reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or memory: waiting lets connections close
                    // instead of spinning on the same error.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without it, an answer larger than one segment waits for the client's delayed
        // ACK (40 ms on Linux) before its last part is sent.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn off Nagle's algorithm");
        }
        let idle = limits.idle_timeout;
        let body_timeout = limits.body_timeout;
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(|body| {
                    axum::body::Body::new(TimeoutBody::new(
                        idle,
                        DeadlineBody::new(body, body_timeout),
                    ))
                });
                // The peer address, as `into_make_service_with_connect_info` would give it:
                // failed authentications are counted against it.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request
            },
        ));
        let builder = Arc::clone(&builder);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(
                open = connections.len(),
                "JUNCTION_SHUTDOWN_TIMEOUT passed: closing the connections still open"
            );
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// A request body that must have arrived in full within a time from the request's
/// start; past it, reading it fails as a body that stops arriving does. The timer is
/// only set once the body keeps the reader waiting: most bodies (every empty one) are
/// there at once.
struct DeadlineBody<B> {
    inner: B,
    deadline: tokio::time::Instant,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::Instant::now() + timeout,
            timer: None,
        }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = B::Data;
    type Error = tower::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(
                        "the request body did not arrive within JUNCTION_BODY_TIMEOUT".into(),
                    )));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The configured limit, lowered to what the open-file limit allows: past it, accepting
/// fails for want of descriptors, and so do the database and provider calls that every
/// request, `/health` included, needs.
fn connection_limit(configured: usize) -> usize {
    let Some(files) = open_file_limit() else {
        return configured;
    };
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES).max(1)).unwrap_or(usize::MAX);
    if configured > room {
        tracing::warn!(
            configured,
            open_file_limit = files,
            serving = room,
            "JUNCTION_MAX_CONNECTIONS is more than the open-file limit (`ulimit -n`) allows; \
             serving fewer connections at once"
        );
        room
    } else {
        configured
    }
}

/// The soft limit on open files, where the system says (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Errors that end one connection before it was accepted, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
