//! `vitrine campaigns`: `ope` on logged-bandit CSV and Parquet files with their own column
//! names and on the runtime's own log, `simulate`, `apply`, and learning that survives kill -9.

use std::fmt::Write as _;

use crate::commands::{json_output, vitrine};

/// Defines campaign `c` of the app at `addr` (see [`CAMPAIGNS_APP`]).
fn put_campaign_c(addr: &str, definition: &str) {
    let put = crate::commands::http_send(
        addr,
        "PUT",
        "/api/admin/campaigns/c",
        Some("t0k"),
        definition,
    );
    assert!(put.contains(" 200 "), "{put}");
}

/// The campaigns function alone, its admin token `t0k`.
const CAMPAIGNS_APP: &str = "[variables]\nadmin_token = { default = \"t0k\" }\n[[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"campaigns\"\n[component.campaigns]\nsource = \"CAMPAIGNS\"\nsqlite_databases = [\"default\"]\n[component.campaigns.variables]\nadmin_token = \"{{ admin_token }}\"\n";

/// 6,000 decisions: three banners logged with known propensities, rewards depending on the
/// segment; every 500th row without a propensity.
fn write_logs(path: &std::path::Path) {
    let rates = [[0.05, 0.02], [0.02, 0.10], [0.04, 0.04]];
    let (arms, logging) = (["banner-a", "banner-b", "none"], [0.6, 0.2, 0.2]);
    let mut text = String::from("shopper,segment,arm,converted,p\n");
    let mut state: u64 = 42;
    let mut uniform = || {
        // A small LCG: the CLI test needs no statistics, only a fixed, varied input.
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..6_000 {
        let segment = usize::from(uniform() < 0.5);
        let u = uniform();
        let arm = if u < 0.6 {
            0
        } else if u < 0.8 {
            1
        } else {
            2
        };
        let converted = u8::from(uniform() < rates[arm][segment]);
        let p = if i % 500 == 0 {
            String::new()
        } else {
            logging[arm].to_string()
        };
        writeln!(text, "s{i},{segment},{},{converted},{p}", arms[arm]).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn ope_reads_mapped_columns_and_reproduces_the_logging_policy() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("decisions.csv");
    write_logs(&logs);
    let run = |policy: &str, extra: &[&str]| {
        vitrine()
            .args(["campaigns", "ope", "--logs"])
            .arg(&logs)
            .args([
                "--policy",
                policy,
                "--columns",
                "action=arm,reward=converted,propensity=p",
            ])
            .args(["--resamples", "200"])
            .args(extra)
            .output()
            .unwrap()
    };
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The logging policy's estimates are the logged mean reward; rows without a propensity
    // are left out, with a warning.
    let logged = json(run("logging", &["--json"]));
    assert_eq!(logged["rows"], 5_988);
    assert_eq!(
        logged["actions"],
        serde_json::json!(["banner-a", "banner-b", "none"])
    );
    let mean = logged["logged_mean_reward"].as_f64().unwrap();
    for estimator in ["ips", "snips", "dr"] {
        assert!((logged[estimator]["value"].as_f64().unwrap() - mean).abs() < 1e-12);
    }
    assert!(logged["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("12 rows without a propensity"));
    // Always `banner-b` rests on the fifth of rows that showed it.
    let b = json(run("always:banner-b", &["--json", "--features", "segment"]));
    let ess = b["effective_sample_size"].as_f64().unwrap();
    assert!((ess / 5_988.0 - 0.2).abs() < 0.03, "{ess}");
    let ci = b["dr"]["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() < ci[1].as_f64().unwrap());
    // Mistakes are named.
    let out = run("always:banner-z", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("banner-z")
            && stderr.contains("banner-a, banner-b, none"),
        "{stderr}"
    );
    let out = run("greedy", &["--features", "age"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no column `age`"),
        "{stderr}"
    );
}

/// The logs of [`write_logs`] (CSV at `csv`) as a Snappy-compressed Parquet file, the
/// segment as an integer and missing propensities as nulls, as pandas would write them.
fn write_parquet(csv: &std::path::Path, path: &std::path::Path) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let text = std::fs::read_to_string(csv).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let schema = parquet::schema::parser::parse_message_type(
        "message logs { REQUIRED BYTE_ARRAY arm (UTF8); REQUIRED INT32 segment;
                        REQUIRED DOUBLE converted; OPTIONAL DOUBLE p; }",
    )
    .unwrap();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, std::sync::Arc::new(schema), properties.into()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let arms: Vec<ByteArray> = rows.iter().map(|r| r[2].into()).collect();
    let segments: Vec<i32> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    let converted: Vec<f64> = rows.iter().map(|r| r[3].parse().unwrap()).collect();
    let present: Vec<i16> = rows.iter().map(|r| i16::from(!r[4].is_empty())).collect();
    let p: Vec<f64> = rows.iter().filter_map(|r| r[4].parse().ok()).collect();
    write_column::<ByteArrayType>(&mut group, &arms, None);
    write_column::<Int32Type>(&mut group, &segments, None);
    write_column::<DoubleType>(&mut group, &converted, None);
    write_column::<DoubleType>(&mut group, &p, Some(&present));
    group.close().unwrap();
    writer.close().unwrap();
}

/// Writes the row group's next column: its values, and the definition levels of an optional
/// one (0: null).
fn write_column<T: parquet::data_type::DataType>(
    group: &mut parquet::file::writer::SerializedRowGroupWriter<'_, std::fs::File>,
    values: &[T::T],
    levels: Option<&[i16]>,
) {
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<T>()
        .write_batch(values, levels, None)
        .unwrap();
    column.close().unwrap();
}

/// The same logs as Parquet give the same estimates as from CSV, and its errors name the row.
#[test]
fn ope_reads_parquet_logs_as_it_reads_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, parquet) = (dir.path().join("d.csv"), dir.path().join("d.parquet"));
    write_logs(&csv);
    write_parquet(&csv, &parquet);
    let run = |logs: &std::path::Path, columns: &str| {
        let mut command = vitrine();
        command
            .args(["campaigns", "ope", "--json", "--policy", "always:banner-b"])
            .args([
                "--features",
                "segment",
                "--resamples",
                "200",
                "--columns",
                columns,
            ])
            .arg("--logs")
            .arg(logs);
        command
    };
    let columns = "action=arm,reward=converted,propensity=p";
    let from_csv = json_output(&mut run(&csv, columns));
    let from_parquet = json_output(&mut run(&parquet, columns));
    assert_eq!(from_parquet, from_csv);
    assert_eq!(from_parquet["rows"], 5_988);
    // A column that is not a number is named with its row.
    let out = run(&parquet, "action=arm,reward=arm,propensity=p")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("d.parquet: row 2: arm `") && stderr.contains("` is not a number"),
        "{stderr}"
    );
}

/// The cumulative regret `simulate` printed for policy `name`.
fn regret_of(stdout: &str, name: &str) -> f64 {
    let line = (stdout.lines())
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn simulate_prints_and_plots_the_regret_of_three_policies() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("regret.svg");
    let out = vitrine()
        .args(["campaigns", "simulate", "--decisions", "20000", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let regret = |name: &str| regret_of(&stdout, name);
    let (random, thompson, linucb) = (regret("random"), regret("thompson"), regret("linucb"));
    assert!(
        thompson < 0.5 * random && linucb < 0.7 * thompson,
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 3);
    for name in ["random", "thompson", "linucb"] {
        assert!(svg.contains(&format!(">{name}</text>")), "{name}");
    }
    let out = vitrine()
        .args(["campaigns", "simulate", "--decisions", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// What a campaign's policy learned survives `kill -9` of `vitrine up`: decisions and their
/// policy updates are committed together.
#[test]
fn campaign_learning_survives_kill_9() {
    use crate::commands::{http_get_with, http_send, up_with, write_manifest};
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), CAMPAIGNS_APP);
    let state = dir.path().join("state");
    let args = ["--state-dir", state.to_str().unwrap()];
    let (mut child, addr) = up_with(&args, &manifest);
    let definition =
        r#"{"name": "n", "channel": "push", "arms": [{"id": "a", "offer": "o", "message": "m"}]}"#;
    put_campaign_c(&addr, definition);
    for n in 0..5 {
        let decided = http_send(
            &addr,
            "POST",
            "/api/campaigns/decide",
            None,
            &format!(r#"{{"shopper": "s{n}"}}"#),
        );
        let id = decided
            .split("\"decision_id\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        if n < 2 {
            let body =
                format!(r#"{{"event_id": "e{n}", "decision_id": "{id}", "event": "conversion"}}"#);
            assert!(
                http_send(&addr, "POST", "/api/campaigns/feedback", None, &body).contains(" 200 ")
            );
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (mut child, addr) = up_with(&args, &manifest);
    let shown = http_get_with(&addr, "/api/admin/campaigns/c", "t0k");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        shown.contains(r#"{"arm":"a","conversions":2.0,"misses":3.0}"#),
        "{shown}"
    );
}

/// `vitrine campaigns ope --db` evaluates policies on what the campaigns function itself
/// logged: its decisions (with their propensities and features) and their feedback.
#[test]
fn ope_reads_the_runtimes_own_decision_log() {
    use crate::commands::{http_send, up_with, write_manifest};
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), CAMPAIGNS_APP);
    let state = dir.path().join("state");
    let (mut child, addr) = up_with(&["--state-dir", state.to_str().unwrap()], &manifest);
    let definition = r#"{"name": "n", "channel": "push", "policy": "uniform",
        "arms": [{"id": "a", "offer": "o", "message": "m"}, {"id": "b", "offer": "p", "message": "m"}]}"#;
    put_campaign_c(&addr, definition);
    // Arm `a` always converts, `b` never.
    let (mut converted, mut decided) = (0, 0);
    for n in 0..80 {
        let answer = http_send(
            &addr,
            "POST",
            "/api/campaigns/decide",
            None,
            &format!(r#"{{"shopper": "s{n}"}}"#),
        );
        let field = |name: &str| {
            answer
                .split(&format!("\"{name}\":\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_string)
        };
        let (Some(id), Some(arm)) = (field("decision_id"), field("arm")) else {
            panic!("no decision: {answer}");
        };
        decided += 1;
        if arm == "a" {
            converted += 1;
            let body =
                format!(r#"{{"event_id": "e{n}", "decision_id": "{id}", "event": "conversion"}}"#);
            let sent = http_send(&addr, "POST", "/api/campaigns/feedback", None, &body);
            assert!(sent.contains(" 200 "), "{sent}");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let db = state.join("sqlite/default.db");
    let ope = |policy: &str| -> serde_json::Value {
        let mut command = vitrine();
        command
            .args([
                "campaigns",
                "ope",
                "--json",
                "--resamples",
                "200",
                "--campaign",
                "c",
            ])
            .arg("--db")
            .arg(&db)
            .args(["--policy", policy]);
        json_output(&mut command)
    };
    let logging = ope("logging");
    assert_eq!(logging["rows"], decided);
    assert_eq!(logging["actions"], serde_json::json!(["a", "b"]));
    let mean = f64::from(converted) / f64::from(decided);
    assert!((logging["logged_mean_reward"].as_f64().unwrap() - mean).abs() < 1e-9);
    let ci = &logging["ips"]["ci95"];
    assert!(
        ci[0].as_f64().unwrap() <= mean && mean <= ci[1].as_f64().unwrap(),
        "{logging}"
    );
    // Always showing `a` would convert everyone; always `b`, no one.
    assert_eq!(ope("always:a")["snips"]["value"], 1.0);
    assert_eq!(ope("always:b")["snips"]["value"], 0.0);

    // Errors name what is wrong.
    let out = vitrine()
        .args([
            "campaigns",
            "ope",
            "--policy",
            "logging",
            "--campaign",
            "nope",
        ])
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no campaign `nope` (campaigns: c)"),
        "{stderr}"
    );
}

/// `vitrine campaigns apply` puts a file's definitions; applying it again changes nothing,
/// a changed one is a new version, and a refused one names the file, the table and the field.
#[test]
fn apply_defines_campaigns_and_experiments_from_a_toml_file() {
    use crate::commands::{up_with, write_manifest};
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), CAMPAIGNS_APP);
    let (mut child, addr) = up_with(
        &["--state-dir", dir.path().join("state").to_str().unwrap()],
        &manifest,
    );
    let file = dir.path().join("campaigns.toml");
    let write = |offer: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                r#"[campaigns.winter]
name = "Winter sale"
channel = "banner"
policy = "thompson"
start = 2026-01-01T00:00:00Z
[[campaigns.winter.arms]]
id = "a"
offer = "{offer}"
message = "Hi {{shopper}}: {{offer}}"
[[campaigns.winter.arms]]
id = "b"
offer = "free delivery"
message = "{{offer}}"

[experiments.button]
name = "green button"
variants = [{{ id = "control" }}, {{ id = "green" }}]
{extra}"#
            ),
        )
        .unwrap();
    };
    let apply = || {
        vitrine()
            .args(["campaigns", "apply"])
            .arg(&file)
            .args(["--url", &format!("http://{addr}"), "--token", "t0k"])
            .output()
            .unwrap()
    };
    write("5% off", "");
    let first = apply();
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("campaigns.winter: version 1")
            && stdout.contains("experiments.button: stored"),
        "{stdout}"
    );
    let again = String::from_utf8_lossy(&apply().stdout).to_string();
    assert!(
        again.contains("campaigns.winter: unchanged (version 1)"),
        "{again}"
    );
    write("10% off", "");
    let changed = String::from_utf8_lossy(&apply().stdout).to_string();
    assert!(changed.contains("campaigns.winter: version 2"), "{changed}");
    write("10% off", "[campaigns.bad]\nname = \"x\"\nchannel = \"banner\"\narms = [{ id = \"a b\", offer = \"o\", message = \"m\" }]\n");
    let refused = apply();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("campaigns.toml: campaigns.bad: arms[0].id"),
        "{stderr}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `vitrine campaigns simulate --url` runs the scenario through a live app's decide and
/// feedback endpoints: the function's own policies learn, and the contextual one loses least.
#[test]
fn simulate_over_http_drives_the_functions_own_policies() {
    use crate::commands::{up_with, write_manifest};
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), CAMPAIGNS_APP);
    let state = dir.path().join("state");
    let (mut child, addr) = up_with(&["--state-dir", state.to_str().unwrap()], &manifest);
    let plot = dir.path().join("regret.svg");
    let out = vitrine()
        .args([
            "campaigns",
            "simulate",
            "--decisions",
            "4000",
            "--token",
            "t0k",
        ])
        .args(["--url", &format!("http://{addr}"), "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("over HTTP at") && !stdout.contains("warning"),
        "{stdout}"
    );
    let regret = |name: &str| regret_of(&stdout, name);
    let (random, linucb) = (regret("random"), regret("linucb"));
    assert!(random > 100.0, "{stdout}");
    assert!(linucb < 0.7 * random, "{stdout}");
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}
