//! Counting the frames of an HTTP/2 connection for Envoy's flood limits
//! (`Http2ProtocolOptions`): frames with an empty payload in a row, PRIORITY frames per
//! stream, WINDOW_UPDATE frames per DATA frame sent, and the control frames the host must
//! acknowledge (PING, SETTINGS).
//!
//! h2 answers every PING and SETTINGS frame, one at a time: it stops reading until the
//! acknowledgement is written, so the queue Envoy's `max_outbound_control_frames` bounds
//! never grows here, but a client that reads its acknowledgements can keep the host busy
//! answering them forever. So the limit is applied to the frames that ask for an answer:
//! a budget of `max_outbound_control_frames` that each such frame spends, refilled by
//! every HEADERS or DATA frame the host sends (traffic earns its keepalive and
//! flow-control pings, as gRPC's `too_many_pings` rule has it) and by a tenth of the
//! budget per second.
//!
//! Only the 9-byte frame headers (and the pad length of padded frames) are read; h2
//! parses and checks the frames themselves.

use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

/// The client's connection preface, which comes before its first frame.
pub(super) const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

/// Envoy's flood limits for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    /// PING and SETTINGS frames a client may send in a burst before traffic or time
    /// earns it more (Envoy's `max_outbound_control_frames`, default 1000).
    pub max_outbound_control_frames: u32,
    /// HEADERS, CONTINUATION and DATA frames with an empty payload and no END_STREAM in a
    /// row (Envoy's `max_consecutive_inbound_frames_with_empty_payload`, default 1).
    pub max_consecutive_inbound_frames_with_empty_payload: u32,
    /// PRIORITY frames per stream the client opened, plus one stream's worth
    /// (`max_inbound_priority_frames_per_stream`, default 100).
    pub max_inbound_priority_frames_per_stream: u32,
    /// WINDOW_UPDATE frames per DATA frame the host sent
    /// (`max_inbound_window_update_frames_per_data_frame_sent`, default 10).
    pub max_inbound_window_update_frames_per_data_frame_sent: u32,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Self {
            max_outbound_control_frames: 1000,
            max_consecutive_inbound_frames_with_empty_payload: 1,
            max_inbound_priority_frames_per_stream: 100,
            max_inbound_window_update_frames_per_data_frame_sent: 10,
        }
    }
}

/// Which limit a client broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub(super) enum Flood {
    /// Too many PING or SETTINGS frames.
    #[error("too many control frames")]
    Control,
    /// Too many frames with an empty payload in a row.
    #[error("too many frames with an empty payload")]
    EmptyPayload,
    /// Too many PRIORITY frames.
    #[error("too many PRIORITY frames")]
    Priority,
    /// Too many WINDOW_UPDATE frames.
    #[error("too many WINDOW_UPDATE frames")]
    WindowUpdate,
}

/// Where a reader of frames is inside the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Inside the client preface: this many bytes are left.
    Preface(usize),
    /// Reading a frame header (`have` bytes of it so far).
    Header,
    /// A padded frame's pad length byte is next.
    PadLength,
    /// This many payload bytes are left.
    Payload(usize),
}

/// The frames a client sends, counted.
#[derive(Debug)]
pub(super) struct Inbound {
    limits: Http2Limits,
    position: Position,
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
    empty_in_a_row: u32,
    streams: u64,
    priority_frames: u64,
    window_updates: u64,
    /// Control frames the client may still send now.
    budget: f64,
    refilled: Instant,
    /// HEADERS and DATA frames of the host's that have refilled the budget.
    traffic_counted: u64,
    /// The highest stream id the client opened (for GOAWAY).
    last_stream: u32,
}

impl Inbound {
    pub(super) fn new(limits: Http2Limits) -> Self {
        Self {
            limits,
            position: Position::Preface(PREFACE_LEN),
            header: [0; FRAME_HEADER_LEN],
            have: 0,
            empty_in_a_row: 0,
            streams: 0,
            priority_frames: 0,
            window_updates: 0,
            budget: f64::from(limits.max_outbound_control_frames),
            refilled: Instant::now(),
            traffic_counted: 0,
            last_stream: 0,
        }
    }

    /// The highest stream id the client has opened.
    pub(super) fn last_stream(&self) -> u32 {
        self.last_stream
    }

    /// Reads more of what the client sent; `outbound` tells how much the host sent.
    pub(super) fn inspect(&mut self, mut bytes: &[u8], outbound: &Outbound) -> Result<(), Flood> {
        while !bytes.is_empty() {
            match self.position {
                Position::Preface(left) => {
                    let skipped = left.min(bytes.len());
                    bytes = &bytes[skipped..];
                    self.position = match left - skipped {
                        0 => Position::Header,
                        left => Position::Preface(left),
                    };
                }
                Position::Header => {
                    let wanted = (FRAME_HEADER_LEN - self.have).min(bytes.len());
                    self.header[self.have..self.have + wanted].copy_from_slice(&bytes[..wanted]);
                    self.have += wanted;
                    bytes = &bytes[wanted..];
                    if self.have == FRAME_HEADER_LEN {
                        self.have = 0;
                        let frame = FrameHeader::parse(&self.header);
                        self.position = if frame.flags & PADDED != 0
                            && matches!(frame.kind, DATA | HEADERS)
                            && frame.length > 0
                        {
                            Position::PadLength
                        } else {
                            self.count(&frame, 0, outbound)?;
                            Position::Payload(frame.length)
                        };
                    }
                }
                Position::PadLength => {
                    let frame = FrameHeader::parse(&self.header);
                    let padding = usize::from(bytes[0]) + 1;
                    self.count(&frame, padding, outbound)?;
                    self.position = Position::Payload(frame.length);
                }
                Position::Payload(left) => {
                    let skipped = left.min(bytes.len());
                    bytes = &bytes[skipped..];
                    self.position = match left - skipped {
                        0 => Position::Header,
                        left => Position::Payload(left),
                    };
                }
            }
        }
        Ok(())
    }

    fn count(
        &mut self,
        frame: &FrameHeader,
        padding: usize,
        outbound: &Outbound,
    ) -> Result<(), Flood> {
        let limits = &self.limits;
        match frame.kind {
            HEADERS | CONTINUATION | DATA => {
                if frame.kind != DATA && frame.flags & END_HEADERS != 0 {
                    self.streams += 1;
                }
                if frame.kind == HEADERS {
                    self.last_stream = self.last_stream.max(frame.stream);
                }
                let empty = frame.length.saturating_sub(padding) == 0;
                let ends_stream = frame.kind != CONTINUATION && frame.flags & END_STREAM != 0;
                if empty && !ends_stream {
                    self.empty_in_a_row += 1;
                    if self.empty_in_a_row
                        > limits.max_consecutive_inbound_frames_with_empty_payload
                    {
                        return Err(Flood::EmptyPayload);
                    }
                } else {
                    self.empty_in_a_row = 0;
                }
            }
            PRIORITY => {
                self.priority_frames += 1;
                let allowed =
                    u64::from(limits.max_inbound_priority_frames_per_stream) * (1 + self.streams);
                if self.priority_frames > allowed {
                    return Err(Flood::Priority);
                }
            }
            WINDOW_UPDATE => {
                self.window_updates += 1;
                let per_data =
                    u64::from(limits.max_inbound_window_update_frames_per_data_frame_sent);
                let allowed = 1 + 2 * (self.streams + per_data * outbound.data_frames);
                if self.window_updates > allowed {
                    return Err(Flood::WindowUpdate);
                }
            }
            PING | SETTINGS if frame.flags & ACK == 0 => self.spend_control_budget(outbound)?,
            _ => {}
        }
        Ok(())
    }

    fn spend_control_budget(&mut self, outbound: &Outbound) -> Result<(), Flood> {
        let capacity = f64::from(self.limits.max_outbound_control_frames);
        let now = Instant::now();
        let per_second = capacity / 10.0;
        let earned = outbound.traffic_frames.saturating_sub(self.traffic_counted);
        self.traffic_counted = outbound.traffic_frames;
        self.budget = (self.budget
            + now.duration_since(self.refilled).as_secs_f64() * per_second
            + earned as f64)
            .min(capacity);
        self.refilled = now;
        if self.budget < 1.0 {
            return Err(Flood::Control);
        }
        self.budget -= 1.0;
        Ok(())
    }
}

/// The frames the host sends, counted, and where the current one ends (a GOAWAY may only
/// go between frames).
#[derive(Debug, Default)]
pub(super) struct Outbound {
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
    payload_left: usize,
    /// DATA frames sent.
    data_frames: u64,
    /// HEADERS and DATA frames sent.
    traffic_frames: u64,
}

impl Outbound {
    /// Reads more of what the host wrote.
    pub(super) fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skipped = self.payload_left.min(bytes.len());
                self.payload_left -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let wanted = (FRAME_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + wanted].copy_from_slice(&bytes[..wanted]);
            self.have += wanted;
            bytes = &bytes[wanted..];
            if self.have == FRAME_HEADER_LEN {
                self.have = 0;
                let frame = FrameHeader::parse(&self.header);
                self.payload_left = frame.length;
                if frame.kind == DATA {
                    self.data_frames += 1;
                }
                if matches!(frame.kind, DATA | HEADERS) {
                    self.traffic_frames += 1;
                }
            }
        }
    }

    /// Bytes left of the frame being written; 0 between frames.
    pub(super) fn frame_left(&self) -> usize {
        if self.have > 0 {
            FRAME_HEADER_LEN - self.have + FrameHeader::parse_length(&self.header[..self.have])
        } else {
            self.payload_left
        }
    }
}

struct FrameHeader {
    length: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHeader {
    fn parse(header: &[u8; FRAME_HEADER_LEN]) -> Self {
        Self {
            length: Self::parse_length(header),
            kind: header[3],
            flags: header[4],
            stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
        }
    }

    /// The payload length, once the first three bytes are known (0 before).
    fn parse_length(header: &[u8]) -> usize {
        match header {
            [a, b, c, ..] => usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c),
            _ => 0,
        }
    }
}

/// A GOAWAY frame: no stream after `last_stream` was processed, `ENHANCE_YOUR_CALM`.
pub(super) fn goaway(last_stream: u32, flood: Flood) -> Vec<u8> {
    const ENHANCE_YOUR_CALM: u32 = 0xb;
    const GOAWAY: u8 = 0x7;
    let debug = flood.to_string();
    let length = 8 + debug.len();
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + length);
    frame.extend_from_slice(&u32::try_from(length).unwrap_or(8).to_be_bytes()[1..]);
    frame.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    frame.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    frame.extend_from_slice(debug.as_bytes());
    frame
}

/// How long a flooded connection waits for the frame being written to end before it is
/// closed without a GOAWAY.
pub(super) const GOAWAY_PATIENCE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(payload.len()).expect("small").to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn preface() -> Vec<u8> {
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
    }

    /// Sends `bytes` one at a time; the first flood.
    fn send(inbound: &mut Inbound, outbound: &Outbound, bytes: &[u8]) -> Result<(), Flood> {
        for byte in bytes {
            inbound.inspect(std::slice::from_ref(byte), outbound)?;
        }
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_flood_spends_the_budget_and_time_refills_it() {
        let limits = Http2Limits {
            max_outbound_control_frames: 10,
            ..Http2Limits::default()
        };
        let mut inbound = Inbound::new(limits);
        let outbound = Outbound::default();
        send(&mut inbound, &outbound, &preface()).expect("preface");
        let ping = frame(PING, 0, 0, &[0; 8]);
        for _ in 0..10 {
            send(&mut inbound, &outbound, &ping).expect("within the budget");
        }
        send(&mut inbound, &outbound, &frame(PING, ACK, 0, &[0; 8])).expect("acks are free");
        assert_eq!(send(&mut inbound, &outbound, &ping), Err(Flood::Control));
        let mut inbound = Inbound::new(limits);
        send(&mut inbound, &outbound, &preface()).expect("preface");
        for _ in 0..100 {
            tokio::time::advance(Duration::from_secs(1)).await;
            send(&mut inbound, &outbound, &frame(SETTINGS, 0, 0, &[])).expect("one a second");
        }
    }

    #[test]
    fn traffic_the_host_sends_earns_pings() {
        let limits = Http2Limits {
            max_outbound_control_frames: 2,
            ..Http2Limits::default()
        };
        let mut inbound = Inbound::new(limits);
        let mut outbound = Outbound::default();
        send(&mut inbound, &outbound, &preface()).expect("preface");
        let ping = frame(PING, 0, 0, &[0; 8]);
        for _ in 0..50 {
            outbound.observe(&frame(DATA, 0, 1, b"data"));
            send(&mut inbound, &outbound, &ping).expect("earned");
        }
    }

    #[test]
    fn empty_frames_in_a_row_are_a_flood_unless_they_end_the_stream() {
        let mut inbound = Inbound::new(Http2Limits::default());
        let outbound = Outbound::default();
        send(&mut inbound, &outbound, &preface()).expect("preface");
        let empty = frame(DATA, 0, 1, &[]);
        send(&mut inbound, &outbound, &empty).expect("one is allowed");
        send(&mut inbound, &outbound, &frame(DATA, END_STREAM, 1, &[])).expect("ends the stream");
        send(&mut inbound, &outbound, &empty).expect("the count restarted");
        let padded_empty = frame(DATA, PADDED, 1, &[3, 0, 0, 0]);
        assert_eq!(
            send(&mut inbound, &outbound, &padded_empty),
            Err(Flood::EmptyPayload),
            "padding does not count as payload"
        );
    }

    #[test]
    fn priority_frames_are_limited_per_stream_opened() {
        let limits = Http2Limits {
            max_inbound_priority_frames_per_stream: 2,
            ..Http2Limits::default()
        };
        let mut inbound = Inbound::new(limits);
        let outbound = Outbound::default();
        send(&mut inbound, &outbound, &preface()).expect("preface");
        let priority = frame(PRIORITY, 0, 3, &[0, 0, 0, 1, 16]);
        send(&mut inbound, &outbound, &priority.repeat(2)).expect("one stream's worth");
        send(
            &mut inbound,
            &outbound,
            &frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82"),
        )
        .expect("a stream");
        send(&mut inbound, &outbound, &priority.repeat(2)).expect("two streams' worth");
        assert_eq!(
            send(&mut inbound, &outbound, &priority),
            Err(Flood::Priority)
        );
        assert_eq!(inbound.last_stream(), 1);
    }

    #[test]
    fn window_updates_are_limited_per_data_frame_sent() {
        let mut inbound = Inbound::new(Http2Limits::default());
        let mut outbound = Outbound::default();
        send(&mut inbound, &outbound, &preface()).expect("preface");
        let update = frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]);
        send(&mut inbound, &outbound, &update).expect("one is always allowed");
        assert_eq!(
            send(&mut inbound, &outbound, &update),
            Err(Flood::WindowUpdate)
        );
        let mut inbound = Inbound::new(Http2Limits::default());
        send(&mut inbound, &outbound, &preface()).expect("preface");
        outbound.observe(&frame(DATA, 0, 1, b"x"));
        send(&mut inbound, &outbound, &update.repeat(21)).expect("1 + 2 x 10 per DATA frame");
        assert_eq!(
            send(&mut inbound, &outbound, &update),
            Err(Flood::WindowUpdate)
        );
    }

    #[test]
    fn the_outbound_side_knows_where_its_frame_ends() {
        let mut outbound = Outbound::default();
        assert_eq!(outbound.frame_left(), 0);
        let data = frame(DATA, 0, 1, b"hello");
        outbound.observe(&data[..2]);
        assert_eq!(
            outbound.frame_left(),
            7,
            "length not known yet: the header's rest"
        );
        outbound.observe(&data[2..11]);
        assert_eq!(outbound.frame_left(), 3);
        outbound.observe(&data[11..]);
        assert_eq!(outbound.frame_left(), 0);
        assert_eq!(outbound.data_frames, 1);
    }

    #[test]
    fn goaway_names_the_last_stream_and_enhance_your_calm() {
        let frame = goaway(7, Flood::Control);
        let debug = b"too many control frames";
        assert_eq!(
            &frame[..3],
            &[0, 0, u8::try_from(8 + debug.len()).expect("small")]
        );
        assert_eq!(frame[3], 0x7);
        assert_eq!(&frame[9..13], &7u32.to_be_bytes());
        assert_eq!(&frame[13..17], &0xbu32.to_be_bytes());
        assert_eq!(&frame[17..], debug);
    }
}
