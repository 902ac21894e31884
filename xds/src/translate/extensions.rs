//! Extension messages that xds-api does not generate, written by hand with their proto field
//! numbers, plus descriptors so that bootstrap files can name them in `@type`.

use prost::Name;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use xds_api::pb::envoy::config::rbac::v3::Rbac;
use xds_api::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, TlsCertificate,
};
use xds_api::pb::google::protobuf::BoolValue;

/// `envoy.extensions.filters.http.rbac.v3.RBAC`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RbacFilter {
    /// Enforced rules.
    #[prost(message, optional, tag = "1")]
    pub rules: Option<Rbac>,
    /// Shadow rules: logged, never enforced.
    #[prost(message, optional, tag = "2")]
    pub shadow_rules: Option<Rbac>,
    /// Stats prefix of the shadow rules.
    #[prost(string, tag = "3")]
    pub shadow_rules_stat_prefix: String,
    /// `xds.type.matcher.v3.Matcher`, only detected (kept as raw bytes).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub matcher: Option<Vec<u8>>,
    /// `xds.type.matcher.v3.Matcher` for shadow mode, only detected.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub shadow_matcher: Option<Vec<u8>>,
    /// Stats prefix of the rules.
    #[prost(string, tag = "6")]
    pub rules_stat_prefix: String,
    /// Per-rule statistics.
    #[prost(bool, tag = "7")]
    pub track_per_rule_stats: bool,
}

impl prost::Name for RbacFilter {
    const NAME: &'static str = "RBAC";
    const PACKAGE: &'static str = "envoy.extensions.filters.http.rbac.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`: only which protocol is chosen
/// matters here, so the per-protocol option messages are kept as raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpProtocolOptions {
    /// `config.core.v3.HttpProtocolOptions` (idle timeouts and limits).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub common_http_protocol_options: Option<Vec<u8>>,
    /// `config.core.v3.UpstreamHttpProtocolOptions` (auto SNI, SAN validation).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub upstream_http_protocol_options: Option<Vec<u8>>,
    /// One fixed protocol.
    #[prost(message, optional, tag = "3")]
    pub explicit_http_config: Option<ProtocolChoice>,
    /// The downstream request's protocol.
    #[prost(message, optional, tag = "4")]
    pub use_downstream_protocol_config: Option<ProtocolChoice>,
    /// ALPN-negotiated.
    #[prost(message, optional, tag = "5")]
    pub auto_config: Option<ProtocolChoice>,
}

impl prost::Name for HttpProtocolOptions {
    const NAME: &'static str = "HttpProtocolOptions";
    const PACKAGE: &'static str = "envoy.extensions.upstreams.http.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// The shared shape of `ExplicitHttpConfig`, `UseDownstreamHttpConfig` and `AutoHttpConfig`:
/// which of the per-protocol option messages are present.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtocolChoice {
    /// `config.core.v3.Http1ProtocolOptions`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub http_protocol_options: Option<Vec<u8>>,
    /// `config.core.v3.Http2ProtocolOptions`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub http2_protocol_options: Option<Vec<u8>>,
    /// `config.core.v3.Http3ProtocolOptions`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub http3_protocol_options: Option<Vec<u8>>,
}

/// `envoy.extensions.transport_sockets.tls.v3.CommonTlsContext` (the fields mesh-host reads
/// or must refuse; the rest are tuning or deprecated and are dropped by the decoder).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommonTlsContext {
    /// TLS versions and cipher suites (the host uses its TLS library's safe defaults).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub tls_params: Option<Vec<u8>>,
    /// Certificates.
    #[prost(message, repeated, tag = "2")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Peer validation.
    #[prost(message, optional, tag = "3")]
    pub validation_context: Option<CertificateValidationContext>,
    /// ALPN protocols.
    #[prost(string, repeated, tag = "4")]
    pub alpn_protocols: Vec<String>,
    /// SDS certificates (not supported).
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub tls_certificate_sds_secret_configs: Vec<Vec<u8>>,
    /// SDS validation context (not supported).
    #[prost(bytes = "vec", optional, tag = "7")]
    pub validation_context_sds_secret_config: Option<Vec<u8>>,
    /// Combined static + SDS validation (not supported).
    #[prost(bytes = "vec", optional, tag = "8")]
    pub combined_validation_context: Option<Vec<u8>>,
    /// Certificate provider plugin (not supported).
    #[prost(bytes = "vec", optional, tag = "14")]
    pub tls_certificate_provider_instance: Option<Vec<u8>>,
    /// Custom certificate selector (not supported).
    #[prost(bytes = "vec", optional, tag = "16")]
    pub custom_tls_certificate_selector: Option<Vec<u8>>,
}

/// `envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext` (session resumption and
/// OCSP settings are tuning and are dropped by the decoder).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DownstreamTlsContext {
    /// Shared settings.
    #[prost(message, optional, tag = "1")]
    pub common_tls_context: Option<CommonTlsContext>,
    /// Reject clients without a certificate.
    #[prost(message, optional, tag = "2")]
    pub require_client_certificate: Option<BoolValue>,
}

impl prost::Name for DownstreamTlsContext {
    const NAME: &'static str = "DownstreamTlsContext";
    const PACKAGE: &'static str = "envoy.extensions.transport_sockets.tls.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// `envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpstreamTlsContext {
    /// Shared settings.
    #[prost(message, optional, tag = "1")]
    pub common_tls_context: Option<CommonTlsContext>,
    /// SNI.
    #[prost(string, tag = "2")]
    pub sni: String,
    /// SNI from the endpoint hostname (not supported).
    #[prost(bool, tag = "6")]
    pub auto_host_sni: bool,
    /// SAN validation against the SNI (not supported).
    #[prost(bool, tag = "7")]
    pub auto_sni_san_validation: bool,
}

impl prost::Name for UpstreamTlsContext {
    const NAME: &'static str = "UpstreamTlsContext";
    const PACKAGE: &'static str = "envoy.extensions.transport_sockets.tls.v3";

    fn type_url() -> String {
        format!("type.googleapis.com/{}", Self::full_name())
    }
}

/// Type URL of the router filter, which must end every HTTP filter chain.
pub const ROUTER_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// The `typed_extension_protocol_options` key for [`HttpProtocolOptions`].
pub const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The field of a hand-written descriptor.
enum FieldType {
    Message(&'static str),
    Messages(&'static str),
    String,
    Strings,
    Bool,
}

fn field(name: &str, number: i32, ty: FieldType) -> FieldDescriptorProto {
    let (ty, type_name, label) = match ty {
        FieldType::Message(type_name) => {
            (Type::Message, Some(type_name.to_owned()), Label::Optional)
        }
        FieldType::Messages(type_name) => {
            (Type::Message, Some(type_name.to_owned()), Label::Repeated)
        }
        FieldType::String => (Type::String, None, Label::Optional),
        FieldType::Strings => (Type::String, None, Label::Repeated),
        FieldType::Bool => (Type::Bool, None, Label::Optional),
    };
    FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name,
        ..Default::default()
    }
}

fn message(name: &str, field: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.to_owned()),
        field,
        ..Default::default()
    }
}

fn file(
    name: &str,
    package: &str,
    dependency: Vec<String>,
    message_type: Vec<DescriptorProto>,
) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(name.to_owned()),
        package: Some(package.to_owned()),
        dependency,
        message_type,
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    }
}

/// Descriptors of the hand-written messages; `dependency_of` maps a message full name to
/// the file that defines it in xds-api's descriptor set.
pub(crate) fn descriptors(
    dependency_of: impl Fn(&str) -> Option<String>,
) -> Vec<FileDescriptorProto> {
    use FieldType::{Bool, Message, Messages, String, Strings};
    let deps = |names: &[&str]| names.iter().filter_map(|n| dependency_of(n)).collect();
    let rbac = file(
        "mesh_xds/envoy/extensions/filters/http/rbac/v3/rbac.proto",
        RbacFilter::PACKAGE,
        deps(&["envoy.config.rbac.v3.RBAC", "xds.type.matcher.v3.Matcher"]),
        vec![message(
            "RBAC",
            vec![
                field("rules", 1, Message(".envoy.config.rbac.v3.RBAC")),
                field("shadow_rules", 2, Message(".envoy.config.rbac.v3.RBAC")),
                field("shadow_rules_stat_prefix", 3, String),
                field("matcher", 4, Message(".xds.type.matcher.v3.Matcher")),
                field("shadow_matcher", 5, Message(".xds.type.matcher.v3.Matcher")),
                field("rules_stat_prefix", 6, String),
                field("track_per_rule_stats", 7, Bool),
            ],
        )],
    );
    let choice = |name: &str| {
        message(
            name,
            vec![
                field(
                    "http_protocol_options",
                    1,
                    Message(".envoy.config.core.v3.Http1ProtocolOptions"),
                ),
                field(
                    "http2_protocol_options",
                    2,
                    Message(".envoy.config.core.v3.Http2ProtocolOptions"),
                ),
                field(
                    "http3_protocol_options",
                    3,
                    Message(".envoy.config.core.v3.Http3ProtocolOptions"),
                ),
            ],
        )
    };
    let mut protocol_options = message(
        "HttpProtocolOptions",
        vec![
            field(
                "common_http_protocol_options",
                1,
                Message(".envoy.config.core.v3.HttpProtocolOptions"),
            ),
            field(
                "upstream_http_protocol_options",
                2,
                Message(".envoy.config.core.v3.UpstreamHttpProtocolOptions"),
            ),
            field(
                "explicit_http_config",
                3,
                Message(
                    ".envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig",
                ),
            ),
            field(
                "use_downstream_protocol_config",
                4,
                Message(
                    ".envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig",
                ),
            ),
            field(
                "auto_config",
                5,
                Message(".envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig"),
            ),
        ],
    );
    protocol_options.nested_type = vec![
        choice("ExplicitHttpConfig"),
        choice("UseDownstreamHttpConfig"),
        choice("AutoHttpConfig"),
    ];
    let upstreams = file(
        "mesh_xds/envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
        HttpProtocolOptions::PACKAGE,
        deps(&[
            "envoy.config.core.v3.Http1ProtocolOptions",
            "envoy.config.core.v3.UpstreamHttpProtocolOptions",
        ]),
        vec![protocol_options],
    );
    let tls = file(
        "mesh_xds/envoy/extensions/transport_sockets/tls/v3/tls.proto",
        DownstreamTlsContext::PACKAGE,
        deps(&[
            "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
            "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
            "google.protobuf.BoolValue",
        ]),
        vec![
            message(
                "CommonTlsContext",
                vec![
                    field(
                        "tls_params",
                        1,
                        Message(".envoy.extensions.transport_sockets.tls.v3.TlsParameters"),
                    ),
                    field(
                        "tls_certificates",
                        2,
                        Messages(".envoy.extensions.transport_sockets.tls.v3.TlsCertificate"),
                    ),
                    field(
                        "validation_context",
                        3,
                        Message(
                            ".envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext",
                        ),
                    ),
                    field("alpn_protocols", 4, Strings),
                    field(
                        "tls_certificate_sds_secret_configs",
                        6,
                        Messages(".envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig"),
                    ),
                    field(
                        "validation_context_sds_secret_config",
                        7,
                        Message(".envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig"),
                    ),
                ],
            ),
            message(
                "DownstreamTlsContext",
                vec![
                    field(
                        "common_tls_context",
                        1,
                        Message(".envoy.extensions.transport_sockets.tls.v3.CommonTlsContext"),
                    ),
                    field(
                        "require_client_certificate",
                        2,
                        Message(".google.protobuf.BoolValue"),
                    ),
                ],
            ),
            message(
                "UpstreamTlsContext",
                vec![
                    field(
                        "common_tls_context",
                        1,
                        Message(".envoy.extensions.transport_sockets.tls.v3.CommonTlsContext"),
                    ),
                    field("sni", 2, String),
                    field("auto_host_sni", 6, Bool),
                    field("auto_sni_san_validation", 7, Bool),
                ],
            ),
        ],
    );
    vec![rbac, upstreams, tls]
}
