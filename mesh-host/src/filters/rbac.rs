//! `envoy.filters.http.rbac`: Envoy's role-based access control. The enforced rules decide;
//! the shadow rules are evaluated and logged only. A policy matches when any of its
//! permissions and any of its principals match; policies are tried in name order (Envoy keeps
//! them in a sorted map) and the first match is the one reported.

use std::net::IpAddr;
use std::sync::Arc;

use mesh_xds::config::{Cidr, Permission, Principal, RbacAction, RbacPolicy, RbacRules};

use super::chain::FilterRequest;
use crate::shared::{Failure, RequestMeta, RequestView};

/// A compiled RBAC filter (or per-route `RBACPerRoute.rbac`).
pub(super) struct RbacFilter {
    rules: Option<Arc<RbacRules>>,
    shadow_rules: Option<Arc<RbacRules>>,
}

/// What RBAC reads of a request.
struct Subject<'a> {
    view: RequestView<'a>,
    meta: &'a RequestMeta,
}

impl RbacFilter {
    pub(super) fn new(config: &mesh_xds::config::RbacFilter) -> RbacFilter {
        RbacFilter {
            rules: config.rules.clone(),
            shadow_rules: config.shadow_rules.clone(),
        }
    }

    /// Allows the request or refuses it with 403 `RBAC: access denied`.
    pub(super) fn decode(&self, request: &FilterRequest<'_>) -> Result<(), Failure> {
        if self.rules.is_none() && self.shadow_rules.is_none() {
            return Ok(());
        }
        let subject = Subject {
            view: RequestView::new(request.head),
            meta: request.meta,
        };
        if let Some(shadow) = &self.shadow_rules {
            let (allowed, policy) = decide(shadow, &subject);
            tracing::debug!(
                path = subject.view.path_and_query,
                allowed,
                policy,
                "RBAC shadow rules"
            );
        }
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        match decide(rules, &subject) {
            (true, _) => Ok(()),
            (false, policy) => {
                tracing::debug!(
                    path = subject.view.path_and_query,
                    policy,
                    "RBAC: access denied"
                );
                Err(Failure::Unauthorized)
            }
        }
    }
}

/// Whether `rules` allow the request, and the policy that matched.
fn decide<'r>(rules: &'r RbacRules, subject: &Subject<'_>) -> (bool, Option<&'r str>) {
    let matched = rules
        .policies
        .iter()
        .find(|(_, policy)| policy_matches(policy, subject))
        .map(|(name, _)| name.as_str());
    let allowed = match rules.action {
        RbacAction::Allow => matched.is_some(),
        RbacAction::Deny => matched.is_none(),
        RbacAction::Log => true,
    };
    (allowed, matched)
}

fn policy_matches(policy: &RbacPolicy, subject: &Subject<'_>) -> bool {
    policy.permissions.iter().any(|p| permission(p, subject))
        && policy.principals.iter().any(|p| principal(p, subject))
}

fn permission(rule: &Permission, subject: &Subject<'_>) -> bool {
    let meta = subject.meta;
    match rule {
        Permission::Any => true,
        Permission::Header(matcher) => matcher.matches_values(
            subject
                .view
                .header_values(&matcher.name)
                .iter()
                .map(|v| &**v),
        ),
        Permission::UrlPath(matcher) => matcher.matches(subject.view.path()),
        Permission::DestinationPort(port) => meta.local.port() == *port,
        Permission::DestinationIp(cidr) => in_range(cidr, meta.local.ip()),
        Permission::RequestedServerName(matcher) => {
            matcher.matches(meta.server_name.as_deref().unwrap_or(""))
        }
        Permission::And(all) => all.iter().all(|p| permission(p, subject)),
        Permission::Or(any) => any.iter().any(|p| permission(p, subject)),
        Permission::Not(inner) => !permission(inner, subject),
    }
}

fn principal(rule: &Principal, subject: &Subject<'_>) -> bool {
    let meta = subject.meta;
    match rule {
        Principal::Any => true,
        // Envoy: without a name, any TLS connection matches, with or without a client
        // certificate; with one, the verified certificate's identity must match.
        Principal::Authenticated(None) => meta.tls,
        Principal::Authenticated(Some(matcher)) => meta
            .peer_principal
            .as_deref()
            .is_some_and(|peer| matcher.matches(peer)),
        Principal::RemoteIp(cidr) => in_range(cidr, meta.remote_ip),
        Principal::DirectRemoteIp(cidr) => in_range(cidr, meta.peer.ip()),
        Principal::Header(matcher) => matcher.matches_values(
            subject
                .view
                .header_values(&matcher.name)
                .iter()
                .map(|v| &**v),
        ),
        Principal::UrlPath(matcher) => matcher.matches(subject.view.path()),
        Principal::And(all) => all.iter().all(|p| principal(p, subject)),
        Principal::Or(any) => any.iter().any(|p| principal(p, subject)),
        Principal::Not(inner) => !principal(inner, subject),
    }
}

/// An IPv4 client reaching a dual-stack socket arrives as an IPv4-mapped IPv6 address; Envoy
/// compares the IPv4 address.
fn in_range(cidr: &Cidr, ip: IpAddr) -> bool {
    cidr.contains(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mesh_xds::config::{HeaderMatch, HeaderMatcher, StringMatcher, StringPattern};

    use super::*;

    fn meta(peer: &str, principal: Option<&str>) -> RequestMeta {
        RequestMeta {
            tls: principal.is_some(),
            server_name: principal.map(|_| Arc::from("svc.test")),
            peer_principal: principal.map(Arc::from),
            ..RequestMeta::plaintext_from(peer)
        }
    }

    fn rules(action: RbacAction, policies: Vec<(&str, RbacPolicy)>) -> RbacFilter {
        RbacFilter {
            rules: Some(Arc::new(RbacRules {
                action,
                policies: policies
                    .into_iter()
                    .map(|(name, policy)| (name.to_owned(), policy))
                    .collect::<BTreeMap<_, _>>(),
            })),
            shadow_rules: None,
        }
    }

    fn policy(permissions: Vec<Permission>, principals: Vec<Principal>) -> RbacPolicy {
        RbacPolicy {
            permissions,
            principals,
        }
    }

    fn decide_for(filter: &RbacFilter, uri: &str, meta: &RequestMeta) -> Result<(), Failure> {
        let (mut head, ()) = http::Request::get(uri)
            .header("x-role", "admin")
            .body(())
            .expect("request")
            .into_parts();
        let upstream = crate::egress::Egress::new();
        let mut body = crate::filters::chain::test_body();
        let request = FilterRequest {
            head: &mut head,
            meta,
            cluster: None,
            routed: true,
            body: &mut body,
            upstream: &upstream,
        };
        filter.decode(&request)
    }

    fn prefix(value: &str) -> StringMatcher {
        StringMatcher {
            pattern: StringPattern::Prefix(value.to_owned()),
            ignore_case: false,
        }
    }

    #[test]
    fn deny_all_refuses_with_envoys_local_reply() {
        let filter = rules(
            RbacAction::Deny,
            vec![("all", policy(vec![Permission::Any], vec![Principal::Any]))],
        );
        let result = decide_for(&filter, "http://a.test/", &meta("192.0.2.1:4000", None));
        assert_eq!(result, Err(Failure::Unauthorized));
    }

    #[test]
    fn allow_needs_a_matching_permission_and_principal() {
        let filter = rules(
            RbacAction::Allow,
            vec![(
                "api-from-10",
                policy(
                    vec![Permission::UrlPath(prefix("/api"))],
                    vec![Principal::DirectRemoteIp(Cidr {
                        address: "10.0.0.0".parse().expect("ip"),
                        prefix_len: 8,
                    })],
                ),
            )],
        );
        let inside = meta("10.1.2.3:4000", None);
        let outside = meta("192.0.2.1:4000", None);
        assert!(decide_for(&filter, "http://a.test/api/x?y=1", &inside).is_ok());
        assert!(decide_for(&filter, "http://a.test/web", &inside).is_err());
        assert!(decide_for(&filter, "http://a.test/api", &outside).is_err());
    }

    #[test]
    fn authenticated_principal_matches_the_spiffe_id() {
        let spiffe = "spiffe://cluster.local/ns/default/sa/caller";
        let filter = rules(
            RbacAction::Allow,
            vec![(
                "caller",
                policy(
                    vec![Permission::Any],
                    vec![Principal::Authenticated(Some(StringMatcher::exact(spiffe)))],
                ),
            )],
        );
        assert!(decide_for(&filter, "http://a.test/", &meta("10.0.0.2:1", Some(spiffe))).is_ok());
        assert!(
            decide_for(
                &filter,
                "http://a.test/",
                &meta(
                    "10.0.0.2:1",
                    Some("spiffe://cluster.local/ns/default/sa/other")
                )
            )
            .is_err()
        );
        assert!(decide_for(&filter, "http://a.test/", &meta("10.0.0.2:1", None)).is_err());
    }

    #[test]
    fn not_and_or_header_port_and_server_name_compose() {
        let admin = HeaderMatcher {
            name: "x-role".to_owned(),
            matcher: HeaderMatch::String(StringMatcher::exact("admin")),
            invert_match: false,
            treat_missing_header_as_empty: false,
        };
        let filter = rules(
            RbacAction::Allow,
            vec![(
                "p",
                policy(
                    vec![Permission::And(vec![
                        Permission::Header(admin),
                        Permission::DestinationPort(8080),
                        Permission::Not(Box::new(Permission::UrlPath(prefix("/secret")))),
                        Permission::Or(vec![
                            Permission::RequestedServerName(StringMatcher::exact("svc.test")),
                            Permission::Any,
                        ]),
                    ])],
                    vec![Principal::Any],
                ),
            )],
        );
        let meta = meta("10.0.0.2:1", None);
        assert!(decide_for(&filter, "http://a.test/open", &meta).is_ok());
        assert!(decide_for(&filter, "http://a.test/secret/x", &meta).is_err());
    }

    #[test]
    fn log_action_and_shadow_rules_never_refuse() {
        let everything = || policy(vec![Permission::Any], vec![Principal::Any]);
        let log = rules(RbacAction::Log, vec![("all", everything())]);
        let meta = meta("10.0.0.2:1", None);
        assert!(decide_for(&log, "http://a.test/", &meta).is_ok());
        let shadow_only = RbacFilter {
            rules: None,
            shadow_rules: Some(Arc::new(RbacRules {
                action: RbacAction::Deny,
                policies: BTreeMap::from([("all".to_owned(), everything())]),
            })),
        };
        assert!(decide_for(&shadow_only, "http://a.test/", &meta).is_ok());
    }

    #[test]
    fn remote_ip_reads_the_client_behind_trusted_proxies() {
        let filter = rules(
            RbacAction::Deny,
            vec![(
                "blocked-client",
                policy(
                    vec![Permission::Any],
                    vec![Principal::RemoteIp(Cidr {
                        address: "203.0.113.7".parse().expect("ip"),
                        prefix_len: 32,
                    })],
                ),
            )],
        );
        let mut behind_proxy = meta("10.0.0.2:1", None);
        behind_proxy.remote_ip = "203.0.113.7".parse().expect("ip");
        assert!(decide_for(&filter, "http://a.test/", &behind_proxy).is_err());
        assert!(decide_for(&filter, "http://a.test/", &meta("203.0.113.8:1", None)).is_ok());
    }
}
