//! Choosing an endpoint among the candidates of one request: weighted round
//! robin (smooth, so shares hold over any window, as Envoy's EDF scheduler
//! gives), least request (power of two choices, active requests scaled by
//! weight) and weighted random.

use std::sync::{Mutex, PoisonError};

use mesh_xds::config::LbPolicy;
use rand::Rng;

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
}

impl Balancer {
    pub(super) fn new(policy: LbPolicy, endpoints: usize) -> Self {
        Self {
            policy,
            current: Mutex::new(vec![0; endpoints]),
        }
    }

    /// Picks one of `candidates` (never empty when called by the cluster).
    pub(super) fn pick(&self, candidates: &[Candidate]) -> Option<usize> {
        match candidates {
            [] => None,
            [only] => Some(only.index),
            _ => Some(match self.policy {
                LbPolicy::RoundRobin => self.round_robin(candidates),
                LbPolicy::LeastRequest => least_request(candidates, &mut rand::thread_rng()),
                LbPolicy::Random => weighted_random(candidates, &mut rand::thread_rng()),
            }),
        }
    }

    fn round_robin(&self, candidates: &[Candidate]) -> usize {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<(usize, i64)> = None;
        for candidate in candidates {
            let Some(slot) = current.get_mut(candidate.index) else {
                continue;
            };
            let weight = i64::from(candidate.weight.max(1));
            *slot += weight;
            total += weight;
            if best.is_none_or(|(_, value)| *slot > value) {
                best = Some((candidate.index, *slot));
            }
        }
        let chosen = best.map_or(candidates[0].index, |(index, _)| index);
        if let Some(slot) = current.get_mut(chosen) {
            *slot -= total;
        }
        chosen
    }
}

fn least_request(candidates: &[Candidate], rng: &mut impl Rng) -> usize {
    let a = candidates[rng.gen_range(0..candidates.len())];
    let b = candidates[rng.gen_range(0..candidates.len())];
    // Lower load per unit of weight wins: active_a / w_a < active_b / w_b.
    let load = |c: Candidate| u64::from(c.active) * 1_000_000 / u64::from(c.weight.max(1));
    if load(b) < load(a) { b.index } else { a.index }
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
        let balancer = Balancer::new(LbPolicy::RoundRobin, 3);
        let candidates = candidates(&[1, 1, 2]);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[balancer.pick(&candidates).expect("pick")] += 1;
        }
        assert_eq!(counts, [100, 100, 200]);
    }

    #[test]
    fn round_robin_skips_endpoints_that_are_not_candidates() {
        let balancer = Balancer::new(LbPolicy::RoundRobin, 3);
        let mut all = candidates(&[1, 1, 2]);
        all.remove(1);
        for _ in 0..30 {
            assert_ne!(balancer.pick(&all), Some(1));
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
            .filter(|_| least_request(&busy_and_idle, &mut rng) == 1)
            .count();
        // Two random choices pick the busy one only when both draws are it.
        assert!(idle > 650, "idle endpoint chosen {idle} times of 1000");
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
