//! The gRPC layer over `wasi:http`: message framing, status codes and the
//! request/response plumbing of one call. HTTP/2 itself is the host's job.

pub mod call;
pub mod frame;
pub mod status;
