//! Virtual-time tests of the notification machine: every strategy, quorum, rounds, refusals,
//! quiet hours across a DST change, and a restart (the record through JSON and back, ends fed
//! again) at every step.

use jiff::tz::TimeZone;

use super::machine::{advance, attempt_ended, cancel, Action, CallResult};
use super::model::*;
use crate::call::{CallStatus, Choice, ChoiceOption, Timestamp};

/// A sequential request to `exts`, one round, quorum 1, no choice.
pub(crate) fn request(exts: &[&str]) -> NotificationRequest {
    NotificationRequest {
        message: "the server room is on fire".into(),
        choice: None,
        callback_url: Some("http://127.0.0.1:9/hook".into()),
        callback_each: false,
        language: None,
        voice: None,
        targets: exts
            .iter()
            .map(|e| Target {
                extension: (*e).into(),
                ring_timeout: 20,
            })
            .collect(),
        strategy: Strategy::Sequential,
        quorum: 1,
        acknowledge: Vec::new(),
        refuse: Vec::new(),
        rounds: 1,
        round_interval_seconds: 120,
        not_before: None,
        quiet_hours: None,
        urgent: false,
    }
}

fn with_choice(mut req: NotificationRequest) -> NotificationRequest {
    let opt = |v: &str| ChoiceOption {
        value: v.into(),
        synonyms: Vec::new(),
        dtmf: None,
    };
    req.choice = Some(Choice {
        prompt: "Will you take it?".into(),
        options: vec![opt("yes"), opt("no"), opt("never")],
        timeout_seconds: 10,
        repeat_count: 1,
        matcher: None,
    });
    req.acknowledge = vec!["yes".into()];
    req.refuse = vec!["never".into()];
    req
}

const T0: u64 = 1_780_000_000_000;

/// A notification and the calls it asked for, driven in virtual time.
struct Sim {
    r: NotificationRecord,
    now: Timestamp,
    tz: TimeZone,
    /// Calls placed and not yet ended, in order.
    placed: Vec<String>,
    hung_up: Vec<String>,
    settled: u32,
    /// Every call ever placed (to check nothing is dialled twice).
    dialled: Vec<String>,
}

impl Sim {
    fn new(req: NotificationRequest) -> Self {
        let mut s = Self {
            r: NotificationRecord::new("n1".into(), 1, req, Timestamp(T0)),
            now: Timestamp(T0),
            tz: TimeZone::UTC,
            placed: Vec::new(),
            hung_up: Vec::new(),
            settled: 0,
            dialled: Vec::new(),
        };
        s.step();
        s
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Dial { index, call_id } => {
                    assert_eq!(self.r.attempts[index].call_id, call_id);
                    assert!(!self.dialled.contains(&call_id), "{call_id} dialled twice");
                    self.dialled.push(call_id.clone());
                    self.placed.push(call_id);
                }
                Action::HangUp { call_id } => self.hung_up.push(call_id),
                Action::Settle => self.settled += 1,
            }
        }
    }

    fn step(&mut self) {
        let actions = advance(&mut self.r, self.now, &self.tz);
        self.apply(actions);
    }

    fn at(&mut self, ms: u64) {
        self.now = Timestamp(T0 + ms);
        self.step();
    }

    /// The call `call_id` ends with `status` (and what the caller chose), then the machine runs.
    fn end(&mut self, call_id: &str, status: CallStatus, choice: Option<&str>, error: Option<&str>) {
        let result = CallResult {
            status,
            error: error.map(str::to_string),
            message_played: status == CallStatus::Completed,
            choice_response: choice.map(str::to_string),
        };
        assert!(
            attempt_ended(&mut self.r, call_id, &result, self.now),
            "{call_id} was running"
        );
        self.placed.retain(|c| c != call_id);
        // The same end again (a restart re-reads the call record) changes nothing.
        let before = self.r.clone();
        assert!(!attempt_ended(&mut self.r, call_id, &result, self.now));
        assert_eq!(before, self.r);
        self.step();
    }

    /// A restart: the record through its stored form and back, then the machine runs again.
    fn restart(&mut self) {
        let json = serde_json::to_string(&self.r).expect("serialise");
        self.r = serde_json::from_str(&json).expect("deserialise");
        self.step();
    }

    fn status(&self) -> NotificationStatus {
        self.r.status
    }
}

#[test]
fn sequential_calls_the_next_target_after_no_answer_and_ends_at_the_acknowledgement() {
    let mut s = Sim::new(request(&["1003", "1001", "1002"]));
    assert_eq!(s.placed, ["n1.r1.t0"]);
    assert_eq!(s.status(), NotificationStatus::Running);
    s.end("n1.r1.t0", CallStatus::NoAnswer, None, None);
    assert_eq!(s.placed, ["n1.r1.t1"], "the next target, at once");
    s.end("n1.r1.t1", CallStatus::Completed, None, None);
    assert_eq!(s.status(), NotificationStatus::Acknowledged);
    assert_eq!(s.settled, 1);
    assert!(s.placed.is_empty(), "1002 is never called");
    assert_eq!(s.r.acknowledged_by.len(), 1);
    assert_eq!(s.r.acknowledged_by[0].extension, "1001");
    assert_eq!(s.r.reason.as_deref(), Some("acknowledged by 1001"));
    s.step();
    assert_eq!(s.settled, 1, "settled once");
}

#[test]
fn parallel_rings_everyone_and_hangs_up_the_rest_at_the_quorum() {
    let mut req = request(&["1001", "1002", "1003"]);
    req.strategy = Strategy::Parallel;
    let mut s = Sim::new(req);
    assert_eq!(s.placed, ["n1.r1.t0", "n1.r1.t1", "n1.r1.t2"]);
    s.end("n1.r1.t1", CallStatus::Completed, None, None);
    assert_eq!(s.status(), NotificationStatus::Acknowledged);
    assert_eq!(s.hung_up, ["n1.r1.t0", "n1.r1.t2"]);
    assert_eq!(s.settled, 0, "not settled while calls still run");
    s.end("n1.r1.t0", CallStatus::Failed, None, Some("cancelled"));
    assert_eq!(s.settled, 0);
    s.end("n1.r1.t2", CallStatus::NoAnswer, None, None);
    assert_eq!(s.settled, 1);
    assert!(s.r.ended_at.is_some());
}

#[test]
fn a_quorum_of_two_needs_two_distinct_targets() {
    let mut req = with_choice(request(&["1001", "1002", "1003"]));
    req.quorum = 2;
    let mut s = Sim::new(req);
    s.end("n1.r1.t0", CallStatus::Completed, Some("yes"), None);
    assert_eq!(s.status(), NotificationStatus::Running);
    assert_eq!(s.placed, ["n1.r1.t1"]);
    s.end("n1.r1.t1", CallStatus::Completed, Some("no"), None);
    assert_eq!(s.placed, ["n1.r1.t2"], "'no' is not an acknowledgement");
    s.end("n1.r1.t2", CallStatus::Completed, Some("yes"), None);
    assert_eq!(s.status(), NotificationStatus::Acknowledged);
    let who: Vec<&str> = s.r.acknowledged_by.iter().map(|a| a.extension.as_str()).collect();
    assert_eq!(who, ["1001", "1003"]);
}

#[test]
fn rounds_wait_the_interval_after_the_last_call_and_then_exhaust() {
    let mut req = request(&["1001", "1002"]);
    req.rounds = 2;
    req.round_interval_seconds = 60;
    let mut s = Sim::new(req);
    s.at(1_000);
    s.end("n1.r1.t0", CallStatus::NoAnswer, None, None);
    s.at(30_000);
    s.end("n1.r1.t1", CallStatus::Busy, None, Some("486 Busy Here"));
    assert!(s.placed.is_empty());
    assert_eq!(s.r.waiting, Some(Waiting::RoundInterval));
    assert_eq!(s.r.next_attempt_at, Some(Timestamp(T0 + 90_000)));
    s.at(89_999);
    assert!(s.placed.is_empty(), "not before the interval");
    s.at(90_000);
    assert_eq!(s.placed, ["n1.r2.t0"]);
    assert_eq!(s.r.round, 2);
    s.end("n1.r2.t0", CallStatus::NoAnswer, None, None);
    s.end("n1.r2.t1", CallStatus::NoAnswer, None, None);
    assert_eq!(s.status(), NotificationStatus::Exhausted);
    assert_eq!(s.settled, 1);
    assert_eq!(s.dialled.len(), 4);
    assert_eq!(
        s.r.reason.as_deref(),
        Some("no acknowledgement from 1 target(s) after 2 round(s)")
    );
}

#[test]
fn a_decline_or_a_refusing_option_ends_a_target_for_good() {
    let mut req = with_choice(request(&["1001", "1002", "1003"]));
    req.rounds = 3;
    req.round_interval_seconds = 30;
    let mut s = Sim::new(req);
    s.end("n1.r1.t0", CallStatus::Busy, None, Some("603 Decline"));
    s.end("n1.r1.t1", CallStatus::Completed, Some("never"), None);
    s.end("n1.r1.t2", CallStatus::Busy, None, Some("486 Busy Here"));
    assert!(s.r.attempts[0].refused && s.r.attempts[1].refused && !s.r.attempts[2].refused);
    s.at(200_000);
    assert_eq!(s.placed, ["n1.r2.t2"], "only the busy target is tried again");
    s.end("n1.r2.t2", CallStatus::NoAnswer, None, None);
    s.at(400_000);
    assert_eq!(s.placed, ["n1.r3.t2"]);
}

#[test]
fn when_every_target_refused_the_notification_is_exhausted_at_once() {
    let mut req = with_choice(request(&["1001", "1002"]));
    req.strategy = Strategy::Parallel;
    req.rounds = 5;
    let mut s = Sim::new(req);
    s.end("n1.r1.t0", CallStatus::Busy, None, Some("603 Decline"));
    assert_eq!(s.status(), NotificationStatus::Running, "1002 may still say yes");
    s.end("n1.r1.t1", CallStatus::Completed, Some("never"), None);
    assert_eq!(s.status(), NotificationStatus::Exhausted);
    assert_eq!(s.settled, 1);
    assert!(s.r.reason.as_deref().is_some_and(|r| r.contains("refused")));
}

#[test]
fn parallel_rounds_retry_only_who_did_not_answer() {
    let mut req = with_choice(request(&["1001", "1002", "1003"]));
    req.strategy = Strategy::Parallel;
    req.quorum = 2;
    req.rounds = 2;
    req.round_interval_seconds = 30;
    let mut s = Sim::new(req);
    s.end("n1.r1.t0", CallStatus::Completed, Some("yes"), None);
    s.end("n1.r1.t1", CallStatus::NoAnswer, None, None);
    s.end("n1.r1.t2", CallStatus::Failed, None, Some("408 Request Timeout"));
    assert_eq!(s.r.next_attempt_at, Some(Timestamp(T0 + 30_000)));
    s.at(30_000);
    assert_eq!(s.placed, ["n1.r2.t1", "n1.r2.t2"]);
    s.end("n1.r2.t2", CallStatus::Completed, Some("yes"), None);
    assert_eq!(s.status(), NotificationStatus::Acknowledged);
    assert_eq!(s.hung_up, ["n1.r2.t1"]);
}

#[test]
fn without_a_choice_a_message_cut_short_does_not_acknowledge() {
    let mut s = Sim::new(request(&["1001", "1002"]));
    let result = CallResult {
        status: CallStatus::Completed,
        error: None,
        message_played: false,
        choice_response: None,
    };
    assert!(attempt_ended(&mut s.r, "n1.r1.t0", &result, s.now));
    s.step();
    assert!(!s.r.attempts[0].acknowledged);
    assert_eq!(s.r.attempts.len(), 2, "the next target is called");
}

#[test]
fn not_before_holds_the_first_call_back() {
    let mut req = request(&["1001"]);
    req.not_before = Some(Timestamp(T0 + 3_600_000));
    let mut s = Sim::new(req);
    assert!(s.placed.is_empty());
    assert_eq!(s.status(), NotificationStatus::Scheduled);
    assert_eq!(s.r.waiting, Some(Waiting::NotBefore));
    assert_eq!(s.r.next_attempt_at, Some(Timestamp(T0 + 3_600_000)));
    s.at(3_599_999);
    assert!(s.placed.is_empty());
    s.at(3_600_000);
    assert_eq!(s.placed, ["n1.r1.t0"]);
}

fn berlin_ms(text: &str) -> u64 {
    let t: jiff::Timestamp = text.parse().expect("RFC 3339");
    u64::try_from(t.as_millisecond()).expect("after 1970")
}

#[test]
fn quiet_hours_hold_calls_across_the_spring_dst_change_and_urgent_ignores_them() {
    let quiet = QuietHours {
        from: LocalTime { hour: 22, minute: 0 },
        to: LocalTime { hour: 7, minute: 0 },
        timezone: "Europe/Berlin".into(),
    };
    let tz = TimeZone::get("Europe/Berlin").expect("zone");
    // Accepted at 21:59 CET on 2026-03-28; the first call goes out, the second target's turn
    // comes at 22:00:30 CET: quiet until 07:00 CEST (05:00 UTC; the night is an hour short).
    let start = berlin_ms("2026-03-28T20:59:00Z");
    let mut req = request(&["1001", "1002"]);
    req.quiet_hours = Some(quiet.clone());
    let mut s = Sim {
        r: NotificationRecord::new("n1".into(), 1, req.clone(), Timestamp(start)),
        now: Timestamp(start),
        tz: tz.clone(),
        placed: Vec::new(),
        hung_up: Vec::new(),
        settled: 0,
        dialled: Vec::new(),
    };
    s.step();
    assert_eq!(s.placed, ["n1.r1.t0"]);
    s.now = Timestamp(berlin_ms("2026-03-28T21:00:30Z"));
    s.end("n1.r1.t0", CallStatus::NoAnswer, None, None);
    assert!(s.placed.is_empty(), "22:00:30 is quiet");
    assert_eq!(s.r.waiting, Some(Waiting::QuietHours));
    let morning = Timestamp(berlin_ms("2026-03-29T05:00:00Z"));
    assert_eq!(s.r.next_attempt_at, Some(morning));
    s.now = Timestamp(morning.0 - 1);
    s.step();
    assert!(s.placed.is_empty());
    s.now = morning;
    s.restart();
    assert_eq!(s.placed, ["n1.r1.t1"], "07:00 CEST: the call goes out");

    // Urgent: no waiting.
    req.urgent = true;
    let late = Timestamp(berlin_ms("2026-03-28T23:00:00Z"));
    let mut u = NotificationRecord::new("n2".into(), 2, req, late);
    let actions = advance(&mut u, late, &tz);
    assert!(matches!(actions.as_slice(), [Action::Dial { .. }]));
}

#[test]
fn cancel_hangs_up_running_calls_and_settles_when_they_ended() {
    let mut req = request(&["1001", "1002"]);
    req.strategy = Strategy::Parallel;
    let mut s = Sim::new(req);
    let (done, actions) = cancel(&mut s.r, s.now);
    assert!(done);
    s.apply(actions);
    assert_eq!(s.status(), NotificationStatus::Cancelled);
    assert_eq!(s.hung_up, ["n1.r1.t0", "n1.r1.t1"]);
    s.end("n1.r1.t0", CallStatus::Failed, None, Some("cancelled"));
    s.end("n1.r1.t1", CallStatus::Completed, None, None);
    assert_eq!(s.settled, 1);
    assert_eq!(
        s.status(),
        NotificationStatus::Cancelled,
        "a late answer does not change it"
    );
    let (again, none) = cancel(&mut s.r, s.now);
    assert!(!again && none.is_empty());
}

#[test]
fn a_waiting_notification_cancels_and_settles_at_once() {
    let mut req = request(&["1001"]);
    req.not_before = Some(Timestamp(T0 + 10_000));
    let mut s = Sim::new(req);
    let (done, actions) = cancel(&mut s.r, s.now);
    assert!(done);
    s.apply(actions);
    assert_eq!(s.settled, 1);
    assert!(s.dialled.is_empty());
}

/// One scenario, with a restart after every step: the same calls are placed, none twice, none
/// skipped, and it settles exactly once.
#[test]
fn a_restart_at_every_step_places_the_same_calls_once_each() {
    fn scenario(restart_each_step: bool) -> (Vec<String>, NotificationStatus, u32) {
        let mut req = with_choice(request(&["1003", "1001", "1002"]));
        req.rounds = 2;
        req.round_interval_seconds = 30;
        req.quorum = 2;
        let mut s = Sim::new(req);
        let script: &[(&str, CallStatus, Option<&str>, Option<&str>)] = &[
            ("n1.r1.t0", CallStatus::NoAnswer, None, None),
            ("n1.r1.t1", CallStatus::Completed, Some("yes"), None),
            (
                "n1.r1.t2",
                CallStatus::Failed,
                None,
                Some("service restarted during call"),
            ),
            ("n1.r2.t0", CallStatus::Busy, None, Some("486 Busy Here")),
            ("n1.r2.t2", CallStatus::Completed, Some("yes"), None),
        ];
        let mut t = 0;
        for (id, st, choice, err) in script {
            t += 10_000;
            s.at(t);
            if restart_each_step {
                s.restart();
            }
            assert!(
                s.placed.iter().any(|p| p == id),
                "{id} placed; have {:?}",
                s.placed
            );
            s.end(id, *st, *choice, *err);
            if restart_each_step {
                s.restart();
            }
            t += 40_000;
            s.at(t);
        }
        let status = s.status();
        (s.dialled, status, s.settled)
    }
    let plain = scenario(false);
    let restarted = scenario(true);
    assert_eq!(plain, restarted);
    assert_eq!(plain.1, NotificationStatus::Acknowledged);
    assert_eq!(plain.2, 1);
    assert_eq!(
        plain.0,
        ["n1.r1.t0", "n1.r1.t1", "n1.r1.t2", "n1.r2.t0", "n1.r2.t2"]
    );
}

#[test]
fn the_webhook_body_carries_every_attempt_and_no_webhook_state() {
    let mut s = Sim::new(request(&["1003", "1001"]));
    s.end("n1.r1.t0", CallStatus::NoAnswer, None, None);
    s.end("n1.r1.t1", CallStatus::Completed, None, None);
    let body: serde_json::Value = serde_json::from_str(&webhook_body(&s.r)).expect("json");
    assert_eq!(body["event"], "notification.ended");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["attempts"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["attempts"][0]["status"], "no_answer");
    assert_eq!(body["acknowledged_by"][0]["extension"], "1001");
    assert!(body.get("webhook").is_none());
}
