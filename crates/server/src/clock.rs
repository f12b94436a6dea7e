//! Injected time, so expiry and rotation are tested without sleeping: the one
//! [`Clock`] of `auth_broker_jwt`, which the guard uses too (a test can hand the
//! broker and a guard the same [`ManualClock`]).

pub use auth_broker_jwt::clock::{Clock, ManualClock, SystemClock};
