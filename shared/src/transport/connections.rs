//! The TCP connection table: which connections are open, how to write on each, and
//! which one leads to a given peer (RFC 5626 section 5.3 needs "exactly that flow").
//!
//! The table holds only a bounded writer queue per connection; the reader and writer
//! tasks live in [`super::tcp`] and remove their entry when the connection closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ConnId, Flow, Transport};

/// A way to write on one open connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// The connection.
    pub id: ConnId,
    /// Our side: the listener address for accepted connections, the bound address for
    /// ones we opened.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Queue to the connection's writer task.
    pub(crate) writer: mpsc::Sender<Bytes>,
}

impl ConnHandle {
    /// The flow that names this connection.
    pub fn flow(&self) -> Flow {
        Flow {
            transport: Transport::Tcp,
            local: self.local,
            remote: self.remote,
            conn: Some(self.id),
        }
    }
}

/// The table is at its configured maximum number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// Open TCP connections by id, with an index from the peer's address.
#[derive(Debug)]
pub struct ConnectionTable {
    inner: Mutex<Entries>,
    next_id: AtomicU64,
    max: usize,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<ConnId, ConnHandle>,
    by_remote: HashMap<SocketAddr, ConnId>,
}

impl ConnectionTable {
    /// An empty table that accepts up to `max` connections.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(Entries::default()),
            next_id: AtomicU64::new(1),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Nothing panics while the lock is held, and the maps stay consistent even if
        // something did, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection under a fresh id, unless the table is full.
    ///
    /// The newest connection to a remote address becomes the one `by_remote` finds.
    pub fn insert(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    ) -> Result<ConnHandle, TableFull> {
        let mut entries = self.lock();
        if entries.by_id.len() >= self.max {
            return Err(TableFull);
        }
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let handle = ConnHandle {
            id,
            local,
            remote,
            writer,
        };
        entries.by_id.insert(id, handle.clone());
        entries.by_remote.insert(remote, id);
        Ok(handle)
    }

    /// The connection with this id, if it is still open.
    pub fn get(&self, id: ConnId) -> Option<ConnHandle> {
        self.lock().by_id.get(&id).cloned()
    }

    /// An open connection to `remote`, if there is one.
    pub fn by_remote(&self, remote: SocketAddr) -> Option<ConnHandle> {
        let entries = self.lock();
        let id = entries.by_remote.get(&remote)?;
        entries.by_id.get(id).cloned()
    }

    /// Forgets a closed connection; returns whether it was present.
    pub fn remove(&self, id: ConnId) -> bool {
        let mut entries = self.lock();
        let Some(handle) = entries.by_id.remove(&id) else {
            return false;
        };
        // A newer connection from the same address may own the index entry by now.
        if entries.by_remote.get(&handle.remote) == Some(&id) {
            entries.by_remote.remove(&handle.remote);
        }
        true
    }

    /// Whether the connection is still open.
    pub fn contains(&self, id: ConnId) -> bool {
        self.lock().by_id.contains_key(&id)
    }

    /// Whether another connection would be refused.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn writer() -> mpsc::Sender<Bytes> {
        mpsc::channel(1).0
    }

    #[test]
    fn insert_get_and_remove() {
        let table = ConnectionTable::new(4);
        let handle = table.insert(addr(5060), addr(40000), writer());
        let Ok(handle) = handle else {
            panic!("insert refused");
        };
        assert!(table.contains(handle.id));
        assert_eq!(table.get(handle.id).map(|h| h.remote), Some(addr(40000)));
        assert_eq!(table.by_remote(addr(40000)).map(|h| h.id), Some(handle.id));
        assert_eq!(
            handle.flow(),
            Flow {
                transport: Transport::Tcp,
                local: addr(5060),
                remote: addr(40000),
                conn: Some(handle.id),
            }
        );
        assert!(table.remove(handle.id));
        assert!(!table.contains(handle.id));
        assert!(table.by_remote(addr(40000)).is_none());
        assert!(!table.remove(handle.id));
        assert!(table.is_empty());
    }

    #[test]
    fn ids_are_never_reused() {
        let table = ConnectionTable::new(4);
        let first = table.insert(addr(5060), addr(1), writer()).map(|h| h.id);
        if let Ok(id) = first {
            table.remove(id);
        }
        let second = table.insert(addr(5060), addr(1), writer()).map(|h| h.id);
        assert!(first.is_ok());
        assert_ne!(first, second);
    }

    #[test]
    fn removing_an_old_connection_keeps_the_newer_index() {
        let table = ConnectionTable::new(4);
        let old = table.insert(addr(5060), addr(1), writer()).map(|h| h.id);
        let new = table.insert(addr(5060), addr(1), writer()).map(|h| h.id);
        if let Ok(id) = old {
            assert!(table.remove(id));
        }
        assert_eq!(table.by_remote(addr(1)).map(|h| h.id).ok_or(TableFull), new);
    }

    #[test]
    fn refuses_beyond_the_maximum() {
        let table = ConnectionTable::new(2);
        assert!(table.insert(addr(5060), addr(1), writer()).is_ok());
        assert!(table.insert(addr(5060), addr(2), writer()).is_ok());
        assert!(table.is_full());
        assert_eq!(
            table.insert(addr(5060), addr(3), writer()).map(|h| h.id),
            Err(TableFull)
        );
        assert_eq!(table.len(), 2);
    }
}
