//! The subscription trie: which subscriptions match a topic. This is the broker's hot path.
//!
//! Filters are stored level by level. Each node has literal children in a hash map and
//! separate slots for `+` and `#`, so matching a topic follows at most two branches per
//! level and never scans siblings. Lookups allocate nothing unless more than a handful of
//! `+` branches are pending at once, and every walk is a loop with an explicit stack: a
//! client chooses how many levels its topics and filters have, so recursion could be driven
//! into a stack overflow.
//!
//! Routing holds the trie behind a read lock, so everything a lookup changes (the
//! round-robin position of shared groups) is atomic.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::inline_stack::InlineStack;
use crate::topic::{next_level, split_shared};

/// How many pending `+` branches a lookup keeps on its own stack frame before allocating.
const INLINE_BRANCHES: usize = 16;

/// All subscriptions of all clients, keyed by filter.
///
/// `K` identifies a client (a session key); `V` is the per-subscription data the router
/// needs (QoS, options, subscription identifier…).
pub struct SubscriptionTrie<K, V> {
    /// The node before the first level: its children are keyed by a filter's first level,
    /// and its `+`/`#` slots hold filters starting with a wildcard (which `$` topics skip).
    root: Node<K, V>,
    /// Number of stored subscriptions (normal ones plus shared-group memberships), kept so
    /// `len` is O(1) for `$SYS` and limits.
    len: usize,
}

/// One filter level. Invariant: every node except the root holds a subscription or has a
/// child; `remove` prunes nodes that become empty so churn does not leak memory.
struct Node<K, V> {
    /// Literal next levels. std's `HashMap` uses randomly keyed SipHash: levels come from
    /// clients, and a predictable hash would let them degrade lookups for everyone.
    children: HashMap<Box<str>, Node<K, V>>,
    /// The `+` next level.
    plus: Option<Box<Node<K, V>>>,
    /// The `#` next level. Only its own subscriptions ever match, since `#` must be last; a
    /// (malformed) filter continuing after `#` is stored below it but never matches.
    hash: Option<Box<Node<K, V>>>,
    /// Normal subscriptions whose filter ends here, one per client: a client subscribing
    /// again to the same filter replaces its subscription [MQTT-3.8.4-3].
    clients: HashMap<K, V>,
    /// Shared subscription groups whose inner filter ends here. Never empty groups; few
    /// groups per filter, so a vector searched by name.
    groups: Vec<SharedGroup<K, V>>,
}

/// What [`SubscriptionTrie::for_each_match`] reports.
pub enum Match<'a, K, V> {
    /// A normal subscription.
    Single { client: &'a K, value: &'a V },
    /// A shared subscription group whose filter matched; the caller picks ONE online member
    /// with [`SharedGroup::pick`], which starts at [`SharedGroup::next_index`] and rotates.
    Shared(&'a SharedGroup<K, V>),
}

/// The members of one `$share/<name>/<filter>` group. Each message matching the filter goes
/// to one member, chosen round robin among the eligible (online) ones.
pub struct SharedGroup<K, V> {
    /// The share name; groups with different names on the same filter each get a copy.
    name: Box<str>,
    /// Members in subscription order, which is the order the rotation walks. At most one
    /// entry per client: subscribing again replaces the entry in place.
    members: Vec<(K, V)>,
    /// Where the next [`SharedGroup::pick`] starts (taken modulo the member count). Atomic
    /// because routing reads the trie through a shared reference yet must advance it.
    next: AtomicUsize,
}

impl<K: Eq + Hash + Clone, V> SubscriptionTrie<K, V> {
    pub fn new() -> Self {
        SubscriptionTrie {
            root: Node::new(),
            len: 0,
        }
    }

    /// Adds a subscription. `filter` is the full filter as the client sent it, possibly
    /// `$share/<group>/<filter>`. Replaces an existing subscription of the same client to the
    /// same full filter and returns the old value (`None` = new subscription).
    pub fn insert(&mut self, filter: &str, client: K, value: V) -> Option<V> {
        let (group, filter) = match split_shared(filter) {
            Some((group, inner)) => (Some(group), inner),
            None => (None, filter),
        };
        let node = self.root.descend_or_create(filter);
        let old = match group {
            None => node.clients.insert(client, value),
            Some(name) => match node.groups.iter_mut().find(|g| &*g.name == name) {
                Some(group) => group.insert(client, value),
                None => {
                    node.groups.push(SharedGroup::new(name, client, value));
                    None
                }
            },
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the subscription of `client` to the full filter `filter`; returns its value, or
    /// `None` if there was none. Nodes left empty are freed.
    pub fn remove(&mut self, filter: &str, client: &K) -> Option<V> {
        let (group, filter) = match split_shared(filter) {
            Some((group, inner)) => (Some(group), inner),
            None => (None, filter),
        };
        let node = self.root.descend_mut(filter)?;
        let old = match group {
            None => {
                let old = node.clients.remove(client)?;
                shrink_if_sparse(&mut node.clients);
                old
            }
            Some(name) => {
                let index = node.groups.iter().position(|g| &*g.name == name)?;
                let group = node.groups.get_mut(index)?;
                let old = group.remove(client)?;
                if group.members.is_empty() {
                    node.groups.swap_remove(index);
                }
                old
            }
        };
        let now_empty = node.is_empty();
        self.len -= 1;
        if now_empty {
            self.prune(filter);
        }
        Some(old)
    }

    /// Calls `f` for every subscription matching `topic` (a topic name, no wildcards).
    ///
    /// A client with overlapping filters (`a/+` and `a/#`) is reported once per filter; the
    /// broker deduplicates. Topics starting with `$` are not matched by filters whose first
    /// level is a wildcard [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(Match<'a, K, V>)) {
        let dollar = topic.starts_with('$');
        let root = &self.root;
        let mut pending: InlineStack<(&'a Node<K, V>, Option<&str>), INLINE_BRANCHES> =
            InlineStack::new();

        // The root is handled apart only for the `$` rule.
        if !dollar {
            if let Some(hash) = &root.hash {
                hash.report(&mut f);
            }
        }
        let (level, rest) = next_level(topic);
        if let Some(child) = root.children.get(level) {
            pending.push((child, rest));
        }
        if !dollar {
            if let Some(plus) = &root.plus {
                pending.push((plus, rest));
            }
        }

        while let Some((mut node, mut rest)) = pending.pop() {
            loop {
                // `#` covers this level and everything below, including nothing more.
                if let Some(hash) = &node.hash {
                    hash.report(&mut f);
                }
                let Some(remaining) = rest else {
                    node.report(&mut f);
                    break;
                };
                let (level, next) = next_level(remaining);
                match (node.children.get(level), node.plus.as_deref()) {
                    (Some(literal), Some(plus)) => {
                        pending.push((plus, next));
                        node = literal;
                    }
                    (Some(only), None) | (None, Some(only)) => node = only,
                    (None, None) => break,
                }
                rest = next;
            }
        }
    }

    /// Number of subscriptions, counting each shared-group member once.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frees the nodes along `filter`'s path that no longer hold anything: the shallowest
    /// node whose whole subtree is empty is cut from its parent.
    fn prune(&mut self, filter: &str) {
        // Depth of the deepest node on the path that must stay; the root (depth 0) always does.
        let mut keep_depth = 0;
        let mut depth = 0;
        let mut node = &self.root;
        for level in filter.split('/') {
            let Some(child) = node.child(level) else {
                return;
            };
            depth += 1;
            node = child;
            if node.has_subscriptions() || node.child_count() > 1 {
                keep_depth = depth;
            }
        }
        if !node.is_empty() {
            return;
        }
        let mut levels = filter.split('/');
        let mut parent = &mut self.root;
        for _ in 0..keep_depth {
            let Some(level) = levels.next() else {
                return;
            };
            let Some(child) = parent.child_mut(level) else {
                return;
            };
            parent = child;
        }
        if let Some(level) = levels.next() {
            parent.remove_child(level);
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
            pending.extend(node.plus.as_deref());
            pending.extend(node.hash.as_deref());
        }
        count
    }
}

impl<K: Eq + Hash + Clone, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SubscriptionTrie<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K, V> Node<K, V> {
    fn new() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: None,
            clients: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn has_subscriptions(&self) -> bool {
        !self.clients.is_empty() || !self.groups.is_empty()
    }

    fn child_count(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some()) + usize::from(self.hash.is_some())
    }

    fn is_empty(&self) -> bool {
        !self.has_subscriptions() && self.child_count() == 0
    }

    fn child(&self, level: &str) -> Option<&Node<K, V>> {
        match level {
            "+" => self.plus.as_deref(),
            "#" => self.hash.as_deref(),
            _ => self.children.get(level),
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            "#" => self.hash.as_deref_mut(),
            _ => self.children.get_mut(level),
        }
    }

    fn remove_child(&mut self, level: &str) {
        match level {
            "+" => self.plus = None,
            "#" => self.hash = None,
            _ => {
                self.children.remove(level);
                shrink_if_sparse(&mut self.children);
            }
        }
    }

    fn descend_mut(&mut self, filter: &str) -> Option<&mut Node<K, V>> {
        let mut node = self;
        for level in filter.split('/') {
            node = node.child_mut(level)?;
        }
        Some(node)
    }

    fn descend_or_create(&mut self, filter: &str) -> &mut Node<K, V> {
        let mut node = self;
        for level in filter.split('/') {
            node = match level {
                "+" => &mut **node.plus.get_or_insert_with(|| Box::new(Node::new())),
                "#" => &mut **node.hash.get_or_insert_with(|| Box::new(Node::new())),
                _ => node
                    .children
                    .entry(Box::from(level))
                    .or_insert_with(Node::new),
            };
        }
        node
    }

    fn report<'a>(&'a self, f: &mut impl FnMut(Match<'a, K, V>)) {
        for (client, value) in &self.clients {
            f(Match::Single { client, value });
        }
        for group in &self.groups {
            f(Match::Shared(group));
        }
    }

    /// Moves this node's children into `out`, leaving it a leaf.
    fn take_children(&mut self, out: &mut Vec<Node<K, V>>) {
        out.extend(self.children.drain().map(|(_, child)| child));
        out.extend(self.plus.take().map(|child| *child));
        out.extend(self.hash.take().map(|child| *child));
    }
}

impl<K, V> Drop for Node<K, V> {
    /// Frees the subtree iteratively: the default, recursive drop of a filter with tens of
    /// thousands of levels would overflow the stack.
    fn drop(&mut self) {
        if self.child_count() == 0 {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
            // `node` is now a leaf, so dropping it here does not recurse.
        }
    }
}

impl<K, V> SharedGroup<K, V> {
    fn new(name: &str, client: K, value: V) -> Self {
        SharedGroup {
            name: Box::from(name),
            members: vec![(client, value)],
            next: AtomicUsize::new(0),
        }
    }

    /// The share name, `g` in `$share/g/a/b`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The members in rotation order.
    pub fn members(&self) -> &[(K, V)] {
        &self.members
    }

    /// Index in [`SharedGroup::members`] of the member the rotation tries next.
    pub fn next_index(&self) -> usize {
        match self.members.len() {
            0 => 0,
            n => self.next.load(Ordering::Relaxed) % n,
        }
    }

    /// Picks the next member in rotation for which `eligible` returns true (e.g. the client
    /// is online) and advances the rotation past it. `None` if no member is eligible.
    ///
    /// Works through a shared reference: concurrent picks each start from a different
    /// position, so the load spreads even while several publishers route at once.
    pub fn pick(&self, mut eligible: impl FnMut(&K, &V) -> bool) -> Option<(&K, &V)> {
        let count = self.members.len();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let (before, after) = self.members.split_at(start);
        for (offset, (client, value)) in after.iter().chain(before).enumerate() {
            if eligible(client, value) {
                if offset > 0 {
                    self.next.fetch_add(offset, Ordering::Relaxed);
                }
                return Some((client, value));
            }
        }
        None
    }
}

impl<K: Eq, V> SharedGroup<K, V> {
    fn insert(&mut self, client: K, value: V) -> Option<V> {
        match self.members.iter_mut().find(|(k, _)| *k == client) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                self.members.push((client, value));
                None
            }
        }
    }

    fn remove(&mut self, client: &K) -> Option<V> {
        let index = self.members.iter().position(|(k, _)| k == client)?;
        let count = self.members.len();
        let (_, value) = self.members.remove(index);
        // Keep the rotation pointing at the same member it would have picked next.
        let next = self.next.get_mut();
        let current = *next % count;
        *next = if index < current {
            current - 1
        } else {
            current
        };
        Some(value)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SharedGroup<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGroup")
            .field("name", &self.name)
            .field("members", &self.members)
            .field("next", &self.next_index())
            .finish()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Match<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Single { client, value } => f
                .debug_struct("Single")
                .field("client", client)
                .field("value", value)
                .finish(),
            Match::Shared(group) => f.debug_tuple("Shared").field(group).finish(),
        }
    }
}

impl<K, V> Clone for Match<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Match<'_, K, V> {}

/// Gives memory back after a burst of subscriptions is gone: a hash map keeps its peak
/// capacity otherwise.
fn shrink_if_sparse<Q: Eq + Hash, T>(map: &mut HashMap<Q, T>) {
    if map.capacity() > 16 && map.len() * 4 < map.capacity() {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::matches;

    /// Normal matches as (client, value) and shared ones as (group, members), sorted.
    type Found = (
        BTreeSet<(u32, String)>,
        BTreeSet<(String, Vec<(u32, String)>)>,
    );

    fn found(trie: &SubscriptionTrie<u32, String>, topic: &str) -> Found {
        let mut singles = BTreeSet::new();
        let mut shared = BTreeSet::new();
        trie.for_each_match(topic, |m| match m {
            Match::Single { client, value } => {
                assert!(singles.insert((*client, value.clone())), "reported twice");
            }
            Match::Shared(group) => {
                let mut members = group.members().to_vec();
                members.sort();
                assert!(
                    shared.insert((group.name().to_owned(), members)),
                    "reported twice"
                );
            }
        });
        (singles, shared)
    }

    fn singles(trie: &SubscriptionTrie<u32, String>, topic: &str) -> Vec<String> {
        found(trie, topic).0.into_iter().map(|(_, v)| v).collect()
    }

    fn trie_of(filters: &[&str]) -> SubscriptionTrie<u32, String> {
        let mut trie = SubscriptionTrie::new();
        for filter in filters {
            trie.insert(filter, 1, (*filter).to_owned());
        }
        trie
    }

    #[test]
    fn spec_examples() {
        let trie = trie_of(&[
            "sport/tennis/player1/#",
            "sport/#",
            "sport/tennis/+",
            "sport/+",
            "+/+",
            "/+",
            "+",
            "#",
            "+/tennis/#",
            "/finance",
        ]);
        assert_eq!(
            singles(&trie, "sport/tennis/player1"),
            [
                "#",
                "+/tennis/#",
                "sport/#",
                "sport/tennis/+",
                "sport/tennis/player1/#"
            ]
        );
        assert_eq!(
            singles(&trie, "sport/tennis/player1/score/wimbledon"),
            ["#", "+/tennis/#", "sport/#", "sport/tennis/player1/#"]
        );
        assert_eq!(singles(&trie, "sport"), ["#", "+", "sport/#"]);
        assert_eq!(singles(&trie, "sport/"), ["#", "+/+", "sport/#", "sport/+"]);
        assert_eq!(singles(&trie, "/finance"), ["#", "+/+", "/+", "/finance"]);
    }

    #[test]
    fn dollar_topics_skip_root_wildcards() {
        // [MQTT-4.7.2-1]
        let trie = trie_of(&["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"]);
        assert_eq!(
            singles(&trie, "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
        assert_eq!(singles(&trie, "$SYS"), ["$SYS/#"]);
        assert!(singles(&trie, "$other").is_empty());
        assert_eq!(
            singles(&trie, "x/monitor/Clients"),
            ["#", "+/monitor/Clients"]
        );
    }

    #[test]
    fn overlapping_filters_are_each_reported() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/+", 7u32, 1u8);
        trie.insert("a/#", 7, 2);
        let mut seen = Vec::new();
        trie.for_each_match("a/b", |m| {
            if let Match::Single { client, value } = m {
                seen.push((*client, *value));
            }
        });
        seen.sort();
        assert_eq!(seen, [(7, 1), (7, 2)]);
    }

    #[test]
    fn insert_replaces_and_returns_old() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert("a/b", 1u32, "qos0"), None);
        assert_eq!(trie.insert("a/b", 1, "qos1"), Some("qos0"));
        assert_eq!(trie.insert("a/b", 2, "x"), None);
        assert_eq!(trie.insert("$share/g/a/b", 1, "s0"), None);
        assert_eq!(trie.insert("$share/g/a/b", 1, "s1"), Some("s0"));
        assert_eq!(trie.insert("$share/h/a/b", 1, "h"), None);
        assert_eq!(trie.len(), 4);
        assert_eq!(trie.remove("a/b", &1), Some("qos1"));
        assert_eq!(trie.remove("a/b", &1), None);
        assert_eq!(trie.remove("$share/g/a/b", &1), Some("s1"));
        assert_eq!(trie.remove("$share/g/a/b", &1), None);
        assert_eq!(trie.remove("$share/zz/a/b", &1), None);
        assert_eq!(trie.remove("nope/x", &1), None);
        assert_eq!(trie.len(), 2);
    }

    #[test]
    fn remove_prunes_empty_nodes() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.node_count(), 1);
        trie.insert("a/b/c/d", 1u32, ());
        trie.insert("a/b/x", 1, ());
        trie.insert("a/+/#", 2, ());
        trie.insert("$share/g/a/b/c/d", 3, ());
        // root, a, b, c, d, x, +, #
        assert_eq!(trie.node_count(), 8);
        trie.remove("a/b/c/d", &1);
        // d still holds the shared group.
        assert_eq!(trie.node_count(), 8);
        trie.remove("$share/g/a/b/c/d", &3);
        assert_eq!(trie.node_count(), 6);
        trie.remove("a/+/#", &2);
        assert_eq!(trie.node_count(), 4);
        trie.remove("a/b/x", &1);
        assert_eq!(trie.node_count(), 1);
        assert!(trie.is_empty());
    }

    #[test]
    fn churn_does_not_grow_the_trie() {
        let mut trie = SubscriptionTrie::new();
        for i in 0..1000u32 {
            let filter = format!("devices/{i}/+/state");
            trie.insert(&filter, i, ());
            trie.insert("devices/#", i, ());
            trie.remove(&filter, &i);
            trie.remove("devices/#", &i);
        }
        assert_eq!(trie.node_count(), 1);
        assert!(trie.root.children.capacity() <= 16);
    }

    #[test]
    fn shared_groups_are_reported_once_per_group() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("$share/g/a/+", 1u32, "g1".to_owned());
        trie.insert("$share/g/a/+", 2, "g2".to_owned());
        trie.insert("$share/h/a/#", 3, "h3".to_owned());
        trie.insert("a/+", 4, "plain".to_owned());
        let (singles, shared) = found(&trie, "a/b");
        assert_eq!(
            singles.into_iter().collect::<Vec<_>>(),
            [(4, "plain".to_owned())]
        );
        let shared: Vec<_> = shared.into_iter().collect();
        assert_eq!(
            shared,
            [
                (
                    "g".to_owned(),
                    vec![(1, "g1".to_owned()), (2, "g2".to_owned())]
                ),
                ("h".to_owned(), vec![(3, "h3".to_owned())]),
            ]
        );
        // A shared subscription on `#` obeys the `$` rule too.
        trie.insert("$share/g/#", 5, "all".to_owned());
        assert_eq!(found(&trie, "$SYS/x"), Default::default());
    }

    fn group_of(trie: &SubscriptionTrie<u32, ()>, topic: &str) -> Vec<u32> {
        let mut picks = Vec::new();
        trie.for_each_match(topic, |m| {
            if let Match::Shared(group) = m {
                picks.extend(group.pick(|_, _| true).map(|(k, _)| *k));
            }
        });
        picks
    }

    #[test]
    fn pick_rotates_round_robin() {
        let mut trie = SubscriptionTrie::new();
        for client in [1u32, 2, 3] {
            trie.insert("$share/g/t", client, ());
        }
        let picks: Vec<u32> = (0..7).flat_map(|_| group_of(&trie, "t")).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3, 1]);
    }

    #[test]
    fn pick_skips_ineligible_members() {
        let mut group = SharedGroup::new("g", 1u32, ());
        group.insert(2, ());
        group.insert(3, ());
        let online = |k: &u32, _: &()| *k != 2;
        let picks: Vec<u32> = (0..4)
            .filter_map(|_| group.pick(online).map(|(k, _)| *k))
            .collect();
        assert_eq!(picks, [1, 3, 1, 3]);
        // After 3, the rotation is back at 1.
        assert_eq!(group.next_index(), 0);
        assert_eq!(group.pick(|_, _| false), None);
    }

    #[test]
    fn removing_a_member_keeps_the_rotation_on_the_next_one() {
        let mut group = SharedGroup::new("g", 1u32, ());
        group.insert(2, ());
        group.insert(3, ());
        assert_eq!(group.pick(|_, _| true).map(|(k, _)| *k), Some(1));
        assert_eq!(group.pick(|_, _| true).map(|(k, _)| *k), Some(2));
        // 3 is next; removing 1 (before it) must not make the rotation skip to 2.
        group.remove(&1);
        assert_eq!(group.pick(|_, _| true).map(|(k, _)| *k), Some(3));
        assert_eq!(group.pick(|_, _| true).map(|(k, _)| *k), Some(2));
    }

    #[test]
    fn very_deep_filters_and_topics_do_not_overflow_the_stack() {
        let depth = 100_000;
        let filter = vec!["+"; depth].join("/");
        let mut trie = SubscriptionTrie::new();
        trie.insert(&filter, 1u32, ());
        trie.insert(&vec!["a"; depth].join("/"), 2, ());
        let topic = vec!["a"; depth].join("/");
        let mut count = 0;
        trie.for_each_match(&topic, |_| count += 1);
        assert_eq!(count, 2);
        assert_eq!(trie.remove(&filter, &1), Some(()));
        // Dropping the remaining deep chain must not recurse either.
        drop(trie);
    }

    #[test]
    fn branching_beyond_the_inline_stack() {
        // Every level has both a literal and a `+` branch, so pending branches pile up.
        let mut trie = SubscriptionTrie::new();
        let depth = 40;
        for i in 0..depth {
            let mut levels = vec!["a"; depth];
            if let Some(level) = levels.get_mut(i) {
                *level = "+";
            }
            trie.insert(&levels.join("/"), i, ());
        }
        trie.insert(&vec!["a"; depth].join("/"), depth, ());
        let mut count = 0;
        trie.for_each_match(&vec!["a"; depth].join("/"), |_| count += 1);
        assert_eq!(count, depth + 1);
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "$s", "", "+", "#"])
    }

    fn topic_level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "$s", ""])
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            prop::option::of(prop::sample::select(vec!["g", "h"])),
            prop::collection::vec(level(), 1..5),
        )
            .prop_map(|(group, levels)| match group {
                Some(group) => format!("$share/{group}/{}", levels.join("/")),
                None => levels.join("/"),
            })
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(topic_level(), 1..5).prop_map(|levels| levels.join("/"))
    }

    /// What the trie should report, computed with the naive matcher from the live
    /// (client, full filter) subscriptions.
    fn expected(subscriptions: &BTreeSet<(u32, String)>, topic: &str) -> Found {
        let mut singles = BTreeSet::new();
        let mut groups: std::collections::BTreeMap<(String, String), Vec<(u32, String)>> =
            Default::default();
        for (client, full) in subscriptions {
            match split_shared(full) {
                Some((group, inner)) => {
                    if matches(inner, topic) {
                        groups
                            .entry((group.to_owned(), inner.to_owned()))
                            .or_default()
                            .push((*client, full.clone()));
                    }
                }
                None => {
                    if matches(full, topic) {
                        singles.insert((*client, full.clone()));
                    }
                }
            }
        }
        let shared = groups
            .into_iter()
            .map(|((group, _), mut members)| {
                members.sort();
                (group, members)
            })
            .collect();
        (singles, shared)
    }

    proptest! {
        #[test]
        fn trie_agrees_with_naive_matcher(
            subs in prop::collection::vec((0u32..3, filter()), 0..24),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            topics in prop::collection::vec(topic(), 1..8),
        ) {
            let mut trie = SubscriptionTrie::new();
            let mut live = BTreeSet::new();
            for (client, full) in &subs {
                let old = trie.insert(full, *client, full.clone());
                prop_assert_eq!(old.is_some(), !live.insert((*client, full.clone())));
            }
            prop_assert_eq!(trie.len(), live.len());
            for topic in &topics {
                prop_assert_eq!(found(&trie, topic), expected(&live, topic), "topic {:?}", topic);
            }
            for index in removals {
                if subs.is_empty() { break; }
                let (client, full) = index.get(&subs);
                let was_live = live.remove(&(*client, full.clone()));
                prop_assert_eq!(trie.remove(full, client).is_some(), was_live);
            }
            prop_assert_eq!(trie.len(), live.len());
            for topic in &topics {
                prop_assert_eq!(found(&trie, topic), expected(&live, topic), "topic {:?}", topic);
            }
            for (client, full) in &live {
                prop_assert!(trie.remove(full, client).is_some());
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.node_count(), 1);
        }
    }
}
