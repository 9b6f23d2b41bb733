//! What the script's two test files share: seconds as a `Duration`, and the outputs read back.

use std::time::Duration;

use super::{Output, Prompt, Script};

pub fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

pub fn drain(script: &mut Script) -> Vec<Output> {
    std::iter::from_fn(|| script.poll_output()).collect()
}

pub fn plays(outs: &[Output]) -> Vec<Prompt> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Play(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

pub fn events(outs: &[Output]) -> Vec<&'static str> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}
