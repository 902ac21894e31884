//! The services gateway security filters call, written for the differential tests: a tonic
//! ext_authz server, an HTTP authorization server, a static JWKS endpoint and a tonic
//! rate-limit service. Each decides from the request alone (path, headers, descriptors) and
//! echoes what it was asked into headers that reach the echo upstream, so what Envoy and
//! mesh-host sent can be compared. Tokens for the JWT cases are minted with the keys in
//! `tests/data`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as PbHeader, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3 as auth;
use envoy_types::pb::envoy::service::ratelimit::v3 as rls;
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server on 127.0.0.1 that stops on drop.
pub struct Peer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The ext_authz gRPC server. By path: `/authz/deny-custom` denies with the status in
/// `x-deny-status` (418 without it), a header and a body; `/authz/deny-plain` denies with
/// `PERMISSION_DENIED` and nothing else (so does any request with `x-authz-deny`);
/// `/authz/deny-401` asks for a login; `/authz/slow`
/// answers after 2 s; `/authz/error` fails the call. Anything else is allowed with request
/// and response header mutations and the check's attributes echoed as `x-check-*`.
pub async fn start_ext_authz() -> std::io::Result<Peer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(auth::authorization_server::AuthorizationServer::new(Authz))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok(Peer { addr, task })
}

struct Authz;

// Authorization servers in the field still send the deprecated `append` flag; the test
// server does too, so both proxies' reading of it is compared.
#[allow(deprecated)]
fn option(key: &str, value: &str, append: Option<bool>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(PbHeader {
            key: key.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append: append.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

fn denied(status: u32, headers: Vec<HeaderValueOption>, body: &str) -> auth::CheckResponse {
    auth::CheckResponse {
        status: Some(RpcStatus {
            code: tonic::Code::PermissionDenied as i32,
            ..Default::default()
        }),
        http_response: Some(auth::check_response::HttpResponse::DeniedResponse(
            auth::DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::try_from(status).unwrap_or(403),
                }),
                headers,
                body: body.to_owned(),
            },
        )),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl auth::authorization_server::Authorization for Authz {
    async fn check(
        &self,
        request: tonic::Request<auth::CheckRequest>,
    ) -> Result<tonic::Response<auth::CheckResponse>, tonic::Status> {
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let http = attributes
            .request
            .clone()
            .and_then(|r| r.http)
            .unwrap_or_default();
        let header = |name: &str| http.headers.get(name).cloned();
        let path = http.path.as_str();
        if path.contains("/authz/deny-custom") {
            let status = header("x-deny-status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(418);
            return Ok(tonic::Response::new(denied(
                status,
                vec![
                    option("x-authz-denied", "custom", None),
                    option("x-authz-denied-appended", "never", Some(true)),
                ],
                "custom denial",
            )));
        }
        if path.contains("/authz/deny-plain") || header("x-authz-deny").is_some() {
            return Ok(tonic::Response::new(auth::CheckResponse {
                status: Some(RpcStatus {
                    code: tonic::Code::PermissionDenied as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }
        if path.contains("/authz/deny-401") {
            return Ok(tonic::Response::new(denied(
                401,
                vec![option("www-authenticate", "Bearer realm=\"authz\"", None)],
                "login first",
            )));
        }
        if path.contains("/authz/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if path.contains("/authz/error") {
            return Err(tonic::Status::unavailable("authorization backend down"));
        }
        let source = attributes.source.unwrap_or_default();
        let source_ip = match source.address.and_then(|a| a.address) {
            Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                s.address
            }
            _ => String::new(),
        };
        let context: Vec<String> = attributes
            .context_extensions
            .iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut client_headers: Vec<&String> = http
            .headers
            .keys()
            .filter(|k| k.starts_with("x-client-"))
            .collect();
        client_headers.sort();
        let body = if http.raw_body.is_empty() {
            http.body.clone()
        } else {
            format!("raw:{}", String::from_utf8_lossy(&http.raw_body))
        };
        let echoes = [
            ("x-check-method", http.method.clone()),
            ("x-check-path", http.path.clone()),
            ("x-check-query", http.query.clone()),
            ("x-check-host", http.host.clone()),
            ("x-check-protocol", http.protocol.clone()),
            ("x-check-size", http.size.to_string()),
            ("x-check-body", body),
            (
                "x-check-partial",
                header("x-envoy-auth-partial-body").unwrap_or_default(),
            ),
            ("x-check-context", context.join(";")),
            ("x-check-principal", source.principal.clone()),
            ("x-check-certificate", source.certificate.clone()),
            ("x-check-source-ip", source_ip),
            (
                "x-check-client-headers",
                client_headers
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ];
        let mut headers: Vec<HeaderValueOption> = echoes
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| option(name, value, Some(false)))
            .collect();
        headers.push(option(
            "x-authz-user",
            &header("x-user").unwrap_or_else(|| "anonymous".into()),
            Some(false),
        ));
        headers.push(option("x-append-me", "authz", Some(true)));
        let mut set_response = option("x-authz-set-response", "set", None);
        set_response.append_action =
            envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
                as i32;
        Ok(tonic::Response::new(auth::CheckResponse {
            status: Some(RpcStatus::default()),
            http_response: Some(auth::check_response::HttpResponse::OkResponse(
                auth::OkHttpResponse {
                    headers,
                    headers_to_remove: vec!["x-remove-me".into()],
                    response_headers_to_add: vec![
                        option("x-authz-response", "ok", None),
                        set_response,
                    ],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }))
    }
}

/// The HTTP authorization server: a path containing `/deny` is refused (403, a header, a
/// `www-authenticate` challenge and a body), `/error` answers 503, anything else is allowed
/// with headers for the request (`x-authz-user`, `x-authz-append`, the check echoed as
/// `x-check-*`), one for the response (`x-auth-on-success`) and `x-remove-me` to remove.
pub async fn start_http_authz() -> std::io::Result<Peer> {
    serve_http(|request: Request<Incoming>| async move {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let headers = request.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned()
        };
        if path.contains("/deny") {
            return Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("x-authz-denied", "http")
                .header("x-authz-hidden", "not-listed")
                .header("www-authenticate", "Basic realm=\"authz\"")
                .body(Full::new(Bytes::from_static(b"http denial")));
        }
        if path.contains("/error") {
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(Full::new(Bytes::new()));
        }
        let length = header("content-length");
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Response::builder()
            .status(StatusCode::OK)
            .header("x-authz-user", "http-user")
            .header("x-authz-append", "appended")
            .header("x-auth-on-success", "yes")
            .header("x-authz-not-listed", "dropped")
            .header("x-envoy-auth-headers-to-remove", "x-remove-me")
            .header("x-check-path", path)
            .header("x-check-auth", header("authorization"))
            .header("x-check-client-a", header("x-client-a"))
            .header("x-check-other", header("x-other"))
            .header("x-check-added", header("x-added"))
            .header("x-check-length", length)
            .header("x-check-body", String::from_utf8_lossy(&body).into_owned())
            .body(Full::new(Bytes::new()))
    })
    .await
}

/// The JWKS endpoint: `/jwks.json` is `tests/data/jwks.json`, anything else 500.
pub async fn start_jwks() -> std::io::Result<Peer> {
    let jwks = std::fs::read(crate::workspace_root().join("tests/data/jwks.json"))?;
    let jwks = Bytes::from(jwks);
    serve_http(move |request: Request<Incoming>| {
        let jwks = jwks.clone();
        async move {
            if request.uri().path() == "/jwks.json" {
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(jwks))
            } else {
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Full::new(Bytes::new()))
            }
        }
    })
    .await
}

async fn serve_http<F, Fut>(handler: F) -> std::io::Result<Peer>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, http::Error>> + Send,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move {
                        Ok::<_, Infallible>(handler(request).await.unwrap_or_else(|_| {
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            response
                        }))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Peer { addr, task })
}

/// The rate-limit service. Every request gets `x-rl-descriptors` (`domain|k=v,k=v;...`) for
/// the upstream; a descriptor value `over` is OVER_LIMIT (5 per minute, none left, reset in
/// 30 s; `over-body` also sends a body), `error` fails the call, anything else is OK (10 per
/// minute with 7 left and 100 per hour with 90 left).
pub async fn start_rate_limit() -> std::io::Result<Peer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(rls::rate_limit_service_server::RateLimitServiceServer::new(
                RateLimits,
            ))
            .serve_with_incoming(incoming)
            .await;
    });
    Ok(Peer { addr, task })
}

struct RateLimits;

fn limit(
    per_unit: u32,
    unit: rls::rate_limit_response::rate_limit::Unit,
    remaining: u32,
    reset: i64,
) -> rls::rate_limit_response::DescriptorStatus {
    rls::rate_limit_response::DescriptorStatus {
        code: rls::rate_limit_response::Code::Ok as i32,
        current_limit: Some(rls::rate_limit_response::RateLimit {
            requests_per_unit: per_unit,
            unit: unit as i32,
            ..Default::default()
        }),
        limit_remaining: remaining,
        duration_until_reset: Some(PbDuration {
            seconds: reset,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl rls::rate_limit_service_server::RateLimitService for RateLimits {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<rls::RateLimitRequest>,
    ) -> Result<tonic::Response<rls::RateLimitResponse>, tonic::Status> {
        use rls::rate_limit_response::Code;
        use rls::rate_limit_response::rate_limit::Unit;
        let request = request.into_inner();
        let descriptors: Vec<String> = request
            .descriptors
            .iter()
            .map(|d| {
                d.entries
                    .iter()
                    .map(|e| format!("{}={}", e.key, e.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let values: Vec<&str> = request
            .descriptors
            .iter()
            .flat_map(|d| d.entries.iter().map(|e| e.value.as_str()))
            .collect();
        if values.contains(&"error") {
            return Err(tonic::Status::unavailable("rate limit backend down"));
        }
        let echo = PbHeader {
            key: "x-rl-descriptors".into(),
            value: format!("{}|{}", request.domain, descriptors.join(";")),
            ..Default::default()
        };
        let header = |key: &str, value: &str| PbHeader {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        let over = values.iter().any(|v| v.starts_with("over"));
        let response = if over {
            rls::RateLimitResponse {
                overall_code: Code::OverLimit as i32,
                statuses: vec![limit(5, Unit::Minute, 0, 30)],
                response_headers_to_add: vec![header("x-rl", "over")],
                raw_body: if values.contains(&"over-body") {
                    b"slow down".to_vec()
                } else {
                    Vec::new()
                },
                ..Default::default()
            }
        } else {
            rls::RateLimitResponse {
                overall_code: Code::Ok as i32,
                statuses: vec![
                    limit(10, Unit::Minute, 7, 42),
                    limit(100, Unit::Hour, 90, 1200),
                ],
                response_headers_to_add: vec![header("x-rl", "ok")],
                request_headers_to_add: vec![echo],
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}

/// Mints tokens with the test keys of `tests/data`.
pub struct Tokens {
    rsa: jsonwebtoken::EncodingKey,
    ec: jsonwebtoken::EncodingKey,
    ed: jsonwebtoken::EncodingKey,
    hmac: jsonwebtoken::EncodingKey,
}

/// The HS256 secret of `tests/data/jwks.json`.
const HMAC_SECRET: &[u8] = b"differential-test-shared-secret-0123456789";

impl Tokens {
    /// Loads the keys.
    pub fn load() -> Self {
        let read = |name: &str| {
            std::fs::read(crate::workspace_root().join("tests/data").join(name))
                .unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
        };
        let key = |result: Result<jsonwebtoken::EncodingKey, jsonwebtoken::errors::Error>| {
            result.unwrap_or_else(|e| panic!("test key: {e}"))
        };
        Self {
            rsa: key(jsonwebtoken::EncodingKey::from_rsa_pem(&read(
                "jwt-rs256.pem",
            ))),
            ec: key(jsonwebtoken::EncodingKey::from_ec_pem(&read(
                "jwt-es256.pem",
            ))),
            ed: key(jsonwebtoken::EncodingKey::from_ed_pem(&read(
                "jwt-eddsa.pem",
            ))),
            hmac: jsonwebtoken::EncodingKey::from_secret(HMAC_SECRET),
        }
    }

    /// A token signed with `alg` (`RS256`, `ES256`, `EdDSA`, `HS256`) carrying `claims`;
    /// `exp`/`nbf` given as offsets from now in seconds are made absolute.
    pub fn sign(&self, alg: &str, claims: serde_json::Value) -> String {
        use jsonwebtoken::Algorithm;
        let (algorithm, kid, key) = match alg {
            "RS256" => (Algorithm::RS256, "rsa-1", &self.rsa),
            "ES256" => (Algorithm::ES256, "ec-1", &self.ec),
            "EdDSA" => (Algorithm::EdDSA, "ed-1", &self.ed),
            _ => (Algorithm::HS256, "hs-1", &self.hmac),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut claims = claims;
        for field in ["exp", "nbf", "iat"] {
            if let Some(offset) = claims.get(field).and_then(serde_json::Value::as_i64) {
                claims[field] = serde_json::Value::from(now + offset);
            }
        }
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, key).unwrap_or_else(|e| panic!("sign: {e}"))
    }
}
