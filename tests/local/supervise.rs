//! Supervision in process: a core task that panics turns `GET /health` unhealthy at once and calls
//! the exit hook with code 70 after the grace (the service's hook is `std::process::exit`).

use crate::harness;

use std::sync::{mpsc, Mutex};
use std::time::Duration;

use harness::{request, start_app, test_config, HoldEngine};
use sip_assistant::api;
use sip_assistant::supervise::{Supervisor, EXIT_CODE};

#[test]
fn a_panicking_core_task_turns_health_unhealthy_and_exits_with_70() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(test_config(dir.path()), HoldEngine::new());
    let sup = Supervisor::new();
    let (tx, exits) = mpsc::channel();
    let tx = Mutex::new(tx);
    sup.arm_exit(
        Box::new(move |code| {
            let _ = tx.lock().map(|t| t.send(code));
        }),
        Duration::from_millis(300),
    );
    let server = api::router(api::ApiState {
        supervisor: sup.clone(),
        ..app.api_state()
    });
    let before = request(&server, "GET", "/health", None, &[]);
    assert_eq!(before.json()["status"], "healthy", "{}", before.text);

    let _ = smol::block_on(sup.spawn("scheduler", async {
        let v: Vec<u8> = Vec::new();
        // An index out of bounds, as a bug on network input would cause.
        v[std::hint::black_box(3)]
    }));
    let after = request(&server, "GET", "/health", None, &[]);
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["status"], "unhealthy", "{}", after.text);
    assert!(
        exits.try_recv().is_err(),
        "the exit waits for the grace, so /health can say why"
    );
    assert_eq!(exits.recv_timeout(Duration::from_secs(5)), Ok(EXIT_CODE));
    assert!(
        sup.failures()[0].contains("scheduler panicked"),
        "{:?}",
        sup.failures()
    );
    smol::block_on(app.shutdown());
}
