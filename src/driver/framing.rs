//! SIP over a byte stream (TCP): split the stream into messages by Content-Length (RFC 3261
//! §18.3), skipping CRLF keep-alives. Pure; the driver feeds it what it reads.

/// Largest message accepted on a stream; a peer sending more is cut off.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message head larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("missing or invalid Content-Length on a stream")]
    NoLength,
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if there is one.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let start = self
            .buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buf.len());
        self.buf.drain(..start);
        let Some(head_end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if self.buf.len() > MAX_MESSAGE {
                Err(FrameError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let body_len = content_length(&self.buf[..head_end]).ok_or(FrameError::NoLength)?;
        let total = head_end + 4 + body_len;
        if total > MAX_MESSAGE {
            return Err(FrameError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buf.drain(..total).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keepalives_and_partial_reads() {
        let mut f = Framer::default();
        f.push(b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nab");
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"cSIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            f.next_message(),
            Ok(Some(b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabc".to_vec()))
        );
        assert_eq!(
            f.next_message(),
            Ok(Some(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()))
        );
        assert_eq!(f.next_message(), Ok(None));
    }

    #[test]
    fn refuses_unframed_or_huge() {
        let mut f = Framer::default();
        f.push(b"BYE sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_message(), Err(FrameError::NoLength));
        let mut g = Framer::default();
        g.push(&vec![b'a'; MAX_MESSAGE + 1]);
        assert_eq!(g.next_message(), Err(FrameError::TooLarge));
        let mut h = Framer::default();
        h.push(b"BYE sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n");
        assert_eq!(h.next_message(), Err(FrameError::TooLarge));
    }
}
