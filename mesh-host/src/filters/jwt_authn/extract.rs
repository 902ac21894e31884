//! Where tokens are looked for (Envoy's `Extractor`): headers with a value prefix, query
//! parameters and cookies; `Authorization: Bearer` and `access_token` when a provider names
//! no location.

use http::request::Parts;
use mesh_xds::config::{JwtHeader, JwtProvider};

use crate::filters::credentials::remove_query_parameter;
use crate::shared::RequestView;

/// Where one token was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Location {
    Header(String),
    Param(String),
    Cookie(String),
}

/// A token and where it was found.
#[derive(Clone, Debug)]
pub(super) struct Found {
    pub(super) token: String,
    pub(super) location: Location,
}

/// The locations of a provider, defaults included.
pub(super) fn locations(provider: &JwtProvider) -> Vec<(Location, String)> {
    if provider.from_headers.is_empty()
        && provider.from_params.is_empty()
        && provider.from_cookies.is_empty()
    {
        return vec![
            (Location::Header("authorization".into()), "Bearer ".into()),
            (Location::Param("access_token".into()), String::new()),
        ];
    }
    let headers = provider
        .from_headers
        .iter()
        .map(|JwtHeader { name, value_prefix }| {
            (Location::Header(name.clone()), value_prefix.clone())
        });
    let params = provider
        .from_params
        .iter()
        .map(|p| (Location::Param(p.clone()), String::new()));
    let cookies = provider
        .from_cookies
        .iter()
        .map(|c| (Location::Cookie(c.clone()), String::new()));
    headers.chain(params).chain(cookies).collect()
}

/// Every token found at `locations`, in their order.
pub(super) fn extract(head: &Parts, locations: &[(Location, String)]) -> Vec<Found> {
    let view = RequestView::new(head);
    locations
        .iter()
        .filter_map(|(location, prefix)| {
            let token = match location {
                Location::Header(name) => {
                    let values = view.header_values(name);
                    if values.is_empty() {
                        return None;
                    }
                    let joined = values.join(",");
                    if prefix.is_empty() {
                        joined
                    } else {
                        let at = joined.find(prefix.as_str())?;
                        after_prefix(&joined, at + prefix.len())
                    }
                }
                Location::Param(name) => view.query_parameter(name)?.to_owned(),
                Location::Cookie(name) => cookie(head, name)?,
            };
            Some(Found {
                token,
                location: location.clone(),
            })
        })
        .collect()
}

/// The run of base64url characters and dots from `start` on (Envoy's `extractJWT`).
fn after_prefix(value: &str, start: usize) -> String {
    let token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let rest = value.get(start..).unwrap_or_default();
    let Some(begin) = rest.find(token_char) else {
        return rest.to_owned();
    };
    let rest = &rest[begin..];
    let end = rest.find(|c: char| !token_char(c)).unwrap_or(rest.len());
    rest[..end].to_owned()
}

fn cookie(head: &Parts, name: &str) -> Option<String> {
    head.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"').to_owned())
        })
}

/// Removes a token that is not forwarded: its header or its query parameter goes (a
/// cookie stays, as in Envoy).
pub(super) fn remove(head: &mut Parts, location: &Location) {
    match location {
        Location::Header(name) => {
            head.headers.remove(name.as_str());
        }
        Location::Param(name) => remove_query_parameter(head, name),
        Location::Cookie(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn tokens_come_from_prefixed_headers_params_and_cookies() {
        let head = head(
            "/p?access_token=q.q.q&t=p.p.p",
            &[
                ("authorization", "Bearer a.b.c"),
                ("x-token", "Token h.h.h, more"),
                ("cookie", "other=1; jwt=c.c.c"),
            ],
        );
        let defaults = locations(&JwtProvider {
            from_headers: Vec::new(),
            from_params: Vec::new(),
            from_cookies: Vec::new(),
            ..crate::filters::jwt_authn::tests::provider()
        });
        let found: Vec<String> = extract(&head, &defaults)
            .into_iter()
            .map(|f| f.token)
            .collect();
        assert_eq!(found, ["a.b.c", "q.q.q"]);
        let custom = vec![
            (Location::Header("x-token".into()), "Token ".into()),
            (Location::Param("t".into()), String::new()),
            (Location::Cookie("jwt".into()), String::new()),
        ];
        let found: Vec<String> = extract(&head, &custom)
            .into_iter()
            .map(|f| f.token)
            .collect();
        assert_eq!(found, ["h.h.h", "p.p.p", "c.c.c"]);
    }

    #[test]
    fn a_header_without_the_prefix_has_no_token() {
        let head = head("/", &[("authorization", "Basic xyz")]);
        let at = vec![(Location::Header("authorization".into()), "Bearer ".into())];
        assert!(extract(&head, &at).is_empty());
    }
}
