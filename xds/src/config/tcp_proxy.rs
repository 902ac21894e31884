//! TCP proxying: `envoy.filters.network.tcp_proxy` (with `connection_limit` before it).

use std::time::Duration;

use super::access_log::AccessLog;

/// A listener's TCP proxy: every accepted connection is forwarded, bytes both ways, to an
/// endpoint of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpProxy {
    /// Statistics prefix.
    pub stat_prefix: String,
    /// Where connections go.
    pub cluster: TcpCluster,
    /// A connection with no bytes either way for this long is closed (Envoy's default 1 h;
    /// `None`: never).
    pub idle_timeout: Option<Duration>,
    /// One line per finished connection.
    pub access_logs: Vec<AccessLog>,
    /// `connection_limit`'s `max_connections`: connections beyond it are closed at once.
    pub max_connections: Option<u64>,
}

/// `cluster` or `weighted_clusters` of a TCP proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpCluster {
    /// One cluster.
    Single(String),
    /// A cluster picked per connection in proportion to its weight (weights are > 0).
    Weighted(Vec<(String, u32)>),
}

impl TcpCluster {
    /// The cluster for a connection, given a random number.
    pub fn pick(&self, random: u64) -> &str {
        match self {
            TcpCluster::Single(name) => name,
            TcpCluster::Weighted(clusters) => {
                let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut point = random % total.max(1);
                for (name, weight) in clusters {
                    if point < u64::from(*weight) {
                        return name;
                    }
                    point -= u64::from(*weight);
                }
                clusters.last().map_or("", |(name, _)| name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_clusters_split_by_weight() {
        let clusters = TcpCluster::Weighted(vec![("a".into(), 1), ("b".into(), 3)]);
        let picks: Vec<&str> = (0..4).map(|r| clusters.pick(r)).collect();
        assert_eq!(picks, ["a", "b", "b", "b"]);
    }
}
