//! WebAssembly choice hooks end to end: the example guests and a hostile one, built into
//! components by `wasm-hooks/build.sh`, loaded by `Hooks`, limited, reloaded, chosen per request,
//! and reached through the API.

use crate::guests;
use crate::harness;
use crate::openapi;

use std::time::{Duration, Instant};

use guests::{folder, input, install, loaded, opt, settings};
use serde_json::json;
use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::Alternative;
use sip_assistant::hooks::{HookVerdict, Hooks, BUILT_IN};

fn confirm_cancel() -> Vec<ChoiceOption> {
    vec![opt("confirm", &["yes"]), opt("cancel", &["no"])]
}

#[test]
fn example_hooks_decide() {
    let dir = folder(&[
        ("fuzzy", "fuzzy"),
        ("ordinals", "ordinals"),
        ("yesno-eu", "yesno"),
    ]);
    let hooks = loaded(settings(dir.path(), None));
    assert_eq!(hooks.loaded_names(), ["fuzzy", "ordinals", "yesno"]);

    let d = smol::block_on(hooks.decide(Some("fuzzy"), &input("council", confirm_cancel())));
    assert_eq!(
        (d.verdict, d.by.as_str(), d.fallback),
        (HookVerdict::Matched(1), "fuzzy", None)
    );
    // The built-in matcher would not take "council" for "cancel".
    let b = smol::block_on(hooks.decide(Some(BUILT_IN), &input("council", confirm_cancel())));
    assert_eq!(b.verdict, HookVerdict::NoMatch);

    let colours = vec![opt("red", &[]), opt("green", &[]), opt("blue", &[])];
    for (said, want) in [
        ("the second one", 1),
        ("option 3", 2),
        ("press two", 1),
        ("the last one", 2),
    ] {
        let d = smol::block_on(hooks.decide(Some("ordinals"), &input(said, colours.clone())));
        assert_eq!(d.verdict, HookVerdict::Matched(want), "{said}");
    }
    let d = smol::block_on(hooks.decide(Some("ordinals"), &input("option five", colours)));
    assert!(
        matches!(d.verdict, HookVerdict::Reprompt(ref t) if t.contains("1 to 3")),
        "{d:?}"
    );

    let yes_no = vec![opt("yes", &[]), opt("no", &[])];
    for (said, lang, want) in [
        ("Jawohl", "de-DE", HookVerdict::Matched(0)),
        ("nee hoor", "nl", HookVerdict::Matched(1)),
        ("d'accord", "fr-FR", HookVerdict::Matched(0)),
        ("claro que no", "es", HookVerdict::Matched(1)),
        ("nicht sicher", "de", HookVerdict::NoMatch),
    ] {
        let mut i = input(said, yes_no.clone());
        i.language = Some(lang.into());
        let d = smol::block_on(hooks.decide(Some("yesno"), &i));
        assert_eq!(d.verdict, want, "{said} ({lang})");
        assert_eq!(d.fallback, None);
    }
    let mut keyed = input("", yes_no);
    keyed.alternatives.clear();
    keyed.digits = "2".into();
    let d = smol::block_on(hooks.decide(Some("yesno"), &keyed));
    assert_eq!(d.verdict, HookVerdict::Matched(1));
}

/// Run the hostile hook on `transcript` and return the fallback reason.
fn hostile_reason(hooks: &Hooks, transcript: &str) -> String {
    let started = Instant::now();
    let d = smol::block_on(hooks.decide(Some("hostile"), &input(transcript, confirm_cancel())));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{transcript} took {:?}",
        started.elapsed()
    );
    assert_eq!(d.by, BUILT_IN, "{transcript}: {d:?}");
    let shown = format!("{d:?}");
    d.fallback
        .unwrap_or_else(|| panic!("{transcript}: no fallback recorded: {shown}"))
}

#[test]
fn hostile_hooks_are_contained_and_fall_back() {
    let dir = folder(&[("hostile", "hostile")]);
    let mut s = settings(dir.path(), None);
    // Long enough that fuel and memory, not the clock, stop these (the clock has its own test).
    s.timeout = Duration::from_secs(5);
    let hooks = loaded(s);
    let fuel = hostile_reason(&hooks, "loop");
    assert!(fuel.contains("ran out of fuel"), "{fuel}");
    let memory = hostile_reason(&hooks, "grow");
    assert!(memory.contains("memory limit"), "{memory}");
    let trap = hostile_reason(&hooks, "trap");
    assert!(trap.contains("trapped"), "{trap}");
    let index = hostile_reason(&hooks, "index");
    assert!(index.contains("option index 999"), "{index}");
    let huge = hostile_reason(&hooks, "huge");
    assert!(huge.contains("reprompt of 2100000 characters"), "{huge}");
    // A log flood is cut to the budget and the call still answers.
    let spam = smol::block_on(hooks.decide(Some("hostile"), &input("spam", confirm_cancel())));
    assert_eq!((spam.verdict, spam.fallback), (HookVerdict::NoMatch, None));
    // The fallback decides with the built-in matcher: "first" is fine, "yes" falls back to option 0.
    let ok = smol::block_on(hooks.decide(Some("hostile"), &input("first", confirm_cancel())));
    assert_eq!((ok.verdict, ok.by.as_str()), (HookVerdict::Matched(0), "hostile"));
    let info = hooks
        .infos()
        .into_iter()
        .find(|i| i.name == "hostile")
        .expect("info");
    assert_eq!((info.calls, info.failures), (7, 5));
    assert!(info.last_error.is_some_and(|e| e.contains("reprompt")));
    // After all that the instance pool is clean: each call had a fresh store.
    let again = smol::block_on(hooks.decide(Some("hostile"), &input("first", confirm_cancel())));
    assert_eq!(again.verdict, HookVerdict::Matched(0));
}

/// `hostile-memories` is the hostile guest with three more linear memories of 6 MiB each: every
/// one fits under 16 MiB, all of them together (plus the guest's own memory) do not.
#[test]
fn the_memory_limit_is_for_all_memories_of_a_component_together() {
    let dir = folder(&[("hostile-memories", "many")]);
    let hooks = loaded(settings(dir.path(), None));
    let d = smol::block_on(hooks.decide(Some("many"), &input("first", confirm_cancel())));
    assert_eq!(d.by, BUILT_IN);
    let reason = d.fallback.expect("fallback");
    assert!(
        reason.contains("exceeded the memory limit of 16777216 bytes"),
        "{reason}"
    );

    // With room for all of them it runs; growing past the total is still stopped.
    let mut s = settings(dir.path(), None);
    s.memory_bytes = 32 << 20;
    s.timeout = Duration::from_secs(5);
    let roomy = loaded(s);
    let d = smol::block_on(roomy.decide(Some("many"), &input("first", confirm_cancel())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(0), "many"));
    let d = smol::block_on(roomy.decide(Some("many"), &input("grow", confirm_cancel())));
    let reason = d.fallback.expect("fallback");
    assert!(reason.contains("memory limit"), "{reason}");
}

/// A component built against a WASI world imports more than `log`: it never loads, and says why.
#[test]
fn a_component_with_a_wasi_import_is_refused_at_load() {
    let dir = folder(&[("wasi-clock", "clock"), ("ordinals", "ordinals")]);
    let hooks = Hooks::new(settings(dir.path(), None)).expect("hooks");
    let report = hooks.reload_blocking();
    assert_eq!(report.loaded, ["ordinals"]);
    let [(name, error)] = report.failed.as_slice() else {
        panic!("{report:?}");
    };
    assert_eq!(name, "clock");
    assert!(
        error.contains("does not fit the choice-matcher world")
            && error.contains("wasi:clocks/monotonic-clock@0.2.0"),
        "{error}"
    );
    let info = hooks
        .infos()
        .into_iter()
        .find(|i| i.name == "clock")
        .expect("listed");
    assert!(!info.loaded && info.hash.is_none(), "{info:?}");
    assert_eq!(info.last_error.as_deref(), Some(error.as_str()));
    assert_eq!(hooks.loaded_names(), ["ordinals"]);
    assert!(hooks.check_matcher(Some("clock")).is_err());
    // A call that names it anyway (the default, say) is decided by the built-in matcher.
    let d = smol::block_on(hooks.decide(Some("clock"), &input("yes", confirm_cancel())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(0), BUILT_IN));
    assert_eq!(d.fallback.as_deref(), Some("hook 'clock' failed to load"));
}

/// A hook named by a call that is not there when the answer comes, or a mistyped
/// `hooks.default`: the built-in matcher decides and the name is counted.
#[test]
fn a_missing_hook_is_counted_and_a_missing_default_reported() {
    let dir = folder(&[("ordinals", "ordinals"), ("fuzzy", "fuzzy")]);
    let mut s = settings(dir.path(), None);
    s.default = Some("ordinal".into());
    let hooks = Hooks::new(s).expect("hooks");
    let report = hooks.reload_blocking();
    assert_eq!(report.default_missing.as_deref(), Some("ordinal"));
    assert!(hooks.missing().is_empty());

    let d = smol::block_on(hooks.decide(None, &input("yes", confirm_cancel())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(0), BUILT_IN));
    assert_eq!(d.fallback.as_deref(), Some("hook 'ordinal' is not loaded"));
    smol::block_on(hooks.decide(None, &input("no", confirm_cancel())));

    // Accepted while `fuzzy` was there; removed before the answer.
    assert_eq!(hooks.check_matcher(Some("fuzzy")), Ok(()));
    std::fs::remove_file(dir.path().join("fuzzy.wasm")).expect("remove");
    assert_eq!(hooks.reload_blocking().removed, ["fuzzy"]);
    let d = smol::block_on(hooks.decide(Some("fuzzy"), &input("council", confirm_cancel())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::NoMatch, BUILT_IN));
    assert_eq!(d.fallback.as_deref(), Some("hook 'fuzzy' is not loaded"));

    let missing = hooks.missing();
    assert_eq!(
        missing.into_iter().collect::<Vec<_>>(),
        [("fuzzy".to_string(), 1), ("ordinal".to_string(), 2)]
    );
    // The hooks that are there did not count these calls.
    assert!(hooks.infos().iter().all(|i| i.calls == 0), "{:?}", hooks.infos());

    // Once the default's file appears, the reload says so.
    install(dir.path(), "ordinals", "ordinal");
    assert_eq!(hooks.reload_blocking().default_missing, None);
    let d = smol::block_on(hooks.decide(None, &input("the second one", confirm_cancel())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(1), "ordinal"));
}

#[test]
fn an_endless_loop_hits_the_epoch_deadline() {
    let dir = folder(&[("hostile", "hostile")]);
    let mut s = settings(dir.path(), None);
    s.fuel = 1 << 40;
    let hooks = loaded(s);
    let started = Instant::now();
    let reason = hostile_reason(&hooks, "loop");
    assert!(reason.contains("timed out after 50 ms"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn fallback_decides_with_the_built_in_matcher() {
    let dir = folder(&[("hostile", "hostile")]);
    let hooks = loaded(settings(dir.path(), None));
    let mut i = input("trap", confirm_cancel());
    i.alternatives.push(Alternative {
        transcript: "yes".into(),
        confidence: Some(0.5),
    });
    let d = smol::block_on(hooks.decide(Some("hostile"), &i));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(0), BUILT_IN));
    assert!(d.detail.contains("\"yes\""), "{}", d.detail);
    let missing = smol::block_on(hooks.decide(Some("nope"), &input("no", confirm_cancel())));
    assert_eq!(missing.verdict, HookVerdict::Matched(1));
    assert_eq!(missing.fallback.as_deref(), Some("hook 'nope' is not loaded"));
}

#[test]
fn reload_on_change_and_removal_and_the_precompiled_cache() {
    let dir = folder(&[("ordinals", "pick")]);
    let cache = tempfile::tempdir().expect("cache");
    let hooks = loaded(settings(dir.path(), Some(cache.path())));
    let first = hooks.infos()[0].clone();
    assert!(!first.from_cache);
    let yes_no = vec![opt("yes", &[]), opt("no", &[])];
    let mut ja = input("jawohl", yes_no.clone());
    ja.language = Some("de".into());
    assert_eq!(
        smol::block_on(hooks.decide(Some("pick"), &ja)).verdict,
        HookVerdict::NoMatch
    );

    // Nothing changed: nothing reloads.
    assert!(hooks.reload_blocking().loaded.is_empty());

    // A new version under the same name replaces it.
    install(dir.path(), "yesno-eu", "pick");
    let report = hooks.reload_blocking();
    assert_eq!(report.loaded, ["pick"]);
    assert_eq!(
        smol::block_on(hooks.decide(Some("pick"), &ja)).verdict,
        HookVerdict::Matched(0)
    );
    assert_ne!(hooks.infos()[0].hash, first.hash);

    // A broken file keeps the last good version running and shows the error.
    std::fs::write(dir.path().join("pick.wasm"), b"\0asm not really").expect("write");
    let report = hooks.reload_blocking();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let info = hooks.infos()[0].clone();
    assert!(info.loaded && info.last_error.is_some(), "{info:?}");
    assert_eq!(
        smol::block_on(hooks.decide(Some("pick"), &ja)).verdict,
        HookVerdict::Matched(0)
    );

    // A restart loads from the cache.
    install(dir.path(), "yesno-eu", "pick");
    hooks.reload_blocking();
    let restarted = loaded(settings(dir.path(), Some(cache.path())));
    assert!(restarted.infos()[0].from_cache, "{:?}", restarted.infos());
    assert_eq!(
        smol::block_on(restarted.decide(Some("pick"), &ja)).verdict,
        HookVerdict::Matched(0)
    );
    // A damaged cache entry is not trusted: it recompiles.
    for entry in std::fs::read_dir(cache.path()).expect("cache dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(entry.path(), b"garbage").expect("damage");
        }
    }
    let again = loaded(settings(dir.path(), Some(cache.path())));
    assert!(!again.infos()[0].from_cache);

    // Removal unloads.
    std::fs::remove_file(dir.path().join("pick.wasm")).expect("remove");
    assert_eq!(hooks.reload_blocking().removed, ["pick"]);
    let d = smol::block_on(hooks.decide(Some("pick"), &ja));
    assert!(d.fallback.is_some());
}

#[test]
fn the_watcher_picks_up_new_files() {
    let dir = folder(&[]);
    let hooks = loaded(settings(dir.path(), None));
    assert!(hooks.loaded_names().is_empty());
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    hooks.spawn_watcher(Duration::from_millis(100), stop_rx);
    install(dir.path(), "ordinals", "late");
    assert!(harness::wait_for(Duration::from_secs(20), || !hooks
        .loaded_names()
        .is_empty()));
    assert_eq!(hooks.loaded_names(), ["late"]);
    drop(stop_tx);
}

#[test]
fn a_hook_per_request_else_the_default() {
    let dir = folder(&[("fuzzy", "fuzzy"), ("ordinals", "ordinals")]);
    let mut s = settings(dir.path(), None);
    s.default = Some("ordinals".into());
    let hooks = loaded(s);
    let colours = vec![opt("red", &[]), opt("green", &[])];
    let d = smol::block_on(hooks.decide(None, &input("the second one", colours.clone())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(1), "ordinals"));
    let d = smol::block_on(hooks.decide(Some("fuzzy"), &input("grean", colours.clone())));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(1), "fuzzy"));
    let d = smol::block_on(hooks.decide(Some(BUILT_IN), &input("the second one", colours)));
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::NoMatch, BUILT_IN));
    assert_eq!(hooks.check_matcher(Some("fuzzy")), Ok(()));
    assert_eq!(hooks.check_matcher(None), Ok(()));
    assert_eq!(
        hooks.check_matcher(Some("x")),
        Err("choice.matcher 'x' is not a loaded hook (loaded: fuzzy, ordinals; 'built-in' is the built-in matcher)".into())
    );
}

#[test]
fn api_lists_tests_and_checks_hooks() {
    let data = tempfile::tempdir().expect("data");
    let hooks_dir = folder(&[
        ("fuzzy", "fuzzy"),
        ("hostile", "hostile"),
        ("wasi-clock", "clock"),
    ]);
    let mut config = harness::test_config(data.path());
    config.hooks.dir = hooks_dir.path().to_path_buf();
    let app = harness::start_app(config, harness::HoldEngine::new());
    let server = harness::router(&app);
    let spec = openapi::Spec::ours();

    let test_body = json!({"transcript": "council", "options": [{"value": "confirm"}, {"value": "cancel"}]});
    let r = harness::request(
        &server,
        "POST",
        "/hooks/fuzzy/test",
        Some(test_body.to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (v["decision"].as_str(), v["option"].as_u64(), v["value"].as_str()),
        (Some("matched"), Some(1), Some("cancel"))
    );
    assert_eq!(spec.check_response("/hooks/{name}/test", "post", 200, &v), Ok(()));

    let trap = json!({"transcript": "trap", "alternatives": [{"transcript": "yes", "confidence": 0.4}],
        "options": [{"value": "confirm", "synonyms": ["yes"]}, {"value": "cancel"}]});
    let r = harness::request(
        &server,
        "POST",
        "/hooks/hostile/test",
        Some(trap.to_string().as_bytes()),
        &[],
    );
    let v = r.json();
    assert_eq!(v["by"], "built-in", "{v}");
    assert!(
        v["fallback"].as_str().is_some_and(|f| f.contains("trapped")),
        "{v}"
    );
    assert_eq!(v["option"], 0);
    assert_eq!(spec.check_response("/hooks/{name}/test", "post", 200, &v), Ok(()));

    let r = harness::request(
        &server,
        "POST",
        "/hooks/nope/test",
        Some(test_body.to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.detail().contains("no hook named 'nope'"));
    let r = harness::request(
        &server,
        "POST",
        "/hooks/fuzzy/test",
        Some(b"{\"options\": []}"),
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);

    let r = harness::request(&server, "GET", "/hooks", None, &[]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(spec.check_response("/hooks", "get", 200, &v), Ok(()));
    let hooks = v["hooks"].as_array().expect("hooks");
    assert_eq!(hooks.len(), 3);
    let hostile = hooks.iter().find(|h| h["name"] == "hostile").expect("hostile");
    assert_eq!(
        (hostile["calls"].as_u64(), hostile["failures"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(hostile["hash"].as_str().map(str::len), Some(64));
    // A component importing more than `log` is listed, not loaded, with the reason.
    let clock = hooks.iter().find(|h| h["name"] == "clock").expect("clock");
    assert_eq!((&clock["loaded"], &clock["hash"]), (&json!(false), &json!(null)));
    let error = clock["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not fit the choice-matcher world")
            && error.contains("wasi:clocks/monotonic-clock@0.2.0"),
        "{clock}"
    );
    assert_eq!(v["missing"], json!({}));

    let call = |matcher: &str| {
        json!({"message": "m", "extension": "1001", "callback_url": "http://127.0.0.1:9/hook",
            "choice": {"prompt": "p", "matcher": matcher, "options": [{"value": "a"}, {"value": "b"}]}})
        .to_string()
    };
    let r = harness::request(&server, "POST", "/call", Some(call("x").as_bytes()), &[]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.detail(),
        "choice.matcher 'x' is not a loaded hook (loaded: fuzzy, hostile; 'built-in' is the built-in matcher)"
    );
    let r = harness::request(&server, "POST", "/call", Some(call("clock").as_bytes()), &[]);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = harness::request(&server, "POST", "/call", Some(call("fuzzy").as_bytes()), &[]);
    assert_eq!(r.status, 200, "{}", r.text);

    // An answer for a hook that has gone since its call was accepted is counted by name.
    smol::block_on(app.hooks.decide(Some("gone"), &input("a", confirm_cancel())));
    let v = harness::request(&server, "GET", "/hooks", None, &[]).json();
    assert_eq!(v["missing"], json!({"gone": 1}));
    assert_eq!(spec.check_response("/hooks", "get", 200, &v), Ok(()));
    smol::block_on(app.shutdown());
}

/// The cache files of `from` copied over those of `to` (same names: same hooks, same engine).
fn copy_entries(from: &std::path::Path, to: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(from).expect("cache dir").flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".cwasm") || name.to_string_lossy().ends_with(".mac") {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
            n += 1;
        }
    }
    n
}

#[test]
fn a_precompiled_hook_planted_from_another_installation_is_compiled_not_loaded() {
    let dir = folder(&[("ordinals", "pick")]);
    let ours = tempfile::tempdir().expect("cache");
    let theirs = tempfile::tempdir().expect("other installation's cache");
    assert!(!loaded(settings(dir.path(), Some(ours.path()))).infos()[0].from_cache);
    assert!(loaded(settings(dir.path(), Some(ours.path()))).infos()[0].from_cache);
    // Another installation (another key) compiles the same hook; its files, MAC and all, are
    // planted over ours.
    assert!(!loaded(settings(dir.path(), Some(theirs.path()))).infos()[0].from_cache);
    assert_eq!(copy_entries(theirs.path(), ours.path()), 2);
    let planted = loaded(settings(dir.path(), Some(ours.path())));
    assert!(planted.cache_in_use());
    assert!(
        !planted.infos()[0].from_cache,
        "a MAC under another key was trusted"
    );
    // A cwasm with the unkeyed checksum of the old format is not trusted either.
    for entry in std::fs::read_dir(ours.path()).expect("cache dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "mac") {
            let cwasm = std::fs::read(path.with_extension("cwasm")).expect("cwasm");
            let digest: String = sha2_hex(&cwasm);
            std::fs::write(&path, digest).expect("write");
        }
    }
    assert!(!loaded(settings(dir.path(), Some(ours.path()))).infos()[0].from_cache);
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_cache_folder_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = folder(&[("ordinals", "pick")]);
    let cache = tempfile::tempdir().expect("cache");
    assert!(!loaded(settings(dir.path(), Some(cache.path()))).infos()[0].from_cache);
    assert!(loaded(settings(dir.path(), Some(cache.path()))).infos()[0].from_cache);
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let refused = loaded(settings(dir.path(), Some(cache.path())));
    assert!(!refused.cache_in_use(), "a world-writable cache folder was used");
    assert!(!refused.infos()[0].from_cache);
    // A file others can write, in a good folder, is not loaded either.
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for entry in std::fs::read_dir(cache.path()).expect("cache dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o666)).expect("chmod");
        }
    }
    let again = loaded(settings(dir.path(), Some(cache.path())));
    assert!(again.cache_in_use());
    assert!(!again.infos()[0].from_cache, "a world-writable cwasm was loaded");
}
