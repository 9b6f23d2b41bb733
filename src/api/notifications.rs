//! `/notifications`: call a list of people until enough acknowledge (`crate::notifier`).

use serde_json::json;
use tide::{Request, StatusCode};

use super::routes::{list_query, policy_refusal, read_body, store_failure};
use super::validate_notification::parse_notification_request;
use super::{detail, json, ApiState};
use crate::call::{CallRequest, Timestamp};
use crate::notifier::{NotifyCancelError, NotifySubmitError};
use crate::notify::{NotificationRecord, NotificationRequest, NotificationStatus};

pub(super) fn mount(app: &mut tide::Server<ApiState>) {
    app.at("/notifications").post(create).get(list);
    app.at("/notifications/:notification_id").get(show).delete(cancel);
}

/// The call one attempt on `extension` would place: what the policy, hook and engine checks see.
fn probe_call(r: &NotificationRequest, extension: &str) -> CallRequest {
    CallRequest {
        message: r.message.clone(),
        extension: extension.to_string(),
        callback_url: r.callback_url.clone(),
        ring_timeout: 30,
        choice: r.choice.clone(),
        call_id: None,
        language: r.language.clone(),
        voice: r.voice.clone(),
        not_before: None,
        notification_id: None,
    }
}

async fn create(mut req: Request<ApiState>) -> tide::Result {
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    let accepted = match parse_notification_request(&body, Timestamp::now()) {
        Ok(a) => a,
        Err(d) => return Ok(detail(StatusCode::BadRequest, d)),
    };
    let s = req.state();
    for t in &accepted.request.targets {
        if let Some(refusal) = policy_refusal(s, &probe_call(&accepted.request, &t.extension)) {
            tracing::warn!(refusal = %refusal, "POST /notifications refused by policy");
            return Ok(detail(StatusCode::Forbidden, refusal));
        }
    }
    let first = probe_call(&accepted.request, &accepted.request.targets[0].extension);
    let matcher = first.choice.as_ref().and_then(|c| c.matcher.as_deref());
    if let Err(d) = s.hooks.check_matcher(matcher) {
        return Ok(detail(StatusCode::BadRequest, d));
    }
    if let Err(d) = s.scheduler.engine().check_request(&first) {
        return Ok(detail(StatusCode::BadRequest, d));
    }
    Ok(
        match s.notifier.submit(accepted.requested_id, accepted.request).await {
            Ok(r) => json(
                StatusCode::Ok,
                &json!({"notification_id": r.notification_id, "status": "queued"}),
            ),
            Err(e @ NotifySubmitError::IdInUse(_)) => detail(StatusCode::Conflict, e.to_string()),
            Err(e @ (NotifySubmitError::ShuttingDown | NotifySubmitError::TooMany(_))) => {
                detail(StatusCode::ServiceUnavailable, e.to_string())
            }
            Err(NotifySubmitError::Store(e)) => {
                tracing::error!(error = %e, "cannot store a new notification");
                detail(
                    StatusCode::ServiceUnavailable,
                    format!("cannot store the notification: {e}"),
                )
            }
        },
    )
}

/// The record as shown: a pending webhook's attempts come from the outbox.
fn view(s: &ApiState, mut r: NotificationRecord) -> serde_json::Value {
    if let Some(w) = &r.webhook {
        if let Ok(Some(d)) = s.store.get_delivery(&w.id) {
            r.webhook = Some(d.view());
        }
    }
    serde_json::to_value(&r).unwrap_or_else(|_| json!({"notification_id": r.notification_id}))
}

async fn show(req: Request<ApiState>) -> tide::Result {
    let id = req.param("notification_id").unwrap_or_default();
    let s = req.state();
    Ok(match s.store.get_notification(id) {
        Ok(Some(r)) => json(StatusCode::Ok, &view(s, r)),
        Ok(None) => detail(StatusCode::NotFound, format!("notification '{id}' not found")),
        Err(e) => store_failure(e),
    })
}

async fn list(req: Request<ApiState>) -> tide::Result {
    let names = NotificationStatus::ALL.map(NotificationStatus::as_str);
    let (status, limit) = match list_query(req.url(), NotificationStatus::parse, &names) {
        Ok(q) => q,
        Err(d) => return Ok(detail(StatusCode::BadRequest, d)),
    };
    let s = req.state();
    Ok(match s.store.list_notifications(status, limit) {
        Ok(records) => {
            let list: Vec<_> = records.into_iter().map(|r| view(s, r)).collect();
            json(
                StatusCode::Ok,
                &json!({"count": list.len(), "notifications": list}),
            )
        }
        Err(e) => store_failure(e),
    })
}

async fn cancel(req: Request<ApiState>) -> tide::Result {
    let id = req.param("notification_id").unwrap_or_default();
    Ok(match req.state().notifier.cancel(id).await {
        Ok(r) => json(
            StatusCode::Ok,
            &json!({"notification_id": r.notification_id, "status": r.status, "message": "Notification cancelled"}),
        ),
        Err(e @ NotifyCancelError::NotFound(_)) => detail(StatusCode::NotFound, e.to_string()),
        Err(e @ NotifyCancelError::AlreadyFinished(..)) => detail(StatusCode::Conflict, e.to_string()),
        Err(e @ NotifyCancelError::ShuttingDown) => detail(StatusCode::ServiceUnavailable, e.to_string()),
        Err(NotifyCancelError::Store(e)) => store_failure(e),
    })
}
