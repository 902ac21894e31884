//! The gRPC authorization service: `envoy.service.auth.v3.Authorization/Check` with the
//! request's attributes, and Envoy's reading of the `CheckResponse`.

use std::collections::HashMap;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::service::auth::v3 as auth;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::google::protobuf::Timestamp;
use http::StatusCode;
use mesh_xds::config::{ExtAuthz, GrpcServiceTarget};

use super::body::Buffered;
use super::{Allowed, RouteSettings, Verdict, header_allowed};
use crate::egress::Egress;
use crate::filters::chain::FilterRequest;
use crate::filters::response_edits::{Edit, ResponseEdits};
use crate::filters::upstream_call::ClusterChannel;
use crate::shared::RequestView;

/// gRPC `OK`.
const GRPC_OK: i32 = 0;

/// Asks the service about the request.
pub(super) async fn call(
    target: &GrpcServiceTarget,
    upstream: &Egress,
    check: auth::CheckRequest,
) -> Verdict {
    let authority = match target.authority.parse() {
        Ok(authority) => authority,
        Err(error) => return Verdict::Error(format!("authority {}: {error}", target.authority)),
    };
    let channel = ClusterChannel::new(upstream, &target.cluster, authority, target.timeout);
    let mut client = auth::authorization_client::AuthorizationClient::new(channel);
    let mut call = tonic::Request::new(check);
    if let Some(timeout) = target.timeout {
        call.set_timeout(timeout);
    }
    for (key, value) in &target.initial_metadata {
        if let (Ok(key), Ok(value)) = (
            key.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            value.parse(),
        ) {
            call.metadata_mut().insert(key, value);
        }
    }
    let answer = client.check(call);
    let answer = match target.timeout {
        Some(limit) => match tokio::time::timeout(limit, answer).await {
            Ok(answer) => answer,
            Err(_) => return Verdict::Error(format!("no answer within {limit:?}")),
        },
        None => answer.await,
    };
    match answer {
        Ok(response) => verdict(response.into_inner()),
        Err(status) => Verdict::Error(format!("Check failed: {status}")),
    }
}

/// The check: source and destination peers, the request's head (and body), the route's
/// context extensions.
pub(super) fn check_request(
    config: &ExtAuthz,
    request: &FilterRequest<'_>,
    route: &RouteSettings,
    body: Option<&Buffered>,
) -> auth::CheckRequest {
    let head = &*request.head;
    let view = RequestView::new(head);
    let allowed =
        |name: &str| header_allowed(name, &config.allowed_headers, &config.disallowed_headers);
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut add = |name: &str, value: &str| {
        if allowed(name) {
            headers
                .entry(name.to_owned())
                .and_modify(|joined| {
                    joined.push(',');
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
    };
    add(":method", head.method.as_str());
    add(":path", view.path_and_query);
    if let Some(authority) = view.authority {
        add(":authority", authority);
    }
    add(":scheme", view.scheme);
    for (name, value) in &head.headers {
        if name == http::header::HOST {
            continue;
        }
        add(name.as_str(), &String::from_utf8_lossy(value.as_bytes()));
    }
    if let Some(body) = body {
        add(
            "x-envoy-auth-partial-body",
            if body.partial { "true" } else { "false" },
        );
    }
    let (header_map, headers) = if config.encode_raw_headers {
        let raw = headers
            .into_iter()
            .map(|(key, value)| core::HeaderValue {
                key,
                raw_value: value.into_bytes(),
                ..Default::default()
            })
            .collect();
        (Some(core::HeaderMap { headers: raw }), HashMap::new())
    } else {
        (None, headers)
    };
    let (body_text, raw_body) = match body {
        Some(body) if body.pack_as_bytes => (String::new(), body.bytes.to_vec()),
        Some(body) => (
            String::from_utf8_lossy(&body.bytes).into_owned(),
            Vec::new(),
        ),
        None => (String::new(), Vec::new()),
    };
    // Envoy reports the bytes it buffered for the check, not the declared length.
    let size = body.map_or(0, |b| i64::try_from(b.read).unwrap_or(i64::MAX));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let meta = request.meta;
    let source = Peer {
        address: Some(socket_address(meta.remote_ip, meta.peer.port())),
        principal: meta
            .peer_principal
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
        certificate: meta
            .peer_certificate
            .as_deref()
            .filter(|_| config.include_peer_certificate)
            .map(url_encoded_pem)
            .unwrap_or_default(),
        ..Default::default()
    };
    let destination = Peer {
        address: Some(socket_address(meta.local.ip(), meta.local.port())),
        ..Default::default()
    };
    auth::CheckRequest {
        attributes: Some(auth::AttributeContext {
            source: Some(source),
            destination: Some(destination),
            request: Some(Request {
                time: Some(Timestamp {
                    seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
                }),
                http: Some(HttpRequest {
                    id: rand::random::<u64>().to_string(),
                    method: head.method.as_str().to_owned(),
                    headers,
                    header_map,
                    // Envoy sends the query as part of `path` and leaves `query` empty.
                    path: view.path_and_query.to_owned(),
                    host: view.authority.unwrap_or_default().to_owned(),
                    scheme: view.scheme.to_owned(),
                    query: String::new(),
                    fragment: String::new(),
                    size,
                    protocol: protocol(head.version).to_owned(),
                    body: body_text,
                    raw_body,
                }),
            }),
            context_extensions: route
                .context_extensions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Default::default()
        }),
    }
}

/// A certificate as Envoy puts it in a check: PEM, with newlines, spaces, `+`, `/` and `=`
/// percent-encoded (`urlEncodedPemEncodedPeerCertificate`).
fn url_encoded_pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let mut out = String::with_capacity(pem.len() + pem.len() / 8);
    for c in pem.chars() {
        match c {
            '\n' => out.push_str("%0A"),
            ' ' => out.push_str("%20"),
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn socket_address(ip: std::net::IpAddr, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.to_canonical().to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

/// Envoy's `GrpcClientImpl::onSuccess`: status OK allows with the OK response's mutations;
/// any other status denies, 403 unless the denied response names a status.
// Authorization servers still send the deprecated `append` flag, which Envoy honours.
#[allow(deprecated)]
fn verdict(response: auth::CheckResponse) -> Verdict {
    use auth::check_response::HttpResponse;
    let code = response.status.as_ref().map_or(GRPC_OK, |s| s.code);
    if code == GRPC_OK {
        let mut allowed = Allowed::default();
        if let Some(HttpResponse::OkResponse(ok)) = response.http_response {
            for option in ok.headers {
                let append = option.append.is_some_and(|a| a.value);
                if let Some(header) = option.header {
                    let pair = (header.key, header.value);
                    if append {
                        allowed.append.push(pair);
                    } else {
                        allowed.set.push(pair);
                    }
                }
            }
            for option in ok.response_headers_to_add {
                let Some(header) = option.header else {
                    continue;
                };
                let edit = match option.append.map(|a| a.value) {
                    Some(true) => Edit::Add,
                    Some(false) => Edit::Set,
                    None => match core::header_value_option::HeaderAppendAction::try_from(
                        option.append_action,
                    ) {
                        Ok(core::header_value_option::HeaderAppendAction::AddIfAbsent) => {
                            Edit::AddIfAbsent
                        }
                        Ok(core::header_value_option::HeaderAppendAction::OverwriteIfExists) => {
                            Edit::OverwriteIfExists
                        }
                        Ok(
                            core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd,
                        ) => Edit::Set,
                        _ => Edit::Add,
                    },
                };
                allowed.response.push(edit, &header.key, &header.value);
            }
            allowed.remove = ok.headers_to_remove;
            allowed.query_set = ok
                .query_parameters_to_set
                .into_iter()
                .map(|q| (q.key, q.value))
                .collect();
            allowed.query_remove = ok.query_parameters_to_remove;
        }
        return Verdict::Allowed(allowed);
    }
    let mut status = StatusCode::FORBIDDEN;
    let mut body = String::new();
    let mut headers = ResponseEdits::default();
    if let Some(HttpResponse::DeniedResponse(denied)) = response.http_response {
        for option in denied.headers {
            // Only replacing headers reach the local reply; appending ones have no header to
            // append to there.
            if option.append.is_some_and(|a| a.value) {
                continue;
            }
            if let Some(header) = option.header {
                headers.push(Edit::Set, &header.key, &header.value);
            }
        }
        if let Some(named) = denied
            .status
            .and_then(|s| u16::try_from(s.code).ok())
            .filter(|code| *code > 0)
            .and_then(|code| StatusCode::from_u16(code).ok())
        {
            status = named;
        }
        body = denied.body;
    }
    Verdict::Denied {
        status,
        body,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_certificate_is_url_encoded_pem() {
        let encoded = url_encoded_pem(&[0xfb; 100]);
        assert!(encoded.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(encoded.ends_with("%0A-----END%20CERTIFICATE-----%0A"));
        assert!(!encoded.contains(['\n', ' ', '+', '/', '=']), "{encoded}");
        assert!(
            encoded.contains("%2F"),
            "base64 of 0xfb bytes has '/': {encoded}"
        );
    }

    #[test]
    fn a_denial_without_details_is_403_and_a_named_status_wins() {
        let denied = |status: Option<i32>| auth::CheckResponse {
            status: Some(envoy_types::pb::google::rpc::Status {
                code: 7,
                ..Default::default()
            }),
            http_response: status.map(|code| {
                auth::check_response::HttpResponse::DeniedResponse(auth::DeniedHttpResponse {
                    status: Some(envoy_types::pb::envoy::r#type::v3::HttpStatus { code }),
                    ..Default::default()
                })
            }),
            ..Default::default()
        };
        let status = |verdict: Verdict| match verdict {
            Verdict::Denied { status, .. } => status.as_u16(),
            _ => 0,
        };
        assert_eq!(status(verdict(denied(None))), 403);
        assert_eq!(status(verdict(denied(Some(0)))), 403);
        assert_eq!(status(verdict(denied(Some(401)))), 401);
        assert!(matches!(
            verdict(auth::CheckResponse::default()),
            Verdict::Allowed(_)
        ));
    }
}
