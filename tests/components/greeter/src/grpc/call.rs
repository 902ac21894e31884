//! One gRPC call over `wasi:http`: request messages read as the body arrives,
//! and a response whose head waits for the first reply so that a call failing
//! before any reply can be answered trailers-only.

use guest_support::body::{self, BodyError};
use guest_support::response;
use prost::Message;
use wasi::http::types::{
    ErrorCode, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use super::frame::{self, Decoder};
use super::status::{Code, Status};

const CONTENT_TYPE: (&str, &[u8]) = ("content-type", b"application/grpc");

/// Extra metadata a method adds to its trailers on success.
pub type Metadata = &'static [(&'static str, &'static str)];

/// The request messages of a call.
pub struct Requests {
    // Declared before `_body`: a stream must be dropped before its body.
    input: InputStream,
    _body: IncomingBody,
    decoder: Decoder,
    ended: bool,
}

impl Requests {
    pub fn new(request: IncomingRequest) -> Result<Self, Status> {
        let claimed = |what: &str| Status::new(Code::Internal, format!("{what} already claimed"));
        let body = request.consume().map_err(|()| claimed("request body"))?;
        let input = body.stream().map_err(|()| claimed("request body stream"))?;
        Ok(Requests {
            input,
            _body: body,
            decoder: Decoder::default(),
            ended: false,
        })
    }

    /// The next message, or `None` once the client has finished sending.
    /// Blocks only until that one message is complete.
    pub fn next<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(bytes) = self.decoder.next_message()? {
                return M::decode(bytes.as_slice()).map(Some).map_err(|err| {
                    Status::new(Code::Internal, format!("decoding request message: {err}"))
                });
            }
            if self.ended {
                self.decoder.finish()?;
                return Ok(None);
            }
            match self.input.blocking_read(body::MAX_WRITE as u64) {
                Ok(chunk) => self.decoder.push(&chunk),
                Err(StreamError::Closed) => self.ended = true,
                Err(err) => {
                    let message = BodyError::Read(err).to_string();
                    return Err(Status::new(Code::Internal, message));
                }
            }
        }
    }

    /// The single message of a unary call; the client must send exactly one.
    pub fn unary<M: Message + Default>(&mut self) -> Result<M, Status> {
        let cardinality = |what: &str| {
            let message = format!("{what}: a unary call takes exactly one request message");
            Status::new(Code::Internal, message)
        };
        let message = self
            .next()?
            .ok_or_else(|| cardinality("no request message"))?;
        match self.next::<M>()? {
            None => Ok(message),
            Some(_) => Err(cardinality("more than one request message")),
        }
    }
}

/// The response side of a call.
pub struct Responder {
    out: Option<ResponseOutparam>,
    stream: Option<ReplyStream>,
}

/// A response whose head is sent, open for reply messages.
struct ReplyStream {
    // Declared before `body`: a stream must be dropped before its body.
    output: OutputStream,
    body: OutgoingBody,
}

impl Responder {
    pub fn new(out: ResponseOutparam) -> Self {
        Responder {
            out: Some(out),
            stream: None,
        }
    }

    /// Sends the response head now, for calls whose client may wait for it
    /// before sending its first message.
    pub fn start(&mut self) -> Result<(), Status> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let opened = response::fields([CONTENT_TYPE])
            .and_then(|headers| response::start(200, headers))
            .and_then(|(response, body)| {
                let output = body
                    .write()
                    .map_err(|()| internal_error("body stream claimed"))?;
                Ok((response, ReplyStream { output, body }))
            });
        match opened {
            Ok((response, stream)) => {
                ResponseOutparam::set(out, Ok(response));
                self.stream = Some(stream);
                Ok(())
            }
            Err(code) => {
                let status = Status::new(Code::Internal, format!("{code:?}"));
                // The host answers this call with its own error response.
                ResponseOutparam::set(out, Err(code));
                Err(status)
            }
        }
    }

    /// Sends one reply message, flushed so the client sees it at once.
    pub fn send(&mut self, message: &impl Message) -> Result<(), Status> {
        self.start()?;
        let Some(stream) = &self.stream else {
            return Err(Status::new(Code::Internal, "response already failed"));
        };
        body::write_all(&stream.output, &frame::encode(message))
            .map_err(|err| Status::new(Code::Internal, err.to_string()))
    }

    /// Ends the call with `status` and, on success, `metadata`: in trailers
    /// after the replies, or as a trailers-only response if none was sent.
    pub fn finish(self, status: &Status, metadata: Metadata) {
        let mut fields: Vec<(&str, String)> = status.metadata();
        fields.extend(
            metadata
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        let entries = fields.iter().map(|(name, value)| (*name, value.as_bytes()));
        if let Some(out) = self.out {
            trailers_only(out, entries);
        } else if let Some(ReplyStream { output, body }) = self.stream {
            drop(output);
            let finished = response::fields(entries)
                .and_then(|trailers| OutgoingBody::finish(body, Some(trailers)));
            if let Err(code) = finished {
                // The head is out; a client that left early is the usual cause.
                eprintln!("greeter: finishing response: {code:?}");
            }
        }
    }
}

/// A response that is only a head: the status goes with the content type and
/// no body is claimed, so the host can end the stream with the headers.
fn trailers_only<'a>(out: ResponseOutparam, status: impl Iterator<Item = (&'a str, &'a [u8])>) {
    let headers = response::fields([CONTENT_TYPE].into_iter().chain(status));
    // A new response's status is already 200, which gRPC always uses.
    let response = headers.map(OutgoingResponse::new);
    ResponseOutparam::set(out, response);
}

fn internal_error(message: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_owned()))
}
