//! `envoy.filters.http.basic_auth`: `Authorization: Basic` credentials checked against the
//! htpasswd users of the filter (or of the route), passwords compared by their SHA-1.

use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderName, HeaderValue, StatusCode};
use mesh_xds::config::BasicAuth;

use super::chain::FilterRequest;
use crate::shared::{Failure, RequestView};

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

    /// Checks the credentials against `route_users` (a route's own users) or the filter's;
    /// a refusal comes with its `www-authenticate` challenge.
    pub(super) fn decode(
        &self,
        request: &mut FilterRequest<'_>,
        route_users: Option<&BasicAuth>,
    ) -> Option<(Failure, String)> {
        let users = &route_users.unwrap_or(&self.config).users;
        let realm = RequestView::new(request.head).original_uri();
        let denied = |reason| {
            Some((
                Failure::CredentialsRejected {
                    status: StatusCode::UNAUTHORIZED,
                    reason,
                },
                format!("Basic realm=\"{realm}\""),
            ))
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
        digest.as_ref().try_into().unwrap_or([0; 20])
    }

    /// The refusal and its challenge, and the request headers after the filter.
    fn check(
        filter: &BasicAuthFilter,
        authorization: Option<&str>,
    ) -> (Option<(Failure, String)>, http::HeaderMap) {
        let mut builder = http::Request::get("http://a.test/p?q=1");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let (mut head, ()) = builder.body(()).expect("request").into_parts();
        let meta = crate::shared::RequestMeta::plaintext_from("10.0.0.2:1");
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let refusal = filter.decode(
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
        (refusal, head.headers)
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
        let (refusal, headers) = check(&filter, Some(&basic("alice:wonder")));
        assert!(refusal.is_none());
        assert_eq!(headers["x-user"], "alice");
        let reason = |refusal: Option<(Failure, String)>| match refusal {
            Some((Failure::CredentialsRejected { reason, .. }, _)) => reason,
            _ => "",
        };
        let (missing, _) = check(&filter, None);
        assert_eq!(
            missing.as_ref().map(|(_, challenge)| challenge.as_str()),
            Some("Basic realm=\"http://a.test/p\""),
            "the realm is the request's URI without its query"
        );
        assert!(reason(missing).contains("Missing username and password"));
        assert!(reason(check(&filter, Some("Bearer x")).0).contains("'Basic'"));
        assert!(
            reason(check(&filter, Some(&basic("alice:nope"))).0)
                .contains("Invalid username/password")
        );
    }
}
