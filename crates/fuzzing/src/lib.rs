//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, one function per target.
//!
//! Every parser of outside input has a target here. Each function takes the raw
//! fuzzer input, runs the same code the broker, the guard or the client runs on bytes
//! from the network, and panics when an invariant breaks (a panic is what libFuzzer
//! records as a crash). Keeping the bodies in a normal crate lets the committed
//! corpus (`fuzz/corpus/<target>/`) be replayed by `cargo test` on stable, so a
//! regression shows up in CI without nightly or libFuzzer.
#![forbid(unsafe_code)]

pub mod basic_header;
pub mod bearer_header;
pub mod client_assertion;
pub mod dpop_proof;
pub mod fixture;
pub mod form_body;
pub mod jwks_document;
pub mod token_judgement;
pub mod token_response;

/// A target's body: takes the fuzzer's bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their file in `fuzz/fuzz_targets/` and of their
/// corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("basic_header", basic_header::run),
    ("client_assertion", client_assertion::run),
    ("dpop_proof", dpop_proof::run),
    ("bearer_header", bearer_header::run),
    ("form_body", form_body::run),
    ("jwks_document", jwks_document::run),
    ("token_judgement", token_judgement::run),
    ("token_response", token_response::run),
];
