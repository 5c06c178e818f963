//! W3C Trace Context (`traceparent`): continue a caller's trace, or start one.
//!
//! <https://www.w3.org/TR/trace-context/#traceparent-header>: `version-traceid-parentid-flags`,
//! lower-case hex. A header that does not parse is ignored and a new trace starts, as the
//! recommendation asks.

/// The trace a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits, never all zero.
    pub trace_id: String,
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// Continues `traceparent` if it is valid, otherwise starts a new trace.
    pub fn continue_or_start(traceparent: Option<&str>) -> Self {
        traceparent.and_then(parse).unwrap_or_else(Self::start)
    }

    pub fn start() -> Self {
        // Zero is the one invalid trace id; 2^-128 odds, but cheap to rule out.
        let id = rand::random::<u128>().max(1);
        Self {
            trace_id: hex::encode(id.to_be_bytes()),
            parent_id: None,
            sampled: true,
        }
    }
}

impl TraceContext {
    /// Makes `span` part of this trace for the exporter, and returns the trace id to
    /// report. Without an exporter that is this context's own; with one, the id the
    /// exporter gives the span: the caller's when it sent one, else a new one.
    pub fn adopt(&self, span: &tracing::Span) -> String {
        // A span no subscriber wants has no exporter either.
        #[cfg(feature = "otlp")]
        if !span.is_disabled() {
            use opentelemetry::trace::{
                SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
            };
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            if let Some(parent) = &self.parent_id
                && let (Ok(trace_id), Ok(span_id)) =
                    (TraceId::from_hex(&self.trace_id), SpanId::from_hex(parent))
            {
                let flags = if self.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                };
                let remote =
                    SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
                // Fails only where no exporter listens, which then has nothing to continue.
                let _ =
                    span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
            }
            let context = span.context();
            let exported = context.span().span_context().clone();
            if exported.is_valid() {
                return format!("{:032x}", exported.trace_id());
            }
        }
        #[cfg(not(feature = "otlp"))]
        let _ = span;
        self.trace_id.clone()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// Parses a `traceparent` header value; `None` if it is not a valid one.
pub fn parse(value: &str) -> Option<TraceContext> {
    let value = value.trim_matches([' ', '\t']);
    let mut parts = value.splitn(5, '-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    if !is_hex(version, 2) || version == "ff" {
        return None;
    }
    // Version 00 has exactly four fields; a later version may append more.
    if version == "00" && rest.is_some() {
        return None;
    }
    if !is_hex(trace_id, 32) || all_zero(trace_id) {
        return None;
    }
    if !is_hex(parent_id, 16) || all_zero(parent_id) {
        return None;
    }
    if !is_hex(flags, 2) {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceContext {
        trace_id: trace_id.to_owned(),
        parent_id: Some(parent_id.to_owned()),
        sampled: flags & 1 == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued() {
        let t = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        let later = parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").unwrap();
        assert!(!later.sampled);
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let fresh = TraceContext::continue_or_start(Some("garbage"));
        assert_eq!(fresh.trace_id.len(), 32);
        assert_eq!(fresh.parent_id, None);
    }
}
