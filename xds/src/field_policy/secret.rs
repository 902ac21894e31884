//! `Secret` (SDS), which mesh-host does not accept yet.

use super::{MessagePolicy, unsupported};

/// `envoy.extensions.transport_sockets.tls.v3.Secret`.
pub(super) const SECRET: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.transport_sockets.tls.v3.Secret",
    fields: &[
        unsupported(
            "name",
            "SDS is not implemented: certificates must be inline or files",
        ),
        unsupported("tls_certificate", "SDS is not implemented"),
        unsupported("session_ticket_keys", "SDS is not implemented"),
        unsupported("validation_context", "SDS is not implemented"),
        unsupported("generic_secret", "SDS is not implemented"),
    ],
};
