//! What the inbound and outbound areas share and nothing else: the identity
//! of a workload, what is known of a request's downstream, a view of a
//! request as Envoy's header map presents it, the failures the host
//! answers for itself, what served a response, the trace a request belongs to,
//! and the reading of a peer certificate's names against SAN matchers.

mod failure;
mod header_edits;
mod request_meta;
mod request_view;
mod san_match;
mod served;
mod trace_context;
mod workload_id;

pub use failure::{Failure, REASON_HEADER};
pub use header_edits::{EditList, InvalidHeaderEdit};
pub use request_meta::RequestMeta;
pub(crate) use request_view::RequestView;
pub(crate) use san_match::any_san_matches;
pub use served::{ResponseDetails, ResponseFlag, ServedBy, UpstreamHost};
pub use trace_context::{
    AttributeValue, OpenSpan, RequestTrace, SpanKind, SpanRecord, SpanSink, TRACEPARENT,
    TRACESTATE, TraceContext,
};
pub use workload_id::{InvalidWorkloadId, WorkloadId};
