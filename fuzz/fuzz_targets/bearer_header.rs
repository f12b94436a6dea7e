#![no_main]
//! See `auth_broker_fuzzing::bearer_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::bearer_header::run(data));
