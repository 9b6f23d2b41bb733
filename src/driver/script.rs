//! The call-script seam: what happens between "answered" and "we hang up". The SIP engine hands
//! a script the call and its media (whose events carry RFC 4733 and SIP INFO digits as one stream); the script returns what was played and
//! heard. The speech and choice work fills this in; until then [`NoSpeechScript`] says plainly
//! that nothing could be spoken.

use std::future::Future;
use std::pin::Pin;

use super::media::MediaHandle;
use crate::call::ActiveCall;
use crate::media::session::AudioCodec;

/// What a script sees of an answered call.
pub struct ScriptContext<'a> {
    pub call: &'a ActiveCall,
    pub media: &'a MediaHandle,
    /// The negotiated codec: prompts must be encoded for it.
    pub codec: AudioCodec,
}

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
    fn run<'a>(&'a self, ctx: ScriptContext<'a>) -> Pin<Box<dyn Future<Output = ScriptResult> + Send + 'a>>;
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
            ScriptResult::default()
        })
    }
}
