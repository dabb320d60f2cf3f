//! The retained message store: at most one message per topic name, found by filter when a
//! client subscribes.
//!
//! Topics are stored level by level so a filter with wildcards visits only the branches it
//! can match. As in the subscription trie, walks are loops with an explicit stack (a
//! publisher chooses how many levels a topic has) and emptied nodes are pruned.

use std::collections::HashMap;
use std::fmt;

use crate::inline_stack::InlineStack;
use crate::topic::next_level;

/// How many pending branches a lookup keeps on its own stack frame before allocating.
const INLINE_BRANCHES: usize = 16;

/// Retained messages keyed by topic name. `V` is the stored message.
pub struct RetainedStore<V> {
    /// The node before the first level; it never holds a value itself, since every topic
    /// has at least one (possibly empty) level.
    root: Node<V>,
    /// Number of stored messages, kept so `len` is O(1) for `$SYS/broker/retained messages/count`.
    len: usize,
}

/// One topic level. Invariant: every node except the root holds a value or has a child.
struct Node<V> {
    /// Next levels. std's `HashMap` uses randomly keyed SipHash: levels come from clients,
    /// and a predictable hash would let them degrade lookups.
    children: HashMap<Box<str>, Node<V>>,
    /// The message retained on the topic ending here, with that topic's full name so a
    /// wildcard lookup can hand it out without rebuilding it from the levels.
    value: Option<(Box<str>, V)>,
}

/// A pending step of a wildcard lookup.
enum Frame<'a, 'f, V> {
    /// `node` has been reached; `rest` is what remains of the filter (`None` = all of it
    /// has matched, so `node` itself matches).
    Match(&'a Node<V>, Option<&'f str>),
    /// Everything in this subtree matches (a trailing `#`).
    All(&'a Node<V>),
}

impl<V> RetainedStore<V> {
    pub fn new() -> Self {
        RetainedStore {
            root: Node::new(),
            len: 0,
        }
    }

    /// Stores `value` as the retained message of `topic`, replacing and returning any
    /// previous one.
    pub fn set(&mut self, topic: &str, value: V) -> Option<V> {
        let node = self.root.descend_or_create(topic);
        match &mut node.value {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                node.value = Some((Box::from(topic), value));
                self.len += 1;
                None
            }
        }
    }

    /// Removes the retained message of `topic` (the broker calls this for a retained
    /// PUBLISH with an empty payload [MQTT-3.3.1-6]). Nodes left empty are freed.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let node = self.root.descend_mut(topic)?;
        let (_, old) = node.value.take()?;
        let now_empty = node.is_empty();
        self.len -= 1;
        if now_empty {
            self.prune(topic);
        }
        Some(old)
    }

    /// The retained message of exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref().map(|(_, value)| value)
    }

    /// Calls `f(topic, message)` for every retained message whose topic matches `filter`
    /// (which may contain wildcards). Topics starting with `$` are not matched by a filter
    /// whose first level is a wildcard [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a str, &'a V)) {
        let mut pending: InlineStack<Frame<'a, '_, V>, INLINE_BRANCHES> = InlineStack::new();

        // The root is handled apart only for the `$` rule.
        let (level, rest) = next_level(filter);
        match level {
            "#" | "+" => {
                if level == "#" && rest.is_some() {
                    // `#` not last: matches nothing.
                    return;
                }
                for (name, child) in &self.root.children {
                    if !name.starts_with('$') {
                        pending.push(match level {
                            "#" => Frame::All(child),
                            _ => Frame::Match(child, rest),
                        });
                    }
                }
            }
            literal => {
                if let Some(child) = self.root.children.get(literal) {
                    pending.push(Frame::Match(child, rest));
                }
            }
        }

        while let Some(frame) = pending.pop() {
            match frame {
                Frame::All(node) => {
                    node.report(&mut f);
                    for child in node.children.values() {
                        pending.push(Frame::All(child));
                    }
                }
                Frame::Match(node, None) => node.report(&mut f),
                Frame::Match(node, Some(remaining)) => match next_level(remaining) {
                    ("#", None) => {
                        // `a/#` matches `a` itself as well as everything below it.
                        node.report(&mut f);
                        for child in node.children.values() {
                            pending.push(Frame::All(child));
                        }
                    }
                    ("#", Some(_)) => {}
                    ("+", next) => {
                        for child in node.children.values() {
                            pending.push(Frame::Match(child, next));
                        }
                    }
                    (literal, next) => {
                        if let Some(child) = node.children.get(literal) {
                            pending.push(Frame::Match(child, next));
                        }
                    }
                },
            }
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frees the nodes along `topic`'s path that no longer hold anything: the shallowest
    /// node whose whole subtree is empty is cut from its parent.
    fn prune(&mut self, topic: &str) {
        // Depth of the deepest node on the path that must stay; the root (depth 0) always does.
        let mut keep_depth = 0;
        let mut depth = 0;
        let mut node = &self.root;
        for level in topic.split('/') {
            let Some(child) = node.children.get(level) else {
                return;
            };
            depth += 1;
            node = child;
            if node.value.is_some() || node.children.len() > 1 {
                keep_depth = depth;
            }
        }
        if !node.is_empty() {
            return;
        }
        let mut levels = topic.split('/');
        let mut parent = &mut self.root;
        for _ in 0..keep_depth {
            let Some(level) = levels.next() else {
                return;
            };
            let Some(child) = parent.children.get_mut(level) else {
                return;
            };
            parent = child;
        }
        if let Some(level) = levels.next() {
            parent.children.remove(level);
            let map = &mut parent.children;
            if map.capacity() > 16 && map.len() * 4 < map.capacity() {
                map.shrink_to_fit();
            }
        }
    }

    /// Number of nodes including the root, to check pruning.
    #[cfg(test)]
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut pending = vec![&self.root];
        while let Some(node) = pending.pop() {
            count += 1;
            pending.extend(node.children.values());
        }
        count
    }
}

impl<V> Default for RetainedStore<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for RetainedStore<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedStore")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            children: HashMap::new(),
            value: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    fn descend_mut(&mut self, topic: &str) -> Option<&mut Node<V>> {
        let mut node = self;
        for level in topic.split('/') {
            node = node.children.get_mut(level)?;
        }
        Some(node)
    }

    fn descend_or_create(&mut self, topic: &str) -> &mut Node<V> {
        let mut node = self;
        for level in topic.split('/') {
            node = node
                .children
                .entry(Box::from(level))
                .or_insert_with(Node::new);
        }
        node
    }

    fn report<'a>(&'a self, f: &mut impl FnMut(&'a str, &'a V)) {
        if let Some((topic, value)) = &self.value {
            f(topic, value);
        }
    }
}

impl<V> Drop for Node<V> {
    /// Frees the subtree iteratively: the default, recursive drop of a topic with tens of
    /// thousands of levels would overflow the stack.
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut pending: Vec<Node<V>> = self.children.drain().map(|(_, child)| child).collect();
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.drain().map(|(_, child)| child));
            // `node` is now a leaf, so dropping it here does not recurse.
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    fn matching(store: &RetainedStore<u32>, filter: &str) -> Vec<String> {
        let mut seen = Vec::new();
        store.for_each_match(filter, |topic, _| seen.push(topic.to_owned()));
        let count = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), count, "a topic was reported twice");
        seen
    }

    fn store_of(topics: &[&str]) -> RetainedStore<u32> {
        let mut store = RetainedStore::new();
        for (i, topic) in (0u32..).zip(topics) {
            store.set(topic, i);
        }
        store
    }

    #[test]
    fn set_get_replace_remove() {
        let mut store = RetainedStore::new();
        assert_eq!(store.set("a/b", 1), None);
        assert_eq!(store.set("a/b", 2), Some(1));
        assert_eq!(store.get("a/b"), Some(&2));
        assert_eq!(store.get("a"), None);
        assert_eq!(store.get("a/b/c"), None);
        assert_eq!(store.len(), 1);
        assert_eq!(store.remove("a"), None);
        assert_eq!(store.remove("a/b"), Some(2));
        assert_eq!(store.remove("a/b"), None);
        assert!(store.is_empty());
    }

    #[test]
    fn wildcard_lookups() {
        let store = store_of(&[
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player2",
            "sport",
            "sport/",
            "/finance",
            "$SYS/broker/uptime",
        ]);
        assert_eq!(
            matching(&store, "sport/tennis/player1/#"),
            ["sport/tennis/player1", "sport/tennis/player1/ranking"]
        );
        assert_eq!(
            matching(&store, "sport/tennis/+"),
            ["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(matching(&store, "sport/+"), ["sport/"]);
        assert_eq!(matching(&store, "+/+"), ["/finance", "sport/"]);
        assert_eq!(matching(&store, "+"), ["sport"]);
        assert_eq!(matching(&store, "#").len(), 6);
        assert_eq!(matching(&store, "$SYS/#"), ["$SYS/broker/uptime"]);
        assert_eq!(matching(&store, "+/broker/uptime"), Vec::<String>::new());
        assert_eq!(matching(&store, "sport/#/x"), Vec::<String>::new());
    }

    #[test]
    fn remove_prunes_empty_nodes() {
        let mut store = store_of(&["a/b/c", "a/b", "a/x/y"]);
        // root, a, b, c, x, y
        assert_eq!(store.node_count(), 6);
        store.remove("a/b/c");
        assert_eq!(store.node_count(), 5);
        store.remove("a/x/y");
        assert_eq!(store.node_count(), 3);
        store.remove("a/b");
        assert_eq!(store.node_count(), 1);
    }

    #[test]
    fn very_deep_topics_do_not_overflow_the_stack() {
        let depth = 100_000;
        let topic = vec!["a"; depth].join("/");
        let mut store = RetainedStore::new();
        store.set(&topic, 1u32);
        store.set("a", 2);
        assert_eq!(matching(&store, "#").len(), 2);
        assert_eq!(matching(&store, &vec!["+"; depth].join("/")).len(), 1);
        assert_eq!(store.get(&topic), Some(&1));
        assert_eq!(store.remove(&topic), Some(1));
        assert_eq!(store.node_count(), 2);
        store.set(&topic, 3);
        // Dropping the deep chain must not recurse either.
        drop(store);
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "$s", ""]), 1..5)
            .prop_map(|levels| levels.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "$s", "", "+", "#"]),
            1..5,
        )
        .prop_map(|levels| levels.join("/"))
    }

    proptest! {
        #[test]
        fn store_agrees_with_naive_matcher(
            sets in prop::collection::vec((topic(), any::<u32>()), 0..24),
            removals in prop::collection::vec(topic(), 0..8),
            filters in prop::collection::vec(filter(), 1..8),
        ) {
            let mut store = RetainedStore::new();
            let mut model = BTreeMap::new();
            for (topic, value) in &sets {
                prop_assert_eq!(store.set(topic, *value), model.insert(topic.clone(), *value));
            }
            for topic in &removals {
                prop_assert_eq!(store.remove(topic), model.remove(topic));
            }
            prop_assert_eq!(store.len(), model.len());
            for filter in &filters {
                let mut seen = BTreeSet::new();
                store.for_each_match(filter, |topic, value| {
                    assert!(seen.insert((topic.to_owned(), *value)), "reported twice");
                });
                let expected: BTreeSet<(String, u32)> = model
                    .iter()
                    .filter(|(topic, _)| matches(filter, topic))
                    .map(|(topic, value)| (topic.clone(), *value))
                    .collect();
                prop_assert_eq!(seen, expected, "filter {:?}", filter);
            }
            for (topic, value) in &model {
                prop_assert_eq!(store.get(topic), Some(value));
                prop_assert_eq!(store.remove(topic), Some(*value));
            }
            prop_assert_eq!(store.node_count(), 1);
        }
    }
}
