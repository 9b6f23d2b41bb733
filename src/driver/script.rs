//! The call-script seam: what happens between "answered" and "we hang up". The SIP engine hands
//! a script the call and its media (whose events carry RFC 4733 and SIP INFO digits as one stream); the script returns what was played and
//! heard. The speech and choice work fills this in; until then [`NoSpeechScript`] says plainly
//! that nothing could be spoken.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::media::MediaHandle;
use crate::call::{ActiveCall, CallRequest, TimelineEvent};
use crate::media::session::AudioCodec;

/// What a script sees of an answered call.
pub struct ScriptContext<'a> {
    pub call: &'a ActiveCall,
    pub media: MediaHandle,
    /// The negotiated codec: prompts must be encoded for it.
    pub codec: AudioCodec,
    /// The script's result so far, kept up to date by the script: when the far end hangs up
    /// mid-script, this is what the call reports.
    pub progress: Arc<Mutex<ScriptResult>>,
}

pub use crate::call::ScriptResult;

/// The future of one script run.
pub type ScriptFuture<'a> = Pin<Box<dyn Future<Output = ScriptResult> + Send + 'a>>;

/// What a script does for one call. [`CallScript::prepare`] makes it when the INVITE goes out, so
/// it can start work while the phone rings (rendering the prompts); it runs once, when the call is
/// answered, or is dropped unrun.
pub trait ScriptRun: Send {
    fn run<'a>(self: Box<Self>, ctx: ScriptContext<'a>) -> ScriptFuture<'a>;
}

pub trait CallScript: Send + Sync + 'static {
    /// Called when the INVITE goes out, with the codecs offered: this call's run, which may
    /// start what can be done before the answer.
    fn prepare(self: Arc<Self>, call: &ActiveCall, codecs: &[AudioCodec]) -> Box<dyn ScriptRun>;

    /// Whether this script can carry out `request` (its language and voice), asked before the
    /// call is accepted; the error says why not.
    fn check_request(&self, _request: &CallRequest) -> Result<(), String> {
        Ok(())
    }
}

/// The script of a build without speech engines: nothing can be spoken, so it says so and ends.
pub struct NoSpeechScript;

/// The timeline text of [`NoSpeechScript`].
pub const NO_SPEECH: &str = "this build has no speech engine: the message was not played";

impl CallScript for NoSpeechScript {
    fn prepare(self: Arc<Self>, _call: &ActiveCall, _codecs: &[AudioCodec]) -> Box<dyn ScriptRun> {
        Box::new(NoSpeechRun)
    }
}

struct NoSpeechRun;

impl ScriptRun for NoSpeechRun {
    fn run<'a>(self: Box<Self>, ctx: ScriptContext<'a>) -> ScriptFuture<'a> {
        Box::pin(async move {
            ctx.call
                .events
                .event(TimelineEvent::SpeechUnavailable, Some(NO_SPEECH.into()));
            ScriptResult {
                error: Some(NO_SPEECH.into()),
                ..ScriptResult::default()
            }
        })
    }
}
