//! `serve --otlp-endpoint`: the broker's request spans as OpenTelemetry traces, sent
//! to a collector over OTLP/HTTP with protobuf bodies (the OTLP specification's
//! default transport, what the OpenTelemetry Collector, Jaeger, Tempo and vendors'
//! agents accept on port 4318).
//!
//! Spans are batched by the SDK on its own thread and exported with a blocking HTTP
//! client there, off the async threads that answer requests; a full queue drops
//! spans rather than slowing requests down (`OTEL_BSP_MAX_QUEUE_SIZE`, 2,048 by
//! default). The standard `OTEL_*` variables work as in every OpenTelemetry SDK:
//! `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (e.g. `parentbased_traceidratio`
//! and `0.01` under heavy load), `OTEL_EXPORTER_OTLP_HEADERS` (an API key),
//! `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`.

use anyhow::{Context, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;

/// The path of the traces signal under a collector's OTLP/HTTP address.
const TRACES_PATH: &str = "/v1/traces";

/// A running trace export; [`Traces::shutdown`] sends what is still queued.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    url: String,
}

/// Where the traces of `endpoint` are sent: a collector's base address gets
/// `/v1/traces` appended, as `OTEL_EXPORTER_OTLP_ENDPOINT` does; a URL that already
/// ends in it is taken as it is.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let uri: http::Uri = endpoint.parse().with_context(|| {
        format!("--otlp-endpoint '{endpoint}' is not a URL; use e.g. http://127.0.0.1:4318")
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        bail!(
            "--otlp-endpoint must be an http(s) URL of an OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (gRPC on 4317 is not supported)"
        );
    }
    if uri.query().is_some() {
        bail!("--otlp-endpoint takes no query string; got '{endpoint}'");
    }
    let path = uri.path();
    if path.ends_with(TRACES_PATH) {
        return Ok(endpoint.to_owned());
    }
    let base = endpoint.trim_end_matches('/');
    Ok(format!("{base}{TRACES_PATH}"))
}

impl Traces {
    /// Starts exporting to the collector at `endpoint` (see [`traces_url`]) and makes
    /// W3C Trace Context (`traceparent`) the way incoming requests name their trace.
    /// Nothing is sent yet: a collector that is down costs failed exports (logged),
    /// never a failed start.
    pub fn otlp(endpoint: &str) -> anyhow::Result<Self> {
        let url = traces_url(endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .build()
            .context("cannot set up the OTLP trace exporter")?;
        let resource = Resource::builder();
        // OTEL_SERVICE_NAME, when set, names the service (the SDK reads it).
        let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
            resource
        } else {
            resource.with_service_name("auth-broker")
        };
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Ok(Self { provider, url })
    }

    /// Where the spans go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this export.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("auth-broker"))
            // A request span's code location, thread and target are always the same
            // (the HTTP layer's), so they would only make every span bigger.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
    }

    /// Sends the spans still queued and stops the export thread. Blocks for at most
    /// the exporter's timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s), so it runs off the
    /// async threads.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "the last traces could not be sent");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::traces_url;

    #[test]
    fn a_collector_base_gets_the_traces_path() {
        for (given, sent) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            (
                "https://otel.example.com/otlp",
                "https://otel.example.com/otlp/v1/traces",
            ),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(traces_url(given).unwrap(), sent);
        }
    }

    #[test]
    fn what_is_not_an_otlp_http_url_is_refused_with_an_example() {
        for bad in [
            "127.0.0.1:4318",
            "grpc://c:4317",
            "http://c:4318/?x=1",
            "not a url",
        ] {
            let e = traces_url(bad).unwrap_err().to_string();
            assert!(e.contains("--otlp-endpoint"), "{bad}: {e}");
        }
    }
}
