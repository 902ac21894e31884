//! Choosing an endpoint among the candidates of one request: weighted round
//! robin (smooth, so shares hold over any window, as Envoy's EDF scheduler
//! gives), least request (N random choices or a full scan, active requests
//! weighed against the endpoint weight with Envoy's `active_request_bias`),
//! weighted random, and the consistent hashes (ring hash, maglev) that keep a
//! request hash on the same endpoint.

use std::sync::{Mutex, PoisonError};

use mesh_xds::config::{HostPort, LbPolicy};
use rand::Rng;

use super::consistent_hash::{MaglevTable, Ring};

/// What the balancer knows of one candidate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    /// Index of the endpoint in its cluster.
    pub(super) index: usize,
    /// Load-balancing weight (at least 1).
    pub(super) weight: u32,
    /// Requests in flight to it.
    pub(super) active: u32,
}

/// A cluster's balancer state.
#[derive(Debug)]
pub(super) struct Balancer {
    policy: LbPolicy,
    /// Smooth weighted round robin's current weight of each endpoint.
    current: Mutex<Vec<i64>>,
    /// The ring or table of the consistent-hash policies, over every endpoint.
    consistent: Option<Consistent>,
}

#[derive(Debug)]
enum Consistent {
    Ring(Ring),
    Maglev(MaglevTable),
}

impl Balancer {
    /// A balancer for `endpoints` (address and weight, in cluster order).
    pub(super) fn new(policy: LbPolicy, endpoints: &[(&HostPort, u32)]) -> Self {
        let consistent = match policy {
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            } => Some(Consistent::Ring(Ring::new(
                endpoints,
                minimum_ring_size,
                maximum_ring_size,
            ))),
            LbPolicy::Maglev { table_size } => {
                Some(Consistent::Maglev(MaglevTable::new(endpoints, table_size)))
            }
            _ => None,
        };
        Self {
            policy,
            current: Mutex::new(vec![0; endpoints.len()]),
            consistent,
        }
    }

    /// Picks one of `candidates`; `hash` is the request's hash for the
    /// consistent-hash policies (a random one is used without it, as in Envoy).
    pub(super) fn pick(&self, candidates: &[Candidate], hash: Option<u64>) -> Option<usize> {
        match candidates {
            [] => None,
            [only] => Some(only.index),
            _ => Some(match self.policy {
                LbPolicy::RoundRobin => self.round_robin(candidates),
                LbPolicy::LeastRequest {
                    choice_count,
                    active_request_bias,
                    full_scan,
                } => least_request(
                    candidates,
                    choice_count,
                    active_request_bias,
                    full_scan,
                    &mut rand::thread_rng(),
                ),
                LbPolicy::Random => weighted_random(candidates, &mut rand::thread_rng()),
                LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. } => {
                    let hash = hash.unwrap_or_else(rand::random);
                    let usable = |index: usize| candidates.iter().any(|c| c.index == index);
                    let chosen = match &self.consistent {
                        Some(Consistent::Ring(ring)) => ring.pick(hash, usable),
                        Some(Consistent::Maglev(table)) => table.pick(hash, usable),
                        None => None,
                    };
                    chosen.unwrap_or(candidates[0].index)
                }
            }),
        }
    }

    fn round_robin(&self, candidates: &[Candidate]) -> usize {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        smooth_weighted(&mut current, candidates.iter().map(|c| (c.index, c.weight)))
            .unwrap_or(candidates[0].index)
    }
}

/// Smooth weighted round robin over `(slot, weight)` pairs: every slot gains
/// its weight, the largest wins and pays back the total. Returns the winner.
pub(super) fn smooth_weighted(
    current: &mut [i64],
    entries: impl Iterator<Item = (usize, u32)>,
) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<(usize, i64)> = None;
    for (index, weight) in entries {
        let Some(slot) = current.get_mut(index) else {
            continue;
        };
        let weight = i64::from(weight.max(1));
        *slot += weight;
        total += weight;
        if best.is_none_or(|(_, value)| *slot > value) {
            best = Some((index, *slot));
        }
    }
    let (chosen, _) = best?;
    if let Some(slot) = current.get_mut(chosen) {
        *slot -= total;
    }
    Some(chosen)
}

/// Envoy's least request: the lowest load among `choice_count` random
/// candidates (all of them with `full_scan`), where load is active requests
/// over weight, the active count raised to `bias` when weights differ.
fn least_request(
    candidates: &[Candidate],
    choice_count: u32,
    bias: f64,
    full_scan: bool,
    rng: &mut impl Rng,
) -> usize {
    let equal_weights = candidates.windows(2).all(|w| w[0].weight == w[1].weight);
    let load = |c: Candidate| -> f64 {
        if equal_weights {
            f64::from(c.active)
        } else {
            (f64::from(c.active) + 1.0).powf(bias) / f64::from(c.weight.max(1))
        }
    };
    let better = |a: Candidate, b: Candidate| if load(b) < load(a) { b } else { a };
    if full_scan {
        return candidates
            .iter()
            .copied()
            .reduce(better)
            .map_or(candidates[0].index, |c| c.index);
    }
    let mut best = candidates[rng.gen_range(0..candidates.len())];
    for _ in 1..choice_count.max(2) {
        best = better(best, candidates[rng.gen_range(0..candidates.len())]);
    }
    best.index
}

fn weighted_random(candidates: &[Candidate], rng: &mut impl Rng) -> usize {
    let total: u64 = candidates.iter().map(|c| u64::from(c.weight.max(1))).sum();
    let mut point = rng.gen_range(0..total);
    for candidate in candidates {
        let weight = u64::from(candidate.weight.max(1));
        if point < weight {
            return candidate.index;
        }
        point -= weight;
    }
    candidates[candidates.len() - 1].index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_hosts() -> Vec<HostPort> {
        (0..3)
            .map(|i| HostPort {
                host: "127.0.0.1".to_owned(),
                port: 9000 + i,
            })
            .collect()
    }

    fn balancer(policy: LbPolicy) -> Balancer {
        let hosts = three_hosts();
        let weighted: Vec<(&HostPort, u32)> = hosts.iter().map(|h| (h, 1)).collect();
        Balancer::new(policy, &weighted)
    }

    fn candidates(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                active: 0,
            })
            .collect()
    }

    #[test]
    fn round_robin_keeps_exact_weight_shares() {
        let balancer = balancer(LbPolicy::RoundRobin);
        let candidates = candidates(&[1, 1, 2]);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[balancer.pick(&candidates, None).expect("pick")] += 1;
        }
        assert_eq!(counts, [100, 100, 200]);
    }

    #[test]
    fn round_robin_skips_endpoints_that_are_not_candidates() {
        let balancer = balancer(LbPolicy::RoundRobin);
        let mut all = candidates(&[1, 1, 2]);
        all.remove(1);
        for _ in 0..30 {
            assert_ne!(balancer.pick(&all, None), Some(1));
        }
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let mut rng = rand::thread_rng();
        let busy_and_idle = [
            Candidate {
                index: 0,
                weight: 1,
                active: 50,
            },
            Candidate {
                index: 1,
                weight: 1,
                active: 0,
            },
        ];
        let idle = (0..1000)
            .filter(|_| least_request(&busy_and_idle, 2, 1.0, false, &mut rng) == 1)
            .count();
        // Two random choices pick the busy one only when both draws are it.
        assert!(idle > 650, "idle endpoint chosen {idle} times of 1000");
    }

    #[test]
    fn least_request_full_scan_takes_the_least_loaded() {
        let mut rng = rand::thread_rng();
        let loads = [(0, 5), (1, 1), (2, 3)].map(|(index, active)| Candidate {
            index,
            weight: 1,
            active,
        });
        for _ in 0..20 {
            assert_eq!(least_request(&loads, 2, 1.0, true, &mut rng), 1);
        }
    }

    #[test]
    fn least_request_bias_weighs_active_requests_against_weight() {
        let mut rng = rand::thread_rng();
        // Unequal weights: (active+1)^bias / weight. Bias 0 ignores load: weight decides.
        let pair = [
            Candidate {
                index: 0,
                weight: 1,
                active: 0,
            },
            Candidate {
                index: 1,
                weight: 4,
                active: 8,
            },
        ];
        assert_eq!(least_request(&pair, 2, 0.0, true, &mut rng), 1);
        assert_eq!(least_request(&pair, 2, 1.0, true, &mut rng), 0);
    }

    #[test]
    fn hash_policies_pick_the_same_endpoint_for_the_same_hash() {
        for policy in [
            LbPolicy::RingHash {
                minimum_ring_size: 1024,
                maximum_ring_size: 8 << 20,
            },
            LbPolicy::Maglev { table_size: 65537 },
        ] {
            let balancer = balancer(policy);
            let all = candidates(&[1, 1, 1]);
            let spread: std::collections::BTreeSet<usize> = (0..64u64)
                .filter_map(|key| {
                    balancer.pick(&all, Some(key.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                })
                .collect();
            assert!(
                spread.len() > 1,
                "{policy:?} sent every key to one endpoint"
            );
            for key in 0..64u64 {
                let hash = Some(key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                assert_eq!(
                    balancer.pick(&all, hash),
                    balancer.pick(&all, hash),
                    "{policy:?}"
                );
            }
        }
    }

    #[test]
    fn weighted_random_follows_weights() {
        let mut rng = rand::thread_rng();
        let candidates = candidates(&[1, 3]);
        let heavy = (0..4000)
            .filter(|_| weighted_random(&candidates, &mut rng) == 1)
            .count();
        assert!((2700..3300).contains(&heavy), "heavy picked {heavy} times");
    }
}
