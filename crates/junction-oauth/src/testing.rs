//! A provider stand-in shared by the client tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A provider that answers the first call on each connection, keeps it alive, and
/// closes it without answering when a second call arrives on it: the race of its idle
/// timeout with a call. Returns its base URL and the request lines it received.
pub(crate) async fn closes_kept_alive_connections() -> (String, Arc<Mutex<Vec<String>>>) {
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
                for answered in [true, false] {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buffer[..n]);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(line);
                    if answered {
                        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        socket.write_all(ok.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    (base, calls)
}

/// A provider that answers every call, but drops a kept-alive connection without
/// answering when a call arrives on it after more than `idle` of silence: what a call
/// meets when it crosses the server's idle timeout. Returns its base URL and the request
/// lines it answered.
pub(crate) async fn drops_connections_idle_longer_than(
    idle: Duration,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answered = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&answered);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut last: Option<Instant> = None;
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 || last.is_some_and(|at| at.elapsed() > idle) {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buffer[..n]);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    seen.lock().unwrap().push(line);
                    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    socket.write_all(ok.as_bytes()).await.unwrap();
                    last = Some(Instant::now());
                }
            });
        }
    });
    (base, answered)
}
