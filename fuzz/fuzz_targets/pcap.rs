#![no_main]
//! cargo-fuzz target: see fuzz/checks.rs for what `pcap` checks.

// Each target uses part of the shared checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

#[global_allocator]
static ALLOC: checks::CappedAlloc = checks::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = std::env::temp_dir().join(format!("repl-sniff-fuzz-{}.pcap", std::process::id()));
    checks::pcap(data, &scratch);
});
