//! `ClusterLoadAssignment` -> [`LoadAssignment`].

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as endpoint;

use super::common::{socket_address, u32_or};
use super::error::{FieldError, FieldResult, TranslateError};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{
    Endpoint, HealthStatus, LoadAssignment, Locality, LocalityEndpoints, ResourceKind,
};
use crate::field_policy::tolerate_fields;

impl TryFrom<endpoint::ClusterLoadAssignment> for LoadAssignment {
    type Error = TranslateError;

    fn try_from(proto: endpoint::ClusterLoadAssignment) -> Result<Self, TranslateError> {
        let name = proto.cluster_name.clone();
        load_assignment(proto, &FieldPath::root())
            .map_err(|e| TranslateError::new(ResourceKind::LoadAssignment, &name, e))
    }
}

/// Translates an assignment found at `path` (EDS root or a cluster's `load_assignment`).
pub(crate) fn load_assignment(
    mut cla: endpoint::ClusterLoadAssignment,
    path: &FieldPath<'_>,
) -> FieldResult<LoadAssignment> {
    let cluster_name = std::mem::take(&mut cla.cluster_name);
    let localities_path = path.field("endpoints");
    let endpoints = std::mem::take(&mut cla.endpoints)
        .into_iter()
        .enumerate()
        .map(|(i, l)| locality_endpoints(l, &localities_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    if let Some(mut policy) = cla.policy.take() {
        // Overprovisioning and weighted priority health tune failover arithmetic only.
        policy.overprovisioning_factor = None;
        policy.endpoint_stale_after = None;
        policy.weighted_priority_health = false;
        reject_unsupported(&policy, &path.field("policy"))?;
    }
    reject_unsupported(&cla, path)?;
    Ok(LoadAssignment {
        cluster_name,
        endpoints,
    })
}

fn locality_endpoints(
    mut l: endpoint::LocalityLbEndpoints,
    path: &FieldPath<'_>,
) -> FieldResult<LocalityEndpoints> {
    let locality = l
        .locality
        .take()
        .map(|loc| Locality {
            region: loc.region,
            zone: loc.zone,
            sub_zone: loc.sub_zone,
        })
        .unwrap_or_default();
    let lb_path = path.field("lb_endpoints");
    let endpoints = std::mem::take(&mut l.lb_endpoints)
        .into_iter()
        .enumerate()
        .map(|(i, e)| lb_endpoint(e, &lb_path.index(i)))
        .collect::<FieldResult<Vec<_>>>()?;
    let load_balancing_weight = l.load_balancing_weight.take().map(|w| w.value);
    let priority = std::mem::take(&mut l.priority);
    tolerate_fields!(l, "LocalityLbEndpoints": metadata);
    reject_unsupported(&l, path)?;
    Ok(LocalityEndpoints {
        locality,
        priority,
        load_balancing_weight,
        endpoints,
    })
}

fn lb_endpoint(mut e: endpoint::LbEndpoint, path: &FieldPath<'_>) -> FieldResult<Endpoint> {
    use endpoint::lb_endpoint::HostIdentifier;
    let mut ep = match e.host_identifier.take() {
        Some(HostIdentifier::Endpoint(ep)) => ep,
        Some(HostIdentifier::EndpointName(_)) => {
            return Err(FieldError::unsupported(&path.field("endpoint_name")));
        }
        None => return Err(FieldError::missing(&path.field("endpoint"))),
    };
    let ep_path = path.field("endpoint");
    let address = socket_address(ep.address.take(), &ep_path.field("address"))?;
    let (health_check_port, disable_active_health_check) = match ep.health_check_config.take() {
        Some(config) => health_check_config(config, &ep_path.field("health_check_config"))?,
        None => (None, false),
    };
    tolerate_fields!(ep, "Endpoint": hostname, observability_name);
    reject_unsupported(&ep, &ep_path)?;
    let health = match core::HealthStatus::try_from(std::mem::take(&mut e.health_status)) {
        Ok(core::HealthStatus::Unknown) => HealthStatus::Unknown,
        Ok(core::HealthStatus::Healthy) => HealthStatus::Healthy,
        Ok(core::HealthStatus::Unhealthy) => HealthStatus::Unhealthy,
        Ok(core::HealthStatus::Draining) => HealthStatus::Draining,
        Ok(core::HealthStatus::Timeout) => HealthStatus::Timeout,
        Ok(core::HealthStatus::Degraded) => HealthStatus::Degraded,
        Err(_) => {
            return Err(FieldError::invalid(
                &path.field("health_status"),
                "unknown value",
            ));
        }
    };
    let weight = u32_or(e.load_balancing_weight.take(), 1);
    if weight == 0 {
        return Err(FieldError::invalid(
            &path.field("load_balancing_weight"),
            "must be at least 1",
        ));
    }
    tolerate_fields!(e, "LbEndpoint": metadata);
    reject_unsupported(&e, path)?;
    Ok(Endpoint {
        address,
        weight,
        health,
        health_check_port,
        disable_active_health_check,
    })
}

/// The port active health checks use instead of the endpoint's, and whether they skip it.
fn health_check_config(
    mut config: endpoint::endpoint::HealthCheckConfig,
    path: &FieldPath<'_>,
) -> FieldResult<(Option<u16>, bool)> {
    let port = match std::mem::take(&mut config.port_value) {
        0 => None,
        p => Some(u16::try_from(p).map_err(|_| {
            FieldError::invalid(&path.field("port_value"), format!("{p} is not a port"))
        })?),
    };
    let disabled = std::mem::take(&mut config.disable_active_health_check);
    reject_unsupported(&config, path)?;
    Ok((port, disabled))
}
