//! Embedded SQLite files in the state directory, with a small pool of open connections so a
//! request does not pay for opening the file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Connections kept open per database file.
const IDLE_CONNECTIONS: usize = 16;

/// One SQLite database file and its idle connections.
#[derive(Debug)]
pub struct SqlitePool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqlitePool {
    /// Opens (creating if needed) the database at `path`, running `init` on a first connection.
    pub fn open(path: &Path, init: &str) -> rusqlite::Result<Arc<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!("cannot create {}: {e}", dir.display()).into(),
                )
            })?;
        }
        let pool = Arc::new(Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        });
        let conn = pool.connect()?;
        conn.execute_batch(init)?;
        pool.put(conn);
        Ok(pool)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Takes an idle connection, if there is one (never blocks on I/O).
    pub fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Takes an idle connection or opens a new one.
    pub fn take(&self) -> rusqlite::Result<Connection> {
        match self.take_idle() {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    /// Returns a connection, rolling back any transaction the guest left open.
    pub fn put(&self, conn: Connection) {
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    pub async fn with<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> rusqlite::Result<R> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.put(conn);
            result
        })
        .await
        .unwrap_or_else(|e| Err(rusqlite::Error::ToSqlConversionFailure(e.into())))
    }
}
