//! `componentize IN.wasm OUT.wasm`: wraps a core module built by wit-bindgen for
//! `wasm32-unknown-unknown` into a component. The module's embedded WIT (the `component-type`
//! custom section wit-bindgen writes) says what it imports and exports; no WASI adapter is used,
//! so a module that imports anything beyond the WIT is refused here, not at load time.

use std::process::ExitCode;

fn run(input: &str, output: &str) -> Result<(), String> {
    let module = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| encoder.encode())
        .map_err(|e| format!("cannot make a component of {input}: {e:#}"))?;
    std::fs::write(output, component).map_err(|e| format!("cannot write {output}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: componentize IN.wasm OUT.wasm");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("componentize: {e}");
            ExitCode::FAILURE
        }
    }
}
