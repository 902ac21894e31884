//! `routeguide.RouteGuide`: one method per gRPC call shape, with replies that
//! are easy to predict from the request.

use crate::grpc::call::{Metadata, Requests, Responder};
use crate::grpc::status::Status;
use crate::proto::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};

/// Cap on `ListFeatures` replies, so a huge rectangle cannot stream forever.
const MAX_FEATURES: i64 = 100_000;

/// Unary: the feature `feature-<lat>-<lon>` at the requested point.
pub fn get_feature(requests: &mut Requests, responder: &mut Responder) -> Result<Metadata, Status> {
    let point: Point = requests.unary()?;
    responder.send(&Feature {
        name: format!("feature-{}-{}", point.latitude, point.longitude),
        location: Some(point),
    })?;
    Ok(&[])
}

/// Server streaming: `hi.latitude - lo.latitude` features (clamped to
/// 0..=100000) named `f-0`, `f-1`, ..., the i-th at latitude `lo.latitude + i`
/// and longitude `lo.longitude`. Each is flushed on its own, so the client
/// sees the first before the last is produced.
pub fn list_features(
    requests: &mut Requests,
    responder: &mut Responder,
) -> Result<Metadata, Status> {
    let rectangle: Rectangle = requests.unary()?;
    let lo = rectangle.lo.unwrap_or_default();
    let hi = rectangle.hi.unwrap_or_default();
    let count = (i64::from(hi.latitude) - i64::from(lo.latitude)).clamp(0, MAX_FEATURES);
    for index in 0..count {
        // `index < hi.latitude - lo.latitude`, so the sum fits in an i32.
        let latitude = (i64::from(lo.latitude) + index) as i32;
        responder.send(&Feature {
            name: format!("f-{index}"),
            location: Some(Point {
                latitude,
                longitude: lo.longitude,
            }),
        })?;
    }
    Ok(&[])
}

/// Client streaming: counts the points; `feature_count` equals
/// `point_count`, `distance` and `elapsed_time` are 0.
pub fn record_route(
    requests: &mut Requests,
    responder: &mut Responder,
) -> Result<Metadata, Status> {
    let mut points = 0i32;
    while requests.next::<Point>()?.is_some() {
        points = points.saturating_add(1);
    }
    responder.send(&RouteSummary {
        point_count: points,
        feature_count: points,
        distance: 0,
        elapsed_time: 0,
    })?;
    Ok(&[])
}

/// Bidirectional streaming: answers each note at once with the same location
/// and `echo: <message>`, so a client can wait for each reply before sending
/// its next note.
pub fn route_chat(requests: &mut Requests, responder: &mut Responder) -> Result<Metadata, Status> {
    // Some clients wait for the response head before sending anything.
    responder.start()?;
    while let Some(note) = requests.next::<RouteNote>()? {
        responder.send(&RouteNote {
            location: note.location,
            message: format!("echo: {}", note.message),
        })?;
    }
    Ok(&[])
}
