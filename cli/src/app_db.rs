//! The app's SQLite database (`<state-dir>/sqlite/default.db` of `vitrine up`), read by the
//! commands that report on what its functions logged (`campaigns ope --db`, `experiments
//! report`). Read-only, so they may run while the app serves.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

/// Opens the database at `path` read-only.
pub fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        bail!("no such file (the database is `<state-dir>/sqlite/default.db`)");
    }
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?)
}

/// The `columns` of the row of `table` whose id is `id`, through `read`; an error names the
/// ids the table has when there is no such row (`no campaign `x` (campaigns: a, b)`), and
/// says so when the table itself is missing. `noun` is one row's name (`campaign`).
pub fn find<T>(
    db: &Connection,
    table: &str,
    noun: &str,
    id: &str,
    columns: &str,
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<T> {
    let found = db
        .query_row(
            &format!("SELECT {columns} FROM {table} WHERE id = ?"),
            [id],
            read,
        )
        .optional()
        .with_context(|| format!("no {table} table here: is this the app's database?"))?;
    if let Some(found) = found {
        return Ok(found);
    }
    let known: Vec<String> = db
        .prepare(&format!("SELECT id FROM {table} ORDER BY id"))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    bail!("no {noun} `{id}` ({table}: {})", known.join(", "))
}
