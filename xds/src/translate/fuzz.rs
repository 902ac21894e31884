//! Property-based fuzzing of the translators (`PROPTEST_CASES` sets how many cases; README,
//! "Fuzzing"): Listener, RouteConfiguration and Cluster messages built field by field from
//! Envoy's descriptors, starting from a valid resource and setting random fields at random
//! depths, packed `Any` configs included. A translator must never panic, and every
//! resource it refuses must be refused naming a field, as a NACK's error detail does.

use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::envoy::config::route::v3 as rds;
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::TranslateError;
use super::reflect::pool;
use crate::config::{Cluster, Listener, RouteConfig};

/// `Any` payloads the translators look into.
const PACKED: &[&str] = &[
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "envoy.extensions.filters.http.router.v3.Router",
    "envoy.extensions.filters.http.rbac.v3.RBAC",
    "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "envoy.extensions.filters.http.fault.v3.HTTPFault",
    "envoy.extensions.filters.http.cors.v3.Cors",
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
];

/// How deep random messages go.
const MAX_DEPTH: usize = 5;

/// Choices read from proptest's bytes, so that shrinking makes smaller messages.
struct Entropy<'a> {
    bytes: &'a [u8],
}

impl Entropy<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((first, rest)) => {
                self.bytes = rest;
                *first
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (usize::from(self.byte()) << 8 | usize::from(self.byte())) % n
    }

    fn done(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn value(kind: &Kind, entropy: &mut Entropy<'_>, depth: usize) -> Value {
    match kind {
        Kind::Bool => Value::Bool(entropy.byte() & 1 == 1),
        Kind::String => {
            let choices = [
                "",
                "a",
                "*",
                "/",
                "x.example.com",
                "127.0.0.1",
                "0",
                "envoy.filters.http.router",
                "\u{0}",
                "-1",
                "a b",
            ];
            Value::String(choices[entropy.below(choices.len())].to_owned())
        }
        Kind::Bytes => Value::Bytes(vec![entropy.byte(); entropy.below(4)].into()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32([0, 1, -1, 80, i32::MAX, i32::MIN][entropy.below(6)])
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64([0, 1, -1, 1_000_000_000_000, i64::MAX, i64::MIN][entropy.below(6)])
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32([0, 1, 80, 65535, 65536, u32::MAX][entropy.below(6)])
        }
        Kind::Uint64 | Kind::Fixed64 => Value::U64([0, 1, 100, u64::MAX][entropy.below(4)]),
        Kind::Float => Value::F32([0.0, 0.5, -1.0, f32::NAN, f32::INFINITY][entropy.below(5)]),
        Kind::Double => Value::F64([0.0, 0.5, 100.0, -1.0, f64::NAN][entropy.below(5)]),
        Kind::Enum(e) => {
            let numbers: Vec<i32> = e.values().map(|v| v.number()).chain([999]).collect();
            Value::EnumNumber(numbers[entropy.below(numbers.len())])
        }
        Kind::Message(m) => Value::Message(message(m, entropy, depth + 1)),
    }
}

fn field_value(field: &FieldDescriptor, entropy: &mut Entropy<'_>, depth: usize) -> Option<Value> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return None;
        };
        let key = entry.map_entry_key_field();
        let value_field = entry.map_entry_value_field();
        let key = match value(&key.kind(), entropy, depth) {
            Value::String(key) => prost_reflect::MapKey::String(key),
            Value::Bool(key) => prost_reflect::MapKey::Bool(key),
            Value::I32(key) => prost_reflect::MapKey::I32(key),
            Value::I64(key) => prost_reflect::MapKey::I64(key),
            Value::U32(key) => prost_reflect::MapKey::U32(key),
            Value::U64(key) => prost_reflect::MapKey::U64(key),
            _ => return None,
        };
        let value = value(&value_field.kind(), entropy, depth);
        return Some(Value::Map([(key, value)].into_iter().collect()));
    }
    if field.is_list() {
        let count = entropy.below(3);
        return Some(Value::List(
            (0..count)
                .map(|_| value(&field.kind(), entropy, depth))
                .collect(),
        ));
    }
    Some(value(&field.kind(), entropy, depth))
}

/// A random message: some fields set, deeper messages less likely.
fn message(
    descriptor: &MessageDescriptor,
    entropy: &mut Entropy<'_>,
    depth: usize,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if descriptor.full_name() == "google.protobuf.Any" {
        return packed(entropy, depth).unwrap_or(message);
    }
    if depth >= MAX_DEPTH {
        return message;
    }
    let fields: Vec<FieldDescriptor> = descriptor.fields().collect();
    let count = entropy.below(4);
    for _ in 0..count {
        if entropy.done() || fields.is_empty() {
            break;
        }
        let field = &fields[entropy.below(fields.len())];
        if let Some(value) = field_value(field, entropy, depth) {
            message.set_field(field, value);
        }
    }
    message
}

fn packed(entropy: &mut Entropy<'_>, depth: usize) -> Option<DynamicMessage> {
    let pool = pool().ok()?;
    let name = PACKED[entropy.below(PACKED.len())];
    let inner = message(&pool.get_message_by_name(name)?, entropy, depth);
    let mut any = DynamicMessage::new(pool.get_message_by_name("google.protobuf.Any")?);
    any.set_field_by_name(
        "type_url",
        Value::String(format!("type.googleapis.com/{name}")),
    );
    any.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
    Some(any)
}

/// Sets random fields at random places of `base` (a valid resource): walks down through
/// set message fields, then sets one field there.
fn mutate(base: &mut DynamicMessage, entropy: &mut Entropy<'_>, depth: usize) {
    let descriptor = base.descriptor();
    let set: Vec<FieldDescriptor> = base
        .fields()
        .filter(|(field, _)| matches!(field.kind(), Kind::Message(_)))
        .map(|(field, _)| field)
        .collect();
    if !set.is_empty() && depth < MAX_DEPTH && !entropy.byte().is_multiple_of(3) {
        let field = &set[entropy.below(set.len())];
        match base.get_field_mut(field) {
            Value::Message(inner) if inner.descriptor().full_name() != "google.protobuf.Any" => {
                return mutate(inner, entropy, depth + 1);
            }
            Value::List(items) if !items.is_empty() => {
                let at = entropy.below(items.len());
                if let Value::Message(inner) = &mut items[at] {
                    return mutate(inner, entropy, depth + 1);
                }
            }
            _ => {}
        }
    }
    let fields: Vec<FieldDescriptor> = descriptor.fields().collect();
    if fields.is_empty() {
        return;
    }
    let field = &fields[entropy.below(fields.len())];
    match field_value(field, entropy, depth) {
        Some(value) if !entropy.byte().is_multiple_of(5) => base.set_field(field, value),
        _ => base.clear_field(field),
    }
}

fn resource(name: &str, json: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let descriptor = pool().ok()?.get_message_by_name(name)?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let mut base = DynamicMessage::deserialize(descriptor, &mut deserializer).ok()?;
    let mut entropy = Entropy { bytes };
    while !entropy.done() {
        mutate(&mut base, &mut entropy, 0);
    }
    Some(base.encode_to_vec())
}

const LISTENER: &str = r#"{
  "name": "l",
  "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
  "filter_chains": [{"filters": [{
    "name": "envoy.filters.network.http_connection_manager",
    "typed_config": {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "http",
      "route_config": {"virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]},
      "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
    }
  }]}]
}"#;

const ROUTES: &str = r#"{
  "name": "r",
  "virtual_hosts": [{"name": "vh", "domains": ["*", "a.example.com"], "routes": [
    {"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "1s"}},
    {"match": {"path": "/x"}, "direct_response": {"status": 200}}
  ]}]
}"#;

const CLUSTER: &str = r#"{
  "name": "c",
  "type": "STATIC",
  "connect_timeout": "1s",
  "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 80}}}}]}]}
}"#;

fn names_a_field(error: &TranslateError) -> bool {
    !error.error.field.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_listeners_never_panic_and_refusals_name_a_field(bytes in vec(any::<u8>(), 0..400)) {
        let encoded = resource("envoy.config.listener.v3.Listener", LISTENER, &bytes).expect("base listener");
        if let Ok(proto) = lds::Listener::decode(encoded.as_slice())
            && let Err(error) = Listener::try_from(proto)
        {
            prop_assert!(names_a_field(&error), "{error}");
        }
    }

    #[test]
    fn fuzz_route_configurations_never_panic_and_refusals_name_a_field(bytes in vec(any::<u8>(), 0..400)) {
        let encoded = resource("envoy.config.route.v3.RouteConfiguration", ROUTES, &bytes).expect("base routes");
        if let Ok(proto) = rds::RouteConfiguration::decode(encoded.as_slice())
            && let Err(error) = RouteConfig::try_from(proto)
        {
            prop_assert!(names_a_field(&error), "{error}");
        }
    }

    #[test]
    fn fuzz_clusters_never_panic_and_refusals_name_a_field(bytes in vec(any::<u8>(), 0..400)) {
        let encoded = resource("envoy.config.cluster.v3.Cluster", CLUSTER, &bytes).expect("base cluster");
        if let Ok(proto) = cds::Cluster::decode(encoded.as_slice())
            && let Err(error) = Cluster::try_from(proto)
        {
            prop_assert!(names_a_field(&error), "{error}");
        }
    }
}

/// The fuzz targets start from valid resources and their mutations reach both answers,
/// so the properties above are exercised on refusals as well as on acceptances.
#[test]
fn the_fuzz_bases_translate_and_their_mutations_are_both_accepted_and_refused() {
    fn outcomes<P: Message + Default, T: TryFrom<P, Error = TranslateError>>(
        name: &str,
        json: &str,
    ) -> (usize, usize) {
        let (mut accepted, mut refused) = (0, 0);
        for seed in 0u8..=255 {
            let bytes: Vec<u8> = (0..64u8)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(seed | 1)))
                .collect();
            let encoded = resource(name, json, &bytes).expect("base");
            if let Ok(proto) = P::decode(encoded.as_slice()) {
                match T::try_from(proto) {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        (accepted, refused)
    }
    let base = |name: &str, json: &str| resource(name, json, &[]).expect("base");
    let listener =
        lds::Listener::decode(base("envoy.config.listener.v3.Listener", LISTENER).as_slice())
            .expect("decodes");
    Listener::try_from(listener).expect("the base listener translates");
    let routes = rds::RouteConfiguration::decode(
        base("envoy.config.route.v3.RouteConfiguration", ROUTES).as_slice(),
    )
    .expect("decodes");
    RouteConfig::try_from(routes).expect("the base route configuration translates");
    let cluster = cds::Cluster::decode(base("envoy.config.cluster.v3.Cluster", CLUSTER).as_slice())
        .expect("decodes");
    Cluster::try_from(cluster).expect("the base cluster translates");

    for (what, (accepted, refused)) in [
        (
            "listeners",
            outcomes::<lds::Listener, Listener>("envoy.config.listener.v3.Listener", LISTENER),
        ),
        (
            "route configurations",
            outcomes::<rds::RouteConfiguration, RouteConfig>(
                "envoy.config.route.v3.RouteConfiguration",
                ROUTES,
            ),
        ),
        (
            "clusters",
            outcomes::<cds::Cluster, Cluster>("envoy.config.cluster.v3.Cluster", CLUSTER),
        ),
    ] {
        assert!(
            accepted > 0 && refused > 0,
            "{what}: {accepted} accepted, {refused} refused"
        );
    }
}
