//! Type URLs and keys of the extensions mesh-xds reads, and decoding of typed `Any` configs.

use envoy_types::pb::google::protobuf::Any;

/// Type URL of the router filter, which must end every HTTP filter chain.
pub const ROUTER_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// The `typed_extension_protocol_options` key for
/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
pub const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Decodes `any` as `M`, refusing an `Any` that holds another type.
pub(crate) fn decode_any<M>(any: &Any) -> Result<M, String>
where
    M: prost::Message + prost::Name + Default,
{
    if any.type_url != M::type_url() {
        return Err(format!("expected {}, got {}", M::type_url(), any.type_url));
    }
    M::decode(any.value.as_slice()).map_err(|e| e.to_string())
}
