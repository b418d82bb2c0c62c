//! Malformed manifests are refused with errors that name the field and the problem.

use std::path::Path;

use vitrine_runtime::{App, Manifest, RuntimeConfig};
use vitrine_tests::manifest;

fn parse_error(text: &str) -> String {
    Manifest::parse(text, Path::new("spin.toml"))
        .expect_err("the manifest must be refused")
        .to_string()
}

const BASE: &str = r#"
[variables]
region = { default = "eu" }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "PROBE"
"#;

#[test]
fn errors_name_the_field_and_the_problem() {
    let good = manifest(BASE);
    Manifest::parse(&good, Path::new("spin.toml")).expect("the base manifest is valid");
    let cases = [
        // Unknown fields anywhere.
        (good.replace("[component.probe]", "[component.probe]\nsoruce = 1"), vec!["soruce"]),
        (good.replace("name = \"test\"", "name = \"test\"\ncolour = \"red\""), vec!["colour"]),
        (good.replace("route = \"/...\"", "route = \"/...\"\nmethod = \"GET\""), vec!["method"]),
        (good.replace("[component.probe]", "[component.probe.tool.vitrine]\ntimeout = 5\n[component.probe]"), vec!["timeout"]),
        // Duplicate and conflicting routes.
        (format!("{good}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n"), vec!["duplicate route", "/..."]),
        (format!("{good}\n[[trigger.http]]\nroute = \"/a/:x\"\ncomponent = \"probe\"\n[[trigger.http]]\nroute = \"/a/:y\"\ncomponent = \"probe\"\n"), vec!["conflict", "/a/:x", "/a/:y"]),
        (good.replace("route = \"/...\"", "route = \"/a/.../b\""), vec!["trigger.http[0].route", "..."]),
        // References to things that do not exist.
        (good.replace("component = \"probe\"", "component = \"ghost\""), vec!["trigger.http[0].component", "ghost"]),
        (good.replace("[component.probe]", "[component.probe]\nvariables = { r = \"{{ nowhere }}\" }"), vec!["component.probe.variables.r", "nowhere"]),
        (good.replace("[component.probe]", "[component.probe]\nallowed_outbound_hosts = [\"example.com\"]"), vec!["allowed_outbound_hosts", "scheme"]),
        // Variables and versions.
        (good.replace("region = { default = \"eu\" }", "region = { default = \"eu\", required = true }"), vec!["variables.region"]),
        (good.replace("region =", "Region ="), vec!["variables.Region"]),
        (good.replace("spin_manifest_version = 2", "spin_manifest_version = 1"), vec!["spin_manifest_version"]),
        (good.replace("[[trigger.http]]", "[[trigger.redis]]"), vec!["trigger.redis"]),
        ("spin_manifest_version = 2\n[application\nname = 1".to_string(), vec!["spin.toml"]),
    ];
    for (text, expected) in cases {
        let error = parse_error(&text);
        for part in expected {
            assert!(
                error.contains(part),
                "error `{error}` should mention `{part}`"
            );
        }
    }
}

/// Loads `text` (with the probe's path replaced by `source`) from a fresh directory holding
/// `files`, and returns the load error.
fn load_error(source: &str, files: &[(&str, &[u8])]) -> String {
    let probe = vitrine_tests::guest("probe").to_string_lossy().to_string();
    let text = manifest(BASE).replace(&probe, source);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let manifest = Manifest::parse(&text, &dir.path().join("spin.toml")).unwrap();
    let config = RuntimeConfig {
        state_dir: dir.path().join(".vitrine"),
        max_instances: 4,
        ..RuntimeConfig::default()
    };
    App::load(&manifest, &config)
        .err()
        .expect("load must fail")
        .to_string()
}

#[test]
fn missing_sources_are_named_at_load() {
    let error = load_error("does/not/exist.wasm", &[]);
    assert!(
        error.contains("probe") && error.contains("does/not/exist.wasm"),
        "{error}"
    );
}

#[test]
fn files_that_are_not_wasm_are_refused() {
    let error = load_error("bogus.wasm", &[("bogus.wasm", b"not wasm at all")]);
    assert!(
        error.contains("probe") && error.contains("bogus.wasm"),
        "{error}"
    );
}
