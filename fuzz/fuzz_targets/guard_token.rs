#![no_main]
//! See `auth_broker_fuzzing::guard_token`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::guard_token::run(data));
