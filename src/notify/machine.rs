//! The notification state machine, sans-IO: it works on the [`NotificationRecord`] (which the shell
//! stores after every step) and says what to do as [`Action`]s. `now` is an argument.
//!
//! - [`advance`]: whatever is due at `now`: the next call(s), a wait (`next_attempt_at`), the end.
//! - [`attempt_ended`]: an attempt's call ended with this result (idempotent: the same end fed
//!   twice, as after a restart, changes nothing the second time).
//! - [`cancel`]: stop; running attempts are hung up.
//!
//! Rules: sequential places one call at a time in target order, parallel places a round's calls
//! at once; a target that acknowledged or refused (603 Decline, or a `refuse` option) is never
//! called again; busy, no answer and failures are tried again in the next round, which starts
//! `round_interval_seconds` after the previous round's last call ended. The notification is
//! `acknowledged` once `quorum` distinct targets acknowledged (the others still ringing are hung
//! up), `exhausted` when the rounds are over or too few targets are left to reach the quorum. It
//! is settled (`ended_at`, final webhook) once its status is final and no attempt still runs.

use jiff::tz::TimeZone;

use super::model::{Acknowledgement, Attempt, NotificationRecord, NotificationStatus, Waiting};
use super::quiet::earliest_start;
use crate::call::{CallStatus, Timestamp};

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Place the call of `attempts[index]` (already in the record, status `queued`). Store the
    /// record before placing it.
    Dial { index: usize, call_id: String },
    /// End the running or waiting call `call_id`.
    HangUp { call_id: String },
    /// The notification is settled: store it with its final webhook.
    Settle,
}

/// How an attempt's call ended (from its final call record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub status: CallStatus,
    pub error: Option<String>,
    pub message_played: bool,
    pub choice_response: Option<String>,
}

impl CallResult {
    /// A 603 Decline (the far end refused the call outright).
    fn declined(&self) -> bool {
        self.status == CallStatus::Busy && self.error.as_deref().is_some_and(|e| e.starts_with("603"))
    }
}

fn acknowledged_targets(r: &NotificationRecord) -> usize {
    r.acknowledged_by.len()
}

/// Targets that may still be called: neither acknowledged nor refused.
fn eligible(r: &NotificationRecord, target: usize) -> bool {
    !r.attempts
        .iter()
        .any(|a| a.target == target && (a.acknowledged || a.refused))
}

fn eligible_count(r: &NotificationRecord) -> usize {
    (0..r.request.targets.len()).filter(|&t| eligible(r, t)).count()
}

/// Make the status final with `reason`; hang up what still runs.
fn conclude(
    r: &mut NotificationRecord,
    status: NotificationStatus,
    reason: String,
    now: Timestamp,
) -> Vec<Action> {
    r.status = status;
    r.reason = Some(reason);
    r.next_attempt_at = None;
    r.waiting = None;
    r.updated_at = now;
    r.in_flight()
        .map(|a| Action::HangUp {
            call_id: a.call_id.clone(),
        })
        .collect()
}

/// Settle a final notification once nothing runs.
fn settle_if_quiet(r: &mut NotificationRecord, now: Timestamp, out: &mut Vec<Action>) {
    if r.status.is_final() && !r.is_settled() && r.in_flight().next().is_none() {
        r.ended_at = Some(now);
        r.updated_at = now;
        out.push(Action::Settle);
    }
}

/// The targets the next step dials, or `None` when the current round has nothing left.
fn next_targets(r: &NotificationRecord) -> Option<Vec<usize>> {
    let n = r.request.targets.len();
    if r.round == 0 {
        return None;
    }
    let this_round: Vec<&Attempt> = r.attempts.iter().filter(|a| a.round == r.round).collect();
    match r.request.strategy {
        super::model::Strategy::Parallel => None,
        super::model::Strategy::Sequential => {
            let after = this_round.iter().map(|a| a.target + 1).max().unwrap_or(0);
            (after..n).find(|&t| eligible(r, t)).map(|t| vec![t])
        }
    }
}

/// Targets of a new round: sequential starts with the first eligible one, parallel takes all.
fn round_targets(r: &NotificationRecord) -> Vec<usize> {
    let all = (0..r.request.targets.len()).filter(|&t| eligible(r, t));
    match r.request.strategy {
        super::model::Strategy::Parallel => all.collect(),
        super::model::Strategy::Sequential => all.take(1).collect(),
    }
}

/// Do whatever is due at `now`. `tz` is the quiet hours' time zone (UTC without quiet hours).
pub fn advance(r: &mut NotificationRecord, now: Timestamp, tz: &TimeZone) -> Vec<Action> {
    let mut out = Vec::new();
    if r.status.is_final() {
        settle_if_quiet(r, now, &mut out);
        return out;
    }
    let quorum = r.request.quorum as usize;
    if acknowledged_targets(r) >= quorum {
        let who: Vec<&str> = r.acknowledged_by.iter().map(|a| a.extension.as_str()).collect();
        let reason = format!("acknowledged by {}", who.join(", "));
        out = conclude(r, NotificationStatus::Acknowledged, reason, now);
        settle_if_quiet(r, now, &mut out);
        return out;
    }
    if acknowledged_targets(r) + eligible_count(r) < quorum {
        let reason = format!(
            "the quorum of {quorum} cannot be reached: {} acknowledged, the other targets refused",
            acknowledged_targets(r)
        );
        out = conclude(r, NotificationStatus::Exhausted, reason, now);
        settle_if_quiet(r, now, &mut out);
        return out;
    }
    if r.in_flight().next().is_some() {
        // Sequential: one call at a time; parallel: the round's calls run out first.
        return out;
    }
    let (round, targets) = match next_targets(r) {
        Some(t) => (r.round, t),
        None => {
            if r.round >= r.request.rounds {
                let reason = format!(
                    "no acknowledgement from {quorum} target(s) after {} round(s)",
                    r.request.rounds
                );
                out = conclude(r, NotificationStatus::Exhausted, reason, now);
                settle_if_quiet(r, now, &mut out);
                return out;
            }
            if r.round > 0 {
                let last_end = r
                    .attempts
                    .iter()
                    .filter(|a| a.round == r.round)
                    .filter_map(|a| a.ended_at)
                    .max()
                    .unwrap_or(now);
                let due = last_end.plus_millis(u64::from(r.request.round_interval_seconds) * 1000);
                if due > now {
                    r.next_attempt_at = Some(due);
                    r.waiting = Some(Waiting::RoundInterval);
                    return out;
                }
            }
            (r.round + 1, round_targets(r))
        }
    };
    let (start, why) = earliest_start(now, &r.request, tz);
    if start > now {
        r.next_attempt_at = Some(start);
        r.waiting = why;
        return out;
    }
    r.round = round;
    r.next_attempt_at = None;
    r.waiting = None;
    r.status = NotificationStatus::Running;
    r.updated_at = now;
    for t in targets {
        let call_id = r.attempt_call_id(round, t);
        r.attempts.push(Attempt {
            round,
            target: t,
            extension: r.request.targets[t].extension.clone(),
            call_id: call_id.clone(),
            status: CallStatus::Queued,
            choice_response: None,
            error: None,
            acknowledged: false,
            refused: false,
            created_at: now,
            ended_at: None,
        });
        out.push(Action::Dial {
            index: r.attempts.len() - 1,
            call_id,
        });
    }
    out
}

/// Record the end of the attempt whose call is `call_id`; false when there is no such running
/// attempt (unknown, or already ended: feeding an end twice is harmless). Follow with [`advance`].
pub fn attempt_ended(r: &mut NotificationRecord, call_id: &str, result: &CallResult, now: Timestamp) -> bool {
    let acknowledge = &r.request.acknowledge;
    let refuse = &r.request.refuse;
    let with_choice = r.request.choice.is_some();
    let Some(a) = r
        .attempts
        .iter_mut()
        .find(|a| a.call_id == call_id && !a.is_final())
    else {
        return false;
    };
    // A call record is final by contract; anything else counts as a failure.
    a.status = if result.status.is_final() {
        result.status
    } else {
        CallStatus::Failed
    };
    a.error = result.error.clone();
    a.choice_response = result.choice_response.clone();
    a.ended_at = Some(now);
    let picked = |set: &[String]| {
        result
            .choice_response
            .as_ref()
            .is_some_and(|c| set.iter().any(|v| v == c))
    };
    a.acknowledged = result.status == CallStatus::Completed
        && if with_choice {
            picked(acknowledge)
        } else {
            result.message_played
        };
    a.refused = !a.acknowledged && (result.declined() || picked(refuse));
    let ack = a.acknowledged.then(|| Acknowledgement {
        target: a.target,
        extension: a.extension.clone(),
        call_id: a.call_id.clone(),
        at: now,
        choice_response: a.choice_response.clone(),
    });
    if let Some(ack) = ack {
        if !r.acknowledged_by.iter().any(|x| x.target == ack.target) {
            r.acknowledged_by.push(ack);
        }
    }
    r.updated_at = now;
    true
}

/// `DELETE /notifications/{id}`: no new calls, running ones are hung up. False when it was
/// already final.
pub fn cancel(r: &mut NotificationRecord, now: Timestamp) -> (bool, Vec<Action>) {
    if r.status.is_final() {
        return (false, Vec::new());
    }
    let mut out = conclude(
        r,
        NotificationStatus::Cancelled,
        "cancelled by API request".into(),
        now,
    );
    settle_if_quiet(r, now, &mut out);
    (true, out)
}
