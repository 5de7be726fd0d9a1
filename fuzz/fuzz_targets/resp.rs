#![no_main]
//! cargo-fuzz target: see fuzz/checks.rs for what `resp` checks.

// Each target uses part of the shared checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

#[global_allocator]
static ALLOC: checks::CappedAlloc = checks::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::resp(data));
