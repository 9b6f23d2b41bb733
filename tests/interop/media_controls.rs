//! Mid-call media controls against a real baresip phone through Kamailio: the phone puts the call
//! on hold and resumes it with re-INVITEs (we answer each offer and the media thread follows),
//! the phone presses a key (RFC 4733) and we get it once, and we press a key that the phone
//! reports receiving.

use crate::harness;
use crate::peers;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{start_app, test_config, wait_for};
use peers::PhoneMode;
use sip_assistant::call::ActiveCall;
use sip_assistant::call::CallRequest;
use sip_assistant::driver::script::{CallScript, ScriptContext, ScriptFuture, ScriptResult, ScriptRun};
use sip_assistant::driver::SipEngine;
use sip_assistant::media::session::{AudioCodec, MediaEvent};

/// Listens for up to 20 s; answers the phone's first digit with a '7' of its own, then ends
/// 1.5 s later.
#[derive(Clone)]
struct DigitEcho {
    digits: Arc<Mutex<Vec<char>>>,
    sent: Arc<Mutex<Option<Result<(), String>>>>,
}

impl CallScript for DigitEcho {
    fn prepare(self: Arc<Self>, _call: &ActiveCall, _codecs: &[AudioCodec]) -> Box<dyn ScriptRun> {
        Box::new((*self).clone())
    }
}

impl ScriptRun for DigitEcho {
    fn run<'a>(self: Box<Self>, ctx: ScriptContext<'a>) -> ScriptFuture<'a> {
        Box::pin(async move {
            let mut end = Instant::now() + Duration::from_secs(20);
            loop {
                let timer = async {
                    smol::Timer::at(end).await;
                    None
                };
                let next =
                    futures_lite::future::or(async { ctx.media.events.recv().await.ok() }, timer).await;
                match next {
                    None => break,
                    Some(MediaEvent::Digit(d)) => {
                        let first = {
                            let mut g = self.digits.lock().unwrap_or_else(|p| p.into_inner());
                            g.push(d);
                            g.len() == 1
                        };
                        if first {
                            let r = ctx.media.send_digit('7', 160).await.map_err(|e| e.to_string());
                            *self.sent.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                            end = Instant::now() + Duration::from_millis(1500);
                        }
                    }
                    Some(_) => {}
                }
            }
            ScriptResult::default()
        })
    }
}

#[test]
fn hold_resume_and_key_presses_both_ways_with_a_real_phone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 30.0);
    let (k, phone) = peers::pbx_with_phone(
        &[("1050", "our-pw")],
        "1001",
        PhoneMode::AutoAnswer,
        Some(&silence),
    );

    let mut config = test_config(dir.path());
    peers::register_to(&mut config, k.port, "1050", "our-pw", "PCMU", 20);
    let digits = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(None));
    let script = Arc::new(DigitEcho {
        digits: digits.clone(),
        sent: sent.clone(),
    });
    let engine = smol::block_on(SipEngine::start_with_script(&config, script)).expect("engine");
    let app = start_app(config, Arc::new(engine));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup("1050").is_some()),
        "{}",
        k.ladder()
    );

    let req = CallRequest {
        message: "controls".into(),
        extension: "1001".into(),
        callback_url: None,
        ring_timeout: 20,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    };
    smol::block_on(app.scheduler.submit(Some("controls-1"), req)).expect("submit");
    let record = || app.store.get_call("controls-1").ok().flatten();
    assert!(
        wait_for(Duration::from_secs(15), || record()
            .is_some_and(|r| r.answered_at.is_some())),
        "{}",
        k.ladder()
    );
    let has = |name: &str| record().is_some_and(|r| r.timeline.iter().any(|e| e.event == name));

    std::thread::sleep(Duration::from_millis(500));
    phone.command("hold", "").expect("hold");
    assert!(
        wait_for(Duration::from_secs(5), || has("media_held")),
        "{:?}\n{}",
        record(),
        k.ladder()
    );
    phone.command("resume", "").expect("resume");
    assert!(
        wait_for(Duration::from_secs(5), || has("media_resumed")),
        "{:?}\n{}",
        record(),
        k.ladder()
    );
    std::thread::sleep(Duration::from_millis(300));
    phone.command("sndcode", "5").expect("sndcode");

    assert!(
        wait_for(Duration::from_secs(30), || record()
            .is_some_and(|r| r.status.is_final())),
        "{}",
        k.ladder()
    );
    let r = record().expect("record");
    assert_eq!(r.status.as_str(), "completed", "{r:?}");
    assert_eq!(
        *digits.lock().expect("digits"),
        vec!['5'],
        "the phone's key press arrives once"
    );
    assert_eq!(*sent.lock().expect("sent"), Some(Ok(())));
    assert!(
        wait_for(Duration::from_secs(3), || phone
            .log()
            .contains("received event: '7' (end=1)")),
        "the phone did not report our key press:\n{}",
        phone.log()
    );
    let held = r
        .timeline
        .iter()
        .find(|e| e.event == "media_held")
        .and_then(|e| e.detail.clone());
    assert!(
        held.as_deref()
            .is_some_and(|d| d.contains("sendonly") || d.contains("inactive")),
        "{held:?}"
    );
}
