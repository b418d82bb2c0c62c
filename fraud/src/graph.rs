//! The temporal transaction graph: accounts and merchants as nodes, transactions as timed,
//! directed edges with features, updated one transaction at a time, sampled without looking into
//! the future, and persisted in SQLite so a restart loses nothing.
//!
//! In memory each node keeps its outgoing and incoming edge ids in time order, so "the `k` most
//! recent edges before `t`" is a binary search plus a slice. [`TemporalGraph::memory_bytes`]
//! counts what the structure holds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};

use crate::schema::Transaction;

/// One transaction edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    /// Paying node.
    pub source: u32,
    /// Receiving node.
    pub target: u32,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Amount.
    pub amount: f32,
    /// Channel code (the index in [`CHANNELS`]).
    pub channel: u8,
}

/// What a query transaction may see of the graph: the edges earlier in time and, at the same
/// time, those added before it — file order in training, arrival order when live. (Data with
/// integer time steps has many transactions at one time; they see each other in that order.)
/// Each node's edge lists are kept in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    /// The query's time.
    pub time: i64,
    /// The query's edge id: same-time edges with a smaller id come before it.
    pub edge: u32,
}

impl Before {
    /// Strictly before `time`.
    pub fn time(time: i64) -> Self {
        Self { time, edge: 0 }
    }

    /// Everything up to `time` that the graph already holds (a query not added yet).
    pub fn arrived(time: i64) -> Self {
        Self {
            time,
            edge: u32::MAX,
        }
    }
}

/// Channel codes of [`Edge::channel`].
pub const CHANNELS: &[&str] = &[
    "card_present",
    "online",
    "mobile",
    "transfer",
    "salary",
    "other",
];

/// The code of a channel name (`other` for unknown ones).
pub fn channel_code(name: &str) -> u8 {
    CHANNELS
        .iter()
        .position(|c| *c == name)
        .unwrap_or(CHANNELS.len() - 1) as u8
}

/// A transaction as the graph and the features see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Paying account.
    pub source: String,
    /// Receiving account or merchant.
    pub target: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Amount.
    pub amount: f64,
    /// Channel code (the index in [`CHANNELS`]).
    pub channel: u8,
    /// Device used, or empty.
    pub device: String,
}

impl Event {
    /// The event of a transaction record. Its timestamp must be RFC 3339 (as generated and
    /// imported files are); one that is not counts as the epoch.
    pub fn from_transaction(t: &Transaction) -> Self {
        Self {
            source: t.source.clone(),
            target: t.target.clone(),
            time: chrono::DateTime::parse_from_rfc3339(&t.timestamp)
                .map(|d| d.timestamp())
                .unwrap_or(0),
            amount: t.amount,
            channel: channel_code(&t.channel),
            device: t.device_id.clone(),
        }
    }

    fn params<'a>(
        &'a self,
        key: Option<&'a str>,
        outcome: Option<&'a str>,
    ) -> impl rusqlite::Params + 'a {
        (
            &self.source,
            &self.target,
            self.time,
            self.amount,
            self.channel,
            &self.device,
            key,
            outcome,
        )
    }
}

const INSERT: &str = "INSERT INTO edges (source, target, time, amount, channel, device, key, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// A transaction added with [`TemporalGraph::insert_unsaved`], to persist with
/// [`TemporalGraph::save`]: with a key (its transaction id), the graph remembers `outcome` and
/// never takes that key twice.
pub(crate) struct Unsaved<'a> {
    pub event: &'a Event,
    pub key: Option<&'a str>,
    pub outcome: Option<String>,
}

/// Why the graph could not be opened or updated.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The SQLite file failed.
    #[error("graph store: {0}")]
    Store(#[from] rusqlite::Error),
}

/// A neighbourhood sampled around seed nodes, as of a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subgraph {
    /// Nodes, seeds first; indices below refer to this list.
    pub nodes: Vec<u32>,
    /// Edges as (index of source in `nodes`, index of target in `nodes`, edge id).
    pub edges: Vec<(usize, usize, u32)>,
}

/// One node's edges in one direction, in time order (at one time, in the order added), with
/// their times beside them so that finding what a query sees reads one contiguous array.
#[derive(Default)]
struct EdgeList {
    ids: Vec<u32>,
    times: Vec<i64>,
}

impl EdgeList {
    /// Adds edge `id` at `time`, after every edge of that time or earlier (transactions may
    /// arrive slightly out of order).
    fn insert(&mut self, id: u32, time: i64) {
        let at = self.times.partition_point(|t| *t <= time);
        self.ids.insert(at, id);
        self.times.insert(at, time);
    }

    /// How many edges `before` sees: those of earlier times, and at its time those with a
    /// smaller id.
    fn seen(&self, before: Before) -> usize {
        let from = self.times.partition_point(|t| *t < before.time);
        let to = from + self.times[from..].partition_point(|t| *t == before.time);
        from + self.ids[from..to].partition_point(|e| *e < before.edge)
    }

    /// The `limit` most recent edges `before` sees.
    fn recent(&self, before: Before, limit: usize) -> &[u32] {
        let end = self.seen(before);
        &self.ids[end.saturating_sub(limit)..end]
    }
}

/// The in-memory graph, optionally backed by a SQLite file.
pub struct TemporalGraph {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    edges: Vec<Edge>,
    outgoing: Vec<EdgeList>,
    incoming: Vec<EdgeList>,
    /// The SQLite file, behind a mutex so that a graph can be sampled from several threads.
    store: Option<Mutex<Connection>>,
    /// Outcomes of keyed transactions when there is no store (the store keeps its own).
    outcomes: HashMap<String, String>,
}

impl Default for TemporalGraph {
    fn default() -> Self {
        Self::new()
    }
}

impl TemporalGraph {
    /// An empty graph kept only in memory.
    pub fn new() -> Self {
        Self {
            ids: HashMap::new(),
            names: Vec::new(),
            edges: Vec::new(),
            outgoing: Vec::new(),
            incoming: Vec::new(),
            store: None,
            outcomes: HashMap::new(),
        }
    }

    /// Opens (or creates) the graph persisted at `path`, loading every stored transaction in
    /// arrival order and handing each to `replay` (to rebuild state derived from them).
    pub fn open(path: &Path, mut replay: impl FnMut(&Event)) -> Result<Self, GraphError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS edges (
                id INTEGER PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL,
                time INTEGER NOT NULL, amount REAL NOT NULL, channel INTEGER NOT NULL,
                device TEXT NOT NULL DEFAULT '', key TEXT, outcome TEXT);",
        )?;
        // Graphs written before transactions had keys gain the two columns.
        let keyed = conn
            .prepare("SELECT 1 FROM pragma_table_info('edges') WHERE name = 'key'")?
            .exists([])?;
        if !keyed {
            conn.execute_batch(
                "ALTER TABLE edges ADD COLUMN key TEXT; ALTER TABLE edges ADD COLUMN outcome TEXT;",
            )?;
        }
        conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS edges_key ON edges (key);")?;
        let mut graph = Self::new();
        {
            let mut rows = conn.prepare(
                "SELECT source, target, time, amount, channel, device FROM edges ORDER BY id",
            )?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let event = Event {
                    source: row.get(0)?,
                    target: row.get(1)?,
                    time: row.get(2)?,
                    amount: row.get(3)?,
                    channel: row.get(4)?,
                    device: row.get(5)?,
                };
                graph.insert(&event);
                replay(&event);
            }
        }
        graph.store = Some(Mutex::new(conn));
        Ok(graph)
    }

    /// Loads the graph persisted at `path` into memory (as [`TemporalGraph::open`] does), without
    /// keeping the file: later additions stay in memory.
    pub fn read(path: &Path, replay: impl FnMut(&Event)) -> Result<Self, GraphError> {
        let mut graph = Self::open(path, replay)?;
        if let Some(conn) = graph.store.take() {
            let conn = conn.into_inner().unwrap_or_else(PoisonError::into_inner);
            let mut rows = conn.prepare(
                "SELECT key, outcome FROM edges WHERE key IS NOT NULL AND outcome IS NOT NULL",
            )?;
            graph.outcomes = rows
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
        }
        Ok(graph)
    }

    /// The SQLite file, if the graph has one.
    fn store(&mut self) -> Option<&mut Connection> {
        (self.store.as_mut()).map(|m| m.get_mut().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a transaction (and its nodes), persisting it first when the graph has a store.
    /// Returns the edge id.
    pub fn add(&mut self, event: &Event) -> Result<u32, GraphError> {
        if let Some(conn) = self.store() {
            conn.prepare_cached(INSERT)?
                .execute(event.params(None, None))?;
        }
        Ok(self.insert(event))
    }

    /// The outcome recorded with the transaction of `key`, if one was saved with that key.
    pub(crate) fn outcome(&self, key: &str) -> Result<Option<String>, GraphError> {
        match &self.store {
            Some(conn) => Ok((conn.lock().unwrap_or_else(PoisonError::into_inner))
                .prepare_cached("SELECT outcome FROM edges WHERE key = ?1")?
                .query_row([key], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten()),
            None => Ok(self.outcomes.get(key).cloned()),
        }
    }

    /// Adds a transaction in memory only (sampling sees it at once); [`TemporalGraph::save`]
    /// persists it.
    pub(crate) fn insert_unsaved(&mut self, event: &Event) -> u32 {
        self.insert(event)
    }

    /// Persists transactions added with [`TemporalGraph::insert_unsaved`], in the order they
    /// were added, in one store transaction: all of them or none.
    pub(crate) fn save(&mut self, added: &[Unsaved<'_>]) -> Result<(), GraphError> {
        match self.store() {
            Some(conn) => {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare_cached(INSERT)?;
                    for a in added {
                        insert.execute(a.event.params(a.key, a.outcome.as_deref()))?;
                    }
                }
                tx.commit()?;
            }
            None => {
                for a in added {
                    if let (Some(key), Some(outcome)) = (a.key, &a.outcome) {
                        self.outcomes.insert(key.to_string(), outcome.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds many transactions in one store transaction.
    pub fn add_all(&mut self, events: &[Event]) -> Result<(), GraphError> {
        if let Some(conn) = self.store() {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(INSERT)?;
                for event in events {
                    insert.execute(event.params(None, None))?;
                }
            }
            tx.commit()?;
        }
        for event in events {
            self.insert(event);
        }
        Ok(())
    }

    fn node(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        self.outgoing.push(EdgeList::default());
        self.incoming.push(EdgeList::default());
        id
    }

    fn insert(&mut self, event: &Event) -> u32 {
        let (s, t) = (self.node(&event.source), self.node(&event.target));
        let (id, time) = (self.edges.len() as u32, event.time);
        self.edges.push(Edge {
            source: s,
            target: t,
            time,
            amount: event.amount as f32,
            channel: event.channel,
        });
        self.outgoing[s as usize].insert(id, time);
        self.incoming[t as usize].insert(id, time);
        id
    }

    /// The node id of `name`, if the graph has seen it.
    pub fn node_id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of node `id`.
    pub fn node_name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Edge `id`.
    pub fn edge(&self, id: u32) -> &Edge {
        &self.edges[id as usize]
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.names.len()
    }

    /// Number of edges.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// The `limit` most recent edges of `node` before `before`, outgoing then incoming.
    pub fn recent_edges(&self, node: u32, before: Before, limit: usize) -> (&[u32], &[u32]) {
        (
            self.outgoing[node as usize].recent(before, limit),
            self.incoming[node as usize].recent(before, limit),
        )
    }

    /// How many outgoing and incoming edges `node` had before `before`.
    pub fn degrees(&self, node: u32, before: Before) -> (usize, usize) {
        (
            self.outgoing[node as usize].seen(before),
            self.incoming[node as usize].seen(before),
        )
    }

    /// Samples `fanouts.len()` hops around `seeds` as of `before`: at each hop every frontier
    /// node contributes its `fanouts[hop]` most recent outgoing and incoming edges before it
    /// (never an edge from the future).
    pub fn sample(&self, seeds: &[u32], before: Before, fanouts: &[usize]) -> Subgraph {
        let mut sub = Subgraph::default();
        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut add = |sub: &mut Subgraph, node: u32| -> (usize, bool) {
            if let Some(i) = index.get(&node) {
                return (*i, false);
            }
            index.insert(node, sub.nodes.len());
            sub.nodes.push(node);
            (sub.nodes.len() - 1, true)
        };
        let mut frontier = Vec::new();
        for seed in seeds {
            if add(&mut sub, *seed).1 {
                frontier.push(*seed);
            }
        }
        let mut seen_edges = std::collections::HashSet::new();
        for fanout in fanouts {
            let mut next = Vec::new();
            for node in frontier {
                let (out, inc) = self.recent_edges(node, before, *fanout);
                for e in out.iter().chain(inc) {
                    if !seen_edges.insert(*e) {
                        continue;
                    }
                    let edge = &self.edges[*e as usize];
                    let (s, new_s) = add(&mut sub, edge.source);
                    let (t, new_t) = add(&mut sub, edge.target);
                    sub.edges.push((s, t, *e));
                    if new_s {
                        next.push(edge.source);
                    }
                    if new_t {
                        next.push(edge.target);
                    }
                }
            }
            frontier = next;
        }
        sub
    }

    /// Bytes held by the in-memory structure (edges, adjacency lists, node names and index).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let lists: usize = self
            .outgoing
            .iter()
            .chain(&self.incoming)
            .map(|l| {
                l.ids.capacity() * size_of::<u32>()
                    + l.times.capacity() * size_of::<i64>()
                    + size_of::<EdgeList>()
            })
            .sum();
        let names: usize = self
            .names
            .iter()
            .map(|n| n.capacity() + size_of::<String>())
            .sum();
        // The id index holds a second copy of each name plus the hash table's slots.
        let index = self.ids.capacity() * (size_of::<String>() + size_of::<u32>() + 1) + names;
        self.edges.capacity() * size_of::<Edge>() + lists + names + index
    }
}
