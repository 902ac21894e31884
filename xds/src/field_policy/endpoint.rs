//! `ClusterLoadAssignment` and the endpoint messages inside it.

use super::{MessagePolicy, honoured, no_effect, unsupported};

/// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
pub(super) const CLUSTER_LOAD_ASSIGNMENT: MessagePolicy = MessagePolicy {
    message: "envoy.config.endpoint.v3.ClusterLoadAssignment",
    fields: &[
        honoured("cluster_name", "the cluster or EDS service name"),
        honoured("endpoints", "endpoints by locality and priority"),
        unsupported("named_endpoints", "endpoints referenced by name"),
        honoured(
            "policy",
            "overprovisioning, stale-after and weighted priority health tune failover arithmetic and are accepted; drop overloads are refused",
        ),
    ],
};

/// `envoy.config.endpoint.v3.LocalityLbEndpoints`.
pub(super) const LOCALITY_LB_ENDPOINTS: MessagePolicy = MessagePolicy {
    message: "envoy.config.endpoint.v3.LocalityLbEndpoints",
    fields: &[
        honoured("locality", "region, zone, sub-zone"),
        no_effect("metadata", "informational"),
        honoured("lb_endpoints", "the endpoints"),
        unsupported("load_balancer_endpoints", "endpoint lists"),
        unsupported(
            "leds_cluster_locality_config",
            "locality endpoint discovery",
        ),
        honoured(
            "load_balancing_weight",
            "with locality weighting, as Envoy (scaled by the share of usable endpoints); otherwise no effect",
        ),
        honoured(
            "priority",
            "the highest priority with usable endpoints serves",
        ),
        unsupported("proximity", "proximity-based routing"),
    ],
};

/// `envoy.config.endpoint.v3.LbEndpoint`.
pub(super) const LB_ENDPOINT: MessagePolicy = MessagePolicy {
    message: "envoy.config.endpoint.v3.LbEndpoint",
    fields: &[
        honoured("endpoint", "the endpoint's address"),
        unsupported("endpoint_name", "endpoints referenced by name"),
        honoured("health_status", "as reported by the control plane"),
        no_effect(
            "metadata",
            "informational (subset load balancing is not configured)",
        ),
        honoured("load_balancing_weight", "endpoint weight (at least 1)"),
    ],
};

/// `envoy.config.endpoint.v3.Endpoint`.
pub(super) const ENDPOINT: MessagePolicy = MessagePolicy {
    message: "envoy.config.endpoint.v3.Endpoint",
    fields: &[
        honoured("address", "TCP socket address"),
        honoured(
            "health_check_config",
            "port_value and disable_active_health_check; the rest is refused",
        ),
        no_effect(
            "hostname",
            "used only by auto_host_rewrite, which is refused",
        ),
        unsupported("additional_addresses", "happy-eyeballs addresses"),
        no_effect("observability_name", "statistics name"),
    ],
};
