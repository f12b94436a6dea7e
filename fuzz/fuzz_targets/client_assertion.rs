#![no_main]
//! See `auth_broker_fuzzing::client_assertion`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::client_assertion::run(data));
