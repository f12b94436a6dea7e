#![no_main]
//! See `auth_broker_fuzzing::basic_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::basic_header::run(data));
