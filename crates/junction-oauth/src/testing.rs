//! Provider stand-ins shared by the client tests (each keeps connections alive and drops
//! some of them without answering, as a server does when its idle timeout crosses a
//! call), and a log capture.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A provider that answers the first call on each connection, keeps it alive, and
/// closes it without answering when a second call arrives on it. Returns its base URL
/// and the request lines it received.
pub(crate) async fn closes_kept_alive_connections() -> (String, Arc<Mutex<Vec<String>>>) {
    stand_in(|earlier, _| earlier == 0, true).await
}

/// A provider that answers every call, but drops a kept-alive connection without
/// answering when a call arrives on it after more than `idle` of silence. Returns its
/// base URL and the request lines it answered.
pub(crate) async fn drops_connections_idle_longer_than(
    idle: Duration,
) -> (String, Arc<Mutex<Vec<String>>>) {
    stand_in(move |_, silent| silent.is_none_or(|s| s <= idle), false).await
}

/// Serves connections, asking `answers(calls earlier on the connection, silence since
/// the last answer)` for each call whether to answer it or drop the connection. The
/// request lines are recorded for every call, or for answered ones only.
async fn stand_in(
    answers: impl Fn(usize, Option<Duration>) -> bool + Copy + Send + 'static,
    record_dropped: bool,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut last: Option<Instant> = None;
                for earlier in 0.. {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let answer = answers(earlier, last.map(|at| at.elapsed()));
                    if answer || record_dropped {
                        let head = String::from_utf8_lossy(&buffer[..n]);
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        seen.lock().unwrap().push(line);
                    }
                    if !answer {
                        return;
                    }
                    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    socket.write_all(ok.as_bytes()).await.unwrap();
                    last = Some(Instant::now());
                }
            });
        }
    });
    (base, calls)
}

/// A peer that accepts connections, holds them open and never says a thing (no TLS
/// handshake, no answer). Returns its address and the task to abort when done.
pub(crate) async fn never_answers() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// Everything logged while the guard [`Log::capture`] returns lives, on this thread.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    pub(crate) fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A provider that answers each connection's first request with `answer` (raw HTTP,
/// which says `connection: close` if the client is to make another connection) and
/// records the request's head. Returns its base URL and the heads it received.
pub(crate) async fn answers_raw(answer: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                // The head ends at the first empty line; a small body may follow it.
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                let _ = socket.write_all(answer.as_bytes()).await;
                if answer
                    .to_ascii_lowercase()
                    .contains("\r\nconnection: close\r\n")
                {
                    return;
                }
                // Held open: the answer may promise more than it sends.
                let mut rest = [0u8; 1024];
                while let Ok(n) = socket.read(&mut rest).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (base, heads)
}

/// Drives a client into each kind of transport failure (refused, a name that does not
/// resolve, a TLS handshake answered in plain HTTP, a peer that never answers) through
/// `fail(url, timeout)`, which returns the error and what was logged, and checks that
/// each is told apart, logged with its host and cause, and never with `secret` (which
/// `fail` puts in the URL's query).
pub(crate) async fn failures_are_told_apart<F, Fut>(fail: F, secret: &str)
where
    F: Fn(String, Duration) -> Fut,
    Fut: std::future::Future<Output = (crate::OAuthError, String)>,
{
    // Refused: nothing listens on a port just released.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let (err, log) = fail(
        format!("http://127.0.0.1:{port}/data"),
        Duration::from_secs(5),
    )
    .await;
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(log.contains(&format!("host=127.0.0.1:{port}")), "{log}");
    assert!(log.contains("cause=\"refused\""), "{log}");
    assert!(!log.contains(secret), "{log}");

    let (err, log) = fail(
        "http://no-such-host.invalid/data".to_owned(),
        Duration::from_secs(5),
    )
    .await;
    assert!(err.to_string().contains("did not resolve"), "{err}");
    assert!(log.contains("host=no-such-host.invalid:80"), "{log}");
    assert!(log.contains("cause=\"dns\""), "{log}");
    assert!(!log.contains(secret), "{log}");

    // TLS: the peer answers the handshake in plain HTTP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let (err, log) = fail(format!("https://{addr}/data"), Duration::from_secs(5)).await;
    assert!(err.to_string().contains("TLS"), "{err} {log}");
    assert!(log.contains("cause=\"tls\""), "{log}");
    assert!(!log.contains(secret), "{log}");
    plain.abort();

    // Timeout: the peer accepts and never answers.
    let (addr, silent) = never_answers().await;
    let (err, log) = fail(format!("http://{addr}/data"), Duration::from_secs(1)).await;
    assert!(matches!(err, crate::OAuthError::Timeout { .. }), "{err:?}");
    assert!(log.contains("cause=\"timeout\""), "{log}");
    assert!(!log.contains(secret), "{log}");
    silent.abort();
}
