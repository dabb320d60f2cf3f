//! Subscription matching with 100,000 subscriptions, a share of them with wildcards.
//! Run with `cargo bench -p midge-core`.

use midge_core::trie::SubscriptionTrie;

fn main() {
    divan::main();
}

/// 100k subscriptions in the shape of a device fleet: 1,000 sites × 100 devices, one
/// exact filter per device, plus `+` and `#` filters at every site.
fn fleet() -> SubscriptionTrie<u32, u8> {
    let mut trie = SubscriptionTrie::new();
    let mut client = 0u32;
    for site in 0..1000 {
        for dev in 0..97 {
            trie.insert(&format!("fleet/site{site}/dev{dev}/telemetry"), client, 1);
            client += 1;
        }
        trie.insert(&format!("fleet/site{site}/+/telemetry"), client, 1);
        trie.insert(&format!("fleet/site{site}/#"), client + 1, 1);
        trie.insert(&format!("$share/g/fleet/site{site}/+/alarm"), client + 2, 1);
        client += 3;
    }
    trie
}

#[divan::bench]
fn match_exact_and_wildcards(bencher: divan::Bencher) {
    let trie = fleet();
    assert!(trie.len() >= 100_000);
    bencher.bench(|| {
        let mut n = 0;
        trie.for_each_match(divan::black_box("fleet/site517/dev42/telemetry"), |_| {
            n += 1
        });
        n
    });
}

#[divan::bench]
fn match_miss(bencher: divan::Bencher) {
    let trie = fleet();
    bencher.bench(|| {
        let mut n = 0;
        trie.for_each_match(divan::black_box("other/site517/dev42/telemetry"), |_| {
            n += 1
        });
        n
    });
}

#[divan::bench]
fn insert_remove(bencher: divan::Bencher) {
    let mut trie = fleet();
    bencher.bench_local(|| {
        trie.insert("fleet/site1/devX/telemetry", u32::MAX, 1);
        trie.remove("fleet/site1/devX/telemetry", &u32::MAX)
    });
}
