//! Statement latency, as the database driver measures it.
//!
//! Junction's queries are spread over the store; sqlx already times each statement and
//! reports it as a `sqlx::query` event carrying `elapsed_secs`. This layer turns those
//! events into the statement histogram, so no query needs wrapping. It needs sqlx's
//! statement events enabled for it (see [`StatementLayer::filter`]), which costs a summary
//! of each statement's text: it is installed only with the metrics listener.

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};

const TARGET: &str = "sqlx::query";

#[derive(Debug, Default, Clone, Copy)]
pub struct StatementLayer;

impl StatementLayer {
    /// The events this layer needs: sqlx's per-statement ones, at any level.
    pub fn filter() -> Targets {
        Targets::new().with_target(TARGET, LevelFilter::TRACE)
    }
}

impl<S: Subscriber> Layer<S> for StatementLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut elapsed = Elapsed(None);
        event.record(&mut elapsed);
        if let Some(seconds) = elapsed.0 {
            crate::statement(seconds);
        }
    }
}

struct Elapsed(Option<f64>);

impl Visit for Elapsed {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}
