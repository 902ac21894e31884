//! `x-forwarded-for`, `x-forwarded-proto` and `x-envoy-external-address` as
//! Envoy's HTTP connection manager writes them before routing
//! (<https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers>),
//! so a component behind mesh-host sees what an upstream behind Envoy sees.

use std::net::IpAddr;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_ENVOY_EXTERNAL_ADDRESS: HeaderName = HeaderName::from_static("x-envoy-external-address");
const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");

/// Headers that steer Envoy's own behaviour and that Envoy strips from
/// requests it does not consider internal (`cleanInternalHeaders`), so a
/// client cannot set them on its way in.
const INTERNAL_ONLY: [HeaderName; 14] = [
    HeaderName::from_static("x-envoy-retriable-status-codes"),
    HeaderName::from_static("x-envoy-retriable-header-names"),
    HeaderName::from_static("x-envoy-retry-on"),
    HeaderName::from_static("x-envoy-retry-grpc-on"),
    HeaderName::from_static("x-envoy-max-retries"),
    HeaderName::from_static("x-envoy-upstream-alt-stat-name"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms"),
    HeaderName::from_static("x-envoy-upstream-rq-timeout-alt-response"),
    HeaderName::from_static("x-envoy-expected-rq-timeout-ms"),
    HeaderName::from_static("x-envoy-force-trace"),
    HeaderName::from_static("x-envoy-ip-tags"),
    HeaderName::from_static("x-envoy-original-url"),
    HeaderName::from_static("x-envoy-hedge-on-per-try-timeout"),
];
/// Stripped in addition from edge requests (`use_remote_address`).
const EDGE_STRIPPED: [HeaderName; 3] = [
    HeaderName::from_static("x-envoy-decorator-operation"),
    HeaderName::from_static("x-envoy-downstream-service-cluster"),
    HeaderName::from_static("x-envoy-downstream-service-node"),
];

/// The connection manager's forwarding settings.
///
/// No address counts as internal: that is Envoy's default since 1.36 when
/// `internal_address_config` is unset (which mesh-host does not read), so
/// `x-envoy-internal` is never set and internal-only headers are always
/// stripped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// Trust the connection's peer as the client: append it to
    /// `x-forwarded-for` and tell the component the client's address in
    /// `x-envoy-external-address`. `false` (Envoy's default, for a proxy
    /// behind another one) leaves `x-forwarded-for` as the client sent it.
    pub use_remote_address: bool,
    /// How many proxies in front are trusted to have appended to
    /// `x-forwarded-for`; with `0` a client's `x-forwarded-proto` is
    /// replaced by the connection's scheme.
    pub xff_num_trusted_hops: u32,
    /// With `use_remote_address`, still do not append the peer.
    pub skip_xff_append: bool,
}

impl Forwarding {
    /// Rewrites the request headers for a request from `peer` on a
    /// connection that is TLS or not, and returns the client's address as
    /// Envoy decides it: with `use_remote_address`, the peer (or the
    /// trusted `x-forwarded-for` hop); without, the last trusted entry of
    /// `x-forwarded-for` when there is one, else the peer.
    ///
    /// Envoy appends its own host address instead of a loopback peer's;
    /// mesh-host appends the loopback address as seen, since it does not
    /// guess which of the machine's addresses is "its own".
    pub(super) fn apply(&self, headers: &mut HeaderMap, peer: IpAddr, tls: bool) -> IpAddr {
        self.strip_envoy_headers(headers);
        let forwarded_for = joined_forwarded_for(headers);
        let scheme = HeaderValue::from_static(if tls { "https" } else { "http" });
        let trusted_client = if self.use_remote_address {
            let from_xff = self
                .xff_num_trusted_hops
                .checked_sub(1)
                .and_then(|skip| address_from_right(forwarded_for.as_deref(), skip));
            if !self.skip_xff_append {
                let appended = match &forwarded_for {
                    Some(list) => format!("{list},{peer}"),
                    None => peer.to_string(),
                };
                if let Ok(value) = HeaderValue::from_str(&appended) {
                    headers.insert(X_FORWARDED_FOR, value);
                }
            }
            // Only trusted proxies may say which scheme the client used.
            if self.xff_num_trusted_hops == 0 {
                headers.insert(X_FORWARDED_PROTO, scheme.clone());
            }
            Some(from_xff.unwrap_or(peer))
        } else {
            None
        };
        let remote = trusted_client.unwrap_or_else(|| {
            address_from_right(forwarded_for.as_deref(), self.xff_num_trusted_hops).unwrap_or(peer)
        });
        if !headers.contains_key(X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, scheme);
        }
        if let Some(client) = trusted_client
            && let Ok(value) = HeaderValue::from_str(&client.to_string())
        {
            headers.insert(X_ENVOY_EXTERNAL_ADDRESS, value);
        }
        remote
    }

    /// Removes what a client may not set: `x-envoy-internal` and the internal-only headers,
    /// and on an edge request (a connection manager that trusts its peer: this is where the
    /// request enters the mesh) the edge-stripped ones too. Most requests carry no `x-envoy-`
    /// header, and one look at their few names is cheaper than hashing the eighteen.
    fn strip_envoy_headers(&self, headers: &mut HeaderMap) {
        if !headers
            .keys()
            .any(|name| name.as_str().starts_with("x-envoy-"))
        {
            return;
        }
        headers.remove(X_ENVOY_INTERNAL);
        let edge: &[HeaderName] = if self.use_remote_address {
            &EDGE_STRIPPED
        } else {
            &[]
        };
        for name in INTERNAL_ONLY.iter().chain(edge) {
            headers.remove(name);
        }
    }
}

/// Every `x-forwarded-for` line as one comma-separated list, as Envoy's
/// header map holds them. Lines that are not text are skipped.
fn joined_forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let first = lines.next()?;
    Some(lines.fold(first.to_owned(), |mut list, line| {
        list.push(',');
        list.push_str(line);
        list
    }))
}

/// The address `skip` entries from the right end of an `x-forwarded-for`
/// list (Envoy's `getLastAddressFromXFF`): `None` when the list is shorter
/// or that entry is not an IP address.
fn address_from_right(list: Option<&str>, skip: u32) -> Option<IpAddr> {
    let skip = usize::try_from(skip).ok()?;
    list?.rsplit(',').nth(skip)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGE_PEER: &str = "192.0.2.5";
    const UPSTREAM_XFF: &str = "203.0.113.128, 203.0.113.10, 203.0.113.1";

    fn request(xff: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(xff) = xff {
            headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(xff).expect("value"));
        }
        headers
    }

    fn peer(address: &str) -> IpAddr {
        address.parse().expect("address")
    }

    fn forwarding(use_remote_address: bool, hops: u32) -> Forwarding {
        Forwarding {
            use_remote_address,
            xff_num_trusted_hops: hops,
            skip_xff_append: false,
        }
    }

    // The numbered examples of Envoy's x-forwarded-for documentation.

    #[test]
    fn example_1_edge_without_trusted_proxies_appends_the_peer_and_trusts_it() {
        let mut headers = request(Some(UPSTREAM_XFF));
        forwarding(true, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(
            headers[X_FORWARDED_FOR],
            format!("{UPSTREAM_XFF},{EDGE_PEER}")
        );
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], EDGE_PEER);
    }

    #[test]
    fn example_2_internal_proxy_leaves_xff_and_the_external_address_alone() {
        let xff = format!("{UPSTREAM_XFF}, {EDGE_PEER}");
        let mut headers = request(Some(&xff));
        headers.insert(
            X_ENVOY_EXTERNAL_ADDRESS,
            HeaderValue::from_static(EDGE_PEER),
        );
        headers.insert(X_ENVOY_INTERNAL, HeaderValue::from_static("true"));
        forwarding(false, 0).apply(&mut headers, peer("10.11.12.13"), false);
        assert_eq!(headers[X_FORWARDED_FOR], xff.as_str());
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], EDGE_PEER, "not modified");
        assert!(!headers.contains_key(X_ENVOY_INTERNAL), "removed");
    }

    #[test]
    fn example_3_edge_with_two_trusted_proxies_trusts_the_second_from_the_right() {
        let mut headers = request(Some(UPSTREAM_XFF));
        forwarding(true, 2).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(
            headers[X_FORWARDED_FOR],
            format!("{UPSTREAM_XFF},{EDGE_PEER}")
        );
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], "203.0.113.10");
    }

    #[test]
    fn too_few_trusted_hops_in_xff_fall_back_to_the_peer() {
        let mut headers = request(Some("203.0.113.1"));
        forwarding(true, 3).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], EDGE_PEER);
        let mut headers = request(Some("not-an-address, 203.0.113.1"));
        forwarding(true, 2).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], EDGE_PEER);
    }

    #[test]
    fn an_edge_request_without_xff_gets_one_with_the_peer() {
        let mut headers = request(None);
        forwarding(true, 0).apply(&mut headers, peer("2001:db8::1"), true);
        assert_eq!(headers[X_FORWARDED_FOR], "2001:db8::1");
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], "2001:db8::1");
        assert_eq!(headers[X_FORWARDED_PROTO], "https");
    }

    #[test]
    fn several_xff_lines_are_joined_before_appending() {
        let mut headers = request(Some("203.0.113.1"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.2"));
        forwarding(true, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(
            headers.get_all(X_FORWARDED_FOR).iter().collect::<Vec<_>>(),
            vec![&format!("203.0.113.1,203.0.113.2,{EDGE_PEER}")]
        );
    }

    #[test]
    fn skip_xff_append_trusts_the_peer_without_appending_it() {
        let mut headers = request(Some(UPSTREAM_XFF));
        Forwarding {
            skip_xff_append: true,
            ..forwarding(true, 0)
        }
        .apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_FORWARDED_FOR], UPSTREAM_XFF);
        assert_eq!(headers[X_ENVOY_EXTERNAL_ADDRESS], EDGE_PEER);
    }

    #[test]
    fn x_forwarded_proto_from_an_untrusted_client_is_replaced() {
        let mut headers = request(None);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        forwarding(true, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn x_forwarded_proto_from_a_trusted_proxy_is_kept_and_set_when_absent() {
        let mut headers = request(None);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        forwarding(true, 1).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_FORWARDED_PROTO], "https");

        let mut headers = request(None);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        forwarding(false, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert_eq!(headers[X_FORWARDED_PROTO], "https", "not an edge: kept");

        let mut headers = request(None);
        forwarding(false, 0).apply(&mut headers, peer(EDGE_PEER), true);
        assert_eq!(headers[X_FORWARDED_PROTO], "https");
        assert!(!headers.contains_key(X_FORWARDED_FOR));
        assert!(!headers.contains_key(X_ENVOY_EXTERNAL_ADDRESS));
    }

    #[test]
    fn internal_only_headers_are_stripped_and_edge_ones_only_at_the_edge() {
        let with_both = || {
            let mut headers = request(None);
            headers.insert("x-envoy-retry-on", HeaderValue::from_static("5xx"));
            headers.insert(
                "x-envoy-downstream-service-cluster",
                HeaderValue::from_static("spoofed"),
            );
            headers
        };
        let mut headers = with_both();
        forwarding(false, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert!(!headers.contains_key("x-envoy-retry-on"));
        assert!(headers.contains_key("x-envoy-downstream-service-cluster"));

        let mut headers = with_both();
        forwarding(true, 0).apply(&mut headers, peer(EDGE_PEER), false);
        assert!(!headers.contains_key("x-envoy-retry-on"));
        assert!(!headers.contains_key("x-envoy-downstream-service-cluster"));
    }
}
