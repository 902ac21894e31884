//! Moving bytes through `wasi:io` streams in bounded chunks.

use std::fmt;

use wasi::http::types::ErrorCode;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Largest slice passed to one `blocking-write-and-flush`: the WIT contract
/// caps a single call at 4096 bytes.
pub const MAX_WRITE: usize = 4096;

/// Why moving a body failed. Once a response head is sent there is nobody to
/// tell but stderr, so this only needs to describe the failure well.
#[derive(Debug)]
pub enum BodyError {
    /// The body's stream was already claimed (a component bug).
    Claim,
    /// Reading the incoming body failed.
    Read(StreamError),
    /// Writing the outgoing body failed.
    Write(StreamError),
    /// The host rejected finishing the outgoing body.
    Finish(ErrorCode),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Claim => f.write_str("body stream already claimed"),
            BodyError::Read(err) => write!(f, "reading body: {}", describe(err)),
            BodyError::Write(err) => write!(f, "writing body: {}", describe(err)),
            BodyError::Finish(code) => write!(f, "finishing body: {code:?}"),
        }
    }
}

fn describe(err: &StreamError) -> String {
    match err {
        StreamError::Closed => "stream closed".to_owned(),
        StreamError::LastOperationFailed(io) => io.to_debug_string(),
    }
}

/// Writes `bytes` in chunks of at most [`MAX_WRITE`], flushing each one so the
/// host can forward it before the next is written.
pub fn write_all(output: &OutputStream, bytes: &[u8]) -> Result<(), BodyError> {
    for chunk in bytes.chunks(MAX_WRITE) {
        output
            .blocking_write_and_flush(chunk)
            .map_err(BodyError::Write)?;
    }
    Ok(())
}

/// Copies `input` to `output` until `input` closes, one read at a time, so a
/// body of any size passes through without being held whole. Returns the
/// number of bytes copied.
pub fn copy(input: &InputStream, output: &OutputStream) -> Result<u64, BodyError> {
    let mut total = 0u64;
    loop {
        match input.blocking_read(MAX_WRITE as u64) {
            Ok(chunk) => {
                total += chunk.len() as u64;
                write_all(output, &chunk)?;
            }
            Err(StreamError::Closed) => return Ok(total),
            Err(err) => return Err(BodyError::Read(err)),
        }
    }
}
