//! `Secret` (SDS): key material that TLS contexts name, over ADS or in the bootstrap.

use super::{MessagePolicy, honoured, unsupported};

/// `envoy.extensions.transport_sockets.tls.v3.Secret`.
pub(super) const SECRET: MessagePolicy = MessagePolicy {
    message: "envoy.extensions.transport_sockets.tls.v3.Secret",
    fields: &[
        honoured(
            "name",
            "the name TLS contexts reference; requested by name as listeners and clusters need it",
        ),
        honoured(
            "tls_certificate",
            "certificate chain and private key, inline or from files (inline PEM is checked on arrival: it must parse and the key must match the certificate, else the secret is NACKed and the last good one keeps serving); a new version applies to new connections",
        ),
        unsupported("session_ticket_keys", "TLS session resumption keys"),
        honoured(
            "validation_context",
            "`trusted_ca` (inline PEM checked on arrival) and SAN matchers, as in a TLS context's `validation_context`",
        ),
        unsupported("generic_secret", "only TLS secrets are used"),
    ],
};
