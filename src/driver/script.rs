//! The call-script seam: what happens between "answered" and "we hang up". The SIP engine hands
//! a script the call and its media (whose events carry RFC 4733 and SIP INFO digits as one stream); the script returns what was played and
//! heard. The speech and choice work fills this in; until then [`NoSpeechScript`] says plainly
//! that nothing could be spoken.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::media::MediaHandle;
use crate::call::{ActiveCall, CallRequest};
use crate::media::session::AudioCodec;

/// What a script sees of an answered call.
pub struct ScriptContext<'a> {
    pub call: &'a ActiveCall,
    pub media: &'a MediaHandle,
    /// The negotiated codec: prompts must be encoded for it.
    pub codec: AudioCodec,
    /// What [`CallScript::prepare`] started for this call while it rang.
    pub prepared: Prepared,
    /// The script's result so far, kept up to date by the script: when the far end hangs up
    /// mid-script, this is what the call reports.
    pub progress: Arc<Mutex<ScriptResult>>,
}

/// Work a script started before the answer (rendering prompts while the phone rings); the
/// script that made it downcasts it.
pub type Prepared = Box<dyn Any + Send>;

/// What a script reports back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptResult {
    pub message_played: bool,
    pub choice_response: Option<String>,
    pub choice_raw_text: Option<String>,
    /// Set when the script failed (e.g. a speech engine error); the call still ends `completed`.
    pub error: Option<String>,
}

pub trait CallScript: Send + Sync + 'static {
    /// Called when the INVITE goes out, with the codecs offered: start what can be done before
    /// the answer.
    fn prepare(&self, _call: &ActiveCall, _codecs: &[AudioCodec]) -> Prepared {
        Box::new(())
    }

    fn run<'a>(&'a self, ctx: ScriptContext<'a>) -> Pin<Box<dyn Future<Output = ScriptResult> + Send + 'a>>;

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
    fn run<'a>(&'a self, ctx: ScriptContext<'a>) -> Pin<Box<dyn Future<Output = ScriptResult> + Send + 'a>> {
        Box::pin(async move {
            ctx.call
                .events
                .event("speech_unavailable", Some(NO_SPEECH.into()));
            ScriptResult {
                error: Some(NO_SPEECH.into()),
                ..ScriptResult::default()
            }
        })
    }
}
