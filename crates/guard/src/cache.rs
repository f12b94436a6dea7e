//! A bounded cache of validation results keyed by the token itself (a JWT by its
//! low-S form, see `Guard::validate`).
//!
//! Sharded `RwLock`ed maps: a repeat of a token costs one hash and one read lock.
//! Each entry is valid for a window of clock seconds (`from <= now < until`); a
//! stale entry is never returned. When a shard is full, expired entries go first,
//! then arbitrary ones, so memory stays bounded whatever callers send.

use std::collections::HashMap;
use std::sync::RwLock;

const SHARDS: usize = 16;

#[derive(Debug)]
struct Entry<V> {
    value: V,
    from: i64,
    until: i64,
}

#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    shards: Vec<RwLock<HashMap<Box<str>, Entry<V>>>>,
    per_shard: usize,
}

impl<V: Clone> TtlCache<V> {
    /// A cache for about `capacity` entries; `0` disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<Box<str>, Entry<V>>> {
        // The tail of a token is its signature or random bytes: well spread.
        let tail = key.as_bytes().iter().rev().take(8);
        let h = tail.fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        &self.shards[h % SHARDS]
    }

    pub(crate) fn get(&self, key: &str, now: i64) -> Option<V> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(key).read().ok()?;
        let e = shard.get(key)?;
        (e.from <= now && now < e.until).then(|| e.value.clone())
    }

    pub(crate) fn insert(&self, key: &str, value: V, from: i64, until: i64, now: i64) {
        if self.per_shard == 0 || until <= now {
            return;
        }
        let Ok(mut shard) = self.shard(key).write() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            shard.retain(|_, e| e.until > now);
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop a quarter, arbitrary ones.
                let mut drop = self.per_shard / 4 + 1;
                shard.retain(|_, _| {
                    if drop > 0 {
                        drop -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        shard.insert(key.into(), Entry { value, from, until });
    }

    /// Whether it keeps anything (a capacity of `0` turns it off).
    pub(crate) fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_in_their_window_and_the_size_is_bounded() {
        let c = TtlCache::new(64);
        c.insert("a", 1, 10, 20, 10);
        assert_eq!(c.get("a", 9), None);
        assert_eq!(c.get("a", 10), Some(1));
        assert_eq!(c.get("a", 19), Some(1));
        assert_eq!(c.get("a", 20), None);
        for i in 0..10_000 {
            c.insert(&format!("token-{i}"), i, 0, 100, 0);
        }
        assert!(c.len() <= 64, "{} entries", c.len());
        let off = TtlCache::new(0);
        off.insert("a", 1, 0, 100, 0);
        assert_eq!(off.get("a", 1), None);
    }
}
