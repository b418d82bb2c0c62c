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
