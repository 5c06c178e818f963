//! The JavaScript sandbox for element hooks (`preRequest`, `postRequest`, `event`).
//!
//! A hook is a named script, a map of input globals and the map of outputs it hands to
//! `done(obj)`. Every run gets a fresh QuickJS runtime and context, so nothing a script does
//! (globals, prototype pollution) can reach another run, and so another instance's call.
//! A run is bounded in time (an interrupt handler watching a deadline), in memory (the
//! runtime's allocation limit) and in stack depth; it has no file system, network, module
//! loader or real clock, and runs on a blocking thread behind a semaphore so hooks cannot
//! take every thread. This crate knows nothing of elements, HTTP or storage: the resource
//! engine decides what goes in and what the outputs mean.

mod engine;

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Most bytes the JSON of a hook's output may take.
pub const MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;
/// Most `console` lines kept from one run; later ones are dropped.
pub const MAX_LOG_LINES: usize = 100;
/// Most bytes kept of one `console` line (cut at a character boundary).
pub const MAX_LOG_LINE_BYTES: usize = 1024;
/// JavaScript stack a run may use: deep recursion ends in a `RangeError`, never in a crash
/// of the thread (a blocking thread has 2 MiB).
pub const MAX_STACK_BYTES: usize = 256 * 1024;

/// Bounds on one run of a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time from the start of the run (waiting for a free slot not counted), including
    /// turning the inputs into JavaScript and the output back.
    pub time: Duration,
    /// Bytes the run's JavaScript heap may hold, inputs included. 0 means no limit (QuickJS's
    /// convention), so a setting feeding it should refuse 0.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(1),
            memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What a hook handed to `done`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookResult {
    /// The keys of the object given to `done`, less `continue` (which is `proceed`).
    pub output: Map<String, Value>,
    /// False when the hook called `done({continue: false, ...})`: the caller should stop
    /// the call here and answer with the outputs.
    pub proceed: bool,
    /// What the script wrote with `console.log/info/debug/warn/error`, at most
    /// [`MAX_LOG_LINES`] lines of at most [`MAX_LOG_LINE_BYTES`] bytes. Lines may hold
    /// whatever the script printed, input values included.
    pub logs: Vec<String>,
}

/// Why a hook gave no result. `name` is the caller's description of the hook, such as
/// `'preRequest' of resource 'GET /hubs/crm/contacts'`; messages never hold input values
/// (they may be credentials), except what a script itself puts in what it throws.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("hook {name} ran longer than {} ms", limit.as_millis())]
    Timeout { name: String, limit: Duration },
    #[error("hook {name} needed more than {} of memory", bytes(*limit))]
    Memory { name: String, limit: usize },
    #[error("hook {name} threw {message}")]
    Thrown { name: String, message: String },
    #[error("hook {name} is not valid JavaScript: {message}")]
    Syntax { name: String, message: String },
    #[error("hook {name} ended without calling done()")]
    NoDone { name: String },
    #[error("hook {name} gave an unusable output: {message}")]
    BadOutput { name: String, message: String },
    /// Every slot stayed taken for as long as one run may last: other hooks are keeping
    /// the sandbox busy, so this one is not queued behind them any longer.
    #[error("hook {name} found no free sandbox slot within {} ms", waited.as_millis())]
    Busy { name: String, waited: Duration },
    /// The engine itself failed (it could not start, or it panicked); not the script's fault.
    #[error("hook {name} could not be run")]
    Internal { name: String },
}

impl HookError {
    /// The hook's description, as given to [`Sandbox::run`].
    pub fn hook(&self) -> &str {
        match self {
            Self::Timeout { name, .. }
            | Self::Memory { name, .. }
            | Self::Thrown { name, .. }
            | Self::Syntax { name, .. }
            | Self::NoDone { name }
            | Self::BadOutput { name, .. }
            | Self::Busy { name, .. }
            | Self::Internal { name } => name,
        }
    }
}

fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Runs hooks, each in a fresh JavaScript runtime, at most `concurrency` at once.
#[derive(Debug, Clone)]
pub struct Sandbox {
    limits: Limits,
    slots: Arc<Semaphore>,
}

impl Sandbox {
    /// `concurrency` below 1 is taken as 1.
    pub fn new(limits: Limits, concurrency: usize) -> Self {
        Self {
            limits,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs `script` with each entry of `input` as a global variable and `done`, `console`
    /// beside them (they win over inputs of the same name). The script is the body of a
    /// strict-mode function, so it may `return`. `meta_data.now` (milliseconds since the
    /// epoch, or an ISO-8601 text) is what `Date.now()` and `new Date()` give; without it
    /// they give the time the run started, frozen. `name` describes the hook in errors, for
    /// example `'preRequest' of resource 'GET /hubs/crm/contacts'`.
    pub async fn run(
        &self,
        name: &str,
        script: &str,
        input: Map<String, Value>,
    ) -> Result<HookResult, HookError> {
        let limits = self.limits;
        let (owned_name, owned_script) = (name.to_owned(), script.to_owned());
        self.in_slot(name, move || {
            engine::execute(&owned_name, &owned_script, &input, limits)
        })
        .await
    }

    /// Runs `work` on a blocking thread once a slot is free.
    async fn in_slot<F>(&self, name: &str, work: F) -> Result<HookResult, HookError>
    where
        F: FnOnce() -> Result<HookResult, HookError> + Send + 'static,
    {
        let internal = || HookError::Internal {
            name: name.to_owned(),
        };
        // The permit moves into the blocking task: a caller that stops waiting does not free
        // the slot before the script has actually stopped.
        // The wait is bounded by the time one run may take, so hooks that burn their whole
        // limit (one tenant's, say) delay everyone else's by at most that much.
        let waited = self.limits.time;
        let permit = tokio::time::timeout(waited, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| HookError::Busy {
                name: name.to_owned(),
                waited,
            })?
            .map_err(|_| internal())?;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        // A panic inside the engine ends here as a JoinError, never in the caller's task.
        task.await.unwrap_or_else(|_| Err(internal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_to_one_second_and_32_mib() {
        let limits = Limits::default();
        assert_eq!(limits.time, Duration::from_secs(1));
        assert_eq!(limits.memory_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn messages_name_the_hook_and_the_limit() {
        let name = "'preRequest' of resource 'GET /hubs/crm/contacts'".to_owned();
        let timeout = HookError::Timeout {
            name: name.clone(),
            limit: Duration::from_secs(1),
        };
        assert_eq!(
            timeout.to_string(),
            "hook 'preRequest' of resource 'GET /hubs/crm/contacts' ran longer than 1000 ms"
        );
        let memory = HookError::Memory {
            name,
            limit: 32 * 1024 * 1024,
        };
        assert_eq!(
            memory.to_string(),
            "hook 'preRequest' of resource 'GET /hubs/crm/contacts' needed more than 32 MiB of memory"
        );
        assert_eq!(bytes(1536), "1536 bytes");
        assert_eq!(bytes(512 * 1024), "512 KiB");
    }

    #[tokio::test]
    async fn a_panic_in_a_run_is_an_error_and_frees_its_slot() {
        let sandbox = Sandbox::new(Limits::default(), 1);

        let panicked = sandbox
            .in_slot("'event' of element 'sfdc'", || panic!("engine bug"))
            .await;
        let next = sandbox.run("next", "done({ ok: true });", Map::new()).await;

        assert_eq!(
            panicked,
            Err(HookError::Internal {
                name: "'event' of element 'sfdc'".to_owned()
            })
        );
        assert_eq!(next.map(|r| r.output["ok"].clone()), Ok(Value::Bool(true)));
    }

    #[tokio::test]
    async fn a_run_that_finds_no_free_slot_within_the_time_limit_is_busy() {
        let limits = Limits {
            time: Duration::from_millis(50),
            ..Limits::default()
        };
        let sandbox = Sandbox::new(limits, 1);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = {
            let sandbox = sandbox.clone();
            tokio::spawn(async move {
                sandbox
                    .in_slot("holder", move || {
                        let _ = started_tx.send(());
                        let _ = released.recv();
                        Ok(HookResult::default())
                    })
                    .await
            })
        };
        started.await.unwrap();

        // The guard only turns an unbounded wait into a failure instead of a hang.
        let queued = tokio::time::timeout(
            Duration::from_secs(30),
            sandbox.run("'preRequest' of resource 'GET /x'", "done({});", Map::new()),
        )
        .await
        .expect("the run waited for a slot without bound");
        release.send(()).unwrap();

        assert_eq!(
            queued,
            Err(HookError::Busy {
                name: "'preRequest' of resource 'GET /x'".to_owned(),
                waited: Duration::from_millis(50),
            })
        );
        assert!(holder.await.unwrap().is_ok());
        assert!(sandbox.run("after", "done({});", Map::new()).await.is_ok());
    }

    #[tokio::test]
    async fn no_more_runs_than_slots_are_in_progress_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Instant;

        const RUNS: usize = 3;
        // Long enough that the third run waits for a slot rather than giving up.
        let limits = Limits {
            time: Duration::from_secs(30),
            ..Limits::default()
        };
        let sandbox = Sandbox::new(limits, 2);
        let started = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..RUNS {
            let sandbox = sandbox.clone();
            let (started, running, most) = (started.clone(), running.clone(), most.clone());
            tasks.spawn(async move {
                sandbox
                    .in_slot("slot", move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // Unbounded, all three would be here at once, each waiting for the
                        // others; bounded, the first two give up waiting for the third.
                        let until = Instant::now() + Duration::from_secs(2);
                        while started.load(Ordering::SeqCst) < RUNS && Instant::now() < until {
                            std::thread::yield_now();
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(HookResult::default())
                    })
                    .await
            });
        }

        while let Some(joined) = tasks.join_next().await {
            assert!(matches!(joined, Ok(Ok(_))));
        }
        assert_eq!(started.load(Ordering::SeqCst), RUNS);
        assert!(most.load(Ordering::SeqCst) <= 2);
    }
}
