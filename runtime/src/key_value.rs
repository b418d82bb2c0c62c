//! Spin key-value stores (`fermyon:spin/key-value@2.0.0`): embedded in SQLite by default,
//! or placed by the runtime config (`[key_value_store.<label>]`) in another SQLite file, in
//! memory, or on a Redis server ([`redis`]).
//!
//! Every label named in the manifest (and `default`) is a store; labels the runtime config does
//! not place share one SQLite file of the state directory, `key_value.db`. A component opens
//! only the labels in its `key_value_stores`: any other label, known or not, is `access-denied`
//! (as in Spin); `no-such-store` is left for a listed label without a store.

mod redis;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::OptionalExtension;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::app::{AppError, InstanceState};
use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::sqlite_pool::{DatabaseLocation, SqlitePool};

use self::redis::RedisStore;

/// Where a key-value store keeps its data (a runtime config's `[key_value_store.<label>]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// Embedded SQLite (`type = "spin"`): a file, or memory when no `path` is given.
    Embedded(DatabaseLocation),
    /// A Redis server (`type = "redis"`): its `url`, `redis://[user:password@]host[:port][/db]`.
    Redis(String),
}

/// The table of an embedded store file: one row per (store label, key), as in Spin.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (store, key)) WITHOUT ROWID;";

/// One store's backend.
#[derive(Debug, Clone)]
enum Store {
    /// Rows of `spin_key_value` whose `store` is the label.
    Sqlite(Arc<SqlitePool>),
    /// A Redis server's keys.
    Redis(Arc<RedisStore>),
}

/// The application's key-value stores by label (cheap to clone: shared handles).
#[derive(Debug, Clone)]
pub struct KeyValueStores {
    stores: Arc<BTreeMap<String, Store>>,
}

impl KeyValueStores {
    /// Opens a store for each label: where `placed` says, else in `key_value.db` in
    /// `state_dir`. Redis stores connect at their first use. The error names the store.
    pub fn open(
        state_dir: &Path,
        labels: impl IntoIterator<Item = String>,
        placed: &BTreeMap<String, StoreBackend>,
    ) -> Result<Self, AppError> {
        let embedded = |location: DatabaseLocation, label: &str| {
            SqlitePool::open(&location, SCHEMA).map_err(|e| AppError::State {
                path: match location {
                    DatabaseLocation::File(path) => path,
                    DatabaseLocation::Memory => format!("(memory, label `{label}`)").into(),
                },
                what: "key-value store",
                source: e.into(),
            })
        };
        let mut shared = None;
        let mut stores = BTreeMap::new();
        for label in labels {
            let store = match placed.get(&label) {
                Some(StoreBackend::Embedded(location)) => {
                    Store::Sqlite(embedded(location.clone(), &label)?)
                }
                Some(StoreBackend::Redis(url)) => {
                    Store::Redis(Arc::new(RedisStore::new(url).map_err(|e| {
                        AppError::Config(format!(
                            "key-value store `{label}`: invalid Redis url: {e}"
                        ))
                    })?))
                }
                None => {
                    let file = DatabaseLocation::File(state_dir.join("key_value.db"));
                    let pool = match &shared {
                        Some(pool) => Arc::clone(pool),
                        None => shared.insert(embedded(file, &label)?).clone(),
                    };
                    Store::Sqlite(pool)
                }
            };
            stores.insert(label, store);
        }
        Ok(Self {
            stores: Arc::new(stores),
        })
    }
}

impl Capability for KeyValueStores {
    type Component = KeyValue;

    fn configure_app(cx: &AppContext<'_>) -> Result<Self, AppError> {
        let labels = cx.labels(|c| &c.key_value_stores);
        Self::open(&cx.config.state_dir, labels, &cx.config.key_value_stores)
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

    /// Ready unless a Redis store's last check failed (a check runs at most every few
    /// seconds, started by this call; a store not checked yet is not ready).
    fn readiness(&self) -> Result<(), String> {
        for (label, store) in self.stores.iter() {
            if let Store::Redis(redis) = store {
                redis
                    .readiness()
                    .map_err(|e| format!("key-value store `{label}` ({redis}): {e}"))?;
            }
        }
        Ok(())
    }
}

/// What one component may open.
#[derive(Debug, Clone)]
pub struct KeyValue {
    stores: KeyValueStores,
    allowed: Arc<[String]>,
}

/// An open store: the resource behind `key-value.store`.
#[derive(Clone)]
pub struct OpenStore {
    label: String,
    store: Store,
}

/// The `fermyon:spin/key-value` host, borrowed from the instance state.
pub struct KeyValueView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The instance's key-value access.
    pub access: &'a KeyValue,
    /// When the request's deadline passes: store operations still running are interrupted.
    pub deadline: Instant,
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
    /// The open store behind `store`, with the request's deadline.
    fn open_store(&self, store: &Resource<OpenStore>) -> wasmtime::Result<(OpenStore, Instant)> {
        Ok((self.table.get(store)?.clone(), self.deadline))
    }
}

impl OpenStore {
    /// Runs `f`, a read, on the store's SQLite file off the async threads, within `deadline`
    /// (writes go to the file's writer: [`SqlitePool::write`]).
    async fn sqlite<R: Send + 'static>(
        pool: &Arc<SqlitePool>,
        deadline: Instant,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, Error> {
        pool.with(deadline, f).await.map_err(other)
    }

    async fn get(self, key: String, deadline: Instant) -> Result<Option<Vec<u8>>, Error> {
        let label = self.label;
        match self.store {
            Store::Sqlite(pool) => {
                Self::sqlite(&pool, deadline, move |c| {
                    c.prepare_cached(
                        "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    )?
                    .query_row((label, key), |row| row.get(0))
                    .optional()
                })
                .await
            }
            Store::Redis(redis) => redis.get(&key, deadline).await,
        }
    }

    async fn set(self, key: String, value: Vec<u8>, deadline: Instant) -> Result<(), Error> {
        let label = self.label;
        match self.store {
            Store::Sqlite(pool) => pool
                .write(deadline, move |c| {
                    c.prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute((label, key, value))
                    .map(drop)
                })
                .await
                .map_err(other),
            Store::Redis(redis) => redis.set(&key, &value, deadline).await,
        }
    }

    async fn delete(self, key: String, deadline: Instant) -> Result<(), Error> {
        let label = self.label;
        match self.store {
            Store::Sqlite(pool) => pool
                .write(deadline, move |c| {
                    c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                        .execute((label, key))
                        .map(drop)
                })
                .await
                .map_err(other),
            Store::Redis(redis) => redis.delete(&key, deadline).await,
        }
    }

    async fn exists(self, key: String, deadline: Instant) -> Result<bool, Error> {
        let label = self.label;
        match self.store {
            Store::Sqlite(pool) => {
                Self::sqlite(&pool, deadline, move |c| {
                    c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                        .exists((label, key))
                })
                .await
            }
            Store::Redis(redis) => redis.exists(&key, deadline).await,
        }
    }

    async fn keys(self, deadline: Instant) -> Result<Vec<String>, Error> {
        let label = self.label;
        match self.store {
            Store::Sqlite(pool) => {
                Self::sqlite(&pool, deadline, move |c| {
                    c.prepare_cached(
                        "SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key",
                    )?
                    .query_map([label], |row| row.get(0))?
                    .collect()
                })
                .await
            }
            Store::Redis(redis) => redis.keys(deadline).await,
        }
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
        let Some(store) = self.access.stores.stores.get(&label).cloned() else {
            return Ok(Err(Error::NoSuchStore));
        };
        Ok(Ok(self.table.push(OpenStore { label, store })?))
    }

    async fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (open, deadline) = self.open_store(&store)?;
        Ok(open.get(key, deadline).await)
    }

    async fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (open, deadline) = self.open_store(&store)?;
        Ok(open.set(key, value, deadline).await)
    }

    async fn delete(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (open, deadline) = self.open_store(&store)?;
        Ok(open.delete(key, deadline).await)
    }

    async fn exists(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (open, deadline) = self.open_store(&store)?;
        Ok(open.exists(key, deadline).await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let (open, deadline) = self.open_store(&store)?;
        Ok(open.keys(deadline).await)
    }

    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
