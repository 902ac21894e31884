//! Builders of Envoy protos for tests: listeners, route configurations,
//! clusters and load assignments on 127.0.0.1, TLS contexts and secrets, shared by this crate's tests
//! and the host's end-to-end tests.

#![allow(missing_docs)]

use prost::{Message, Name};

use envoy_types::pb::envoy::config::cluster::v3 as cds;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as eds;
use envoy_types::pb::envoy::config::listener::v3 as lds;
use envoy_types::pb::envoy::config::route::v3 as rds;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as sds;
use envoy_types::pb::google::protobuf::Any;

pub fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

pub fn socket(host: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: host.to_owned(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

pub fn router_filter() -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: "envoy.filters.http.router".to_owned(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                .to_owned(),
            value: Vec::new(),
        })),
        ..Default::default()
    }
}

pub fn hcm_rds(route_name: &str) -> hcm::HttpConnectionManager {
    hcm::HttpConnectionManager {
        stat_prefix: "http".to_owned(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                route_config_name: route_name.to_owned(),
                config_source: Some(core::ConfigSource {
                    config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                        Default::default(),
                    )),
                    resource_api_version: core::ApiVersion::V3 as i32,
                    ..Default::default()
                }),
            },
        )),
        http_filters: vec![router_filter()],
        ..Default::default()
    }
}

pub fn listener_with(name: &str, port: u16, manager: &hcm::HttpConnectionManager) -> lds::Listener {
    lds::Listener {
        name: name.to_owned(),
        address: Some(socket("127.0.0.1", port)),
        filter_chains: vec![lds::FilterChain {
            filters: vec![lds::Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(lds::filter::ConfigType::TypedConfig(any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A listener on 127.0.0.1:`port` whose routes come from RDS `route_name`.
pub fn listener(name: &str, port: u16, route_name: &str) -> lds::Listener {
    listener_with(name, port, &hcm_rds(route_name))
}

pub fn prefix_route(prefix: &str, cluster: &str) -> rds::Route {
    rds::Route {
        r#match: Some(rds::RouteMatch {
            path_specifier: Some(rds::route_match::PathSpecifier::Prefix(prefix.to_owned())),
            ..Default::default()
        }),
        action: Some(rds::route::Action::Route(rds::RouteAction {
            cluster_specifier: Some(rds::route_action::ClusterSpecifier::Cluster(
                cluster.to_owned(),
            )),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub fn regex_route(regex: &str, cluster: &str) -> rds::Route {
    let mut route = prefix_route("/", cluster);
    if let Some(m) = &mut route.r#match {
        m.path_specifier = Some(rds::route_match::PathSpecifier::SafeRegex(
            envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: regex.to_owned(),
                ..Default::default()
            },
        ));
    }
    route
}

/// A route configuration with one catch-all virtual host.
pub fn route_config(name: &str, routes: Vec<rds::Route>) -> rds::RouteConfiguration {
    rds::RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![rds::VirtualHost {
            name: "all".to_owned(),
            domains: vec!["*".to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An EDS cluster (over ADS).
pub fn eds_cluster(name: &str) -> cds::Cluster {
    cds::Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cds::cluster::ClusterDiscoveryType::Type(
            cds::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cds::cluster::EdsClusterConfig {
            eds_config: Some(core::ConfigSource {
                config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                    Default::default(),
                )),
                resource_api_version: core::ApiVersion::V3 as i32,
                ..Default::default()
            }),
            service_name: String::new(),
        }),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// A static cluster with one endpoint.
pub fn static_cluster(name: &str, port: u16) -> cds::Cluster {
    cds::Cluster {
        name: name.to_owned(),
        load_assignment: Some(assignment(name, &[port])),
        ..Default::default()
    }
}

/// A load assignment with endpoints on 127.0.0.1.
pub fn assignment(name: &str, ports: &[u16]) -> eds::ClusterLoadAssignment {
    eds::ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![eds::LocalityLbEndpoints {
            lb_endpoints: ports
                .iter()
                .map(|p| eds::LbEndpoint {
                    host_identifier: Some(eds::lb_endpoint::HostIdentifier::Endpoint(
                        eds::Endpoint {
                            address: Some(socket("127.0.0.1", *p)),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A `Secret` holding an inline PEM certificate chain and private key.
pub fn certificate_secret(name: &str, cert_pem: &str, key_pem: &str) -> sds::Secret {
    sds::Secret {
        name: name.to_owned(),
        r#type: Some(sds::secret::Type::TlsCertificate(sds::TlsCertificate {
            certificate_chain: Some(inline(cert_pem)),
            private_key: Some(inline(key_pem)),
            ..Default::default()
        })),
    }
}

/// A `Secret` holding a validation context with an inline PEM CA bundle.
pub fn validation_secret(name: &str, ca_pem: &str) -> sds::Secret {
    sds::Secret {
        name: name.to_owned(),
        r#type: Some(sds::secret::Type::ValidationContext(
            sds::CertificateValidationContext {
                trusted_ca: Some(inline(ca_pem)),
                ..Default::default()
            },
        )),
    }
}

fn inline(pem: &str) -> core::DataSource {
    core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineString(pem.to_owned())),
        ..Default::default()
    }
}

/// A reference to the secret `name` over ADS.
pub fn ads_secret(name: &str) -> sds::SdsSecretConfig {
    sds::SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(core::ConfigSource {
            config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                Default::default(),
            )),
            resource_api_version: core::ApiVersion::V3 as i32,
            ..Default::default()
        }),
    }
}

/// A TLS transport socket around `context` (a `DownstreamTlsContext` or `UpstreamTlsContext`).
pub fn tls_socket<M: Message + Name>(context: &M) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any(
            context,
        ))),
    }
}

/// A downstream TLS context whose certificate is the ADS secret `certificate`, offering `alpn`.
pub fn downstream_tls_sds(certificate: &str, alpn: &[&str]) -> sds::DownstreamTlsContext {
    sds::DownstreamTlsContext {
        common_tls_context: Some(sds::CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![ads_secret(certificate)],
            alpn_protocols: alpn.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
