//! `add-memories IN.wasm OUT.wasm COUNT PAGES`: copies a core module (built by wit-bindgen, before
//! `componentize`) and declares COUNT more linear memories of PAGES 64 KiB pages each after its
//! own (multi-memory). Nothing uses them, but instantiating the module creates them all: the
//! host's memory limit must count them together with the module's own memory.

use std::convert::Infallible;
use std::process::ExitCode;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{MemorySection, MemoryType, Module};

struct AddMemories {
    count: u32,
    pages: u64,
    /// Whether the module had a memory section to add to.
    added: bool,
}

impl Reencode for AddMemories {
    type Error = Infallible;

    fn parse_memory_section(
        &mut self,
        memories: &mut MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Result<(), reencode::Error<Infallible>> {
        reencode::utils::parse_memory_section(self, memories, section)?;
        for _ in 0..self.count {
            memories.memory(MemoryType {
                minimum: self.pages,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        self.added = true;
        Ok(())
    }
}

fn run(input: &str, output: &str, count: &str, pages: &str) -> Result<(), String> {
    let count: u32 = count
        .parse()
        .map_err(|_| format!("COUNT must be a number (got '{count}')"))?;
    let pages: u64 = pages
        .parse()
        .map_err(|_| format!("PAGES must be a number (got '{pages}')"))?;
    let bytes = std::fs::read(input).map_err(|e| format!("cannot read {input}: {e}"))?;
    let mut tool = AddMemories {
        count,
        pages,
        added: false,
    };
    let mut module = Module::new();
    tool.parse_core_module(&mut module, wasmparser::Parser::new(0), &bytes)
        .map_err(|e| format!("cannot re-encode {input}: {e}"))?;
    if !tool.added {
        return Err(format!("{input} defines no memory to add to"));
    }
    std::fs::write(output, module.finish()).map_err(|e| format!("cannot write {output}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, count, pages] = args.as_slice() else {
        eprintln!("usage: add-memories IN.wasm OUT.wasm COUNT PAGES");
        return ExitCode::from(2);
    };
    match run(input, output, count, pages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("add-memories: {e}");
            ExitCode::FAILURE
        }
    }
}
