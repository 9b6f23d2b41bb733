//! The REST API on tide: the only module that names tide. Routes are in [`routes`], request
//! validation in [`validate`]. Every error is JSON `{"detail": "..."}`, also tide's own 404/405.

mod hooks;
mod listener;
pub mod methods;
mod notifications;
mod routes;
#[cfg(test)]
mod tests;
pub mod validate;
pub mod validate_notification;

use std::net::SocketAddr;
use std::sync::Arc;

use tide::http::headers::HeaderValue;
use tide::{Middleware, Next, Request, Response, StatusCode};

use crate::config::Secret;
use crate::hooks::Hooks;
use crate::policy::{Admit, DialPolicy, HostPolicy, RateLimiter};
use crate::scheduler::Scheduler;
use crate::store::Store;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The document served at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub scheduler: Scheduler,
    pub notifier: crate::notifier::Notifier,
    pub store: Arc<Store>,
    pub token: Option<Secret>,
    /// A registrar is configured, so health depends on registration.
    pub registrar_configured: bool,
    /// The WebAssembly choice hooks (`GET /hooks`, `choice.matcher` checks).
    pub hooks: Hooks,
    /// Who may be dialled (`calls.dial_allow`).
    pub dial: DialPolicy,
    /// Where callbacks may go (`webhook.allow_hosts`).
    pub hosts: Arc<HostPolicy>,
    /// Requests per client address (`api.rate_limit_*`).
    pub limiter: Arc<std::sync::Mutex<RateLimiter>>,
    /// Catches failed core tasks; any failure makes `GET /health` unhealthy.
    pub supervisor: crate::supervise::Supervisor,
}

/// JSON response with `status` and `body`.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut res = Response::new(status);
    res.set_body(tide::Body::from_json(body).unwrap_or_else(|_| tide::Body::from_string("{}".into())));
    res.set_content_type(tide::http::mime::JSON);
    res
}

/// `{"detail": ...}` with `status`.
pub(crate) fn detail(status: StatusCode, detail: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "detail": detail.into() }))
}

/// Builds the router with its middleware.
pub fn router(state: ApiState) -> tide::Server<ApiState> {
    let mut app = tide::with_state(state);
    app.with(JsonErrors);
    app.with(RateLimit);
    app.with(BearerAuth);
    routes::mount(&mut app);
    notifications::mount(&mut app);
    hooks::mount(&mut app);
    app
}

/// Bind `addr` and serve until the future is dropped. `on_bound` receives the real address
/// (useful with port 0). Unknown methods get 501 ([`listener`]).
pub async fn serve(
    app: tide::Server<ApiState>,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    listener::serve(app, addr, on_bound).await
}

/// Turns tide's empty error responses (unknown route, wrong method, handler error) into JSON.
struct JsonErrors;

#[tide::utils::async_trait]
impl Middleware<ApiState> for JsonErrors {
    async fn handle(&self, req: Request<ApiState>, next: Next<'_, ApiState>) -> tide::Result {
        let method = req.method().to_string();
        let path = req.url().path().to_string();
        let res = next.run(req).await;
        let status = res.status();
        let is_json = res
            .content_type()
            .is_some_and(|m| m.essence() == "application/json");
        if !status.is_client_error() && !status.is_server_error() || is_json {
            return Ok(res);
        }
        if let Some(err) = res.error() {
            tracing::error!(%method, %path, error = %err, "request failed");
        }
        let text = match status {
            StatusCode::NotFound => format!("no route for {method} {path}"),
            StatusCode::MethodNotAllowed => format!("method {method} is not allowed on {path}"),
            s if s.is_server_error() => "internal error; see the service log".to_string(),
            s => s.canonical_reason().to_string(),
        };
        let mut out = detail(status, text);
        for (name, values) in res.iter() {
            if name.as_str().eq_ignore_ascii_case("allow") {
                out.insert_header(name.clone(), values.last().clone());
            }
        }
        // Every 405 says what the route takes (tide's router does not).
        if status == StatusCode::MethodNotAllowed && out.header("Allow").is_none() {
            if let Some(allow) = methods::allowed(&path) {
                out.insert_header("Allow", allow);
            }
        }
        Ok(out)
    }
}

/// Refuses a client's requests beyond `api.rate_limit_*` with 429 and `Retry-After` (`/health` is
/// never limited, so supervisors always reach it). Requests without a peer address (in-process
/// tests) are not limited.
struct RateLimit;

#[tide::utils::async_trait]
impl Middleware<ApiState> for RateLimit {
    async fn handle(&self, req: Request<ApiState>, next: Next<'_, ApiState>) -> tide::Result {
        let client = req
            .peer_addr()
            .and_then(|p| p.parse::<SocketAddr>().ok())
            .map(|a| a.ip());
        if let (Some(ip), false) = (client, req.url().path() == "/health") {
            let admit = {
                let mut limiter = req.state().limiter.lock().unwrap_or_else(|p| p.into_inner());
                limiter.handle_request(std::time::Instant::now(), ip)
            };
            if let Admit::No { retry_after } = admit {
                tracing::warn!(client = %ip, "request refused: over api.rate_limit_per_second");
                let mut res = detail(
                    StatusCode::TooManyRequests,
                    "too many requests from this client (api.rate_limit_per_second); retry later",
                );
                let secs = retry_after.as_secs_f64().ceil().max(1.0);
                res.insert_header("Retry-After", format!("{secs:.0}"));
                return Ok(res);
            }
        }
        Ok(next.run(req).await)
    }
}

/// Requires `Authorization: Bearer <api.token>` on every route but `/health` when a token is set.
struct BearerAuth;

#[tide::utils::async_trait]
impl Middleware<ApiState> for BearerAuth {
    async fn handle(&self, req: Request<ApiState>, next: Next<'_, ApiState>) -> tide::Result {
        let Some(token) = req.state().token.clone() else {
            return Ok(next.run(req).await);
        };
        if req.url().path() == "/health" {
            return Ok(next.run(req).await);
        }
        let presented = req
            .header("Authorization")
            .and_then(|v| v.last().as_str().strip_prefix("Bearer ").map(str::to_string));
        if presented.is_some_and(|p| constant_time_eq(p.trim().as_bytes(), token.expose().as_bytes())) {
            return Ok(next.run(req).await);
        }
        let mut res = detail(StatusCode::Unauthorized, "missing or invalid bearer token");
        res.insert_header(
            "WWW-Authenticate",
            HeaderValue::from_bytes(b"Bearer".to_vec()).unwrap_or_else(|_| unreachable!("static header")),
        );
        Ok(res)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
