//! Importing a user's files: column mapping, labels, numeric attributes, RFC 3339 and integer
//! timestamps, clear errors naming file, line and field, and skip-and-report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vitrine_fraud::import::{import, ImportError, ImportOptions};
use vitrine_fraud::{generate, GenerateConfig};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn mapped(pairs: &[(&str, &str)]) -> ImportOptions {
    ImportOptions {
        columns: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..ImportOptions::default()
    }
}

const MAPPING: &[(&str, &str)] = &[
    ("account_id", "acct"),
    ("accounts.is_laundering", "label"),
    ("source", "payer_id"),
    ("target", "payee_id"),
    ("amount", "amt"),
    ("timestamp", "ts"),
    ("is_fraud", "fraud"),
];

#[test]
fn mapped_columns_labels_attributes_and_both_time_formats() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = write(
        dir.path(),
        "a.csv",
        "acct,label,age_days,risk\nX1,0,100,0.2\nX2,1,5,0.9\nX3,false,300,0.1\n",
    );
    let transactions = write(
        dir.path(),
        "t.csv",
        "payer_id,payee_id,amt,ts,fraud\nX1,X2,100.5,2026-02-01T10:00:00Z,0\nX2,X9,99,3,true\nX3,X1,12,2026-02-01T09:00:00+02:00,0\n",
    );
    let data = import(Some(&accounts), &transactions, &mapped(MAPPING)).unwrap();
    assert_eq!(data.attribute_names, ["age_days", "risk"]);
    assert_eq!(data.attributes[1], vec![5.0, 0.9]);
    let labels: Vec<(&str, u8)> = data
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.is_laundering))
        .collect();
    // X9 appears only as a payee: added, unlabelled, and counted.
    assert_eq!(labels, [("X1", 0), ("X2", 1), ("X3", 0), ("X9", 0)]);
    assert_eq!(data.added_accounts, 1);
    let times: Vec<(&str, &str, u8)> = data
        .transactions
        .iter()
        .map(|t| (t.source.as_str(), t.timestamp.as_str(), t.is_fraud))
        .collect();
    // Time step 3 of one day each, and +02:00 normalised to UTC; sorted by time.
    assert_eq!(
        times,
        [
            ("X2", "2026-01-04T00:00:00Z", 1),
            ("X3", "2026-02-01T07:00:00Z", 0),
            ("X1", "2026-02-01T10:00:00Z", 0)
        ]
    );
    // Written in the documented format, attributes after the documented columns.
    let out = dir.path().join("out");
    data.write_csv(&out).unwrap();
    let text = std::fs::read_to_string(out.join("accounts.csv")).unwrap();
    assert!(text.starts_with("account_id,customer_id,kind,opened_at,is_laundering,typology,age_days,risk\nX1,,,,0,,100,0.2\n"), "{text}");
}

#[test]
fn malformed_rows_name_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("payer_id,payee_id,amt,ts\nX1,X2,5,2026-01-01T00:00:00Z\nX1,X2,abc,2026-01-01T00:00:00Z\n", 3, "amount (amt)", "`abc` is not a non-negative number"),
        ("payer_id,payee_id,amt,ts\nX1,X2,-4,2026-01-01T00:00:00Z\n", 2, "amount (amt)", "non-negative"),
        ("payer_id,payee_id,amt,ts\nX1,X2,4,yesterday\n", 2, "timestamp (ts)", "neither RFC 3339 nor an integer"),
        ("payer_id,payee_id,amt,ts\n,X2,4,1\n", 2, "source (payer_id)", "is empty"),
        ("payer_id,payee_id,amt,ts,fraud\nX1,X2,4,1,maybe\n", 2, "is_fraud (fraud)", "not a label"),
        ("payer_id,payee_id,amt\nX1,X2\n", 0, "", "no column `ts`"),
    ];
    for (text, line, field, problem) in cases {
        let path = write(dir.path(), "t.csv", text);
        let err = import(None, &path, &mapped(MAPPING)).unwrap_err();
        match &err {
            ImportError::Row(row) => {
                assert_eq!((row.line, row.field.as_str()), (line, field), "{err}");
                assert!(row.problem.contains(problem), "{err}");
                assert!(
                    err.to_string()
                        .starts_with(&format!("{}:{line}: field `{field}`", path.display())),
                    "{err}"
                );
            }
            other => assert!(line == 0 && other.to_string().contains(problem), "{other}"),
        }
    }
    let accounts = write(dir.path(), "a.csv", "acct,risk\nX1,0.5\nX1,0.7\nX2,high\n");
    let transactions = write(dir.path(), "t.csv", "payer_id,payee_id,amt,ts\nX1,X2,4,1\n");
    let err = import(Some(&accounts), &transactions, &mapped(MAPPING))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.csv:3: field `account_id (acct)`: account `X1` appears twice"),
        "{err}"
    );
}

#[test]
fn skip_mode_keeps_the_good_rows_and_reports_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let transactions = write(
        dir.path(),
        "t.csv",
        "payer_id,payee_id,amt,ts\nX1,X2,5,1\nX1,X2,abc,2\nX2,X3,7,2\nX3,X1,8,soon\nX3,X4,9,3\n",
    );
    let options = ImportOptions {
        skip_bad_rows: true,
        ..mapped(MAPPING)
    };
    let data = import(None, &transactions, &options).unwrap();
    assert_eq!(data.transactions.len(), 3);
    let lines: Vec<u64> = data.skipped.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 5]);
}

#[test]
fn generated_files_import_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let bank = generate(&GenerateConfig::new(300, 9), |_| {}).unwrap();
    bank.write_csv(dir.path()).unwrap();
    let data = import(
        Some(&dir.path().join("accounts.csv")),
        &dir.path().join("transactions.csv"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(data.transactions, bank.transactions);
    assert_eq!(data.accounts.len(), bank.accounts.len());
    for (got, want) in data.accounts.iter().zip(&bank.accounts) {
        assert_eq!(got, want);
    }
    assert!(data.skipped.is_empty() && data.added_accounts == 0);
    assert!(data.attribute_names.is_empty());
}

/// An extra account column that alone separates the laundering accounts (the label under
/// another name) is left out and reported; one that merely correlates is kept.
#[test]
fn a_column_that_gives_the_label_away_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("account_id,is_laundering,sar_filed,age_days\n");
    for i in 0..20 {
        let laundering = u8::from(i % 4 == 0);
        // `sar_filed` is the label; `age_days` overlaps between the two kinds.
        text += &format!("A{i},{laundering},{laundering},{}\n", 10 + (i * 37) % 50);
    }
    let accounts = write(dir.path(), "accounts.csv", &text);
    let transactions = write(
        dir.path(),
        "transactions.csv",
        "source,target,amount,timestamp\nA0,A1,10,2026-02-01T10:00:00Z\n",
    );
    let data = import(Some(&accounts), &transactions, &ImportOptions::default()).unwrap();
    assert_eq!(data.leaking_attributes, ["sar_filed"]);
    assert_eq!(data.attribute_names, ["age_days"]);
    assert!(data.attributes.iter().take(20).all(|a| a.len() == 1));
}
