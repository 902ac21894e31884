//! A provider's keys: a local JWKS parsed once, or a remote one fetched through a cluster
//! when a request first needs it, used for `cache_duration`, then fetched again. Concurrent
//! requests share one fetch; a failed fetch is not cached.

use std::time::Instant;

use bytes::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use mesh_xds::config::{JwksSource, RemoteJwks};
use serde_json::Value;
use tokio::sync::Mutex;

use super::status::Status;
use crate::egress::Egress;
use crate::filters::upstream_call::http_call;

/// The usable keys of a JWKS.
pub(super) struct Keys {
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when it names one.
    alg: Option<Algorithm>,
    kind: Kind,
    decoding: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ec(Algorithm),
    Ed,
    Hmac,
}

impl Keys {
    /// jwt_verify_lib's `Jwks::createFrom(..., JWKS)`; keys it cannot use are left out.
    pub(super) fn parse(json: &[u8]) -> Result<Keys, Status> {
        let value: Value = serde_json::from_slice(json).map_err(|_| Status::JwksParseError)?;
        let list = match value.get("keys") {
            None => return Err(Status::JwksNoKeys),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(Status::JwksBadKeys),
        };
        let keys: Vec<Key> = list
            .iter()
            .filter_map(|key| {
                let jwk: Jwk = serde_json::from_value(key.clone()).ok()?;
                let kind = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Kind::Rsa,
                    AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        EllipticCurve::P256 => Kind::Ec(Algorithm::ES256),
                        EllipticCurve::P384 => Kind::Ec(Algorithm::ES384),
                        _ => return None,
                    },
                    AlgorithmParameters::OctetKeyPair(_) => Kind::Ed,
                    AlgorithmParameters::OctetKey(_) => Kind::Hmac,
                };
                let alg = key
                    .get("alg")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<Algorithm>().ok());
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    kind,
                    decoding: DecodingKey::from_jwk(&jwk).ok()?,
                })
            })
            .collect();
        if keys.is_empty() {
            return Err(Status::JwksNoValidKeys);
        }
        Ok(Keys { keys })
    }

    /// The keys that may have signed a token with this algorithm and key id.
    pub(super) fn candidates<'a>(
        &'a self,
        algorithm: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        self.keys
            .iter()
            .filter(move |key| match (kid, &key.kid) {
                (Some(wanted), Some(own)) => wanted == own,
                _ => true,
            })
            .filter(move |key| key.alg.is_none_or(|alg| alg == algorithm))
            .filter(move |key| match (key.kind, algorithm) {
                (
                    Kind::Rsa,
                    Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512,
                ) => true,
                (Kind::Ec(curve), alg) => curve == alg,
                (Kind::Ed, Algorithm::EdDSA) => true,
                (Kind::Hmac, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => true,
                _ => false,
            })
            .map(|key| &key.decoding)
    }
}

/// Where a provider's keys come from, with the fetched ones cached.
pub(super) enum KeySource {
    Local(std::sync::Arc<Keys>),
    Remote {
        config: RemoteJwks,
        cached: Mutex<Option<(Instant, std::sync::Arc<Keys>)>>,
    },
}

impl KeySource {
    /// A local JWKS is parsed now; a configuration Envoy would refuse is refused.
    pub(super) fn new(source: &JwksSource) -> Result<KeySource, String> {
        Ok(match source {
            JwksSource::Local(json) => KeySource::Local(std::sync::Arc::new(
                Keys::parse(json.as_bytes()).map_err(|s| format!("local_jwks: {}", s.message()))?,
            )),
            JwksSource::Remote(config) => KeySource::Remote {
                config: config.clone(),
                cached: Mutex::new(None),
            },
        })
    }

    /// The keys, fetched when there are none or they have expired.
    pub(super) async fn keys(&self, upstream: &Egress) -> Result<std::sync::Arc<Keys>, Status> {
        match self {
            KeySource::Local(keys) => Ok(keys.clone()),
            KeySource::Remote { config, cached } => {
                let mut cached = cached.lock().await;
                if let Some((expires, keys)) = cached.as_ref()
                    && Instant::now() < *expires
                {
                    return Ok(keys.clone());
                }
                let body = fetch(upstream, config).await.map_err(|why| {
                    tracing::warn!(uri = %config.uri, "JWKS fetch failed: {why}");
                    Status::JwksFetchFail
                })?;
                let keys = std::sync::Arc::new(Keys::parse(&body)?);
                *cached = Some((Instant::now() + config.cache_duration, keys.clone()));
                Ok(keys)
            }
        }
    }
}

async fn fetch(upstream: &Egress, config: &RemoteJwks) -> Result<Bytes, String> {
    let uri: http::Uri = config.uri.parse().map_err(|e| format!("{e}"))?;
    let host = uri
        .authority()
        .map(|a| a.to_string())
        .ok_or("the JWKS URI names no host")?;
    let request = http::Request::get(uri)
        .header(http::header::HOST, host)
        .body(Bytes::new())
        .map_err(|e| e.to_string())?;
    let response = http_call(upstream, &config.cluster, request, config.timeout)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    Ok(response.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_errors_have_jwt_verify_libs_statuses() {
        assert_eq!(Keys::parse(b"nope").err(), Some(Status::JwksParseError));
        assert_eq!(Keys::parse(b"{}").err(), Some(Status::JwksNoKeys));
        assert_eq!(
            Keys::parse(br#"{"keys":1}"#).err(),
            Some(Status::JwksBadKeys)
        );
        assert_eq!(
            Keys::parse(br#"{"keys":[{"kty":"weird"}]}"#).err(),
            Some(Status::JwksNoValidKeys)
        );
    }

    #[test]
    fn keys_are_chosen_by_kid_alg_and_type() {
        let keys = Keys::parse(
            br#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0","alg":"HS256"},{"kty":"oct","kid":"b","k":"c2VjcmV0"}]}"#,
        )
        .expect("two keys");
        assert_eq!(keys.candidates(Algorithm::HS256, Some("a")).count(), 1);
        assert_eq!(keys.candidates(Algorithm::HS256, None).count(), 2);
        assert_eq!(keys.candidates(Algorithm::HS384, None).count(), 1);
        assert_eq!(keys.candidates(Algorithm::RS256, None).count(), 0);
    }
}
