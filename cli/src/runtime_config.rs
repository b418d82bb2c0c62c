//! The runtime config file (`vitrine up --runtime-config-file FILE`): settings that are not the
//! app's, in Spin's format. Where key-value stores live (`[key_value_store.<label>]`, `type =
//! "spin"` with an optional `path`, or `type = "redis"` with a `url`), where SQLite databases
//! live (`[sqlite_database.<label>]`, `type = "spin"` with an optional `path`), and, our own,
//! where `wasi:nn` inference goes (`[wasi_nn]`) and where picture-enhancement jobs are queued
//! (`[image_jobs]`, `nats = "nats://…"`: a NATS JetStream stream). As in Spin, a `spin` store without a `path`
//! is in memory, a relative key-value `path` is relative to this file's directory and a
//! relative database `path` to the current directory. Anything else is an error naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use vitrine_runtime::{DatabaseLocation, StoreBackend};

/// A runtime config file, read and checked.
#[derive(Debug, Default)]
pub struct RuntimeConfigFile {
    /// The `[wasi_nn]` table, if any.
    pub wasi_nn: Option<NnConfig>,
    /// Key-value stores by label.
    pub key_value_stores: BTreeMap<String, StoreBackend>,
    /// SQLite databases by label.
    pub sqlite_databases: BTreeMap<String, DatabaseLocation>,
    /// The `[image_jobs]` table, if any.
    pub image_jobs: Option<ImageJobsConfig>,
}

/// The `[image_jobs]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageJobsConfig {
    /// A NATS server with JetStream (`nats://host:port`): the catalogue webhook's picture
    /// jobs are relayed there and worked from there (docs/images.md).
    pub nats: String,
}

/// The `[wasi_nn]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NnConfig {
    /// Remote worker URLs (`http://host:port`); when set, no local worker is started.
    #[serde(default)]
    pub workers: Vec<String>,
    /// Deadline of one inference call, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    key_value_store: BTreeMap<String, Typed>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, Typed>,
    wasi_nn: Option<NnConfig>,
    image_jobs: Option<ImageJobsConfig>,
}

/// A `[<table>.<label>]` entry: its `type`, and the rest for that type to read.
#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    rest: toml::Table,
}

/// `type = "spin"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Embedded {
    path: Option<PathBuf>,
}

/// `type = "redis"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redis {
    url: String,
}

impl RuntimeConfigFile {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        let cwd = std::env::current_dir().context("cannot find the current directory")?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &cwd.join(dir), &cwd).with_context(|| {
            format!(
                "invalid runtime config {} (supported: [key_value_store.<label>] of type \"spin\" or \"redis\", [sqlite_database.<label>] of type \"spin\", [wasi_nn], [image_jobs])",
                path.display()
            )
        })
    }

    /// What the file places, as Spin summarizes it at startup: `[key_value_store.default:
    /// redis], [sqlite_database.orders: spin]`; `None` when it places nothing.
    pub fn summary(&self) -> Option<String> {
        let kind = |backend: &StoreBackend| match backend {
            StoreBackend::Embedded(_) => "spin",
            StoreBackend::Redis(_) => "redis",
        };
        let tables: Vec<String> = (self.key_value_stores.iter())
            .map(|(label, b)| format!("[key_value_store.{label}: {}]", kind(b)))
            .chain(
                self.sqlite_databases
                    .keys()
                    .map(|label| format!("[sqlite_database.{label}: spin]")),
            )
            .collect();
        (!tables.is_empty()).then(|| tables.join(", "))
    }

    /// Parses `text`; relative key-value paths are resolved against `file_dir`, database
    /// paths against `cwd`.
    fn parse(text: &str, file_dir: &Path, cwd: &Path) -> Result<Self> {
        let raw: Raw = toml::from_str(text)?;
        let mut config = RuntimeConfigFile {
            wasi_nn: raw.wasi_nn,
            image_jobs: raw.image_jobs,
            ..Self::default()
        };
        for (label, entry) in raw.key_value_store {
            let backend = match entry.kind.as_str() {
                "spin" => StoreBackend::Embedded(location(
                    entry.read::<Embedded>("key_value_store", &label)?.path,
                    file_dir,
                )),
                "redis" => StoreBackend::Redis(entry.read::<Redis>("key_value_store", &label)?.url),
                other => bail!(
                    "[key_value_store.{label}]: unknown type \"{other}\" (supported: \"spin\", \"redis\")"
                ),
            };
            config.key_value_stores.insert(label, backend);
        }
        for (label, entry) in raw.sqlite_database {
            let location = match entry.kind.as_str() {
                "spin" => location(entry.read::<Embedded>("sqlite_database", &label)?.path, cwd),
                other => bail!(
                    "[sqlite_database.{label}]: unknown type \"{other}\" (supported: \"spin\")"
                ),
            };
            config.sqlite_databases.insert(label, location);
        }
        Ok(config)
    }
}

impl Typed {
    /// The entry's settings for its type; the error names the table.
    fn read<T: serde::de::DeserializeOwned>(self, table: &str, label: &str) -> Result<T> {
        let kind = self.kind;
        toml::Value::Table(self.rest)
            .try_into()
            .with_context(|| format!("[{table}.{label}] (type \"{kind}\")"))
    }
}

/// A `spin` store's place: `path` resolved against `base`, or memory without one.
fn location(path: Option<PathBuf>, base: &Path) -> DatabaseLocation {
    match path {
        Some(path) => DatabaseLocation::File(base.join(path)),
        None => DatabaseLocation::Memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfigFile> {
        RuntimeConfigFile::parse(text, Path::new("/etc/vitrine"), Path::new("/work"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("an error"))
    }

    #[test]
    fn reads_spin_stores_and_databases_with_spins_path_rules() {
        let config = parse(
            r#"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379/2"
            [key_value_store.cache]
            type = "spin"
            [key_value_store.carts]
            type = "spin"
            path = "carts.db"
            [key_value_store.absolute]
            type = "spin"
            path = "/var/lib/kv.db"
            [sqlite_database.orders]
            type = "spin"
            path = "data/orders.db"
            [sqlite_database.scratch]
            type = "spin"
            [wasi_nn]
            workers = ["http://10.0.0.5:8000"]
            "#,
        )
        .unwrap();
        let kv = &config.key_value_stores;
        assert_eq!(
            kv["default"],
            StoreBackend::Redis("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            kv["cache"],
            StoreBackend::Embedded(DatabaseLocation::Memory)
        );
        assert_eq!(
            kv["carts"],
            StoreBackend::Embedded(DatabaseLocation::File("/etc/vitrine/carts.db".into()))
        );
        assert_eq!(
            kv["absolute"],
            StoreBackend::Embedded(DatabaseLocation::File("/var/lib/kv.db".into()))
        );
        let db = &config.sqlite_databases;
        assert_eq!(
            db["orders"],
            DatabaseLocation::File("/work/data/orders.db".into())
        );
        assert_eq!(db["scratch"], DatabaseLocation::Memory);
        assert_eq!(
            config.summary().unwrap(),
            "[key_value_store.absolute: spin], [key_value_store.cache: spin], [key_value_store.carts: spin], [key_value_store.default: redis], [sqlite_database.orders: spin], [sqlite_database.scratch: spin]"
        );
        assert_eq!(RuntimeConfigFile::default().summary(), None);
        assert_eq!(config.wasi_nn.unwrap().workers, ["http://10.0.0.5:8000"]);
    }

    #[test]
    fn unknown_tables_types_and_fields_are_named() {
        assert!(error("[llm_compute]\ntype = \"spin\"\n").contains("llm_compute"));
        assert!(error("state_dir = \"/x\"\n").contains("state_dir"));
        let e = error("[key_value_store.cache]\ntype = \"memcached\"\n");
        assert!(
            e.contains("[key_value_store.cache]") && e.contains("\"memcached\""),
            "{e}"
        );
        let e = error("[sqlite_database.orders]\ntype = \"libsql\"\nurl = \"https://x\"\n");
        assert!(
            e.contains("[sqlite_database.orders]") && e.contains("\"libsql\""),
            "{e}"
        );
        let e = error("[key_value_store.cache]\ntype = \"redis\"\n");
        assert!(
            e.contains("[key_value_store.cache]") && e.contains("url"),
            "{e}"
        );
        let e = error(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://x\"\npassword = \"p\"\n",
        );
        assert!(
            e.contains("[key_value_store.cache]") && e.contains("password"),
            "{e}"
        );
        let e = error("[sqlite_database.orders]\npath = \"x.db\"\n");
        assert!(e.contains("type"), "{e}");
        let e = error("[wasi_nn]\nworker = []\n");
        assert!(e.contains("worker"), "{e}");
    }
}
