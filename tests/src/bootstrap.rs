//! Envoy v3 bootstrap YAML pieces shared by the mesh tests, so every test
//! writes the same listener, cluster and ADS boilerplate the same way.

/// The `HttpConnectionManager` type URL.
pub const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// The router filter's type URL.
pub const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// A `listeners:` entry on 127.0.0.1:`port` with one HTTP filter chain and
/// an inline route configuration; `extra` is more YAML at the listener's
/// indentation (for example `traffic_direction: OUTBOUND`), `virtual_hosts`
/// is YAML flow text.
pub fn http_listener(name: &str, port: u16, extra: &str, virtual_hosts: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    {extra}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: {name}
          route_config: {{ name: {name}, virtual_hosts: {virtual_hosts} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}"#
    )
}

/// A `clusters:` entry of type STATIC with endpoints on 127.0.0.1:`ports`;
/// `extra` is more YAML at the cluster's indentation.
pub fn static_cluster(name: &str, ports: &[u16], extra: &str) -> String {
    let endpoints: String = ports
        .iter()
        .map(|port| {
            format!(
                "\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"
            )
        })
        .collect();
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    {extra}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:{endpoints}"#
    )
}

/// `node` and `dynamic_resources` for ADS over the static cluster `xds`
/// (see [`xds_cluster`]); `lds_cds` also takes listeners and clusters from
/// it (else only the RDS/EDS resources static ones reference).
pub fn ads_header(node: &str, lds_cds: bool) -> String {
    let lds_cds = if lds_cds {
        "\n  lds_config: { ads: {}, resource_api_version: V3 }\n  cds_config: { ads: {}, resource_api_version: V3 }"
    } else {
        ""
    };
    format!(
        r#"
node: {{ id: {node}, cluster: test }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: {{ cluster_name: xds }}{lds_cds}
"#
    )
}

/// The `xds` cluster: the control plane on 127.0.0.1:`port`, over HTTP/2.
pub fn xds_cluster(port: u16) -> String {
    static_cluster(
        "xds",
        &[port],
        r#"typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#,
    )
}
