//! Downstream and upstream TLS transport sockets.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;

use super::common::data_source;
use super::error::{FieldError, FieldResult};
use super::extensions::decode_any;
use super::matcher::string_matcher;
use super::path::FieldPath;
use super::reflect::{reject_unsupported, unsupported_variant};
use crate::config::{
    CertificateKeyPair, ClientCertificates, DataSource, DownstreamTls, StringMatcher, UpstreamTls,
};

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";

/// Decodes a transport socket's typed config, or `None` for a plaintext socket.
fn socket_config<M: prost::Message + prost::Name + Default>(
    socket: core::TransportSocket,
    path: &FieldPath<'_>,
) -> FieldResult<Option<M>> {
    use core::transport_socket::ConfigType;
    let any = match socket.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        None if socket.name == RAW_BUFFER_SOCKET => return Ok(None),
        None => return Err(FieldError::missing(&path.field("typed_config"))),
    };
    if any
        .type_url
        .ends_with("envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer")
    {
        return Ok(None);
    }
    if any.type_url != M::type_url() {
        return Err(FieldError::invalid(
            &path.field("typed_config"),
            format!("{} is not supported (only {TLS_SOCKET})", any.type_url),
        ));
    }
    decode_any(&any).map(Some).map_err(|e| {
        FieldError::invalid(&path.field("typed_config"), format!("cannot decode: {e}"))
    })
}

/// A listener filter chain's `transport_socket`.
pub(crate) fn downstream_transport_socket(
    socket: core::TransportSocket,
    path: &FieldPath<'_>,
) -> FieldResult<Option<DownstreamTls>> {
    let Some(mut ctx) = socket_config::<tls::DownstreamTlsContext>(socket, path)? else {
        return Ok(None);
    };
    let at = path.field("typed_config");
    let common_path = at.field("common_tls_context");
    let common = common(
        ctx.common_tls_context.take().unwrap_or_default(),
        &common_path,
    )?;
    let certificate = common
        .certificate
        .ok_or_else(|| FieldError::missing(&common_path.field("tls_certificates")))?;
    if !common.subject_alt_names.is_empty() {
        return Err(FieldError::unsupported(
            &common_path
                .field("validation_context")
                .field("match_typed_subject_alt_names"),
        ));
    }
    let required = ctx
        .require_client_certificate
        .take()
        .is_some_and(|b| b.value);
    // Session resumption, OCSP stapling and cipher preference tune the handshake only.
    ctx.session_ticket_keys_type = None;
    ctx.disable_stateful_session_resumption = false;
    ctx.session_timeout = None;
    ctx.ocsp_staple_policy = 0;
    ctx.prefer_client_ciphers = false;
    reject_unsupported(&ctx, &at)?;
    let client_certificates = match common.validation_ca {
        Some(trusted_ca) => Some(ClientCertificates {
            trusted_ca,
            required,
        }),
        None if !required => None,
        // Verified clients cannot be required without something to verify
        // them against; accepting any certificate would pass for mTLS.
        None => {
            return Err(FieldError::invalid(
                &at.field("require_client_certificate"),
                "needs common_tls_context.validation_context.trusted_ca to verify client certificates",
            ));
        }
    };
    Ok(Some(DownstreamTls {
        certificate,
        alpn_protocols: common.alpn_protocols,
        client_certificates,
    }))
}

/// A cluster's `transport_socket`.
pub(crate) fn upstream_transport_socket(
    socket: core::TransportSocket,
    path: &FieldPath<'_>,
) -> FieldResult<Option<UpstreamTls>> {
    let Some(mut ctx) = socket_config::<tls::UpstreamTlsContext>(socket, path)? else {
        return Ok(None);
    };
    let at = path.field("typed_config");
    let common = common(
        ctx.common_tls_context.take().unwrap_or_default(),
        &at.field("common_tls_context"),
    )?;
    let sni = Some(std::mem::take(&mut ctx.sni)).filter(|s| !s.is_empty());
    // Session caching, renegotiation and key-usage enforcement tune the handshake only.
    ctx.allow_renegotiation = false;
    ctx.max_session_keys = None;
    ctx.enforce_rsa_key_usage = None;
    reject_unsupported(&ctx, &at)?;
    Ok(Some(UpstreamTls {
        sni,
        validation_ca: common.validation_ca,
        client_certificate: common.certificate,
        alpn_protocols: common.alpn_protocols,
        subject_alt_names: common.subject_alt_names,
    }))
}

struct Common {
    certificate: Option<CertificateKeyPair>,
    validation_ca: Option<DataSource>,
    alpn_protocols: Vec<String>,
    subject_alt_names: Vec<StringMatcher>,
}

fn common(mut c: tls::CommonTlsContext, path: &FieldPath<'_>) -> FieldResult<Common> {
    use tls::common_tls_context::ValidationContextType;
    let validation = match c.validation_context_type.take() {
        Some(ValidationContextType::ValidationContext(v)) => Some(v),
        Some(other) => {
            let rest = tls::CommonTlsContext {
                validation_context_type: Some(other),
                ..Default::default()
            };
            return Err(unsupported_variant(&rest, path));
        }
        None => None,
    };
    let tls_certificates = std::mem::take(&mut c.tls_certificates);
    let alpn_protocols = std::mem::take(&mut c.alpn_protocols);
    // TLS versions and cipher suites: the host keeps its TLS library's safe defaults.
    c.tls_params = None;
    reject_unsupported(&c, path)?;
    let certs_path = path.field("tls_certificates");
    if tls_certificates.len() > 1 {
        return Err(FieldError::invalid(
            &certs_path,
            "only one certificate is supported",
        ));
    }
    let certificate = tls_certificates
        .into_iter()
        .next()
        .map(|cert| certificate(cert, &certs_path.index(0)))
        .transpose()?;
    let (validation_ca, subject_alt_names) = match validation {
        Some(v) => validation_context(v, &path.field("validation_context"))?,
        None => (None, Vec::new()),
    };
    Ok(Common {
        certificate,
        validation_ca,
        alpn_protocols,
        subject_alt_names,
    })
}

fn certificate(
    mut cert: tls::TlsCertificate,
    path: &FieldPath<'_>,
) -> FieldResult<CertificateKeyPair> {
    let chain = cert
        .certificate_chain
        .take()
        .ok_or_else(|| FieldError::missing(&path.field("certificate_chain")))?;
    let key = cert
        .private_key
        .take()
        .ok_or_else(|| FieldError::missing(&path.field("private_key")))?;
    let pair = CertificateKeyPair {
        cert_chain: data_source(chain, &path.field("certificate_chain"))?,
        private_key: data_source(key, &path.field("private_key"))?,
    };
    reject_unsupported(&cert, path)?;
    Ok(pair)
}

fn validation_context(
    mut v: tls::CertificateValidationContext,
    path: &FieldPath<'_>,
) -> FieldResult<(Option<DataSource>, Vec<StringMatcher>)> {
    let ca = v
        .trusted_ca
        .take()
        .map(|ca| data_source(ca, &path.field("trusted_ca")))
        .transpose()?;
    let mut sans = Vec::new();
    let typed_path = path.field("match_typed_subject_alt_names");
    for (i, mut san) in std::mem::take(&mut v.match_typed_subject_alt_names)
        .into_iter()
        .enumerate()
    {
        let at = typed_path.index(i);
        let matcher = san
            .matcher
            .take()
            .ok_or_else(|| FieldError::missing(&at.field("matcher")))?;
        // The SAN type only narrows which SAN entries are compared; any listed entry may match.
        san.san_type = 0;
        reject_unsupported(&san, &at)?;
        sans.push(string_matcher(matcher, &at.field("matcher"))?);
    }
    let legacy_path = path.field("match_subject_alt_names");
    for (i, m) in std::mem::take(&mut v.match_subject_alt_names)
        .into_iter()
        .enumerate()
    {
        sans.push(string_matcher(m, &legacy_path.index(i))?);
    }
    reject_unsupported(&v, path)?;
    Ok((ca, sans))
}
