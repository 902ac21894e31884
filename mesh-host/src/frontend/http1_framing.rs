//! The bytes a client sends on an HTTP/1 connection, cut into requests by Envoy's rules:
//! each head checked and rewritten ([`super::http1_head`]), each body delimited by its
//! `Content-Length` or its chunks, chunk-size lines checked and rewritten, trailers
//! checked. What comes out is what hyper parses; a request that breaks a rule ends the
//! stream there, and is answered by the guard ([`super::http1_guard`]) unless hyper had
//! already been given part of it.

use super::http1_head::{BodyFraming, Http1Rules, Rejection, is_tchar, parse_head};
use tokio::io::ReadBuf;

/// A chunk-size line (with its extensions), or what may follow a chunk's data before its
/// line end, cannot be longer than this.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests: empty lines are skipped, as Envoy skips them.
    Idle,
    /// A head is arriving (in `pending`).
    Head,
    /// This many bytes of a `Content-Length` body are still to come.
    Body(u64),
    /// A chunk-size line is arriving (in `pending`).
    ChunkSize,
    /// This many bytes of a chunk's data are still to come.
    ChunkData(u64),
    /// After a chunk's data, everything up to the line end is skipped, as Envoy's parser
    /// skips it (`pending` counts the bytes).
    ChunkEnd,
    /// The trailer section after the last chunk is arriving (in `pending`).
    Trailers,
    /// A request broke a rule: nothing more is read.
    Refused,
}

/// A request that broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) rejection: Rejection,
    /// Part of the request had been handed to hyper already, which answers it: the guard
    /// must not answer it a second time.
    pub(super) handed_over: bool,
}

/// The requests of one connection, checked and rewritten as they arrive.
#[derive(Debug)]
pub(super) struct RequestStream {
    rules: Http1Rules,
    max_head_bytes: usize,
    state: State,
    pending: Vec<u8>,
    /// Where the line being read starts in `pending`.
    line_start: usize,
    /// Bytes for hyper; `read` of them were taken already.
    out: Vec<u8>,
    read: usize,
    /// Where in `out` the current request starts, while hyper has taken none of it.
    request_start: Option<usize>,
}

impl RequestStream {
    /// A stream that refuses heads larger than `max_head_bytes` with 431.
    pub(super) fn new(rules: Http1Rules, max_head_bytes: usize) -> Self {
        Self {
            rules,
            max_head_bytes,
            state: State::Idle,
            pending: Vec::new(),
            line_start: 0,
            out: Vec::new(),
            read: 0,
            request_start: None,
        }
    }

    /// Whether a request head has started and not ended.
    pub(super) fn in_head(&self) -> bool {
        self.state == State::Head
    }

    /// Whether bytes are waiting for hyper.
    pub(super) fn has_output(&self) -> bool {
        self.read < self.out.len()
    }

    /// Whether a request was refused (no more bytes will come out).
    pub(super) fn refused(&self) -> bool {
        self.state == State::Refused
    }

    /// Ends the stream where it is: the head that was arriving never comes out, nor does
    /// anything after it.
    pub(super) fn refuse_rest(&mut self) {
        self.state = State::Refused;
        self.pending = Vec::new();
        self.line_start = 0;
    }

    /// Moves as many waiting bytes as fit into `into`'s unfilled part; how many. Written
    /// with `put_slice`, so the reader's buffer is never zeroed first (hyper hands over
    /// 8 KiB of uninitialised buffer on every read).
    pub(super) fn take(&mut self, into: &mut ReadBuf<'_>) -> usize {
        let waiting = &self.out[self.read..];
        let count = waiting.len().min(into.remaining());
        into.put_slice(&waiting[..count]);
        self.read += count;
        if self.request_start.is_some_and(|start| start < self.read) {
            self.request_start = None;
        }
        if self.read == self.out.len() {
            self.out.clear();
            self.read = 0;
        }
        count
    }

    /// Reads what the client sent. Bytes of the requests before a refused one still come
    /// out; the refused request and everything after it never do.
    pub(super) fn feed(&mut self, input: &[u8]) -> Result<(), Refusal> {
        match self.consume(input) {
            Ok(()) => Ok(()),
            Err(rejection) => {
                let handed_over = match self.request_start {
                    Some(start) => {
                        self.out.truncate(start);
                        false
                    }
                    // A head is refused before any of it comes out.
                    None => self.state != State::Head,
                };
                self.state = State::Refused;
                self.pending = Vec::new();
                self.line_start = 0;
                Err(Refusal {
                    rejection,
                    handed_over,
                })
            }
        }
    }

    fn consume(&mut self, mut input: &[u8]) -> Result<(), Rejection> {
        while !input.is_empty() {
            input = match self.state {
                State::Refused => return Ok(()),
                State::Idle => {
                    let skipped = input
                        .iter()
                        .take_while(|byte| matches!(byte, b'\r' | b'\n'))
                        .count();
                    if skipped < input.len() {
                        self.state = State::Head;
                    }
                    &input[skipped..]
                }
                State::Head => self.head(input)?,
                State::Body(remaining) => {
                    let (data, rest) = split_at_most(input, remaining);
                    self.emit(data);
                    let remaining = remaining - data.len() as u64;
                    self.state = if remaining == 0 {
                        self.request_done()
                    } else {
                        State::Body(remaining)
                    };
                    rest
                }
                State::ChunkSize => self.chunk_size(input)?,
                State::ChunkData(remaining) => {
                    let (data, rest) = split_at_most(input, remaining);
                    self.emit(data);
                    let remaining = remaining - data.len() as u64;
                    self.state = if remaining == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(remaining)
                    };
                    rest
                }
                State::ChunkEnd => self.chunk_end(input)?,
                State::Trailers => self.trailers(input)?,
            };
        }
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn request_done(&mut self) -> State {
        self.request_start = None;
        State::Idle
    }

    /// Appends the next line of `input` (up to and including its LF) to `pending`; the
    /// rest of `input`, and whether the line is complete.
    fn line<'a>(&mut self, input: &'a [u8], limit: usize, too_long: Rejection) -> LineRead<'a> {
        let (line, rest, complete) = match input.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&input[..=end], &input[end + 1..], true),
            None => (input, &input[input.len()..], false),
        };
        if self.pending.len() + line.len() > limit {
            return LineRead::TooLong(too_long);
        }
        self.pending.extend_from_slice(line);
        LineRead::Read { rest, complete }
    }

    /// Reads lines into `pending` until an empty one (not the first): the rest of `input`,
    /// and whether the section is complete.
    fn section<'a>(
        &mut self,
        mut input: &'a [u8],
        too_long: Rejection,
    ) -> Result<(&'a [u8], bool), Rejection> {
        loop {
            let (rest, complete) = match self.line(input, self.max_head_bytes, too_long) {
                LineRead::Read { rest, complete } => (rest, complete),
                LineRead::TooLong(rejection) => return Err(rejection),
            };
            input = rest;
            if !complete {
                return Ok((input, false));
            }
            let start = std::mem::replace(&mut self.line_start, self.pending.len());
            if start > 0 && matches!(&self.pending[start..], b"\n" | b"\r\n") {
                self.line_start = 0;
                return Ok((input, true));
            }
        }
    }

    fn head<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], Rejection> {
        let limit = Rejection::too_large("request headers too large");
        let (input, complete) = self.section(input, limit)?;
        if !complete {
            return Ok(input);
        }
        let head = parse_head(&self.pending, self.rules)?;
        self.pending.clear();
        self.request_start = Some(self.out.len());
        self.emit(&head.canonical);
        self.state = match head.body {
            BodyFraming::None => self.request_done(),
            BodyFraming::Length(length) => State::Body(length),
            BodyFraming::Chunked => State::ChunkSize,
        };
        Ok(input)
    }

    fn chunk_size<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], Rejection> {
        let invalid = Rejection::bad("invalid chunk size");
        let (rest, complete) = match self.line(input, MAX_CHUNK_LINE, invalid) {
            LineRead::Read { rest, complete } => (rest, complete),
            LineRead::TooLong(rejection) => return Err(rejection),
        };
        if !complete {
            return Ok(rest);
        }
        let size = parse_chunk_size(&self.pending).ok_or(invalid)?;
        self.pending.clear();
        self.emit(format!("{size:x}\r\n").as_bytes());
        self.state = if size == 0 {
            State::Trailers
        } else {
            State::ChunkData(size)
        };
        Ok(rest)
    }

    fn chunk_end<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], Rejection> {
        let end = input.iter().position(|byte| *byte == b'\n');
        let skipped = end.map_or(input.len(), |end| end + 1);
        if self.pending.len() + skipped > MAX_CHUNK_LINE {
            return Err(Rejection::bad("no line end after chunk data"));
        }
        match end {
            Some(_) => {
                self.pending.clear();
                self.emit(b"\r\n");
                self.state = State::ChunkSize;
            }
            // Only the count matters here.
            None => self.pending.resize(self.pending.len() + skipped, 0),
        }
        Ok(&input[skipped..])
    }

    fn trailers<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], Rejection> {
        // The section starts after the last chunk's line: an empty first line ends it.
        if self.pending.is_empty() {
            self.pending.extend_from_slice(b"\r\n");
            self.line_start = self.pending.len();
        }
        let limit = Rejection::too_large("request trailers too large");
        let (input, complete) = self.section(input, limit)?;
        if !complete {
            return Ok(input);
        }
        let trailers = canonical_trailers(&self.pending)?;
        self.pending.clear();
        self.emit(&trailers);
        self.state = self.request_done();
        Ok(input)
    }
}

enum LineRead<'a> {
    Read { rest: &'a [u8], complete: bool },
    TooLong(Rejection),
}

fn split_at_most(input: &[u8], count: u64) -> (&[u8], &[u8]) {
    let count = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(input.len());
    input.split_at(count)
}

/// A chunk-size line as Envoy reads it: hex digits (at least one, no sign, no prefix, no
/// leading blank), blanks, then any extension after `;`, ended by CRLF.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r\n")?;
    let digits = line
        .iter()
        .take_while(|byte| byte.is_ascii_hexdigit())
        .count();
    if digits == 0 {
        return None;
    }
    let rest = &line[digits..];
    let blanks = rest
        .iter()
        .take_while(|byte| matches!(byte, b' ' | b'\t'))
        .count();
    match rest.get(blanks) {
        None | Some(b';') => {}
        Some(_) => return None,
    }
    if rest.contains(&b'\r') || rest.contains(&b'\n') {
        return None;
    }
    let digits = std::str::from_utf8(&line[..digits]).ok()?;
    u64::from_str_radix(digits, 16).ok()
}

/// The trailer section (ending with its empty line), each field checked like a header,
/// written with CRLF line ends.
fn canonical_trailers(section: &[u8]) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::with_capacity(section.len() + 2);
    for line in section.split(|byte| *byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|byte| *byte == b':')
            .ok_or(Rejection::bad("a trailer line has no colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let invalid_value = value
            .iter()
            .any(|byte| (*byte < 0x20 && *byte != b'\t') || *byte == 0x7f);
        if name.is_empty() || !name.iter().all(|byte| is_tchar(*byte)) || invalid_value {
            return Err(Rejection::bad("invalid trailer"));
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> RequestStream {
        RequestStream::new(Http1Rules::default(), 8192)
    }

    fn drain(stream: &mut RequestStream) -> String {
        let mut out = vec![0u8; 65536];
        let count = stream.take(&mut ReadBuf::new(&mut out));
        String::from_utf8_lossy(&out[..count]).into_owned()
    }

    /// Feeds `input` in pieces of `step` bytes; what comes out and how it ended.
    fn run(input: &str, step: usize) -> (String, Option<Refusal>) {
        let mut stream = stream();
        let mut out = String::new();
        for piece in input.as_bytes().chunks(step) {
            let result = stream.feed(piece);
            out.push_str(&drain(&mut stream));
            if let Err(refusal) = result {
                return (out, Some(refusal));
            }
        }
        (out, None)
    }

    #[test]
    fn a_request_comes_out_the_same_however_it_is_split() {
        let input = "\r\nPOST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5;ext=1\r\nhello\r\n00A \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n\
                     GET /b HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
        let want = "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\na\r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n\
                    GET /b HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
        for step in [1, 2, 3, 7, 64, input.len()] {
            assert_eq!(run(input, step), (want.to_owned(), None), "step {step}");
        }
    }

    #[test]
    fn chunk_sizes_follow_envoys_rules() {
        for (chunk, ok) in [
            ("5 \r\nhello\r\n", true),
            ("5\t;a=\u{1}\r\nhello\r\n", true),
            ("5\r\nhelloXX\r\n", true),
            ("5\r\nhello\n", true),
            ("g\r\nhello\r\n", false),
            ("-5\r\nhello\r\n", false),
            ("0x5\r\nhello\r\n", false),
            (" 5\r\nhello\r\n", false),
            ("\r\nhello\r\n", false),
            ("5\nhello\r\n", false),
            ("5 5\r\nhello\r\n", false),
            ("ffffffffffffffffff1\r\nhello\r\n", false),
        ] {
            let input = format!(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}0\r\n\r\n"
            );
            let (_, refusal) = run(&input, input.len());
            assert_eq!(refusal.is_none(), ok, "{chunk:?}");
        }
    }

    #[test]
    fn a_refused_request_is_taken_back_when_hyper_has_none_of_it() {
        let input = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\
                     POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n";
        let (out, refusal) = run(input, input.len());
        assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let refusal = refusal.expect("refused");
        assert_eq!(refusal.rejection.status, 400);
        assert!(!refusal.handed_over, "the guard answers it");
    }

    #[test]
    fn a_request_hyper_has_started_on_is_not_answered_twice() {
        let mut stream = stream();
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        stream.feed(head.as_bytes()).expect("valid head");
        assert_eq!(drain(&mut stream), head);
        let refusal = stream
            .feed(b"5\r\nhel")
            .map(|()| stream.feed(b"lo\r\nq\r\n"));
        let refusal = refusal
            .expect("valid chunk start")
            .expect_err("invalid size");
        assert!(refusal.handed_over);
        assert!(stream.refused());
        assert_eq!(
            drain(&mut stream),
            "5\r\nhello\r\n",
            "bytes before the error"
        );
    }

    #[test]
    fn the_head_limit_is_431() {
        let input = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        let (out, refusal) = run(&input, 1000);
        assert_eq!(out, "");
        assert_eq!(refusal.map(|r| r.rejection.status.as_u16()), Some(431));
    }

    #[test]
    fn in_head_is_true_only_while_a_head_arrives() {
        let mut stream = stream();
        assert!(!stream.in_head());
        stream.feed(b"\r\n").expect("blank line");
        assert!(
            !stream.in_head(),
            "empty lines before a request are not a head"
        );
        stream.feed(b"GET / HTTP/1.1\r\nHo").expect("partial");
        assert!(stream.in_head());
        stream.feed(b"st: a\r\n\r\n").expect("complete");
        assert!(!stream.in_head());
    }

    #[test]
    fn trailers_need_a_colon_and_a_valid_name() {
        let input =
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n";
        assert!(run(input, input.len()).1.is_some());
        let input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx: 1\n\n";
        let (out, refusal) = run(input, 5);
        assert_eq!(refusal, None);
        assert!(out.ends_with("0\r\nx: 1\r\n\r\n"), "{out:?}");
    }

    /// Property-based fuzzing (`PROPTEST_CASES` sets how many cases; README, "Fuzzing").
    mod fuzz {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::super::super::http1_head::KNOWN_METHODS;
        use super::*;

        /// Feeds `input` cut after each length in `cuts` (the rest in one piece), taking
        /// the output after each piece as hyper does; what came out and the refusal.
        fn feed_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<Rejection>) {
            let mut stream = stream();
            let mut out = Vec::new();
            let mut rest = input;
            let mut buffer = vec![0u8; 1 << 17];
            for cut in cuts.iter().copied().chain([usize::MAX]) {
                let (piece, after) = rest.split_at(cut.min(rest.len()));
                rest = after;
                let fed = stream.feed(piece);
                let taken = stream.take(&mut ReadBuf::new(&mut buffer));
                out.extend_from_slice(&buffer[..taken]);
                if let Err(refusal) = fed {
                    return (out, Some(refusal.rejection));
                }
                if rest.is_empty() {
                    break;
                }
            }
            (out, None)
        }

        fn token() -> impl Strategy<Value = String> {
            "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
        }

        /// A request any HTTP/1.1 parser accepts.
        fn request() -> impl Strategy<Value = Vec<u8>> {
            let method = prop::sample::select(
                KNOWN_METHODS
                    .iter()
                    .map(|method| std::str::from_utf8(method).expect("ASCII"))
                    .filter(|method| *method != "CONNECT")
                    .collect::<Vec<_>>(),
            );
            let headers = vec((token(), "[ -~]{0,20}"), 0..6);
            let body = prop_oneof![
                Just(None),
                vec(any::<u8>(), 0..300).prop_map(|body| Some((false, body))),
                vec(any::<u8>(), 0..300).prop_map(|body| Some((true, body))),
            ];
            (
                method,
                "/[A-Za-z0-9/._~%-]{0,30}",
                headers,
                body,
                1usize..50,
            )
                .prop_map(|(method, path, headers, body, chunk)| {
                    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: a.test\r\n");
                    for (name, value) in headers {
                        let reserved = ["host", "content-length", "transfer-encoding"];
                        if !reserved.contains(&name.to_ascii_lowercase().as_str()) {
                            out.push_str(&format!("{name}: {}\r\n", value.trim()));
                        }
                    }
                    let mut out = out.into_bytes();
                    match body {
                        None => out.extend_from_slice(b"\r\n"),
                        Some((false, body)) => {
                            out.extend_from_slice(
                                format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                            );
                            out.extend_from_slice(&body);
                        }
                        Some((true, body)) => {
                            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                            for piece in body.chunks(chunk) {
                                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                                out.extend_from_slice(piece);
                                out.extend_from_slice(b"\r\n");
                            }
                            out.extend_from_slice(b"0\r\n\r\n");
                        }
                    }
                    out
                })
        }

        /// Mostly-HTTP bytes: valid requests with bytes changed, cut or inserted.
        fn mangled() -> impl Strategy<Value = Vec<u8>> {
            (
                vec(request(), 1..3),
                vec((any::<usize>(), any::<u8>(), 0u8..3), 0..6),
            )
                .prop_map(|(requests, edits)| {
                    let mut bytes = requests.concat();
                    for (at, byte, kind) in edits {
                        if bytes.is_empty() {
                            break;
                        }
                        let at = at % bytes.len();
                        match kind {
                            0 => bytes[at] = byte,
                            1 => bytes.insert(at, byte),
                            _ => {
                                bytes.remove(at);
                            }
                        }
                    }
                    bytes
                })
        }

        proptest! {
            #[test]
            fn fuzz_any_bytes_in_any_pieces_are_refused_alike(
                input in prop_oneof![vec(any::<u8>(), 0..1024), mangled()],
                cuts in vec(1usize..40, 0..40),
            ) {
                let (whole, refused) = feed_in_pieces(&input, &[]);
                let (pieces, refused_in_pieces) = feed_in_pieces(&input, &cuts);
                prop_assert_eq!(refused, refused_in_pieces);
                prop_assert!(pieces.starts_with(&whole));
                if refused.is_none() {
                    prop_assert_eq!(whole, pieces);
                }
            }

            #[test]
            fn fuzz_what_comes_out_is_canonical(input in prop_oneof![vec(any::<u8>(), 0..1024), mangled()]) {
                let (out, _) = feed_in_pieces(&input, &[]);
                let (again, refused) = feed_in_pieces(&out, &[]);
                prop_assert_eq!(refused, None);
                prop_assert_eq!(again, out);
            }

            #[test]
            fn fuzz_requests_every_parser_accepts_pass(requests in vec(request(), 1..4), cuts in vec(1usize..64, 0..20)) {
                let input = requests.concat();
                let (_, refused) = feed_in_pieces(&input, &cuts);
                prop_assert_eq!(refused, None);
            }
        }
    }
}
