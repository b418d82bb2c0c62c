//! Embedded SQLite databases (files, or memory), with a small pool of open connections so a
//! request does not pay for opening the file, a writer thread that runs the writes outside
//! transactions one after another ([`crate::sqlite_writer`]), a background checkpointer that
//! keeps a file's write-ahead log short, and [`run_interruptible`], which keeps a statement
//! from outliving the request that started it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::{Connection, InterruptHandle};

use crate::sqlite_writer::Writer;

/// Connections kept open per database file.
const IDLE_CONNECTIONS: usize = 16;

/// How long a statement waits for another connection's write lock before failing with
/// `SQLITE_BUSY`.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long a read may run on the calling thread ([`run_inline`]) before it is interrupted, to
/// run again on the blocking thread pool.
const INLINE_BUDGET: Duration = Duration::from_micros(300);

/// SQLite virtual-machine steps between two looks at the clock in [`run_inline`].
const INLINE_STEPS: i32 = 100;

thread_local! {
    /// The deadline of the request whose statement this thread runs ([`run_interruptible`]).
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// Whether this thread runs a statement inline ([`run_inline`]): it does not wait for
    /// locks.
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// SQLite's busy handler: waits out another connection's write lock in steps of 50 µs growing
/// to 1 ms, for [`LOCK_WAIT`] in all, and never past the deadline of the request it waits for.
/// (SQLite's own `busy_timeout` sleeps up to 100 ms at a time, so a writer often slept long
/// after the lock was free: concurrent event batches waited up to ~650 ms at p99.)
fn wait_for_lock(attempt: i32) -> bool {
    let (Some(step), deadline) = (lock_wait_step(attempt), DEADLINE.get()) else {
        return false;
    };
    if INLINE.get() {
        return false;
    }
    let step = match deadline {
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => step.min(left),
            _ => return false,
        },
        None => step,
    };
    std::thread::sleep(step);
    true
}

/// How long the `attempt`-th wait for a lock sleeps (from 0), `None` once [`LOCK_WAIT`] has
/// been waited in all.
fn lock_wait_step(attempt: i32) -> Option<Duration> {
    let n = attempt.max(0) as u64;
    let ramp = n.min(20);
    let waited_us = 50 * ramp * (ramp + 1) / 2 + (n - ramp) * 1_000;
    (u128::from(waited_us) < LOCK_WAIT.as_micros())
        .then(|| Duration::from_micros(((n + 1) * 50).min(1_000)))
}

/// Where a database lives (a runtime config's `path`, or its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A file, created with its directory if needed.
    File(PathBuf),
    /// Memory, shared by the pool's connections and gone when the process exits (Spin's
    /// `type = "spin"` without a `path`).
    Memory,
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Log pages (4 KiB each by default) beyond which the checkpointer restarts the log from its
/// beginning, waiting for the readers still on it.
const RESTART_PAGES: i64 = 16384;

/// Longest the checkpointer waits for readers and writers before trying again at its next
/// turn (meanwhile writers wait for it).
const RESTART_WAIT: Duration = Duration::from_millis(5);

/// A log file left larger than this after a restart is truncated to it.
const LOG_SIZE_LIMIT: i64 = 256 << 20;

/// Numbers in-memory databases, so that two pools never share one.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

/// One SQLite database and its idle connections.
#[derive(Debug)]
pub struct SqlitePool {
    /// What connections open: a path, or the URI of a shared in-memory database.
    target: String,
    idle: Mutex<Vec<Connection>>,
    /// Whether the database is in memory (no WAL).
    in_memory: bool,
    /// Keeps an in-memory database alive while no other connection is open.
    keeper: Option<Mutex<Connection>>,
    /// Runs the writes outside transactions (see [`Self::write`]).
    writer: Writer,
}

impl SqlitePool {
    /// Opens (creating if needed) the database at `location`, running `init` on a first
    /// connection.
    pub fn open(location: &DatabaseLocation, init: &str) -> rusqlite::Result<Arc<Self>> {
        Self::open_restarting_at(location, init, RESTART_PAGES)
    }

    /// [`Self::open`], with the checkpointer restarting the log at `restart_pages`.
    fn open_restarting_at(
        location: &DatabaseLocation,
        init: &str,
        restart_pages: i64,
    ) -> rusqlite::Result<Arc<Self>> {
        let target = match location {
            DatabaseLocation::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        rusqlite::Error::ToSqlConversionFailure(
                            format!("cannot create {}: {e}", dir.display()).into(),
                        )
                    })?;
                }
                path.to_string_lossy().into_owned()
            }
            // SQLite's `memdb` VFS shares a database named with a leading `/` between the
            // connections of one process, with the usual file locking.
            DatabaseLocation::Memory => format!(
                "file:/vitrine-{}-{}?vfs=memdb",
                std::process::id(),
                MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let writer =
            Writer::start().map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let mut pool = Self {
            target,
            idle: Mutex::new(Vec::new()),
            in_memory: *location == DatabaseLocation::Memory,
            keeper: None,
            writer,
        };
        if pool.in_memory {
            pool.keeper = Some(Mutex::new(pool.connect()?));
        }
        let pool = Arc::new(pool);
        let conn = pool.connect()?;
        conn.execute_batch(init)?;
        pool.put(conn);
        if !pool.in_memory {
            let checkpointer = pool.connect()?;
            checkpointer.busy_handler(Some(wait_for_checkpoint))?;
            let weak = Arc::downgrade(&pool);
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_while_open(&checkpointer, &weak, restart_pages))
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        }
        Ok(pool)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        static CONFIGURED: std::sync::Once = std::sync::Once::new();
        CONFIGURED.call_once(|| {
            // SQLite's memory statistics take one process-wide mutex on every allocation,
            // which all connections contend for under load; nothing here reads them.
            // SAFETY: `sqlite3_config` is called once, before this process opens its first
            // connection here; if SQLite was already initialised it returns SQLITE_MISUSE and
            // changes nothing.
            unsafe {
                rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
            }
        });
        let conn = Connection::open(&self.target)?;
        conn.busy_handler(Some(wait_for_lock))?;
        // Files only: an in-memory database has no WAL, and asking for one waits for any
        // writer's lock. A commit never checkpoints: the pool's checkpointer does, off the
        // requests' path.
        if !self.in_memory {
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {LOG_SIZE_LIMIT};"
            ))?;
        }
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

    /// Runs `f`, a write outside a transaction, on a pooled connection on the database's
    /// writer thread (see [`Self::write_on`]).
    pub async fn write<R: Send + 'static>(
        self: &Arc<Self>,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> rusqlite::Result<R> {
        let conn = self.take_async().await?;
        let (conn, result) = self.write_on(conn, deadline, f).await?;
        self.put(conn);
        result
    }

    /// Runs `f` with `conn` (outside a transaction) on the database's writer thread, after
    /// the writes queued before it ([`crate::sqlite_writer`]); interrupted at `deadline` or
    /// when the returned future is dropped, as [`run_interruptible`] is.
    pub async fn write_on<R: Send + 'static>(
        &self,
        conn: Connection,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> R + Send + 'static,
    ) -> rusqlite::Result<(Connection, R)> {
        let mut guard = InterruptOnDrop(Some(conn.get_interrupt_handle()));
        let done = self.writer.run(bounded(conn, deadline, f)).await;
        guard.0 = None;
        done.ok_or_else(|| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the database's writer has stopped".into()),
            )
        })
    }

    /// An idle connection, or a new one opened off the async threads.
    async fn take_async(self: &Arc<Self>) -> rusqlite::Result<Connection> {
        match self.take_idle() {
            Some(conn) => Ok(conn),
            None => {
                let pool = self.clone();
                tokio::task::spawn_blocking(move || pool.take())
                    .await
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?
            }
        }
    }

    /// Runs `f` on a pooled connection on the blocking thread pool, interrupted at `deadline`
    /// or when the returned future is dropped (see [`run_interruptible`]).
    pub async fn with<R: Send + 'static>(
        self: &Arc<Self>,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> rusqlite::Result<R> {
        let conn = self.take_async().await?;
        let (conn, result) = run_interruptible(conn, deadline, f)
            .await
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        self.put(conn);
        result
    }
}

/// The checkpointer of a file database, on its own connection, until the pool is dropped.
///
/// SQLite's own checkpoints run in whichever commit finds the log over 1,000 pages, and can
/// only copy the frames no reader still uses: under steady load, readers always overlap, the
/// log never starts over, and every commit paid for a checkpoint (a benchmark's log reached
/// 424 MB in a minute, and decisions ran 3× slower). Here a passive checkpoint copies what it
/// can every [`CHECKPOINT_EVERY`]; once the log holds `restart_pages`, a `RESTART`
/// checkpoint waits (up to [`RESTART_WAIT`]) for the readers on it to finish, so that the
/// next writer starts the log over.
fn checkpoint_while_open(conn: &Connection, pool: &Weak<SqlitePool>, restart_pages: i64) {
    while pool.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(e) = checkpoint(conn, restart_pages) {
            tracing::warn!("checkpoint of a SQLite database failed: {e}");
        }
    }
}

/// One checkpoint: passive, or a restart if the log is long.
fn checkpoint(conn: &Connection, restart_pages: i64) -> rusqlite::Result<()> {
    let passive = || {
        let pages = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        })?;
        sync_database_file(conn);
        Ok::<_, rusqlite::Error>(pages)
    };
    // Twice when the log is long: the second copies what was written during the first, so
    // that the restart, which holds writers back, has little left to copy and to flush.
    if passive()? >= restart_pages && passive()? >= restart_pages {
        conn.execute_batch("PRAGMA wal_checkpoint(RESTART)")?;
    }
    Ok(())
}

/// Flushes the pages a checkpoint wrote into the database file to disk. SQLite flushes them
/// only once a checkpoint has copied the whole log, which under load only a restart does:
/// it then flushed a few hundred megabytes (16 ms here) while holding writers back.
///
/// Through SQLite's own handle of the file (its VFS's `xSync`): a second descriptor of the
/// file, once closed, would drop every lock this process holds on it.
fn sync_database_file(conn: &Connection) {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `conn` is open for the duration of the call, and SQLITE_FCNTL_FILE_POINTER
    // writes a `sqlite3_file*` (the main database's, owned by the connection) to `file`.
    let found = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if found != ffi::SQLITE_OK || file.is_null() {
        return;
    }
    // SAFETY: `file` is the connection's open file, used only on this thread; its methods
    // are the VFS's, and `xSync` only flushes it.
    unsafe {
        if let Some(sync) = (*file).pMethods.as_ref().and_then(|m| m.xSync) {
            sync(file, ffi::SQLITE_SYNC_NORMAL);
        }
    }
}

/// The checkpointer's busy handler: waits for readers and writers in steps of 100 µs, for
/// [`RESTART_WAIT`] in all.
fn wait_for_checkpoint(attempt: i32) -> bool {
    const STEP: Duration = Duration::from_micros(100);
    let waiting = (attempt.max(0) as u32 + 1) * STEP;
    if waiting > RESTART_WAIT {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

/// SQLite virtual-machine steps between two looks at the clock.
const PROGRESS_STEPS: i32 = 1000;

/// Interrupts the statement running on a connection when dropped, unless disarmed.
struct InterruptOnDrop(Option<InterruptHandle>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }
}

/// Runs `f` with `conn` on the blocking thread pool, so that no statement outlives its request:
/// SQLite is interrupted once `deadline` passes (a progress handler; a wait for another
/// connection's lock gives up then too, with `database is locked`), and at once if the
/// returned future is dropped (the request was answered 504, its instance dropped, or the
/// server shut down). An interrupted statement fails with `OperationInterrupted`. The
/// connection comes back with the result unless the future was dropped.
pub async fn run_interruptible<R: Send + 'static>(
    conn: Connection,
    deadline: Instant,
    f: impl FnOnce(&Connection) -> R + Send + 'static,
) -> Result<(Connection, R), tokio::task::JoinError> {
    let mut guard = InterruptOnDrop(Some(conn.get_interrupt_handle()));
    let done = tokio::task::spawn_blocking(bounded(conn, deadline, f)).await;
    guard.0 = None;
    done
}

/// `f` with `conn`, bounded by `deadline`: SQLite's progress handler interrupts a statement
/// then, and a wait for another connection's lock ends then ([`wait_for_lock`]).
fn bounded<R>(
    conn: Connection,
    deadline: Instant,
    f: impl FnOnce(&Connection) -> R,
) -> impl FnOnce() -> (Connection, R) {
    move || {
        conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
        DEADLINE.set(Some(deadline));
        let result = f(&conn);
        DEADLINE.set(None);
        conn.progress_handler(PROGRESS_STEPS, None::<fn() -> bool>);
        (conn, result)
    }
}

/// Runs `f`, a read outside a transaction, on the calling thread: most reads take
/// microseconds, less than the two thread switches of [`run_interruptible`]. `None` when it
/// ran past [`INLINE_BUDGET`] or found a lock (it is interrupted, or does not wait): the
/// caller then runs it there; a read interrupted that way changed nothing. Past `deadline`,
/// it fails with `OperationInterrupted`.
pub fn run_inline<R>(
    conn: &Connection,
    deadline: Instant,
    f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
) -> Option<rusqlite::Result<R>> {
    let started = crate::cpu_gate::thread_cpu_time();
    let over_budget = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let over = over_budget.clone();
    conn.progress_handler(
        INLINE_STEPS,
        Some(move || {
            if Instant::now() >= deadline {
                return true;
            }
            let over = crate::cpu_gate::thread_cpu_time().saturating_sub(started) > INLINE_BUDGET;
            over_budget.store(over, Ordering::Relaxed);
            over
        }),
    );
    INLINE.set(true);
    let result = f(conn);
    INLINE.set(false);
    conn.progress_handler(0, None::<fn() -> bool>);
    match result {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy
                || (e.code == rusqlite::ErrorCode::OperationInterrupted
                    && over.load(Ordering::Relaxed)) =>
        {
            None
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_waits_start_short_and_end_after_the_limit() {
        assert_eq!(lock_wait_step(0), Some(Duration::from_micros(50)));
        assert_eq!(lock_wait_step(19), Some(Duration::from_millis(1)));
        let steps: Vec<Duration> = (0..).map_while(lock_wait_step).collect();
        let total: Duration = steps.iter().sum();
        assert!(
            total >= LOCK_WAIT && total <= LOCK_WAIT + Duration::from_millis(1),
            "{total:?}"
        );
        assert!(!wait_for_lock(steps.len() as i32));
    }

    /// A quick read runs inline; a slow one gives way to the blocking pool; past the deadline
    /// a read fails.
    #[test]
    fn quick_reads_run_inline_and_slow_ones_give_way() {
        let pool = SqlitePool::open(
            &DatabaseLocation::Memory,
            "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);",
        )
        .unwrap();
        let conn = pool.take().unwrap();
        let count = |sql: &'static str| move |c: &Connection| c.query_row(sql, [], |r| r.get(0));
        let later = Instant::now() + Duration::from_secs(30);
        let quick = run_inline(&conn, later, count("SELECT x FROM t"));
        assert_eq!(quick.unwrap().unwrap(), 7i64);
        let slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1e8)
                    SELECT count(*) FROM n";
        assert!(run_inline(&conn, later, count(slow))
            .map(|r: rusqlite::Result<i64>| r)
            .is_none());
        let late = run_inline(&conn, Instant::now(), count(slow));
        assert!(
            matches!(&late, Some(Err(rusqlite::Error::SqliteFailure(e, _)))
                if e.code == rusqlite::ErrorCode::OperationInterrupted),
            "{late:?}"
        );
        // The connection is as it was.
        assert_eq!(
            conn.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            7
        );
    }

    /// Under writes with readers always overlapping, the checkpointer keeps the log short;
    /// SQLite's own checkpoints alone let it grow by every write.
    #[test]
    fn the_log_stays_short_under_overlapping_readers() {
        let dir = std::env::temp_dir().join(format!("vitrine-wal-{}", std::process::id()));
        let path = dir.join("db.sqlite");
        // Restarts at 1,024 pages, so that the test writes ten times as many.
        let pool = SqlitePool::open_restarting_at(
            &DatabaseLocation::File(path.clone()),
            "CREATE TABLE t (x BLOB);",
            1_024,
        )
        .unwrap();
        let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        // Two readers take turns, each holding a snapshot while the other starts its own.
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, writing) = (pool.clone(), writing.clone());
                std::thread::spawn(move || {
                    let conn = pool.connect().unwrap();
                    while writing.load(Ordering::Relaxed) {
                        conn.execute_batch("BEGIN; SELECT count(*) FROM t;")
                            .unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                        conn.execute_batch("COMMIT").unwrap();
                    }
                })
            })
            .collect();
        // 10,000 rows of 4 KB, over 2 s at least.
        let writer = pool.take().unwrap();
        let row = vec![7u8; 4096];
        for _ in 0..10_000 {
            writer.execute("INSERT INTO t VALUES (?)", [&row]).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        writing.store(false, Ordering::Relaxed);
        readers.into_iter().for_each(|r| r.join().unwrap());
        let log = std::fs::metadata(dir.join("db.sqlite-wal")).unwrap().len();
        drop((writer, pool));
        std::fs::remove_dir_all(&dir).unwrap();
        // Without the checkpointer the log holds every row (each a page and an overflow page:
        // over 80 MB); with it, it starts over every few thousand pages. Half is the limit,
        // room for turns a busy machine delays.
        let limit = 10_000 * 4_096;
        assert!(log < limit, "the log grew to {log} bytes (limit {limit})");
    }

    /// A write on the writer thread keeps its connection's state (`last_insert_rowid`); one
    /// that runs past its deadline is interrupted, and the writes after it still run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_run_on_their_connection_and_end_at_the_deadline() {
        let pool =
            SqlitePool::open(&DatabaseLocation::Memory, "CREATE TABLE t (x INTEGER);").unwrap();
        let later = Instant::now() + Duration::from_secs(30);
        let insert = |c: &Connection| c.execute("INSERT INTO t VALUES (7)", []);
        let (conn, inserted) = pool
            .write_on(pool.take().unwrap(), later, insert)
            .await
            .unwrap();
        assert_eq!(inserted.unwrap(), 1);
        assert_eq!(conn.last_insert_rowid(), 1);
        let slow = |c: &Connection| {
            c.execute(
                "INSERT INTO t WITH RECURSIVE n(i) AS
                   (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1e9) SELECT i FROM n",
                [],
            )
        };
        let soon = Instant::now() + Duration::from_millis(100);
        let (slow, next) = tokio::join!(
            pool.write_on(conn, soon, slow),
            pool.write_on(pool.take().unwrap(), later, insert),
        );
        let (_, slow) = slow.unwrap();
        assert!(
            matches!(&slow, Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::OperationInterrupted),
            "{slow:?}"
        );
        let (conn, next) = next.unwrap();
        assert_eq!(next.unwrap(), 1);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2, "the interrupted write left nothing");
    }

    /// A statement waiting for another connection's write lock gives up at its request's
    /// deadline, not after the whole [`LOCK_WAIT`].
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_wait_ends_at_the_deadline() {
        let pool =
            SqlitePool::open(&DatabaseLocation::Memory, "CREATE TABLE t (x INTEGER);").unwrap();
        let holder = pool.take().unwrap();
        holder
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        let started = Instant::now();
        let result = pool
            .with(started + Duration::from_millis(200), |c| {
                c.execute("INSERT INTO t VALUES (2)", [])
            })
            .await;
        let waited = started.elapsed();
        assert!(
            matches!(&result, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy),
            "{result:?}"
        );
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(1),
            "{waited:?}"
        );
        holder.execute_batch("COMMIT").unwrap();
    }
}
