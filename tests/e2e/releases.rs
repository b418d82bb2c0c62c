//! Releases (`vitrine deploy`): content-addressed, immutable, self-contained copies of an
//! application that serve as the application did, from any state directory they are copied to.

use std::path::Path;

use vitrine_runtime::releases::{ReleaseError, ReleaseStore};
use vitrine_runtime::Manifest;
use vitrine_tests::{get_json, manifest, TestApp};

/// An application directory: the probe with a variables schema and `files` (a pattern with
/// an exclusion, and a directory placement).
fn write_app(dir: &Path, greeting: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir.join("static"))?;
    std::fs::create_dir_all(dir.join("assets/deep"))?;
    std::fs::write(dir.join("static/hello.txt"), greeting)?;
    std::fs::write(dir.join("static/skip.txt"), "left out")?;
    std::fs::write(dir.join("assets/deep/data.txt"), "deep data")?;
    let path = dir.join("spin.toml");
    std::fs::write(
        &path,
        manifest(
            r#"
[variables]
token = { required = true, secret = true }
colour = { default = "blue" }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
files = ["static/*.txt", { source = "assets", destination = "/data" }]
exclude_files = ["static/skip.txt"]
key_value_stores = ["default"]
[component.probe.variables]
colour = "{{ colour }}"
[component.probe.build]
command = "false"
"#,
        ),
    )?;
    Ok(path)
}

#[tokio::test]
async fn releases_are_content_addressed_immutable_and_serve_like_the_app() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let app = write_app(&work.path().join("app"), "hello v1")?;
    let state = work.path().join("state");
    let store = ReleaseStore::new(&state);

    // The same application is the same release; a label never moves.
    let v1 = store.store(&Manifest::load(&app)?)?;
    assert_eq!(store.store(&Manifest::load(&app)?)?, v1);
    assert!(store.label(&v1, "v1")?);
    assert!(!store.label(&v1, "v1")?);
    std::fs::write(work.path().join("app/static/hello.txt"), "hello v2")?;
    let v2 = store.store(&Manifest::load(&app)?)?;
    assert_ne!(v2, v1);
    assert!(matches!(
        store.label(&v2, "v1"),
        Err(ReleaseError::LabelTaken { .. })
    ));
    assert!(matches!(
        store.label(&v2, "no spaces"),
        Err(ReleaseError::BadLabel(_))
    ));
    assert!(store.label(&v2, "v2")?);
    let listed: Vec<(String, String)> = store
        .list()?
        .into_iter()
        .map(|r| (r.label, r.digest))
        .collect();
    assert_eq!(
        listed,
        [("v1".into(), v1.clone()), ("v2".into(), v2.clone())]
    );
    assert_eq!(store.resolve("v2")?, v2);
    assert_eq!(store.resolve(&v1[..15])?, v1);
    assert!(matches!(
        store.resolve("v3"),
        Err(ReleaseError::NotFound(_))
    ));

    // The sources may go: a release copied to another state directory serves v1's files,
    // variables and build-less manifest.
    std::fs::remove_dir_all(work.path().join("app"))?;
    let elsewhere = work.path().join("elsewhere");
    copy_dir(&state.join("releases"), &elsewhere.join("releases"))?;
    let copied = ReleaseStore::new(&elsewhere);
    let unpacked = copied.unpack(&copied.resolve("v1")?)?;
    let text = std::fs::read_to_string(&unpacked)?;
    assert!(
        !text.contains("[component.probe.build]") && !text.contains("exclude_files"),
        "{text}"
    );
    let served = TestApp::start_file(&unpacked, |c| {
        c.variables.insert("token".into(), "t".into());
    })
    .await?;
    let content = |path: &str| {
        let url = format!("{}/file{path}", served.url);
        async move { anyhow::Ok(get_json(&url).await?.1["content"].clone()) }
    };
    assert_eq!(content("/static/hello.txt").await?, "hello v1");
    assert_eq!(content("/data/deep/data.txt").await?, "deep data");
    assert_eq!(content("/static/skip.txt").await?, serde_json::Value::Null);
    assert_eq!(
        get_json(&format!("{}/var/colour", served.url)).await?.1["value"],
        "blue"
    );
    served.stop().await?;

    // A damaged blob is found, naming it, before anything is served from it.
    let image = std::fs::read(elsewhere.join("releases/blobs/sha256").join(&v2[7..]))?;
    let image: serde_json::Value = serde_json::from_slice(&image)?;
    let layer = image["layers"][0]["digest"].as_str().unwrap().to_string();
    std::fs::write(
        elsewhere.join("releases/blobs/sha256").join(&layer[7..]),
        b"tampered",
    )?;
    let damaged = copied.unpack(&v2).unwrap_err().to_string();
    assert!(
        damaged.contains(&layer) && damaged.contains("does not match"),
        "{damaged}"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        match entry.file_type()?.is_dir() {
            true => copy_dir(&entry.path(), &target)?,
            false => std::fs::copy(entry.path(), target).map(drop)?,
        }
    }
    Ok(())
}

/// Serves release `first` of `store` with `/admin/traffic` enabled (token `tok`), loading
/// other releases from `store`. Returns (app URL, admin URL, shutdown sender).
async fn serve_releases(
    state: &Path,
    first: &str,
) -> anyhow::Result<(String, String, tokio::sync::oneshot::Sender<()>)> {
    use std::sync::Arc;
    use vitrine_runtime::{App, RuntimeConfig, Server};
    let config = RuntimeConfig {
        state_dir: state.to_path_buf(),
        variables: [("token".to_string(), "t".to_string())].into(),
        ..RuntimeConfig::default()
    };
    let load = {
        let config = config.clone();
        move |reference: &str| -> Result<App, String> {
            let store = ReleaseStore::new(&config.state_dir);
            let digest = store.resolve(reference).map_err(|e| e.to_string())?;
            let path = store.unpack(&digest).map_err(|e| e.to_string())?;
            let manifest = Manifest::load(&path).map_err(|e| e.to_string())?;
            App::load(&manifest, &config).map_err(|e| e.to_string())
        }
    };
    let app = load(first).map_err(anyhow::Error::msg)?;
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::bind_release(first, app, any, Some(any))
        .await?
        .traffic_admin(Arc::new(load), "tok".into(), state)
        .await?;
    let url = format!("http://{}", server.local_addr()?);
    let admin = format!("http://{}", server.admin_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Ok((url, admin, tx))
}

/// Calls `method` on `admin` + `path` with bearer `token` and an optional JSON body:
/// (status, JSON answer).
async fn admin_call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// PUTs `split` to `/admin/traffic` with `token`: (status, body).
async fn put_split(
    admin: &str,
    token: &str,
    split: serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{admin}/admin/traffic");
    admin_call(reqwest::Method::PUT, url, token, Some(split)).await
}

/// Two releases live at once: promotions and rollbacks under load never fail a request (in
/// flight ones finish on the release they started on), a split is sticky per shopper, a tester
/// picks a live release by header, and a release that cannot load never gets traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_releases_under_load_fails_no_request() -> anyhow::Result<()> {
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let work = tempfile::tempdir()?;
    let app = write_app(&work.path().join("app"), "v1")?;
    let state = work.path().join("state");
    let store = ReleaseStore::new(&state);
    for version in ["v1", "v2"] {
        std::fs::write(work.path().join("app/static/hello.txt"), version)?;
        let digest = store.store(&Manifest::load(&app)?)?;
        store.label(&digest, version)?;
    }
    let (url, admin, _stop) = serve_releases(&state, "v1").await?;

    // Steady load: 8 clients, some requests slow (in flight across switches).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, seen_v2) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for n in 0..8 {
        let (url, stop, ok, failed, seen_v2) = (
            url.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            seen_v2.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let path = match n {
                    0 => "/sleep?ms=150".to_string(),
                    _ => "/file/static/hello.txt".to_string(),
                };
                match client.get(format!("{url}{path}")).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.text().await.unwrap_or_default().contains("\"v2\"") {
                            seen_v2.fetch_add(1, Ordering::Relaxed);
                        }
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let splits = [
        json!({"v2": 100}),
        json!({"v1": 100}),
        json!({"v1": 50, "v2": 50}),
    ];
    for n in 0..20 {
        let (status, body) = put_split(&admin, "tok", splits[n % 3].clone()).await?;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 200 && seen_v2.load(Ordering::Relaxed) > 0, "{ok} ok");

    // The last split is 50/50: each shopper stays on one release, shoppers see both.
    let (_, body) = put_split(&admin, "tok", json!({"v1": 50, "v2": 50})).await?;
    assert_eq!(
        body["releases"],
        json!([{"release": "v1", "weight": 50}, {"release": "v2", "weight": 50}])
    );
    let client = reqwest::Client::new();
    let hello = |shopper: String, release: Option<&'static str>| {
        let client = client.clone();
        let url = format!("{url}/file/static/hello.txt");
        async move {
            let mut request = client.get(url).header("x-shopper-id", shopper);
            if let Some(release) = release {
                request = request.header("x-vitrine-release", release);
            }
            let body: serde_json::Value = request.send().await?.json().await?;
            anyhow::Ok(body["content"].as_str().unwrap_or_default().to_string())
        }
    };
    let mut per_shopper = std::collections::BTreeMap::new();
    for shopper in 0..40 {
        let first = hello(format!("s{shopper}"), None).await?;
        for _ in 0..3 {
            assert_eq!(
                hello(format!("s{shopper}"), None).await?,
                first,
                "shopper s{shopper}"
            );
        }
        *per_shopper.entry(first).or_insert(0) += 1;
    }
    assert_eq!(per_shopper.len(), 2, "{per_shopper:?}");
    // A tester picks a live release whatever their bucket.
    for shopper in 0..10 {
        assert_eq!(hello(format!("s{shopper}"), Some("v2")).await?, "v2");
    }

    // Refused changes leave the split as it is.
    let (status, _) = put_split(&admin, "wrong", json!({"v2": 100})).await?;
    assert_eq!(status, 401);
    let (status, body) = put_split(&admin, "tok", json!({"v1": 60, "v2": 50})).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("the weights add up to 110, not 100"))
    );
    let (status, body) = put_split(&admin, "tok", json!({"v9": 100})).await?;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot load release `v9`"),
        "{body}"
    );
    let url = format!("{admin}/admin/traffic");
    let (_, current) = admin_call(reqwest::Method::GET, url, "tok", None).await?;
    assert_eq!(
        current["releases"].as_array().unwrap().len(),
        2,
        "{current}"
    );
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await?
        .text()
        .await?;
    assert!(metrics.contains(r#"release="v2""#) && metrics.contains(r#"release="v1""#));
    for release in ["v1", "v2"] {
        let gauge = format!("vitrine_traffic_weight_percent{{release=\"{release}\"}} 50");
        assert!(metrics.contains(&gauge), "no `{gauge}` in\n{metrics}");
    }
    Ok(())
}

/// Stores the probe as release `label`, with `environment` (`/behave` reads `DELAY_MS` and
/// `FAIL_PERCENT`).
fn store_probe(work: &Path, state: &Path, label: &str, environment: &str) -> anyhow::Result<()> {
    let dir = work.join(label);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("spin.toml");
    std::fs::write(
        &path,
        manifest(&format!(
            "[variables]\ntoken = {{ default = \"t\" }}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nenvironment = {{ {environment} }}\n"
        )),
    )?;
    let store = ReleaseStore::new(state);
    let digest = store.store(&Manifest::load(&path)?)?;
    store.label(&digest, label)?;
    Ok(())
}

/// GETs `/admin/rollout` until its status is no longer `running` (or 30 s pass).
async fn rollout_outcome(admin: &str) -> anyhow::Result<serde_json::Value> {
    for _ in 0..300 {
        let state = rollout_state(admin).await?;
        if state["status"]["state"] != "running" {
            return Ok(state);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the rollout did not end within 30 s")
}

/// POSTs a rollout plan: (status, body).
async fn start_rollout(
    admin: &str,
    plan: serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = format!("{admin}/admin/rollout");
    admin_call(reqwest::Method::POST, url, "tok", Some(plan)).await
}

/// The rollout, as `GET /admin/rollout` shows it.
async fn rollout_state(admin: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{admin}/admin/rollout");
    Ok(admin_call(reqwest::Method::GET, url, "tok", None).await?.1)
}

/// Under a steady load: a good release goes 1 → 50 → 100% and is promoted; one that fails 10%
/// of its requests, one that is 150 ms slower, and one whose business metric (`converted`,
/// reported on standard output) drifts, are rolled back at the first step (5%) with the
/// reason recorded, and less than 1% of all requests fail; a server restarted in the middle
/// of a rollout resumes it; every change is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollouts_promote_good_releases_and_roll_back_bad_ones() -> anyhow::Result<()> {
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let work = tempfile::tempdir()?;
    let state = work.path().join("state");
    store_probe(work.path(), &state, "v1", "CONVERT_PERCENT = \"20\"")?;
    store_probe(work.path(), &state, "good", "CONVERT_PERCENT = \"21\"")?;
    store_probe(work.path(), &state, "flaky", "FAIL_PERCENT = \"10\"")?;
    store_probe(work.path(), &state, "slow", "DELAY_MS = \"150\"")?;
    store_probe(work.path(), &state, "drifting", "CONVERT_PERCENT = \"80\"")?;
    let (url, admin, stop_server) = serve_releases(&state, "v1").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("{url}/behave")).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let plan = |release: &str, steps: serde_json::Value, analysis: serde_json::Value| json!({ "release": release, "steps": steps, "interval_ms": 400, "analysis": analysis });
    let strict = json!({
        "min_requests": 60, "min_success_rate": 0.99, "max_p99_ratio": 1.5, "p99_slack_ms": 20.0,
        "max_metric_drift": { "converted": 0.25 },
    });

    // A bad release is rolled back at its first step.
    for (release, why) in [
        ("flaky", "success rate"),
        ("slow", "p99"),
        ("drifting", "converted"),
    ] {
        let (status, body) =
            start_rollout(&admin, plan(release, json!([5, 50, 100]), strict.clone())).await?;
        assert_eq!(status, 201, "{body}");
        let outcome = rollout_outcome(&admin).await?;
        assert_eq!(outcome["status"]["state"], "rolled_back", "{outcome}");
        let reason = outcome["status"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("step 1 (5%): ") && reason.contains(why),
            "{reason}"
        );
        assert_eq!(outcome["history"].as_array().unwrap().len(), 1, "{outcome}");
        assert_eq!(
            outcome["weights"],
            json!([{"release": "v1", "weight": 100}])
        );
    }
    let (ok_now, failed_now) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(
        (failed_now as f64) < 0.01 * (ok_now + failed_now) as f64,
        "{failed_now} of {} requests failed",
        ok_now + failed_now
    );

    // A good release is promoted step by step (lenient on latency: other tests share the CPU).
    let lenient = json!({
        "min_requests": 30, "max_p99_ratio": 3.0, "p99_slack_ms": 100.0,
        "max_metric_drift": { "converted": 0.25 },
    });
    let (status, body) =
        start_rollout(&admin, plan("good", json!([1, 50, 100]), lenient.clone())).await?;
    assert_eq!(status, 201, "{body}");
    // Manual changes wait for the rollout.
    let (status, _) = put_split(&admin, "tok", json!({"v1": 100})).await?;
    assert_eq!(status, 409);
    let outcome = rollout_outcome(&admin).await?;
    assert_eq!(outcome["status"]["state"], "promoted", "{outcome}");
    let weights: Vec<u64> = outcome["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [1, 50]);
    assert_eq!(outcome["stable"], "good");

    // Two rollouts started at once: one runs, the other is refused; an abort sends all
    // traffic back to the stable release.
    let slow_plan = plan("v1", json!([50, 100]), lenient.clone());
    let (a, b) = tokio::join!(
        start_rollout(&admin, slow_plan.clone()),
        start_rollout(&admin, slow_plan)
    );
    let mut statuses = [a?.0, b?.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    let url = format!("{admin}/admin/rollout");
    let (status, aborted) = admin_call(reqwest::Method::DELETE, url.clone(), "tok", None).await?;
    assert_eq!(
        (status, &aborted["status"]["state"]),
        (200, &json!("aborted")),
        "{aborted}"
    );
    assert_eq!(
        aborted["weights"],
        json!([{"release": "good", "weight": 100}])
    );
    let (status, _) = admin_call(reqwest::Method::DELETE, url, "tok", None).await?;
    assert_eq!(status, 409);
    assert_eq!(
        outcome["weights"],
        json!([{"release": "good", "weight": 100}])
    );
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }

    // A restart in the middle of a rollout resumes it where it was.
    let (status, body) = start_rollout(
        &admin,
        plan(
            "v1",
            json!([20, 100]),
            json!({ "min_requests": 1, "max_p99_ratio": 3.0, "p99_slack_ms": 100.0 }),
        ),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let _ = stop_server.send(());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (url, admin, stop_again) = serve_releases(&state, "good").await?;
    let resumed = rollout_state(&admin).await?;
    assert_eq!(resumed["status"]["state"], "running", "{resumed}");
    // Traffic for the canary to be judged on.
    let pinger = tokio::spawn(async move {
        for _ in 0..400 {
            let _ = reqwest::get(format!("{url}/behave")).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let outcome = rollout_outcome(&admin).await?;
    pinger.abort();
    assert_eq!(outcome["status"]["state"], "promoted", "{outcome}");
    assert_eq!(
        outcome["weights"],
        json!([{"release": "v1", "weight": 100}])
    );

    // Started again with `good`, the server restores the last split: the promotion of v1
    // outlives the restart.
    let _ = stop_again.send(());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (url, admin, _stop) = serve_releases(&state, "good").await?;
    let (_, split) = admin_call(
        reqwest::Method::GET,
        format!("{admin}/admin/traffic"),
        "tok",
        None,
    )
    .await?;
    assert_eq!(split["releases"], json!([{"release": "v1", "weight": 100}]));
    let served = reqwest::get(format!("{url}/behave")).await?;
    assert!(served.status().is_success());

    let audit = std::fs::read_to_string(state.join("traffic-audit.jsonl"))?;
    for expected in [
        "restored after a restart",
        "rollout started",
        "rolled back: step 1",
        "step 1 passed",
        "promoted",
        "resumed after a restart",
    ] {
        assert!(
            audit.contains(expected),
            "no `{expected}` in the audit log:\n{audit}"
        );
    }
    Ok(())
}

/// The release store is an OCI image layout that the reference OCI tool reads and writes:
/// `skopeo` finds a release by its label, copies it (checking every digest) into a new layout,
/// and the copy serves as the original did.
#[tokio::test]
async fn skopeo_reads_and_copies_releases() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let app = write_app(&work.path().join("app"), "hello oci")?;
    let state = work.path().join("state");
    let store = ReleaseStore::new(&state);
    let digest = store.store(&Manifest::load(&app)?)?;
    store.label(&digest, "v1")?;
    let skopeo = |args: &[&str]| -> anyhow::Result<Vec<u8>> {
        let out = std::process::Command::new("skopeo")
            .args(args)
            .output()
            .map_err(|e| {
                anyhow::anyhow!("skopeo (apt-get install skopeo; .ci/run does it): {e}")
            })?;
        anyhow::ensure!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    };
    let layout = format!("oci:{}:v1", state.join("releases").display());
    let raw = skopeo(&["inspect", "--raw", &layout])?;
    // The manifest skopeo found under the label is the release's (its blob, named by the digest).
    let blob = state
        .join("releases/blobs/sha256")
        .join(&digest["sha256:".len()..]);
    assert_eq!(raw, std::fs::read(blob)?);

    let copy = work.path().join("copy");
    std::fs::create_dir_all(&copy)?;
    let target = format!("oci:{}:v1", copy.join("releases").display());
    skopeo(&["copy", "-q", &layout, &target])?;
    let copied = ReleaseStore::new(&copy);
    assert_eq!(copied.resolve("v1")?, digest);
    let served = TestApp::start_file(&copied.unpack(&digest)?, |c| {
        c.variables.insert("token".into(), "t".into());
    })
    .await?;
    assert_eq!(
        get_json(&format!("{}/file/static/hello.txt", served.url))
            .await?
            .1["content"],
        "hello oci"
    );
    Ok(())
}
