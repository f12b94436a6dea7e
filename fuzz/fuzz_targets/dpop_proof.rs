#![no_main]
//! See `auth_broker_fuzzing::dpop_proof`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::dpop_proof::run(data));
