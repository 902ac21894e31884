//! `greeter`: a gRPC server over `wasi:http` for the host's gRPC tests. It
//! serves `helloworld.Greeter` and `routeguide.RouteGuide` from `tests/protos`,
//! covering unary, server-, client- and bidirectional-streaming calls.

mod grpc;
mod hello;
mod proto;
mod route_guide;

use grpc::call::{Metadata, Requests, Responder};
use grpc::status::{Code, Status};
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

/// A method implementation: reads its requests, sends its replies and returns
/// the extra trailer metadata of a successful call.
type Method = fn(&mut Requests, &mut Responder) -> Result<Metadata, Status>;

/// The method served at `path` (`/<package>.<Service>/<Method>`).
fn route(path: &str) -> Option<Method> {
    Some(match path {
        "/helloworld.Greeter/SayHello" => hello::say_hello,
        "/routeguide.RouteGuide/GetFeature" => route_guide::get_feature,
        "/routeguide.RouteGuide/ListFeatures" => route_guide::list_features,
        "/routeguide.RouteGuide/RecordRoute" => route_guide::record_route,
        "/routeguide.RouteGuide/RouteChat" => route_guide::route_chat,
        _ => return None,
    })
}

struct Greeter;

impl Guest for Greeter {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let mut responder = Responder::new(out);
        let path = request.path_with_query().unwrap_or_default();
        let Some(method) = route(&path) else {
            let status = Status::new(Code::Unimplemented, format!("unknown method {path}"));
            return responder.finish(&status, &[]);
        };
        let outcome =
            Requests::new(request).and_then(|mut requests| method(&mut requests, &mut responder));
        match outcome {
            Ok(metadata) => responder.finish(&Status::ok(), metadata),
            Err(status) => responder.finish(&status, &[]),
        }
    }
}

wasi::http::proxy::export!(Greeter);
