//! Reading the whole store back at start-up, after sweeping what nothing refers to.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use rusqlite::{Connection, Row};

use super::ops::{
    Snapshot, StoredDelivery, StoredMessage, StoredSession, StoredSubscription, StoredWill,
};
use super::writer::decode_ids;
use super::StoreError;

/// Rows that belong to no session, references to messages that are not stored, and
/// messages nothing refers to (stored but never enqueued before a crash, or left by an
/// operation the writer does not collect after, such as an `Enqueue` replacing a
/// delivery). The first two only come from a broker bug; the last is normal.
const SWEEP: &[(&str, &str)] = &[
    (
        "subscriptions without a session",
        "DELETE FROM subscriptions WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    ),
    (
        "deliveries without a session",
        "DELETE FROM deliveries WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    ),
    (
        "QoS 2 packet ids without a session",
        "DELETE FROM inbound_qos2 WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    ),
    (
        "wills without a session",
        "DELETE FROM wills WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    ),
    (
        "deliveries of a message not stored",
        "DELETE FROM deliveries WHERE message_id NOT IN (SELECT id FROM messages)",
    ),
    (
        "retained entries of a message not stored",
        "DELETE FROM retained WHERE message_id NOT IN (SELECT id FROM messages)",
    ),
    (
        "wills of a message not stored",
        "DELETE FROM wills WHERE message_id NOT IN (SELECT id FROM messages)",
    ),
];

const SWEEP_MESSAGES: &str = "DELETE FROM messages
    WHERE id NOT IN (SELECT message_id FROM deliveries)
      AND id NOT IN (SELECT message_id FROM retained)
      AND id NOT IN (SELECT message_id FROM wills)";

/// The columns [`message`] reads, prefixed by the table alias `m`.
const MESSAGE_COLUMNS: &str = "m.id, m.topic, m.payload, m.qos, m.retain, m.properties, \
     m.expiry_unix, m.publisher, m.publisher_username";

pub(super) fn load(conn: &mut Connection, path: &Path) -> Result<Snapshot, StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    sweep(conn, path)?;

    let mut sessions = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT client_id, expiry_interval, disconnected_unix, username, listener, protocol
                 FROM sessions ORDER BY client_id",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredSession {
                    client_id: r.get(0)?,
                    expiry_interval: r.get(1)?,
                    disconnected_unix: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    username: r.get(3)?,
                    listener: r.get(4)?,
                    protocol: r.get(5)?,
                    will: None,
                    subscriptions: Vec::new(),
                    queue: Vec::new(),
                    inbound_qos2: Vec::new(),
                })
            })
            .map_err(sql)?;
        for session in rows {
            let session = session.map_err(sql)?;
            by_id.insert(session.client_id.clone(), sessions.len());
            sessions.push(session);
        }
    }
    {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT w.client_id, w.delay, {MESSAGE_COLUMNS}
                 FROM wills w JOIN messages m ON m.id = w.message_id"
            ))
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let client_id: String = r.get(0).map_err(sql)?;
            let delay: u32 = r.get(1).map_err(sql)?;
            let message = message(r, 2).map_err(sql)?;
            session_of(&mut sessions, &by_id, &client_id, path)?.will =
                Some(StoredWill { message, delay });
        }
    }
    {
        let mut stmt = conn
            .prepare(
                "SELECT client_id, filter, options, identifier FROM subscriptions
                 ORDER BY client_id, filter",
            )
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let client_id: String = r.get(0).map_err(sql)?;
            let sub = StoredSubscription {
                filter: r.get(1).map_err(sql)?,
                options: r.get(2).map_err(sql)?,
                identifier: r.get(3).map_err(sql)?,
            };
            session_of(&mut sessions, &by_id, &client_id, path)?
                .subscriptions
                .push(sub);
        }
    }
    {
        let mut stmt = conn
            .prepare(
                "SELECT client_id, seq, message_id, qos, retain, packet_id, state, subscription_ids
                 FROM deliveries ORDER BY client_id, seq",
            )
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let client_id: String = r.get(0).map_err(sql)?;
            let ids: Vec<u8> = r.get(7).map_err(sql)?;
            let delivery = StoredDelivery {
                seq: r.get::<_, i64>(1).map_err(sql)? as u64,
                message_id: r.get::<_, i64>(2).map_err(sql)? as u64,
                qos: r.get(3).map_err(sql)?,
                retain: r.get(4).map_err(sql)?,
                packet_id: r.get(5).map_err(sql)?,
                state: r.get(6).map_err(sql)?,
                subscription_ids: decode_ids(&ids).ok_or_else(|| StoreError::Corrupt {
                    path: path.to_owned(),
                    reason: format!("subscription identifiers of a delivery to {client_id:?}"),
                })?,
            };
            session_of(&mut sessions, &by_id, &client_id, path)?
                .queue
                .push(delivery);
        }
    }
    {
        let mut stmt = conn
            .prepare("SELECT client_id, packet_id FROM inbound_qos2 ORDER BY client_id, packet_id")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let client_id: String = r.get(0).map_err(sql)?;
            let packet_id: u16 = r.get(1).map_err(sql)?;
            session_of(&mut sessions, &by_id, &client_id, path)?
                .inbound_qos2
                .push(packet_id);
        }
    }

    let mut messages = HashMap::new();
    {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m
                 WHERE m.id IN (SELECT message_id FROM deliveries)"
            ))
            .map_err(sql)?;
        let rows = stmt.query_map([], |r| message(r, 0)).map_err(sql)?;
        for m in rows {
            let m = m.map_err(sql)?;
            messages.insert(m.id, m);
        }
    }
    let retained = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM retained r JOIN messages m ON m.id = r.message_id
                 ORDER BY r.topic"
            ))
            .map_err(sql)?;
        let rows = stmt.query_map([], |r| message(r, 0)).map_err(sql)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)?
    };

    let next_message_id: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) + 1 FROM messages", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let next_seq: i64 = conn
        .query_row(
            "SELECT coalesce(max(seq), 0) + 1 FROM deliveries",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;

    Ok(Snapshot {
        sessions,
        messages,
        retained,
        next_message_id: (next_message_id as u64).max(1),
        next_seq: (next_seq as u64).max(1),
    })
}

/// The session `client_id` belongs to. After the sweep every row has one; a miss means
/// the file changed under us, which the exclusive lock rules out.
fn session_of<'a>(
    sessions: &'a mut [StoredSession],
    by_id: &HashMap<String, usize>,
    client_id: &str,
    path: &Path,
) -> Result<&'a mut StoredSession, StoreError> {
    match by_id.get(client_id) {
        Some(&i) => Ok(&mut sessions[i]),
        None => Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!("rows of client {client_id:?} but no session"),
        }),
    }
}

fn sweep(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    let tx = conn.transaction().map_err(sql)?;
    for (what, statement) in SWEEP {
        let n = tx.execute(statement, []).map_err(sql)?;
        if n > 0 {
            tracing::warn!("persistence file {}: dropped {n} {what}", path.display());
        }
    }
    let n = tx.execute(SWEEP_MESSAGES, []).map_err(sql)?;
    if n > 0 {
        tracing::debug!(
            "persistence file {}: dropped {n} messages nothing refers to",
            path.display()
        );
    }
    tx.commit().map_err(sql)
}

/// A [`StoredMessage`] from the columns of [`MESSAGE_COLUMNS`], starting at `first`.
fn message(r: &Row<'_>, first: usize) -> rusqlite::Result<StoredMessage> {
    let payload: Vec<u8> = r.get(first + 2)?;
    Ok(StoredMessage {
        id: r.get::<_, i64>(first)? as u64,
        topic: r.get(first + 1)?,
        payload: Bytes::from(payload),
        qos: r.get(first + 3)?,
        retain: r.get(first + 4)?,
        properties: r.get(first + 5)?,
        expiry_unix: r.get::<_, Option<i64>>(first + 6)?.map(|v| v as u64),
        publisher: r.get(first + 7)?,
        publisher_username: r.get(first + 8)?,
    })
}
