//! Building and sending responses.

use wasi::http::types::{
    ErrorCode, Fields, OutgoingBody, OutgoingResponse, ResponseOutparam, StatusCode,
};

use crate::body::{self, BodyError};

/// Builds header (or trailer) fields from name/value pairs. Names may repeat;
/// every pair becomes its own field line.
pub fn fields<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Fields, ErrorCode> {
    let fields = Fields::new();
    for (name, value) in entries {
        fields.append(name, value).map_err(|err| {
            ErrorCode::InternalError(Some(format!("header {name:?} rejected: {err:?}")))
        })?;
    }
    Ok(fields)
}

/// Creates a response with `status` and `headers` and claims its body, ready
/// to be handed to [`ResponseOutparam::set`].
pub fn start(
    status: StatusCode,
    headers: Fields,
) -> Result<(OutgoingResponse, OutgoingBody), ErrorCode> {
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(Some(format!("invalid status {status}"))))?;
    let body = response
        .body()
        .map_err(|()| ErrorCode::InternalError(Some("response body already claimed".into())))?;
    Ok((response, body))
}

/// Writes `bytes` as the whole body and finishes it without trailers.
pub fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), BodyError> {
    let output = body.write().map_err(|()| BodyError::Claim)?;
    body::write_all(&output, bytes)?;
    // The stream is a child of the body and must be gone before `finish`.
    drop(output);
    OutgoingBody::finish(body, None).map_err(BodyError::Finish)
}

/// Sends a complete response. If the response cannot even be built, the host
/// is told through the outparam so it answers with its own error.
pub fn send(out: ResponseOutparam, status: StatusCode, headers: &[(&str, &str)], bytes: &[u8]) {
    let parts = fields(
        headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes())),
    )
    .and_then(|headers| start(status, headers));
    let (response, body) = match parts {
        Ok(parts) => parts,
        Err(code) => return ResponseOutparam::set(out, Err(code)),
    };
    ResponseOutparam::set(out, Ok(response));
    if let Err(err) = write_body(body, bytes) {
        eprintln!("sending {status} response: {err}");
    }
}

/// Sends a plain-text response, for errors the caller made (bad parameters).
pub fn text(out: ResponseOutparam, status: StatusCode, message: &str) {
    send(
        out,
        status,
        &[("content-type", "text/plain; charset=utf-8")],
        message.as_bytes(),
    );
}
