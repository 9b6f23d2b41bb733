//! What happens during one call, sans-IO: the call flow ([`CallFlow`], here), the script of an
//! answered call ([`script`]) and the asking back of an unsure answer ([`confirm`]).
//!
//! One call, sans-IO: from the INVITE to the outcome. The SIP user agent, the media session and
//! the call script each have their own state machine; this one decides how they meet for one
//! call: when media opens, when the script starts, what a hang-up, a cancel or a lost driver does
//! at each step, which timeline events are written and how the call ends.
//!
//! The shell ([`crate::driver::sip`]) feeds [`Input`]s (events of this call from the user agent,
//! the media opened or failed, the script finished, a cancel) with the current time, and carries
//! out the [`Output`]s (send a SIP command, open, update or close media, start or stop the script,
//! record a timeline step) until [`Output::Done`]. No sockets, clocks or tasks here: every path,
//! and every race between the script, SIP and a cancel, is tested in virtual time below.
//!
//! ```text
//!  Dialing --Answered--> OpeningMedia --MediaOpened--> Running --ScriptDone--> HangingUp
//!     |                      |                            |  (Ended/Cancel/lost) --> StoppingScript
//!     |                      +--MediaFailed--> Failing    v
//!     +--Ended--> Done                          ...   ClosingMedia --MediaClosed--> Done
//! ```

pub mod confirm;
pub mod script;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::call::{CallOutcome, FinalStatus, MediaHealth, Progress, ScriptResult, TimelineEvent};
use crate::media::session::{AudioCodec, RtpNumbers, SessionParams};
use crate::sdp;
use crate::sip::ua::{CallEnd, CallKey, Command, Event};

/// However the far end behaves before the answer, the call ends: ring time plus an INVITE
/// transaction timeout (timer B, 32 s) and a margin.
const DIAL_MARGIN: Duration = Duration::from_secs(32 + 60);
/// The longest an answered call may last (a script asks at most 5 times with 60 s each).
pub const MAX_ANSWERED: Duration = Duration::from_secs(3600);
/// How long to wait for the user agent to confirm the end of a call we hang up: a BYE or CANCEL
/// transaction ends within timer F (32 s); twice that bounds it.
const END_WAIT: Duration = Duration::from_secs(64);

/// What the call dials.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The user agent's key for this call.
    pub id: CallKey,
    /// The Request-URI.
    pub uri: String,
    /// Our address as the far end should see it; the configured one if `None`.
    pub local_host: Option<String>,
    pub ring_timeout: Duration,
    /// The SDP offer, as parameters (the flow prints it).
    pub offer: sdp::OfferParams,
    /// SSRC and initial numbers of our RTP stream (random, from the shell).
    pub rtp: RtpNumbers,
}

/// What the shell tells the flow.
#[derive(Debug, Clone)]
pub enum Input {
    /// An event of this call from the user agent.
    Sip(Event),
    /// The user agent's driver is gone: no more SIP events will come.
    SipStopped,
    /// End the call early (API cancel, shutdown deadline).
    Cancel,
    /// [`Output::OpenMedia`] succeeded.
    MediaOpened,
    /// [`Output::OpenMedia`] failed, and why.
    MediaFailed(String),
    /// The script started by [`Output::StartScript`] finished by itself.
    ScriptDone(ScriptResult),
    /// The script was stopped after [`Output::StopScript`]; what it had reported so far.
    ScriptStopped(ScriptResult),
    /// [`Output::CloseMedia`] finished; the session's health if it could be read.
    MediaClosed(Option<MediaHealth>),
}

/// What the flow asks of the shell.
#[derive(Debug, Clone)]
pub enum Output {
    /// A command for the user agent (the INVITE, a hang-up).
    Ua(Command),
    /// A timeline step or the call's dialog, for the record.
    Progress(Progress),
    /// Open the media session on the call's ports; answer with [`Input::MediaOpened`] or
    /// [`Input::MediaFailed`].
    OpenMedia(SessionParams),
    /// The far end moved its media, held (`sending` false) or resumed the call.
    UpdateMedia {
        remote: SocketAddr,
        remote_rtcp: SocketAddr,
        sending: bool,
    },
    /// A digit that came as SIP INFO: it joins the RTP digits the script hears.
    InfoDigit(char),
    /// Start the call script on the open media; it reports with [`Input::ScriptDone`].
    StartScript { codec: AudioCodec },
    /// Stop the script now; answer with [`Input::ScriptStopped`].
    StopScript,
    /// Close the media session; answer with [`Input::MediaClosed`].
    CloseMedia,
    /// The call is over.
    Done(CallOutcome),
}

#[derive(Debug)]
enum State {
    /// The INVITE is out; `hangup_sent` once a cancel asked the user agent to give up.
    Dialing {
        hangup_sent: bool,
    },
    /// Answered; the shell is opening media. Meanwhile the call may have ended (`ended`, how in
    /// `end`) or a cancel may have hung it up (`cancelled`).
    OpeningMedia {
        codec: AudioCodec,
        ended: bool,
        end: Option<CallEnd>,
        cancelled: bool,
    },
    /// Media and script run; SIP may end the call or the API cancel it meanwhile.
    Running,
    /// The script is being stopped; then hang up (`hang_up`) or go straight to closing media.
    StoppingScript {
        end: Option<CallEnd>,
        hang_up: bool,
    },
    /// We hung up (or are about to learn the call ended); waiting for the user agent's end.
    HangingUp {
        result: ScriptResult,
    },
    /// The media session is closing.
    ClosingMedia {
        result: ScriptResult,
        end: Option<CallEnd>,
    },
    /// Media could not start: hung up, waiting for the end, then fail with `reason`.
    Failing {
        reason: String,
    },
    Done,
}

/// One call from the INVITE to the outcome.
#[derive(Debug)]
pub struct CallFlow {
    plan: CallPlan,
    codecs: Vec<sdp::Codec>,
    state: State,
    out: VecDeque<Output>,
    /// When the current state gives up waiting.
    deadline: Option<Instant>,
    answered_at: Option<Instant>,
    media_opened_at: Option<Instant>,
    media_open: bool,
}

impl CallFlow {
    /// A flow that sends the INVITE for `plan` as its first output.
    pub fn new(plan: CallPlan, now: Instant) -> Self {
        let codecs = plan.offer.codecs.clone();
        let mut flow = Self {
            deadline: Some(now + plan.ring_timeout + DIAL_MARGIN),
            codecs,
            state: State::Dialing { hangup_sent: false },
            out: VecDeque::new(),
            answered_at: None,
            media_opened_at: None,
            media_open: false,
            plan,
        };
        flow.out.push_back(Output::Ua(Command::Call {
            id: flow.plan.id,
            uri: flow.plan.uri.clone(),
            local_host: flow.plan.local_host.clone(),
            ring_timeout: flow.plan.ring_timeout,
            sdp: sdp::build_offer(&flow.plan.offer).into_bytes(),
            offer: Some(flow.plan.offer.clone()),
        }));
        flow
    }

    /// The next thing to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`CallFlow::handle_timeout`] is due; `None` once the call is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether [`Output::Done`] was emitted.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Sip(e) => self.on_sip(now, e),
            Input::SipStopped => self.on_sip_stopped(),
            Input::Cancel => self.on_cancel(),
            Input::MediaOpened => self.on_media_opened(now),
            Input::MediaFailed(e) => self.on_media_failed(now, e),
            Input::ScriptDone(r) => self.on_script_done(now, r),
            Input::ScriptStopped(r) => self.on_script_stopped(now, r),
            Input::MediaClosed(h) => self.on_media_closed(h),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Dialing { .. } => {
                self.hangup();
                self.done(CallOutcome::failed("the call did not end in time; hung up"));
            }
            State::Running => {
                self.state = State::StoppingScript {
                    end: None,
                    hang_up: true,
                };
                self.deadline = None;
                self.out.push_back(Output::StopScript);
            }
            State::HangingUp { result } => self.close_media(result, None),
            State::Failing { reason } => self.done(CallOutcome::failed(reason)),
            other => {
                // The shell answers these states at once; nothing to give up on.
                self.state = other;
                self.deadline = None;
            }
        }
    }

    fn on_sip(&mut self, now: Instant, e: Event) {
        match e {
            Event::DialogSaved { dialog, .. } => self.progress(Progress::Dialog(*dialog)),
            Event::Ringing { .. } if matches!(self.state, State::Dialing { .. }) => {
                self.progress(Progress::Ringing)
            }
            Event::Answered { sdp, .. } => self.on_answered(now, &sdp),
            Event::Dtmf { digit, .. } if matches!(self.state, State::Running) => {
                self.event(TimelineEvent::Dtmf, format!("{digit} (SIP INFO)"));
                self.out.push_back(Output::InfoDigit(digit));
            }
            Event::MediaChanged { negotiated, .. } if matches!(self.state, State::Running) => {
                let sending = negotiated.direction.receives() && !negotiated.remote_ip.is_unspecified();
                self.event(
                    if sending {
                        TimelineEvent::MediaResumed
                    } else {
                        TimelineEvent::MediaHeld
                    },
                    format!(
                        "{}:{} {}",
                        negotiated.remote_ip,
                        negotiated.remote_port,
                        negotiated.direction.attribute()
                    ),
                );
                self.out.push_back(Output::UpdateMedia {
                    remote: SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
                    remote_rtcp: SocketAddr::new(negotiated.remote_ip, negotiated.remote_rtcp_port),
                    sending,
                });
            }
            Event::Ended { end, .. } => self.on_ended(Some(end)),
            _ => {}
        }
    }

    fn on_answered(&mut self, now: Instant, answer: &[u8]) {
        // The user agent reports one answer per call; another is ignored.
        let State::Dialing { hangup_sent } = self.state else {
            return;
        };
        self.progress(Progress::Answered);
        self.answered_at = Some(now);
        self.deadline = Some(now + MAX_ANSWERED);
        if hangup_sent {
            // A cancel crossed the answer: end it without starting anything.
            self.hang_up_and_wait(now, ScriptResult::default());
            return;
        }
        let n = match sdp::parse_answer(answer, &self.codecs) {
            Ok(n) => n,
            Err(e) => return self.fail(now, format!("unusable SDP answer: {e}")),
        };
        let codec = audio_codec(n.codec);
        let params = SessionParams {
            codec,
            payload_type: n.payload_type,
            dtmf_payload_type: n.dtmf_payload_type,
            remote: SocketAddr::new(n.remote_ip, n.remote_port),
            remote_rtcp: SocketAddr::new(n.remote_ip, n.remote_rtcp_port),
            ssrc: self.plan.rtp.ssrc,
            initial_seq: self.plan.rtp.initial_seq,
            initial_timestamp: self.plan.rtp.initial_timestamp,
        };
        self.event(
            TimelineEvent::MediaStarted,
            format!("{} to {}", codec.name(), params.remote),
        );
        self.state = State::OpeningMedia {
            codec,
            ended: false,
            end: None,
            cancelled: false,
        };
        self.out.push_back(Output::OpenMedia(params));
    }

    fn on_media_opened(&mut self, now: Instant) {
        if !matches!(self.state, State::OpeningMedia { .. }) {
            return self.unexpected("media opened");
        }
        let State::OpeningMedia {
            codec,
            ended,
            end,
            cancelled,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        self.media_open = true;
        self.media_opened_at = Some(now);
        if ended {
            self.close_media(ScriptResult::default(), end);
        } else if cancelled {
            // Hung up while media opened: nothing is played; wait for the end.
            self.deadline = Some(now + END_WAIT);
            self.state = State::HangingUp {
                result: ScriptResult::default(),
            };
        } else {
            self.state = State::Running;
            self.out.push_back(Output::StartScript { codec });
        }
    }

    fn on_media_failed(&mut self, now: Instant, e: String) {
        if !matches!(self.state, State::OpeningMedia { .. }) {
            return self.unexpected("media failed");
        }
        let State::OpeningMedia { ended, cancelled, .. } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        self.event(TimelineEvent::MediaFailed, e.clone());
        let reason = format!("cannot start media: {e}");
        if ended {
            return self.done(CallOutcome::failed(reason));
        }
        if !cancelled {
            self.hangup();
        }
        self.deadline = Some(now + END_WAIT);
        self.state = State::Failing { reason };
    }

    fn on_script_done(&mut self, now: Instant, result: ScriptResult) {
        match self.state {
            State::Running => self.hang_up_and_wait(now, result),
            _ => self.unexpected("script done"),
        }
    }

    fn on_script_stopped(&mut self, now: Instant, result: ScriptResult) {
        if !matches!(self.state, State::StoppingScript { .. }) {
            return self.unexpected("script stopped");
        }
        let State::StoppingScript { end, hang_up } = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        if hang_up {
            self.hang_up_and_wait(now, result);
        } else {
            self.close_media(result, end);
        }
    }

    fn on_cancel(&mut self) {
        match &mut self.state {
            State::Dialing { hangup_sent }
            | State::OpeningMedia {
                cancelled: hangup_sent,
                ..
            } if !*hangup_sent => {
                *hangup_sent = true;
                self.hangup();
            }
            State::Running => self.stop_script(None, true),
            _ => {}
        }
    }

    fn on_ended(&mut self, end: Option<CallEnd>) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Dialing { .. } => self.done(outcome(end, ScriptResult::default(), None)),
            State::OpeningMedia { codec, cancelled, .. } => {
                self.state = State::OpeningMedia {
                    codec,
                    ended: true,
                    end,
                    cancelled,
                };
            }
            State::Running => {
                self.state = State::Running;
                self.stop_script(end, false);
            }
            State::StoppingScript { hang_up: true, .. } => {
                self.state = State::StoppingScript { end, hang_up: false };
            }
            State::HangingUp { result } => self.close_media(result, end),
            State::Failing { reason } => self.done(CallOutcome::failed(reason)),
            other => self.state = other,
        }
    }

    fn on_sip_stopped(&mut self) {
        match &self.state {
            State::Dialing { .. } => {
                self.state = State::Done;
                self.done(CallOutcome::failed("the SIP driver has stopped"));
            }
            // Nothing will tell us how it ended: stop what runs and report that.
            State::OpeningMedia { .. }
            | State::Running
            | State::StoppingScript { .. }
            | State::HangingUp { .. }
            | State::Failing { .. } => self.on_ended(None),
            State::ClosingMedia { .. } | State::Done => {}
        }
    }

    fn stop_script(&mut self, end: Option<CallEnd>, hang_up: bool) {
        self.state = State::StoppingScript { end, hang_up };
        self.deadline = None;
        self.out.push_back(Output::StopScript);
    }

    fn hang_up_and_wait(&mut self, now: Instant, result: ScriptResult) {
        self.hangup();
        self.deadline = Some(now + END_WAIT);
        self.state = State::HangingUp { result };
    }

    fn fail(&mut self, now: Instant, reason: String) {
        self.event(TimelineEvent::MediaFailed, reason.clone());
        self.hangup();
        self.deadline = Some(now + END_WAIT);
        self.state = State::Failing { reason };
    }

    fn close_media(&mut self, result: ScriptResult, end: Option<CallEnd>) {
        match &end {
            Some(CallEnd::HungUpLocal) => self.event(TimelineEvent::Hangup, "by us".into()),
            Some(CallEnd::HungUpRemote) => self.event(TimelineEvent::Hangup, "by the far end".into()),
            _ => {}
        }
        self.deadline = None;
        if self.media_open {
            self.state = State::ClosingMedia { result, end };
            self.out.push_back(Output::CloseMedia);
        } else {
            self.done(outcome(end, result, None));
        }
    }

    fn on_media_closed(&mut self, health: Option<MediaHealth>) {
        if !matches!(self.state, State::ClosingMedia { .. }) {
            return self.unexpected("media closed");
        }
        let State::ClosingMedia { result, end } = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        self.media_open = false;
        let mut health = health;
        if let Some(h) = health.as_mut() {
            // The session counts from its own start; add the time from the 200 OK to it.
            let before = match (self.answered_at, self.media_opened_at) {
                (Some(a), Some(m)) => m.saturating_duration_since(a),
                _ => Duration::ZERO,
            };
            h.answer_to_audio_ms = h
                .answer_to_audio_ms
                .map(|ms| ((ms + before.as_secs_f64() * 1000.0) * 1000.0).round() / 1000.0);
            if h.no_rtp_received {
                self.event(
                    TimelineEvent::NoRtpReceived,
                    "nothing arrived from the far end within 5 s of the answer".into(),
                );
            }
        }
        self.done(outcome(end, result, health));
    }

    fn hangup(&mut self) {
        self.out
            .push_back(Output::Ua(Command::Hangup { id: self.plan.id }));
    }

    fn progress(&mut self, p: Progress) {
        self.out.push_back(Output::Progress(p));
    }

    fn event(&mut self, name: TimelineEvent, detail: String) {
        self.progress(Progress::Event {
            name,
            detail: Some(detail),
        });
    }

    fn done(&mut self, outcome: CallOutcome) {
        self.state = State::Done;
        self.deadline = None;
        self.out.push_back(Output::Done(outcome));
    }

    /// An input the current state does not expect (a shell bug): logged, the state kept.
    fn unexpected(&mut self, what: &str) {
        tracing::debug!(
            call = self.plan.id,
            what,
            "call flow: input not expected now; ignored"
        );
    }
}

/// The media codec for a negotiated SDP codec.
pub fn audio_codec(c: sdp::Codec) -> AudioCodec {
    match c {
        sdp::Codec::Pcmu => AudioCodec::Pcmu,
        sdp::Codec::Pcma => AudioCodec::Pcma,
        sdp::Codec::Opus => AudioCodec::Opus,
    }
}

fn outcome(end: Option<CallEnd>, script: ScriptResult, media: Option<MediaHealth>) -> CallOutcome {
    let end = end.unwrap_or(CallEnd::Failed {
        reason: "the call did not end cleanly".into(),
    });
    let (status, error) = match end {
        CallEnd::HungUpLocal | CallEnd::HungUpRemote => (FinalStatus::Completed, script.error),
        CallEnd::Busy { code, reason } => (FinalStatus::Busy, Some(format!("{code} {reason}"))),
        CallEnd::NoAnswer => (FinalStatus::NoAnswer, None),
        CallEnd::Cancelled => (FinalStatus::Failed, Some("cancelled".into())),
        CallEnd::Failed { reason } => (FinalStatus::Failed, Some(reason)),
    };
    CallOutcome {
        status,
        error,
        message_played: script.message_played,
        choice_response: script.choice_response,
        choice_raw_text: script.choice_raw_text,
        confirmed_by: script.confirmed_by,
        media,
    }
}

#[cfg(test)]
mod tests;
