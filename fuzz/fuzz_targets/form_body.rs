#![no_main]
//! See `auth_broker_fuzzing::form_body`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::form_body::run(data));
