//! A map whose size and age are bounded, for state kept per key a peer
//! chooses (client ids, addresses): nothing a flood of new keys sends can
//! grow it past its cap, and what nobody touches goes away by itself.
//!
//! The keys live in two generations. Reads and writes go to the current
//! one (a key found in the previous one moves over). When the current
//! generation is half the cap, or older than the state's lifetime, it
//! becomes the previous one and the old previous one is dropped whole —
//! so the least recently touched keys are evicted first, a key untouched
//! for two lifetimes is gone, and every operation is O(1) with no sweep.
//!
//! Both generations hash with one keyed SipHash (the keys are a peer's
//! choice). The caller computes a key's hash once ([`Generations::hash`])
//! and hands it to every operation on that key: a client authentication
//! counts, then takes back, an attempt in two of these maps, and hashing
//! was most of what that cost.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash, RandomState};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Generations<K, V> {
    current: HashTable<(K, V)>,
    previous: HashTable<(K, V)>,
    /// The one hasher of both generations, so a key's hash serves both.
    hasher: RandomState,
    /// Keys held at most, both generations together.
    cap: usize,
    /// How long a value matters after it was last touched.
    lifetime: Duration,
    /// When the current generation began.
    started: Instant,
}

impl<K: Hash + Eq + Clone, V> Generations<K, V> {
    pub fn new(cap: usize, lifetime: Duration, now: Instant) -> Self {
        Self { current: HashTable::new(), previous: HashTable::new(), hasher: RandomState::new(), cap: cap.max(2), lifetime, started: now }
    }

    /// The hash every operation on `key` takes.
    pub fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The value of `key` (whose [`hash`](Self::hash) is `hash`), if it is
    /// still held.
    pub fn get_mut(&mut self, hash: u64, key: &K, now: Instant) -> Option<&mut V> {
        self.age(now);
        self.held(hash, key)
    }

    /// The value of `key`, made with `new` when it is not held.
    pub fn get_or_insert_with(&mut self, hash: u64, key: &K, now: Instant, new: impl FnOnce() -> V) -> &mut V {
        self.age(now);
        if self.held(hash, key).is_none() {
            self.insert(hash, (key.clone(), new()));
        }
        self.current.find_mut(hash, |(k, _)| k == key).map(|(_, value)| value).expect("just inserted")
    }

    pub fn remove(&mut self, hash: u64, key: &K) {
        if let Ok(entry) = self.current.find_entry(hash, |(k, _)| k == key) {
            entry.remove();
        } else if let Ok(entry) = self.previous.find_entry(hash, |(k, _)| k == key) {
            entry.remove();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// The value of `key` (whose hash is `hash`), moved into the current
    /// generation if it was in the previous one.
    fn held(&mut self, hash: u64, key: &K) -> Option<&mut V> {
        if self.current.find(hash, |(k, _)| k == key).is_none() {
            let (entry, _) = self.previous.find_entry(hash, |(k, _)| k == key).ok()?.remove();
            self.insert(hash, entry);
        }
        self.current.find_mut(hash, |(k, _)| k == key).map(|(_, value)| value)
    }

    /// Put an entry known to be absent into the current generation.
    fn insert(&mut self, hash: u64, entry: (K, V)) {
        self.make_room();
        let hasher = &self.hasher;
        self.current.insert_unique(hash, entry, |(k, _)| hasher.hash_one(k));
    }

    /// Start a new generation once the current one has lived a lifetime:
    /// nothing in the previous one has been touched for that long.
    fn age(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.started);
        if age >= self.lifetime {
            self.previous = if age >= self.lifetime * 2 { HashTable::new() } else { std::mem::take(&mut self.current) };
            self.current = HashTable::new();
            self.started = now;
        }
    }

    /// Before an insert: at half the cap, the previous generation goes.
    fn make_room(&mut self) {
        if self.current.len() >= self.cap / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn get<'a, K: Hash + Eq + Clone, V>(map: &'a mut Generations<K, V>, key: &K, now: Instant) -> Option<&'a mut V> {
        map.get_mut(map.hash(key), key, now)
    }

    fn put<'a, K: Hash + Eq + Clone, V>(map: &'a mut Generations<K, V>, key: &K, now: Instant, new: impl FnOnce() -> V) -> &'a mut V {
        map.get_or_insert_with(map.hash(key), key, now, new)
    }

    #[test]
    fn never_holds_more_than_the_cap_and_evicts_the_oldest() {
        let start = Instant::now();
        let mut map = Generations::new(100, MINUTE, start);
        for key in 0..10_000u32 {
            *put(&mut map, &key, start, || 0) += 1;
            assert!(map.len() <= 100, "{} keys held after inserting {key}", map.len());
        }
        assert!(get(&mut map, &9_999, start).is_some(), "the newest key is held");
        assert!(get(&mut map, &0, start).is_none(), "the oldest key was evicted");
    }

    #[test]
    fn a_key_in_use_survives_a_flood_of_new_ones_better_than_an_idle_one() {
        let start = Instant::now();
        let mut map = Generations::new(100, MINUTE, start);
        put(&mut map, &"busy".to_string(), start, || 1);
        put(&mut map, &"idle".to_string(), start, || 1);
        for key in 0..200 {
            put(&mut map, &key.to_string(), start, || 0);
            get(&mut map, &"busy".to_string(), start);
        }
        assert_eq!(get(&mut map, &"busy".to_string(), start), Some(&mut 1));
        assert!(get(&mut map, &"idle".to_string(), start).is_none());
    }

    #[test]
    fn values_untouched_for_two_lifetimes_are_gone_and_touched_ones_stay() {
        let start = Instant::now();
        let mut map = Generations::new(1_000, MINUTE, start);
        put(&mut map, &1, start, || "a");
        put(&mut map, &2, start, || "b");
        let later = start + MINUTE + Duration::from_secs(1);
        assert_eq!(get(&mut map, &1, later), Some(&mut "a"), "one lifetime later it is still held");
        let much_later = later + MINUTE * 2;
        assert_eq!(get(&mut map, &1, much_later), None);
        assert_eq!(get(&mut map, &2, much_later), None);
        assert_eq!(map.len(), 0, "the memory went with them");
    }

    #[test]
    fn removed_keys_are_gone_from_either_generation() {
        let start = Instant::now();
        let mut map = Generations::new(4, MINUTE, start);
        put(&mut map, &1, start, || ());
        put(&mut map, &2, start, || ());
        put(&mut map, &3, start, || ());
        map.remove(map.hash(&1), &1);
        map.remove(map.hash(&3), &3);
        assert!(get(&mut map, &1, start).is_none() && get(&mut map, &3, start).is_none());
        assert!(get(&mut map, &2, start).is_some());
    }
}
