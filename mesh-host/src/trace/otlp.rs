//! Finished spans as OTLP messages: one `ResourceSpans` whose resource names the service, one
//! scope (`mesh-host`), the spans with their ids, parent, kind, times, attributes and status.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use crate::shared::{AttributeValue, SpanKind, SpanRecord};

/// The instrumentation scope of every span.
const SCOPE: &str = "mesh-host";

/// One export call's request for `spans` of service `service_name`.
pub(super) fn export_request(
    service_name: &str,
    spans: impl Iterator<Item = SpanRecord>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service_name.to_owned())],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.map(span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn span(record: SpanRecord) -> Span {
    let kind = match record.kind {
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Internal => span::SpanKind::Internal,
        SpanKind::Client => span::SpanKind::Client,
    };
    let status = record.error.then(|| Status {
        message: String::new(),
        code: status::StatusCode::Error as i32,
    });
    Span {
        trace_id: record.context.trace_id.to_vec(),
        span_id: record.context.span_id.to_vec(),
        trace_state: record
            .context
            .tracestate
            .as_ref()
            .and_then(|state| state.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        parent_span_id: record
            .parent_span_id
            .map(|id| id.to_vec())
            .unwrap_or_default(),
        // The W3C trace flags: sampled.
        flags: u32::from(record.context.sampled),
        name: record.name,
        kind: kind as i32,
        start_time_unix_nano: unix_nanos(record.start),
        end_time_unix_nano: unix_nanos(record.end),
        attributes: record
            .attributes
            .into_iter()
            .map(|(key, value)| KeyValue {
                key: key.into_owned(),
                value: Some(AnyValue {
                    value: Some(match value {
                        AttributeValue::Text(text) => {
                            any_value::Value::StringValue(text.into_owned())
                        }
                        AttributeValue::Int(int) => any_value::Value::IntValue(int),
                    }),
                }),
            })
            .collect(),
        status,
        ..Span::default()
    }
}

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::TraceContext;
    use std::time::Duration;

    #[test]
    fn a_span_carries_its_ids_parent_kind_times_attributes_and_error_status() {
        let context = TraceContext::root(true);
        let start = UNIX_EPOCH + Duration::from_secs(10);
        let record = SpanRecord {
            context: context.clone(),
            parent_span_id: Some([7; 8]),
            name: "ingress".into(),
            kind: SpanKind::Server,
            start,
            end: start + Duration::from_millis(5),
            attributes: vec![
                ("http.method".into(), AttributeValue::Text("GET".into())),
                ("http.status_code".into(), AttributeValue::Int(503)),
            ],
            error: true,
        };
        let request = export_request("front", std::iter::once(record));
        let resource = &request.resource_spans[0];
        assert_eq!(
            resource.resource.as_ref().expect("resource").attributes,
            vec![text("service.name", "front".into())]
        );
        let span = &resource.scope_spans[0].spans[0];
        assert_eq!(span.trace_id, context.trace_id.to_vec());
        assert_eq!(span.span_id, context.span_id.to_vec());
        assert_eq!(span.parent_span_id, vec![7; 8]);
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(span.start_time_unix_nano, 10_000_000_000);
        assert_eq!(span.end_time_unix_nano, 10_005_000_000);
        assert_eq!(span.attributes.len(), 2);
        assert_eq!(
            span.status.as_ref().map(|s| s.code),
            Some(status::StatusCode::Error as i32)
        );
    }
}
