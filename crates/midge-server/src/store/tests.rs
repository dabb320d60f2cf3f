//! The store's guarantees, each against a real file: every operation comes back after a
//! restart, messages are collected, bad files are clear errors, and what was acknowledged
//! before a `kill -9` is still there.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

/// A directory of its own under the system temp dir, removed at drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "midge-store-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("midge.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

fn wait(store: &Store, ticket: u64) {
    block_on(async {
        tokio::time::timeout(Duration::from_secs(30), store.wait(ticket))
            .await
            .expect("ticket committed within 30 s")
    });
}

fn message(id: u64, topic: &str) -> StoredMessage {
    StoredMessage {
        id,
        topic: topic.into(),
        payload: Bytes::from(format!("payload {id}")),
        qos: 1,
        retain: false,
        properties: vec![],
        expiry_unix: None,
        publisher: None,
        publisher_username: None,
    }
}

/// A message with every optional field set and bytes that are not UTF-8.
fn full_message(id: u64, topic: &str) -> StoredMessage {
    StoredMessage {
        id,
        topic: topic.into(),
        payload: Bytes::from_static(&[0, 159, 146, 150, 255]),
        qos: 2,
        retain: true,
        properties: vec![0x01, 0x01, 0x26, 0, 1, b'k', 0, 1, b'v'],
        expiry_unix: Some(1_900_000_000),
        publisher: Some("publisher".into()),
        publisher_username: Some("alice".into()),
    }
}

fn upsert(client_id: &str) -> Op {
    Op::UpsertSession {
        client_id: client_id.into(),
        expiry_interval: 3600,
        disconnected_unix: None,
        username: None,
        listener: 0,
        protocol: 5,
    }
}

fn delivery(seq: u64, message_id: u64) -> StoredDelivery {
    StoredDelivery {
        seq,
        message_id,
        qos: 1,
        retain: false,
        packet_id: None,
        state: 0,
        subscription_ids: vec![],
    }
}

fn enqueue(client_id: &str, seq: u64, message_id: u64) -> Op {
    Op::Enqueue {
        client_id: client_id.into(),
        delivery: delivery(seq, message_id),
    }
}

/// Opens, applies `ops`, waits for them, closes.
fn write(path: &Path, ops: Vec<Op>) {
    let (store, _) = Store::open(path, Durability::Os).unwrap();
    let ticket = store.submit_all(ops);
    wait(&store, ticket);
    store.close().unwrap();
}

fn reopen(path: &Path) -> Snapshot {
    let (store, snapshot) = Store::open(path, Durability::Os).unwrap();
    store.close().unwrap();
    snapshot
}

/// Rows of `table` as the file holds them, bypassing the start-up sweep.
fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn session<'a>(snapshot: &'a Snapshot, client_id: &str) -> &'a StoredSession {
    snapshot
        .sessions
        .iter()
        .find(|s| s.client_id == client_id)
        .unwrap_or_else(|| panic!("session {client_id} in {snapshot:#?}"))
}

#[test]
fn an_empty_store_opens_empty() {
    let dir = TempDir::new("empty");
    let (store, snapshot) = Store::open(&dir.db(), Durability::Fsync).unwrap();
    assert_eq!(
        snapshot,
        Snapshot {
            next_message_id: 1,
            next_seq: 1,
            ..Snapshot::default()
        }
    );
    assert_eq!(store.committed(), 0);
    store.close().unwrap();
    assert_eq!(reopen(&dir.db()).sessions, vec![]);
}

#[test]
fn every_operation_round_trips() {
    let dir = TempDir::new("round-trip");
    let will = StoredWill {
        message: full_message(100, "will/topic"),
        delay: 30,
    };
    let ops = vec![
        Op::UpsertSession {
            client_id: "full".into(),
            expiry_interval: u32::MAX,
            disconnected_unix: Some(1_800_000_000),
            username: Some("alice".into()),
            listener: 3,
            protocol: 4,
        },
        upsert("other"),
        // Upserting again updates the fields and keeps the rest.
        Op::SetWill {
            client_id: "full".into(),
            will: Some(will.clone()),
        },
        Op::AddSubscription {
            client_id: "full".into(),
            sub: StoredSubscription {
                filter: "a/#".into(),
                options: 0x01,
                identifier: None,
            },
        },
        Op::AddSubscription {
            client_id: "full".into(),
            sub: StoredSubscription {
                filter: "a/#".into(),
                options: 0x2e,
                identifier: Some(268_435_455),
            },
        },
        Op::AddSubscription {
            client_id: "full".into(),
            sub: StoredSubscription {
                filter: "gone/+".into(),
                options: 0,
                identifier: None,
            },
        },
        Op::AddSubscription {
            client_id: "full".into(),
            sub: StoredSubscription {
                filter: "$share/g/b".into(),
                options: 2,
                identifier: Some(7),
            },
        },
        Op::RemoveSubscription {
            client_id: "full".into(),
            filter: "gone/+".into(),
        },
        Op::StoreMessage(Arc::new(full_message(1, "a/1"))),
        Op::StoreMessage(Arc::new(message(2, "a/2"))),
        Op::StoreMessage(Arc::new(message(3, "a/3"))),
        // Idempotent by id: the first version stays.
        Op::StoreMessage(Arc::new(message(1, "replaced"))),
        Op::Enqueue {
            client_id: "full".into(),
            delivery: StoredDelivery {
                seq: 10,
                message_id: 1,
                qos: 2,
                retain: true,
                packet_id: Some(65535),
                state: 2,
                subscription_ids: vec![7, 268_435_455],
            },
        },
        enqueue("full", 11, 2),
        enqueue("full", 12, 3),
        enqueue("other", 13, 1),
        Op::UpdateDelivery {
            client_id: "full".into(),
            seq: 11,
            packet_id: Some(9),
            state: 1,
        },
        Op::RemoveDelivery {
            client_id: "full".into(),
            seq: 12,
        },
        Op::AddInboundQos2 {
            client_id: "full".into(),
            packet_id: 5,
        },
        Op::AddInboundQos2 {
            client_id: "full".into(),
            packet_id: 1,
        },
        Op::AddInboundQos2 {
            client_id: "full".into(),
            packet_id: 1,
        },
        Op::AddInboundQos2 {
            client_id: "full".into(),
            packet_id: 2,
        },
        Op::RemoveInboundQos2 {
            client_id: "full".into(),
            packet_id: 2,
        },
        Op::SetRetained(Arc::new(full_message(50, "r/1"))),
        Op::SetRetained(Arc::new(message(51, "r/2"))),
        Op::SetRetained(Arc::new(message(52, "r/3"))),
        Op::ClearRetained {
            topic: "r/3".into(),
        },
        // A second upsert changes the session's fields and keeps everything of it.
        Op::UpsertSession {
            client_id: "full".into(),
            expiry_interval: u32::MAX,
            disconnected_unix: Some(1_800_000_001),
            username: Some("alice".into()),
            listener: 3,
            protocol: 5,
        },
    ];
    write(&dir.db(), ops);
    let snapshot = reopen(&dir.db());

    let full = StoredSession {
        client_id: "full".into(),
        expiry_interval: u32::MAX,
        disconnected_unix: Some(1_800_000_001),
        username: Some("alice".into()),
        listener: 3,
        protocol: 5,
        will: Some(will),
        subscriptions: vec![
            StoredSubscription {
                filter: "$share/g/b".into(),
                options: 2,
                identifier: Some(7),
            },
            StoredSubscription {
                filter: "a/#".into(),
                options: 0x2e,
                identifier: Some(268_435_455),
            },
        ],
        queue: vec![
            StoredDelivery {
                seq: 10,
                message_id: 1,
                qos: 2,
                retain: true,
                packet_id: Some(65535),
                state: 2,
                subscription_ids: vec![7, 268_435_455],
            },
            StoredDelivery {
                packet_id: Some(9),
                state: 1,
                ..delivery(11, 2)
            },
        ],
        inbound_qos2: vec![1, 5],
    };
    let other = StoredSession {
        client_id: "other".into(),
        expiry_interval: 3600,
        disconnected_unix: None,
        username: None,
        listener: 0,
        protocol: 5,
        will: None,
        subscriptions: vec![],
        queue: vec![delivery(13, 1)],
        inbound_qos2: vec![],
    };
    let expected = Snapshot {
        sessions: vec![full, other],
        messages: [(1, full_message(1, "a/1")), (2, message(2, "a/2"))]
            .into_iter()
            .collect(),
        retained: vec![full_message(50, "r/1"), message(51, "r/2")],
        next_message_id: 101,
        next_seq: 14,
    };
    assert_eq!(snapshot, expected);
}

#[test]
fn the_queue_comes_back_ordered_by_seq() {
    let dir = TempDir::new("order");
    let mut ops = vec![upsert("a"), upsert("b")];
    let seqs = [17u64, 3, 99, 4, 1, 50, 2, 1000, 18];
    for (i, &seq) in seqs.iter().enumerate() {
        let id = i as u64 + 1;
        ops.push(Op::StoreMessage(Arc::new(message(id, "t"))));
        ops.push(enqueue(if seq % 2 == 0 { "a" } else { "b" }, seq, id));
    }
    write(&dir.db(), ops);
    let snapshot = reopen(&dir.db());
    for s in &snapshot.sessions {
        let got: Vec<u64> = s.queue.iter().map(|d| d.seq).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted, "queue of {}", s.client_id);
    }
    assert_eq!(session(&snapshot, "a").queue.len(), 5);
    assert_eq!(session(&snapshot, "b").queue.len(), 4);
    assert_eq!(snapshot.next_seq, 1001);
}

#[test]
fn a_message_goes_when_nothing_refers_to_it() {
    let dir = TempDir::new("gc");
    let db = dir.db();
    let shared = Arc::new(message(1, "r"));
    // Two deliveries and a retained entry refer to message 1.
    write(
        &db,
        vec![
            upsert("a"),
            upsert("b"),
            Op::StoreMessage(Arc::clone(&shared)),
            enqueue("a", 1, 1),
            enqueue("b", 2, 1),
            Op::SetRetained(Arc::clone(&shared)),
        ],
    );
    assert_eq!(count(&db, "messages"), 1);
    let remove = |client_id: &str, seq| Op::RemoveDelivery {
        client_id: client_id.into(),
        seq,
    };
    write(&db, vec![remove("a", 1)]);
    assert_eq!(
        count(&db, "messages"),
        1,
        "b's delivery and retained remain"
    );
    write(&db, vec![remove("b", 2)]);
    assert_eq!(count(&db, "messages"), 1, "the retained entry remains");
    write(&db, vec![Op::ClearRetained { topic: "r".into() }]);
    assert_eq!(count(&db, "messages"), 0);

    // Wills: replaced, then cleared.
    let will = |id| {
        Some(StoredWill {
            message: message(id, "will"),
            delay: 0,
        })
    };
    let set_will = |will| Op::SetWill {
        client_id: "a".into(),
        will,
    };
    write(&db, vec![set_will(will(10))]);
    assert_eq!(count(&db, "messages"), 1);
    write(&db, vec![set_will(will(11))]);
    assert_eq!(
        count(&db, "messages"),
        1,
        "the replaced will's message went"
    );
    write(&db, vec![set_will(will(11))]);
    assert_eq!(
        count(&db, "messages"),
        1,
        "setting the same will keeps its message"
    );
    write(&db, vec![set_will(None)]);
    assert_eq!(count(&db, "messages"), 0);

    // Retained: replaced by another message of the same topic.
    write(&db, vec![Op::SetRetained(Arc::new(message(20, "r")))]);
    write(&db, vec![Op::SetRetained(Arc::new(message(21, "r")))]);
    assert_eq!(count(&db, "messages"), 1);
    assert_eq!(reopen(&db).retained, vec![message(21, "r")]);

    // A message stored but never enqueued is swept at the next start-up.
    write(&db, vec![Op::StoreMessage(Arc::new(message(30, "t")))]);
    assert_eq!(count(&db, "messages"), 2);
    let snapshot = reopen(&db);
    assert_eq!(count(&db, "messages"), 1);
    assert!(snapshot.messages.is_empty());
}

#[test]
fn retained_messages_are_replaced_and_cleared_by_topic() {
    let dir = TempDir::new("retained");
    let db = dir.db();
    write(
        &db,
        vec![
            Op::SetRetained(Arc::new(message(1, "a"))),
            Op::SetRetained(Arc::new(message(2, "b"))),
            Op::SetRetained(Arc::new(message(3, "a"))),
            Op::SetRetained(Arc::new(message(4, "c"))),
            Op::ClearRetained { topic: "c".into() },
            Op::ClearRetained {
                topic: "never-set".into(),
            },
        ],
    );
    assert_eq!(reopen(&db).retained, vec![message(3, "a"), message(2, "b")]);
}

#[test]
fn deleting_a_session_removes_everything_of_it() {
    let dir = TempDir::new("delete");
    let db = dir.db();
    let both = |client_id: &str, seq, id| {
        vec![
            upsert(client_id),
            Op::SetWill {
                client_id: client_id.into(),
                will: Some(StoredWill {
                    message: message(id + 100, "will"),
                    delay: 5,
                }),
            },
            Op::AddSubscription {
                client_id: client_id.into(),
                sub: StoredSubscription {
                    filter: "x".into(),
                    options: 1,
                    identifier: None,
                },
            },
            Op::StoreMessage(Arc::new(message(id, "x"))),
            enqueue(client_id, seq, id),
            Op::AddInboundQos2 {
                client_id: client_id.into(),
                packet_id: 1,
            },
        ]
    };
    let mut ops = both("gone", 1, 1);
    ops.extend(both("kept", 2, 2));
    ops.push(Op::DeleteSession {
        client_id: "gone".into(),
    });
    write(&db, ops);
    for (table, rows) in [
        ("sessions", 1),
        ("wills", 1),
        ("subscriptions", 1),
        ("deliveries", 1),
        ("inbound_qos2", 1),
        ("messages", 2), // kept's message and its will's
    ] {
        assert_eq!(count(&db, table), rows, "{table}");
    }
    let snapshot = reopen(&db);
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.sessions[0].client_id, "kept");
}

#[test]
fn files_are_created_private() {
    let dir = TempDir::new("mode");
    let db = dir.db();
    let (store, _) = Store::open(&db, Durability::Os).unwrap();
    let ticket = store.submit(upsert("a"));
    wait(&store, ticket);
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    let wal = wal_path(&db);
    assert!(wal.exists(), "the WAL exists while the store is open");
    assert_eq!(mode(&wal), 0o600);
    // The WAL index lives in memory (exclusive locking): no -shm file to leak.
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    let shm = PathBuf::from(shm);
    if shm.exists() {
        assert_eq!(mode(&shm), 0o600);
    }
    store.close().unwrap();

    // A file made readable to others (by hand, or by an older version) is narrowed.
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    reopen(&db);
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn a_second_broker_on_the_same_file_is_refused() {
    let dir = TempDir::new("locked");
    let (store, _) = Store::open(&dir.db(), Durability::Os).unwrap();
    let err = Store::open(&dir.db(), Durability::Os).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    store.close().unwrap();
    reopen(&dir.db());
}

#[test]
fn a_store_of_a_newer_midge_is_refused() {
    let dir = TempDir::new("newer");
    let db = dir.db();
    reopen(&db);
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", FORMAT + 1)
        .unwrap();
    let err = Store::open(&db, Durability::Os).err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "written by a newer Midge (format {}, this one reads {FORMAT})",
            FORMAT + 1
        )),
        "{text}"
    );
    assert!(text.contains(&db.display().to_string()), "{text}");
}

#[test]
fn a_file_that_is_not_a_store_is_refused() {
    let dir = TempDir::new("garbage");
    let db = dir.db();
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7919 % 251) as u8).collect();
    for content in [&b"not a database at all\n"[..], &garbage] {
        fs::write(&db, content).unwrap();
        let err = Store::open(&db, Durability::Os).err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert_eq!(fs::read(&db).unwrap(), content, "the file is left alone");
    }

    // Another program's SQLite database.
    fs::remove_file(&db).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x);")
        .unwrap();
    let err = Store::open(&db, Durability::Os).err().unwrap();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a Midge persistence file"),
        "{err}"
    );
}

/// A store with enough rows to span many pages.
fn populate(db: &Path, messages: u64) {
    let mut ops = vec![upsert("c")];
    for id in 1..=messages {
        let mut m = message(id, "t");
        m.payload = Bytes::from(vec![id as u8; 300]);
        ops.push(Op::StoreMessage(Arc::new(m)));
        ops.push(enqueue("c", id, id));
    }
    write(db, ops);
}

#[test]
fn a_truncated_database_is_refused() {
    let dir = TempDir::new("torn-db");
    let db = dir.db();
    populate(&db, 2000);
    let original = fs::read(&db).unwrap();
    assert!(original.len() > 64 * 1024, "{} bytes", original.len());
    let len = original.len();
    for cut in [len - 100, len - 4096, len - 5000, len / 2, 4096, 100, 1] {
        fs::write(&db, &original[..cut]).unwrap();
        match Store::open(&db, Durability::Os) {
            // Closed cleanly (no WAL): every page the header counts must be there, so any
            // cut is refused rather than read back with zeros in place of what was cut.
            Ok((store, snapshot)) => {
                store.close().unwrap();
                panic!(
                    "cut at {cut} of {len}: opened with {} session(s)",
                    snapshot.sessions.len()
                );
            }
            Err(e) => {
                eprintln!("cut at {cut} of {len}: {e}");
                assert!(e.to_string().contains(&db.display().to_string()), "{e}");
            }
        }
    }
}

#[test]
fn a_failed_write_is_retried_and_never_reported_committed() {
    let dir = TempDir::new("retry");
    let (store, _) = Store::open(&dir.db(), Durability::Os).unwrap();
    let first = store.submit(upsert("a"));
    wait(&store, first);
    store
        .inner
        .shared
        .inject_failures
        .store(u32::MAX, Ordering::SeqCst);
    let second = store.submit(upsert("b"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.committed(), first, "a failing batch is not committed");
    let third = store.submit(upsert("c"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(store.committed(), first, "nothing after it is either");
    store
        .inner
        .shared
        .inject_failures
        .store(0, Ordering::SeqCst);
    wait(&store, second);
    wait(&store, third);
    store.close().unwrap();
    let snapshot = reopen(&dir.db());
    assert_eq!(snapshot.sessions.len(), 3);
}

#[test]
fn tickets_count_submissions() {
    let dir = TempDir::new("tickets");
    let (store, _) = Store::open(&dir.db(), Durability::Os).unwrap();
    assert_eq!(store.submit(upsert("a")), 1);
    assert_eq!(store.submit_all(vec![upsert("b"), upsert("c")]), 2);
    assert_eq!(
        store.submit_all(Vec::new()),
        2,
        "nothing submitted, no new ticket"
    );
    // A group bigger than a batch still commits whole.
    let big: Vec<Op> = (0..25_000).map(|i| upsert(&format!("s{i}"))).collect();
    let t = store.submit_all(big);
    assert_eq!(t, 3);
    wait(&store, t);
    assert!(store.committed() >= 3);
    // Waiting for a ticket committed long ago returns at once.
    wait(&store, 1);
    store.close().unwrap();
    assert_eq!(reopen(&dir.db()).sessions.len(), 25_003);
}

#[test]
fn waiting_from_many_tasks_misses_no_wake_up() {
    let dir = TempDir::new("wakeups");
    let (store, _) = Store::open(&dir.db(), Durability::Os).unwrap();
    block_on(async {
        let mut tasks = Vec::new();
        for i in 0..2000u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let t = store.submit(Op::AddInboundQos2 {
                    client_id: "c".into(),
                    packet_id: (i % 65535) as u16 + 1,
                });
                store.wait(t).await;
                assert!(store.committed() >= t);
            }));
        }
        tokio::time::timeout(Duration::from_secs(30), async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("every waiter woke");
    });
    store.close().unwrap();
}

// ---- kill -9 -----------------------------------------------------------------------

/// Set in the child process of the crash tests: `<durability>:<path>`.
const CRASH_CHILD: &str = "MIDGE_STORE_CRASH_CHILD";
/// The child stops by itself after this many messages, should the parent not kill it.
const CHILD_MESSAGES: u64 = 200_000;

/// Retained message `i` of the crash tests has this id plus `i`.
const RETAINED_IDS: u64 = 1 << 40;

/// The payload of message `i` in the crash tests.
fn crash_payload(i: u64) -> Bytes {
    Bytes::from(format!("message {i} ").repeat(8))
}

/// The child's side of the crash tests (does nothing in a normal test run): writes
/// message after message, each stored and enqueued, every third one removing the
/// delivery before it and every tenth replacing a retained message; after each group of
/// 25 it waits for the ticket and prints `acked N`. The parent kills it with SIGKILL at
/// some point while it goes on writing.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CRASH_CHILD) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let durability = if mode == "fsync" {
        Durability::Fsync
    } else {
        Durability::Os
    };
    let (store, _) = Store::open(Path::new(path), durability).unwrap();
    block_on(async {
        store.submit(upsert("c"));
        for i in 1..=CHILD_MESSAGES {
            let mut m = message(i, "t");
            m.payload = crash_payload(i);
            let m = Arc::new(m);
            let mut ops = vec![Op::StoreMessage(Arc::clone(&m)), enqueue("c", i, i)];
            if i % 3 == 0 {
                ops.push(Op::RemoveDelivery {
                    client_id: "c".into(),
                    seq: i - 1,
                });
            }
            if i % 10 == 0 {
                ops.push(Op::SetRetained(Arc::new(StoredMessage {
                    id: RETAINED_IDS + i,
                    topic: format!("r/{}", i % 7),
                    ..(*m).clone()
                })));
            }
            let ticket = store.submit_all(ops);
            if i % 25 == 0 {
                store.wait(ticket).await;
                println!("acked {i}");
            }
        }
    });
}

/// Checks a store written by [`crash_child`] holds everything of the first `acked`
/// messages, as the child's operations left it.
fn check_crash_state(snapshot: &Snapshot, acked: u64) {
    let queue = &session(snapshot, "c").queue;
    let present: std::collections::HashSet<u64> = queue.iter().map(|d| d.seq).collect();
    for i in 1..acked {
        // Delivery i is removed by message i + 1 when that one is a multiple of 3.
        let removed = (i + 1) % 3 == 0;
        assert_eq!(
            present.contains(&i),
            !removed,
            "delivery {i} of {acked} acknowledged"
        );
    }
    for d in queue {
        let m = &snapshot.messages[&d.message_id];
        assert_eq!(m.payload, crash_payload(d.message_id));
    }
    // Retained r/k holds the last acknowledged message for it, or a later one.
    for k in 0..7u64 {
        let last = (10..acked).rev().find(|i| i % 10 == 0 && i % 7 == k);
        if let Some(last) = last {
            let r = snapshot
                .retained
                .iter()
                .find(|m| m.topic == format!("r/{k}"))
                .unwrap_or_else(|| panic!("retained r/{k}"));
            assert!(
                r.id >= RETAINED_IDS + last,
                "retained r/{k} is {} < {last}",
                r.id - RETAINED_IDS
            );
            assert_eq!(r.payload, crash_payload(r.id - RETAINED_IDS));
        }
    }
}

/// Runs [`crash_child`] and kills it with SIGKILL after `target` acknowledged messages;
/// returns the last acknowledged count read.
fn run_and_kill(mode: &str, db: &Path, target: u64) -> u64 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "store::tests::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, format!("{mode}:{}", db.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0;
    let started = Instant::now();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
            if acked >= target || started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        acked >= 25,
        "the child acknowledged nothing (exit status {status:?})"
    );
    acked
}

fn killed_child_keeps_every_acknowledged_message(mode: &str, target: u64) {
    let dir = TempDir::new(&format!("kill-{mode}"));
    let db = dir.db();
    let acked = run_and_kill(mode, &db, target);
    assert!(
        wal_path(&db).exists(),
        "killed mid-write, the WAL is left for recovery"
    );

    // A copy with the WAL's tail torn off (as if the last write was cut short): SQLite
    // drops the incomplete frames and the store opens as of an earlier commit.
    let torn = TempDir::new(&format!("kill-{mode}-torn"));
    fs::copy(&db, torn.db()).unwrap();
    let wal = fs::read(wal_path(&db)).unwrap();
    fs::write(wal_path(&torn.db()), &wal[..wal.len().saturating_sub(1000)]).unwrap();

    let (store, snapshot) = Store::open(&db, Durability::Os).unwrap();
    check_crash_state(&snapshot, acked);
    store.close().unwrap();

    match Store::open(&torn.db(), Durability::Os) {
        Ok((store, snapshot)) => {
            // Whatever commit it stopped at, the state is that of a prefix of the ops.
            let last = session(&snapshot, "c")
                .queue
                .iter()
                .map(|d| d.seq)
                .max()
                .unwrap_or(0);
            check_crash_state(&snapshot, last);
            eprintln!(
                "{mode}: acknowledged {acked}; with the WAL torn, opened as of message {last}"
            );
            store.close().unwrap();
        }
        Err(e) => {
            eprintln!("{mode}: acknowledged {acked}; with the WAL torn: {e}");
            assert!(e.to_string().contains("persistence file"), "{e}");
        }
    }
}

#[test]
fn kill_9_keeps_every_acknowledged_message_os() {
    killed_child_keeps_every_acknowledged_message("os", 20_000);
}

#[test]
fn kill_9_keeps_every_acknowledged_message_fsync() {
    killed_child_keeps_every_acknowledged_message("fsync", 2_000);
}

// ---- batching changes nothing ------------------------------------------------------

/// A small deterministic generator (xorshift), so failures replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Submits each group under its own ticket, all under one lock so that they land in one
/// batch. Returns the last ticket.
fn submit_in_one_batch(store: &Store, groups: Vec<Vec<Op>>) -> u64 {
    let mut pending = store.inner.shared.pending.lock();
    for group in groups {
        let ticket = pending.last_ticket + 1;
        pending.last_ticket = ticket;
        pending.ops.extend(group.into_iter().map(|op| (ticket, op)));
    }
    let last = pending.last_ticket;
    drop(pending);
    store.inner.shared.wake.notify_one();
    last
}

#[test]
fn a_delivery_acknowledged_within_its_batch_leaves_nothing_behind() {
    let dir = TempDir::new("cancel");
    let db = dir.db();
    write(&db, vec![upsert("a"), upsert("b")]);
    let (store, _) = Store::open(&db, Durability::Os).unwrap();
    let remove = |client_id: &str, seq| Op::RemoveDelivery {
        client_id: client_id.into(),
        seq,
    };
    let last = submit_in_one_batch(
        &store,
        vec![
            // Stored and enqueued together.
            vec![
                Op::StoreMessage(Arc::new(message(1, "t"))),
                enqueue("a", 1, 1),
            ],
            // Stored, then enqueued to two sessions, each in its own submission.
            vec![Op::StoreMessage(Arc::new(message(2, "t")))],
            vec![enqueue("a", 2, 2)],
            vec![enqueue("b", 3, 2)],
            vec![Op::UpdateDelivery {
                client_id: "a".into(),
                seq: 1,
                packet_id: Some(1),
                state: 1,
            }],
            vec![remove("a", 1)],
            vec![remove("a", 2)],
            vec![remove("b", 3)],
        ],
    );
    wait(&store, last);
    store.close().unwrap();
    assert_eq!(count(&db, "deliveries"), 0);
    assert_eq!(count(&db, "messages"), 0, "collected without a restart");
}

/// Random operations on a few keys. An `Enqueue` comes with its `StoreMessage`, as the
/// broker must submit them (the message may have been collected since it was last
/// stored).
fn random_ops(rng: &mut Rng) -> Vec<Op> {
    // A message's content follows from its id, as with the broker's ids: 1-5 are
    // published to "t", 6-9 are retained on r0 or r1, 10-13 are wills.
    let client_id = ["a", "b"][rng.below(2) as usize].to_string();
    let seq = rng.below(6) + 1;
    let id = rng.below(5) + 1;
    let retained_id = rng.below(4) + 6;
    let retained = |id: u64| message(id, &format!("r{}", id % 2));
    let op = match rng.below(12) {
        0 => upsert(&client_id),
        1 => Op::DeleteSession { client_id },
        2 | 3 => Op::StoreMessage(Arc::new(message(id, "t"))),
        4 | 5 => {
            let stored = if rng.below(3) == 0 {
                retained(retained_id) // a retained message sent on subscribe
            } else {
                message(id, "t")
            };
            let seq_id = stored.id;
            return vec![
                Op::StoreMessage(Arc::new(stored)),
                enqueue(&client_id, seq, seq_id),
            ];
        }
        6 => Op::UpdateDelivery {
            client_id,
            seq,
            packet_id: Some(seq as u16),
            state: 1,
        },
        7 | 8 => Op::RemoveDelivery { client_id, seq },
        9 => Op::SetRetained(Arc::new(retained(retained_id))),
        10 => Op::ClearRetained {
            topic: format!("r{}", rng.below(2)),
        },
        _ => Op::SetWill {
            client_id,
            will: (rng.below(2) == 0).then(|| StoredWill {
                message: message(id + 9, "w"),
                delay: 1,
            }),
        },
    };
    vec![op]
}

/// The same operations, committed one submission per batch or all in one batch (where
/// deliveries enqueued and removed within the batch are never written), leave the same
/// store.
#[test]
fn one_big_batch_and_many_small_ones_leave_the_same_store() {
    for round in 0..60u64 {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (round + 1));
        let groups: Vec<Vec<Op>> = (0..40)
            .map(|_| {
                let n = rng.below(4) + 1;
                (0..n).flat_map(|_| random_ops(&mut rng)).collect()
            })
            .collect();

        let one = TempDir::new("batch-one");
        let (store, _) = Store::open(&one.db(), Durability::Os).unwrap();
        let last = submit_in_one_batch(&store, groups.clone());
        wait(&store, last);
        store.close().unwrap();

        let many = TempDir::new("batch-many");
        let (store, _) = Store::open(&many.db(), Durability::Os).unwrap();
        for group in &groups {
            let ticket = store.submit_all(group.clone());
            wait(&store, ticket);
        }
        store.close().unwrap();

        assert_eq!(reopen(&one.db()), reopen(&many.db()), "round {round}");
    }
}

#[test]
fn an_iterator_that_submits_itself_does_not_deadlock() {
    let dir = TempDir::new("reentrant");
    let (store, _) = Store::open(&dir.db(), Durability::Os).unwrap();
    let inner = store.clone();
    let ticket = store.submit_all((0..3).map(|i| {
        inner.submit(upsert(&format!("inner-{i}")));
        upsert(&format!("outer-{i}"))
    }));
    assert_eq!(ticket, 4, "three inner tickets, then the group");
    wait(&store, ticket);
    store.close().unwrap();
    drop(inner);
    assert_eq!(reopen(&dir.db()).sessions.len(), 6);
}
