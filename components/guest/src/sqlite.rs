//! Tables created on first use, so no request pays for schema statements, and transactions.

use spin_sdk::sqlite::{Connection, Error};

/// Runs `f`; if a table or a column is missing (first use of the database, or a database
/// from before a column was added), runs the `schema` statements — `CREATE … IF NOT EXISTS`,
/// and `ALTER TABLE … ADD COLUMN` for columns added later, whose failure when the column
/// exists is ignored — and runs `f` again.
pub fn with_schema<T>(
    db: &Connection,
    schema: &[&str],
    f: impl Fn(&Connection) -> Result<T, Error>,
) -> Result<T, Error> {
    match f(db) {
        Err(Error::Io(message))
            if message.contains("no such table") || message.contains("no such column") =>
        {
            for statement in schema {
                match db.execute(statement, &[]) {
                    Err(_) if statement.trim_start().starts_with("ALTER TABLE") => {}
                    other => drop(other?),
                }
            }
            f(db)
        }
        other => other,
    }
}

/// Runs `f` inside `BEGIN IMMEDIATE` … `COMMIT`, rolling back if it fails (the error is
/// `f`'s, whatever the rollback does).
pub fn transaction<T>(db: &Connection, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    db.execute("BEGIN IMMEDIATE", &[])?;
    match f() {
        Ok(value) => db.execute("COMMIT", &[]).map(|_| value),
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}
