//! The real OAuth2 authorization servers in `tests/peers/`, run as child processes.
//!
//! Each peer prints `READY http://127.0.0.1:<port>` on stdout once it listens and exits
//! when its stdin closes, so a peer never outlives the test process that started it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;

/// Client id registered in every peer's default configuration.
pub const CLIENT_ID: &str = "junction-test";
/// Secret of [`CLIENT_ID`] in every peer's default configuration.
pub const CLIENT_SECRET: &str = "junction-test-secret";
/// The single redirect URI registered for [`CLIENT_ID`] by default.
pub const REDIRECT_URI: &str = "https://app.example.test/oauth/callback";

/// Environment variable pointing at `<repo>/tests/peers`.
pub const PEERS_DIR_ENV: &str = "JUNCTION_TEST_PEERS_DIR";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
// Enough for any startup failure's stack trace, bounded so a chatty peer in a long
// test run cannot grow without limit.
const STDERR_KEEP: usize = 64 * 1024;
// Cleared so a variable from the developer's shell (PORT especially) cannot change a
// peer's configuration behind the test's back.
const PEER_ENV_VARS: &[&str] = &[
    "PORT",
    "CLIENTS",
    "ROTATE",
    "AT_TTL",
    "RT_TTL",
    "CODE_TTL",
    "INSTANCE_URL",
    "EXIT_ON_STDIN_EOF",
    "PEER_LOG",
];

/// Which authorization server implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// `tests/peers/oidc`: node's oidc-provider (certified OpenID Connect implementation).
    Oidc,
    /// `tests/peers/authlib`: Python's authlib on Flask.
    Authlib,
    /// `tests/peers/authlib/oauth1_peer.py`: an OAuth 1.0a provider on authlib.
    AuthlibOAuth1,
}

/// A running peer; it is stopped when dropped.
#[derive(Debug)]
pub struct Peer {
    /// Implementation this peer runs.
    pub kind: PeerKind,
    /// Where the peer listens, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub base_url: String,
    child: Child,
    // Held open for the peer's lifetime: the peer exits when it reaches EOF.
    _stdin: ChildStdin,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// Directory holding the peers' sources (`<repo>/tests/peers`).
pub fn peers_dir() -> PathBuf {
    match std::env::var_os(PEERS_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers"),
    }
}

impl Peer {
    /// Starts a new peer of `kind` with extra environment (`PORT`, `CLIENTS`, `ROTATE`, …).
    pub async fn start(kind: PeerKind, env: &[(&str, &str)]) -> Peer {
        let dir = peers_dir();
        let mut command = match kind {
            PeerKind::Oidc => {
                let dir = dir.join("oidc");
                if !dir.join("node_modules").is_dir() {
                    panic!(
                        "{} has no node_modules: run `bash scripts/setup-test-deps.sh` \
                         (or set {PEERS_DIR_ENV})",
                        dir.display()
                    );
                }
                let mut command = Command::new("node");
                command.arg("peer.mjs").current_dir(dir);
                command
            }
            PeerKind::Authlib | PeerKind::AuthlibOAuth1 => {
                let dir = dir.join("authlib");
                let python = dir.join(".venv/bin/python");
                if !python.is_file() {
                    panic!(
                        "{} is missing: run `bash scripts/setup-test-deps.sh` (or set {PEERS_DIR_ENV})",
                        python.display()
                    );
                }
                let mut command = Command::new(python);
                let script = if kind == PeerKind::Authlib {
                    "peer.py"
                } else {
                    "oauth1_peer.py"
                };
                command.arg(script).current_dir(dir);
                command
            }
        };
        for name in PEER_ENV_VARS {
            command.env_remove(name);
        }
        command
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {kind:?} peer ({command:?}): {e}"));
        let stdin = child.stdin.take().expect("the peer's stdin is piped");
        let stdout = child.stdout.take().expect("the peer's stdout is piped");
        let stderr_pipe = child.stderr.take().expect("the peer's stderr is piped");

        // Plain threads rather than tokio tasks: a shared peer outlives the runtime of the
        // test that started it, and its pipes must keep draining after that runtime is gone.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_thread = {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || drain_stderr(stderr_pipe, &stderr))
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = ready_tx.send(first);
            // Keeps the pipe open so a stray write cannot kill the peer with SIGPIPE.
            for _ in lines {}
        });

        let failure = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(Some(Ok(line)))) => match line.strip_prefix("READY ") {
                Some(url) => {
                    return Peer {
                        kind,
                        base_url: url.trim().trim_end_matches('/').to_owned(),
                        child,
                        _stdin: stdin,
                        stderr,
                    };
                }
                None => format!("printed {line:?} instead of a READY line"),
            },
            Ok(Ok(Some(Err(e)))) => format!("stdout could not be read: {e}"),
            Ok(Ok(None) | Err(_)) => "exited before printing its READY line".to_owned(),
            Err(_) => format!("printed no READY line within {READY_TIMEOUT:?}"),
        };
        let _ = child.kill();
        let status = child.wait();
        drop(stdin);
        let _ = stderr_thread.join();
        panic!(
            "the {kind:?} peer {failure} (exit: {status:?}); its stderr:\n{}",
            String::from_utf8_lossy(&stderr.lock().unwrap_or_else(PoisonError::into_inner))
        );
    }

    /// The peer with its default configuration, started once and shared by every test
    /// of the process.
    pub async fn shared(kind: PeerKind) -> &'static Peer {
        static OIDC: OnceCell<Peer> = OnceCell::const_new();
        static AUTHLIB: OnceCell<Peer> = OnceCell::const_new();
        static AUTHLIB_OAUTH1: OnceCell<Peer> = OnceCell::const_new();
        let cell = match kind {
            PeerKind::Oidc => &OIDC,
            PeerKind::Authlib => &AUTHLIB,
            PeerKind::AuthlibOAuth1 => &AUTHLIB_OAUTH1,
        };
        cell.get_or_init(|| Peer::start(kind, &[])).await
    }

    /// The authorization endpoint.
    pub fn authorize_url(&self) -> String {
        match self.kind {
            PeerKind::Oidc => format!("{}/auth", self.base_url),
            PeerKind::Authlib | PeerKind::AuthlibOAuth1 => {
                format!("{}/oauth/authorize", self.base_url)
            }
        }
    }

    /// The token endpoint (client_secret_post and client_secret_basic are both accepted).
    pub fn token_url(&self) -> String {
        match self.kind {
            PeerKind::Oidc => format!("{}/token", self.base_url),
            PeerKind::Authlib => format!("{}/oauth/token", self.base_url),
            PeerKind::AuthlibOAuth1 => format!("{}/oauth/access_token", self.base_url),
        }
    }

    /// OAuth 1.0a: the temporary-credentials endpoint.
    pub fn request_token_url(&self) -> String {
        format!("{}/oauth/request_token", self.base_url)
    }

    /// Base of the bearer-protected API (`GET <api>/me`, `POST <api>/echo`).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.base_url)
    }

    /// The oidc peer's counts of refresh_token grants: `{"refreshGrants": <succeeded>,
    /// "refreshFailures": <refused>, "refreshErrors": {<error>: <count>}}`.
    pub async fn stats(&self) -> serde_json::Value {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("building a client for the peer's statistics")
            .get(format!("{}/__stats", self.base_url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {}/__stats: {e}", self.base_url))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}/__stats is not JSON: {e}", self.base_url))
    }

    /// The peer's process id, to read its CPU time from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the peer has written to stderr so far (its most recent 64 KiB), for diagnostics.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing stdin alone would stop it too, but only once it gets scheduled; killing
        // and reaping frees the port now and leaves no zombie behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain_stderr(mut pipe: impl Read, keep: &Mutex<Vec<u8>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = keep.lock().unwrap_or_else(PoisonError::into_inner);
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > STDERR_KEEP {
                    let excess = kept.len() - STDERR_KEEP;
                    kept.drain(..excess);
                }
            }
        }
    }
}
