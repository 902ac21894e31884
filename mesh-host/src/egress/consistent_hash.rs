//! The two consistent hashes of Envoy's hash-based load balancers, built over
//! a cluster's endpoints with their weights. The crates that offer a hash ring
//! or a maglev table have no endpoint weights, which Envoy honours, so these
//! are built here on xxHash (Envoy's hash).
//!
//! An endpoint that may not take the request (unhealthy, ejected, tried
//! before) is stepped over: on the ring its keys go to the next endpoint
//! clockwise, in the maglev table to the next entry, so keys of the usable
//! endpoints stay where they were.

use mesh_xds::config::HostPort;
use xxhash_rust::xxh64::xxh64;

/// Ring hash: each endpoint owns points on a 64-bit ring in proportion to its
/// weight; a request goes to the first point at or after its hash.
#[derive(Debug)]
pub(super) struct Ring {
    /// (point, endpoint index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Envoy's sizing: the lightest endpoint gets at least one point, the
    /// ring has at least `minimum` and at most `maximum` points.
    pub(super) fn new(endpoints: &[(&HostPort, u32)], minimum: u64, maximum: u64) -> Self {
        let total: f64 = endpoints.iter().map(|(_, w)| f64::from(*w.max(&1))).sum();
        if endpoints.is_empty() || total == 0.0 {
            return Self { points: Vec::new() };
        }
        let lightest = endpoints
            .iter()
            .map(|(_, w)| f64::from(*w.max(&1)) / total)
            .fold(f64::INFINITY, f64::min);
        let scale = ((lightest * minimum as f64).ceil() / lightest).min(maximum as f64);
        let mut points = Vec::new();
        let mut target = 0.0;
        let mut placed = 0u64;
        for (index, (address, weight)) in endpoints.iter().enumerate() {
            target += f64::from(*weight.max(&1)) / total * scale;
            let key = address.to_string();
            let mut replica = 0u64;
            while (placed as f64) < target.floor() {
                points.push((xxh64(format!("{key}_{replica}").as_bytes(), 0), index));
                replica += 1;
                placed += 1;
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first usable endpoint at or after `hash`, going round once.
    pub(super) fn pick(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.points.partition_point(|(point, _)| *point < hash);
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|(_, index)| *index)
            .find(|index| usable(*index))
    }
}

/// Maglev: a prime-sized lookup table filled by each endpoint's own
/// permutation, turns in proportion to the weights; a request takes the entry
/// at its hash.
#[derive(Debug)]
pub(super) struct MaglevTable {
    entries: Vec<usize>,
}

impl MaglevTable {
    /// `size` must be prime (the translator checks it).
    pub(super) fn new(endpoints: &[(&HostPort, u32)], size: u64) -> Self {
        let Ok(size) = usize::try_from(size) else {
            return Self {
                entries: Vec::new(),
            };
        };
        if endpoints.is_empty() || size < 2 {
            return Self {
                entries: Vec::new(),
            };
        }
        let heaviest = endpoints.iter().map(|(_, w)| *w.max(&1)).max().unwrap_or(1);
        let permutations: Vec<(usize, usize)> = endpoints
            .iter()
            .map(|(address, _)| {
                let key = address.to_string();
                let offset = (xxh64(key.as_bytes(), 0) % size as u64) as usize;
                let skip = (xxh64(key.as_bytes(), 1) % (size as u64 - 1) + 1) as usize;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0usize; endpoints.len()];
        let mut credit = vec![0f64; endpoints.len()];
        let mut entries = vec![usize::MAX; size];
        let mut filled = 0;
        'fill: loop {
            for (index, (_, weight)) in endpoints.iter().enumerate() {
                credit[index] += f64::from(*weight.max(&1)) / f64::from(heaviest);
                while credit[index] >= 1.0 {
                    credit[index] -= 1.0;
                    let (offset, skip) = permutations[index];
                    let mut slot = (offset + next[index] * skip) % size;
                    while entries[slot] != usize::MAX {
                        next[index] += 1;
                        slot = (offset + next[index] * skip) % size;
                    }
                    entries[slot] = index;
                    next[index] += 1;
                    filled += 1;
                    if filled == size {
                        break 'fill;
                    }
                }
            }
        }
        Self { entries }
    }

    /// The entry at `hash`, or the next usable one.
    pub(super) fn pick(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let size = self.entries.len();
        if size == 0 {
            return None;
        }
        let start = (hash % size as u64) as usize;
        (0..size)
            .map(|step| self.entries[(start + step) % size])
            .find(|index| usable(*index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u16) -> Vec<HostPort> {
        (0..n)
            .map(|i| HostPort {
                host: "10.0.0.1".to_owned(),
                port: 8000 + i,
            })
            .collect()
    }

    fn weighted<'a>(hosts: &'a [HostPort], weights: &[u32]) -> Vec<(&'a HostPort, u32)> {
        hosts.iter().zip(weights.iter().copied()).collect()
    }

    fn spread(pick: impl Fn(u64) -> Option<usize>, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for key in 0..20_000u64 {
            if let Some(index) = pick(xxh64(&key.to_le_bytes(), 7)) {
                counts[index] += 1;
            }
        }
        counts
    }

    #[test]
    fn ring_hash_spreads_keys_by_weight_and_keeps_them_when_an_endpoint_goes() {
        let hosts = hosts(3);
        let ring = Ring::new(&weighted(&hosts, &[1, 1, 2]), 1024, 8 << 20);
        let counts = spread(|h| ring.pick(h, |_| true), 3);
        assert!((4000..6000).contains(&counts[0]), "{counts:?}");
        assert!((8500..11500).contains(&counts[2]), "{counts:?}");
        for key in 0..2000u64 {
            let hash = xxh64(&key.to_le_bytes(), 7);
            let before = ring.pick(hash, |_| true);
            let after = ring.pick(hash, |i| i != 1);
            if before != Some(1) {
                assert_eq!(before, after, "a key of a remaining endpoint moved");
            }
        }
    }

    #[test]
    fn maglev_fills_the_table_by_weight_and_keeps_keys_when_an_endpoint_goes() {
        let hosts = hosts(3);
        let table = MaglevTable::new(&weighted(&hosts, &[1, 1, 2]), 65537);
        assert!(table.entries.iter().all(|e| *e < 3));
        let counts = spread(|h| table.pick(h, |_| true), 3);
        assert!((4000..6000).contains(&counts[0]), "{counts:?}");
        assert!((8500..11500).contains(&counts[2]), "{counts:?}");
        for key in 0..2000u64 {
            let hash = xxh64(&key.to_le_bytes(), 7);
            let before = table.pick(hash, |_| true);
            if before != Some(1) {
                assert_eq!(before, table.pick(hash, |i| i != 1));
            }
        }
    }
}
