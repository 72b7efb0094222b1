//! [`KeyedMap`]: a hash map that keeps its entries in least-recently-used order, in two lists
//! (entries the caller may evict, and entries it wants kept, such as tripped circuits), so that
//! finding, touching, inserting and evicting cost O(1), amortized.
//!
//! The lists are doubly linked through a slab of nodes by index (no unsafe, no allocation per
//! touch). An entry's list is decided when it is used, and checked again when eviction reaches
//! it: an entry found to be one to keep moves to the other list instead of being evicted. Each
//! such move pays for one change of the entry's class since it was last looked at, so a flood
//! of new keys costs a constant amount of work per key on average, however large the map.

use std::collections::HashMap;
use std::hash::Hash;

const NIL: usize = usize::MAX;

/// The list of entries eviction takes first.
const EVICTABLE: usize = 0;
/// The list of entries kept as long as there is anything else to evict.
const KEPT: usize = 1;

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    list: usize,
    /// Towards the most recently used end of its list.
    newer: usize,
    /// Towards the least recently used end of its list.
    older: usize,
}

#[derive(Debug, Clone, Copy)]
struct Ends {
    newest: usize,
    oldest: usize,
}

/// A map in least-recently-used order; see the module docs.
#[derive(Debug)]
pub(crate) struct KeyedMap<K, V> {
    index: HashMap<K, usize>,
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<usize>,
    lists: [Ends; 2],
}

impl<K, V> KeyedMap<K, V> {
    fn node(&self, i: usize) -> &Node<K, V> {
        self.nodes[i].as_ref().expect("a linked node")
    }

    fn node_mut(&mut self, i: usize) -> &mut Node<K, V> {
        self.nodes[i].as_mut().expect("a linked node")
    }

    fn unlink(&mut self, i: usize) {
        let (list, newer, older) = {
            let n = self.node(i);
            (n.list, n.newer, n.older)
        };
        match newer {
            NIL => self.lists[list].newest = older,
            j => self.node_mut(j).older = older,
        }
        match older {
            NIL => self.lists[list].oldest = newer,
            j => self.node_mut(j).newer = newer,
        }
    }

    fn push_newest(&mut self, i: usize, list: usize) {
        let old_newest = self.lists[list].newest;
        {
            let n = self.node_mut(i);
            n.list = list;
            n.newer = NIL;
            n.older = old_newest;
        }
        match old_newest {
            NIL => self.lists[list].oldest = i,
            j => self.node_mut(j).newer = i,
        }
        self.lists[list].newest = i;
    }

    /// Makes `i` the most recently used entry of `list`.
    fn touch(&mut self, i: usize, list: usize) {
        if self.lists[list].newest != i {
            self.unlink(i);
            self.push_newest(i, list);
        }
    }

    /// The entries: the evictable ones, then the kept ones, each most recently used first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut list = EVICTABLE;
        let mut i = self.lists[EVICTABLE].newest;
        std::iter::from_fn(move || {
            while i == NIL && list == EVICTABLE {
                list = KEPT;
                i = self.lists[KEPT].newest;
            }
            let node = self.nodes.get(i)?.as_ref()?;
            i = node.older;
            Some((&node.key, &node.value))
        })
    }
}

fn list_of(keep: bool) -> usize {
    if keep { KEPT } else { EVICTABLE }
}

impl<K: Hash + Eq + Clone, V> KeyedMap<K, V> {
    pub(crate) fn new() -> Self {
        let empty = Ends {
            newest: NIL,
            oldest: NIL,
        };
        KeyedMap {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            lists: [empty; 2],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The value of `key`, which counts as a use; `keep` says which list it belongs in now.
    pub(crate) fn get(&mut self, key: &K, keep: impl Fn(&V) -> bool) -> Option<&V> {
        let i = *self.index.get(key)?;
        let list = list_of(keep(&self.node(i).value));
        self.touch(i, list);
        Some(&self.node(i).value)
    }

    /// The value of `key`, without counting as a use.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.index.get(key).map(|&i| &self.node(i).value)
    }

    /// Inserts `key`, which must not be in the map, as the most recently used evictable entry.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        debug_assert!(!self.index.contains_key(&key));
        let node = Node {
            key: key.clone(),
            value,
            list: EVICTABLE,
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
        self.push_newest(i, EVICTABLE);
    }

    /// Removes the least recently used entry for which `keep` is false, or, if there is none,
    /// the least recently used entry. Entries found to be kept on the way move to the kept list.
    /// Returns the removed key; `None` only when the map is empty.
    pub(crate) fn evict(&mut self, keep: impl Fn(&V) -> bool) -> Option<K> {
        loop {
            let i = self.lists[EVICTABLE].oldest;
            if i == NIL {
                break;
            }
            if !keep(&self.node(i).value) {
                return Some(self.remove_at(i));
            }
            self.touch(i, KEPT);
        }
        match self.lists[KEPT].oldest {
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
        map.get(&2, |_| false);
        assert_eq!(keys(&map), [2, 4, 3, 1]);
        map.peek(&1);
        assert_eq!(keys(&map), [2, 4, 3, 1]);
        map.get(&1, |_| false);
        assert_eq!(keys(&map), [1, 2, 4, 3]);
        // A use that finds the entry to be kept moves it to the kept list.
        map.get(&4, |_| true);
        assert_eq!(keys(&map), [1, 2, 3, 4]);
    }

    #[test]
    fn eviction_takes_the_oldest_entry_the_caller_does_not_keep() {
        let mut map = KeyedMap::new();
        for k in 1..=5 {
            map.insert(k, k % 2 == 1); // odd keys are "tripped": kept
        }
        assert_eq!(map.evict(|&tripped| tripped), Some(2));
        // 1 was passed over and moved to the kept list.
        assert_eq!(keys(&map), [5, 4, 3, 1]);
        map.insert(6, false);
        assert_eq!(map.evict(|&tripped| tripped), Some(4));
        assert_eq!(map.evict(|&tripped| tripped), Some(6));
        assert_eq!(keys(&map), [5, 3, 1]);
        // Only kept entries are left: the least recently used of them goes.
        assert_eq!(map.evict(|&tripped| tripped), Some(1));
        assert_eq!(map.len(), 2);
        let mut empty = KeyedMap::<u32, bool>::new();
        assert_eq!(empty.evict(|&tripped| tripped), None);
    }

    #[test]
    fn a_flood_of_new_keys_costs_constant_work_per_key_and_keeps_every_kept_entry() {
        let mut map = KeyedMap::new();
        for k in 0..100u32 {
            map.insert(k, true); // tripped
        }
        let looked = Cell::new(0u64);
        let keep = |&tripped: &bool| {
            looked.set(looked.get() + 1);
            tripped
        };
        for k in 100..1_024 {
            map.insert(k, false);
        }
        for k in 1_024..21_024u32 {
            map.evict(keep);
            map.insert(k, false);
        }
        assert_eq!(map.len(), 1_024);
        assert!((0..100).all(|k| map.peek(&k).is_some()));
        // Each tripped entry is looked at once, then lives in the kept list.
        assert_eq!(looked.get(), 20_000 + 100);
        // Slots of evicted entries are reused.
        assert_eq!(map.nodes.len(), 1_024);
    }
}
