//! The HTTP client: surf on top of a small transport of ours (async-h1 over smol TCP, TLS
//! from the system's OpenSSL through native-tls). Ours because it enforces a separate connect
//! timeout and resolves names without blocking the executor. The only module that names surf;
//! [`HttpClient`] serves the webhooks, the remote speech engines and model downloads
//! (`sip-assistant models fetch`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, FutureExt};
use http_client::{Config, Error as HttpClientError, HttpClient as SendHttp, Request, Response};

use crate::policy::HostPolicy;

/// Why a POST got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("{0}")]
    Transport(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
}

/// The response of one POST.
#[derive(Debug, Clone)]
pub struct PostResponse {
    pub status: u16,
    pub retry_after: Option<String>,
}

#[derive(Debug)]
struct Transport {
    connect_timeout: Duration,
    config: Config,
    /// Where connections may go; `None` for servers the operator configured (speech engines).
    hosts: Option<Arc<HostPolicy>>,
}

/// Resolve `addr` once, keep the addresses `hosts` allows, and connect to one of them: the
/// address checked is the address connected to, so a name cannot be re-resolved elsewhere.
async fn connect(
    addr: &str,
    port: u16,
    timeout: Duration,
    hosts: Option<&HostPolicy>,
) -> Result<smol::net::TcpStream, HttpClientError> {
    if let Some(policy) = hosts {
        if !policy.allows_host(addr) {
            return Err(HttpClientError::from_str(403, policy.refusal(addr, None)));
        }
    }
    let attempt = async {
        let mut addrs = smol::net::resolve((addr, port)).await?;
        if let Some(policy) = hosts {
            addrs = allowed_addrs(policy, addr, addrs)
                .map_err(|refusal| std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal))?;
        }
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to nothing"),
        );
        for a in addrs {
            match smol::net::TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let timed = async {
        smol::Timer::after(timeout).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect timed out after {} ms", timeout.as_millis()),
        ))
    };
    attempt
        .or(timed)
        .await
        .map_err(|e| HttpClientError::from_str(500, e.to_string()))
}

/// The addresses `host` resolved to that `policy` allows, or the refusal naming the first one.
fn allowed_addrs(policy: &HostPolicy, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let first = addrs.first().map(SocketAddr::ip);
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| policy.allows_addr(host, a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(policy.refusal(host, first));
    }
    Ok(allowed)
}

#[async_trait::async_trait]
impl SendHttp for Transport {
    async fn send(&self, mut req: Request) -> Result<Response, HttpClientError> {
        let url = req.url().clone();
        let host = url
            .host_str()
            .ok_or_else(|| HttpClientError::from_str(400, "URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| HttpClientError::from_str(400, "URL has no port"))?;
        let stream = connect(&host, port, self.connect_timeout, self.hosts.as_deref()).await?;
        req.set_peer_addr(stream.peer_addr().ok());
        req.set_local_addr(stream.local_addr().ok());
        match url.scheme() {
            "http" => async_h1::connect(Http10Tolerant::new(stream), req).await,
            "https" => {
                let tls = async_native_tls::TlsConnector::new()
                    .connect(host.as_str(), stream)
                    .await
                    .map_err(|e| HttpClientError::from_str(500, format!("TLS: {e}")))?;
                async_h1::connect(Http10Tolerant::new(tls), req).await
            }
            other => Err(HttpClientError::from_str(
                400,
                format!("unsupported scheme {other}"),
            )),
        }
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

/// async-h1's client refuses responses whose status line says `HTTP/1.0`, which simple receivers
/// (Python's `http.server`, many embedded devices) send. We make one request per connection and
/// need only the status and headers, so the first status line's `HTTP/1.0` is read as `HTTP/1.1`.
struct Http10Tolerant<S> {
    inner: S,
    /// Bytes of the response read so far, up to the version digit.
    seen: [u8; 8],
    offset: usize,
}

impl<S> Http10Tolerant<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            seen: [0; 8],
            offset: 0,
        }
    }

    /// Look at freshly read bytes; rewrite the minor version digit of `HTTP/1.0`.
    fn inspect(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            if self.offset >= self.seen.len() {
                return;
            }
            self.seen[self.offset] = *b;
            if self.offset == 7 && &self.seen[..7] == b"HTTP/1." && *b == b'0' {
                *b = b'1';
            }
            self.offset += 1;
        }
    }
}

impl<S: futures_lite::AsyncRead + Unpin> futures_lite::AsyncRead for Http10Tolerant<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            let n = *n;
            self.inspect(&mut buf[..n]);
        }
        poll
    }
}

impl<S: futures_lite::AsyncWrite + Unpin> futures_lite::AsyncWrite for Http10Tolerant<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A response with its body read up to the caller's limit.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than the limit and was cut there.
    pub truncated: bool,
    /// Reading the body failed after the status and headers arrived (`body` holds what came).
    pub body_error: Option<String>,
}

/// The project's HTTP client (webhooks, remote speech engines): surf over the transport above,
/// with a connect timeout and a total timeout that covers the response body too.
#[derive(Clone)]
pub struct HttpClient {
    client: surf::Client,
    total_timeout: Duration,
}

impl HttpClient {
    /// A client for servers the operator configured (no host policy).
    pub fn new(connect_timeout: Duration, total_timeout: Duration) -> Self {
        Self::build(connect_timeout, total_timeout, None)
    }

    /// A client for URLs that requests name: every connection is checked against `hosts`.
    pub fn with_host_policy(
        connect_timeout: Duration,
        total_timeout: Duration,
        hosts: Arc<HostPolicy>,
    ) -> Self {
        Self::build(connect_timeout, total_timeout, Some(hosts))
    }

    fn build(connect_timeout: Duration, total_timeout: Duration, hosts: Option<Arc<HostPolicy>>) -> Self {
        let transport = Transport {
            connect_timeout,
            config: Config::new().set_timeout(Some(total_timeout)),
            hosts,
        };
        Self {
            client: surf::Client::with_http_client(transport),
            total_timeout,
        }
    }

    /// Send `method url` with `headers` and an optional `(content type, body)`; read at most
    /// `body_limit` bytes of the response body. The whole exchange is bounded by the total timeout.
    pub async fn send(
        &self,
        method: http_types::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
        body_limit: usize,
    ) -> Result<HttpResponse, HttpError> {
        let parsed = surf::Url::parse(url).map_err(|e| HttpError::Url(e.to_string()))?;
        let mut builder = surf::RequestBuilder::new(method, parsed)
            .header("User-Agent", concat!("sip-assistant/", env!("CARGO_PKG_VERSION")));
        if let Some((content_type, bytes)) = body {
            builder = builder.content_type(content_type).body_bytes(bytes);
        }
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.build();
        let started = Instant::now();
        let total = self.total_timeout;
        let exchange = async {
            let mut resp = self
                .client
                .send(request)
                .await
                .map_err(|e| HttpError::Transport(e.to_string()))?;
            let limit = u64::try_from(body_limit).unwrap_or(u64::MAX);
            let mut body = Vec::new();
            let body_error = resp
                .take_body()
                .into_reader()
                .take(limit.saturating_add(1))
                .read_to_end(&mut body)
                .await
                .err()
                .map(|e| e.to_string());
            let truncated = body.len() > body_limit;
            body.truncate(body_limit);
            Ok(HttpResponse {
                status: u16::from(resp.status()),
                content_type: resp.header("Content-Type").map(|v| v.as_str().to_string()),
                retry_after: resp.header("Retry-After").map(|v| v.as_str().to_string()),
                body,
                truncated,
                body_error,
            })
        };
        let timeout = async {
            smol::Timer::at(started + total).await;
            Err(HttpError::Timeout(
                u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
            ))
        };
        exchange.or(timeout).await
    }
}

/// A response whose body is read as it arrives, in chunks (model downloads): the status and the
/// headers a download needs, then [`StreamingResponse::read_chunk`] until it returns 0.
pub struct StreamingResponse {
    pub status: u16,
    /// `Location` of a redirect.
    pub location: Option<String>,
    pub content_length: Option<u64>,
    /// `Content-Range` of a 206 or 416 answer.
    pub content_range: Option<String>,
    response: surf::Response,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("location", &self.location)
            .field("content_length", &self.content_length)
            .field("content_range", &self.content_range)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    /// Read the next bytes of the body into `buf`; 0 at its end. A read that brings nothing for
    /// `idle` fails with [`HttpError::Timeout`].
    pub async fn read_chunk(&mut self, buf: &mut [u8], idle: Duration) -> Result<usize, HttpError> {
        let read = async {
            self.response
                .read(buf)
                .await
                .map_err(|e| HttpError::Transport(e.to_string()))
        };
        let timeout = async {
            smol::Timer::after(idle).await;
            Err(HttpError::Timeout(
                u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            ))
        };
        read.or(timeout).await
    }
}

impl HttpClient {
    /// `GET url` with `headers`; the status and headers must arrive within the total timeout, the
    /// body is left to [`StreamingResponse::read_chunk`]. Redirects are not followed.
    pub async fn get_streaming(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<StreamingResponse, HttpError> {
        let parsed = surf::Url::parse(url).map_err(|e| HttpError::Url(e.to_string()))?;
        let mut builder = surf::RequestBuilder::new(http_types::Method::Get, parsed)
            .header("User-Agent", concat!("sip-assistant/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder.build();
        let total = self.total_timeout;
        let exchange = async {
            self.client
                .send(request)
                .await
                .map_err(|e| HttpError::Transport(e.to_string()))
        };
        let timeout = async {
            smol::Timer::after(total).await;
            Err(HttpError::Timeout(
                u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
            ))
        };
        let response = exchange.or(timeout).await?;
        let header = |name: &str| response.header(name).map(|v| v.as_str().to_string());
        Ok(StreamingResponse {
            status: u16::from(response.status()),
            location: header("Location"),
            content_length: header("Content-Length").and_then(|v| v.trim().parse().ok()),
            content_range: header("Content-Range"),
            response,
        })
    }
}

/// Posts webhook bodies with a connect timeout and a total timeout.
#[derive(Clone)]
pub struct WebhookClient {
    http: HttpClient,
}

impl WebhookClient {
    /// Callbacks go only where `hosts` allows (`webhook.allow_hosts`).
    pub fn new(connect_timeout: Duration, total_timeout: Duration, hosts: Arc<HostPolicy>) -> Self {
        Self {
            http: HttpClient::with_host_policy(connect_timeout, total_timeout, hosts),
        }
    }

    /// POST `body` as JSON with `headers`; the whole exchange is bounded by the total timeout.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<PostResponse, HttpError> {
        // A bounded amount of the body is drained so the connection ends cleanly.
        let resp = self
            .http
            .send(
                http_types::Method::Post,
                url,
                headers,
                Some(("application/json", body.as_bytes().to_vec())),
                64 * 1024,
            )
            .await?;
        Ok(PostResponse {
            status: resp.status,
            retry_after: resp.retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{allowed_addrs, Http10Tolerant};
    use crate::policy::HostPolicy;

    #[test]
    fn a_name_that_resolves_to_loopback_is_not_connected_to() {
        let open = HostPolicy::default();
        let addrs = |list: &[&str]| list.iter().map(|a| a.parse().expect("addr")).collect::<Vec<_>>();
        let refusal = allowed_addrs(&open, "rebind.example", addrs(&["127.0.0.1:80"])).expect_err("loopback");
        assert!(
            refusal.contains("rebind.example") && refusal.contains("127.0.0.1"),
            "{refusal}"
        );
        assert_eq!(
            allowed_addrs(
                &open,
                "mixed.example",
                addrs(&["169.254.169.254:80", "192.168.1.5:80"])
            ),
            Ok(addrs(&["192.168.1.5:80"])),
            "only the checked addresses are tried"
        );
        let listed = HostPolicy::new(&["127.0.0.1".to_string()]).expect("policy");
        assert_eq!(
            allowed_addrs(&listed, "localhost", addrs(&["[::1]:80", "127.0.0.1:80"])),
            Ok(addrs(&["127.0.0.1:80"]))
        );
    }

    fn feed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut t = Http10Tolerant::new(());
        let mut out = Vec::new();
        for c in chunks {
            let mut b = c.to_vec();
            t.inspect(&mut b);
            out.extend(b);
        }
        out
    }

    #[test]
    fn only_the_first_status_line_version_changes() {
        assert_eq!(feed(&[b"HTTP/1.0 200 OK\r\n"]), b"HTTP/1.1 200 OK\r\n");
        assert_eq!(feed(&[b"HTT", b"P/1.", b"0 503 x"]), b"HTTP/1.1 503 x");
        assert_eq!(feed(&[b"HTTP/1.1 200 OK"]), b"HTTP/1.1 200 OK");
        assert_eq!(feed(&[b"HTTP/2.0 200"]), b"HTTP/2.0 200");
        assert_eq!(
            feed(&[b"HTTP/1.1 200 OK\r\nX: HTTP/1.0\r\n"]),
            b"HTTP/1.1 200 OK\r\nX: HTTP/1.0\r\n"
        );
    }
}
