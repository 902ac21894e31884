//! SDS `Secret`s: a certificate with its key, or a validation context, checked when it
//! arrives so that a bad one is refused by name and the last good one keeps serving.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::error::{FieldError, FieldResult, TranslateError};
use super::path::FieldPath;
use super::reflect::unsupported_variant;
use super::tls::{certificate, validation_context};
use crate::config::{
    CertificateKeyPair, DataSource, ResourceKind, Secret, SecretMaterial, ValidationContext,
};

impl TryFrom<tls::Secret> for Secret {
    type Error = TranslateError;

    fn try_from(proto: tls::Secret) -> Result<Self, TranslateError> {
        let name = proto.name.clone();
        translate_secret(proto, &FieldPath::root())
            .map_err(|e| TranslateError::new(ResourceKind::Secret, &name, e))
    }
}

/// Translates a secret found at `path` (SDS root or a bootstrap static secret).
pub(crate) fn translate_secret(mut s: tls::Secret, path: &FieldPath<'_>) -> FieldResult<Secret> {
    use tls::secret::Type;
    let name = std::mem::take(&mut s.name);
    if name.is_empty() {
        return Err(FieldError::missing(&path.field("name")));
    }
    let material = match s.r#type.take() {
        Some(Type::TlsCertificate(cert)) => {
            let at = path.field("tls_certificate");
            let pair = certificate(cert, &at)?;
            check_pair(&pair, &at)?;
            SecretMaterial::TlsCertificate(pair)
        }
        Some(Type::ValidationContext(v)) => {
            let at = path.field("validation_context");
            let context = validation_context(v, &at)?;
            check_ca(&context, &at)?;
            SecretMaterial::ValidationContext(context)
        }
        Some(other) => {
            let rest = tls::Secret {
                r#type: Some(other),
                ..Default::default()
            };
            return Err(unsupported_variant(&rest, path));
        }
        None => return Err(FieldError::missing(&path.field("tls_certificate"))),
    };
    Ok(Secret { name, material })
}

/// The certificates of inline PEM, refusing data that holds none or is not PEM.
fn pem_certificates(pem: &[u8], path: &FieldPath<'_>) -> FieldResult<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &*pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FieldError::invalid(path, format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(FieldError::invalid(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// Inline certificate and key must parse and belong together, as Envoy checks them; files
/// are read by the listener or cluster that uses them.
fn check_pair(pair: &CertificateKeyPair, path: &FieldPath<'_>) -> FieldResult<()> {
    let (DataSource::Inline(chain), DataSource::Inline(key)) =
        (&pair.cert_chain, &pair.private_key)
    else {
        return Ok(());
    };
    let chain_path = path.field("certificate_chain");
    let key_path = path.field("private_key");
    let certs = pem_certificates(chain, &chain_path)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &**key)
        .map_err(|e| FieldError::invalid(&key_path, format!("not PEM: {e}")))?
        .ok_or_else(|| FieldError::invalid(&key_path, "holds no PEM private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    let mismatch = || FieldError::invalid(&key_path, "does not match the certificate");
    let certified = CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => mismatch(),
        other => FieldError::invalid(&key_path, format!("not usable: {other}")),
    })?;
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(mismatch())
        }
        _ => Ok(()),
    }
}

fn check_ca(context: &ValidationContext, path: &FieldPath<'_>) -> FieldResult<()> {
    match &context.trusted_ca {
        Some(DataSource::Inline(pem)) => pem_certificates(pem, &path.field("trusted_ca")).map(drop),
        _ => Ok(()),
    }
}
