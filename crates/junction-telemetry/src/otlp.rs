//! The optional OTLP exporter (`JUNCTION_OTLP_ENDPOINT`): every span (requests, provider
//! calls) goes to an OpenTelemetry collector over OTLP/HTTP with protobuf bodies; database
//! statements ride along as events of the span they ran in.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

/// What is exported: Junction's own spans, and the statements run inside them.
fn exported() -> Targets {
    Targets::new()
        .with_target("junction_server", LevelFilter::INFO)
        .with_target("junction_service", LevelFilter::INFO)
        .with_target("junction_store", LevelFilter::INFO)
        .with_target("sqlx::query", LevelFilter::DEBUG)
}

/// Keeps the exporter running; [`Exporter::shutdown`] sends what is still buffered.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends the spans still buffered and stops. Blocks: call it off the async runtime.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the OTLP exporter did not flush its last spans");
        }
    }
}

/// The collector's traces URL: `endpoint` is its base URL (as in
/// `OTEL_EXPORTER_OTLP_ENDPOINT`), to which `/v1/traces` is added unless it is there.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// A layer exporting spans to the collector at `endpoint`, batched on a thread of its own.
pub fn layer<S>(
    endpoint: &str,
) -> Result<(impl Layer<S>, Exporter), opentelemetry_otlp::ExporterBuildError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("junction").build())
        .build();
    let tracer = provider.tracer("junction");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(exported());
    Ok((layer, Exporter { provider }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_collectors_base_url() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
