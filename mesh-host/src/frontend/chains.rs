//! Filter chains: a listener's per-connection choice of TLS certificate and
//! HTTP settings, made as Envoy's filter chain manager makes it when
//! `server_names` is the only match criterion.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::http_settings::HttpSettings;
use super::tls::TlsTermination;
use super::{ConnectionSettings, FrontEndConfig};

/// One filter chain: which TLS server names it serves, its TLS termination
/// and its HTTP settings.
#[derive(Debug, Clone)]
pub struct FilterChainConfig {
    /// `filter_chain_match.server_names`: exact names and `*.suffix`
    /// wildcards, compared without regard to case; empty serves any name,
    /// and connections without SNI.
    pub server_names: Vec<String>,
    /// TLS termination; plaintext when `None`.
    pub tls: Option<TlsTermination>,
    /// How requests on the chain's connections are handled.
    pub http: HttpSettings,
}

/// A listening socket with Envoy-style filter chains. Requests report the
/// chain that accepted their connection as [`RequestMeta::filter_chain`]:
/// its position in `filter_chains`, the default chain counting as the last.
///
/// [`RequestMeta::filter_chain`]: super::RequestMeta::filter_chain
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The chains, in order.
    pub filter_chains: Vec<FilterChainConfig>,
    /// The chain for connections no other chain matches; without one they
    /// are closed.
    pub default_filter_chain: Option<FilterChainConfig>,
    /// Requests learn the TLS server name their client asked for (Envoy: only
    /// when the listener runs a TLS inspector, which it adds by itself when a
    /// chain matches on server names).
    pub inspects_tls: bool,
    /// Protocol detection and connection caps.
    pub connections: ConnectionSettings,
}

impl ListenerConfig {
    /// Every chain, the default one last: the order of chain indexes.
    pub(super) fn chains(&self) -> impl Iterator<Item = &FilterChainConfig> {
        self.filter_chains
            .iter()
            .chain(self.default_filter_chain.as_ref())
    }
}

impl From<&FrontEndConfig> for ListenerConfig {
    /// The embedded front end: one chain for every connection, TLS offering
    /// `h2` and `http/1.1` when a certificate is given.
    fn from(config: &FrontEndConfig) -> Self {
        Self {
            listen: config.listen,
            filter_chains: vec![FilterChainConfig {
                server_names: Vec::new(),
                tls: config.tls.clone().map(TlsTermination::with_default_alpn),
                http: HttpSettings {
                    limits: config.limits,
                    ..HttpSettings::default()
                },
            }],
            default_filter_chain: None,
            inspects_tls: true,
            connections: config.connections.clone(),
        }
    }
}

/// How a connection's transport is known before a chain is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// Every chain is plaintext.
    Plaintext,
    /// Every chain terminates TLS.
    Tls,
    /// Both kinds: the first byte tells (a TLS handshake record or not), as
    /// Envoy's TLS inspector does.
    Sniffed,
}

/// Chain lookup by server name, built once per listener.
#[derive(Debug, Default)]
struct NameIndex {
    exact: HashMap<String, usize>,
    /// `*.example.com` is kept as `.example.com`.
    suffixes: HashMap<String, usize>,
    any: Option<usize>,
    default: Option<usize>,
}

impl NameIndex {
    /// Adds a chain; the first chain naming a server wins (Envoy rejects
    /// listeners where two chains match the same names).
    fn add(&mut self, index: usize, server_names: &[String]) {
        if server_names.is_empty() {
            self.any.get_or_insert(index);
        }
        for name in server_names {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    self.suffixes.entry(suffix.to_owned()).or_insert(index);
                }
                _ => {
                    self.exact.entry(name).or_insert(index);
                }
            }
        }
    }

    /// Envoy's order: the exact name, then wildcards from the longest
    /// suffix (`a.b.example.com` tries `*.b.example.com`, `*.example.com`,
    /// `*.com`), then a chain without server names, then the default chain.
    fn find(&self, server_name: Option<&str>) -> Option<usize> {
        if let Some(name) = server_name {
            let name = name.to_ascii_lowercase();
            if let Some(index) = self.exact.get(&name) {
                return Some(*index);
            }
            let wildcard = name
                .match_indices('.')
                .filter(|(at, _)| *at > 0)
                .find_map(|(at, _)| self.suffixes.get(&name[at..]));
            if let Some(index) = wildcard {
                return Some(*index);
            }
        }
        self.any.or(self.default)
    }
}

/// Picks the chain for each connection of a listener.
#[derive(Debug)]
pub(super) struct ChainSelection {
    plaintext: NameIndex,
    tls: NameIndex,
    transport: Transport,
}

impl ChainSelection {
    pub(super) fn new(config: &ListenerConfig) -> Self {
        let mut plaintext = NameIndex::default();
        let mut tls = NameIndex::default();
        for (index, chain) in config.filter_chains.iter().enumerate() {
            let names = if chain.tls.is_some() {
                &mut tls
            } else {
                &mut plaintext
            };
            names.add(index, &chain.server_names);
        }
        if let Some(default) = &config.default_filter_chain {
            let index = config.filter_chains.len();
            if default.tls.is_some() {
                tls.default = Some(index);
            } else {
                plaintext.default = Some(index);
            }
        }
        let has_tls = config.chains().any(|chain| chain.tls.is_some());
        let has_plaintext = config.chains().any(|chain| chain.tls.is_none());
        let transport = match (has_plaintext, has_tls) {
            (true, true) => Transport::Sniffed,
            (false, true) => Transport::Tls,
            (_, false) => Transport::Plaintext,
        };
        Self {
            plaintext,
            tls,
            transport,
        }
    }

    pub(super) fn transport(&self) -> Transport {
        self.transport
    }

    /// The chain for a connection, by its transport and (TLS) server name;
    /// `None`: close the connection.
    pub(super) fn select(&self, tls: bool, server_name: Option<&str>) -> Option<usize> {
        if tls {
            self.tls.find(server_name)
        } else {
            self.plaintext.find(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::TlsFiles;

    fn chain(names: &[&str], tls: bool) -> FilterChainConfig {
        FilterChainConfig {
            server_names: names.iter().map(|name| (*name).to_owned()).collect(),
            tls: tls.then(|| {
                TlsTermination::with_default_alpn(TlsFiles {
                    cert: "cert.pem".into(),
                    key: "key.pem".into(),
                })
            }),
            http: HttpSettings::default(),
        }
    }

    fn listener(
        chains: Vec<FilterChainConfig>,
        default: Option<FilterChainConfig>,
    ) -> ChainSelection {
        ChainSelection::new(&ListenerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            filter_chains: chains,
            default_filter_chain: default,
            inspects_tls: true,
            connections: ConnectionSettings::default(),
        })
    }

    #[test]
    fn exact_names_beat_wildcards_and_longer_suffixes_beat_shorter() {
        let selection = listener(
            vec![
                chain(&["*.com"], true),
                chain(&["*.example.com"], true),
                chain(&["www.example.com"], true),
            ],
            None,
        );
        assert_eq!(selection.select(true, Some("www.example.com")), Some(2));
        assert_eq!(selection.select(true, Some("api.example.com")), Some(1));
        assert_eq!(selection.select(true, Some("a.b.example.com")), Some(1));
        assert_eq!(selection.select(true, Some("other.com")), Some(0));
    }

    #[test]
    fn a_wildcard_does_not_match_its_own_suffix_and_case_does_not_matter() {
        let selection = listener(vec![chain(&["*.Example.com"], true)], None);
        assert_eq!(selection.select(true, Some("API.example.COM")), Some(0));
        assert_eq!(selection.select(true, Some("example.com")), None);
    }

    #[test]
    fn unmatched_names_go_to_a_chain_without_names_then_the_default() {
        let named = || chain(&["a.test"], true);
        let selection = listener(vec![named(), chain(&[], true)], Some(chain(&[], true)));
        assert_eq!(selection.select(true, Some("b.test")), Some(1));
        assert_eq!(selection.select(true, None), Some(1));

        let selection = listener(vec![named()], Some(chain(&[], true)));
        assert_eq!(selection.select(true, Some("b.test")), Some(1), "default");
        assert_eq!(selection.select(true, None), Some(1), "no SNI: default");

        let selection = listener(vec![named()], None);
        assert_eq!(selection.select(true, Some("b.test")), None, "closed");
        assert_eq!(selection.select(true, None), None, "closed");
    }

    #[test]
    fn plaintext_and_tls_chains_are_chosen_by_transport() {
        let selection = listener(vec![chain(&["a.test"], true), chain(&[], false)], None);
        assert_eq!(selection.transport(), Transport::Sniffed);
        assert_eq!(selection.select(true, Some("a.test")), Some(0));
        assert_eq!(selection.select(false, None), Some(1));
        assert_eq!(
            selection.select(true, Some("b.test")),
            None,
            "a plaintext chain never serves TLS"
        );

        assert_eq!(
            listener(vec![chain(&[], false)], None).transport(),
            Transport::Plaintext
        );
        assert_eq!(
            listener(vec![chain(&["a.test"], true)], None).transport(),
            Transport::Tls
        );
    }

    #[test]
    fn plaintext_connections_have_no_server_name_to_match() {
        let selection = listener(vec![chain(&["a.test"], false)], Some(chain(&[], false)));
        assert_eq!(selection.select(false, Some("a.test")), Some(1));
    }

    #[test]
    fn the_embedded_front_end_is_one_chain_for_everything() {
        let config = ListenerConfig::from(&FrontEndConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            limits: Default::default(),
            connections: ConnectionSettings::default(),
            drain_time: std::time::Duration::ZERO,
        });
        let selection = ChainSelection::new(&config);
        assert_eq!(selection.transport(), Transport::Plaintext);
        assert_eq!(selection.select(false, None), Some(0));
    }
}
