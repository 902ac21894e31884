//! Rate limit descriptors: the `rate_limits` actions of a route, a virtual host or a filter
//! turned into the key/value entries a request carries, as Envoy's `RateLimitPolicy`
//! populates them for the local and the global rate limit filters.

use std::net::IpAddr;

use mesh_xds::config::{RateLimitAction, RateLimitPolicy, VhRateLimits};

use super::chain::{FilterRequest, RateLimits};
use crate::shared::RequestView;

/// The `rate_limits` of the route and its virtual host that a rate limit filter reads when
/// its own configuration names none, as Envoy chooses them: the route's, with the virtual
/// host's as the route's `include_vh_rate_limits` or else the filter's `vh_rate_limits` says.
pub(super) fn route_policies<'a>(
    route: Option<&'a RateLimits>,
    virtual_host: Option<&'a RateLimits>,
    vh_rate_limits: VhRateLimits,
) -> Vec<&'a RateLimitPolicy> {
    let route_policies: &[RateLimitPolicy] = route.map_or(&[], |r| &r.policies);
    let vhost: &[RateLimitPolicy] = virtual_host.map_or(&[], |v| &v.policies);
    let option = if route.is_some_and(|r| r.include_vh) {
        VhRateLimits::Include
    } else {
        vh_rate_limits
    };
    let with_vhost = match option {
        VhRateLimits::Include => true,
        VhRateLimits::Override => route_policies.is_empty(),
        VhRateLimits::Ignore => false,
    };
    let vhost = if with_vhost { vhost } else { &[] };
    route_policies.iter().chain(vhost).collect()
}

/// One descriptor per policy whose actions all produced an entry (or were skipped), in order.
pub(super) fn descriptors<'p>(
    policies: impl IntoIterator<Item = &'p RateLimitPolicy>,
    request: &FilterRequest<'_>,
) -> Vec<Vec<(String, String)>> {
    let view = RequestView::new(request.head);
    policies
        .into_iter()
        .filter_map(|policy| {
            let mut entries = Vec::with_capacity(policy.actions.len());
            for action in &policy.actions {
                match entry(action, &view, request) {
                    Entry::Add(key, value) => entries.push((key, value)),
                    Entry::Skip => {}
                    Entry::Drop => return None,
                }
            }
            (!entries.is_empty()).then_some(entries)
        })
        .collect()
}

enum Entry {
    Add(String, String),
    Skip,
    Drop,
}

fn entry(action: &RateLimitAction, view: &RequestView<'_>, request: &FilterRequest<'_>) -> Entry {
    match action {
        RateLimitAction::GenericKey { key, value } => Entry::Add(key.clone(), value.clone()),
        RateLimitAction::RequestHeaders {
            header_name,
            key,
            skip_if_absent,
        } => match view.header_values(header_name).first() {
            Some(value) => Entry::Add(key.clone(), value.to_string()),
            None if *skip_if_absent => Entry::Skip,
            None => Entry::Drop,
        },
        RateLimitAction::RemoteAddress => Entry::Add(
            "remote_address".to_owned(),
            request.meta.remote_ip.to_canonical().to_string(),
        ),
        RateLimitAction::MaskedRemoteAddress {
            v4_prefix_len,
            v6_prefix_len,
        } => Entry::Add(
            "masked_remote_address".to_owned(),
            masked(
                request.meta.remote_ip.to_canonical(),
                *v4_prefix_len,
                *v6_prefix_len,
            ),
        ),
        RateLimitAction::DestinationCluster => match request.cluster {
            Some(cluster) => Entry::Add("destination_cluster".to_owned(), cluster.to_owned()),
            None => Entry::Drop,
        },
        RateLimitAction::HeaderValueMatch {
            key,
            value,
            expect_match,
            headers,
        } => {
            let matched = headers.iter().all(|matcher| {
                matcher.matches_values(view.header_values(&matcher.name).iter().map(|v| &**v))
            });
            if matched == *expect_match {
                Entry::Add(key.clone(), value.clone())
            } else {
                Entry::Drop
            }
        }
    }
}

/// The address masked to a prefix, written as Envoy does: `address/prefix`.
fn masked(ip: IpAddr, v4_prefix_len: u8, v6_prefix_len: u8) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4)
                & u32::MAX
                    .checked_shl(32 - u32::from(v4_prefix_len))
                    .unwrap_or(0);
            format!("{}/{v4_prefix_len}", std::net::Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6)
                & u128::MAX
                    .checked_shl(128 - u32::from(v6_prefix_len))
                    .unwrap_or(0);
            format!("{}/{v6_prefix_len}", std::net::Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_remote_address_is_written_as_a_cidr() {
        assert_eq!(
            masked("192.0.2.77".parse().expect("ip"), 24, 128),
            "192.0.2.0/24"
        );
        assert_eq!(
            masked("2001:db8::1".parse().expect("ip"), 32, 64),
            "2001:db8::/64"
        );
    }
}
