//! A least-recently-used map with a byte budget, shared by the memory and disk caches.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Entries ordered by last use; `total` is the sum of their sizes.
pub struct Lru<K, V> {
    entries: HashMap<K, (u64, u64, V)>,
    order: BTreeMap<u64, K>,
    tick: u64,
    total: u64,
}

impl<K: Hash + Eq + Clone, V> Default for Lru<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            total: 0,
        }
    }

    /// Sum of the sizes of all entries.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether `key` is present (its place in the order is kept).
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// The value for `key`, marked as just used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let (tick, _, value) = self.entries.get_mut(key)?;
        self.order.remove(tick);
        *tick = self.tick;
        self.order.insert(self.tick, key.clone());
        Some(value)
    }

    /// Inserts or replaces `key` as the most recently used entry.
    pub fn insert(&mut self, key: K, size: u64, value: V) {
        self.remove(&key);
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, (self.tick, size, value));
        self.total += size;
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (tick, size, value) = self.entries.remove(key)?;
        self.order.remove(&tick);
        self.total -= size;
        Some(value)
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (_, size, value) = self.entries.remove(&key)?;
        self.total -= size;
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = Lru::new();
        lru.insert("a", 10, 1);
        lru.insert("b", 20, 2);
        lru.insert("c", 30, 3);
        assert_eq!(lru.get(&"a"), Some(&1));
        assert_eq!(lru.total(), 60);
        assert_eq!(lru.pop_oldest(), Some(("b", 2)));
        assert_eq!(lru.pop_oldest(), Some(("c", 3)));
        lru.insert("a", 5, 9);
        assert_eq!(lru.total(), 5);
        assert_eq!(lru.remove(&"a"), Some(9));
        assert_eq!(lru.pop_oldest(), None);
        assert_eq!(lru.total(), 0);
    }
}
