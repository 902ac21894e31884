//! `helloworld.Greeter`, with a few names that make the call misbehave on
//! purpose for the host's error-path tests.

use std::thread;
use std::time::Duration;

use crate::grpc::call::{Metadata, Requests, Responder};
use crate::grpc::status::{Code, Status};
use crate::proto::helloworld::{HelloReply, HelloRequest};

/// Sent in the trailers of every successful `SayHello`, so tests can check
/// that custom trailer metadata reaches the client.
const TRAILER: Metadata = &[("x-greeter-trailer", "hello-trailer")];

/// Replies `Hello <name>`. Special names: `error` fails with
/// `INVALID_ARGUMENT`, `sleep:<ms>` waits that long before replying and
/// `trap` traps.
pub fn say_hello(requests: &mut Requests, responder: &mut Responder) -> Result<Metadata, Status> {
    let HelloRequest { name } = requests.unary()?;
    if name == "error" {
        return Err(Status::new(Code::InvalidArgument, "name must not be error"));
    }
    if name == "trap" {
        // On wasm32 `abort` executes `unreachable`: a trap mid-call.
        std::process::abort();
    }
    if let Some(millis) = name.strip_prefix("sleep:") {
        let millis: u64 = millis.parse().map_err(|_| {
            let message =
                format!("sleep:<ms> needs a whole number of milliseconds, got {millis:?}");
            Status::new(Code::InvalidArgument, message)
        })?;
        thread::sleep(Duration::from_millis(millis));
    }
    responder.send(&HelloReply {
        message: format!("Hello {name}"),
    })?;
    Ok(TRAILER)
}
