//! Binding, rebinding and closing the sockets of a mesh handler's listeners as the
//! configuration changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use mesh_xds::config::{
    CertificateKeyPair, CodecType, DataSource, FilterChain, HttpConnectionManager, Listener,
    RequestNormalization, RouteSource, ServerHeaderTransformation,
};

use super::MeshHandlerConfig;
use crate::frontend::{
    BoundFrontEnd, ClientVerification, Codec, ConnectionSettings, DEFAULT_REQUEST_HEADERS_TIMEOUT,
    Detection, DrainPlan, FilterChainConfig, Forwarding, FrontEndError, Http1Rules, Http2Keepalive,
    Http2Limits, HttpSettings, ListenerConfig, PemSource, RequestLimits, RunningFrontEnd,
    ServerHeader, StreamTimeouts, TlsCertificate, TlsTermination,
};
use crate::inbound::{ListenerInbound, MeshInbound};
use crate::snapshot::{Snapshot, is_egress};
use crate::tcp_proxy::RunningTcpProxy;

/// Envoy's default `max_request_headers_kb`.
const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// The `server` header when a connection manager sets no `server_name`.
/// Envoy writes its own name there (`envoy`); mesh-host writes its own, so
/// clients see which proxy answered and never mistake it for Envoy. With
/// Envoy's default transformation (`OVERWRITE`) it replaces the component's.
const DEFAULT_SERVER_NAME: &str = "mesh-host";
/// How long to retry binding an address a replaced listener is releasing.
const REBIND_PATIENCE: Duration = Duration::from_secs(2);

struct Serving {
    /// The listener resource it was started from; a different one means
    /// rebind.
    listener: Arc<Listener>,
    running: Running,
}

/// A bound listener: an HTTP front end, or a TCP proxy.
enum Running {
    Http(RunningFrontEnd),
    Tcp(RunningTcpProxy),
}

impl Running {
    fn local_addr(&self) -> SocketAddr {
        match self {
            Running::Http(running) => running.local_addr(),
            Running::Tcp(running) => running.local_addr(),
        }
    }

    /// A TCP proxy stops accepting at once; its connections run until they finish.
    async fn shutdown(self, plan: DrainPlan) {
        match self {
            Running::Http(running) => running.shutdown(plan).await,
            Running::Tcp(running) => running.shutdown(),
        }
    }
}

/// Binds, rebinds and closes sockets as listeners appear, change and go.
/// Listeners that stay untouched keep their sockets and connections; route
/// changes need no rebind because dispatchers read the current snapshot.
pub(super) struct ListenerManager {
    mesh: Arc<MeshInbound>,
    config: MeshHandlerConfig,
    serving: tokio::sync::Mutex<HashMap<String, Serving>>,
    addrs: Mutex<HashMap<String, SocketAddr>>,
}

impl ListenerManager {
    pub(super) fn new(mesh: Arc<MeshInbound>, config: MeshHandlerConfig) -> Self {
        Self {
            mesh,
            config,
            serving: tokio::sync::Mutex::new(HashMap::new()),
            addrs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    pub(super) fn addrs(&self) -> Vec<SocketAddr> {
        let addrs = self.addrs.lock().unwrap_or_else(PoisonError::into_inner);
        // In listener-name order, so the host announces them the same way
        // every time.
        let mut named: Vec<(&String, &SocketAddr)> = addrs.iter().collect();
        named.sort_unstable_by_key(|(name, _)| *name);
        named.into_iter().map(|(_, addr)| *addr).collect()
    }

    /// The listeners of `snapshot` that should have a socket and have none.
    pub(super) fn unbound(&self, snapshot: &Snapshot) -> Vec<String> {
        let addrs = self.addrs.lock().unwrap_or_else(PoisonError::into_inner);
        snapshot
            .config
            .listeners
            .iter()
            .filter(|(name, listener)| self.wants_socket(listener) && !addrs.contains_key(*name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The egress listener is virtual unless it asks for a socket.
    fn wants_socket(&self, listener: &Listener) -> bool {
        let egress = is_egress(listener, self.config.egress_listener.as_deref());
        listener.bind_to_port.unwrap_or(!egress)
    }

    /// Makes the bound listeners those of `snapshot`; the first bind error
    /// is returned after every other listener was handled.
    pub(super) async fn reconcile(&self, snapshot: &Snapshot) -> Result<(), FrontEndError> {
        let mut serving = self.serving.lock().await;
        let wanted: HashMap<&String, &Arc<Listener>> = snapshot
            .config
            .listeners
            .iter()
            .filter(|(_, listener)| self.wants_socket(listener))
            .collect();

        let stale: Vec<String> = serving
            .iter()
            .filter(|(name, current)| {
                wanted
                    .get(name)
                    .is_none_or(|listener| front_end_changed(&current.listener, listener))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(old) = serving.remove(&name) {
                tracing::info!(listener = %name, addr = %old.running.local_addr(), "closing listener");
                self.addrs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&name);
                // The address may be wanted by the listener's replacement at once.
                tokio::spawn(old.running.shutdown(DrainPlan {
                    keep_accepting: false,
                    discourage_for: self.config.drain_time,
                    finish_within: self.config.listener_drain,
                }));
            }
        }
        // Only certificates changed (a new SDS secret version): the socket stays, new
        // connections take the new certificates, open ones keep theirs.
        for (name, current) in serving.iter_mut() {
            let Some(listener) = wanted.get(name) else {
                continue;
            };
            if key_material(&current.listener) == key_material(listener) {
                continue;
            }
            let Running::Http(running) = &current.running else {
                continue;
            };
            match frontend_config(listener).and_then(|config| running.update_certificates(&config))
            {
                Ok(()) => {
                    tracing::info!(listener = %name, "listener certificates replaced");
                    current.listener = (*listener).clone();
                }
                Err(error) => tracing::error!(
                    listener = %name,
                    "new certificates not usable, the previous ones keep serving: {error}"
                ),
            }
        }

        let mut first_error = None;
        for (name, listener) in wanted {
            if serving.contains_key(name) {
                continue;
            }
            match self.start(name, listener).await {
                Ok(running) => {
                    let addr = running.local_addr();
                    tracing::info!(listener = %name, %addr, "listener serving");
                    self.addrs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.clone(), addr);
                    serving.insert(
                        name.clone(),
                        Serving {
                            listener: listener.clone(),
                            running,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(listener = %name, "cannot bind listener: {error}");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Binds `listener` and starts serving it: a TCP proxy, or the HTTP front end whose
    /// requests run the inbound pipeline.
    async fn start(&self, name: &str, listener: &Listener) -> Result<Running, FrontEndError> {
        let Some(tcp) = &listener.tcp_proxy else {
            let mut config = frontend_config(listener)?;
            config.connections.max_connections = self
                .config
                .listener_connection_limits
                .get(&listener.name)
                .map(|limit| usize::try_from(*limit).unwrap_or(usize::MAX));
            if !listener.ignore_global_conn_limit {
                config.connections.global = self.config.global_connections.clone();
            }
            let bound = retry_in_use(|| BoundFrontEnd::bind_listener(&config)).await?;
            let dispatch = Arc::new(ListenerInbound::new(name.to_owned(), self.mesh.clone()));
            return Ok(Running::Http(bound.serve(dispatch)));
        };
        let addr = listener.address;
        let bound = retry_in_use(|| {
            std::net::TcpListener::bind(addr)
                .and_then(|socket| {
                    socket.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(socket)
                })
                .map_err(|cause| FrontEndError::Bind { addr, cause })
        })
        .await?;
        let mesh = self.mesh.clone();
        RunningTcpProxy::serve(
            bound,
            tcp.clone(),
            Arc::new(move || mesh.snapshot.load_full()),
            self.mesh.metrics.clone(),
        )
        .map(Running::Tcp)
        .map_err(|cause| FrontEndError::Bind { addr, cause })
    }

    /// Drains every listener: requests discouraged for the drain time while new
    /// connections are still taken, then `drain` for the requests in flight.
    pub(super) async fn stop_all(&self, drain: Duration) {
        let serving: Vec<Serving> = self
            .serving
            .lock()
            .await
            .drain()
            .map(|(_, serving)| serving)
            .collect();
        self.addrs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        futures::future::join_all(serving.into_iter().map(|serving| {
            serving.running.shutdown(DrainPlan {
                keep_accepting: true,
                discourage_for: self.config.drain_time,
                finish_within: drain,
            })
        }))
        .await;
    }
}

/// Runs `bind` until it gives something other than "address in use", for at most
/// [`REBIND_PATIENCE`]: a replaced listener may still be releasing the address.
async fn retry_in_use<T>(
    mut bind: impl FnMut() -> Result<T, FrontEndError>,
) -> Result<T, FrontEndError> {
    let started = tokio::time::Instant::now();
    loop {
        match bind() {
            Err(FrontEndError::Bind { cause, .. })
                if cause.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < REBIND_PATIENCE =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}

/// Whether a new version of a listener needs new sockets. Requests read their routes, HTTP
/// filters, normalisation and access logs from the snapshot in force when they arrive, so a change to
/// those is served without closing anything, and new certificates (keys, CA bundles) are
/// swapped into the running listener; anything else the front end was built from (address,
/// chains, TLS settings, connection manager settings) means a rebind.
/// The certificates, keys and client CA bundles of a listener's filter chains, in chain
/// order: what a new SDS secret version changes without a rebind.
fn key_material(listener: &Listener) -> Vec<Option<(&CertificateKeyPair, Option<&DataSource>)>> {
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .map(|chain| {
            chain.tls.as_ref().map(|tls| {
                let client_ca = tls.client_certificates.as_ref().map(|c| &c.trusted_ca);
                (&tls.certificate, client_ca)
            })
        })
        .collect()
}

fn front_end_changed(old: &Listener, new: &Listener) -> bool {
    front_end_view(old) != front_end_view(new)
}

fn front_end_view(listener: &Listener) -> Listener {
    let mut view = listener.clone();
    for chain in view
        .filter_chains
        .iter_mut()
        .chain(view.default_filter_chain.as_mut())
    {
        if let Some(tls) = chain.tls.as_mut() {
            let blank = DataSource::Inline(Arc::from(Vec::new()));
            tls.certificate = CertificateKeyPair {
                cert_chain: blank.clone(),
                private_key: blank.clone(),
            };
            if let Some(client) = tls.client_certificates.as_mut() {
                client.trusted_ca = blank;
            }
        }
        chain.http.http_filters.clear();
        chain.http.normalization = RequestNormalization::default();
        chain.http.access_logs.clear();
        chain.http.route = RouteSource::Rds {
            route_config_name: String::new(),
        };
    }
    view
}

/// The front end of a listener: each filter chain with its TLS termination
/// and its connection manager's settings.
fn frontend_config(listener: &Listener) -> Result<ListenerConfig, FrontEndError> {
    let chain = |chain: &FilterChain| {
        Ok(FilterChainConfig {
            server_names: chain.server_names.clone(),
            tls: tls_termination(chain)?,
            http: http_settings(listener, &chain.http)?,
        })
    };
    Ok(ListenerConfig {
        listen: listener.address,
        filter_chains: listener
            .filter_chains
            .iter()
            .map(chain)
            .collect::<Result<_, FrontEndError>>()?,
        default_filter_chain: listener
            .default_filter_chain
            .as_ref()
            .map(chain)
            .transpose()?,
        inspects_tls: listener.inspects_tls,
        connections: ConnectionSettings {
            detection: Detection {
                timeout: listener.listener_filters_timeout,
                continue_on_timeout: listener.continue_on_listener_filters_timeout,
            },
            // Caps come from outside the listener resource (see `ListenerManager::bind`).
            max_connections: None,
            global: None,
        },
    })
}

fn tls_termination(chain: &FilterChain) -> Result<Option<TlsTermination>, FrontEndError> {
    let Some(tls) = &chain.tls else {
        return Ok(None);
    };
    let client_verification = tls
        .client_certificates
        .as_ref()
        .map(|client| ClientVerification {
            trusted_ca: pem_source(&client.trusted_ca),
            required: client.required,
            subject_alt_names: client.subject_alt_names.clone(),
        });
    Ok(Some(TlsTermination {
        certificate: TlsCertificate {
            cert: pem_source(&tls.certificate.cert_chain),
            key: pem_source(&tls.certificate.private_key),
        },
        alpn_protocols: tls
            .alpn_protocols
            .iter()
            .map(|protocol| protocol.as_bytes().to_vec())
            .collect(),
        client_verification,
    }))
}

fn pem_source(source: &DataSource) -> PemSource {
    match source {
        DataSource::Filename(path) => PemSource::File(path.clone()),
        DataSource::Inline(bytes) => PemSource::Inline(bytes.clone()),
    }
}

/// The connection manager's settings as the front end applies them.
fn http_settings(
    listener: &Listener,
    manager: &HttpConnectionManager,
) -> Result<HttpSettings, FrontEndError> {
    let connection = &manager.connection;
    let flood = &connection.http2_flood_limits;
    let header_kb = Some(manager.max_request_headers_kb)
        .filter(|kb| *kb > 0)
        .unwrap_or(DEFAULT_MAX_REQUEST_HEADERS_KB);
    let server_name = manager
        .server_name
        .as_deref()
        .unwrap_or(DEFAULT_SERVER_NAME);
    let server_value = HeaderValue::from_str(server_name).map_err(|_| {
        FrontEndError::Invalid(format!(
            "listener {}: server_name {server_name:?} is not a valid header value",
            listener.name
        ))
    })?;
    Ok(HttpSettings {
        codec: match manager.codec {
            CodecType::Auto => Codec::Auto,
            CodecType::Http1 => Codec::Http1,
            CodecType::Http2 => Codec::Http2,
        },
        limits: RequestLimits {
            max_request_header_bytes: header_kb as usize * 1024,
            ..RequestLimits::default()
        },
        timeouts: StreamTimeouts {
            idle: manager.stream_idle_timeout,
            request: manager.request_timeout,
        },
        forwarding: Some(Forwarding {
            use_remote_address: manager.use_remote_address,
            xff_num_trusted_hops: manager.xff_num_trusted_hops,
            skip_xff_append: manager.skip_xff_append,
        }),
        server_header: match manager.server_header_transformation {
            ServerHeaderTransformation::Overwrite => ServerHeader::Overwrite(server_value),
            ServerHeaderTransformation::AppendIfAbsent => {
                ServerHeader::AppendIfAbsent(server_value)
            }
            ServerHeaderTransformation::PassThrough => ServerHeader::PassThrough,
        },
        idle_timeout: connection.idle_timeout,
        max_connection_duration: connection.max_connection_duration,
        request_headers_timeout: Some(
            connection
                .request_headers_timeout
                .unwrap_or(DEFAULT_REQUEST_HEADERS_TIMEOUT),
        ),
        http1_rules: Http1Rules {
            accept_http_10: connection.accept_http_10,
            allow_chunked_length: connection.allow_chunked_length,
            allow_custom_methods: connection.allow_custom_methods,
        },
        http2_keepalive: connection.http2_keepalive.map(|keepalive| Http2Keepalive {
            interval: keepalive.interval,
            timeout: keepalive.timeout,
        }),
        http2_max_concurrent_streams: connection.http2_max_concurrent_streams,
        http2_limits: Http2Limits {
            max_outbound_control_frames: flood.max_outbound_control_frames,
            max_consecutive_inbound_frames_with_empty_payload: flood
                .max_consecutive_inbound_frames_with_empty_payload,
            max_inbound_priority_frames_per_stream: flood.max_inbound_priority_frames_per_stream,
            max_inbound_window_update_frames_per_data_frame_sent: flood
                .max_inbound_window_update_frames_per_data_frame_sent,
        },
    })
}

#[cfg(test)]
mod tests {
    use mesh_xds::bootstrap::{Bootstrap, Format};

    use super::*;

    fn listener(manager_settings: &str) -> Listener {
        let yaml = format!(
            r#"
static_resources:
  listeners:
  - name: l1
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l1
          {manager_settings}
          route_config: {{ virtual_hosts: [] }}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
"#
        );
        let bootstrap = Bootstrap::parse(&yaml, Format::Yaml, "test.yaml").expect("bootstrap");
        let listener = bootstrap.static_config.listeners["l1"].clone();
        Listener::clone(&listener)
    }

    #[test]
    fn filters_and_routes_change_without_a_rebind_settings_do_not() {
        let plain = listener("");
        let mut filtered = plain.clone();
        filtered.filter_chains[0].http.http_filters = vec![mesh_xds::config::HttpFilter {
            name: "envoy.filters.http.cors".into(),
            disabled: false,
            config: mesh_xds::config::HttpFilterConfig::Cors,
        }];
        filtered.filter_chains[0].http.normalization.merge_slashes = true;
        assert!(!front_end_changed(&plain, &filtered));
        assert!(front_end_changed(&plain, &listener("codec_type: HTTP2")));
    }

    fn settings(manager_settings: &str) -> Result<HttpSettings, FrontEndError> {
        let listener = listener(manager_settings);
        http_settings(&listener, &listener.filter_chains[0].http)
    }

    #[test]
    fn defaults_are_envoys_with_mesh_host_as_server_name() {
        let defaults = settings("").expect("valid");
        assert_eq!(defaults.codec, Codec::Auto);
        assert_eq!(
            defaults.timeouts,
            StreamTimeouts {
                idle: Some(Duration::from_secs(300)),
                request: None
            }
        );
        assert_eq!(defaults.limits.max_request_header_bytes, 60 * 1024);
        assert_eq!(defaults.forwarding, Some(Forwarding::default()));
        assert_eq!(
            defaults.server_header,
            ServerHeader::Overwrite(HeaderValue::from_static("mesh-host"))
        );
    }

    #[test]
    fn connection_manager_settings_reach_the_front_end() {
        let set = settings(
            "codec_type: HTTP2\n          stream_idle_timeout: 0s\n          request_timeout: 2s\n          use_remote_address: true\n          xff_num_trusted_hops: 1\n          server_name: edge\n          server_header_transformation: APPEND_IF_ABSENT",
        )
        .expect("valid");
        assert_eq!(set.codec, Codec::Http2);
        assert_eq!(
            set.timeouts,
            StreamTimeouts {
                idle: None,
                request: Some(Duration::from_secs(2))
            },
            "0s disables the idle timeout"
        );
        assert_eq!(
            set.forwarding,
            Some(Forwarding {
                use_remote_address: true,
                xff_num_trusted_hops: 1,
                skip_xff_append: false,
            })
        );
        assert_eq!(
            set.server_header,
            ServerHeader::AppendIfAbsent(HeaderValue::from_static("edge"))
        );
    }

    #[test]
    fn a_server_name_that_is_no_header_value_is_refused_by_listener() {
        let error = settings("server_name: \"bad\\nname\"").expect_err("newline");
        assert!(
            matches!(&error, FrontEndError::Invalid(message) if message.contains("listener l1")),
            "{error}"
        );
    }
}
