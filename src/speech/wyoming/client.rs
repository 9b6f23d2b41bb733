//! One TCP connection to a Wyoming server: connect with a timeout, write events, read events
//! through the sans-IO [`Decoder`], each I/O step bounded by a deadline.

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::net::TcpStream;

use super::codec::{Decoder, Event};
use crate::speech::SpeechError;

/// A connected Wyoming peer.
pub struct Connection {
    engine: &'static str,
    addr: String,
    stream: TcpStream,
    decoder: Decoder,
    read_buf: Vec<u8>,
}

fn remote(engine: &str, detail: impl Into<String>) -> SpeechError {
    SpeechError::Remote {
        engine: engine.into(),
        detail: detail.into(),
    }
}

/// Run `fut` until `deadline`; past it, a `Remote` error naming `what`.
pub async fn before<T>(
    engine: &str,
    deadline: Instant,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, SpeechError>>,
) -> Result<T, SpeechError> {
    let timer = async {
        smol::Timer::at(deadline).await;
        Err(remote(engine, format!("timed out {what}")))
    };
    fut.or(timer).await
}

impl Connection {
    /// Resolve `addr` (`host:port`) and connect, within `timeout`.
    pub async fn connect(engine: &'static str, addr: &str, timeout: Duration) -> Result<Self, SpeechError> {
        let deadline = Instant::now() + timeout;
        let what = format!("connecting to {addr} after {} ms", timeout.as_millis());
        let stream = before(engine, deadline, &what, async {
            let addrs = smol::net::resolve(addr)
                .await
                .map_err(|e| remote(engine, format!("cannot resolve {addr}: {e}")))?;
            let mut last = format!("{addr} resolves to no address");
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = format!("cannot connect to {addr}: {e}"),
                }
            }
            Err(remote(engine, last))
        })
        .await?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            engine,
            addr: addr.to_string(),
            stream,
            decoder: Decoder::default(),
            read_buf: vec![0; 16 * 1024],
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Write one event before `deadline`.
    pub async fn send(&mut self, event: &Event, deadline: Instant) -> Result<(), SpeechError> {
        let bytes = event.encode();
        let (engine, addr) = (self.engine, self.addr.clone());
        let stream = &mut self.stream;
        let what = format!("sending {} to {addr}", event.kind);
        before(engine, deadline, &what, async move {
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| remote(engine, format!("{addr} broke the connection: {e}")))
        })
        .await
    }

    /// Read the next event before `deadline`. A Wyoming `error` event becomes a `Remote` error
    /// carrying the server's text.
    pub async fn recv(&mut self, deadline: Instant, waiting_for: &str) -> Result<Event, SpeechError> {
        let engine = self.engine;
        let addr = self.addr.clone();
        let what = format!("waiting for {waiting_for} from {addr}");
        let event = before(engine, deadline, &what, async {
            loop {
                match self.decoder.next_event() {
                    Ok(Some(e)) => return Ok(e),
                    Ok(None) => {}
                    Err(e) => return Err(remote(engine, format!("{addr} sent a bad event: {e}"))),
                }
                let n = self
                    .stream
                    .read(&mut self.read_buf)
                    .await
                    .map_err(|e| remote(engine, format!("{addr} broke the connection: {e}")))?;
                if n == 0 {
                    return Err(remote(
                        engine,
                        format!("{addr} closed the connection while we waited for {waiting_for}"),
                    ));
                }
                self.decoder.feed(&self.read_buf[..n]);
            }
        })
        .await?;
        if event.kind == "error" {
            let text = event.text("text").unwrap_or("no text");
            let code = event.text("code").map(|c| format!(" ({c})")).unwrap_or_default();
            return Err(remote(engine, format!("{addr} reported an error{code}: {text}")));
        }
        Ok(event)
    }
}
