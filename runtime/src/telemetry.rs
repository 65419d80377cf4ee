//! `tracing` set-up shared by the services: log lines, text or JSON, and,
//! when `--otlp-endpoint` names a collector, spans exported over OTLP/HTTP.
//!
//! With no endpoint the subscriber is the plain log formatter it always was:
//! no span reaches OpenTelemetry, and [`exporting`] tells the services not to
//! carry trace context at all (one relaxed load per request or message).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogFormat, TelemetrySettings};

/// The OTLP/HTTP path of traces under the collector's endpoint.
const TRACES_PATH: &str = "/v1/traces";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process. The services carry trace context (HTTP
/// and Kafka headers, the processor's per-message spans) only then.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// What [`init`] set up. Dropping it sends the spans still queued and stops
/// the export, so a service holds it until it has stopped.
#[must_use = "dropping it stops the span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends every span ended so far, now (blocking, within the exporter's
    /// timeout). Without an endpoint it does nothing.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(cause = %error, "cannot flush the spans to the OTLP endpoint");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            EXPORTING.store(false, Ordering::Relaxed);
            if let Err(error) = provider.shutdown() {
                tracing::warn!(cause = %error, "spans lost at shutdown: the OTLP endpoint did not take them");
            }
        }
    }
}

/// Installs the global subscriber, with span export to the OTLP endpoint of
/// `settings` as `service` (OpenTelemetry's `service.name`). Safe to call
/// more than once (tests do): later calls leave the first subscriber in
/// place and export nothing of their own. Fails on an endpoint that is not
/// an `http://` URL.
pub fn init(settings: &TelemetrySettings, service: &'static str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let endpoint = settings.otlp_endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        let _ = match settings.log_format {
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
            LogFormat::Text => builder.try_init(),
        };
        return Ok(Telemetry { provider: None });
    }
    let provider = tracer_provider(endpoint, service)?;
    let log_lines = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
    };
    // The log filter decides the log lines only: spans go out whatever
    // `--log` says, Sluice's own at info and above (the libraries' spans
    // would be noise, and some are per message).
    // No thread attributes, no busy/idle timings, and no OpenTelemetry
    // context attached on every poll of a span's future: nothing in Sluice
    // reads them, and each costs per enter or per span.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(Targets::new().with_target("sluice", Level::INFO));
    let installed = Registry::default()
        .with(log_lines.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if !installed {
        return Ok(Telemetry { provider: None });
    }
    EXPORTING.store(true, Ordering::Relaxed);
    tracing::info!(endpoint, service, "exporting spans over OTLP/HTTP");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Spans batched on the SDK's own thread and POSTed as protobuf to
/// `endpoint/v1/traces`, so a slow collector never holds a request.
fn tracer_provider(endpoint: &str, service: &'static str) -> anyhow::Result<SdkTracerProvider> {
    if !endpoint.starts_with("http://") {
        bail!(
            "--otlp-endpoint {endpoint}: only http:// is supported (no TLS is built in for \
             OTLP); send to a local collector or agent"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}{TRACES_PATH}"))
        .build()
        .with_context(|| format!("--otlp-endpoint {endpoint}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_endpoints_it_cannot_reach() {
        for endpoint in ["https://collector:4318", "collector:4318"] {
            let error = tracer_provider(endpoint, "test").err().unwrap();
            assert!(error.to_string().contains("http://"), "{error}");
        }
    }
}
