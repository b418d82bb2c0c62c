//! The temporal graph: time-ordered adjacency, sampling that never sees the future, fan-out
//! limits, and persistence across a restart.

use vitrine_fraud::graph::{Before, Event, TemporalGraph};
use vitrine_fraud::{generate, GenerateConfig};

fn event(source: &str, target: &str, time: i64, amount: f64, channel: u8) -> Event {
    Event {
        source: source.into(),
        target: target.into(),
        time,
        amount,
        channel,
        device: String::new(),
    }
}

fn small() -> TemporalGraph {
    let mut g = TemporalGraph::new();
    let edges = [
        ("a", "b", 10),
        ("b", "c", 20),
        ("a", "c", 30),
        ("c", "d", 40),
        ("a", "b", 5),
        ("d", "a", 50),
    ];
    for (s, t, time) in edges {
        g.add(&event(s, t, time, 1.0, 0)).unwrap();
    }
    g
}

#[test]
fn recent_edges_are_time_ordered_even_when_added_out_of_order() {
    let g = small();
    let a = g.node_id("a").unwrap();
    let (out, inc) = g.recent_edges(a, Before::time(100), 10);
    let times: Vec<i64> = out.iter().map(|e| g.edge(*e).time).collect();
    assert_eq!(times, [5, 10, 30]);
    assert_eq!(inc.len(), 1);
    // Strictly before the given time, and only the most recent `limit`.
    let (out, _) = g.recent_edges(a, Before::time(30), 1);
    assert_eq!(
        out.iter().map(|e| g.edge(*e).time).collect::<Vec<_>>(),
        [10]
    );
}

#[test]
fn sampling_respects_time_hops_and_fanout() {
    let g = small();
    let a = g.node_id("a").unwrap();
    // As of t=25: a's edges at 5 and 10 (to b), then b's edge at 20 (to c) on the second hop.
    let sub = g.sample(&[a], Before::time(25), &[10, 10]);
    let names: Vec<&str> = sub.nodes.iter().map(|n| g.node_name(*n)).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(sub.edges.iter().all(|(_, _, e)| g.edge(*e).time < 25));
    assert_eq!(sub.edges.len(), 3);
    // One hop only: c is not reached.
    assert_eq!(g.sample(&[a], Before::time(25), &[10]).nodes.len(), 2);
    // Fan-out 1: only the most recent edge per node and hop.
    let sub = g.sample(&[a], Before::time(100), &[1]);
    assert_eq!(
        sub.edges.len(),
        2,
        "a's latest outgoing and latest incoming edge"
    );
}

#[test]
fn no_sampled_edge_comes_from_the_future_on_a_generated_bank() {
    let bank = generate(&GenerateConfig::new(500, 3), |_| {}).unwrap();
    let mut g = TemporalGraph::new();
    let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp();
    let events: Vec<Event> = bank
        .transactions
        .iter()
        .map(Event::from_transaction)
        .collect();
    g.add_all(&events).unwrap();
    assert_eq!(g.edge_count(), bank.transactions.len());
    for (i, t) in bank.transactions.iter().enumerate().step_by(997) {
        let at = time(&t.timestamp);
        let seed = g.node_id(&t.source).unwrap();
        let sub = g.sample(&[seed], Before::time(at), &[8, 4]);
        assert!(
            sub.edges.iter().all(|(_, _, e)| g.edge(*e).time < at),
            "future edge for transaction {i}"
        );
        // Per node and hop at most 8 (+8 incoming) edges on the first hop.
        assert!(
            sub.edges.len() <= 16 + sub.nodes.len() * 8,
            "{} edges",
            sub.edges.len()
        );
    }
    let per_edge = g.memory_bytes() as f64 / g.edge_count() as f64;
    assert!(
        per_edge > 20.0 && per_edge < 200.0,
        "{per_edge} bytes per edge"
    );
}

#[test]
fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.db");
    let before = {
        let mut g = TemporalGraph::open(&path, |_| {}).unwrap();
        g.add(&event("a", "b", 10, 5.5, 3)).unwrap();
        g.add_all(&[event("b", "c", 20, 6.0, 1), event("c", "a", 15, 7.0, 2)])
            .unwrap();
        let a = g.node_id("a").unwrap();
        g.sample(&[a], Before::time(100), &[5, 5])
            .edges
            .iter()
            .map(|(_, _, e)| *g.edge(*e))
            .collect::<Vec<_>>()
    };
    let mut replayed = Vec::new();
    let g = TemporalGraph::open(&path, |e| replayed.push(e.clone())).unwrap();
    // Replay hands back every transaction in arrival order, device included.
    assert_eq!(
        replayed.iter().map(|e| e.time).collect::<Vec<_>>(),
        [10, 20, 15]
    );
    assert_eq!(replayed[0], event("a", "b", 10, 5.5, 3));
    assert_eq!((g.node_count(), g.edge_count()), (3, 3));
    let a = g.node_id("a").unwrap();
    let after: Vec<_> = g
        .sample(&[a], Before::time(100), &[5, 5])
        .edges
        .iter()
        .map(|(_, _, e)| *g.edge(*e))
        .collect();
    assert_eq!(before, after);
    assert_eq!(g.edge(0).amount, 5.5);
}

/// Transactions at one time (integer time steps) see those before them in order — by edge id
/// in training, by arrival when live — and never the ones after.
#[test]
fn same_time_transactions_see_the_earlier_ones_in_order() {
    let mut g = TemporalGraph::new();
    for (s, t) in [("a", "b"), ("b", "c"), ("c", "a")] {
        g.add(&event(s, t, 100, 1.0, 0)).unwrap();
    }
    let b = g.node_id("b").unwrap();
    // The second transaction (edge 1, b → c) sees the first (a → b), not itself or the third.
    let sub = g.sample(&[b], Before { time: 100, edge: 1 }, &[5]);
    let seen: Vec<u32> = sub.edges.iter().map(|(_, _, e)| *e).collect();
    assert_eq!(seen, [0]);
    assert_eq!(g.degrees(b, Before { time: 100, edge: 1 }), (0, 1));
    // Strictly before the time: nothing; live, everything that has arrived.
    assert!(g.sample(&[b], Before::time(100), &[5]).edges.is_empty());
    assert_eq!(g.degrees(b, Before::arrived(100)), (1, 1));
}
