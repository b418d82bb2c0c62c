//! `vitrine experiments report` on what a running app logged: exposures from the campaigns
//! function, events from the events function.

use serde_json::{json, Value};

use crate::commands::{http_send, json_output, up_with, vitrine, write_manifest};

const APP: &str = "[variables]\nadmin_token = { default = \"t0k\" }\n\
[[trigger.http]]\nroute = \"/api/experiments/...\"\ncomponent = \"campaigns\"\n\
[[trigger.http]]\nroute = \"/api/admin/experiments/...\"\ncomponent = \"campaigns\"\n\
[[trigger.http]]\nroute = \"/api/events\"\ncomponent = \"events\"\n\
[[trigger.http]]\nroute = \"/api/shoppers/...\"\ncomponent = \"events\"\n\
[component.campaigns]\nsource = \"CAMPAIGNS\"\nsqlite_databases = [\"default\"]\n\
[component.campaigns.variables]\nadmin_token = \"{{ admin_token }}\"\n\
[component.events]\nsource = \"EVENTS\"\nsqlite_databases = [\"default\"]\n\
[component.events.variables]\nadmin_token = \"{{ admin_token }}\"\n";

fn ok(response: String) -> Value {
    assert!(response.contains(" 200 "), "{response}");
    serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

#[test]
fn a_report_shows_uplift_with_intervals_and_refuses_a_winner_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), APP);
    let state = dir.path().join("state");
    let (mut child, addr) = up_with(&["--state-dir", state.to_str().unwrap()], &manifest);
    let put = |id: &str, body: Value| {
        http_send(
            &addr,
            "PUT",
            &format!("/api/admin/experiments/{id}"),
            Some("t0k"),
            &body.to_string(),
        )
    };
    ok(put(
        "button",
        json!({"name": "green button", "variants": [{"id": "control"}, {"id": "green"}]}),
    ));
    // A second experiment on the same shoppers with no effect of its own.
    ok(put(
        "aa",
        json!({"name": "A/A", "variants": [{"id": "a"}, {"id": "b"}]}),
    ));

    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (before, after) = (
        at(now - chrono::Duration::days(2)),
        at(now + chrono::Duration::seconds(60)),
    );
    let mut events = Vec::new();
    for i in 0..400 {
        let shopper = format!("s{i}");
        ok(http_send(
            &addr,
            "PUT",
            &format!("/api/shoppers/{shopper}/consent"),
            Some("t0k"),
            r#"{"personalization": true}"#,
        ));
        // How active a shopper was before the experiment (0–3) predicts whether they buy.
        let activity = i % 4;
        for k in 0..activity {
            events.push(json!({"id": format!("pre-{i}-{k}"), "type": "view", "shopper": shopper, "time": before, "product": "p-1", "session": format!("{shopper}-0")}));
        }
        let variant = ok(http_send(
            &addr,
            "POST",
            "/api/experiments/button/assign",
            None,
            &json!({"shopper": shopper}).to_string(),
        ))["variant"]
            .clone();
        ok(http_send(
            &addr,
            "POST",
            "/api/experiments/aa/assign",
            None,
            &json!({"shopper": shopper}).to_string(),
        ));
        // The green button converts one activity level lower.
        let buys = activity + u32::from(variant == "green") >= 3;
        let session = format!("{shopper}-1");
        events.push(json!({"id": format!("post-{i}"), "type": "view", "shopper": shopper, "time": after, "product": "p-1", "session": session}));
        if buys {
            events.push(json!({"id": format!("buy-{i}"), "type": "purchase", "shopper": shopper, "time": after, "product": "p-1", "price": 20.0, "session": session}));
        }
    }
    for batch in events.chunks(500) {
        ok(http_send(
            &addr,
            "POST",
            "/api/events",
            None,
            &json!({"events": batch}).to_string(),
        ));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let db = state.join("sqlite/default.db");
    let plot = dir.path().join("uplift.svg");
    let report = |experiment: &str| -> Value {
        let mut command = vitrine();
        command
            .args([
                "experiments",
                "report",
                "--json",
                "--resamples",
                "300",
                "--experiment",
                experiment,
            ])
            .arg("--db")
            .arg(&db)
            .arg("--plot")
            .arg(&plot);
        json_output(&mut command)
    };
    let button = report("button");
    let shoppers: u64 = (button["variants"].as_array().unwrap().iter())
        .map(|v| v["shoppers"].as_u64().unwrap())
        .sum();
    assert_eq!(shoppers, 400);
    assert!(button["srm_p_value"].as_f64().unwrap() > 0.001, "{button}");
    let metric = |report: &Value, name: &str| -> Value {
        report["comparisons"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap()
            .clone()
    };
    let conversion = metric(&button, "conversion rate");
    assert_eq!(conversion["verdict"], "variant higher", "{conversion}");
    // Control buys at activity 3 (25%), green from 2 (50%).
    let estimate = &conversion["estimate"];
    assert!(
        (estimate["control"].as_f64().unwrap() - 0.25).abs() < 0.06,
        "{estimate}"
    );
    assert!(
        (estimate["variant"].as_f64().unwrap() - 0.5).abs() < 0.06,
        "{estimate}"
    );
    // Pre-period activity explains much of who buys: CUPED narrows the interval.
    let cuped = &conversion["cuped"];
    assert!(
        cuped["variance_reduction"].as_f64().unwrap() > 0.2,
        "{cuped}"
    );
    let width = |e: &Value| {
        e["absolute"]["high"].as_f64().unwrap() - e["absolute"]["low"].as_f64().unwrap()
    };
    assert!(width(&cuped["estimate"]) < width(estimate), "{conversion}");
    let revenue = metric(&button, "revenue per shopper");
    assert_eq!(revenue["method"], "bootstrap");
    assert!(
        (revenue["estimate"]["absolute"]["value"].as_f64().unwrap() - 20.0 * 0.25).abs() < 1.5,
        "{revenue}"
    );
    let per_session = metric(&button, "events per session");
    assert_eq!(per_session["method"], "delta method");
    // Events per pre-period session say who buys, so who has more events per session after.
    assert!(
        per_session["cuped"]["variance_reduction"].as_f64().unwrap() > 0.05,
        "{per_session}"
    );
    assert!(
        width(&per_session["cuped"]["estimate"]) < width(&per_session["estimate"]),
        "{per_session}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("cumulative conversion uplift"),
        "{svg}"
    );

    // No effect of its own: the interval covers 0, and no winner is called.
    let aa = report("aa");
    for name in ["conversion rate", "revenue per shopper"] {
        let m = metric(&aa, name);
        assert_eq!(m["verdict"], "no difference shown", "{m}");
    }

    // The table, and errors that name the problem.
    let out = vitrine()
        .args(["experiments", "report", "--experiment", "button", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("green vs control") && table.contains("with CUPED"),
        "{table}"
    );
    let out = vitrine()
        .args(["experiments", "report", "--experiment", "nope", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no experiment `nope` (experiments: aa, button)"));
}
