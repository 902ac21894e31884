//! Descriptor pool of every Envoy v3 message (envoy-types' descriptor set), used to name
//! unsupported fields and to parse canonical proto3 JSON in bootstrap files.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage};

use super::error::{FieldError, FieldResult};
use super::path::FieldPath;

/// envoy-types' descriptor set without source info, embedded by the build script.
const ENVOY_DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(ENVOY_DESCRIPTORS)
        .map_err(|e| format!("envoy-types descriptor set: {e}"))
});

/// The pool, or why it could not be built (a build defect, reported instead of panicking).
pub(crate) fn pool() -> Result<&'static DescriptorPool, &'static str> {
    POOL.as_ref().map_err(String::as_str)
}

/// Fails with "`<path>.<field>` is not supported" when `rest` has any field set.
///
/// Translators move every field they implement or tolerate out of the message first, so
/// whatever remains changes behaviour in Envoy and would be silently ignored here.
pub(crate) fn reject_unsupported<M>(rest: &M, path: &FieldPath<'_>) -> FieldResult<()>
where
    M: prost::Message + prost::Name + Default + PartialEq,
{
    if *rest == M::default() {
        return Ok(());
    }
    let name = first_set_field(rest).unwrap_or_else(|| "(unknown field)".to_owned());
    Err(FieldError::unsupported(&path.field(&name)))
}

/// The error for a oneof variant that is not supported: `message` holds only that variant.
pub(crate) fn unsupported_variant<M: prost::Message + prost::Name>(
    message: &M,
    path: &FieldPath<'_>,
) -> FieldError {
    let name = first_set_field(message).unwrap_or_else(|| "(unknown field)".to_owned());
    FieldError::unsupported(&path.field(&name))
}

fn first_set_field<M: prost::Message + prost::Name>(message: &M) -> Option<String> {
    let descriptor = pool().ok()?.get_message_by_name(&M::full_name())?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).ok()?;
    dynamic
        .fields()
        .next()
        .map(|(field, _)| field.name().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::RouteMatch;

    #[test]
    fn descriptor_pool_includes_extensions() {
        let pool = pool().expect("pool builds");
        for message in [
            "envoy.extensions.filters.http.rbac.v3.RBAC",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "envoy.config.bootstrap.v3.Bootstrap",
            "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
            "envoy.extensions.clusters.dns.v3.DnsCluster",
            "udpa.type.v1.TypedStruct",
        ] {
            assert!(pool.get_message_by_name(message).is_some(), "{message}");
        }
    }

    #[test]
    fn unsupported_field_is_named_by_path() {
        let rest = RouteMatch {
            dynamic_metadata: vec![Default::default()],
            ..Default::default()
        };
        let root = FieldPath::root();
        let at = root.field("match");
        let err = reject_unsupported(&rest, &at).expect_err("leftover field");
        assert_eq!(err.to_string(), "match.dynamic_metadata is not supported");
    }
}
