//! The events function end to end: batches validated as a whole with the index and field
//! named, idempotent by event id, consent deciding what is linked to a shopper, erasure, and
//! the bearer token on personal data.

use serde_json::{json, Value};
use vitrine_tests::{manifest, post_json, TestApp, ADMIN_TOKEN};

fn app_manifest() -> String {
    manifest(&app_body())
}

/// The events component, unresolved (placeholders for the guests).
fn app_body() -> String {
    format!(
        r#"
[variables]
admin_token = {{ default = "{ADMIN_TOKEN}", secret = true }}
[[trigger.http]]
route = "/api/events"
component = "events"
[[trigger.http]]
route = "/api/shoppers/..."
component = "events"
[component.events]
source = "EVENTS"
sqlite_databases = ["default"]
[component.events.variables]
admin_token = "{{{{ admin_token }}}}"
"#
    )
}

/// Calls a `/api/shoppers` endpoint with the admin token (or `token`).
async fn shopper(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    vitrine_tests::shopper_api(app, method, path, body, token).await
}

fn view(id: &str, shopper: &str, product: &str) -> Value {
    json!({ "id": id, "type": "view", "shopper": shopper, "time": "2026-12-01T10:00:00Z", "product": product })
}

#[tokio::test]
async fn events_are_stored_once_with_consent_and_erased_on_request() -> anyhow::Result<()> {
    let app = TestApp::start(&app_manifest()).await?;
    let events = format!("{}/api/events", app.url);
    let (status, _) = shopper(
        &app,
        reqwest::Method::PUT,
        "ann/consent",
        Some(json!({ "personalization": true })),
        None,
    )
    .await?;
    assert_eq!(status, 200);

    // A batch: ann (consented) and bob (not); 200 with what happened.
    let batch = json!({ "events": [
        view("e1", "ann", "p-00001"),
        { "id": "e2", "type": "purchase", "shopper": "ann", "time": "2026-12-01T10:05:00+01:00",
          "product": "p-00001", "quantity": 2, "price": 49.5, "context": { "occasion": "wedding" } },
        { "id": "e3", "type": "search", "shopper": "bob", "time": "2026-12-01T11:00:00Z", "query": "linen dress" },
    ]});
    let (status, body) = post_json(&events, &batch).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "accepted": 3, "duplicates": 0, "anonymous": 1 })
    );

    // The same batch again: nothing new (a retry is harmless).
    let (status, body) = post_json(&events, &batch).await?;
    assert_eq!(
        (status, &body),
        (
            200,
            &json!({ "accepted": 0, "duplicates": 3, "anonymous": 0 })
        )
    );

    // A known id with other content: 409 naming it, and the new event beside it is not stored.
    let (status, body) = post_json(
        &events,
        &json!({ "events": [view("e4", "ann", "p-00004"), view("e1", "ann", "p-00009")] }),
    )
    .await?;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("events[1].id: 'e1'"),
        "{body}"
    );

    // A bad event anywhere refuses the whole batch, naming the index and the field.
    let (status, body) = post_json(&events, &json!({ "events": [view("e5", "ann", "p-1"), { "id": "e6", "type": "view", "shopper": "ann", "time": "2026-12-01T10:00:00Z" }] })).await?;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "events[1]: product is required for view");

    // What is stored about ann: her two events, newest first; bob has nothing linked to him.
    let (status, stored) = shopper(&app, reqwest::Method::GET, "ann/events", None, None).await?;
    assert_eq!(status, 200, "{stored}");
    let ids: Vec<&str> = stored["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e1", "e2"], "{stored}");
    assert_eq!(stored["events"][1]["time"], "2026-12-01T09:05:00Z");
    assert_eq!(
        stored["events"][1]["context"],
        json!({ "occasion": "wedding" })
    );
    let (_, bobs) = shopper(&app, reqwest::Method::GET, "bob/events", None, None).await?;
    assert_eq!(bobs["events"], json!([]));

    // Personal data needs the token.
    for token in ["", "wrong"] {
        let (status, body) =
            shopper(&app, reqwest::Method::GET, "ann/events", None, Some(token)).await?;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _) = shopper(&app, reqwest::Method::DELETE, "ann", None, Some("wrong")).await?;
    assert_eq!(status, 401);

    // Erasure: her events and consent are gone; erasing again erases nothing.
    let (status, body) = shopper(&app, reqwest::Method::DELETE, "ann", None, None).await?;
    assert_eq!(
        (status, &body),
        (
            200,
            &json!({ "shopper": "ann", "erased_events": 2, "erased_campaign_decisions": 0 })
        )
    );
    let (_, stored) = shopper(&app, reqwest::Method::GET, "ann/events", None, None).await?;
    assert_eq!(stored["events"], json!([]));
    let (_, consent) = shopper(&app, reqwest::Method::GET, "ann/consent", None, None).await?;
    assert_eq!(consent["personalization"], false);
    let (_, again) = shopper(&app, reqwest::Method::DELETE, "ann", None, None).await?;
    assert_eq!(again["erased_events"], 0);

    // Wrong methods and bodies are named.
    let get = reqwest::get(&events).await?;
    assert_eq!(
        (get.status().as_u16(), get.headers()["allow"].to_str()?),
        (405, "POST")
    );
    let (status, _) = shopper(
        &app,
        reqwest::Method::PUT,
        "ann/consent",
        Some(json!({ "personalization": "yes" })),
        None,
    )
    .await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn a_profile_follows_what_the_shopper_views_and_buys() -> anyhow::Result<()> {
    let text = app_body().replace(
        "[component.events]",
        "[[trigger.http]]\nroute = \"/api/products/...\"\ncomponent = \"catalog\"\n[component.catalog]\nsource = \"CATALOG\"\nsqlite_databases = [\"default\"]\n[component.events]",
    );
    let app = TestApp::start(&manifest(&text)).await?;
    let api = format!("{}/api/products", app.url);
    // Before any request to the catalogue: the profile creates it, and is empty.
    shopper(
        &app,
        reqwest::Method::PUT,
        "ann/consent",
        Some(json!({ "personalization": true })),
        None,
    )
    .await?;
    let (status, body) = shopper(&app, reqwest::Method::GET, "ann/profile", None, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 0, "{body}");
    assert_eq!(body["summary"], "No product events yet.", "{body}");

    let (_, minimal) =
        vitrine_tests::get_json(&format!("{api}?colour=black&style=minimalist&limit=6")).await?;
    let (_, other) =
        vitrine_tests::get_json(&format!("{api}?colour=red&style=romantic&limit=6")).await?;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (minimal, other) = (ids(&minimal), ids(&other));
    assert!(minimal.len() >= 4 && other.len() == 6);
    // Long ago: many red romantic views. Lately: black minimalist views and purchases.
    let mut events = Vec::new();
    for (i, p) in other.iter().enumerate() {
        // 8 views each: more weight than the recent events, were it not for the decay.
        for k in 0..8 {
            events.push(json!({ "id": format!("old-{i}-{k}"), "type": "view", "shopper": "ann", "time": "2026-06-01T10:00:00Z", "product": p }));
        }
    }
    for (i, p) in minimal.iter().enumerate() {
        events.push(json!({ "id": format!("new-v-{i}"), "type": "view", "shopper": "ann", "time": "2026-12-01T10:00:00Z", "product": p }));
        if i < 3 {
            events.push(json!({ "id": format!("new-p-{i}"), "type": "purchase", "shopper": "ann", "time": "2026-12-01T11:00:00Z", "product": p }));
        }
    }
    let (status, body) = post_json(
        &format!("{}/api/events", app.url),
        &json!({ "events": events }),
    )
    .await?;
    assert_eq!(status, 200, "{body}");

    let (status, profile) = shopper(&app, reqwest::Method::GET, "ann/profile", None, None).await?;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["affinities"]["colour"][0]["value"], "black",
        "{profile}"
    );
    assert_eq!(
        profile["affinities"]["style"][0]["value"], "minimalist",
        "{profile}"
    );
    let shares: f64 = profile["affinities"]["colour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["affinity"].as_f64().unwrap())
        .sum();
    assert!(shares <= 1.0 + 1e-9, "{profile}");
    assert!(
        profile["summary"].as_str().unwrap().contains("black"),
        "{profile}"
    );
    assert_eq!(profile["events"], events.len());

    // No consent, no profile; erasure takes it away.
    let (status, _) = shopper(&app, reqwest::Method::GET, "bob/profile", None, None).await?;
    assert_eq!(status, 404);
    shopper(&app, reqwest::Method::DELETE, "ann", None, None).await?;
    let (status, _) = shopper(&app, reqwest::Method::GET, "ann/profile", None, None).await?;
    assert_eq!(status, 404);
    Ok(())
}
