#![no_main]
//! See `auth_broker_fuzzing::token_judgement`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::token_judgement::run(data));
