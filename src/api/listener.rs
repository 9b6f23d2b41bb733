//! The API's accept loop: smol's TCP listener, async-h1 per connection, tide's router behind it.
//! Before each request the first word of the request line is peeked: a method the HTTP parser does
//! not know (`QUERY`, `FOO`) would make it drop the connection without a word, so such a request
//! gets `405` with `Allow` (on a route's path) or `501 Not Implemented` (elsewhere) with a JSON
//! `detail` here instead. Each request's body (up to [`super::MAX_BODY_BYTES`]) is read before
//! the request is routed ([`buffer_body`]). Accept errors (EMFILE) pause the loop briefly; they
//! never end it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};

use super::{detail, methods, ApiState, MAX_BODY_BYTES};

/// After an accept error (out of file descriptors...), wait this long before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(500);
/// A connection with no request for this long is closed (async-h1's own header timeout after).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest method token looked at; longer first words are unknown methods.
const MAX_METHOD: usize = 24;
/// Largest request head read (and discarded) before answering 405/501.
const MAX_HEAD: usize = 8 * 1024;
/// Longest wait for a request's body once its head has arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bind `addr` and serve `app` until the future is dropped; `on_bound` receives the real address.
pub async fn serve(
    app: tide::Server<ApiState>,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Small answers go out at once, not after the peer's delayed ACK (40 ms).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "API connection: TCP_NODELAY not set");
                }
                let app = app.clone();
                smol::spawn(connection(app, stream, peer)).detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "API accept failed; pausing");
                smol::Timer::after(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// What the next request on a connection starts with.
enum Next {
    /// A method the parser knows (or too little data to tell): let async-h1 read it.
    Parse,
    /// An unknown method.
    Unknown(String),
    /// Closed, or idle too long.
    Done,
}

async fn peek_method(stream: &TcpStream) -> Next {
    let mut buf = [0u8; MAX_METHOD + 1];
    let first = async { Some(stream.peek(&mut buf).await) };
    let idle = async {
        smol::Timer::after(IDLE_TIMEOUT).await;
        None
    };
    let mut n = match first.or(idle).await {
        Some(Ok(n)) if n > 0 => n,
        _ => return Next::Done,
    };
    // A client that sends its request line in pieces: look again for a short while.
    for _ in 0..20 {
        let seen = buf.get(..n).unwrap_or_default();
        if let Some(end) = seen.iter().position(|b| *b == b' ') {
            let token = String::from_utf8_lossy(seen.get(..end).unwrap_or_default()).into_owned();
            return if methods::is_known(&token) {
                Next::Parse
            } else {
                Next::Unknown(token)
            };
        }
        if n > MAX_METHOD {
            return Next::Unknown(String::from_utf8_lossy(seen).into_owned());
        }
        smol::Timer::after(Duration::from_millis(25)).await;
        n = match stream.peek(&mut buf).await {
            Ok(n) if n > 0 => n,
            _ => return Next::Done,
        };
    }
    Next::Parse
}

/// Read (and drop) the request head, so closing does not reset the answer away, then answer it.
async fn refuse(mut stream: TcpStream, token: &str, peer: SocketAddr) {
    tracing::debug!(%peer, method = %token, "API request with an unknown method: 405/501");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while head.len() < MAX_HEAD && !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    };
    let limit = async {
        smol::Timer::after(Duration::from_secs(5)).await;
    };
    read.or(limit).await;
    let line = head
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    let target = String::from_utf8_lossy(line.split(|b| *b == b' ').nth(1).unwrap_or_default()).into_owned();
    let _ = stream.write_all(&methods::refusal(token, &target)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Read `req`'s body into memory (at most [`MAX_BODY_BYTES`] + 1 bytes) before it is routed, and
/// say whether all of it was read. async-h1 reads a connection through a buffer that lives as long as
/// one request: a body left unread until after the answer is drained then, and by that time a client
/// on a keep-alive connection may have sent its next request, which the drain's buffer swallows (the
/// connection then hangs; schemathesis found it with a 405 to a request with a body). A body over the
/// limit is left to the route (413) and the connection is closed after the answer.
async fn buffer_body(req: &mut http_types::Request) -> Result<bool, String> {
    if req.len() == Some(0) {
        return Ok(true);
    }
    if req.len().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Ok(false);
    }
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
    let mut buf = Vec::new();
    let mut body = req.take_body().take(limit);
    let read = async { Some(body.read_to_end(&mut buf).await) };
    let late = async {
        smol::Timer::after(BODY_TIMEOUT).await;
        None
    };
    match read.or(late).await {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(format!("cannot read request body: {e}")),
        None => {
            return Err(format!(
                "request body not received within {} s",
                BODY_TIMEOUT.as_secs()
            ))
        }
    }
    let whole = buf.len() <= MAX_BODY_BYTES;
    let typed = req.header(http_types::headers::CONTENT_TYPE).is_some();
    req.set_body(http_types::Body::from_bytes(buf));
    if !typed {
        // set_body names a type; the route must see what the client sent.
        req.remove_header(http_types::headers::CONTENT_TYPE);
    }
    Ok(whole)
}

async fn connection(app: tide::Server<ApiState>, stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().ok();
    let reader = stream.clone();
    let endpoint = |mut req: http_types::Request| {
        let app = app.clone();
        let reader = reader.clone();
        async move {
            req.set_local_addr(local);
            req.set_peer_addr(Some(peer));
            let whole = match buffer_body(&mut req).await {
                Ok(whole) => whole,
                Err(e) => {
                    // Nothing more is read from this connection (async-h1 would wait for the rest
                    // of the body after answering); the answer still goes out, then it closes.
                    let _ = reader.shutdown(std::net::Shutdown::Read);
                    let mut res: http_types::Response = detail(tide::StatusCode::BadRequest, e).into();
                    res.insert_header(http_types::headers::CONNECTION, "close");
                    return Ok(res);
                }
            };
            let mut res: http_types::Response = app.respond(req).await?;
            if !whole {
                res.insert_header(http_types::headers::CONNECTION, "close");
            }
            Ok(res)
        }
    };
    let mut server = async_h1::server::Server::new(stream.clone(), endpoint);
    loop {
        match peek_method(&stream).await {
            Next::Parse => {}
            Next::Unknown(token) => return refuse(stream, &token, peer).await,
            Next::Done => return,
        }
        match server.accept_one().await {
            Ok(async_h1::server::ConnectionStatus::KeepAlive) => {}
            Ok(async_h1::server::ConnectionStatus::Close) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "API connection closed on a bad request");
                return;
            }
        }
    }
}
