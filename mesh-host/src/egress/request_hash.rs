//! The request hash of a route's `hash_policy`, for ring hash and maglev
//! clusters: each entry hashes a header, a cookie, a query parameter or the
//! client's address; the hashes of the entries that produced one are
//! combined in order (Envoy: `rotl(hash, 1) ^ next`), and a terminal entry
//! that produced one ends the list.

use std::net::IpAddr;

use http::header;
use mesh_xds::config::{HashPolicy, HashSource};
use xxhash_rust::xxh64::xxh64;

/// The hash of `request` under `policies`; `None` when no entry applies.
pub(crate) fn request_hash(
    policies: &[HashPolicy],
    request: &http::request::Parts,
    source: Option<IpAddr>,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for policy in policies {
        let Some(next) = entry_hash(&policy.source, request, source) else {
            continue;
        };
        hash = Some(match hash {
            Some(previous) => previous.rotate_left(1) ^ next,
            None => next,
        });
        if policy.terminal {
            break;
        }
    }
    hash
}

fn entry_hash(
    source: &HashSource,
    request: &http::request::Parts,
    client: Option<IpAddr>,
) -> Option<u64> {
    match source {
        HashSource::Header(name) => {
            let mut values: Vec<&[u8]> = request
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            if values.is_empty() {
                return None;
            }
            // Several values hash as one, in a stable order.
            values.sort_unstable();
            Some(xxh64(&values.join(&b","[..]), 0))
        }
        HashSource::Cookie(name) => request
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| key == name)
            .map(|(_, value)| xxh64(value.as_bytes(), 0)),
        HashSource::QueryParameter(name) => request
            .uri
            .query()?
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| key == name)
            .map(|(_, value)| xxh64(value.as_bytes(), 0)),
        HashSource::SourceIp => client.map(|ip| xxh64(ip.to_string().as_bytes(), 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn policy(source: HashSource, terminal: bool) -> HashPolicy {
        HashPolicy { source, terminal }
    }

    #[test]
    fn each_source_hashes_its_value_and_a_missing_value_gives_nothing() {
        let header = [policy(HashSource::Header("x-user".into()), false)];
        let alice = parts("/", &[("x-user", "alice")]);
        let bob = parts("/", &[("x-user", "bob")]);
        assert_eq!(
            request_hash(&header, &alice, None),
            request_hash(&header, &alice, None)
        );
        assert_ne!(
            request_hash(&header, &alice, None),
            request_hash(&header, &bob, None)
        );
        assert_eq!(request_hash(&header, &parts("/", &[]), None), None);

        let cookie = [policy(HashSource::Cookie("session".into()), false)];
        let with = parts("/", &[("cookie", "a=1; session=xyz")]);
        assert_eq!(request_hash(&cookie, &with, None), Some(xxh64(b"xyz", 0)));

        let query = [policy(HashSource::QueryParameter("user".into()), false)];
        let with = parts("/p?x=1&user=carol", &[]);
        assert_eq!(request_hash(&query, &with, None), Some(xxh64(b"carol", 0)));

        let ip = [policy(HashSource::SourceIp, false)];
        let client = "10.0.0.7".parse().ok();
        assert_eq!(
            request_hash(&ip, &alice, client),
            Some(xxh64(b"10.0.0.7", 0))
        );
        assert_eq!(request_hash(&ip, &alice, None), None);
    }

    #[test]
    fn entries_combine_in_order_and_a_terminal_hit_stops() {
        let request = parts("/?u=1", &[("x-a", "a")]);
        let a = xxh64(b"a", 0);
        let u = xxh64(b"1", 0);
        let both = [
            policy(HashSource::Header("x-a".into()), false),
            policy(HashSource::QueryParameter("u".into()), false),
        ];
        assert_eq!(
            request_hash(&both, &request, None),
            Some(a.rotate_left(1) ^ u)
        );
        let terminal = [
            policy(HashSource::Header("x-a".into()), true),
            policy(HashSource::QueryParameter("u".into()), false),
        ];
        assert_eq!(request_hash(&terminal, &request, None), Some(a));
    }
}
