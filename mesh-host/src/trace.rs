//! The trace area: a connection manager's `tracing` compiled into a [`Tracer`] that decides
//! whether a request is sampled and opens its server span, and the exporters that send
//! finished spans to an OpenTelemetry collector over OTLP/gRPC, off the request path.
//!
//! The spans of one request: the server span (kind SERVER, named by the connection manager's
//! `operation`, the route's decorator, or Envoy's `ingress`/`egress`), the component's
//! execution (INTERNAL, a child of it, opened by `inbound`), and each request the component
//! sends (CLIENT, a child of the component's span, opened by `outbound`, which writes its
//! context into the request's `traceparent`). The context travels as a [`RequestTrace`]:
//! beside the request through the inbound pipeline to the runtime (an argument, not an
//! extension, which would cost every request allocations), and from a component to its
//! outbound requests in their extensions.

mod export;
mod otlp;
mod sampling;

use std::sync::Arc;

use http::HeaderName;
use mesh_xds::config::{CustomTagValue, RouteTracing, Tracing, TrafficDirection};

pub use export::{CollectorClient, ExportError, SpanExporters};
pub use sampling::Sampling;

use crate::shared::{OpenSpan, RequestMeta, RequestTrace, SpanKind, SpanSink, TraceContext};

/// `x-client-trace-id`: a client asks for its request to be traced (at `client_sampling`).
const CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");

/// A custom tag with its source resolved as far as configuration allows.
#[derive(Debug)]
enum Tag {
    /// A literal, or an environment variable read when the tracer was compiled.
    Fixed { name: String, value: String },
    /// A request header, else a default (no attribute when that is empty).
    Header {
        name: String,
        header: HeaderName,
        default: String,
    },
}

impl Tag {
    fn compile(tag: &mesh_xds::config::CustomTag) -> Option<Tag> {
        let name = tag.tag.clone();
        Some(match &tag.value {
            CustomTagValue::Literal(value) => Tag::Fixed {
                name,
                value: value.clone(),
            },
            CustomTagValue::Environment {
                name: variable,
                default_value,
            } => Tag::Fixed {
                name,
                value: std::env::var(variable).unwrap_or_else(|_| default_value.clone()),
            },
            CustomTagValue::RequestHeader {
                name: header,
                default_value,
            } => Tag::Header {
                name,
                // The translator lower-cased it; a name that is no header name never matches.
                header: HeaderName::try_from(header.as_str()).ok()?,
                default: default_value.clone(),
            },
        })
    }

    fn apply(&self, span: &mut OpenSpan, head: &http::request::Parts) {
        match self {
            Tag::Fixed { name, value } => span.set_text(name.clone(), value.clone()),
            Tag::Header {
                name,
                header,
                default,
            } => {
                let value = head
                    .headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(default);
                if !value.is_empty() {
                    span.set_text(name.clone(), value.to_owned());
                }
            }
        }
    }
}

/// One connection manager's tracing, ready for requests.
pub struct Tracer {
    sampling: Sampling,
    max_path_tag_length: usize,
    tags: Vec<Tag>,
    operation: Option<String>,
    /// Envoy's span name when neither `operation` nor a decorator names it.
    default_operation: &'static str,
    propagate: bool,
    sink: Arc<dyn SpanSink>,
}

/// The server span of a request (when sampled) and the trace its children join.
pub struct ServerTrace {
    /// The server span; `None` when the request is not sampled.
    pub span: Option<OpenSpan>,
    /// What the request carries on to its component and upstream.
    pub trace: RequestTrace,
}

impl Tracer {
    /// Compiles `config` for a listener of `direction`; its spans go to the exporter of its
    /// provider.
    pub fn new(config: &Tracing, direction: TrafficDirection, exporters: &SpanExporters) -> Tracer {
        Tracer {
            sampling: Sampling {
                client: config.client_sampling,
                random: config.random_sampling,
                overall: config.overall_sampling,
            },
            max_path_tag_length: usize::try_from(config.max_path_tag_length).unwrap_or(usize::MAX),
            tags: config.custom_tags.iter().filter_map(Tag::compile).collect(),
            operation: config.operation.clone(),
            default_operation: match direction {
                TrafficDirection::Outbound => "egress",
                TrafficDirection::Inbound | TrafficDirection::Unspecified => "ingress",
            },
            propagate: config.propagate_context,
            sink: exporters.exporter(&config.provider),
        }
    }

    /// Decides whether the request is sampled and, if so, opens its server span with the
    /// request's attributes. `route` is the matched route's tracing, `route_name` its name.
    pub fn start(
        &self,
        head: &http::request::Parts,
        meta: &RequestMeta,
        route: Option<&RouteTracing>,
        route_name: Option<&str>,
    ) -> ServerTrace {
        let incoming = TraceContext::from_headers(&head.headers);
        let sampling = Sampling {
            client: route
                .and_then(|r| r.client_sampling)
                .unwrap_or(self.sampling.client),
            random: route
                .and_then(|r| r.random_sampling)
                .unwrap_or(self.sampling.random),
            overall: route
                .and_then(|r| r.overall_sampling)
                .unwrap_or(self.sampling.overall),
        };
        let sampled = sampling.decide(
            incoming.as_ref(),
            head.headers.contains_key(CLIENT_TRACE_ID),
            rand::random,
        );
        let parent = incoming.as_ref().map(|c| c.span_id);
        let context = match incoming {
            Some(incoming) => incoming.child(),
            None => TraceContext::root(sampled),
        };
        if !sampled {
            return ServerTrace {
                span: None,
                trace: RequestTrace {
                    context,
                    sink: None,
                    propagate: self.propagate,
                },
            };
        }
        let name = self
            .operation
            .as_deref()
            .or_else(|| route.and_then(|r| r.operation.as_deref()))
            .unwrap_or(self.default_operation);
        let mut span = OpenSpan::new(
            self.sink.clone(),
            context.clone(),
            parent,
            name.to_owned(),
            SpanKind::Server,
        );
        self.describe(&mut span, head, meta, route, route_name);
        ServerTrace {
            span: Some(span),
            trace: RequestTrace {
                context,
                sink: Some(self.sink.clone()),
                propagate: self.propagate,
            },
        }
    }

    /// Envoy's request tags, then the custom tags (a route's replace the connection
    /// manager's of the same name).
    fn describe(
        &self,
        span: &mut OpenSpan,
        head: &http::request::Parts,
        meta: &RequestMeta,
        route: Option<&RouteTracing>,
        route_name: Option<&str>,
    ) {
        span.set_text("component", "proxy");
        span.set_text("http.method", head.method.to_string());
        span.set_text("http.url", self.url(head));
        span.set_text("http.protocol", format!("{:?}", head.version));
        span.set_text("peer.address", meta.remote_ip.to_string());
        if let Some(agent) = head
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            span.set_text("user_agent", agent.to_owned());
        }
        if let Some(name) = route_name.filter(|n| !n.is_empty()) {
            span.set_text("route_name", name.to_owned());
        }
        for tag in &self.tags {
            tag.apply(span, head);
        }
        for tag in route
            .map(|r| r.custom_tags.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(Tag::compile)
        {
            tag.apply(span, head);
        }
    }

    /// `http.url`: scheme, authority and path, cut to `max_path_tag_length` bytes on a
    /// character boundary.
    fn url(&self, head: &http::request::Parts) -> String {
        let scheme = head.uri.scheme_str().unwrap_or("http");
        let authority = head
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                head.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or_default();
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut url = format!("{scheme}://{authority}{path}");
        if url.len() > self.max_path_tag_length {
            let mut end = self.max_path_tag_length;
            while !url.is_char_boundary(end) {
                end -= 1;
            }
            url.truncate(end);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Mutex;

    use mesh_xds::config::{CustomTag, Fraction, GrpcServiceTarget, OpenTelemetry};

    use crate::shared::{AttributeValue, SpanRecord, TRACEPARENT};

    #[derive(Default)]
    struct Kept(Mutex<Vec<SpanRecord>>);

    impl SpanSink for Kept {
        fn record(&self, span: SpanRecord) {
            self.0.lock().expect("lock").push(span);
        }
    }

    fn tracer(random: Fraction, sink: Arc<Kept>) -> Tracer {
        let config = Tracing {
            client_sampling: Fraction::ALL,
            random_sampling: random,
            overall_sampling: Fraction::ALL,
            max_path_tag_length: 24,
            custom_tags: vec![
                CustomTag {
                    tag: "team".into(),
                    value: CustomTagValue::Literal("payments".into()),
                },
                CustomTag {
                    tag: "tenant".into(),
                    value: CustomTagValue::RequestHeader {
                        name: "x-tenant".into(),
                        default_value: String::new(),
                    },
                },
            ],
            operation: None,
            propagate_context: true,
            provider: OpenTelemetry {
                collector: GrpcServiceTarget {
                    cluster: "otel".into(),
                    authority: "otel".into(),
                    timeout: None,
                    initial_metadata: Vec::new(),
                },
                service_name: "svc".into(),
                max_cache_size: 8,
            },
        };
        let mut tracer = Tracer::new(
            &config,
            TrafficDirection::Inbound,
            &SpanExporters::new(Arc::new(Unreachable), Default::default()),
        );
        tracer.sink = sink;
        tracer
    }

    struct Unreachable;

    impl CollectorClient for Unreachable {
        fn export(
            &self,
            _: &GrpcServiceTarget,
            _: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        ) -> futures::future::BoxFuture<'static, Result<(), ExportError>> {
            Box::pin(async { Err(ExportError::Closed) })
        }
    }

    fn meta() -> RequestMeta {
        RequestMeta {
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            remote_ip: Ipv4Addr::LOCALHOST.into(),
            local: SocketAddr::from((Ipv4Addr::LOCALHOST, 2)),
            tls: false,
            server_name: None,
            peer_principal: None,
            peer_certificate: None,
            grpc: false,
            filter_chain: 0,
        }
    }

    fn head(traceparent: Option<&'static str>) -> http::request::Parts {
        let mut builder = http::Request::get("http://svc.test/a/very/long/path/indeed")
            .header("x-tenant", "acme");
        if let Some(value) = traceparent {
            builder = builder.header(TRACEPARENT, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn attribute<'a>(span: &'a SpanRecord, key: &str) -> Option<&'a AttributeValue> {
        span.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn a_sampled_request_opens_a_server_span_that_continues_the_incoming_trace() {
        let kept = Arc::new(Kept::default());
        let tracer = tracer(Fraction::NONE, kept.clone());
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let route = RouteTracing {
            operation: Some("checkout".into()),
            ..RouteTracing::default()
        };
        let started = tracer.start(&head(Some(incoming)), &meta(), Some(&route), Some("r1"));
        let mut span = started.span.expect("sampled by the incoming flag");
        span.set_status(503);
        drop(span);
        let spans = kept.0.lock().expect("lock");
        let span = &spans[0];
        assert_eq!(span.name, "checkout");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.context.trace_id[0], 0x4b);
        assert_eq!(
            span.parent_span_id,
            Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(started.trace.context, span.context);
        assert!(span.error, "a 5xx is an error");
        assert_eq!(
            attribute(span, "http.url"),
            Some(&AttributeValue::Text("http://svc.test/a/very/l".into()))
        );
        assert_eq!(
            attribute(span, "team"),
            Some(&AttributeValue::Text("payments".into()))
        );
        assert_eq!(
            attribute(span, "tenant"),
            Some(&AttributeValue::Text("acme".into()))
        );
        assert_eq!(
            attribute(span, "route_name"),
            Some(&AttributeValue::Text("r1".into()))
        );
    }

    #[test]
    fn an_unsampled_request_records_nothing_but_still_has_a_context_to_propagate() {
        let kept = Arc::new(Kept::default());
        let tracer = tracer(Fraction::NONE, kept.clone());
        let started = tracer.start(&head(None), &meta(), None, None);
        assert!(started.span.is_none());
        assert!(started.trace.sink.is_none());
        assert!(!started.trace.context.sampled);
        let (span, child) = started.trace.child_span(|| "x".into(), SpanKind::Internal);
        assert!(span.is_none());
        assert!(child.sink.is_none());
        assert_ne!(child.context.span_id, started.trace.context.span_id);
        assert!(kept.0.lock().expect("lock").is_empty());
    }

    #[test]
    fn without_a_decorator_the_span_is_named_as_envoy_names_it() {
        let kept = Arc::new(Kept::default());
        let tracer = tracer(Fraction::ALL, kept.clone());
        drop(tracer.start(&head(None), &meta(), None, None));
        assert_eq!(kept.0.lock().expect("lock")[0].name, "ingress");
    }
}
