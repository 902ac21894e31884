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
    CertificateKeyPair, ClientCertificates, DownstreamTls, SanMatcher, SanType, SdsRefs, SecretRef,
    SecretSource, UpstreamTls, ValidationContext,
};

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// The `Secret` fields an SDS reference may need.
const TLS_CERTIFICATE: &str = "tls_certificate";
const VALIDATION_CONTEXT: &str = "validation_context";
/// Envoy's words for SAN matchers without a CA to verify the certificate first.
pub(crate) const SANS_WITHOUT_CA: &str =
    "SAN-based verification of peer certificates without trusted CA is insecure and not allowed";

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
    let certificate = match (common.certificate, &common.secrets.certificate) {
        (Some(certificate), _) => certificate,
        (None, Some(_)) => CertificateKeyPair::from_sds(),
        (None, None) => return Err(FieldError::missing(&common_path.field("tls_certificates"))),
    };
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
    let mut secrets = common.secrets;
    let sans = common.validation.subject_alt_names;
    let client_certificates = match common.validation.trusted_ca {
        Some(trusted_ca) => Some(ClientCertificates {
            trusted_ca,
            required,
            subject_alt_names: sans,
        }),
        // The CA may still come with the validation context's secret.
        None if secrets.validation.is_some() => {
            secrets.client_subject_alt_names = sans;
            None
        }
        None if !sans.is_empty() => {
            return Err(FieldError::invalid(
                &common_path
                    .field("validation_context")
                    .field("match_typed_subject_alt_names"),
                SANS_WITHOUT_CA,
            ));
        }
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
    secrets.require_client_certificate = required;
    Ok(Some(DownstreamTls {
        certificate,
        alpn_protocols: common.alpn_protocols,
        client_certificates,
        secrets,
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
    // As Envoy: a SAN check against certificates nobody vouches for proves nothing. A CA still
    // to come from SDS is checked when the secret arrives.
    if !common.validation.subject_alt_names.is_empty()
        && common.validation.trusted_ca.is_none()
        && common.secrets.validation.is_none()
    {
        return Err(FieldError::invalid(
            &at.field("common_tls_context")
                .field("validation_context")
                .field("match_typed_subject_alt_names"),
            SANS_WITHOUT_CA,
        ));
    }
    Ok(Some(UpstreamTls {
        sni,
        validation_ca: common.validation.trusted_ca,
        client_certificate: common.certificate,
        alpn_protocols: common.alpn_protocols,
        subject_alt_names: common.validation.subject_alt_names,
        secrets: common.secrets,
    }))
}

struct Common {
    certificate: Option<CertificateKeyPair>,
    /// The inline validation context, or the default one of a combined context.
    validation: ValidationContext,
    alpn_protocols: Vec<String>,
    secrets: SdsRefs,
}

fn common(mut c: tls::CommonTlsContext, path: &FieldPath<'_>) -> FieldResult<Common> {
    use tls::common_tls_context::ValidationContextType;
    let (validation, validation_secret) = match c.validation_context_type.take() {
        Some(ValidationContextType::ValidationContext(v)) => (
            validation_context(v, &path.field("validation_context"))?,
            None,
        ),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => (
            ValidationContext::default(),
            Some(secret_ref(
                sds,
                VALIDATION_CONTEXT,
                &path.field("validation_context_sds_secret_config"),
            )?),
        ),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            combined_validation_context(combined, &path.field("combined_validation_context"))?
        }
        Some(other) => {
            let rest = tls::CommonTlsContext {
                validation_context_type: Some(other),
                ..Default::default()
            };
            return Err(unsupported_variant(&rest, path));
        }
        None => (ValidationContext::default(), None),
    };
    let tls_certificates = std::mem::take(&mut c.tls_certificates);
    let certificate_secrets = std::mem::take(&mut c.tls_certificate_sds_secret_configs);
    let alpn_protocols = std::mem::take(&mut c.alpn_protocols);
    // TLS versions and cipher suites: the host keeps its TLS library's safe defaults.
    c.tls_params = None;
    reject_unsupported(&c, path)?;
    let certs_path = path.field("tls_certificates");
    let secrets_path = path.field("tls_certificate_sds_secret_configs");
    if tls_certificates.len() + certificate_secrets.len() > 1 {
        let at = if tls_certificates.is_empty() {
            &secrets_path
        } else {
            &certs_path
        };
        return Err(FieldError::invalid(at, "only one certificate is supported"));
    }
    let certificate = tls_certificates
        .into_iter()
        .next()
        .map(|cert| certificate(cert, &certs_path.index(0)))
        .transpose()?;
    let certificate_secret = certificate_secrets
        .into_iter()
        .next()
        .map(|sds| secret_ref(sds, TLS_CERTIFICATE, &secrets_path.index(0)))
        .transpose()?;
    Ok(Common {
        certificate,
        validation,
        alpn_protocols,
        secrets: SdsRefs {
            certificate: certificate_secret,
            validation: validation_secret,
            ..SdsRefs::default()
        },
    })
}

/// `combined_validation_context`: the default context, which the SDS one is merged into.
fn combined_validation_context(
    mut combined: tls::common_tls_context::CombinedCertificateValidationContext,
    path: &FieldPath<'_>,
) -> FieldResult<(ValidationContext, Option<SecretRef>)> {
    let default_path = path.field("default_validation_context");
    let default = combined
        .default_validation_context
        .take()
        .ok_or_else(|| FieldError::missing(&default_path))?;
    let default = validation_context(default, &default_path)?;
    let sds_path = path.field("validation_context_sds_secret_config");
    let sds = combined
        .validation_context_sds_secret_config
        .take()
        .ok_or_else(|| FieldError::missing(&sds_path))?;
    let secret = secret_ref(sds, VALIDATION_CONTEXT, &sds_path)?;
    reject_unsupported(&combined, path)?;
    Ok((default, Some(secret)))
}

/// An `SdsSecretConfig`: a secret by name, from the ADS stream (`ads`, or `self`: the
/// server that sent the resource) or, without `sds_config`, from the bootstrap's static
/// secrets. Other sources (files, a separate SDS server) are refused by field.
fn secret_ref(
    mut sds: tls::SdsSecretConfig,
    wanted: &'static str,
    path: &FieldPath<'_>,
) -> FieldResult<SecretRef> {
    use core::config_source::ConfigSourceSpecifier;
    if sds.name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    let source = match sds.sds_config.take() {
        None => SecretSource::Static,
        Some(mut config) => {
            let at = path.field("sds_config");
            match config.config_source_specifier.take() {
                Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_)) => {}
                Some(other) => {
                    let rest = core::ConfigSource {
                        config_source_specifier: Some(other),
                        ..Default::default()
                    };
                    return Err(unsupported_variant(&rest, &at));
                }
                None => return Err(FieldError::missing(&at.field("ads"))),
            }
            // A secret is waited for until it arrives (a listener without its
            // certificate cannot serve), so the fetch timeout changes nothing.
            config.initial_fetch_timeout = None;
            config.resource_api_version = 0;
            reject_unsupported(&config, &at)?;
            SecretSource::Ads
        }
    };
    let secret = SecretRef {
        name: std::mem::take(&mut sds.name),
        source,
        wanted,
        field: path.to_string(),
    };
    reject_unsupported(&sds, path)?;
    Ok(secret)
}

pub(super) fn certificate(
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

pub(super) fn validation_context(
    mut v: tls::CertificateValidationContext,
    path: &FieldPath<'_>,
) -> FieldResult<ValidationContext> {
    let ca = v
        .trusted_ca
        .take()
        .map(|ca| data_source(ca, &path.field("trusted_ca")))
        .transpose()?;
    let mut sans = Vec::new();
    let typed_path = path.field("match_typed_subject_alt_names");
    for (i, san) in std::mem::take(&mut v.match_typed_subject_alt_names)
        .into_iter()
        .enumerate()
    {
        sans.push(san_matcher(san, &typed_path.index(i))?);
    }
    let legacy_path = path.field("match_subject_alt_names");
    let legacy = std::mem::take(&mut v.match_subject_alt_names);
    // Envoy ignores the deprecated untyped list when typed matchers are given; otherwise each
    // of its matchers is tried against every SAN type but OTHER_NAME.
    if sans.is_empty() {
        for (i, m) in legacy.into_iter().enumerate() {
            let matcher = string_matcher(m, &legacy_path.index(i))?;
            sans.extend(
                [
                    SanType::Dns,
                    SanType::Uri,
                    SanType::Email,
                    SanType::IpAddress,
                ]
                .map(|san_type| SanMatcher {
                    san_type,
                    matcher: matcher.clone(),
                }),
            );
        }
    }
    reject_unsupported(&v, path)?;
    Ok(ValidationContext {
        trusted_ca: ca,
        subject_alt_names: sans,
    })
}

/// One `SubjectAltNameMatcher`. `OTHER_NAME` is refused: the host reads no other-name SANs, and
/// a matcher it cannot evaluate must not pass or fail certificates by guess.
fn san_matcher(
    mut san: tls::SubjectAltNameMatcher,
    path: &FieldPath<'_>,
) -> FieldResult<SanMatcher> {
    use tls::subject_alt_name_matcher::SanType as Proto;
    let san_type = match Proto::try_from(san.san_type) {
        Ok(Proto::Email) => SanType::Email,
        Ok(Proto::Dns) => SanType::Dns,
        Ok(Proto::Uri) => SanType::Uri,
        Ok(Proto::IpAddress) => SanType::IpAddress,
        Ok(Proto::OtherName) => return Err(FieldError::unsupported(&path.field("san_type"))),
        Ok(Proto::Unspecified) | Err(_) => {
            return Err(FieldError::invalid(
                &path.field("san_type"),
                "must be EMAIL, DNS, URI or IP_ADDRESS",
            ));
        }
    };
    let matcher = san
        .matcher
        .take()
        .ok_or_else(|| FieldError::missing(&path.field("matcher")))?;
    // Envoy ignores an OID on any SAN type but OTHER_NAME.
    san.san_type = 0;
    san.oid.clear();
    reject_unsupported(&san, path)?;
    Ok(SanMatcher {
        san_type,
        matcher: string_matcher(matcher, &path.field("matcher"))?,
    })
}
