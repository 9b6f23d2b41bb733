//! Route handlers. Each answers JSON; none returns a tide error (so nothing becomes a bare 500).

use futures_lite::AsyncReadExt;
use serde_json::json;
use tide::{Request, Response, StatusCode};

use super::validate::parse_call_request;
use super::{detail, json, ApiState, MAX_BODY_BYTES, OPENAPI_YAML};
use crate::call::{CallRecord, CallRequest, CallStatus};
use crate::scheduler::{CancelError, Cancelled, SubmitError};

pub(super) fn mount(app: &mut tide::Server<ApiState>) {
    app.at("/health").get(health);
    app.at("/call").post(create_call);
    app.at("/call/:call_id").get(call_status).delete(cancel_call);
    app.at("/calls").get(list_calls);
    app.at("/calls/:call_id").get(call_record);
    app.at("/openapi.yaml").get(openapi);
}

async fn health(req: Request<ApiState>) -> tide::Result {
    let s = req.state();
    let registered = s.scheduler.engine().sip_registered();
    let store_ok = s.store.is_writable();
    let healthy = s.supervisor.is_healthy() && store_ok && (!s.registrar_configured || registered);
    Ok(json(
        StatusCode::Ok,
        &json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "sip_registered": registered,
        }),
    ))
}

/// Read at most [`MAX_BODY_BYTES`]; larger bodies are refused with 413 without reading them all.
pub(super) async fn read_body(req: &mut Request<ApiState>) -> Result<Vec<u8>, Response> {
    let too_large = || {
        detail(
            StatusCode::PayloadTooLarge,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    if req.len().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
    req.take_body()
        .take(limit)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| detail(StatusCode::BadRequest, format!("cannot read request body: {e}")))?;
    if buf.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(buf)
}

async fn create_call(mut req: Request<ApiState>) -> tide::Result {
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    let accepted = match parse_call_request(&body) {
        Ok(a) => a,
        Err(d) => return Ok(detail(StatusCode::BadRequest, d)),
    };
    let s = req.state();
    if let Some(refusal) = policy_refusal(s, &accepted.request) {
        tracing::warn!(refusal = %refusal, "POST /call refused by policy");
        return Ok(detail(StatusCode::Forbidden, refusal));
    }
    let matcher = accepted
        .request
        .choice
        .as_ref()
        .and_then(|c| c.matcher.as_deref());
    if let Err(d) = s.hooks.check_matcher(matcher) {
        return Ok(detail(StatusCode::BadRequest, d));
    }
    if let Err(d) = s.scheduler.engine().check_request(&accepted.request) {
        return Ok(detail(StatusCode::BadRequest, d));
    }
    Ok(
        match s
            .scheduler
            .submit(accepted.requested_id.as_deref(), accepted.request)
            .await
        {
            Ok(record) => json(
                StatusCode::Ok,
                &json!({"call_id": record.call_id, "status": "queued", "message": "Call initiated"}),
            ),
            Err(e @ SubmitError::IdInUse(_)) => detail(StatusCode::Conflict, e.to_string()),
            Err(
                e
                @ (SubmitError::QueueFull(_) | SubmitError::TooManyScheduled(_) | SubmitError::ShuttingDown),
            ) => detail(StatusCode::ServiceUnavailable, e.to_string()),
            Err(SubmitError::Store(e)) => {
                tracing::error!(error = %e, "cannot store a new call");
                detail(
                    StatusCode::ServiceUnavailable,
                    format!("cannot store the call: {e}"),
                )
            }
        },
    )
}

/// Why the dial or callback policy refuses `request`, before anything is stored.
pub(super) fn policy_refusal(s: &ApiState, request: &CallRequest) -> Option<String> {
    if !s.dial.allows(&request.extension) {
        return Some(s.dial.refusal(&request.extension));
    }
    let url = request.callback_url.as_deref()?;
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!s.hosts.allows_host(host)).then(|| s.hosts.refusal(host, None))
}

pub(super) fn store_failure(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "store read failed");
    detail(StatusCode::ServiceUnavailable, format!("store unavailable: {e}"))
}

async fn call_status(req: Request<ApiState>) -> tide::Result {
    let id = req.param("call_id").unwrap_or_default();
    Ok(match req.state().store.get_call(id) {
        Ok(Some(r)) if r.is_in_progress() => json(
            StatusCode::Ok,
            &json!({"call_id": r.call_id, "status": "in_progress", "extension": r.extension}),
        ),
        Ok(_) => json(StatusCode::Ok, &json!({"call_id": id, "status": "not_found"})),
        Err(e) => store_failure(e),
    })
}

/// The record as shown by `GET /calls/{id}`: a pending webhook's attempts come from the outbox.
fn record_view(s: &ApiState, mut r: CallRecord) -> serde_json::Value {
    // The SIP dialog is for crash recovery, not part of the contract.
    r.dialog = None;
    if let Some(w) = &r.webhook {
        if let Ok(Some(d)) = s.store.get_delivery(&w.id) {
            r.webhook = Some(d.view());
        }
    }
    serde_json::to_value(&r).unwrap_or_else(|_| json!({"call_id": r.call_id}))
}

async fn call_record(req: Request<ApiState>) -> tide::Result {
    let id = req.param("call_id").unwrap_or_default();
    let s = req.state();
    Ok(match s.store.get_call(id) {
        Ok(Some(r)) => json(StatusCode::Ok, &record_view(s, r)),
        Ok(None) => detail(StatusCode::NotFound, format!("call '{id}' not found")),
        Err(e) => store_failure(e),
    })
}

/// A listing's `status` (one of `names`, read by `parse`) and `limit` (1-500, default 50), or
/// the `detail` of the 400 that says which is wrong.
pub(super) fn list_query<S>(
    url: &tide::http::Url,
    parse: fn(&str) -> Option<S>,
    names: &[&str],
) -> Result<(Option<S>, usize), String> {
    let mut status = None;
    let mut limit = 50usize;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "status" => match parse(&v) {
                Some(st) => status = Some(st),
                None => return Err(format!("status must be one of {}", names.join(", "))),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => limit = n,
                _ => return Err("limit must be an integer between 1 and 500".into()),
            },
            _ => {}
        }
    }
    Ok((status, limit))
}

async fn list_calls(req: Request<ApiState>) -> tide::Result {
    let names = CallStatus::ALL.map(CallStatus::as_str);
    let (status, limit) = match list_query(req.url(), CallStatus::parse, &names) {
        Ok(q) => q,
        Err(d) => return Ok(detail(StatusCode::BadRequest, d)),
    };
    let s = req.state();
    Ok(match s.store.list_calls(status, limit) {
        Ok(records) => {
            let calls: Vec<_> = records.into_iter().map(|r| record_view(s, r)).collect();
            json(StatusCode::Ok, &json!({"count": calls.len(), "calls": calls}))
        }
        Err(e) => store_failure(e),
    })
}

async fn cancel_call(req: Request<ApiState>) -> tide::Result {
    let id = req.param("call_id").unwrap_or_default();
    Ok(match req.state().scheduler.cancel(id).await {
        Ok(Cancelled::Queued(r)) => json(
            StatusCode::Ok,
            &json!({"call_id": r.call_id, "status": r.status, "message": "Call cancelled"}),
        ),
        Ok(Cancelled::HangupRequested(r)) => json(
            StatusCode::Accepted,
            &json!({"call_id": r.call_id, "status": r.status, "message": "Hang-up requested"}),
        ),
        Err(e @ CancelError::NotFound(_)) => detail(StatusCode::NotFound, e.to_string()),
        Err(e @ CancelError::AlreadyFinished(..)) => detail(StatusCode::Conflict, e.to_string()),
        Err(e @ CancelError::NotPersisted(_)) => {
            tracing::error!(call_id = %id, error = %e, "cannot store a cancellation");
            detail(StatusCode::ServiceUnavailable, e.to_string())
        }
        Err(CancelError::Store(e)) => store_failure(e),
    })
}

async fn openapi(_req: Request<ApiState>) -> tide::Result {
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(OPENAPI_YAML);
    res.set_content_type("application/yaml");
    Ok(res)
}
