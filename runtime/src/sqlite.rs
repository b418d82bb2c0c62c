//! Spin SQLite databases (`fermyon:spin/sqlite@2.0.0`), one embedded file per label: in the
//! state directory, or where the runtime config places it (a file, or memory).
//!
//! Every label named in the manifest (and `default`) is a database. A component opens only the
//! labels in its `sqlite_databases`: any other label, known or not, is `access-denied` (as in
//! Spin); `no-such-database` is left for a listed label without a database. A guest connection keeps one SQLite connection, so transactions work;
//! one left open is rolled back when the connection is dropped. A statement still running when
//! the request's deadline passes, or when its instance is dropped, is interrupted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::sqlite_pool::{run_inline, run_interruptible, DatabaseLocation, SqlitePool};

/// The application's SQLite databases by label (cheap to clone: a shared handle).
#[derive(Debug, Clone)]
pub struct Databases {
    pools: Arc<BTreeMap<String, Arc<SqlitePool>>>,
}

impl Databases {
    /// Opens each label's database: where `placed` says, else `sqlite/<label>.db` in
    /// `state_dir`. The error names the database that could not be opened.
    pub fn open(
        state_dir: &Path,
        labels: impl IntoIterator<Item = String>,
        placed: &BTreeMap<String, DatabaseLocation>,
    ) -> Result<Self, AppError> {
        let mut pools = BTreeMap::new();
        for label in labels {
            let location = placed.get(&label).cloned().unwrap_or_else(|| {
                DatabaseLocation::File(state_dir.join("sqlite").join(format!("{label}.db")))
            });
            let pool = SqlitePool::open(&location, "").map_err(|e| AppError::State {
                path: match &location {
                    DatabaseLocation::File(path) => path.clone(),
                    DatabaseLocation::Memory => format!("(memory, label `{label}`)").into(),
                },
                what: "sqlite database",
                source: e.into(),
            })?;
            pools.insert(label, pool);
        }
        Ok(Self {
            pools: Arc::new(pools),
        })
    }
}

impl Capability for Databases {
    type Component = Sqlite;

    fn configure_app(cx: &AppContext<'_>) -> Result<Self, AppError> {
        let labels = cx.labels(|c| &c.sqlite_databases);
        Self::open(&cx.config.state_dir, labels, &cx.config.sqlite_databases)
    }

    fn configure_component(
        &self,
        component: &Component,
        _cx: &AppContext<'_>,
    ) -> Result<Sqlite, String> {
        Ok(Sqlite {
            databases: self.clone(),
            allowed: component.sqlite_databases.as_slice().into(),
        })
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> SqliteView<'_> {
            let parts = s.parts::<Databases>();
            SqliteView {
                table: parts.table,
                access: parts.component,
                deadline: parts.deadline,
            }
        }
        sqlite::add_to_linker::<_, SqliteHost>(linker, view)
    }
}

/// What one component may open.
#[derive(Debug, Clone)]
pub struct Sqlite {
    databases: Databases,
    allowed: Arc<[String]>,
}

/// An open guest connection: the resource behind `sqlite.connection`.
pub struct GuestConnection {
    pool: Arc<SqlitePool>,
    conn: Option<rusqlite::Connection>,
}

impl Drop for GuestConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}

/// The `fermyon:spin/sqlite` host, borrowed from the instance state.
pub struct SqliteView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The instance's database access.
    pub access: &'a Sqlite,
    /// When the request's deadline passes: a statement still running is interrupted.
    pub deadline: std::time::Instant,
}

/// Marks [`SqliteView`] as the data the generated bindings work on.
pub struct SqliteHost;

impl HasData for SqliteHost {
    type Data<'a> = SqliteView<'a>;
}

fn io_error(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

/// Runs one statement with positional parameters and collects every row.
fn execute(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> rusqlite::Result<QueryResult> {
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let params: Vec<SqlValue> = parameters
        .into_iter()
        .map(|v| match v {
            Value::Integer(i) => SqlValue::Integer(i),
            Value::Real(r) => SqlValue::Real(r),
            Value::Text(t) => SqlValue::Text(t),
            Value::Blob(b) => SqlValue::Blob(b),
            Value::Null => SqlValue::Null,
        })
        .collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len())
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(r) => Value::Real(r),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                })
            })
            .collect::<rusqlite::Result<_>>()?;
        out.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows: out })
}

/// A statement's error as the guest sees it.
fn guest_error(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
            Error::DatabaseFull
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            io_error("statement interrupted: the request's deadline passed")
        }
        e => io_error(e),
    }
}

impl sqlite::Host for SqliteView<'_> {}

impl sqlite::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        // Spin's order: a label the component does not list is denied whether or not a
        // database of that name exists.
        if !self.access.allowed.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(pool) = self.access.databases.pools.get(&database) else {
            return Ok(Err(Error::NoSuchDatabase));
        };
        let pool = pool.clone();
        // An idle connection is taken here; opening a new one is file I/O, done off the
        // async threads.
        let taken = match pool.take_idle() {
            Some(conn) => Ok(conn),
            None => {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || pool.take()).await?
            }
        };
        let conn = match taken {
            Ok(conn) => conn,
            Err(e) => return Ok(Err(io_error(e))),
        };
        Ok(Ok(self.table.push(GuestConnection {
            pool,
            conn: Some(conn),
        })?))
    }

    async fn execute(
        &mut self,
        connection: Resource<GuestConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let guest = self.table.get_mut(&connection)?;
        let Some(conn) = guest.conn.take() else {
            return Ok(Err(Error::InvalidConnection));
        };
        let pool = guest.pool.clone();
        // A read outside a transaction runs here if it is quick; a write outside a transaction
        // on the database's writer thread; anything else, or a read that is not quick, on the
        // blocking pool. (An interrupted statement may end the transaction it is in.) A
        // statement that does not compile (`no such table`, a syntax error) fails here, as it
        // would there; unless the schema was locked, which the pool waits out.
        let prepared = conn
            .prepare_cached(&statement)
            .map(|s| (s.readonly(), conn.is_autocommit()));
        let quick = match prepared {
            Ok((true, true)) => run_inline(&conn, self.deadline, |conn| {
                execute(conn, &statement, parameters.clone())
            }),
            Ok((false, true)) => {
                let written = pool
                    .write_on(conn, self.deadline, move |conn| {
                        execute(conn, &statement, parameters)
                    })
                    .await;
                return match written {
                    Ok((conn, result)) => {
                        self.table.get_mut(&connection)?.conn = Some(conn);
                        Ok(result.map_err(guest_error))
                    }
                    Err(e) => Ok(Err(guest_error(e))),
                };
            }
            Ok(_) => None,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            Err(e) => Some(Err(e)),
        };
        let (conn, result) = match quick {
            Some(result) => (conn, result),
            None => {
                run_interruptible(conn, self.deadline, move |conn| {
                    execute(conn, &statement, parameters)
                })
                .await?
            }
        };
        self.table.get_mut(&connection)?.conn = Some(conn);
        Ok(result.map_err(guest_error))
    }

    async fn drop(&mut self, connection: Resource<GuestConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
