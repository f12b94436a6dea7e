//! Per-client usage (tokens issued, failed authentications, quota refusals per
//! minute), counted in memory on the hot path and written to the store in batches.
//!
//! A token request must not write to the store: each replica adds to counters here
//! (one short lock and a lookup without allocation in the common case) and a
//! background task adds them to the store's per-minute rows every few seconds and at
//! shutdown, where the rows of all replicas add up. A crash loses at most the counts
//! of one flush interval; a flush that fails keeps its counts for the next one.

use crate::store::{Timestamp, UsageRow};
use std::collections::HashMap;
use std::sync::Mutex;

/// How often the counts are written to the store.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Clients counted at most between two flushes; beyond it new clients are not
/// counted until the next flush (a bound for a store outage that stops flushes).
const MAX_CLIENTS: usize = 100_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    issued: i64,
    failed: i64,
    limited: i64,
}

/// One replica's counts since the last flush.
#[derive(Debug, Default)]
pub struct UsageCounter {
    // client id -> (minute, counts), usually one or two minutes per flush interval.
    by_client: Mutex<HashMap<String, Vec<(Timestamp, Counts)>>>,
}

/// What happened to a client's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Issued,
    Failed,
    Limited,
}

fn bump(minutes: &mut Vec<(Timestamp, Counts)>, minute: Timestamp, outcome: Outcome) {
    let i = match minutes.iter().position(|(m, _)| *m == minute) {
        Some(i) => i,
        None => {
            minutes.push((minute, Counts::default()));
            minutes.len() - 1
        }
    };
    let c = &mut minutes[i].1;
    match outcome {
        Outcome::Issued => c.issued += 1,
        Outcome::Failed => c.failed += 1,
        Outcome::Limited => c.limited += 1,
    }
}

impl UsageCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request of `client_id` at Unix second `now`.
    pub fn count(&self, client_id: &str, now: Timestamp, outcome: Outcome) {
        let minute = now.div_euclid(60) * 60;
        let mut map = self
            .by_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(minutes) = map.get_mut(client_id) {
            bump(minutes, minute, outcome);
            return;
        }
        if map.len() < MAX_CLIENTS {
            bump(
                map.entry(client_id.to_owned()).or_default(),
                minute,
                outcome,
            );
        }
    }

    /// Takes every count so far, as store rows.
    pub fn drain(&self) -> Vec<UsageRow> {
        let map = std::mem::take(
            &mut *self
                .by_client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        map.into_iter()
            .flat_map(|(client_id, minutes)| {
                minutes.into_iter().map(move |(minute, c)| UsageRow {
                    client_id: client_id.clone(),
                    minute,
                    issued: c.issued,
                    failed: c.failed,
                    limited: c.limited,
                })
            })
            .collect()
    }

    /// Puts back rows a flush could not write, for the next one.
    pub fn restore(&self, rows: Vec<UsageRow>) {
        let mut map = self
            .by_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in rows {
            let minutes = map.entry(r.client_id).or_default();
            match minutes.iter_mut().find(|(m, _)| *m == r.minute) {
                Some((_, c)) => {
                    c.issued += r.issued;
                    c.failed += r.failed;
                    c.limited += r.limited;
                }
                None => minutes.push((
                    r.minute,
                    Counts {
                        issued: r.issued,
                        failed: r.failed,
                        limited: r.limited,
                    },
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_client_and_minute_and_survive_a_failed_flush() {
        let u = UsageCounter::new();
        u.count("a", 60, Outcome::Issued);
        u.count("a", 119, Outcome::Issued);
        u.count("a", 120, Outcome::Limited);
        u.count("b", 61, Outcome::Failed);
        let mut rows = u.drain();
        rows.sort_by(|x, y| (&x.client_id, x.minute).cmp(&(&y.client_id, y.minute)));
        let flat: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.client_id.as_str(),
                    r.minute,
                    r.issued,
                    r.failed,
                    r.limited,
                )
            })
            .collect();
        assert_eq!(
            flat,
            [("a", 60, 2, 0, 0), ("a", 120, 0, 0, 1), ("b", 60, 0, 1, 0)]
        );
        assert!(u.drain().is_empty());
        u.count("a", 60, Outcome::Issued);
        u.restore(rows);
        let again: i64 = u.drain().iter().map(|r| r.issued).sum();
        assert_eq!(again, 3);
    }
}
