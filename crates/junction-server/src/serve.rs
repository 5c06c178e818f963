//! The accept loop. `axum::serve` has no timeouts and no connection limit, so a client
//! that opens connections and sends nothing (or half a request) could hold memory and
//! file descriptors without bound and keep the process alive after SIGTERM. This loop
//! serves the same router with hyper-util's connection builder and adds:
//!
//! - a header-read timeout, from the moment a connection is accepted (which also closes
//!   kept-alive connections that stay silent);
//! - an idle timeout on request bodies: a body that stops arriving fails its request;
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A peer that stops answering pings is gone: its connection is closed.
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
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
        let idle = limits.idle_timeout;
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request =
                    request.map(|body| axum::body::Body::new(TimeoutBody::new(idle, body)));
                // The peer address, as `into_make_service_with_connect_info` would give it:
                // failed authentications are counted against it.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request
            },
        ));
        let builder = Arc::clone(&builder);
        let stream = FirstBytesDeadline::new(stream, limits.header_read_timeout);
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

/// Bytes after which hyper has told HTTP/1 from HTTP/2 (the HTTP/2 preface's length).
const PROTOCOL_SNIFF_LEN: usize = 24;

/// A connection whose first bytes must arrive within a deadline. hyper's header-read
/// timeout starts only once it has told HTTP/1 from HTTP/2, and telling them apart
/// waits, without a timeout, for the client's first bytes; a client that connects and
/// sends nothing would hold its connection forever. Once that many bytes have arrived
/// the deadline is dropped and hyper's own timeouts take over.
struct FirstBytesDeadline<T> {
    io: T,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    read: usize,
}

impl<T> FirstBytesDeadline<T> {
    fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            read: 0,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read += buf.filled().len() - before;
                if this.read >= PROTOCOL_SNIFF_LEN {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client sent no request in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
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
