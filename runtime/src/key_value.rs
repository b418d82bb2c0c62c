//! Spin key-value stores (`fermyon:spin/key-value@2.0.0`), embedded in one SQLite file of the
//! state directory.
//!
//! Every label named in the manifest (and `default`) is a store. A component opens only the
//! labels in its `key_value_stores`: any other label, known or not, is `access-denied` (as in
//! Spin); `no-such-store` is left for a listed label without a store.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rusqlite::OptionalExtension;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::sqlite_pool::SqlitePool;

/// The application's key-value stores (cheap to clone: shared handles).
#[derive(Debug, Clone)]
pub struct KeyValueStores {
    pool: Arc<SqlitePool>,
    labels: Arc<BTreeSet<String>>,
}

impl KeyValueStores {
    /// Opens the embedded database `key_value.db` in `state_dir` for the given labels.
    pub fn open(state_dir: &Path, labels: BTreeSet<String>) -> rusqlite::Result<Self> {
        let pool = SqlitePool::open(
            &state_dir.join("key_value.db"),
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                PRIMARY KEY (store, key)) WITHOUT ROWID;",
        )?;
        Ok(Self {
            pool,
            labels: Arc::new(labels),
        })
    }
}

impl Capability for KeyValueStores {
    type Component = KeyValue;

    fn configure_app(cx: &AppContext<'_>) -> Result<Self, AppError> {
        Self::open(&cx.config.state_dir, cx.labels(|c| &c.key_value_stores)).map_err(|e| {
            AppError::State {
                path: cx.config.state_dir.clone(),
                what: "key-value store",
                source: e.into(),
            }
        })
    }

    fn configure_component(
        &self,
        component: &Component,
        _cx: &AppContext<'_>,
    ) -> Result<KeyValue, String> {
        Ok(KeyValue {
            stores: self.clone(),
            allowed: component.key_value_stores.as_slice().into(),
        })
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        fn view(s: &mut InstanceState) -> KeyValueView<'_> {
            let parts = s.parts::<KeyValueStores>();
            KeyValueView {
                table: parts.table,
                access: parts.component,
                deadline: parts.deadline,
            }
        }
        key_value::add_to_linker::<_, KeyValueHost>(linker, view)
    }
}

/// What one component may open.
#[derive(Debug, Clone)]
pub struct KeyValue {
    stores: KeyValueStores,
    allowed: Arc<[String]>,
}

/// An open store: the resource behind `key-value.store`.
pub struct OpenStore {
    label: String,
}

/// The `fermyon:spin/key-value` host, borrowed from the instance state.
pub struct KeyValueView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The instance's key-value access.
    pub access: &'a KeyValue,
    /// When the request's deadline passes: store operations still running are interrupted.
    pub deadline: std::time::Instant,
}

/// Marks [`KeyValueView`] as the data the generated bindings work on.
pub struct KeyValueHost;

impl HasData for KeyValueHost {
    type Data<'a> = KeyValueView<'a>;
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl KeyValueView<'_> {
    fn label(&self, store: &Resource<OpenStore>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.label.clone())
    }

    /// Runs `f` against the store database off the async threads, within the request's deadline.
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<R, Error>> + Send + 'static {
        let pool = self.access.stores.pool.clone();
        let deadline = self.deadline;
        async move { pool.with(deadline, f).await.map_err(other) }
    }
}

impl key_value::Host for KeyValueView<'_> {}

impl key_value::HostStore for KeyValueView<'_> {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        // Spin's order: a label the component does not list is denied whether or not a
        // store of that name exists.
        if !self.access.allowed.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if !self.access.stores.labels.contains(&label) {
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(OpenStore { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.label(&store)?;
        Ok(self
            .run(move |c| {
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row((label, key), |row| row.get(0))
                    .optional()
            })
            .await)
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.label(&store)?;
        Ok(self
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute((label, key, value))
                .map(drop)
            })
            .await)
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.label(&store)?;
        Ok(self
            .run(move |c| {
                c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute((label, key))
                    .map(drop)
            })
            .await)
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.label(&store)?;
        Ok(self
            .run(move |c| {
                c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .exists((label, key))
            })
            .await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.label(&store)?;
        Ok(self
            .run(move |c| {
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                    .query_map([label], |row| row.get(0))?
                    .collect()
            })
            .await)
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
