//! One gRPC call over `wasi:http@0.3`: request messages read from the body
//! stream as they arrive, and a response that is either trailers-only (the
//! status in the head, no body) or a head whose replies and trailers stream
//! after the handler has returned it.

use prost::Message;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::rt::async_support::{FutureWriter, StreamReader, StreamWriter};
use wasip3::{wit_bindgen, wit_future, wit_stream};

use crate::frame::{self, Decoder};
use crate::status::{Code, Status};

/// Bytes asked for per read of the request body.
const READ_SIZE: usize = 4096;

type Trailers = FutureWriter<Result<Option<Fields>, ErrorCode>>;

/// The request side of a call.
pub struct Call {
    body: StreamReader<u8>,
    decoder: Decoder,
    ended: bool,
}

/// The reply stream of a call whose head is sent.
pub struct Replies {
    body: StreamWriter<u8>,
}

impl Call {
    pub fn new(request: Request) -> Self {
        let (_consumed, consumed_rx) = wit_future::new(|| Ok(()));
        let (body, _trailers) = Request::consume_body(request, consumed_rx);
        Call {
            body,
            decoder: Decoder::default(),
            ended: false,
        }
    }

    /// The next message, or `None` once the client has finished sending.
    pub async fn next<M: Message + Default>(&mut self) -> Result<Option<M>, Status> {
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
            let (result, chunk) = self.body.read(Vec::with_capacity(READ_SIZE)).await;
            self.decoder.push(&chunk);
            if !matches!(
                result,
                wit_bindgen::rt::async_support::StreamResult::Complete(_)
            ) {
                self.ended = true;
            }
        }
    }

    /// The single message of a unary call; the client must send exactly one.
    pub async fn unary<M: Message + Default>(&mut self) -> Result<M, Status> {
        let cardinality = |what: &str| {
            let message = format!("{what}: a unary call takes exactly one request message");
            Status::new(Code::Internal, message)
        };
        let message = self
            .next()
            .await?
            .ok_or_else(|| cardinality("no request message"))?;
        match self.next::<M>().await? {
            None => Ok(message),
            Some(_) => Err(cardinality("more than one request message")),
        }
    }

    /// A response that is only a head carrying `status`.
    pub fn trailers_only(self, status: &Status) -> Result<Response, ErrorCode> {
        let headers = fields(status.metadata(), true)?;
        let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
        drop(trailers);
        let (response, _sent) = Response::new(headers, None, trailers_rx);
        Ok(response)
    }

    /// A response with one reply and a successful status with `metadata`.
    pub fn reply_once(
        self,
        message: &impl Message,
        metadata: &'static [(&'static str, &'static str)],
    ) -> Result<Response, ErrorCode> {
        let frame = frame::encode(message);
        let (response, mut replies, trailers) = open()?;
        wit_bindgen::spawn_local(async move {
            let status = match replies.write(frame).await {
                Ok(()) => Status::ok(),
                Err(status) => status,
            };
            replies.finish(trailers, &status, metadata).await;
        });
        Ok(response)
    }

    /// Returns the head at once and streams the replies `produce` sends.
    pub fn stream(
        self,
        produce: impl AsyncFnOnce(&mut Replies) -> Result<(), Status> + 'static,
    ) -> Result<Response, ErrorCode> {
        let (response, mut replies, trailers) = open()?;
        wit_bindgen::spawn_local(async move {
            let status = produce(&mut replies).await.err().unwrap_or_else(Status::ok);
            replies.finish(trailers, &status, &[]).await;
        });
        Ok(response)
    }

    /// Returns the head at once, then lets `converse` read requests and send
    /// replies as they come: the client may wait for the head before sending.
    pub fn chat(
        mut self,
        converse: impl AsyncFnOnce(&mut Call, &mut Replies) -> Result<(), Status> + 'static,
    ) -> Result<Response, ErrorCode> {
        let (response, mut replies, trailers) = open()?;
        wit_bindgen::spawn_local(async move {
            let status = converse(&mut self, &mut replies)
                .await
                .err()
                .unwrap_or_else(Status::ok);
            replies.finish(trailers, &status, &[]).await;
        });
        Ok(response)
    }
}

impl Replies {
    /// Sends one reply message.
    pub async fn send(&mut self, message: &impl Message) -> Result<(), Status> {
        self.write(frame::encode(message)).await
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), Status> {
        let unwritten = self.body.write_all(bytes).await;
        if unwritten.is_empty() {
            Ok(())
        } else {
            Err(Status::new(Code::Internal, "the client stopped reading"))
        }
    }

    /// Ends the body, then sends `status` and `metadata` as trailers.
    async fn finish(
        self,
        trailers: Trailers,
        status: &Status,
        metadata: &[(&'static str, &'static str)],
    ) {
        drop(self.body);
        let mut entries = status.metadata();
        entries.extend(metadata.iter().map(|(name, value)| (*name, (*value).to_owned())));
        let sent = match fields(entries, false) {
            Ok(fields) => trailers.write(Ok(Some(fields))).await,
            Err(code) => trailers.write(Err(code)).await,
        };
        if sent.is_err() {
            eprintln!("greeter-p3: the client left before the trailers");
        }
    }
}

/// A `200 application/grpc` head with an open body and trailers to come.
fn open() -> Result<(Response, Replies, Trailers), ErrorCode> {
    let headers = fields(Vec::new(), true)?;
    let (body, contents) = wit_stream::new();
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(contents), trailers_rx);
    Ok((response, Replies { body }, trailers))
}

/// Header or trailer fields; heads carry the gRPC content type.
fn fields(entries: Vec<(&'static str, String)>, head: bool) -> Result<Fields, ErrorCode> {
    let mut list: Vec<(String, Vec<u8>)> = Vec::with_capacity(entries.len() + 1);
    if head {
        list.push(("content-type".to_owned(), b"application/grpc".to_vec()));
    }
    list.extend(
        entries
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into_bytes())),
    );
    Fields::from_list(&list).map_err(|error| ErrorCode::InternalError(Some(format!("{error:?}"))))
}
