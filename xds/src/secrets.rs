//! Where SDS names become key material: the TLS contexts of listeners and clusters are
//! resolved against the secrets in force when a snapshot is assembled, so nothing past this
//! crate sees a secret name, and a new secret version is a new snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{
    CertificateKeyPair, ClientCertificates, Cluster, DownstreamTls, Listener, Secret,
    SecretMaterial, SecretRef, SecretSource, UpstreamTls, ValidationContext,
};

/// Why a listener's or cluster's secrets cannot be put in place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The secret has not arrived (or the bootstrap has no static secret of that name).
    #[error("{field}: secret \"{name}\" has not arrived")]
    Missing {
        /// The referenced name.
        name: String,
        /// Where it is referenced.
        field: String,
    },
    /// The secret holds something else than the reference needs.
    #[error("{field}: secret \"{name}\" holds a {found}, not a {wanted}")]
    WrongKind {
        /// The referenced name.
        name: String,
        /// Where it is referenced.
        field: String,
        /// What the secret holds.
        found: &'static str,
        /// What the reference needs.
        wanted: &'static str,
    },
    /// The merged context cannot be used.
    #[error("{field}: {why}")]
    Unusable {
        /// Where the secret is referenced.
        field: String,
        /// Why.
        why: &'static str,
    },
}

/// The secrets an assembled snapshot sees: the bootstrap's static ones and those that
/// arrived over ADS, each reference looked up in its own set, as Envoy keeps them apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SecretSet<'a> {
    pub(crate) statics: &'a BTreeMap<String, Arc<Secret>>,
    pub(crate) dynamic: &'a BTreeMap<String, Arc<Secret>>,
}

impl SecretSet<'_> {
    /// The secret a reference names, if it is there.
    pub(crate) fn get(&self, reference: &SecretRef) -> Option<&Arc<Secret>> {
        match reference.source {
            SecretSource::Ads => self.dynamic.get(&reference.name),
            SecretSource::Static => self.statics.get(&reference.name),
        }
    }

    fn material(&self, reference: &SecretRef) -> Result<&SecretMaterial, ResolveError> {
        self.get(reference)
            .map(|secret| &secret.material)
            .ok_or_else(|| ResolveError::Missing {
                name: reference.name.clone(),
                field: reference.field.clone(),
            })
    }

    fn certificate(&self, reference: &SecretRef) -> Result<CertificateKeyPair, ResolveError> {
        match self.material(reference)? {
            SecretMaterial::TlsCertificate(pair) => Ok(pair.clone()),
            other => Err(wrong_kind(reference, other, "tls_certificate")),
        }
    }

    fn validation(&self, reference: &SecretRef) -> Result<ValidationContext, ResolveError> {
        match self.material(reference)? {
            SecretMaterial::ValidationContext(context) => Ok(context.clone()),
            other => Err(wrong_kind(reference, other, "validation_context")),
        }
    }
}

fn wrong_kind(reference: &SecretRef, found: &SecretMaterial, wanted: &'static str) -> ResolveError {
    ResolveError::WrongKind {
        name: reference.name.clone(),
        field: reference.field.clone(),
        found: found.field(),
        wanted,
    }
}

impl Listener {
    /// The SDS references of the listener's TLS contexts.
    pub(crate) fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.all_filter_chains()
            .filter_map(|chain| chain.tls.as_ref())
            .flat_map(|tls| tls.secrets.iter())
    }
}

impl Cluster {
    /// The SDS references of the cluster's TLS context.
    pub(crate) fn secret_refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.tls.iter().flat_map(|tls| tls.secrets.iter())
    }
}

/// `listener` with its secrets in place (the same `Arc` when it references none).
pub(crate) fn resolve_listener(
    listener: &Arc<Listener>,
    secrets: SecretSet<'_>,
) -> Result<Arc<Listener>, ResolveError> {
    if listener.secret_refs().next().is_none() {
        return Ok(listener.clone());
    }
    let mut resolved = Listener::clone(listener);
    let chains = resolved
        .filter_chains
        .iter_mut()
        .chain(resolved.default_filter_chain.as_mut());
    for tls in chains.filter_map(|chain| chain.tls.as_mut()) {
        resolve_downstream(tls, secrets)?;
    }
    Ok(Arc::new(resolved))
}

/// `cluster` with its secrets in place (the same `Arc` when it references none).
pub(crate) fn resolve_cluster(
    cluster: &Arc<Cluster>,
    secrets: SecretSet<'_>,
) -> Result<Arc<Cluster>, ResolveError> {
    if cluster.secret_refs().next().is_none() {
        return Ok(cluster.clone());
    }
    let mut resolved = Cluster::clone(cluster);
    if let Some(tls) = resolved.tls.as_mut() {
        resolve_upstream(tls, secrets)?;
    }
    Ok(Arc::new(resolved))
}

fn resolve_downstream(tls: &mut DownstreamTls, secrets: SecretSet<'_>) -> Result<(), ResolveError> {
    let refs = std::mem::take(&mut tls.secrets);
    if let Some(reference) = &refs.certificate {
        tls.certificate = secrets.certificate(reference)?;
    }
    if let Some(reference) = &refs.validation {
        let context = secrets.validation(reference)?;
        // Envoy merges the SDS context into the default one: its CA, when it has one, wins;
        // SAN matchers add up.
        let (default_ca, mut sans) = match tls.client_certificates.take() {
            Some(default) => (Some(default.trusted_ca), default.subject_alt_names),
            None => (None, refs.client_subject_alt_names),
        };
        sans.extend(context.subject_alt_names);
        let required = refs.require_client_certificate;
        tls.client_certificates = match context.trusted_ca.or(default_ca) {
            Some(trusted_ca) => Some(ClientCertificates {
                trusted_ca,
                required,
                subject_alt_names: sans,
            }),
            None if !sans.is_empty() => {
                return Err(ResolveError::Unusable {
                    field: reference.field.clone(),
                    why: crate::translate::SANS_WITHOUT_CA,
                });
            }
            None if !required => None,
            None => {
                return Err(ResolveError::Unusable {
                    field: reference.field.clone(),
                    why: "require_client_certificate needs a trusted_ca, and the validation context has none",
                });
            }
        };
    }
    Ok(())
}

fn resolve_upstream(tls: &mut UpstreamTls, secrets: SecretSet<'_>) -> Result<(), ResolveError> {
    let refs = std::mem::take(&mut tls.secrets);
    if let Some(reference) = &refs.certificate {
        tls.client_certificate = Some(secrets.certificate(reference)?);
    }
    if let Some(reference) = &refs.validation {
        // Envoy's merge of the SDS context into the default one: a set CA replaces the
        // default's, SAN matchers are added to the default's.
        let context = secrets.validation(reference)?;
        if let Some(ca) = context.trusted_ca {
            tls.validation_ca = Some(ca);
        }
        tls.subject_alt_names.extend(context.subject_alt_names);
        if !tls.subject_alt_names.is_empty() && tls.validation_ca.is_none() {
            return Err(ResolveError::Unusable {
                field: reference.field.clone(),
                why: crate::translate::SANS_WITHOUT_CA,
            });
        }
    }
    Ok(())
}
