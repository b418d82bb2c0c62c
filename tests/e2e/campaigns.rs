//! Campaigns over HTTP: definitions through the admin API, decisions with logged
//! propensities, feedback, and a policy that learns from it.

use serde_json::{json, Value};
use vitrine_tests::{get_json, post_json, shop_manifest, shopper_api, TestApp, ADMIN_TOKEN};

async fn put_campaign(
    app: &TestApp,
    id: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .put(format!("{}/api/admin/campaigns/{id}", app.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// [`winter`] with no holdout: every shopper may see it.
fn for_everyone(policy: &str) -> Value {
    let mut campaign = winter(policy);
    campaign["holdout"] = json!(0);
    campaign
}

/// The reason of each decision of a decide answer (null for a shown arm).
fn reasons(answer: &Value) -> Vec<Value> {
    (answer["decisions"].as_array().unwrap().iter())
        .map(|d| d["reason"].clone())
        .collect()
}

/// `GET /api/admin/campaigns/{id}` (which also folds what the campaign learned).
async fn show_campaign(app: &TestApp, id: &str) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/admin/campaigns/{id}", app.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// Records `shopper`'s consent to personalization (so their events are linked to them).
async fn consent_to_personalization(app: &TestApp, shopper: &str) -> anyhow::Result<()> {
    let path = format!("{shopper}/consent");
    let body = json!({"personalization": true});
    let (status, answer) = shopper_api(app, reqwest::Method::PUT, &path, Some(body), None).await?;
    anyhow::ensure!(status == 200, "consent: {status} {answer}");
    Ok(())
}

fn winter(policy: &str) -> Value {
    json!({
        "name": "Winter sale",
        "channel": "banner",
        "policy": policy,
        "epsilon": 0.1,
        "holdout": 0.1,
        "arms": [
            { "id": "a", "offer": "5% off", "message": "Hi {shopper}: {offer}" },
            { "id": "b", "offer": "free delivery", "message": "{offer}, {shopper}!" }
        ]
    })
}

#[tokio::test]
async fn campaigns_are_defined_decided_and_learn_from_feedback() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let feedback = format!("{}/api/campaigns/feedback", app.url);

    // The admin API: a token, and definitions checked field by field.
    let (status, _) = put_campaign(&app, "winter", "", &winter("thompson")).await?;
    assert_eq!(status, 401);
    for (change, field) in [
        (json!({"epsilon": 2}), "epsilon"),
        (json!({"channel": "sms"}), "channel"),
        (
            json!({"arms": [{"id": "a", "offer": "x", "message": "m"}, {"id": "a", "offer": "y", "message": "m"}]}),
            "arms[1].id",
        ),
        (
            json!({"arms": [{"id": "a", "offer": "x", "message": "Hi {name}"}]}),
            "{name}",
        ),
        (json!({"start": "tomorrow"}), "start"),
    ] {
        let mut body = winter("thompson");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = put_campaign(&app, "winter", ADMIN_TOKEN, &body).await?;
        let message = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{change}: {answer}");
        assert!(message.contains(field), "{change}: {message}");
    }
    let (status, stored) = put_campaign(&app, "winter", ADMIN_TOKEN, &winter("thompson")).await?;
    assert_eq!((status, &stored["version"]), (200, &json!(1)), "{stored}");

    // Decisions: an arm with its probability (never below the floor), or the reason for none.
    let (status, answer) = post_json(&decide, &json!({"context": {"weather": "snow"}})).await?;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("weather"),
        "{answer}"
    );
    let mut held_out = 0;
    let mut first = None;
    for n in 0..400 {
        let (status, answer) = post_json(
            &decide,
            &json!({"shopper": format!("s{n}"), "context": {"page": "home", "device": "mobile"}}),
        )
        .await?;
        assert_eq!(status, 200, "{answer}");
        let d = &answer["decisions"][0];
        if d["reason"] == "holdout" {
            held_out += 1;
            continue;
        }
        let p = d["propensity"].as_f64().unwrap();
        assert!((0.05..=1.0).contains(&p), "{d}");
        assert!(
            d["message"].as_str().unwrap().contains(&format!("s{n}")),
            "{d}"
        );
        first.get_or_insert_with(|| (format!("s{n}"), d.clone()));
    }
    assert!(
        (20..=60).contains(&held_out),
        "{held_out} of 400 held out (10% asked)"
    );
    // The same shopper is always held out, or never.
    let (_, again) = post_json(&decide, &json!({"shopper": "s0"})).await?;
    let (_, once_more) = post_json(&decide, &json!({"shopper": "s0"})).await?;
    assert_eq!(
        again["decisions"][0]["reason"],
        once_more["decisions"][0]["reason"]
    );

    // Feedback: unknown decision 404, idempotent by event id, late feedback refused.
    let (shopper, first) = first.unwrap();
    let decision_id = first["decision_id"].as_str().unwrap();
    let event = |id: &str, decision: &str| json!({"event_id": id, "decision_id": decision, "event": "click"});
    assert_eq!(post_json(&feedback, &event("e0", "dc-nope")).await?.0, 404);
    let (status, answer) = post_json(&feedback, &event("e1", decision_id)).await?;
    assert_eq!((status, &answer["duplicate"]), (200, &json!(false)));
    let (status, answer) = post_json(&feedback, &event("e1", decision_id)).await?;
    assert_eq!((status, &answer["duplicate"]), (200, &json!(true)));
    let (_, old) = post_json(
        &decide,
        &json!({"shopper": "late-1", "context": {"time": "2026-01-01T10:00:00Z"}}),
    )
    .await?;
    let old_id = old["decisions"][0]["decision_id"]
        .as_str()
        .unwrap_or("dc-held-out");
    let (status, answer) = post_json(&feedback, &event("e2", old_id)).await?;
    assert_eq!(status, 422, "{answer}");
    // A batch: checked as a whole, stored in one transaction.
    let batch = json!({"events": [event("b1", decision_id), event("e1", decision_id), event("b2", decision_id)]});
    let (status, answer) = post_json(&feedback, &batch).await?;
    assert_eq!(
        (status, &answer),
        (200, &json!({"accepted": 2, "duplicates": 1}))
    );
    let batch = json!({"events": [event("b3", decision_id), event("b4", "dc-nope")]});
    let (status, answer) = post_json(&feedback, &batch).await?;
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("events[1].decision_id"),
        "{answer}"
    );
    let batch = json!({"events": [event("b5", decision_id), event("b1", old_id)]});
    let (status, _) = post_json(&feedback, &batch).await?;
    assert_eq!(
        status, 422,
        "the old decision is late: nothing of the batch is stored"
    );
    let (_, answer) = post_json(&feedback, &event("b5", decision_id)).await?;
    assert_eq!(
        answer["duplicate"], false,
        "b5 was not stored by the refused batch"
    );

    // Right to erasure: the events function's `DELETE /api/shoppers/{id}` also erases the
    // campaign decisions made for the shopper, and their feedback.
    let erased = reqwest::Client::new()
        .delete(format!("{}/api/shoppers/{shopper}", app.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert!(
        erased["erased_campaign_decisions"].as_i64().unwrap() >= 1,
        "{erased}"
    );
    assert_eq!(
        post_json(&feedback, &event("after-erasure", decision_id))
            .await?
            .0,
        404
    );

    // Learning: arm `b` converts 30% of the time, `a` 3%. After a few hundred rounds Thompson
    // sampling shows `b` to most shoppers; the floor keeps `a` in play.
    let mut shown_b = 0;
    let mut rounds = 0;
    for n in 0..600 {
        let (_, answer) = post_json(&decide, &json!({"shopper": format!("learn-{n}")})).await?;
        let d = &answer["decisions"][0];
        let Some(arm) = d["arm"].as_str() else {
            continue;
        };
        let converts = (n * 7919 % 100) < if arm == "b" { 30 } else { 3 };
        if converts {
            let id = d["decision_id"].as_str().unwrap();
            let conversion = json!({"event_id": format!("c{n}"), "decision_id": id, "event": "conversion", "value": 40.0});
            assert_eq!(post_json(&feedback, &conversion).await?.0, 200);
        }
        if n >= 400 {
            rounds += 1;
            shown_b += usize::from(arm == "b");
        }
    }
    assert!(
        shown_b * 100 > rounds * 75,
        "b shown {shown_b} of {rounds} in the last rounds"
    );
    let (_, shown) = show_campaign(&app, "winter").await?;
    let learned = &shown["learned"];
    assert!(
        learned[1]["conversions"].as_f64().unwrap() > learned[0]["conversions"].as_f64().unwrap(),
        "{shown}"
    );
    Ok(())
}

/// Quiet hours (in the shopper's local time), frequency caps per shopper (per day, in all)
/// and an impressions budget stop a campaign, saying which.
#[tokio::test]
async fn quiet_hours_caps_and_budget_stop_a_campaign() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let mut capped = for_everyone("uniform");
    capped["caps"] = json!({"per_shopper_per_day": 2, "per_shopper": 3});
    assert_eq!(
        put_campaign(&app, "capped", ADMIN_TOKEN, &capped).await?.0,
        200
    );
    let reason = |answer: &Value| answer["decisions"][0]["reason"].clone();
    let at = |shopper: &str, time: &str| json!({"shopper": shopper, "context": {"time": time}});
    // Quiet from 21:00 to 08:00 where the shopper is: the offset of `context.time` says where.
    let mut quiet = for_everyone("uniform");
    quiet["quiet_hours"] = json!({"from": "21:00", "to": "08:00"});
    assert_eq!(
        put_campaign(&app, "quiet", ADMIN_TOKEN, &quiet).await?.0,
        200
    );
    let quiet_reason = |answer: &Value| {
        let decisions = answer["decisions"].as_array().unwrap();
        decisions.iter().find(|d| d["campaign"] == "quiet").unwrap()["reason"].clone()
    };
    for (time, expected) in [
        ("2026-12-01T22:30:00+01:00", json!("quiet_hours")),
        ("2026-12-01T22:30:00-05:00", json!("quiet_hours")),
        ("2026-12-01T07:59:00+09:00", json!("quiet_hours")),
        ("2026-12-01T08:00:00+09:00", Value::Null),
        ("2026-12-01T21:30:00Z", json!("quiet_hours")),
        ("2026-12-01T12:00:00+01:00", Value::Null),
    ] {
        let answer = post_json(&decide, &at("zoe", time)).await?.1;
        assert_eq!(quiet_reason(&answer), expected, "{time}: {answer}");
    }
    let mut bad = quiet.clone();
    bad["quiet_hours"]["to"] = json!("8am");
    let (status, answer) = put_campaign(&app, "quiet", ADMIN_TOKEN, &bad).await?;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("quiet_hours.to"),
        "{answer}"
    );
    let day1 = "2026-12-01T10:00:00Z";
    for _ in 0..2 {
        assert_eq!(
            reason(&post_json(&decide, &at("ann", day1)).await?.1),
            Value::Null
        );
    }
    assert_eq!(
        reason(&post_json(&decide, &at("ann", day1)).await?.1),
        "cap"
    );
    // Another shopper is not capped; the next day `ann` may see it once more, then never.
    assert_eq!(
        reason(&post_json(&decide, &at("bob", day1)).await?.1),
        Value::Null
    );
    let day2 = "2026-12-02T11:00:00Z";
    assert_eq!(
        reason(&post_json(&decide, &at("ann", day2)).await?.1),
        Value::Null
    );
    assert_eq!(
        reason(
            &post_json(&decide, &at("ann", "2026-12-05T11:00:00Z"))
                .await?
                .1
        ),
        "cap"
    );

    let mut budget = for_everyone("thompson");
    budget["budget"] = json!({"impressions": 3});
    // A new campaign (its id sorts first in the answers): a budget counts every version's
    // impressions, so `capped`'s would already be spent.
    let (status, answer) = put_campaign(&app, "a-budget", ADMIN_TOKEN, &budget).await?;
    assert_eq!(status, 200, "{answer}");
    for n in 0..3 {
        let answer = post_json(&decide, &json!({"shopper": format!("b{n}")}))
            .await?
            .1;
        assert_eq!(reason(&answer), Value::Null, "{answer}");
    }
    // The budget counts impressions as of the last fold: an admin read folds at once.
    let (status, shown) = show_campaign(&app, "a-budget").await?;
    assert_eq!(status, 200, "{shown}");
    let answer = post_json(&decide, &json!({"shopper": "b9"})).await?.1;
    assert_eq!(reason(&answer), "budget", "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_discount_budget_stops_a_campaign_once_its_conversions_spent_it() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let feedback = format!("{}/api/campaigns/feedback", app.url);
    let mut spend = for_everyone("uniform");
    spend["budget"] = json!({"discount_spend": 12.0});
    spend["arms"][0]["discount"] = json!(5.0);
    spend["arms"][1]["discount"] = json!(5.0);
    for (field, value, says) in [
        (
            "budget",
            json!({"discount_spend": 0}),
            "budget.discount_spend",
        ),
        (
            "arms",
            json!([{"id": "a", "offer": "o", "message": "m", "discount": -1}]),
            "arms[0].discount",
        ),
    ] {
        let mut bad = spend.clone();
        bad[field] = value;
        let (status, answer) = put_campaign(&app, "spend", ADMIN_TOKEN, &bad).await?;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    assert_eq!(
        put_campaign(&app, "spend", ADMIN_TOKEN, &spend).await?.0,
        200
    );
    // Three conversions at 5 each: 15 spent of 12 (a fold counts them; an admin read folds).
    for n in 0..3 {
        let (_, answer) = post_json(&decide, &json!({"shopper": format!("d{n}")})).await?;
        let id = answer["decisions"][0]["decision_id"]
            .as_str()
            .unwrap()
            .to_string();
        let event = json!({"event_id": format!("c{n}"), "decision_id": id, "event": "conversion"});
        assert_eq!(post_json(&feedback, &event).await?.0, 200);
        let (_, before) = post_json(&decide, &json!({"shopper": format!("x{n}")})).await?;
        assert_eq!(before["decisions"][0]["reason"], Value::Null, "{before}");
    }
    let (_, shown) = show_campaign(&app, "spend").await?;
    assert_eq!(shown["discount_spent"], 15.0, "{shown}");
    let (_, after) = post_json(&decide, &json!({"shopper": "late"})).await?;
    assert_eq!(after["decisions"][0]["reason"], "budget", "{after}");
    Ok(())
}

#[tokio::test]
async fn a_shopper_who_opted_out_of_marketing_sees_no_campaign() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let open = for_everyone("uniform");
    assert_eq!(put_campaign(&app, "open", ADMIN_TOKEN, &open).await?.0, 200);
    let first = |answer: &Value| answer["decisions"][0].clone();
    let consent =
        |body: Value| shopper_api(&app, reqwest::Method::PUT, "ann/consent", Some(body), None);

    // Never said: campaigns are shown.
    let (_, shown) = post_json(&decide, &json!({"shopper": "ann"})).await?;
    assert!(first(&shown)["arm"].is_string(), "{shown}");

    // An opt-out: nothing, for every campaign, with the reason; others still see them.
    let (status, stated) = consent(json!({"marketing": false})).await?;
    assert_eq!(status, 200, "{stated}");
    assert_eq!(
        stated,
        json!({"shopper": "ann", "personalization": false, "marketing": false})
    );
    let (status, refused) = post_json(&decide, &json!({"shopper": "ann"})).await?;
    assert_eq!(status, 200);
    assert_eq!(
        refused["decisions"],
        json!([{"campaign": "open", "arm": null, "reason": "consent"}])
    );
    let (_, other) = post_json(&decide, &json!({"shopper": "bob"})).await?;
    assert!(first(&other)["arm"].is_string(), "{other}");

    // Opting in again (and to personalization, in the same call) shows them again; each flag
    // changes only when it is given.
    let (_, both) = consent(json!({"marketing": true, "personalization": true})).await?;
    assert_eq!(both["marketing"], true);
    let (_, kept) = consent(json!({"personalization": false})).await?;
    assert_eq!(
        (&kept["personalization"], &kept["marketing"]),
        (&json!(false), &json!(true))
    );
    let (_, again) = post_json(&decide, &json!({"shopper": "ann"})).await?;
    assert!(first(&again)["arm"].is_string(), "{again}");

    // Bad consent bodies: 400 naming the problem.
    for (body, says) in [
        (json!({"marketing": "no"}), "marketing"),
        (json!({"marketting": true}), "marketting"),
        (json!({}), "personalization or marketing"),
    ] {
        let (status, answer) = consent(body.clone()).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_cap_across_campaigns_limits_what_one_shopper_sees() -> anyhow::Result<()> {
    let text = vitrine_tests::manifest(
        "[variables]\nadmin_token = { default = \"t0k\" }\ncampaigns_per_shopper_per_day = { default = \"2\" }\n\
         [[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"campaigns\"\n\
         [component.campaigns]\nsource = \"CAMPAIGNS\"\nsqlite_databases = [\"default\"]\n\
         [component.campaigns.variables]\nadmin_token = \"{{ admin_token }}\"\n\
         campaigns_per_shopper_per_day = \"{{ campaigns_per_shopper_per_day }}\"\n",
    );
    let app = TestApp::start(&text).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let open = for_everyone("uniform");
    for id in ["c1", "c2", "c3"] {
        assert_eq!(put_campaign(&app, id, "t0k", &open).await?.0, 200);
    }
    // Two of three today (the lowest ids first), then none; another shopper has their own.
    let (_, first) = post_json(&decide, &json!({"shopper": "ann"})).await?;
    assert_eq!(
        reasons(&first),
        [Value::Null, Value::Null, json!("cap")],
        "{first}"
    );
    let (_, again) = post_json(&decide, &json!({"shopper": "ann"})).await?;
    assert_eq!(
        reasons(&again),
        [json!("cap"), json!("cap"), json!("cap")],
        "{again}"
    );
    let (_, bob) = post_json(&decide, &json!({"shopper": "bob"})).await?;
    assert_eq!(
        reasons(&bob),
        [Value::Null, Value::Null, json!("cap")],
        "{bob}"
    );
    // An anonymous request is not capped: there is no one to count.
    let (_, anonymous) = post_json(&decide, &json!({})).await?;
    assert_eq!(
        reasons(&anonymous),
        [Value::Null, Value::Null, Value::Null],
        "{anonymous}"
    );
    Ok(())
}

#[tokio::test]
async fn eligibility_by_country_segment_and_category_affinity() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let decide = format!("{}/api/campaigns/decide", app.url);
    let mut vip = for_everyone("uniform");
    vip["eligibility"] = json!({"countries": ["FR", "BE"], "segments": ["vip"]});
    assert_eq!(put_campaign(&app, "a-vip", ADMIN_TOKEN, &vip).await?.0, 200);
    let mut dresses = for_everyone("uniform");
    dresses["eligibility"] = json!({"categories": ["dresses"]});
    assert_eq!(
        put_campaign(&app, "b-dresses", ADMIN_TOKEN, &dresses)
            .await?
            .0,
        200
    );

    // Ann consented and looks at dresses; Bob looks at dresses too, without consent.
    let (_, page) = vitrine_tests::get_json(&format!(
        "{}/api/products?category=dresses&limit=3",
        app.url
    ))
    .await?;
    let products: Vec<String> = (page["items"].as_array().unwrap().iter())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(products.len(), 3, "{page}");
    consent_to_personalization(&app, "ann").await?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut events = Vec::new();
    for (i, product) in products.iter().enumerate() {
        for shopper in ["ann", "bob"] {
            events.push(json!({"id": format!("{shopper}-{i}"), "type": "view", "shopper": shopper, "time": now, "product": product}));
        }
    }
    let (status, stored) = post_json(
        &format!("{}/api/events", app.url),
        &json!({"events": events}),
    )
    .await?;
    assert_eq!(status, 200, "{stored}");

    let decide = &decide;
    let ask = |shopper: &str, context: Value| {
        let body = json!({"shopper": shopper, "context": context});
        async move { post_json(decide, &body).await }
    };
    let (_, ann) = ask("ann", json!({"country": "FR", "segment": "vip"})).await?;
    assert_eq!(reasons(&ann), [Value::Null, Value::Null], "{ann}");
    let (_, elsewhere) = ask("ann", json!({"country": "DE", "segment": "vip"})).await?;
    assert_eq!(
        reasons(&elsewhere)[0],
        "not_eligible: country",
        "{elsewhere}"
    );
    let (_, regular) = ask("ann", json!({"country": "BE"})).await?;
    assert_eq!(reasons(&regular)[0], "not_eligible: segment", "{regular}");
    // Without consent there is no profile, so no known interests.
    let (_, bob) = ask("bob", json!({"country": "FR", "segment": "vip"})).await?;
    assert_eq!(
        reasons(&bob),
        [Value::Null, json!("not_eligible: category")],
        "{bob}"
    );
    Ok(())
}

#[tokio::test]
async fn the_contextual_policy_sees_the_shoppers_history() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let linucb = for_everyone("linucb");
    assert_eq!(
        put_campaign(&app, "ctx", ADMIN_TOKEN, &linucb).await?.0,
        200
    );
    // The catalogue (seeded on first use) gives the products' prices.
    let (status, product) = get_json(&format!("{}/api/products/p-00001", app.url)).await?;
    assert_eq!(status, 200, "{product}");
    // Ann (consented) bought twice and looked three times yesterday.
    consent_to_personalization(&app, "ann").await?;
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events: Vec<Value> = (0..5)
        .map(|i| {
            let kind = if i < 2 { "purchase" } else { "view" };
            json!({"id": format!("h{i}"), "type": kind, "shopper": "ann", "time": yesterday, "product": "p-00001"})
        })
        .collect();
    let (status, stored) = post_json(
        &format!("{}/api/events", app.url),
        &json!({"events": events}),
    )
    .await?;
    assert_eq!(status, 200, "{stored}");
    let decide = format!("{}/api/campaigns/decide", app.url);
    for body in [json!({"shopper": "ann"}), json!({})] {
        let (status, answer) = post_json(&decide, &body).await?;
        assert_eq!(status, 200, "{answer}");
    }
    // The logged features: the context's 7, then recency, purchases, views and the price
    // level.
    let db = rusqlite::Connection::open(app.state_dir.path().join(".vitrine/sqlite/default.db"))?;
    let features = |shopper: &str| -> anyhow::Result<Vec<f64>> {
        let text: String = db.query_row(
            "SELECT features FROM campaign_decisions WHERE coalesce(shopper, '') = ?",
            [shopper],
            |r| r.get(0),
        )?;
        Ok(serde_json::from_str(&text)?)
    };
    let ann = features("ann")?;
    assert_eq!(ann.len(), 11, "{ann:?}");
    let cents: i64 = db.query_row(
        "SELECT price_cents FROM products WHERE id = 'p-00001'",
        [],
        |r| r.get(0),
    )?;
    let expected = [
        (-1.0f64 / 30.0).exp(),
        3f64.ln() / 3.0,
        4f64.ln() / 5.0,
        (cents as f64 / 100.0).ln_1p() / 6.0,
    ];
    for (got, want) in ann[7..].iter().zip(expected) {
        assert!((got - want).abs() < 0.01, "{ann:?} {expected:?}");
    }
    assert_eq!(features("")?[7..], [0.0, 0.0, 0.0, 0.0]);
    Ok(())
}

/// A database of the first version — no fold marks, policies stored as JSON and updated as
/// each decision and conversion came — is migrated in place: what its policy learned stays,
/// its rows are not learned again, and new ones are.
#[tokio::test]
async fn a_database_of_the_first_version_is_migrated() -> anyhow::Result<()> {
    let app = TestApp::start(&shop_manifest("")).await?;
    let db = rusqlite::Connection::open(app.state_dir.path().join(".vitrine/sqlite/default.db"))?;
    let definition = for_everyone("thompson");
    db.execute_batch(
        "CREATE TABLE campaigns (
            id TEXT PRIMARY KEY, definition TEXT NOT NULL, version INTEGER NOT NULL,
            policy TEXT NOT NULL, updated_at INTEGER NOT NULL);
         CREATE TABLE campaign_decisions (
            id TEXT PRIMARY KEY, campaign TEXT NOT NULL, version INTEGER NOT NULL,
            shopper TEXT, arm INTEGER NOT NULL, propensity REAL NOT NULL, policy TEXT NOT NULL,
            features TEXT NOT NULL, context TEXT NOT NULL, time INTEGER NOT NULL);
         CREATE TABLE campaign_feedback (
            event_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, event TEXT NOT NULL,
            value REAL, time INTEGER NOT NULL);
         INSERT INTO campaign_decisions VALUES
            ('dc-old', 'winter', 1, 'ann', 0, 0.5, 'thompson', '[]', '{}', 1764800000);
         INSERT INTO campaign_feedback VALUES ('e-old', 'dc-old', 'conversion', NULL, 1764800010);",
    )?;
    // Its one decision converted: α = 2 for arm a.
    db.execute(
        "INSERT INTO campaigns VALUES ('winter', ?, 1, ?, 1764800000)",
        [
            definition.to_string(),
            r#"{"kind":"thompson","alpha":[2.0,1.0],"beta":[1.0,1.0]}"#.to_string(),
        ],
    )?;
    let learned = |c: &Value| {
        (
            c["learned"][0]["conversions"].clone(),
            c["impressions"].clone(),
        )
    };
    let (status, shown) = show_campaign(&app, "winter").await?;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(learned(&shown), (json!(1.0), json!(1)), "{shown}");
    // A new decision and its conversion are learned as usual.
    let (status, decided) = post_json(
        &format!("{}/api/campaigns/decide", app.url),
        &json!({"shopper": "bob"}),
    )
    .await?;
    assert_eq!(status, 200, "{decided}");
    let decision = &decided["decisions"][0];
    let (status, recorded) = post_json(
        &format!("{}/api/campaigns/feedback", app.url),
        &json!({"event_id": "e-new", "decision_id": decision["decision_id"], "event": "conversion"}),
    )
    .await?;
    assert_eq!(status, 200, "{recorded}");
    let (_, shown) = show_campaign(&app, "winter").await?;
    let arm = usize::from(decision["arm"] != "a");
    let conversions: Vec<f64> = (shown["learned"].as_array().unwrap().iter())
        .map(|a| a["conversions"].as_f64().unwrap())
        .collect();
    let mut expected = vec![1.0, 0.0];
    expected[arm] += 1.0;
    assert_eq!(conversions, expected, "{shown}");
    assert_eq!(shown["impressions"], 2, "{shown}");
    Ok(())
}
