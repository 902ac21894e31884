//! Load-balancing policy: the legacy `lb_policy` enum with its `lb_config` and
//! `common_lb_config`, or the `load_balancing_policy` extension list that Envoy Gateway sends.

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::extensions::load_balancing_policies as lb;
use envoy_types::pb::google::protobuf::Any;

use super::error::{FieldError, FieldResult};
use super::extensions::decode_any;
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::LbPolicy;
use crate::field_policy::{ignored, tolerate_fields};

/// Envoy's defaults for the ring and the maglev table.
const MIN_RING_SIZE: u64 = 1024;
const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
const MAGLEV_TABLE_SIZE: u64 = 65537;

/// What the cluster's load balancing settings come to.
pub(super) struct LoadBalancing {
    pub(super) policy: LbPolicy,
    pub(super) locality_weighted: bool,
    pub(super) healthy_panic_threshold: f64,
}

/// Envoy's `healthy_panic_threshold` default.
const PANIC_THRESHOLD: f64 = 50.0;

/// The cluster's load balancing, from whichever way it is written.
pub(super) fn load_balancing(
    c: &mut cluster::Cluster,
    path: &FieldPath<'_>,
) -> FieldResult<LoadBalancing> {
    let common = c.common_lb_config.take();
    let mut result = match c.load_balancing_policy.take() {
        Some(policy) => {
            let at = path.field("load_balancing_policy");
            if c.lb_policy != 0 {
                return Err(FieldError::invalid(
                    &path.field("lb_policy"),
                    "set together with load_balancing_policy",
                ));
            }
            extension_policy(policy, &at)?
        }
        None => legacy_policy(c, path)?,
    };
    if let Some(common) = common {
        common_lb_config(common, &mut result, &path.field("common_lb_config"))?;
    }
    Ok(result)
}

fn legacy_policy(c: &mut cluster::Cluster, path: &FieldPath<'_>) -> FieldResult<LoadBalancing> {
    use cluster::cluster::{LbConfig, LbPolicy as Proto};
    let config = c.lb_config.take();
    let policy_path = path.field("lb_policy");
    let policy = match Proto::try_from(std::mem::take(&mut c.lb_policy)) {
        Ok(Proto::RoundRobin) => LbPolicy::RoundRobin,
        Ok(Proto::LeastRequest) => LbPolicy::LEAST_REQUEST,
        Ok(Proto::Random) => LbPolicy::Random,
        Ok(Proto::RingHash) => LbPolicy::RingHash {
            minimum_ring_size: MIN_RING_SIZE,
            maximum_ring_size: MAX_RING_SIZE,
        },
        Ok(Proto::Maglev) => LbPolicy::Maglev {
            table_size: MAGLEV_TABLE_SIZE,
        },
        Ok(other) => {
            return Err(FieldError::invalid(
                &policy_path,
                format!("{} is not supported", other.as_str_name()),
            ));
        }
        Err(_) => return Err(FieldError::invalid(&policy_path, "unknown value")),
    };
    // A `*_lb_config` of another policy is ignored by Envoy.
    let policy = match (policy, config) {
        (LbPolicy::LeastRequest { .. }, Some(LbConfig::LeastRequestLbConfig(mut config))) => {
            let at = path.field("least_request_lb_config");
            let policy = least_request(
                config.choice_count.take().map(|v| v.value),
                config.active_request_bias.take().map(|v| v.default_value),
                false,
                &at,
            )?;
            tolerate_fields!(config, "Cluster.least_request_lb_config": slow_start_config);
            reject_unsupported(&config, &at)?;
            policy
        }
        (LbPolicy::RoundRobin, Some(LbConfig::RoundRobinLbConfig(mut config))) => {
            tolerate_fields!(config, "Cluster.round_robin_lb_config": slow_start_config);
            reject_unsupported(&config, &path.field("round_robin_lb_config"))?;
            LbPolicy::RoundRobin
        }
        (LbPolicy::RingHash { .. }, Some(LbConfig::RingHashLbConfig(mut config))) => {
            let at = path.field("ring_hash_lb_config");
            use cluster::cluster::ring_hash_lb_config::HashFunction as Proto;
            if Proto::try_from(std::mem::take(&mut config.hash_function)) != Ok(Proto::XxHash) {
                return Err(FieldError::invalid(
                    &at.field("hash_function"),
                    "only XX_HASH is supported",
                ));
            }
            let policy = ring_hash(
                config.minimum_ring_size.take().map(|v| v.value),
                config.maximum_ring_size.take().map(|v| v.value),
                &at,
            )?;
            reject_unsupported(&config, &at)?;
            policy
        }
        (LbPolicy::Maglev { .. }, Some(LbConfig::MaglevLbConfig(config))) => maglev(
            config.table_size.map(|v| v.value),
            &path.field("maglev_lb_config"),
        )?,
        (_, Some(LbConfig::OriginalDstLbConfig(_))) => {
            return Err(FieldError::unsupported(
                &path.field("original_dst_lb_config"),
            ));
        }
        (policy, Some(_)) => {
            ignored("Cluster", "lb_config of another policy");
            policy
        }
        (policy, None) => policy,
    };
    Ok(LoadBalancing {
        policy,
        locality_weighted: false,
        healthy_panic_threshold: PANIC_THRESHOLD,
    })
}

/// The first policy of the list that mesh-host implements, as Envoy takes the first it knows.
fn extension_policy(
    mut policy: cluster::LoadBalancingPolicy,
    path: &FieldPath<'_>,
) -> FieldResult<LoadBalancing> {
    let list = path.field("policies");
    let mut first_unknown = None;
    for (i, entry) in std::mem::take(&mut policy.policies).into_iter().enumerate() {
        let at = list.index(i);
        let config_path = at.field("typed_extension_config");
        let Some(config) = entry.typed_extension_config else {
            return Err(FieldError::missing(&config_path));
        };
        let typed_path = config_path.field("typed_config");
        let Some(any) = config.typed_config else {
            return Err(FieldError::missing(&typed_path));
        };
        match extension(&any, &typed_path)? {
            Some(result) => return Ok(result),
            None => {
                first_unknown.get_or_insert_with(|| {
                    FieldError::invalid(&typed_path, format!("{} is not supported", any.type_url))
                });
            }
        }
    }
    Err(first_unknown.unwrap_or_else(|| FieldError::missing(&list)))
}

/// One `load_balancing_policy` entry, or `None` for a policy mesh-host does not implement.
fn extension(any: &Any, path: &FieldPath<'_>) -> FieldResult<Option<LoadBalancing>> {
    let decode_error = |e: String| FieldError::invalid(path, format!("cannot decode: {e}"));
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let (policy, locality) = match name {
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin" => {
            let mut p: lb::round_robin::v3::RoundRobin = decode_any(any).map_err(decode_error)?;
            let locality = p.locality_lb_config.take();
            tolerate_fields!(p, "RoundRobin": slow_start_config);
            reject_unsupported(&p, path)?;
            (LbPolicy::RoundRobin, locality_weighted(locality))
        }
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest" => {
            let mut p: lb::least_request::v3::LeastRequest =
                decode_any(any).map_err(decode_error)?;
            let full_scan = p.enable_full_scan.take().is_some_and(|b| b.value)
                || std::mem::take(&mut p.selection_method)
                    == lb::least_request::v3::least_request::SelectionMethod::FullScan as i32;
            let policy = least_request(
                p.choice_count.take().map(|v| v.value),
                p.active_request_bias.take().map(|v| v.default_value),
                full_scan,
                path,
            )?;
            let locality = p.locality_lb_config.take();
            tolerate_fields!(p, "LeastRequest": slow_start_config);
            reject_unsupported(&p, path)?;
            (policy, locality_weighted(locality))
        }
        "envoy.extensions.load_balancing_policies.random.v3.Random" => {
            let mut p: lb::random::v3::Random = decode_any(any).map_err(decode_error)?;
            let locality = p.locality_lb_config.take();
            reject_unsupported(&p, path)?;
            (LbPolicy::Random, locality_weighted(locality))
        }
        "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash" => {
            let mut p: lb::ring_hash::v3::RingHash = decode_any(any).map_err(decode_error)?;
            use lb::ring_hash::v3::ring_hash::HashFunction as Proto;
            match Proto::try_from(std::mem::take(&mut p.hash_function)) {
                Ok(Proto::DefaultHash | Proto::XxHash) => {}
                _ => {
                    return Err(FieldError::invalid(
                        &path.field("hash_function"),
                        "only XX_HASH is supported",
                    ));
                }
            }
            let policy = ring_hash(
                p.minimum_ring_size.take().map(|v| v.value),
                p.maximum_ring_size.take().map(|v| v.value),
                path,
            )?;
            let locality = p.locality_weighted_lb_config.take().is_some();
            consistent_hashing(
                p.consistent_hashing_lb_config.take(),
                &path.field("consistent_hashing_lb_config"),
            )?;
            reject_unsupported(&p, path)?;
            (policy, locality)
        }
        "envoy.extensions.load_balancing_policies.maglev.v3.Maglev" => {
            let mut p: lb::maglev::v3::Maglev = decode_any(any).map_err(decode_error)?;
            let policy = maglev(p.table_size.take().map(|v| v.value), path)?;
            let locality = p.locality_weighted_lb_config.take().is_some();
            consistent_hashing(
                p.consistent_hashing_lb_config.take(),
                &path.field("consistent_hashing_lb_config"),
            )?;
            reject_unsupported(&p, path)?;
            (policy, locality)
        }
        _ => return Ok(None),
    };
    Ok(Some(LoadBalancing {
        policy,
        locality_weighted: locality,
        healthy_panic_threshold: PANIC_THRESHOLD,
    }))
}

fn locality_weighted(config: Option<lb::common::v3::LocalityLbConfig>) -> bool {
    use lb::common::v3::locality_lb_config::LocalityConfigSpecifier as S;
    match config.and_then(|c| c.locality_config_specifier) {
        None => false,
        Some(S::LocalityWeightedLbConfig(_)) => true,
        // Zone-aware routing needs the local cluster, which mesh-host does not have: Envoy
        // then balances as if it were off.
        Some(S::ZoneAwareLbConfig(_)) => {
            ignored("LocalityLbConfig", "zone_aware_lb_config");
            false
        }
    }
}

fn consistent_hashing(
    config: Option<lb::common::v3::ConsistentHashingLbConfig>,
    path: &FieldPath<'_>,
) -> FieldResult<()> {
    match config {
        Some(c) => reject_unsupported(&c, path),
        None => Ok(()),
    }
}

fn least_request(
    choice_count: Option<u32>,
    active_request_bias: Option<f64>,
    full_scan: bool,
    path: &FieldPath<'_>,
) -> FieldResult<LbPolicy> {
    let choice_count = choice_count.unwrap_or(2);
    if choice_count < 2 {
        return Err(FieldError::invalid(
            &path.field("choice_count"),
            "must be at least 2",
        ));
    }
    let active_request_bias = active_request_bias.unwrap_or(1.0);
    // NaN is refused with the negatives.
    if active_request_bias.is_nan() || active_request_bias < 0.0 {
        return Err(FieldError::invalid(
            &path.field("active_request_bias"),
            "must not be negative",
        ));
    }
    Ok(LbPolicy::LeastRequest {
        choice_count,
        active_request_bias,
        full_scan,
    })
}

fn ring_hash(
    minimum: Option<u64>,
    maximum: Option<u64>,
    path: &FieldPath<'_>,
) -> FieldResult<LbPolicy> {
    let minimum_ring_size = minimum.unwrap_or(MIN_RING_SIZE);
    let maximum_ring_size = maximum.unwrap_or(MAX_RING_SIZE);
    if minimum_ring_size == 0
        || minimum_ring_size > maximum_ring_size
        || maximum_ring_size > MAX_RING_SIZE
    {
        return Err(FieldError::invalid(
            path,
            format!(
                "ring sizes must satisfy 0 < minimum_ring_size <= maximum_ring_size <= {MAX_RING_SIZE}"
            ),
        ));
    }
    Ok(LbPolicy::RingHash {
        minimum_ring_size,
        maximum_ring_size,
    })
}

fn maglev(table_size: Option<u64>, path: &FieldPath<'_>) -> FieldResult<LbPolicy> {
    let table_size = table_size.unwrap_or(MAGLEV_TABLE_SIZE);
    if !is_prime(table_size) || table_size > 5_000_011 {
        return Err(FieldError::invalid(
            &path.field("table_size"),
            format!("{table_size} is not a prime up to 5000011"),
        ));
    }
    Ok(LbPolicy::Maglev { table_size })
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn common_lb_config(
    mut common: cluster::cluster::CommonLbConfig,
    result: &mut LoadBalancing,
    path: &FieldPath<'_>,
) -> FieldResult<()> {
    use cluster::cluster::common_lb_config::LocalityConfigSpecifier as S;
    if let Some(threshold) = common.healthy_panic_threshold.take() {
        if !(0.0..=100.0).contains(&threshold.value) {
            return Err(FieldError::invalid(
                &path.field("healthy_panic_threshold"),
                "not a percentage",
            ));
        }
        result.healthy_panic_threshold = threshold.value;
    }
    match common.locality_config_specifier.take() {
        Some(S::LocalityWeightedLbConfig(_)) => result.locality_weighted = true,
        Some(S::ZoneAwareLbConfig(_)) => ignored("CommonLbConfig", "zone_aware_lb_config"),
        None => {}
    }
    tolerate_fields!(common, "CommonLbConfig":
        update_merge_window,
        ignore_new_hosts_until_first_hc,
        close_connections_on_host_set_change,
    );
    reject_unsupported(&common, path)
}
