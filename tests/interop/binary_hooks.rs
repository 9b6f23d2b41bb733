//! The real `sip-assistant run` binary reloads its WebAssembly hooks folder on SIGHUP (what
//! `systemctl reload` sends, `ExecReload=` in the unit). Polling is off (`hooks.poll_ms = 0`), so
//! only the signal can make a new file appear in `GET /hooks`, and a file added without one stays
//! unseen. The start-up and the reloads warn while `hooks.default` names no loaded hook.

use crate::binary;
use crate::guests;
use crate::harness;

use std::time::Duration;

use binary::{http, Service};
use harness::wait_for;

/// The hooks in `GET /hooks` as (name, loaded).
fn listed(api: u16) -> Vec<(String, bool)> {
    let (status, body) = http(api, "GET", "/hooks", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap_or_default().to_string(),
                h["loaded"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

const DEFAULT_MISSING: &str = "hooks.default names no loaded hook";

#[test]
fn sighup_reloads_the_hooks_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).expect("hooks dir");
    let mut service = Service::start(
        dir.path(),
        &[
            ("SIP_ASSISTANT__HOOKS__DIR", hooks.display().to_string()),
            ("SIP_ASSISTANT__HOOKS__POLL_MS", "0".into()),
            ("SIP_ASSISTANT__HOOKS__DEFAULT", "late".into()),
        ],
    );
    let warnings = |service: &Service| service.lines().matches(DEFAULT_MISSING).count();
    assert_eq!(warnings(&service), 1, "{}", service.lines());
    assert!(listed(service.api).is_empty());

    // Without a signal nothing looks at the folder.
    guests::install(&hooks, "ordinals", "late");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(listed(service.api).is_empty(), "{}", service.lines());

    service.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(30), || listed(service.api)
            == [("late".to_string(), true)]),
        "{:?}\n{}",
        listed(service.api),
        service.lines()
    );
    assert!(service.lines().contains("SIGHUP: hooks reloaded"));
    assert_eq!(warnings(&service), 1, "{}", service.lines());
    let test = r#"{"transcript": "the second one", "options": [{"value": "a"}, {"value": "b"}]}"#;
    let (status, body) = http(service.api, "POST", "/hooks/late/test", test);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""by":"late""#) && body.contains(r#""option":1"#),
        "{body}"
    );

    // Removed, and reloaded: gone, and the default is missing again.
    std::fs::remove_file(hooks.join("late.wasm")).expect("remove");
    service.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(10), || listed(service.api).is_empty()),
        "{}",
        service.lines()
    );
    assert!(
        wait_for(Duration::from_secs(5), || warnings(&service) == 2),
        "{}",
        service.lines()
    );

    service.signal("TERM");
    let (exited, status, lines) = service.wait_exit(Duration::from_secs(15));
    assert!(exited && status.success(), "exit {status:?}\n{lines}");
}
