//! What a request carries from its connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What is known about a request beyond the request itself: its connection
/// and the client behind it.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The address of the connection's peer.
    pub peer: SocketAddr,
    /// The client's address as the connection manager decided it: the peer,
    /// or the trusted `x-forwarded-for` entry (Envoy's downstream remote
    /// address, which RBAC's `remote_ip` reads).
    pub remote_ip: IpAddr,
    /// The local address the request arrived on.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The server name (SNI) the TLS client asked for.
    pub server_name: Option<Arc<str>>,
    /// The principal of the client certificate the connection presented and
    /// the filter chain verified: its first URI SAN (a SPIFFE id), else its
    /// first DNS SAN, else its subject, as Envoy's RBAC reads it.
    pub peer_principal: Option<Arc<str>>,
    /// That verified client certificate (the leaf, DER), for filters that pass it on
    /// (ext_authz's `include_peer_certificate`).
    pub peer_certificate: Option<Arc<[u8]>>,
    /// Whether the request is gRPC (by content type); failures for it must
    /// be gRPC-shaped.
    pub grpc: bool,
    /// The filter chain that accepted the connection: its index in
    /// `ListenerConfig::filter_chains`, the default chain counting last
    /// (`0` for a [`FrontEndConfig`]).
    pub filter_chain: usize,
}

#[cfg(test)]
impl RequestMeta {
    /// A plaintext HTTP request from `peer` to 10.0.0.1:8080, for filter tests.
    pub(crate) fn plaintext_from(peer: &str) -> RequestMeta {
        let peer: SocketAddr = peer.parse().unwrap_or(SocketAddr::from(([10, 0, 0, 2], 1)));
        RequestMeta {
            peer,
            remote_ip: peer.ip(),
            local: SocketAddr::from(([10, 0, 0, 1], 8080)),
            tls: false,
            server_name: None,
            peer_principal: None,
            peer_certificate: None,
            grpc: false,
            filter_chain: 0,
        }
    }
}
