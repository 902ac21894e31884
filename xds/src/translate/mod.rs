//! Translation of Envoy v3 protos into [`crate::config`] types.
//!
//! Each resource type has a `TryFrom<proto>` implementation. Translators move every field they
//! implement or tolerate out of the proto; any field left set changes behaviour in Envoy and is
//! rejected with its path, so nothing is silently ignored.

// Control planes still send deprecated fields (Istio: `append`, `http2_protocol_options`),
// so translators must read and clear them.
#![allow(deprecated)]

mod access_log;
mod cluster;
mod common;
mod connection_options;
mod credentials;
mod endpoint;
mod error;
mod ext_authz;
pub(crate) mod extensions;
mod filters;
#[cfg(test)]
mod fuzz;
mod hcm;
mod health_check;
mod jwt_authn;
mod lb_policy;
mod listener;
mod log_format;
mod matcher;
mod path;
mod ratelimit;
mod rbac;
pub(crate) mod reflect;
mod route;
mod route_action;
mod router;
mod secret;
mod tcp_proxy;
mod tls;
mod tracing;

pub use error::{FieldError, Problem, TranslateError};
pub use log_format::{FormatError as LogFormatError, parse_format as parse_log_format};
pub(crate) use path::FieldPath;
pub(crate) use tls::SANS_WITHOUT_CA;

pub(crate) use cluster::translate_cluster;
pub(crate) use common::{json_to_struct, struct_to_json};
pub(crate) use listener::translate_listener;
pub(crate) use secret::translate_secret;
