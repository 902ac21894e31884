//! jwt_verify_lib's statuses: why a token does not verify, in the words Envoy answers with.

/// Why verification failed (or succeeded: [`Status::Ok`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    JwtMissed,
    JwtNotYetValid,
    JwtExpired,
    JwtBadFormat,
    JwtHeaderParseError,
    JwtHeaderBadAlg,
    JwtHeaderNotImplementedAlg,
    JwtHeaderBadKid,
    JwtPayloadParseError,
    JwtSignatureParseError,
    JwtUnknownIssuer,
    JwtAudienceNotAllowed,
    JwtVerificationFail,
    JwksParseError,
    JwksNoKeys,
    JwksBadKeys,
    JwksNoValidKeys,
    JwksKidAlgMismatch,
    JwksFetchFail,
}

impl Status {
    /// jwt_verify_lib's `getStatusString`.
    pub(super) fn message(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::JwtMissed => "Jwt is missing",
            Status::JwtNotYetValid => "Jwt not yet valid",
            Status::JwtExpired => "Jwt is expired",
            Status::JwtBadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            Status::JwtHeaderParseError => {
                "Jwt header is an invalid Base64url input or an invalid JSON"
            }
            Status::JwtHeaderBadAlg => "Jwt header [alg] field is not a string",
            Status::JwtHeaderNotImplementedAlg => "Jwt header [alg] field value is invalid",
            Status::JwtHeaderBadKid => "Jwt header [kid] field is not a string",
            Status::JwtPayloadParseError => "Jwt payload is an invalid Base64 or an invalid JSON",
            Status::JwtSignatureParseError => "Jwt signature is an invalid Base64",
            Status::JwtUnknownIssuer => "Jwt issuer is not configured",
            Status::JwtAudienceNotAllowed => "Audiences in Jwt are not allowed",
            Status::JwtVerificationFail => "Jwt verification fails",
            Status::JwksParseError => "Jwks is an invalid JSON",
            Status::JwksNoKeys => "Jwks does not have [keys] field",
            Status::JwksBadKeys => "[keys] in Jwks is not an array",
            Status::JwksNoValidKeys => "Jwks doesn't have any valid public key",
            Status::JwksKidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            Status::JwksFetchFail => "Jwks remote fetch is failed",
        }
    }
}
