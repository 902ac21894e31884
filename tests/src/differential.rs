//! Differential testing against a real Envoy: one bootstrap template for both
//! proxies, a case model (a request and what Envoy does with it), and the
//! comparison of what each proxy did.
//!
//! Both proxies forward to the same [`EchoUpstream`]s, so what reached the
//! upstream (cluster, method, path, `Host`, headers) can be compared directly.
//! Each case is checked twice: Envoy against the case's written expectation
//! ([`unexpected`]), which keeps the cases honest documentation of Envoy's
//! rules, and mesh-host against Envoy ([`differences`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, Request, header};
use hyper_util::rt::TokioIo;

use mesh_xds::config::ResourceKind;
use mesh_xds::test_control_plane::{ReceivedRequest, Snapshot, TestControlPlane};
use tempfile::TempDir;

use crate::bootstrap::{ads_header, http_listener, xds_cluster};
use crate::client;
use crate::echo_upstream::{Echo, EchoUpstream};
use crate::envoy::Envoy;
use crate::process::MeshHost;
use crate::tls::TestCert;

/// Request headers a proxy adds by itself, never because the route configuration
/// says so; they are not compared.
pub const IGNORED_REQUEST_HEADERS: &[&str] = &[
    // Envoy generates a random id per request (`generate_request_id` defaults on).
    "x-request-id",
    // Envoy sets the downstream scheme (HCM `ConnectionManagerUtility::mutateRequestHeaders`).
    "x-forwarded-proto",
    // Envoy tells the upstream the route timeout (router, unless `suppress_envoy_headers`).
    "x-envoy-expected-rq-timeout-ms",
    // Framing and client identity: HTTP/1.1 connection details, not routing.
    "user-agent",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// Response headers a proxy adds by itself: Envoy's upstream timing
/// (`x-envoy-upstream-service-time`, router) and mesh-host's reason for a local
/// reply (`x-mesh-host-reason`). Only `x-`, `access-control-` and `grpc-` headers,
/// `www-authenticate` and `Location` are compared at all: `server`, `date`, `content-type` and
/// `content-length` of local replies are each proxy's own (Envoy's say
/// `server: envoy`).
pub const IGNORED_RESPONSE_HEADERS: &[&str] =
    &["x-envoy-upstream-service-time", "x-mesh-host-reason"];

/// A listener of the generated bootstrap: its name, port and inline
/// `RouteConfiguration` (Envoy YAML, unindented).
pub struct ListenerSpec<'a> {
    /// Listener name; cases address listeners by it ([`Req::on`]).
    pub name: &'a str,
    /// Loopback port to listen on.
    pub port: u16,
    /// The `route_config` of its HTTP connection manager.
    pub routes: &'a str,
    /// `http_filters` entries before the router (Envoy YAML list items, unindented).
    pub filters: &'a str,
    /// TLS termination, verifying client certificates when they are offered.
    pub tls: Option<&'a ListenerTls>,
    /// More `HttpConnectionManager` fields (Envoy YAML, unindented).
    pub manager: &'a str,
}

/// A listener's certificate and the CA bundle its client certificates must chain to.
pub struct ListenerTls {
    /// Server certificate (PEM file).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Trusted client CAs (PEM bundle).
    pub client_ca: PathBuf,
}

/// A cluster of the bootstrap that is a service a filter calls (an authorization server,
/// a JWKS endpoint, a rate-limit service) rather than an echo upstream.
pub struct ServiceCluster<'a> {
    /// The cluster's name.
    pub name: &'a str,
    /// Its one endpoint.
    pub addr: SocketAddr,
    /// Spoken to over HTTP/2 (gRPC services).
    pub http2: bool,
}

/// The one bootstrap both proxies load, so their configurations cannot drift:
/// `listeners` with an HTTP connection manager each (their filters, then the
/// router), and one STATIC cluster per upstream (named after its cluster,
/// endpoint its address).
pub fn bootstrap(listeners: &[ListenerSpec<'_>], upstreams: &[EchoUpstream]) -> String {
    bootstrap_with_services(listeners, upstreams, &[])
}

/// [`bootstrap`], with the clusters of the services the listeners' filters call.
pub fn bootstrap_with_services(
    listeners: &[ListenerSpec<'_>],
    upstreams: &[EchoUpstream],
    services: &[ServiceCluster<'_>],
) -> String {
    let mut out = String::from(
        "node: { id: differential, cluster: differential }\nstatic_resources:\n  listeners:\n",
    );
    for listener in listeners {
        let tls = listener.tls.map_or_else(String::new, |tls| {
            format!(
                r#"
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{{ certificate_chain: {{ filename: "{cert}" }}, private_key: {{ filename: "{key}" }} }}]
            validation_context: {{ trusted_ca: {{ filename: "{ca}" }} }}"#,
                cert = tls.cert.display(),
                key = tls.key.display(),
                ca = tls.client_ca.display(),
            )
        });
        // A TLS inspector lets filters see the server name the client asked for.
        let inspector = if listener.tls.is_some() {
            "\n    listener_filters: [{ name: envoy.filters.listener.tls_inspector, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector } }]"
        } else {
            ""
        };
        out.push_str(&format!(
            r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}{inspector}
    filter_chains:
    - {tls}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          codec_type: AUTO
{manager}          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
{routes}"#,
            name = listener.name,
            port = listener.port,
            filters = indent(listener.filters, 10),
            manager = indent(listener.manager, 10),
            routes = indent(listener.routes, 12),
        ));
    }
    out.push_str("  clusters:\n");
    for upstream in upstreams {
        out.push_str(&format!(
            r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#,
            name = upstream.cluster,
            port = upstream.addr.port(),
        ));
    }
    for service in services {
        let protocol = if service.http2 {
            r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }"#
        } else {
            ""
        };
        out.push_str(&format!(
            r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s{protocol}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}
"#,
            name = service.name,
            ip = service.addr.ip(),
            port = service.addr.port(),
        ));
    }
    out
}

/// Indents every non-blank line of `text` by `spaces`.
fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| format!("{pad}{line}\n"))
        .collect()
}

/// The request of a case, sent over a fresh HTTP/1.1 (or h2c) connection.
pub struct Req {
    /// Sent over h2c (prior knowledge) instead of HTTP/1.1: `Host` becomes
    /// `:authority`.
    pub http2: bool,
    /// The listener it is sent to.
    pub listener: &'static str,
    /// The method.
    pub method: &'static str,
    /// Origin-form path, or an absolute URI (absolute-form request target).
    pub target: &'static str,
    /// The `Host` header.
    pub host: &'static str,
    /// Further headers, in order (a name may repeat).
    pub headers: Vec<(&'static str, &'static str)>,
    /// Over TLS (HTTP/1.1 or h2 by ALPN), presenting the named client certificate
    /// of the run's [`Identities`] (`Some(None)`: none).
    pub tls: Option<Option<&'static str>>,
    /// How long to wait before sending it (refills, expiries).
    pub pause: Duration,
    /// The request body (empty: none).
    pub body: &'static str,
}

/// `GET target` with `Host: host`, to the listener named `main`.
pub fn get(host: &'static str, target: &'static str) -> Req {
    Req {
        http2: false,
        listener: "main",
        method: "GET",
        target,
        host,
        headers: Vec::new(),
        tls: None,
        pause: Duration::ZERO,
        body: "",
    }
}

impl Req {
    /// Sends it over TLS presenting `client`'s certificate (`None`: no certificate).
    pub fn tls_as(mut self, client: Option<&'static str>) -> Self {
        self.tls = Some(client);
        self
    }

    /// Waits `ms` milliseconds before sending it.
    pub fn after_ms(mut self, ms: u64) -> Self {
        self.pause = Duration::from_millis(ms);
        self
    }

    /// A gRPC call (`POST`, `content-type: application/grpc`, `te: trailers`) over h2c.
    pub fn grpc(self) -> Self {
        self.method("POST")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .h2c()
    }

    /// Adds a header line.
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the method.
    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    /// Sends it over h2c (prior knowledge).
    pub fn h2c(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Sends `body` with it.
    pub fn body(mut self, body: &'static str) -> Self {
        self.body = body;
        self
    }

    /// Sends it to the listener named `listener`.
    pub fn on(mut self, listener: &'static str) -> Self {
        self.listener = listener;
        self
    }
}

/// What Envoy does with a forwarded request, as far as the case states it.
pub struct Fwd {
    /// The cluster that must answer.
    pub cluster: &'static str,
    /// Path and query at the upstream; `None`: the request's target, unchanged.
    pub path: Option<&'static str>,
    /// `Host` at the upstream; `None`: the request's, unchanged.
    pub host: Option<&'static str>,
    /// Request headers at the upstream (values joined with `,`; `None` = absent).
    pub headers: Vec<(&'static str, Option<&'static str>)>,
}

/// Forwarded to `cluster`, path and `Host` unchanged.
pub fn to(cluster: &'static str) -> Fwd {
    Fwd {
        cluster,
        path: None,
        host: None,
        headers: Vec::new(),
    }
}

impl Fwd {
    /// The path and query the upstream must see.
    pub fn path(mut self, path: &'static str) -> Self {
        self.path = Some(path);
        self
    }

    /// The `Host` the upstream must see.
    pub fn host(mut self, host: &'static str) -> Self {
        self.host = Some(host);
        self
    }

    /// A request header the upstream must see with this value (`None`: absent).
    pub fn header(mut self, name: &'static str, value: Option<&'static str>) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Envoy's outcome for a case.
pub enum Expect {
    /// Forwarded to an echo upstream (200).
    Forward(Fwd),
    /// `direct_response`: status and body.
    Direct(u16, &'static str),
    /// Redirect: status and `Location`.
    Redirect(u16, &'static str),
    /// A local reply with this status (404 no route, 503 no cluster); its body is
    /// each proxy's own wording and is not compared.
    Local(u16),
    /// A local reply whose status and body are Envoy's own (a filter's refusal:
    /// `RBAC: access denied`, `local_rate_limited`, `fault filter abort`), compared.
    Reply(u16, &'static str),
}

impl From<Fwd> for Expect {
    fn from(forward: Fwd) -> Self {
        Self::Forward(forward)
    }
}

/// A request and what Envoy does with it.
pub struct Case {
    /// Unique name, the rule it shows.
    pub name: &'static str,
    /// The request.
    pub request: Req,
    /// Envoy's outcome.
    pub expect: Expect,
    /// Response headers Envoy sends (values joined; `None` = absent).
    pub response: Vec<(&'static str, Option<&'static str>)>,
}

/// A case named `name`.
pub fn case(name: &'static str, request: Req, expect: impl Into<Expect>) -> Case {
    Case {
        name,
        request,
        expect: expect.into(),
        response: Vec::new(),
    }
}

impl Case {
    /// A response header Envoy sends with this value (`None`: absent).
    pub fn response(mut self, name: &'static str, value: Option<&'static str>) -> Self {
        self.response.push((name, value));
        self
    }
}

/// What reached an upstream, without [`IGNORED_REQUEST_HEADERS`].
///
/// The upstream HTTP version is not part of it: mesh-host speaks HTTP/2 to an
/// upstream for every gRPC request, Envoy the cluster's protocol (HTTP/1.1
/// unless its `HttpProtocolOptions` say otherwise); that is egress, not routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The cluster that answered.
    pub cluster: String,
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The authority: the `Host` header, or `:authority` over HTTP/2.
    pub host: Option<String>,
    /// Header name -> values joined with `,` in the order received.
    pub headers: BTreeMap<String, String>,
}

impl From<Echo> for Received {
    fn from(echo: Echo) -> Self {
        let mut headers = BTreeMap::new();
        for (name, value) in &echo.headers {
            // `host` is compared as the authority (`Received::host`): an HTTP/1.1
            // upstream request carries it in `Host`, an HTTP/2 one in `:authority`.
            if name == "host" || IGNORED_REQUEST_HEADERS.contains(&name.as_str()) {
                continue;
            }
            headers
                .entry(name.clone())
                .and_modify(|joined: &mut String| {
                    joined.push(',');
                    joined.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        Self {
            cluster: echo.cluster,
            method: echo.method,
            path: echo.path,
            host: echo.host,
            headers,
        }
    }
}

/// What one proxy did with one request: the parts the two must agree on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Response status.
    pub status: u16,
    /// The request as an echo upstream received it; `None` when the proxy answered.
    pub upstream: Option<Received>,
    /// `x-` response headers (values joined) without [`IGNORED_RESPONSE_HEADERS`].
    pub response_headers: BTreeMap<String, String>,
    /// The `Location` header.
    pub location: Option<String>,
    /// The body of an answer no upstream gave (a direct response or local reply).
    pub body: Option<String>,
}

fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The certificates of a run over TLS: the server's (trusted by the client) and
/// the client identities cases present by name.
#[derive(Default)]
pub struct Identities {
    /// The listeners' server certificate.
    pub server: Option<TestCert>,
    /// Client certificates by name.
    pub clients: HashMap<&'static str, TestCert>,
}

/// Sends `request` over TLS to `addr`, HTTP/1.1 or h2 as the request says.
async fn over_tls(
    addr: SocketAddr,
    request: Request<client::TestBody>,
    http2: bool,
    client: Option<&'static str>,
    identities: &Identities,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let server = identities
        .server
        .as_ref()
        .ok_or("a TLS case needs the run's server certificate")?;
    let identity = match client {
        Some(name) => Some(
            identities
                .clients
                .get(name)
                .ok_or_else(|| format!("no client identity named {name}"))?,
        ),
        None => None,
    };
    let alpn: &[&[u8]] = if http2 { &[b"h2"] } else { &[b"http/1.1"] };
    let (stream, _) = server
        .try_connect_as(addr, "localhost", alpn, identity)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let io = TokioIo::new(stream);
    if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP/1.1: {e}"))?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))
    }
}

/// Sends `request` to `addr` and records the outcome; `Err` when the exchange
/// itself fails (the caller reports the case and goes on).
pub async fn observe(addr: SocketAddr, request: &Req) -> Result<Outcome, String> {
    observe_with(addr, request, &Identities::default()).await
}

/// [`observe`], with the certificates TLS cases use.
pub async fn observe_with(
    addr: SocketAddr,
    request: &Req,
    identities: &Identities,
) -> Result<Outcome, String> {
    let mut builder = Request::builder().method(request.method);
    builder = if request.http2 {
        // HTTP/2 carries the authority in the target, never in `Host`.
        builder.uri(format!("http://{}{}", request.host, request.target))
    } else {
        builder
            .uri(request.target)
            .header(header::HOST, request.host)
    };
    for (name, value) in &request.headers {
        builder = builder.header(*name, *value);
    }
    let body = if request.body.is_empty() {
        client::empty()
    } else {
        client::full(request.body)
    };
    let built = builder.body(body).map_err(|e| format!("request: {e}"))?;
    let exchange = async {
        let response = match request.tls {
            Some(client) => over_tls(addr, built, request.http2, client, identities).await?,
            None if request.http2 => client::h2c(addr, built).await,
            None => client::http1(addr, built).await,
        };
        Ok::<_, String>(client::read_all(response).await)
    };
    let (status, headers, body, trailers) = tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "no answer within 20 s".to_owned())??;
    let upstream = Echo::parse(&body).map(Received::from);
    let compared = |name: &str| {
        (name.starts_with("x-")
            || name.starts_with("access-control-")
            || name.starts_with("grpc-")
            || name == "www-authenticate")
            && !IGNORED_RESPONSE_HEADERS.contains(&name)
    };
    let response_headers = headers
        .keys()
        .chain(trailers.iter().flat_map(|t| t.keys()))
        .map(http::HeaderName::as_str)
        .filter(|name| compared(name))
        .filter_map(|name| {
            let value = joined(&headers, name)
                .or_else(|| trailers.as_ref().and_then(|t| joined(t, name)))?;
            Some((name.to_owned(), value))
        })
        .collect();
    Ok(Outcome {
        status: status.as_u16(),
        body: upstream
            .is_none()
            .then(|| String::from_utf8_lossy(&body).into_owned()),
        upstream,
        response_headers,
        location: joined(&headers, header::LOCATION.as_str()),
    })
}

/// The parts of `outcome` compared for a case expected to end as `expect`: the
/// body only for direct responses and filters' replies (the router's local
/// replies word their bodies each their own way; forwarded answers are compared
/// through the echo).
pub fn comparable(outcome: &Outcome, expect: &Expect) -> Outcome {
    let mut outcome = outcome.clone();
    if !matches!(expect, Expect::Direct(..) | Expect::Reply(..)) {
        outcome.body = None;
    }
    outcome
}

/// Every way `mesh` differs from `envoy`, one line each; empty when they agree.
pub fn differences(envoy: &Outcome, mesh: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, e: String, m: String| {
        if e != m {
            out.push(format!("{what}: envoy {e}, mesh-host {m}"));
        }
    };
    field("status", envoy.status.to_string(), mesh.status.to_string());
    match (&envoy.upstream, &mesh.upstream) {
        (Some(e), Some(m)) => {
            field("cluster", e.cluster.clone(), m.cluster.clone());
            field("method", e.method.clone(), m.method.clone());
            field("path", e.path.clone(), m.path.clone());
            field("host", format!("{:?}", e.host), format!("{:?}", m.host));
            let names: BTreeSet<&String> = e.headers.keys().chain(m.headers.keys()).collect();
            for name in names {
                field(
                    &format!("request header {name}"),
                    format!("{:?}", e.headers.get(name)),
                    format!("{:?}", m.headers.get(name)),
                );
            }
        }
        (e, m) => field(
            "upstream",
            format!("{:?}", e.as_ref().map(|u| &u.cluster)),
            format!("{:?}", m.as_ref().map(|u| &u.cluster)),
        ),
    }
    let names: BTreeSet<&String> = envoy
        .response_headers
        .keys()
        .chain(mesh.response_headers.keys())
        .collect();
    for name in names {
        field(
            &format!("response header {name}"),
            format!("{:?}", envoy.response_headers.get(name)),
            format!("{:?}", mesh.response_headers.get(name)),
        );
    }
    field(
        "location",
        format!("{:?}", envoy.location),
        format!("{:?}", mesh.location),
    );
    field(
        "body",
        format!("{:?}", envoy.body),
        format!("{:?}", mesh.body),
    );
    out
}

/// Every way Envoy's `outcome` differs from what `case` says Envoy does.
pub fn unexpected(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, want: String, got: String| {
        if want != got {
            out.push(format!("{what}: expected {want}, Envoy gave {got}"));
        }
    };
    let show = |value: Option<&str>| format!("{value:?}");
    match &case.expect {
        Expect::Forward(want) => {
            check("status", "200".into(), outcome.status.to_string());
            match &outcome.upstream {
                None => check("cluster", want.cluster.into(), "no upstream".into()),
                Some(got) => {
                    check("cluster", want.cluster.into(), got.cluster.clone());
                    check("method", case.request.method.into(), got.method.clone());
                    let path = want.path.unwrap_or(case.request.target);
                    check("path", path.into(), got.path.clone());
                    let host = want.host.unwrap_or(case.request.host);
                    check("host", show(Some(host)), show(got.host.as_deref()));
                    for (name, value) in &want.headers {
                        let got = got.headers.get(*name).map(String::as_str);
                        check(&format!("request header {name}"), show(*value), show(got));
                    }
                }
            }
        }
        Expect::Direct(status, body) => {
            check("status", status.to_string(), outcome.status.to_string());
            check("body", show(Some(body)), show(outcome.body.as_deref()));
        }
        Expect::Redirect(status, location) => {
            check("status", status.to_string(), outcome.status.to_string());
            let got = outcome.location.as_deref();
            check("location", show(Some(location)), show(got));
        }
        Expect::Local(status) => {
            check("status", status.to_string(), outcome.status.to_string());
            check("upstream", "None".into(), format!("{:?}", outcome.upstream));
        }
        Expect::Reply(status, body) => {
            check("status", status.to_string(), outcome.status.to_string());
            check("upstream", "None".into(), format!("{:?}", outcome.upstream));
            check("body", show(Some(body)), show(outcome.body.as_deref()));
        }
    }
    for (name, value) in &case.response {
        let got = outcome.response_headers.get(*name).map(String::as_str);
        check(&format!("response header {name}"), show(*value), show(got));
    }
    out
}

/// What a run of cases found: Envoy departing from the written expectations,
/// and mesh-host departing from Envoy. One line per difference, prefixed with
/// the case name.
#[derive(Debug, Default)]
pub struct Report {
    /// Where Envoy did not do what the case says.
    pub envoy_unexpected: Vec<String>,
    /// Where mesh-host did not do what Envoy did.
    pub disagreements: Vec<String>,
}

impl Report {
    /// Whether both lists are empty.
    pub fn is_clean(&self) -> bool {
        self.envoy_unexpected.is_empty() && self.disagreements.is_empty()
    }
}

/// Sends every case to both proxies (listeners by name) and compares; every
/// case runs, so one report lists every rule that fails.
pub async fn run(
    cases: &[Case],
    envoy: &HashMap<&str, SocketAddr>,
    mesh: &HashMap<&str, SocketAddr>,
) -> Report {
    run_with(cases, envoy, mesh, &Identities::default()).await
}

/// [`run`], with the certificates TLS cases use.
pub async fn run_with(
    cases: &[Case],
    envoy: &HashMap<&str, SocketAddr>,
    mesh: &HashMap<&str, SocketAddr>,
    identities: &Identities,
) -> Report {
    let mut report = Report::default();
    for case in cases {
        if !case.request.pause.is_zero() {
            tokio::time::sleep(case.request.pause).await;
        }
        let listener = case.request.listener;
        let (Some(envoy_addr), Some(mesh_addr)) = (envoy.get(listener), mesh.get(listener)) else {
            report
                .envoy_unexpected
                .push(format!("{}: no listener named {listener}", case.name));
            continue;
        };
        let from_envoy = observe_with(*envoy_addr, &case.request, identities).await;
        let from_mesh = observe_with(*mesh_addr, &case.request, identities).await;
        match &from_envoy {
            Ok(outcome) => {
                let problems = unexpected(case, outcome);
                let name = case.name;
                report
                    .envoy_unexpected
                    .extend(problems.iter().map(|problem| format!("{name}: {problem}")));
                if !problems.is_empty() {
                    let line = format!("{name}: Envoy's outcome: {outcome:?}");
                    report.envoy_unexpected.push(line);
                }
            }
            Err(error) => report
                .envoy_unexpected
                .push(format!("{}: Envoy: {error}", case.name)),
        }
        match (&from_envoy, &from_mesh) {
            (Ok(e), Ok(m)) => {
                let (e, m) = (comparable(e, &case.expect), comparable(m, &case.expect));
                let name = case.name;
                report.disagreements.extend(
                    differences(&e, &m)
                        .into_iter()
                        .map(|d| format!("{name}: {d}")),
                );
            }
            (_, Err(error)) => report
                .disagreements
                .push(format!("{}: mesh-host: {error}", case.name)),
            (Err(_), Ok(_)) => {}
        }
    }
    report
}

/// Envoy as an ADS client of the test control plane on `plane_port`, announcing `node`:
/// listeners, routes, clusters and endpoints all come from the control plane (state of the
/// world). `None` only when a missing Envoy may be skipped (see `peers`).
pub async fn envoy_over_ads(node: &str, plane_port: u16) -> Option<Envoy> {
    let bootstrap = format!(
        "{}\nstatic_resources:\n  clusters:{}\n",
        ads_header(node, true),
        xds_cluster(plane_port)
    );
    Envoy::start(&bootstrap).await
}

/// mesh-host as an ADS client of the test control plane, with its bootstrap's directory
/// (kept as long as the process runs).
pub struct AdsMeshHost {
    /// The process, killed on drop.
    pub host: MeshHost,
    _dir: TempDir,
}

/// Cluster of the workload every ADS mesh-host gets when a test binds none (the command line
/// needs one); no route names it.
const UNUSED_WORKLOAD_CLUSTER: &str = "ads-unused";

/// Starts mesh-host as an ADS client of the control plane on `plane_port`, announcing
/// `node`, with each `(cluster, component)` of `workloads` bound. Its bootstrap holds one
/// static listener besides ADS, so the process announces that it serves before the control
/// plane's listeners arrive.
pub fn mesh_host_over_ads(
    node: &str,
    plane_port: u16,
    workloads: &[(String, PathBuf)],
) -> AdsMeshHost {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap.yaml");
    let ready = http_listener(
        "ready",
        crate::envoy::free_port(),
        "",
        r#"[{ name: all, domains: ["*"], routes: [{ match: { prefix: / }, direct_response: { status: 200 } }] }]"#,
    );
    let bootstrap = format!(
        "{}\nstatic_resources:\n  listeners:{ready}\n  clusters:{}\n",
        ads_header(node, true),
        xds_cluster(plane_port)
    );
    std::fs::write(&path, bootstrap).expect("write bootstrap");
    let mut args = vec![
        "run".to_owned(),
        "--bootstrap".to_owned(),
        path.display().to_string(),
    ];
    let unused = [(
        UNUSED_WORKLOAD_CLUSTER.to_owned(),
        crate::component("hello"),
    )];
    let bound = if workloads.is_empty() {
        &unused[..]
    } else {
        workloads
    };
    for (cluster, component) in bound {
        args.push("--workload".to_owned());
        args.push(format!("{cluster}={}", component.display()));
    }
    AdsMeshHost {
        host: MeshHost::spawn(&args),
        _dir: dir,
    }
}

/// Waits until `node` has ACKed every kind of resource `snapshot` holds at its version
/// (looking at the requests the control plane received from index `from` on). A NACK of
/// that push is an error carrying its message; so is no answer within `timeout`.
pub async fn wait_for_acks(
    plane: &TestControlPlane,
    node: &str,
    snapshot: &Snapshot,
    from: usize,
    timeout: Duration,
) -> Result<(), String> {
    let mut kinds = vec![ResourceKind::Listener, ResourceKind::Cluster];
    if !snapshot.routes.is_empty() {
        kinds.push(ResourceKind::RouteConfig);
    }
    if !snapshot
        .names_to_subscribe(ResourceKind::LoadAssignment)
        .is_empty()
    {
        kinds.push(ResourceKind::LoadAssignment);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let requests = plane.requests();
        let ours = || {
            requests
                .iter()
                .skip(from)
                .filter(|r| r.node_id == node && !r.request.response_nonce().is_empty())
        };
        if let Some(nack) = ours().find_map(|r| r.request.error_message()) {
            return Err(format!(
                "{node} refused version {}: {nack}",
                snapshot.version
            ));
        }
        let missing: Vec<ResourceKind> = kinds
            .iter()
            .copied()
            .filter(|kind| {
                let names = snapshot.names_to_subscribe(*kind);
                !ours().any(|r| match &r.request {
                    ReceivedRequest::Sotw(q) => {
                        q.type_url == kind.type_url()
                            && q.version_info == snapshot.version
                            && names.iter().all(|n| q.resource_names.contains(n))
                    }
                    ReceivedRequest::Delta(_) => false,
                })
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{node} did not ACK {missing:?} of version {} within {timeout:?}",
                snapshot.version
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts connections on `addr` (a listener the control plane
/// added is bound), up to `timeout`.
pub async fn wait_until_listening(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("nothing listens on {addr} after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded() -> Outcome {
        Outcome {
            status: 200,
            upstream: Some(Received {
                cluster: "a".into(),
                method: "GET".into(),
                path: "/p".into(),
                host: Some("h".into()),
                headers: BTreeMap::from([("x-level".to_owned(), "config".to_owned())]),
            }),
            response_headers: BTreeMap::from([("x-served-by".to_owned(), "config".to_owned())]),
            ..Outcome::default()
        }
    }

    /// The differential test can fail: a wrong cluster, path, host or header on
    /// either side is reported.
    #[test]
    fn differences_name_every_field_that_differs() {
        let envoy = forwarded();
        assert!(differences(&envoy, &envoy.clone()).is_empty());
        let mut mesh = envoy.clone();
        if let Some(upstream) = &mut mesh.upstream {
            upstream.cluster = "b".into();
            upstream.path = "/q".into();
            upstream.host = Some("other".into());
            upstream.headers = BTreeMap::from([("x-extra".to_owned(), "1".to_owned())]);
        }
        mesh.response_headers.clear();
        let found = differences(&envoy, &mesh).join("\n");
        for part in [
            "cluster",
            "path",
            "host",
            "request header x-level",
            "request header x-extra",
            "response header x-served-by",
        ] {
            assert!(found.contains(part), "{part} not reported in:\n{found}");
        }
        let local = Outcome {
            status: 503,
            ..Outcome::default()
        };
        let found = differences(&envoy, &local);
        assert!(found.iter().any(|d| d.starts_with("status")), "{found:?}");
        assert!(found.iter().any(|d| d.starts_with("upstream")), "{found:?}");
    }

    /// Envoy's side is held to the case: a wrong expectation is reported.
    #[test]
    fn unexpected_names_what_envoy_did_otherwise() {
        let case = case(
            "c",
            get("h", "/p"),
            to("a").header("x-level", Some("route")),
        )
        .response("x-served-by", None);
        let found = unexpected(&case, &forwarded()).join("\n");
        assert!(found.contains("request header x-level"), "{found}");
        assert!(found.contains("response header x-served-by"), "{found}");
        let wrong = super::case("c", get("h", "/other"), to("b"));
        let found = unexpected(&wrong, &forwarded()).join("\n");
        assert!(
            found.contains("cluster") && found.contains("path"),
            "{found}"
        );
        assert!(unexpected(&super::case("c", get("h", "/p"), to("a")), &forwarded()).is_empty());
    }

    #[test]
    fn the_body_is_compared_for_direct_responses_only() {
        let outcome = Outcome {
            body: Some("text".into()),
            ..Outcome::default()
        };
        assert_eq!(comparable(&outcome, &Expect::Local(404)).body, None);
        assert_eq!(
            comparable(&outcome, &Expect::Direct(200, "text"))
                .body
                .as_deref(),
            Some("text")
        );
    }

    #[test]
    fn the_bootstrap_has_every_listener_and_one_cluster_per_upstream() {
        let listeners = [
            ListenerSpec {
                name: "one",
                port: 1,
                routes: "name: r1\nvirtual_hosts: []\n",
                filters: "",
                tls: None,
                manager: "",
            },
            ListenerSpec {
                name: "two",
                port: 2,
                routes: "name: r2\nvirtual_hosts: []\n",
                filters: "- name: envoy.filters.http.cors\n  typed_config: {}\n",
                tls: None,
                manager: "",
            },
        ];
        let text = bootstrap(&listeners, &[]);
        assert!(text.contains("- name: one") && text.contains("port_value: 2 "));
        assert!(text.contains("            name: r2\n"), "{text}");
        let cors = text.find("          - name: envoy.filters.http.cors");
        let router = text.rfind("          - name: envoy.filters.http.router");
        assert!(
            cors.is_some() && cors < router,
            "filters come before the router: {text}"
        );
        assert!(text.ends_with("  clusters:\n"), "{text}");
    }
}
