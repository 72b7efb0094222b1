//! [`KeyedMap`]: a hash map that keeps its entries in least-recently-used order, so that
//! finding, touching, inserting and evicting are all O(1).
//!
//! The order is a doubly linked list threaded through a slab of nodes by index (no unsafe, no
//! allocation per touch). Eviction looks at a bounded number of the least recently used
//! entries for one the caller is willing to lose; entries it keeps are moved to the front, as
//! if used, so a flood of new keys walks past them instead of scanning the whole map.

use std::collections::HashMap;
use std::hash::Hash;

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A map in least-recently-used order; see the module docs.
#[derive(Debug)]
pub(crate) struct KeyedMap<K, V> {
    index: HashMap<K, usize>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    /// The most recently used entry.
    newest: usize,
    /// The least recently used entry.
    oldest: usize,
}

impl<K: Hash + Eq + Clone, V> KeyedMap<K, V> {
    pub(crate) fn new() -> Self {
        KeyedMap {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    fn node(&self, i: usize) -> &Node<K, V> {
        self.nodes[i].as_ref().expect("a linked node")
    }

    fn node_mut(&mut self, i: usize) -> &mut Node<K, V> {
        self.nodes[i].as_mut().expect("a linked node")
    }

    fn unlink(&mut self, i: usize) {
        let (newer, older) = {
            let n = self.node(i);
            (n.newer, n.older)
        };
        match newer {
            NIL => self.newest = older,
            j => self.node_mut(j).older = older,
        }
        match older {
            NIL => self.oldest = newer,
            j => self.node_mut(j).newer = newer,
        }
    }

    fn push_newest(&mut self, i: usize) {
        let old_newest = self.newest;
        {
            let n = self.node_mut(i);
            n.newer = NIL;
            n.older = old_newest;
        }
        match old_newest {
            NIL => self.oldest = i,
            j => self.node_mut(j).newer = i,
        }
        self.newest = i;
    }

    fn touch(&mut self, i: usize) {
        if self.newest != i {
            self.unlink(i);
            self.push_newest(i);
        }
    }

    /// The value of `key`, which counts as a use.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let i = *self.index.get(key)?;
        self.touch(i);
        Some(&self.node(i).value)
    }

    /// The value of `key`, without counting as a use.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.index.get(key).map(|&i| &self.node(i).value)
    }

    /// Inserts `key`, which must not be in the map, as the most recently used entry.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        debug_assert!(!self.index.contains_key(&key));
        let node = Node {
            key: key.clone(),
            value,
            newer: NIL,
            older: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.index.insert(key, i);
        self.push_newest(i);
    }

    /// Removes one entry among the least recently used: the oldest of the first `tries` for
    /// which `keep` is false, or, if `keep` holds for all of them, the next oldest. The ones
    /// kept move to the front. Returns the removed key; `None` only when the map is empty.
    pub(crate) fn evict(&mut self, tries: usize, keep: impl Fn(&V) -> bool) -> Option<K> {
        for _ in 0..tries.min(self.len().saturating_sub(1)) {
            let i = self.oldest;
            if !keep(&self.node(i).value) {
                return Some(self.remove_at(i));
            }
            self.touch(i);
        }
        match self.oldest {
            NIL => None,
            i => Some(self.remove_at(i)),
        }
    }

    fn remove_at(&mut self, i: usize) -> K {
        self.unlink(i);
        let node = self.nodes[i].take().expect("a linked node");
        self.index.remove(&node.key);
        self.free.push(i);
        node.key
    }
}

impl<K, V> KeyedMap<K, V> {
    /// The entries, most recently used first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut i = self.newest;
        std::iter::from_fn(move || {
            let node = self.nodes.get(i)?.as_ref()?;
            i = node.older;
            Some((&node.key, &node.value))
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn keys<V>(map: &KeyedMap<u32, V>) -> Vec<u32> {
        map.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn gets_move_an_entry_to_the_front_and_peeks_do_not() {
        let mut map = KeyedMap::new();
        for k in 1..=4 {
            map.insert(k, ());
        }
        assert_eq!(keys(&map), [4, 3, 2, 1]);
        map.get(&2);
        assert_eq!(keys(&map), [2, 4, 3, 1]);
        map.peek(&1);
        assert_eq!(keys(&map), [2, 4, 3, 1]);
        map.get(&1);
        assert_eq!(keys(&map), [1, 2, 4, 3]);
    }

    #[test]
    fn eviction_prefers_the_oldest_entry_the_caller_does_not_keep() {
        let mut map = KeyedMap::new();
        for k in 1..=5 {
            map.insert(k, k % 2 == 1); // odd keys are "tripped": kept
        }
        assert_eq!(map.evict(8, |&tripped| tripped), Some(2));
        // 1 was passed over and moved to the front.
        assert_eq!(keys(&map), [1, 5, 4, 3]);
        map.insert(6, false);
        assert_eq!(map.evict(8, |&tripped| tripped), Some(4));
        assert_eq!(map.len(), 4);
    }

    #[test]
    fn when_everything_is_kept_the_next_oldest_goes() {
        let mut map = KeyedMap::new();
        for k in 1..=5 {
            map.insert(k, ());
        }
        assert_eq!(map.evict(2, |_| true), Some(3));
        assert_eq!(keys(&map), [2, 1, 5, 4]);
        let mut one = KeyedMap::new();
        one.insert(7, ());
        assert_eq!(one.evict(8, |_| true), Some(7));
        assert_eq!(one.evict(8, |_| true), None);
    }

    #[test]
    fn eviction_looks_at_a_bounded_number_of_entries_whatever_the_size() {
        let mut map = KeyedMap::new();
        for k in 0..20_000u32 {
            map.insert(k, k < 19_990); // only the ten newest are closed
        }
        let looked = Cell::new(0);
        let evicted = map.evict(8, |&tripped| {
            looked.set(looked.get() + 1);
            tripped
        });
        assert_eq!(looked.get(), 8);
        assert_eq!(evicted, Some(8), "the ninth oldest, after eight kept");
        assert_eq!(map.len(), 19_999);
        // Slots of evicted entries are reused.
        map.insert(99_999, false);
        assert_eq!(map.nodes.len(), 20_000);
    }
}
