//! `hello-p3`: `hello` as a `wasi:http@0.3` component. Every request gets
//! `200`, `content-type: text/plain` and the same body as `hello`; the body is
//! written after the response is returned, as P3 components stream.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

/// The exact body every test compares against (the same as `hello`'s).
const GREETING: &[u8] = b"Hello from mesh-host!\n";

struct Hello;

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .map_err(|error| ErrorCode::InternalError(Some(format!("{error:?}"))))?;
        let (mut body, contents) = wit_stream::new();
        let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(headers, Some(contents), trailers_rx);
        wit_bindgen::spawn_local(async move {
            let unwritten = body.write_all(GREETING.to_vec()).await;
            if !unwritten.is_empty() {
                eprintln!("hello-p3: the client left before the body was written");
            }
            drop(body);
            let _ = trailers.write(Ok(None)).await;
        });
        Ok(response)
    }
}

wasip3::http::service::export!(Hello);
