//! The end-to-end tests: one test binary, one module per area, so CI links the host and its
//! dependencies once instead of once per file (each is a binary of about 150 MB).

mod access_log_differential;
mod admin;
mod component_failures;
mod connection_hygiene;
mod deploy;
mod envoy_gateway;
mod filters_differential;
mod fixture_requests;
mod gateway_auth_differential;
mod gateway_auth_grpc;
mod grpc;
mod hostile_clients;
mod http1_codec_differential;
mod http_frontend;
mod in_process;
mod inbound_filters;
mod lifecycle;
mod mesh_bootstrap;
mod mesh_config;
mod mesh_differential;
mod mesh_egress;
mod mesh_egress_eds;
mod mesh_gateway_routes;
mod mesh_hcm;
mod mesh_upstream_policies;
mod mesh_xds;
mod normalization_differential;
mod runtime;
mod sds;
mod soak;
mod tcp_proxy;
mod tls_san_differential;
mod tracing;
