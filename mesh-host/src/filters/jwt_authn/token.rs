//! One JSON Web Token: parsed the way jwt_verify_lib parses it (each defect has its own
//! status), its claims checked, its signature verified against a key set.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, URL_SAFE, URL_SAFE_NO_PAD,
};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::jwks::Keys;
use super::status::Status;

/// Base64url as jwt_verify_lib reads a signature: padding optional, unused trailing bits
/// ignored.
const SIGNATURE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A parsed token.
pub(super) struct Jwt {
    pub(super) algorithm: Algorithm,
    pub(super) kid: Option<String>,
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) expires: u64,
    pub(super) not_before: u64,
    /// The claims, for `claim_to_headers`.
    pub(super) claims: Map<String, Value>,
    /// The payload as it came, base64url without padding (`forward_payload_header`).
    pub(super) payload_base64url: String,
    /// `header.payload`, what the signature covers.
    signed: String,
    signature: String,
}

impl Jwt {
    /// jwt_verify_lib's `Jwt::parseFromString`.
    pub(super) fn parse(token: &str) -> Result<Jwt, Status> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(Status::JwtBadFormat);
        };
        let header_json: Map<String, Value> =
            decode_json(header).ok_or(Status::JwtHeaderParseError)?;
        let algorithm = match header_json.get("alg") {
            Some(Value::String(alg)) => algorithm(alg).ok_or(Status::JwtHeaderNotImplementedAlg)?,
            _ => return Err(Status::JwtHeaderBadAlg),
        };
        let kid = match header_json.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Status::JwtHeaderBadKid),
        };
        let claims: Map<String, Value> =
            decode_json(payload).ok_or(Status::JwtPayloadParseError)?;
        let issuer = match claims.get("iss") {
            None => String::new(),
            Some(Value::String(iss)) => iss.clone(),
            Some(_) => return Err(Status::JwtPayloadParseError),
        };
        let audiences = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(Status::JwtPayloadParseError)?,
            Some(_) => return Err(Status::JwtPayloadParseError),
        };
        let time = |name: &str| match claims.get(name) {
            None => Ok(0),
            Some(value) => value.as_u64().ok_or(Status::JwtPayloadParseError),
        };
        let expires = time("exp")?;
        let not_before = time("nbf")?;
        // jwt_verify_lib (absl's web-safe unescape) ignores the unused low bits of the last
        // character; the signature is kept in canonical form, which the verifier expects.
        let signature = SIGNATURE
            .decode(signature)
            .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
            .map_err(|_| Status::JwtSignatureParseError)?;
        Ok(Jwt {
            algorithm,
            kid,
            issuer,
            audiences,
            expires,
            not_before,
            payload_base64url: payload.trim_end_matches('=').to_owned(),
            claims,
            signed: format!("{header}.{payload}"),
            signature,
        })
    }

    /// jwt_verify_lib's `verifyTimeConstraint`: `nbf` and `exp` with the clock skew.
    pub(super) fn check_time(&self, now: u64, skew: u64) -> Result<(), Status> {
        if now.saturating_add(skew) < self.not_before {
            return Err(Status::JwtNotYetValid);
        }
        if self.expires != 0 && now > self.expires.saturating_add(skew) {
            return Err(Status::JwtExpired);
        }
        Ok(())
    }

    /// jwt_verify_lib's `CheckAudience`: any of the token's audiences among the allowed
    /// ones (scheme and trailing slash ignored); no allowed list allows every token.
    pub(super) fn audience_allowed(&self, allowed: &[String]) -> bool {
        if allowed.is_empty() {
            return true;
        }
        let normal = |aud: &str| {
            let aud = aud
                .strip_prefix("https://")
                .or_else(|| aud.strip_prefix("http://"))
                .unwrap_or(aud);
            aud.strip_suffix('/').unwrap_or(aud).to_owned()
        };
        self.audiences
            .iter()
            .any(|aud| allowed.iter().any(|a| normal(a) == normal(aud)))
    }

    /// jwt_verify_lib's `verifyJwt`: a key whose `kid` and `alg` (when it names them) and
    /// type fit the token must verify its signature.
    pub(super) fn verify(&self, keys: &Keys) -> Result<(), Status> {
        let mut fitting = false;
        for key in keys.candidates(self.algorithm, self.kid.as_deref()) {
            fitting = true;
            if jsonwebtoken::crypto::verify(
                &self.signature,
                self.signed.as_bytes(),
                key,
                self.algorithm,
            )
            .unwrap_or(false)
            {
                return Ok(());
            }
        }
        Err(if fitting {
            Status::JwtVerificationFail
        } else {
            Status::JwksKidAlgMismatch
        })
    }
}

/// The algorithms jwt_verify_lib implements.
fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn decode_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(part))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", encode(header), encode(payload))
    }

    #[test]
    fn each_malformed_part_has_its_own_status() {
        assert_eq!(Jwt::parse("a.b").err(), Some(Status::JwtBadFormat));
        assert_eq!(
            Jwt::parse(&format!("%%.{}.c2ln", encode("{}"))).err(),
            Some(Status::JwtHeaderParseError)
        );
        assert_eq!(
            Jwt::parse(&token(r#"{"alg":1}"#, "{}")).err(),
            Some(Status::JwtHeaderBadAlg)
        );
        assert_eq!(
            Jwt::parse(&token(r#"{"alg":"none"}"#, "{}")).err(),
            Some(Status::JwtHeaderNotImplementedAlg)
        );
        assert_eq!(
            Jwt::parse(&token(r#"{"alg":"RS256"}"#, r#"{"exp":"soon"}"#)).err(),
            Some(Status::JwtPayloadParseError)
        );
    }

    /// "sign" is `c2lnbg`; `c2lnbh` sets an unused trailing bit, which jwt_verify_lib
    /// ignores, so it names the same signature.
    #[test]
    fn a_signature_with_unused_trailing_bits_set_reads_as_the_canonical_one() {
        let signed = format!("{}.{}", encode(r#"{"alg":"RS256"}"#), encode("{}"));
        let jwt = Jwt::parse(&format!("{signed}.c2lnbh")).expect("parses");
        assert_eq!(jwt.signature, "c2lnbg");
        let padded = Jwt::parse(&format!("{signed}.c2lnbg==")).expect("parses");
        assert_eq!(padded.signature, "c2lnbg");
        assert_eq!(
            Jwt::parse(&format!("{signed}.c2l%")).err(),
            Some(Status::JwtSignatureParseError)
        );
    }

    #[test]
    fn time_and_audience_follow_jwt_verify_lib() {
        let jwt = Jwt::parse(&token(
            r#"{"alg":"RS256","kid":"k"}"#,
            r#"{"iss":"i","aud":["https://api.test/"],"exp":1000,"nbf":500}"#,
        ))
        .expect("parses");
        assert_eq!(jwt.kid.as_deref(), Some("k"));
        assert_eq!(jwt.check_time(700, 0), Ok(()));
        assert_eq!(jwt.check_time(1050, 60), Ok(()), "within the skew");
        assert_eq!(jwt.check_time(1061, 60), Err(Status::JwtExpired));
        assert_eq!(jwt.check_time(400, 60), Err(Status::JwtNotYetValid));
        assert!(jwt.audience_allowed(&["api.test".into()]));
        assert!(jwt.audience_allowed(&[]));
        assert!(!jwt.audience_allowed(&["other.test".into()]));
    }
}
