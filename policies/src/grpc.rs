//! gRPC flags of a workload and recognition of gRPC requests.
//!
//! A workload serves gRPC only when `grpc.serve` is set and may call gRPC
//! services only when `grpc.outbound` is set; plain HTTP is never affected.

use http::HeaderValue;
use serde::Deserialize;

/// Whether a workload speaks gRPC, inbound and outbound. Both default to off.
///
/// YAML: `grpc: { serve: true, outbound: false }`. Cluster metadata from xDS
/// may override either field, so both are public.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcFlags {
    /// The component serves gRPC: inbound gRPC requests reach it.
    pub serve: bool,
    /// The component may send gRPC requests to other services.
    pub outbound: bool,
}

/// An outbound gRPC request refused by a workload's [`GrpcFlags`] (the
/// inbound flag is the host's gRPC filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrpcDenied {
    /// The component sent a gRPC request without `grpc.outbound`.
    #[error(
        "the workload may not send gRPC requests; set grpc.outbound: true in its policy to allow them"
    )]
    OutboundDisabled,
}

impl GrpcFlags {
    /// Decides an outbound request: plain HTTP always passes (egress rules
    /// still apply), gRPC needs `outbound`.
    pub fn check_outbound(&self, is_grpc: bool) -> Result<(), GrpcDenied> {
        if is_grpc && !self.outbound {
            Err(GrpcDenied::OutboundDisabled)
        } else {
            Ok(())
        }
    }
}

/// A `content-type` value, as a header or as text.
pub trait ContentType {
    /// The value's bytes.
    fn content_type_bytes(&self) -> &[u8];
}

impl ContentType for HeaderValue {
    fn content_type_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ContentType for str {
    fn content_type_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ContentType for String {
    fn content_type_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// True when a `content-type` marks a gRPC request.
///
/// Accepts `application/grpc`, `application/grpc+<codec>` (for example
/// `+proto`, `+json`) and `application/grpc` followed by parameters
/// (`;...`), with the type compared case-insensitively. gRPC-Web
/// (`application/grpc-web*`) is a different protocol and is not gRPC here.
pub fn is_grpc_content_type<T: ContentType + ?Sized>(content_type: &T) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let value = trim_ows(content_type.content_type_bytes());
    let Some(head) = value.get(..GRPC.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(GRPC) {
        return false;
    }
    match value.get(GRPC.len()..).map(trim_ows) {
        None | Some([]) => true,
        Some([b'+', ..]) | Some([b';', ..]) => true,
        Some(_) => false,
    }
}

/// Strips leading and trailing spaces and tabs (HTTP optional whitespace).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_grpc_is_grpc() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type(&HeaderValue::from_static(
            "application/grpc"
        )));
    }

    #[test]
    fn grpc_codec_suffix_is_grpc() {
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(is_grpc_content_type("application/grpc+json"));
        assert!(is_grpc_content_type("application/grpc+custom-codec"));
    }

    #[test]
    fn grpc_with_parameters_is_grpc() {
        assert!(is_grpc_content_type("application/grpc;charset=utf-8"));
        assert!(is_grpc_content_type("application/grpc ; charset=utf-8"));
        assert!(is_grpc_content_type("application/grpc+proto;x=y"));
    }

    #[test]
    fn grpc_type_is_case_insensitive() {
        assert!(is_grpc_content_type("Application/GRPC"));
        assert!(is_grpc_content_type("APPLICATION/GRPC+PROTO"));
    }

    #[test]
    fn grpc_web_is_not_grpc() {
        assert!(!is_grpc_content_type("application/grpc-web"));
        assert!(!is_grpc_content_type("application/grpc-web+proto"));
        assert!(!is_grpc_content_type("application/grpc-web-text"));
        assert!(!is_grpc_content_type("APPLICATION/GRPC-WEB"));
    }

    #[test]
    fn other_content_types_are_not_grpc() {
        for ct in [
            "",
            "application/json",
            "application/grp",
            "application/grpcx",
            "text/application/grpc",
            "application/grpc\u{e9}",
        ] {
            assert!(!is_grpc_content_type(ct), "{ct:?}");
        }
    }

    #[test]
    fn grpc_flags_default_to_off() {
        assert_eq!(
            GrpcFlags::default(),
            GrpcFlags {
                serve: false,
                outbound: false
            }
        );
    }

    #[test]
    fn outbound_grpc_requires_outbound() {
        let serve_only = GrpcFlags {
            serve: true,
            outbound: false,
        };
        assert_eq!(
            serve_only.check_outbound(true),
            Err(GrpcDenied::OutboundDisabled)
        );
        assert_eq!(serve_only.check_outbound(false), Ok(()));
        let on = GrpcFlags {
            serve: false,
            outbound: true,
        };
        assert_eq!(on.check_outbound(true), Ok(()));
    }

    #[test]
    fn grpc_flags_parse_from_yaml_and_reject_unknown_keys() {
        let flags: GrpcFlags = serde_yaml::from_str("{ serve: true }").expect("valid");
        assert!(flags.serve && !flags.outbound);
        assert!(serde_yaml::from_str::<GrpcFlags>("{ serv: true }").is_err());
    }
}
