//! The webhook HTTP client: surf on top of a small transport of ours (async-h1 over smol TCP, TLS
//! from the system's OpenSSL through native-tls). Ours because it enforces a separate connect
//! timeout and resolves names without blocking the executor. The only module that names surf.

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, FutureExt};
use http_client::{Config, Error as HttpClientError, HttpClient, Request, Response};

/// Why a POST got no HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid webhook URL: {0}")]
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
}

async fn connect(addr: &str, port: u16, timeout: Duration) -> Result<smol::net::TcpStream, HttpClientError> {
    let attempt = async {
        let addrs = smol::net::resolve((addr, port)).await?;
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

#[async_trait::async_trait]
impl HttpClient for Transport {
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
        let stream = connect(&host, port, self.connect_timeout).await?;
        req.set_peer_addr(stream.peer_addr().ok());
        req.set_local_addr(stream.local_addr().ok());
        match url.scheme() {
            "http" => async_h1::connect(stream, req).await,
            "https" => {
                let tls = async_native_tls::TlsConnector::new()
                    .connect(host.as_str(), stream)
                    .await
                    .map_err(|e| HttpClientError::from_str(500, format!("TLS: {e}")))?;
                async_h1::connect(tls, req).await
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

/// Posts webhook bodies with a connect timeout and a total timeout.
#[derive(Clone)]
pub struct WebhookClient {
    client: surf::Client,
    total_timeout: Duration,
}

impl WebhookClient {
    pub fn new(connect_timeout: Duration, total_timeout: Duration) -> Self {
        let transport = Transport {
            connect_timeout,
            config: Config::new().set_timeout(Some(total_timeout)),
        };
        Self {
            client: surf::Client::with_http_client(transport),
            total_timeout,
        }
    }

    /// POST `body` as JSON with `headers`; the whole exchange is bounded by the total timeout.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Result<PostResponse, HttpError> {
        let parsed = surf::Url::parse(url).map_err(|e| HttpError::Url(e.to_string()))?;
        let mut builder = self
            .client
            .post(parsed)
            .header("User-Agent", concat!("sip-assistant/", env!("CARGO_PKG_VERSION")))
            .content_type("application/json")
            .body_string(body.to_string());
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let started = Instant::now();
        let total = self.total_timeout;
        let exchange = async {
            let mut resp = builder.await.map_err(|e| HttpError::Transport(e.to_string()))?;
            // Drain a bounded amount of the body so the connection ends cleanly.
            let _ = resp
                .take_body()
                .into_reader()
                .take(64 * 1024)
                .read_to_end(&mut Vec::new())
                .await;
            Ok(PostResponse {
                status: u16::from(resp.status()),
                retry_after: resp.header("Retry-After").map(|v| v.as_str().to_string()),
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
