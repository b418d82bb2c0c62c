//! The generator: reproducible from its seed, every typology planted, ground truth consistent
//! between transactions and accounts, realistic shape, and the CSV files as documented.

use std::collections::{BTreeMap, BTreeSet};

use vitrine_fraud::schema::TYPOLOGIES;
use vitrine_fraud::{generate, Dataset, GenerateConfig};

fn bank(accounts: usize, seed: u64) -> Dataset {
    generate(&GenerateConfig::new(accounts, seed), |_| {}).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_bank_and_another_seed_another() {
    let a = bank(1000, 42);
    let b = bank(1000, 42);
    assert_eq!(a.transactions, b.transactions);
    assert_eq!(a.accounts, b.accounts);
    assert_eq!(a.devices, b.devices);
    let c = bank(1000, 43);
    assert_ne!(a.transactions, c.transactions);
}

#[test]
fn every_typology_is_planted_and_labelled_consistently() {
    let data = bank(3000, 7);
    let by_id: BTreeMap<&str, _> = data
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a))
        .collect();
    let planted: BTreeSet<&str> = data
        .transactions
        .iter()
        .filter(|t| t.is_fraud == 1)
        .map(|t| t.typology.as_str())
        .collect();
    for typology in TYPOLOGIES {
        assert!(planted.contains(typology), "no {typology} transactions");
    }
    for t in &data.transactions {
        assert_eq!(t.is_fraud == 1, !t.typology.is_empty(), "{t:?}");
        assert_eq!(t.is_fraud == 1, !t.pattern_id.is_empty(), "{t:?}");
        let laundering = !matches!(
            t.typology.as_str(),
            "" | "card_testing" | "account_takeover" | "mule_ring"
        );
        if laundering {
            // Both ends of a laundering transfer are laundering accounts.
            assert_eq!(by_id[t.source.as_str()].is_laundering, 1, "{t:?}");
            assert_eq!(by_id[t.target.as_str()].is_laundering, 1, "{t:?}");
        }
        if t.typology == "account_takeover" {
            // The victim is not a launderer; the money goes to a mule.
            assert_eq!(by_id[t.target.as_str()].typology, "mule_ring", "{t:?}");
            assert!(!t.device_id.is_empty());
        }
        if t.typology == "card_testing" {
            assert!(t.target.starts_with('M') && !t.card_id.is_empty(), "{t:?}");
        }
    }
    // Mules share devices: some device is used by several customers.
    let mut users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for d in &data.devices {
        users
            .entry(&d.device_id)
            .or_default()
            .insert(&d.customer_id);
    }
    assert!(
        users.values().any(|u| u.len() >= 3),
        "no device shared within a mule ring"
    );
    // Laundering and fraud stay rare, as in real data.
    let fraud = data.transactions.iter().filter(|t| t.is_fraud == 1).count() as f64;
    let share = fraud / data.transactions.len() as f64;
    assert!(share > 0.0005 && share < 0.02, "fraud share {share}");
}

#[test]
fn normal_behaviour_has_a_realistic_shape() {
    let data = bank(2000, 1);
    let mut merchant_degree: BTreeMap<&str, usize> = BTreeMap::new();
    for t in data
        .transactions
        .iter()
        .filter(|t| t.target.starts_with('M'))
    {
        *merchant_degree.entry(&t.target).or_default() += 1;
    }
    let mut degrees: Vec<usize> = merchant_degree.values().copied().collect();
    degrees.sort();
    let (median, max) = (degrees[degrees.len() / 2], degrees[degrees.len() - 1]);
    assert!(
        max > 20 * median,
        "merchant degrees are not heavy-tailed: max {max}, median {median}"
    );
    // Time-ordered, inside the window, with quiet nights and busy afternoons.
    assert!(data
        .transactions
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(data
        .transactions
        .first()
        .unwrap()
        .timestamp
        .starts_with("2026-01-01"));
    assert!(data.transactions.last().unwrap().timestamp.as_str() < "2026-04-01");
    let hour =
        |t: &&vitrine_fraud::schema::Transaction| t.timestamp[11..13].parse::<u32>().unwrap();
    let card: Vec<_> = data
        .transactions
        .iter()
        .filter(|t| t.channel == "card_present")
        .collect();
    let night = card.iter().filter(|t| hour(t) < 5).count();
    let evening = card.iter().filter(|t| (17..22).contains(&hour(t))).count();
    assert!(
        evening > 10 * night,
        "no daily rhythm: {night} at night, {evening} in the evening"
    );
    // Salaries recur monthly from a few employers.
    let salaries: Vec<_> = data
        .transactions
        .iter()
        .filter(|t| t.channel == "salary")
        .collect();
    let employers: BTreeSet<&str> = salaries.iter().map(|t| t.source.as_str()).collect();
    assert!(
        salaries.len() > 1000 && employers.len() < salaries.len() / 20,
        "{} salaries from {} employers",
        salaries.len(),
        employers.len()
    );
    // No account transacts before it was opened.
    let opened: BTreeMap<&str, &str> = data
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.opened_at.as_str()))
        .collect();
    assert!(data
        .transactions
        .iter()
        .all(|t| opened[t.source.as_str()] <= t.timestamp.as_str()));
}

#[test]
fn csv_files_hold_every_record_with_a_header() {
    let data = bank(500, 5);
    let dir = tempfile::tempdir().unwrap();
    data.write_csv(dir.path()).unwrap();
    let rows = |file: &str| {
        let mut reader = csv::Reader::from_path(dir.path().join(file)).unwrap();
        let header = reader.headers().unwrap().clone();
        (header, reader.records().count())
    };
    let (header, count) = rows("transactions.csv");
    assert_eq!(count, data.transactions.len());
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "transaction_id",
            "timestamp",
            "source",
            "target",
            "amount",
            "currency",
            "channel",
            "merchant_category",
            "card_id",
            "device_id",
            "is_fraud",
            "typology",
            "pattern_id"
        ]
    );
    assert_eq!(rows("accounts.csv").1, data.accounts.len());
    for file in ["customers.csv", "cards.csv", "devices.csv", "merchants.csv"] {
        assert!(rows(file).1 > 0, "{file} is empty");
    }
}

#[test]
fn impossible_settings_are_refused() {
    assert!(vitrine_fraud::Profile::parse("lumpy")
        .unwrap_err()
        .to_string()
        .contains("structuring, blended or varied"));
    let err = generate(&GenerateConfig::new(10, 1), |_| {}).unwrap_err();
    assert!(err.to_string().contains("at least 100"), "{err}");
    let short = GenerateConfig {
        days: 3,
        ..GenerateConfig::new(500, 1)
    };
    assert!(generate(&short, |_| {})
        .unwrap_err()
        .to_string()
        .contains("--days"));
}

/// The blended profile is another bank: laundering at everyday amounts and by app as well as
/// by transfer, legitimate look-alikes of its shapes, and laundering accounts left unlabelled.
#[test]
fn the_blended_profile_hides_laundering_among_look_alikes() {
    let config = GenerateConfig {
        profile: vitrine_fraud::Profile::Blended,
        ..GenerateConfig::new(3000, 8)
    };
    let blended = generate(&config, |_| {}).unwrap();
    let structuring = bank(3000, 8);
    let laundering_amounts = |bank: &Dataset| -> Vec<f64> {
        let mut amounts: Vec<f64> = (bank.transactions.iter())
            .filter(|t| t.is_fraud == 1 && !t.pattern_id.is_empty())
            .filter(|t| {
                !matches!(
                    t.typology.as_str(),
                    "card_testing" | "account_takeover" | "mule_ring"
                )
            })
            .map(|t| t.amount)
            .collect();
        amounts.sort_by(f64::total_cmp);
        amounts
    };
    let (s, b) = (
        laundering_amounts(&structuring),
        laundering_amounts(&blended),
    );
    assert!(
        s[s.len() - 1] < 9_900.0 && s[s.len() / 2] > 5_000.0,
        "structuring under 9,900"
    );
    let median = b[b.len() / 2];
    assert!(
        (200.0..2_000.0).contains(&median),
        "blended median {median}"
    );
    let channels: std::collections::HashSet<&str> = (blended.transactions.iter())
        .filter(|t| t.typology == "cycle")
        .map(|t| t.channel.as_str())
        .collect();
    assert!(
        channels.contains("mobile") && channels.contains("transfer"),
        "{channels:?}"
    );
    // Label noise: accounts that send laundering transfers but are not labelled.
    let labelled = vitrine_fraud::schema::laundering_ids(&blended.accounts);
    let unlabelled_senders: std::collections::HashSet<&str> = (blended.transactions.iter())
        .filter(|t| t.typology == "fan_out" || t.typology == "stack")
        .map(|t| t.source.as_str())
        .filter(|s| !labelled.contains(s))
        .collect();
    assert!(
        !unlabelled_senders.is_empty(),
        "some laundering accounts are unlabelled"
    );
    // Legitimate reciprocity: unlabelled pairs paying each other both ways by app.
    let mobile: std::collections::HashSet<(&str, &str)> = (blended.transactions.iter())
        .filter(|t| t.is_fraud == 0 && t.channel == "mobile" && t.target.starts_with('A'))
        .map(|t| (t.source.as_str(), t.target.as_str()))
        .collect();
    let circles = |bank: &Dataset| {
        let edges: std::collections::HashSet<(&str, &str)> = (bank.transactions.iter())
            .filter(|t| t.is_fraud == 0 && t.target.starts_with('A'))
            .map(|t| (t.source.as_str(), t.target.as_str()))
            .collect();
        // Directed 3-cycles among normal transfers, counted per edge.
        edges
            .iter()
            .filter(|(a, b)| {
                edges
                    .iter()
                    .any(|(x, c)| x == b && edges.contains(&(*c, *a)) && c != a)
            })
            .count()
    };
    assert!(mobile.len() > 1000);
    assert!(
        // The same seed gives the same normal activity; the circles come on top of it.
        circles(&blended) > circles(&structuring) + 30,
        "legitimate cycles: blended {}, structuring {}",
        circles(&blended),
        circles(&structuring)
    );
}

/// The varied profile draws each laundering pattern in one style or the other: some patterns
/// structure under 10,000 by bank transfer, others move everyday amounts by app as well; and it
/// keeps the blended customers' look-alikes and label noise.
#[test]
fn the_varied_profile_mixes_both_styles_pattern_by_pattern() {
    let config = GenerateConfig {
        profile: vitrine_fraud::Profile::Varied,
        ..GenerateConfig::new(6000, 8)
    };
    let varied = generate(&config, |_| {}).unwrap();
    let mut patterns: std::collections::HashMap<&str, Vec<(f64, &str)>> = Default::default();
    for t in &varied.transactions {
        // Patterns whose every amount is drawn afresh (no hop-by-hop decay).
        let laundering = ["fan_in", "fan_out", "bipartite"];
        if laundering.contains(&t.typology.as_str()) {
            patterns
                .entry(t.pattern_id.as_str())
                .or_default()
                .push((t.amount, t.channel.as_str()));
        }
    }
    let structuring = |txs: &[(f64, &str)]| {
        txs.iter()
            .all(|(a, c)| (8_000.0..9_900.0).contains(a) && *c == "transfer")
    };
    let styled = patterns.values().filter(|p| structuring(p)).count();
    let everyday = (patterns.values())
        .filter(|p| p.iter().any(|(a, c)| *a < 8_000.0 || *c == "mobile"))
        .count();
    assert!(
        styled >= 2 && everyday >= 2 && styled + everyday == patterns.len(),
        "{styled} structuring and {everyday} everyday patterns of {}",
        patterns.len()
    );
    let labelled = vitrine_fraud::schema::laundering_ids(&varied.accounts);
    assert!(
        (varied.transactions.iter())
            .filter(|t| t.typology == "fan_out" || t.typology == "stack")
            .any(|t| !labelled.contains(t.source.as_str())),
        "some laundering accounts are unlabelled"
    );
    let structuring_bank = bank(6000, 8);
    assert!(
        varied.transactions.len() > structuring_bank.transactions.len() + 1000,
        "look-alikes on top of the same normal activity"
    );
}
