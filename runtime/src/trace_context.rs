//! W3C trace context, carried from an HTTP request through a Kafka header to
//! the processor's spans: `traceparent` (and `tracestate`), the same header
//! names on both hops.
//!
//! It matters only while spans are exported ([`crate::telemetry::exporting`]):
//! callers ask that first, so none of this runs when export is off. A
//! malformed `traceparent` is ignored, never an error: the request or the
//! message goes on as if it had none.

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// A span that spans elsewhere continue or link to: read from headers, or
/// taken from a span of this process to be sent on.
#[derive(Debug, Clone)]
pub struct TraceParent(SpanContext);

impl TraceParent {
    /// From the W3C headers of an HTTP request; `None` without a valid
    /// `traceparent`.
    pub fn from_http(headers: &HeaderMap) -> Option<Self> {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        Self::from_text(text(TRACEPARENT), text(TRACESTATE))
    }

    /// From the headers of a Kafka message; `None` without a valid
    /// `traceparent`.
    pub fn from_kafka(headers: &impl Headers) -> Option<Self> {
        let text = |name| {
            let header = headers.iter().find(|header| header.key == name)?;
            std::str::from_utf8(header.value?).ok()
        };
        Self::from_text(text(TRACEPARENT), text(TRACESTATE))
    }

    /// From the two header values; `None` when `traceparent` is missing or
    /// malformed. A malformed `tracestate` is dropped on its own.
    pub fn from_text(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent.filter(|value| has_w3c_shape(value))?;
        let carrier = Received {
            traceparent,
            tracestate,
        };
        let context = TraceContextPropagator::new().extract(&carrier);
        let parent = context.span().span_context().clone();
        parent.is_valid().then_some(Self(parent))
    }

    /// `span`'s own context, for what is sent on inside it; `None` when the
    /// span is not exported (export off, or filtered out).
    pub fn of(span: &Span) -> Option<Self> {
        let context = span.context();
        let own = context.span().span_context().clone();
        own.is_valid().then_some(Self(own))
    }

    /// Makes `span` a child of this one. Only before `span` is first
    /// entered; later it keeps the parent it started with.
    pub fn adopt(&self, span: &Span) {
        let _ = span.set_parent(Context::new().with_remote_span_context(self.0.clone()));
    }

    /// Links `span` to this one: how a batch span names the many spans whose
    /// work it carries.
    pub fn link(&self, span: &Span) {
        span.add_link(self.0.clone());
    }

    /// The trace, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// The `traceparent` header value that continues this span.
    pub fn traceparent(&self) -> String {
        self.sent().traceparent
    }

    /// Kafka headers that carry this span to the consumer.
    pub fn kafka_headers(&self) -> OwnedHeaders {
        let sent = self.sent();
        let headers = OwnedHeaders::new_with_capacity(2).insert(Header {
            key: TRACEPARENT,
            value: Some(&sent.traceparent),
        });
        if sent.tracestate.is_empty() {
            return headers;
        }
        headers.insert(Header {
            key: TRACESTATE,
            value: Some(&sent.tracestate),
        })
    }

    fn sent(&self) -> Sent {
        let mut sent = Sent::default();
        let context = Context::new().with_remote_span_context(self.0.clone());
        TraceContextPropagator::new().inject_context(&context, &mut sent);
        sent
    }
}

/// Whether `traceparent` begins with the four fields of W3C Trace Context,
/// each of its exact length in lower-case hex (version, trace id, parent id,
/// flags); the SDK's parser would take a short trace id and pad it.
fn has_w3c_shape(traceparent: &str) -> bool {
    let mut fields = traceparent.trim().split('-');
    [2, 32, 16, 2].iter().all(|&length| {
        fields.next().is_some_and(|field| {
            field.len() == length
                && field
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        })
    })
}

struct Received<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Received<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[derive(Default)]
struct Sent {
    traceparent: String,
    tracestate: String,
}

impl Injector for Sent {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE => self.tracestate = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_traceparent() {
        let parent = TraceParent::from_text(Some(GIVEN), Some("vendor=value")).unwrap();
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.traceparent(), GIVEN);

        let headers = parent.kafka_headers();
        assert_eq!(headers.count(), 2);
        let again = TraceParent::from_kafka(&headers).unwrap();
        assert_eq!(again.traceparent(), GIVEN);
        assert_eq!(again.sent().tracestate, "vendor=value");
    }

    #[test]
    fn ignores_what_is_not_a_traceparent() {
        for invalid in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            // All-zero trace or span ids, upper case, an unknown version.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(
                TraceParent::from_text(Some(invalid), None).is_none(),
                "{invalid}"
            );
        }
        assert!(TraceParent::from_text(None, Some("vendor=value")).is_none());
        // A later version may add fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(TraceParent::from_text(Some(later), None).is_some());
    }

    #[test]
    fn a_span_without_export_has_no_context() {
        assert!(TraceParent::of(&tracing::info_span!("quiet")).is_none());
    }
}
