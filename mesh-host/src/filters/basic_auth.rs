//! `envoy.filters.http.basic_auth`: `Authorization: Basic` credentials checked against the
//! htpasswd users of the filter (or of the route), passwords compared by their SHA-1.

use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderName, HeaderValue, StatusCode};
use mesh_xds::config::BasicAuth;

use super::chain::FilterRequest;
use crate::shared::Failure;

/// Envoy's `Base64::decodeWithoutPadding`: padding may or may not be there.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A compiled basic_auth filter.
pub(super) struct BasicAuthFilter {
    config: Arc<BasicAuth>,
}

impl BasicAuthFilter {
    pub(super) fn new(config: &Arc<BasicAuth>) -> BasicAuthFilter {
        BasicAuthFilter {
            config: config.clone(),
        }
    }

    /// Checks the credentials against `route_users` (a route's own users) or the filter's.
    pub(super) fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        route_users: Option<&BasicAuth>,
    ) -> Option<Failure> {
        let users = &route_users.unwrap_or(&self.config).users;
        let denied = |reason| {
            Some(Failure::CredentialsRejected {
                status: StatusCode::UNAUTHORIZED,
                reason,
            })
        };
        let Some(value) = request
            .head
            .headers
            .get(self.config.authentication_header.as_str())
        else {
            if self.config.allow_missing {
                return None;
            }
            return denied("User authentication failed. Missing username and password.");
        };
        let Some(encoded) = value.as_bytes().strip_prefix(b"Basic ") else {
            return denied("User authentication failed. Expected 'Basic' authentication scheme.");
        };
        let decoded = LENIENT.decode(encoded).unwrap_or_default();
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return denied("User authentication failed. Invalid basic credential format.");
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password);
        let valid = users
            .iter()
            .any(|(name, hash)| name.as_bytes() == user && hash.as_slice() == digest.as_ref());
        if !valid {
            return denied("User authentication failed. Invalid username/password combination.");
        }
        if let Some(header) = &self.config.forward_username_header
            && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.as_bytes()),
                HeaderValue::from_bytes(user),
            )
        {
            request.head.headers.insert(name, value);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1(password: &str) -> [u8; 20] {
        let digest =
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
        digest.as_ref().try_into().expect("20 bytes")
    }

    fn check(
        filter: &BasicAuthFilter,
        authorization: Option<&str>,
    ) -> (Option<Failure>, http::HeaderMap) {
        let mut builder = http::Request::get("http://a.test/");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = crate::filters::chain::test_meta();
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let failure = filter.decode(
            &mut FilterRequest {
                head: &mut head,
                meta: &meta,
                cluster: None,
                routed: true,
                body: &mut body,
                upstream: &upstream,
            },
            None,
        );
        (failure, head.headers)
    }

    #[test]
    fn htpasswd_sha_users_are_checked_and_forwarded() {
        let filter = BasicAuthFilter::new(&Arc::new(BasicAuth {
            users: vec![("alice".into(), sha1("wonder"))],
            forward_username_header: Some("x-user".into()),
            authentication_header: "authorization".into(),
            allow_missing: false,
        }));
        let basic = |creds: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        };
        let (failure, headers) = check(&filter, Some(&basic("alice:wonder")));
        assert_eq!(failure, None);
        assert_eq!(headers["x-user"], "alice");
        let reason = |failure: Option<Failure>| match failure {
            Some(Failure::CredentialsRejected { reason, .. }) => reason,
            _ => "",
        };
        assert!(reason(check(&filter, None).0).contains("Missing username and password"));
        assert!(reason(check(&filter, Some("Bearer x")).0).contains("'Basic'"));
        assert!(
            reason(check(&filter, Some(&basic("alice:nope"))).0)
                .contains("Invalid username/password")
        );
    }
}
