//! The writer thread: the only user of the SQLite connection after start-up.
//!
//! Callers push operations onto a queue under a short lock and get a ticket (a counter
//! that grows by one per `submit`). The writer takes everything pending, up to
//! [`MAX_BATCH_OPS`], applies it in one transaction and commits; while it commits, new
//! operations pile up and go into the next transaction (group commit: the busier the
//! broker, the bigger the batches, and one fsync or `write` covers them all). After a
//! commit it publishes the last ticket of the batch; the tickets of a batch are
//! contiguous and every earlier ticket was in an earlier batch, so "committed ≥ t" means
//! every operation up to ticket t is in the file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use super::ops::{Op, StoredMessage};
use super::StoreError;

/// Operations per transaction, at most (a `submit_all` group is never split, so a batch
/// can exceed this by one group). Bounds the memory a batch holds and the time the
/// broker waits for its first acknowledgement after a burst.
pub(super) const MAX_BATCH_OPS: usize = 10_000;

/// A failed batch is retried after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// At shutdown a failing batch is tried this many times before the writer gives up.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// What the broker's side and the writer thread share.
pub(super) struct Shared {
    pub(super) pending: Mutex<Pending>,
    /// Signalled when an operation is queued or shutdown is asked for.
    pub(super) wake: Condvar,
    /// Highest ticket committed: read by `Store::committed` without a lock.
    pub(super) committed: AtomicU64,
    /// The same value for async waiters; updated after `committed`.
    pub(super) committed_rx: watch::Receiver<u64>,
    /// Tests: this many batch attempts fail as if the disk did.
    #[cfg(test)]
    pub(super) inject_failures: std::sync::atomic::AtomicU32,
}

/// The queue between `submit` and the writer.
pub(super) struct Pending {
    /// Operations not yet taken by the writer, each with its ticket, in ticket order.
    pub(super) ops: Vec<(u64, Op)>,
    /// The last ticket handed out.
    pub(super) last_ticket: u64,
    /// Set once: the writer finishes what is queued, checkpoints and stops. Operations
    /// submitted afterwards are dropped (their tickets never complete).
    pub(super) shutdown: bool,
}

impl Shared {
    pub(super) fn new() -> (Arc<Shared>, watch::Sender<u64>) {
        let (tx, rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                ops: Vec::new(),
                last_ticket: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            committed: AtomicU64::new(0),
            committed_rx: rx,
            #[cfg(test)]
            inject_failures: std::sync::atomic::AtomicU32::new(0),
        });
        (shared, tx)
    }

    /// Queues `ops` under one new ticket (none when `ops` is empty: the last ticket
    /// handed out is returned, which completes when everything before it has).
    ///
    /// The iterator runs under the queue's lock: only ever one that runs no caller code
    /// (`Once`, `vec::IntoIter`), since code that submits in turn would deadlock.
    pub(super) fn submit(&self, ops: impl Iterator<Item = Op>) -> u64 {
        let mut pending = self.pending.lock();
        let ticket = pending.last_ticket + 1;
        let before = pending.ops.len();
        pending.ops.extend(ops.map(|op| (ticket, op)));
        if pending.ops.len() == before {
            return pending.last_ticket;
        }
        pending.last_ticket = ticket;
        if pending.shutdown {
            pending.ops.truncate(before);
            drop(pending);
            tracing::error!("persistence: operation submitted after the store was closed; dropped");
            return ticket;
        }
        drop(pending);
        self.wake.notify_one();
        ticket
    }

    pub(super) fn shut_down(&self) {
        self.pending.lock().shutdown = true;
        self.wake.notify_one();
    }
}

/// The writer thread's body. Returns when shutdown was asked for and everything queued
/// before it is committed (or could not be).
pub(super) fn run(
    mut conn: Connection,
    path: PathBuf,
    shared: Arc<Shared>,
    committed_tx: watch::Sender<u64>,
) -> Result<(), StoreError> {
    let mut batch: Vec<(u64, Op)> = Vec::new();
    let mut result = Ok(());
    loop {
        let shutdown = {
            let mut pending = shared.pending.lock();
            while pending.ops.is_empty() && !pending.shutdown {
                shared.wake.wait(&mut pending);
            }
            take_batch(&mut pending.ops, &mut batch);
            pending.shutdown
        };
        let Some(&(last_ticket, _)) = batch.last() else {
            break; // shutdown with nothing left
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match attempt(&mut conn, &batch, &shared) {
                Ok(()) => {
                    shared.committed.store(last_ticket, Ordering::Release);
                    committed_tx.send_replace(last_ticket);
                    break;
                }
                Err(e) => {
                    // The broker acknowledges nothing of this batch or after it until it
                    // is in the file: retry it, never skip it.
                    tracing::error!(
                        "persistence file {}: writing {} operations failed (attempt {attempts}, retrying in {backoff:?}): {e}",
                        path.display(),
                        batch.len()
                    );
                    let stopping = shutdown || shared.pending.lock().shutdown;
                    if stopping && attempts >= SHUTDOWN_ATTEMPTS {
                        result = Err(StoreError::sqlite(&path, e));
                        break;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        batch.clear();
        if result.is_err() {
            break;
        }
    }
    let closed = checkpoint_and_close(conn, &path);
    result.and(closed)
}

/// Moves the next batch out of `ops`: everything when it is small, otherwise whole
/// tickets up to [`MAX_BATCH_OPS`] operations.
fn take_batch(ops: &mut Vec<(u64, Op)>, batch: &mut Vec<(u64, Op)>) {
    debug_assert!(batch.is_empty());
    if ops.len() <= MAX_BATCH_OPS {
        std::mem::swap(ops, batch);
        return;
    }
    let boundary = ops[MAX_BATCH_OPS - 1].0;
    let end = MAX_BATCH_OPS + ops[MAX_BATCH_OPS..].partition_point(|(t, _)| *t == boundary);
    batch.extend(ops.drain(..end));
}

fn checkpoint_and_close(conn: Connection, path: &Path) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| StoreError::sqlite(path, e))?;
    conn.close().map_err(|(_, e)| StoreError::sqlite(path, e))
}

fn attempt(conn: &mut Connection, batch: &[(u64, Op)], shared: &Shared) -> rusqlite::Result<()> {
    #[cfg(test)]
    if shared
        .inject_failures
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("injected failure".into()),
        ));
    }
    #[cfg(not(test))]
    let _ = shared;
    apply_batch(conn, batch)
}

/// Applies a batch in one transaction; nothing of it is kept when any part fails.
fn apply_batch(conn: &mut Connection, batch: &[(u64, Op)]) -> rusqlite::Result<()> {
    let steps = plan(batch);
    let tx = conn.transaction()?;
    for (i, (_, op)) in batch.iter().enumerate() {
        match steps.get(i).copied().unwrap_or(Step::Write) {
            Step::Write => apply(&tx, op)?,
            Step::Skip => {}
            Step::WriteAndCollect(message_id) => {
                apply(&tx, op)?;
                collect_message(&tx, int(message_id))?;
            }
        }
    }
    tx.commit()
}

/// What the writer does with one operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Write,
    /// A later operation of the batch undoes it.
    Skip,
    /// Write it, then delete this message if nothing refers to it any more (the
    /// `RemoveDelivery` of a skipped `Enqueue`, which finds no row to take the message id
    /// from).
    WriteAndCollect(u64),
}

/// Operations of the batch that need not be written because a later one of the same
/// batch undoes them: a delivery enqueued and acknowledged before the writer got to it
/// (its `Enqueue` and `UpdateDelivery`s are skipped; the `RemoveDelivery` stays, a cheap
/// probe that also removes an older row with the same key, and collects the message),
/// and the `StoreMessage` of such a delivery when it was submitted in the same
/// `submit_all` and nothing else in the batch refers to the message. Under load,
/// subscribers acknowledge while the previous batch commits, so much of the traffic
/// never touches the file. The state after the batch is the same.
///
/// Returns one step per operation (empty: write everything).
fn plan(batch: &[(u64, Op)]) -> Vec<Step> {
    use std::collections::{HashMap, HashSet};

    struct Open {
        enqueue: usize,
        updates: Vec<usize>,
    }
    if !batch
        .iter()
        .any(|(_, op)| matches!(op, Op::RemoveDelivery { .. }))
    {
        return Vec::new();
    }
    let mut steps = vec![Step::Write; batch.len()];
    let mut open: HashMap<(&str, u64), Open> = HashMap::new();
    // Keys enqueued twice in the batch: left alone (rare, and not worth the cases).
    let mut twice: HashSet<(&str, u64)> = HashSet::new();
    let mut cancelled: HashSet<(u64, u64)> = HashSet::new(); // (ticket, message id)
    for (i, (_, op)) in batch.iter().enumerate() {
        match op {
            Op::Enqueue {
                client_id,
                delivery,
            } => {
                let key = (client_id.as_str(), delivery.seq);
                if twice.contains(&key) || open.remove(&key).is_some() {
                    twice.insert(key);
                } else {
                    open.insert(
                        key,
                        Open {
                            enqueue: i,
                            updates: Vec::new(),
                        },
                    );
                }
            }
            Op::UpdateDelivery { client_id, seq, .. } => {
                if let Some(o) = open.get_mut(&(client_id.as_str(), *seq)) {
                    o.updates.push(i);
                }
            }
            Op::RemoveDelivery { client_id, seq } => {
                if let Some(o) = open.remove(&(client_id.as_str(), *seq)) {
                    if let (ticket, Op::Enqueue { delivery, .. }) = &batch[o.enqueue] {
                        steps[o.enqueue] = Step::Skip;
                        for u in o.updates {
                            steps[u] = Step::Skip;
                        }
                        steps[i] = Step::WriteAndCollect(delivery.message_id);
                        cancelled.insert((*ticket, delivery.message_id));
                    }
                }
            }
            Op::DeleteSession { client_id } => {
                open.retain(|(c, _), _| c != client_id);
            }
            _ => {}
        }
    }
    if cancelled.is_empty() {
        return steps;
    }
    // Messages something written in the batch refers to.
    let mut referenced: HashSet<u64> = HashSet::new();
    for ((_, op), step) in batch.iter().zip(&steps) {
        match op {
            Op::Enqueue { delivery, .. } if *step != Step::Skip => {
                referenced.insert(delivery.message_id);
            }
            Op::SetRetained(m) => {
                referenced.insert(m.id);
            }
            Op::SetWill {
                will: Some(will), ..
            } => {
                referenced.insert(will.message.id);
            }
            _ => {}
        }
    }
    for ((ticket, op), step) in batch.iter().zip(steps.iter_mut()) {
        if let Op::StoreMessage(m) = op {
            if cancelled.contains(&(*ticket, m.id)) && !referenced.contains(&m.id) {
                *step = Step::Skip;
            }
        }
    }
    steps
}

/// SQLite integers are signed 64-bit; ids and times are stored bit for bit.
fn int(v: u64) -> i64 {
    v as i64
}

fn apply(tx: &Transaction<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::UpsertSession {
            client_id,
            expiry_interval,
            disconnected_unix,
            username,
            listener,
            protocol,
        } => {
            tx.prepare_cached(
                "INSERT INTO sessions
                     (client_id, expiry_interval, disconnected_unix, username, listener, protocol)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (client_id) DO UPDATE SET
                     expiry_interval = excluded.expiry_interval,
                     disconnected_unix = excluded.disconnected_unix,
                     username = excluded.username,
                     listener = excluded.listener,
                     protocol = excluded.protocol",
            )?
            .execute(params![
                client_id,
                expiry_interval,
                disconnected_unix.map(int),
                username,
                listener,
                protocol
            ])?;
        }
        Op::SetWill { client_id, will } => {
            let old = tx
                .prepare_cached("SELECT message_id FROM wills WHERE client_id = ?1")?
                .query_row([client_id], |r| r.get::<_, i64>(0))
                .optional()?;
            let new = match will {
                Some(will) => {
                    store_message(tx, &will.message)?;
                    tx.prepare_cached(
                        "INSERT INTO wills (client_id, message_id, delay) VALUES (?1, ?2, ?3)
                         ON CONFLICT (client_id) DO UPDATE SET
                             message_id = excluded.message_id, delay = excluded.delay",
                    )?
                    .execute(params![
                        client_id,
                        int(will.message.id),
                        will.delay
                    ])?;
                    Some(int(will.message.id))
                }
                None => {
                    tx.prepare_cached("DELETE FROM wills WHERE client_id = ?1")?
                        .execute([client_id])?;
                    None
                }
            };
            if let Some(old) = old.filter(|old| Some(*old) != new) {
                collect_message(tx, old)?;
            }
        }
        Op::DeleteSession { client_id } => {
            let referenced: Vec<i64> = tx
                .prepare_cached(
                    "SELECT message_id FROM deliveries WHERE client_id = ?1
                     UNION SELECT message_id FROM wills WHERE client_id = ?1",
                )?
                .query_map([client_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for table in [
                "DELETE FROM deliveries WHERE client_id = ?1",
                "DELETE FROM wills WHERE client_id = ?1",
                "DELETE FROM subscriptions WHERE client_id = ?1",
                "DELETE FROM inbound_qos2 WHERE client_id = ?1",
                "DELETE FROM sessions WHERE client_id = ?1",
            ] {
                tx.prepare_cached(table)?.execute([client_id])?;
            }
            for id in referenced {
                collect_message(tx, id)?;
            }
        }
        Op::AddSubscription { client_id, sub } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO subscriptions (client_id, filter, options, identifier)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![client_id, sub.filter, sub.options, sub.identifier])?;
        }
        Op::RemoveSubscription { client_id, filter } => {
            tx.prepare_cached("DELETE FROM subscriptions WHERE client_id = ?1 AND filter = ?2")?
                .execute([client_id, filter])?;
        }
        Op::StoreMessage(message) => store_message(tx, message)?,
        Op::Enqueue {
            client_id,
            delivery: d,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO deliveries
                     (client_id, seq, message_id, qos, retain, packet_id, state, subscription_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                client_id,
                int(d.seq),
                int(d.message_id),
                d.qos,
                d.retain,
                d.packet_id,
                d.state,
                encode_ids(&d.subscription_ids)
            ])?;
        }
        Op::UpdateDelivery {
            client_id,
            seq,
            packet_id,
            state,
        } => {
            tx.prepare_cached(
                "UPDATE deliveries SET packet_id = ?3, state = ?4
                 WHERE client_id = ?1 AND seq = ?2",
            )?
            .execute(params![client_id, int(*seq), packet_id, state])?;
        }
        Op::RemoveDelivery { client_id, seq } => {
            let message = tx
                .prepare_cached(
                    "DELETE FROM deliveries WHERE client_id = ?1 AND seq = ?2
                     RETURNING message_id",
                )?
                .query_row(params![client_id, int(*seq)], |r| r.get::<_, i64>(0))
                .optional()?;
            if let Some(id) = message {
                collect_message(tx, id)?;
            }
        }
        Op::AddInboundQos2 {
            client_id,
            packet_id,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?1, ?2)",
            )?
            .execute(params![client_id, packet_id])?;
        }
        Op::RemoveInboundQos2 {
            client_id,
            packet_id,
        } => {
            tx.prepare_cached("DELETE FROM inbound_qos2 WHERE client_id = ?1 AND packet_id = ?2")?
                .execute(params![client_id, packet_id])?;
        }
        Op::SetRetained(message) => {
            let old = tx
                .prepare_cached("SELECT message_id FROM retained WHERE topic = ?1")?
                .query_row([&message.topic], |r| r.get::<_, i64>(0))
                .optional()?;
            store_message(tx, message)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO retained (topic, message_id) VALUES (?1, ?2)",
            )?
            .execute(params![message.topic, int(message.id)])?;
            if let Some(old) = old.filter(|old| *old != int(message.id)) {
                collect_message(tx, old)?;
            }
        }
        Op::ClearRetained { topic } => {
            let message = tx
                .prepare_cached("DELETE FROM retained WHERE topic = ?1 RETURNING message_id")?
                .query_row([topic], |r| r.get::<_, i64>(0))
                .optional()?;
            if let Some(id) = message {
                collect_message(tx, id)?;
            }
        }
    }
    Ok(())
}

fn store_message(tx: &Transaction<'_>, m: &StoredMessage) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO messages
             (id, topic, payload, qos, retain, properties, expiry_unix, publisher, publisher_username)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        int(m.id),
        m.topic,
        &m.payload[..],
        m.qos,
        m.retain,
        m.properties,
        m.expiry_unix.map(int),
        m.publisher,
        m.publisher_username
    ])?;
    Ok(())
}

/// Deletes a message once no delivery, retained entry or will refers to it: three index
/// look-ups, done where a reference goes away rather than by scanning. (Whatever escapes
/// this, such as a stored message never enqueued, is swept at the next start-up.)
fn collect_message(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "DELETE FROM messages WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM retained WHERE message_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM wills WHERE message_id = ?1)",
    )?
    .execute([id])?;
    Ok(())
}

/// Subscription identifiers as consecutive little-endian `u32`s.
pub(super) fn encode_ids(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

pub(super) fn decode_ids(bytes: &[u8]) -> Option<Vec<u32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(n: u64) -> Op {
        Op::RemoveDelivery {
            client_id: "c".into(),
            seq: n,
        }
    }

    #[test]
    fn a_small_queue_is_taken_whole() {
        let mut ops: Vec<_> = (1..=5).map(|t| (t, op(t))).collect();
        let mut batch = Vec::new();
        take_batch(&mut ops, &mut batch);
        assert_eq!(batch.len(), 5);
        assert!(ops.is_empty());
    }

    #[test]
    fn a_large_queue_is_cut_at_a_ticket_boundary() {
        // Ticket 1 holds 3 operations straddling the bound; they stay together.
        let mut ops: Vec<_> = (0..MAX_BATCH_OPS as u64 - 2).map(|i| (0, op(i))).collect();
        ops.extend((0..3).map(|i| (1, op(i))));
        ops.extend((0..10).map(|i| (2, op(i))));
        let mut batch = Vec::new();
        take_batch(&mut ops, &mut batch);
        assert_eq!(batch.len(), MAX_BATCH_OPS + 1);
        assert_eq!(batch.last().unwrap().0, 1);
        assert_eq!(ops.len(), 10);
        assert!(ops.iter().all(|(t, _)| *t == 2));
    }

    fn message(id: u64) -> Arc<StoredMessage> {
        Arc::new(StoredMessage {
            id,
            topic: "t".into(),
            payload: bytes::Bytes::new(),
            qos: 1,
            retain: false,
            properties: Vec::new(),
            expiry_unix: None,
            publisher: None,
            publisher_username: None,
        })
    }

    fn enqueue(seq: u64, message_id: u64) -> Op {
        Op::Enqueue {
            client_id: "c".into(),
            delivery: super::super::StoredDelivery {
                seq,
                message_id,
                qos: 1,
                retain: false,
                packet_id: None,
                state: 0,
                subscription_ids: Vec::new(),
            },
        }
    }

    fn update(seq: u64) -> Op {
        Op::UpdateDelivery {
            client_id: "c".into(),
            seq,
            packet_id: Some(1),
            state: 1,
        }
    }

    #[test]
    fn a_delivery_acknowledged_within_the_batch_is_not_written() {
        let batch = vec![
            (1, Op::StoreMessage(message(1))),
            (1, enqueue(1, 1)),
            (2, update(1)),
            (3, op(1)),
        ];
        use Step::*;
        assert_eq!(plan(&batch), vec![Skip, Skip, Skip, WriteAndCollect(1)]);
    }

    #[test]
    fn a_message_still_referred_to_is_written() {
        // Enqueued to another session too, or retained, or stored by another ticket.
        let other = Op::Enqueue {
            client_id: "d".into(),
            delivery: match enqueue(1, 1) {
                Op::Enqueue { delivery, .. } => delivery,
                _ => unreachable!(),
            },
        };
        for (extra, store_ticket) in [
            (other, 1),
            (Op::SetRetained(message(1)), 1),
            (
                Op::UpsertSession {
                    client_id: "x".into(),
                    expiry_interval: 0,
                    disconnected_unix: None,
                    username: None,
                    listener: 0,
                    protocol: 5,
                },
                0,
            ),
        ] {
            let batch = vec![
                (store_ticket, Op::StoreMessage(message(1))),
                (1, enqueue(1, 1)),
                (1, extra),
                (2, op(1)),
            ];
            assert_eq!(
                plan(&batch),
                vec![
                    Step::Write,
                    Step::Skip,
                    Step::Write,
                    Step::WriteAndCollect(1)
                ]
            );
        }
    }

    #[test]
    fn a_key_enqueued_twice_is_left_alone() {
        let batch = vec![
            (1, Op::StoreMessage(message(1))),
            (1, enqueue(1, 1)),
            (2, enqueue(1, 1)),
            (3, op(1)),
        ];
        assert_eq!(plan(&batch), vec![Step::Write; 4]);
        let batch = vec![(1, Op::StoreMessage(message(1))), (1, enqueue(1, 1))];
        assert!(plan(&batch).is_empty(), "nothing removed");
    }

    #[test]
    fn subscription_ids_round_trip() {
        for ids in [vec![], vec![1], vec![1, 268_435_455, 7]] {
            assert_eq!(decode_ids(&encode_ids(&ids)), Some(ids));
        }
        assert_eq!(decode_ids(&[1, 2, 3]), None);
    }
}
