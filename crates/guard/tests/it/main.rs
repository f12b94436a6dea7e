//! The guard against a real broker over HTTP (testkit), and against an in-test
//! RFC 7662 introspection endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agreement;
mod bound;
mod common;
mod introspection;
mod jwt;
mod keys;
