//! SIP over a byte stream (TCP): split the stream into messages by Content-Length (RFC 3261
//! §18.3), skipping CRLF keep-alives. Pure; the driver feeds it what it reads.
//!
//! A stream comes from whoever can reach the port, so every length is checked: a message (head and
//! body) is at most [`MAX_MESSAGE`] bytes, the buffer never holds more than [`MAX_BUFFER`], and a
//! Content-Length that is missing, not a plain decimal number, or given twice with different
//! values is an error. Any error means the stream cannot be resynchronised: the caller closes the
//! connection.

/// Largest message (head and body) accepted on a stream; a peer sending more is cut off.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most bytes the framer holds at once: one whole message plus one read's worth of the next.
pub const MAX_BUFFER: usize = 2 * MAX_MESSAGE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("more than {MAX_BUFFER} bytes buffered without a whole message")]
    BufferFull,
    #[error("missing Content-Length on a stream")]
    NoLength,
    #[error("invalid Content-Length '{0}'")]
    BadLength(String),
    #[error("several different Content-Length values")]
    ConflictingLengths,
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// How far into `buf` the search for the end of the head has already looked.
    scanned: usize,
}

/// The value of the Content-Length (or compact `l`) header of `head` (the bytes before the blank
/// line, start line included).
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let name = name.trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = value.trim_ascii();
        let shown = || String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadLength(shown()));
        }
        // Only digits: the one way to fail is a number too large for usize.
        let len = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(FrameError::TooLarge)?;
        match found {
            Some(earlier) if earlier != len => return Err(FrameError::ConflictingLengths),
            _ => found = Some(len),
        }
    }
    found.ok_or(FrameError::NoLength)
}

impl Framer {
    /// Add bytes read from the stream; refused when the buffer would exceed [`MAX_BUFFER`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if self.buf.len().saturating_add(bytes.len()) > MAX_BUFFER {
            return Err(FrameError::BufferFull);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes held, waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, if there is one. Each call either returns a message (and
    /// consumes it), `Ok(None)` (wait for more bytes) or an error (close the stream), so a loop
    /// calling it until `Ok(None)` or an error always ends.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let start = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        if start > 0 {
            self.buf.drain(..start);
            self.scanned = 0;
        }
        // Resume the search where the last one stopped (less the 3 bytes a split "\r\n\r\n"
        // may have left behind), so a peer trickling bytes costs linear, not quadratic, time.
        let from = self.scanned.saturating_sub(3);
        let found = self
            .buf
            .get(from..)
            .unwrap_or_default()
            .windows(4)
            .position(|w| w == b"\r\n\r\n");
        let Some(head_end) = found.map(|i| from + i) else {
            self.scanned = self.buf.len();
            return if self.buf.len() > MAX_MESSAGE {
                Err(FrameError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let head = self.buf.get(..head_end).unwrap_or_default();
        let body_len = content_length(head)?;
        let total = head_end
            .checked_add(4)
            .and_then(|n| n.checked_add(body_len))
            .ok_or(FrameError::TooLarge)?;
        if total > MAX_MESSAGE {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            self.scanned = head_end;
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(self.buf.drain(..total).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Feed `bytes` in one push and collect messages until the framer waits or fails.
    fn frame_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Option<FrameError>) {
        let mut f = Framer::default();
        if let Err(e) = f.push(bytes) {
            return (Vec::new(), Some(e));
        }
        let mut out = Vec::new();
        loop {
            match f.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn splits_keepalives_and_partial_reads() {
        let mut f = Framer::default();
        f.push(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nab")
            .unwrap();
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"cSIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(
            f.next_message(),
            Ok(Some(b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabc".to_vec()))
        );
        assert_eq!(
            f.next_message(),
            Ok(Some(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()))
        );
        assert_eq!(f.next_message(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn byte_by_byte_finds_a_head_split_across_reads() {
        let msg = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in msg.iter() {
            f.push(std::slice::from_ref(b)).unwrap();
            if let Some(m) = f.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![msg.to_vec()]);
    }

    #[test]
    fn refuses_unframed_or_huge() {
        assert_eq!(
            frame_all(b"BYE sip:a SIP/2.0\r\nVia: x\r\n\r\n").1,
            Some(FrameError::NoLength)
        );
        assert_eq!(
            frame_all(&vec![b'a'; MAX_MESSAGE + 1]).1,
            Some(FrameError::TooLarge)
        );
        assert_eq!(
            frame_all(b"BYE sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n").1,
            Some(FrameError::TooLarge)
        );
    }

    /// The 30 bytes that took the service to 10 GB: a length that overflows `head + 4 + body`.
    #[test]
    fn the_overflowing_length_attack_is_refused_at_once() {
        let attack = b"X\r\nl: 18446744073709551615\r\n\r\n";
        assert_eq!(attack.len(), 30);
        assert_eq!(frame_all(attack), (Vec::new(), Some(FrameError::TooLarge)));
        let max = format!("OPTIONS sip:a SIP/2.0\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert_eq!(frame_all(max.as_bytes()).1, Some(FrameError::TooLarge));
        // One more than usize::MAX does not parse at all: still too large, not a wrap.
        let beyond = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 18446744073709551616\r\n\r\n";
        assert_eq!(frame_all(beyond).1, Some(FrameError::TooLarge));
        let long = format!("OPTIONS sip:a SIP/2.0\r\nl: {}\r\n\r\n", "9".repeat(5000));
        assert_eq!(frame_all(long.as_bytes()).1, Some(FrameError::TooLarge));
    }

    #[test]
    fn malformed_lengths_are_errors() {
        for value in ["-1", "abc", "", "+5", "5 5", "0x10", "1e3", "5;x"] {
            let msg = format!("OPTIONS sip:a SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            assert!(
                matches!(frame_all(msg.as_bytes()).1, Some(FrameError::BadLength(_))),
                "{value:?} accepted"
            );
        }
        let two = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\nl: 4\r\n\r\nabcd";
        assert_eq!(frame_all(two).1, Some(FrameError::ConflictingLengths));
        // The same value twice is one length (RFC 9110 §8.6 accepts it too).
        let same = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 2\r\nl:2\r\n\r\nab";
        assert_eq!(frame_all(same), (vec![same.to_vec()], None));
        let spaced = b"OPTIONS sip:a SIP/2.0\r\nContent-Length :\t1 \r\n\r\nZ";
        assert_eq!(frame_all(spaced), (vec![spaced.to_vec()], None));
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut f = Framer::default();
        // A head that never ends: refused once it passes the message size.
        f.push(&vec![b'a'; MAX_MESSAGE]).unwrap();
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"b").unwrap();
        assert_eq!(f.next_message(), Err(FrameError::TooLarge));
        let mut g = Framer::default();
        g.push(&vec![b'a'; MAX_BUFFER]).unwrap();
        assert_eq!(g.push(b"x"), Err(FrameError::BufferFull));
        assert_eq!(g.buffered(), MAX_BUFFER);
    }

    /// Seeded mutations of valid messages (flipped bytes, inserted digits, huge and odd lengths,
    /// cut and doubled headers) fed in random chunk sizes: the framer always answers within a
    /// bounded number of calls, never holds more than MAX_BUFFER and never yields a message over
    /// MAX_MESSAGE.
    #[test]
    fn mutated_streams_always_terminate() {
        let base: &[&[u8]] = &[
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n",
            b"INVITE sip:b SIP/2.0\r\nl: 5\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n",
            b"\r\n\r\nSIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"X\r\nl: 18446744073709551615\r\n\r\n",
        ];
        let inserts: &[&[u8]] = &[
            b"\r\n\r\n",
            b"Content-Length: 99999999999999999999999",
            b"l: 18446744073709551612",
            b"Content-Length: -3\r\n",
            b"l: 7\r\n",
            b"\xff\xfe",
            b":",
            b"\n",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_0014);
        for _ in 0..5000 {
            let mut stream = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let mut m = base[rng.gen_range(0..base.len())].to_vec();
                for _ in 0..rng.gen_range(0..4) {
                    let at = rng.gen_range(0..=m.len());
                    match rng.gen_range(0..4) {
                        0 if !m.is_empty() => {
                            let i = rng.gen_range(0..m.len());
                            m[i] = rng.gen();
                        }
                        1 => {
                            let ins = inserts[rng.gen_range(0..inserts.len())];
                            m.splice(at..at, ins.iter().copied());
                        }
                        2 => m.truncate(at),
                        _ => {
                            let digits = rng.gen_range(1..30);
                            let ds: Vec<u8> = (0..digits).map(|_| rng.gen_range(b'0'..=b'9')).collect();
                            m.splice(at..at, ds);
                        }
                    }
                }
                stream.extend_from_slice(&m);
            }
            let mut f = Framer::default();
            let mut pos = 0;
            let mut calls = 0usize;
            'feed: while pos < stream.len() {
                let n = rng.gen_range(1..=64).min(stream.len() - pos);
                if f.push(&stream[pos..pos + n]).is_err() {
                    break;
                }
                pos += n;
                loop {
                    calls += 1;
                    assert!(calls < 10_000, "the framer does not terminate on {stream:?}");
                    assert!(f.buffered() <= MAX_BUFFER);
                    match f.next_message() {
                        Ok(Some(m)) => assert!(m.len() <= MAX_MESSAGE),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }
}
