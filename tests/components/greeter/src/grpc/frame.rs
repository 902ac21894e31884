//! gRPC length-prefixed message framing: a 1-byte compressed flag, a 4-byte
//! big-endian length, then the message.

use prost::Message;

use super::status::{Code, Status};

const PREFIX_LEN: usize = 5;

/// Largest message accepted, gRPC's customary default. The length prefix comes
/// from the client, so it must not decide how much memory is reserved.
pub const MAX_MESSAGE_LEN: usize = 4 << 20;

/// Frames `message` for the response body (never compressed).
pub fn encode(message: &impl Message) -> Vec<u8> {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(PREFIX_LEN + len);
    frame.push(0);
    // Replies are built by this server and are far below 4 GiB.
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode_raw(&mut frame);
    frame
}

/// Splits a request body into messages as its bytes arrive, in chunks that
/// need not line up with message boundaries.
#[derive(Debug, Default)]
pub struct Decoder {
    buffered: Vec<u8>,
}

impl Decoder {
    /// Appends the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffered.extend_from_slice(chunk);
    }

    /// Takes the next complete message, or `None` until more bytes arrive. A
    /// bad prefix is reported as soon as its five bytes are in.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, Status> {
        let Some(prefix) = self.buffered.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        match prefix[0] {
            0 => {}
            1 => {
                return Err(Status::new(
                    Code::Unimplemented,
                    "compression not supported",
                ));
            }
            flag => {
                let message = format!("invalid compressed flag {flag}");
                return Err(Status::new(Code::Internal, message));
            }
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > MAX_MESSAGE_LEN {
            let message =
                format!("message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit");
            return Err(Status::new(Code::ResourceExhausted, message));
        }
        let end = PREFIX_LEN + len;
        if self.buffered.len() < end {
            return Ok(None);
        }
        let message = self.buffered[PREFIX_LEN..end].to_vec();
        self.buffered.drain(..end);
        Ok(Some(message))
    }

    /// Checks, once the body has ended, that it did not stop inside a message.
    pub fn finish(&self) -> Result<(), Status> {
        if self.buffered.is_empty() {
            Ok(())
        } else {
            let message = "request body ended inside a message";
            Err(Status::new(Code::Internal, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut frame = vec![flag];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        frame
    }

    #[test]
    fn encoded_frame_is_flag_length_message() {
        let message = "hi".to_owned();
        assert_eq!(encode(&message), frame(0, &message.encode_to_vec()));
    }

    #[test]
    fn message_split_across_chunks_is_reassembled() {
        let bytes = frame(0, b"hello");
        let mut decoder = Decoder::default();
        for byte in &bytes[..bytes.len() - 1] {
            decoder.push(&[*byte]);
            assert_eq!(decoder.next_message(), Ok(None));
        }
        decoder.push(&bytes[bytes.len() - 1..]);
        assert_eq!(decoder.next_message(), Ok(Some(b"hello".to_vec())));
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn several_messages_in_one_chunk_come_out_in_order() {
        let mut bytes = frame(0, b"one");
        bytes.extend(frame(0, b""));
        bytes.extend(frame(0, b"three"));
        let mut decoder = Decoder::default();
        decoder.push(&bytes);
        assert_eq!(decoder.next_message(), Ok(Some(b"one".to_vec())));
        assert_eq!(decoder.next_message(), Ok(Some(Vec::new())));
        assert_eq!(decoder.next_message(), Ok(Some(b"three".to_vec())));
        assert_eq!(decoder.next_message(), Ok(None));
    }

    #[test]
    fn compressed_message_is_unimplemented() {
        let mut decoder = Decoder::default();
        decoder.push(&frame(1, b"zz"));
        let status = decoder
            .next_message()
            .expect_err("compressed flag accepted");
        assert_eq!(
            status,
            Status::new(Code::Unimplemented, "compression not supported")
        );
    }

    #[test]
    fn oversized_length_is_rejected_before_buffering() {
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        let status = decoder
            .next_message()
            .expect_err("oversized message accepted");
        assert_eq!(status.code, Code::ResourceExhausted);
    }

    #[test]
    fn body_ending_inside_a_message_is_an_error() {
        let mut decoder = Decoder::default();
        decoder.push(&frame(0, b"hello")[..6]);
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(
            decoder.finish().map_err(|status| status.code),
            Err(Code::Internal)
        );
    }
}
