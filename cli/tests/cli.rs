//! The `vitrine` command as a user runs it: help, build failures, startup errors, serving and
//! a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn vitrine() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vitrine"));
    cmd.env("RUST_LOG", "info").env_remove("RUST_BACKTRACE");
    cmd
}

fn write_manifest(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("spin.toml");
    std::fs::write(&path, vitrine_tests::manifest(body)).unwrap();
    path
}

#[test]
fn help_lists_the_commands() {
    let out = vitrine().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("build") && text.contains("up"), "{text}");
}

#[test]
fn a_failing_build_names_the_component_and_shows_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"broken\"\n[component.broken]\nsource = \"broken.wasm\"\n[component.broken.build]\ncommand = \"echo compiler-says-no; exit 3\"\n",
    );
    let out = vitrine()
        .args(["build", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`broken`") && stderr.contains("compiler-says-no"),
        "{stderr}"
    );
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\nflavour = 1\n",
    )
    .unwrap();
    let out = vitrine()
        .args(["up", "--skip-build", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("flavour") && stderr.contains("bad.toml"),
        "{stderr}"
    );

    let manifest = write_manifest(
        dir.path(),
        "[variables]\ntoken = { required = true, secret = true }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\n",
    );
    let out = vitrine()
        .args(["up", "--skip-build", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SPIN_VARIABLE_TOKEN"), "{stderr}");
}

/// A minimal HTTP/1.0 GET, returning the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn up_serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[variables]\nregion = { default = \"eu\" }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nvariables = { region = \"{{ region }}\" }\n",
    );
    let mut child = vitrine()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--variable",
            "region=us",
            "-f",
        ])
        .arg(&manifest)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && logs.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("serving on http://")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().unwrap().to_string());
        line.clear();
    }
    let addr = addr.expect("the server announces its address");
    let response = http_get(&addr, "/var/region");
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.contains(r#"{"value":"us"}"#), "{response}");
    let printed = http_get(&addr, "/print?hello-from-the-guest");
    assert!(printed.contains("hello-from-the-guest"), "{printed}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "vitrine up exited with {status}");
    let mut rest = String::new();
    logs.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("drained"), "{rest}");
    // Guest output reaches the log, line by line, with the component and request id.
    for stream in ["stdout", "stderr"] {
        let line = rest
            .lines()
            .find(|l| l.contains(&format!("{stream} says hello-from-the-guest")))
            .unwrap_or_else(|| panic!("no {stream} line in the log:\n{rest}"));
        assert!(
            line.contains("component=probe") && line.contains("request_id="),
            "{line}"
        );
    }
}
