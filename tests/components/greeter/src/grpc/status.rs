//! gRPC status codes and how a status is written as metadata.

/// The status codes this server produces (a subset of the gRPC codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    InvalidArgument = 3,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
}

/// The outcome of a call, sent as `grpc-status` and `grpc-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Self {
        Status::new(Code::Ok, "")
    }

    /// `grpc-status` and, when there is a message, `grpc-message`.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("grpc-status", (self.code as u8).to_string())];
        if !self.message.is_empty() {
            fields.push(("grpc-message", percent_encode(&self.message)));
        }
        fields
    }
}

/// Encodes `grpc-message` as the gRPC HTTP/2 spec requires: printable ASCII
/// other than `%` passes through, every other byte becomes `%XX`. Messages can
/// quote the request path, which the client controls.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_status_has_no_message() {
        assert_eq!(
            Status::ok().metadata(),
            vec![("grpc-status", "0".to_owned())]
        );
    }

    #[test]
    fn status_code_is_sent_as_its_number() {
        let status = Status::new(Code::Unimplemented, "nope");
        assert_eq!(
            status.metadata(),
            vec![
                ("grpc-status", "12".to_owned()),
                ("grpc-message", "nope".to_owned())
            ]
        );
    }

    #[test]
    fn grpc_message_keeps_printable_ascii_and_escapes_the_rest() {
        assert_eq!(
            percent_encode("name must not be error"),
            "name must not be error"
        );
        assert_eq!(percent_encode("100% é\n"), "100%25 %C3%A9%0A");
    }
}
