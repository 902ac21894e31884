//! `greeter-p3`: the `greeter` component's gRPC services over
//! `wasi:http@0.3`, with the same replies, statuses and trailers (see the
//! README), so one host test can run against either kind. Framing, status
//! codes and messages are `greeter`'s own modules; only the plumbing of a
//! call differs: P3 returns the response and streams replies after it.

#[path = "../../greeter/src/grpc/frame.rs"]
mod frame;
#[path = "../../greeter/src/proto.rs"]
mod proto;
#[path = "../../greeter/src/grpc/status.rs"]
mod status;

mod call;

use call::{Call, Replies};
use proto::helloworld::{HelloReply, HelloRequest};
use proto::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};
use status::{Code, Status};
use wasip3::http::types::{ErrorCode, Request, Response};

/// Sent in the trailers of every successful `SayHello`.
const HELLO_TRAILER: (&str, &str) = ("x-greeter-trailer", "hello-trailer");

/// Cap on `ListFeatures` replies, as in `greeter`.
const MAX_FEATURES: i64 = 100_000;

struct Greeter;

impl wasip3::exports::http::handler::Guest for Greeter {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let mut call = Call::new(request);
        match path.as_str() {
            "/helloworld.Greeter/SayHello" => say_hello(call).await,
            "/routeguide.RouteGuide/GetFeature" => match call.unary::<Point>().await {
                Ok(point) => call.reply_once(
                    &Feature {
                        name: format!("feature-{}-{}", point.latitude, point.longitude),
                        location: Some(point),
                    },
                    &[],
                ),
                Err(status) => call.trailers_only(&status),
            },
            "/routeguide.RouteGuide/ListFeatures" => match call.unary::<Rectangle>().await {
                Ok(rectangle) => {
                    call.stream(async move |replies: &mut call::Replies| {
                        list_features(rectangle, replies).await
                    })
                }
                Err(status) => call.trailers_only(&status),
            },
            "/routeguide.RouteGuide/RecordRoute" => {
                let mut points = 0i32;
                loop {
                    match call.next::<Point>().await {
                        Ok(Some(_)) => points = points.saturating_add(1),
                        Ok(None) => break,
                        Err(status) => return call.trailers_only(&status),
                    }
                }
                let summary = RouteSummary {
                    point_count: points,
                    feature_count: points,
                    distance: 0,
                    elapsed_time: 0,
                };
                call.reply_once(&summary, &[])
            }
            "/routeguide.RouteGuide/RouteChat" => call.chat(route_chat),
            _ => call.trailers_only(&Status::new(
                Code::Unimplemented,
                format!("unknown method {path}"),
            )),
        }
    }
}

/// `Hello <name>`; `error` fails with `INVALID_ARGUMENT`, `sleep:<ms>` waits
/// that long first and `trap` traps.
async fn say_hello(mut call: Call) -> Result<Response, ErrorCode> {
    let name = match call.unary::<HelloRequest>().await {
        Ok(HelloRequest { name }) => name,
        Err(status) => return call.trailers_only(&status),
    };
    if name == "error" {
        return call.trailers_only(&Status::new(
            Code::InvalidArgument,
            "name must not be error",
        ));
    }
    if name == "trap" {
        // On wasm32 `abort` executes `unreachable`: a trap mid-call.
        std::process::abort();
    }
    if let Some(millis) = name.strip_prefix("sleep:") {
        let Ok(millis) = millis.parse::<u64>() else {
            let message = format!("sleep:<ms> needs a whole number of milliseconds, got {millis:?}");
            return call.trailers_only(&Status::new(Code::InvalidArgument, message));
        };
        wasip3::clocks::monotonic_clock::wait_for(millis.saturating_mul(1_000_000)).await;
    }
    let reply = HelloReply {
        message: format!("Hello {name}"),
    };
    call.reply_once(&reply, &[HELLO_TRAILER])
}

async fn list_features(rectangle: Rectangle, replies: &mut Replies) -> Result<(), Status> {
    let lo = rectangle.lo.unwrap_or_default();
    let hi = rectangle.hi.unwrap_or_default();
    let count = (i64::from(hi.latitude) - i64::from(lo.latitude)).clamp(0, MAX_FEATURES);
    for index in 0..count {
        // `index < hi.latitude - lo.latitude`, so the sum fits in an i32.
        let latitude = (i64::from(lo.latitude) + index) as i32;
        let feature = Feature {
            name: format!("f-{index}"),
            location: Some(Point {
                latitude,
                longitude: lo.longitude,
            }),
        };
        replies.send(&feature).await?;
    }
    Ok(())
}

async fn route_chat(call: &mut Call, replies: &mut Replies) -> Result<(), Status> {
    while let Some(note) = call.next::<RouteNote>().await? {
        let reply = RouteNote {
            location: note.location,
            message: format!("echo: {}", note.message),
        };
        replies.send(&reply).await?;
    }
    Ok(())
}

wasip3::http::service::export!(Greeter);
