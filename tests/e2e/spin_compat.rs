//! Behaviour that must match stock Spin byte for byte: store access order, the `spin-*` request
//! headers, where an outbound denial surfaces, and no response headers of the runtime's own.
//! Each test checks status, body and the exact set of response headers.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use vitrine_tests::{manifest, TestApp};

/// Status, the exact set of response header names, and the JSON body.
async fn fetch(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, BTreeSet<String>, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let names = response
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, names, body))
}

fn get(url: String) -> reqwest::RequestBuilder {
    reqwest::Client::new().get(url)
}

/// What a spin-sdk response carries: the guest's `content-type`, plus what hyper adds for a
/// body streamed from `wasi:http` without a length (as in Spin, which serves the same
/// `wasi:http` bodies with hyper): `transfer-encoding` and `date`.
fn guest_headers() -> BTreeSet<String> {
    ["content-type", "transfer-encoding", "date"]
        .map(String::from)
        .into()
}

#[tokio::test]
async fn an_unlisted_label_is_access_denied_whether_or_not_it_exists() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(
        r#"
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = "/b/..."
component = "b"
[component.a]
source = "PROBE"
key_value_stores = ["default"]
sqlite_databases = ["default"]
[component.b]
source = "PROBE"
key_value_stores = ["carts"]
sqlite_databases = ["orders"]
"#,
    ))
    .await?;
    let denied = json!({ "error": "Error::AccessDenied" });
    // `default` exists (component `a` lists it); `nowhere` is named by nobody: both denied.
    for label in ["default", "nowhere"] {
        let (status, headers, body) = fetch(get(format!("{}/b/kv/{label}/k", app.url))).await?;
        assert_eq!((status, &body), (403, &denied), "key-value `{label}`");
        assert_eq!(headers, guest_headers());
        let (status, headers, body) = fetch(
            reqwest::Client::new()
                .post(format!("{}/b/sqlite/{label}", app.url))
                .json(&json!({ "sql": "SELECT 1", "params": [] })),
        )
        .await?;
        assert_eq!((status, &body), (403, &denied), "sqlite `{label}`");
        assert_eq!(headers, guest_headers());
    }
    // A listed label opens.
    let (status, _, body) = fetch(get(format!("{}/b/kv/carts/k", app.url))).await?;
    assert_eq!(
        (status, body),
        (200, json!({ "value": null, "exists": false }))
    );
    Ok(())
}

#[tokio::test]
async fn path_match_headers_use_spins_names_and_keep_trailing_slashes() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(
        r#"
[[trigger.http]]
route = "/items/:item_id/parts/:Part-No/..."
component = "probe"
[component.probe]
source = "PROBE"
"#,
    ))
    .await?;
    let (status, headers, body) = fetch(
        get(format!("{}/items/42/parts/x9/", app.url))
            .header("spin-path-info", "/forged")
            .header("spin-path-match-item-id", "forged")
            .header("spin-custom", "kept"),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(headers, guest_headers());
    let seen = &body["headers"];
    // `:item_id` → `spin-path-match-item-id`; `:Part-No` → `spin-path-match-part-no`.
    assert_eq!(seen["spin-path-match-item-id"], "42");
    assert_eq!(seen["spin-path-match-part-no"], "x9");
    assert_eq!(seen["spin-path-match-item_id"], Value::Null);
    // The trailing slash is the path info, as Spin reports it; the runtime's value replaces
    // the forged one, and a `spin-*` header the runtime does not set passes through (as in Spin).
    assert_eq!(seen["spin-path-info"], "/");
    assert_eq!(seen["spin-custom"], "kept");
    assert_eq!(
        seen["spin-matched-route"],
        "/items/:item_id/parts/:Part-No/..."
    );
    assert_eq!(
        seen["spin-component-route"],
        "/items/:item_id/parts/:Part-No"
    );
    let spin_headers: BTreeSet<&str> = seen
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("spin-"))
        .collect();
    assert_eq!(
        spin_headers,
        BTreeSet::from([
            "spin-base-path",
            "spin-client-addr",
            "spin-component-route",
            "spin-custom",
            "spin-full-url",
            "spin-matched-route",
            "spin-path-info",
            "spin-path-match-item-id",
            "spin-path-match-part-no",
            "spin-raw-component-route",
        ])
    );
    let (_, _, body) = fetch(get(format!("{}/items/42/parts/x9/a/b/", app.url))).await?;
    assert_eq!(body["headers"]["spin-path-info"], "/a/b/");
    let (_, _, body) = fetch(get(format!("{}/items/42/parts/x9", app.url))).await?;
    assert_eq!(body["headers"]["spin-path-info"], "");
    Ok(())
}

#[tokio::test]
async fn an_outbound_denial_arrives_with_the_response_not_from_handle() -> anyhow::Result<()> {
    let upstream = TestApp::start(&manifest(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"HELLO\"\n",
    ))
    .await?;
    let authority = upstream.url.trim_start_matches("http://").to_string();
    let app = TestApp::start(&manifest(&format!(
        r#"
[[trigger.http]]
route = "/open/..."
component = "open"
[[trigger.http]]
route = "/closed/..."
component = "closed"
[component.open]
source = "PROBE"
allowed_outbound_hosts = ["http://{authority}"]
[component.closed]
source = "PROBE"
allowed_outbound_hosts = ["https://example.com"]
"#
    )))
    .await?;
    let target = format!("http://{authority}/x");
    let (status, headers, body) =
        fetch(get(format!("{}/closed/outbound-raw?url={target}", app.url))).await?;
    assert_eq!(
        (status, body),
        (
            200,
            json!({ "step": "response", "error": "ErrorCode::HttpRequestDenied" })
        )
    );
    assert_eq!(headers, guest_headers());
    let (status, _, body) =
        fetch(get(format!("{}/open/outbound-raw?url={target}", app.url))).await?;
    assert_eq!(
        (status, body),
        (200, json!({ "step": "response", "status": 200 }))
    );
    Ok(())
}

const HELLO: &str = r#"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "HELLO"
"#;

#[tokio::test]
async fn the_runtime_adds_no_response_header_unless_asked() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(HELLO)).await?;
    let (status, headers, body) = fetch(get(format!("{}/hi", app.url))).await?;
    assert_eq!((status, body), (200, json!("Hello, Vitrine!\n")));
    assert_eq!(headers, guest_headers());

    let text = manifest(&format!(
        "[application.tool.vitrine]\nrequest_id_header = \"x-request-id\"\n{HELLO}"
    ));
    let app = TestApp::start(&text).await?;
    let response = get(format!("{}/hi", app.url)).send().await?;
    let id = response.headers()["x-request-id"].to_str()?.to_string();
    assert!(!id.is_empty());
    let names: BTreeSet<String> = response
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    let mut expected = guest_headers();
    expected.insert("x-request-id".into());
    assert_eq!(names, expected);
    // Each request gets its own id.
    let again = get(format!("{}/hi", app.url)).send().await?;
    assert_ne!(again.headers()["x-request-id"].to_str()?, id);

    let bad = manifest(&format!(
        "[application.tool.vitrine]\nrequest_id_header = \"bad header\"\n{HELLO}"
    ));
    let err = TestApp::start(&bad).await.err().expect("invalid name");
    assert!(format!("{err:#}").contains("request_id_header"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn a_taken_admin_port_is_named_as_the_admin_address() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest(HELLO))?;
    let config = vitrine_runtime::RuntimeConfig {
        state_dir: dir.path().join(".vitrine"),
        max_instances: 4,
        ..Default::default()
    };
    let app = vitrine_runtime::App::load(&vitrine_runtime::Manifest::load(&path)?, &config)?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let admin = taken.local_addr()?;
    let free: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    let err = vitrine_runtime::Server::bind(app, free, Some(admin))
        .await
        .err()
        .expect("the admin port is taken")
        .to_string();
    assert!(err.contains(&admin.to_string()), "{err}");
    assert!(err.contains("admin"), "{err}");
    Ok(())
}

/// A TCP server on loopback that answers each line with `pong <line>`.
async fn echo_server() -> anyhow::Result<std::net::SocketAddr> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_ok() {
                    let _ = write
                        .write_all(format!("pong {}\n", line.trim_end()).as_bytes())
                        .await;
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn tcp_sockets_reach_only_what_allowed_outbound_hosts_names() -> anyhow::Result<()> {
    let echo = echo_server().await?;
    let port = echo.port();
    let app = TestApp::start(&manifest(&format!(
        r#"
[variables]
echo_port = {{ default = "{port}" }}
[[trigger.http]]
route = "/exact/..."
component = "exact"
[[trigger.http]]
route = "/range/..."
component = "range"
[[trigger.http]]
route = "/http-only/..."
component = "http-only"
[[trigger.http]]
route = "/other-port/..."
component = "other-port"
[component.exact]
source = "PROBE"
allowed_outbound_hosts = ["tcp://127.0.0.1:{{{{ echo_port }}}}"]
[component.range]
source = "PROBE"
allowed_outbound_hosts = ["tcp://127.0.0.0/8:*"]
[component.http-only]
source = "PROBE"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
[component.other-port]
source = "PROBE"
allowed_outbound_hosts = ["tcp://127.0.0.1:1"]
"#
    )))
    .await?;
    for allowed in ["exact", "range"] {
        let (status, headers, body) =
            fetch(get(format!("{}/{allowed}/tcp?addr={echo}", app.url))).await?;
        assert_eq!(
            (status, body),
            (200, json!({ "reply": "pong ping" })),
            "{allowed}"
        );
        assert_eq!(headers, guest_headers());
    }
    for denied in ["http-only", "other-port"] {
        let (status, _, body) = fetch(get(format!("{}/{denied}/tcp?addr={echo}", app.url))).await?;
        assert_eq!(status, 502, "{denied}: {body}");
        // wasi:sockets' `access-denied`, as std reports it.
        assert_eq!(body["kind"], "PermissionDenied", "{denied}: {body}");
    }
    Ok(())
}

/// The probe as two components: `/allowed/...` with the `allowed_outbound_hosts` entries
/// `allowed`, and `/denied/...` with `denied`.
async fn allowed_and_denied(allowed: &str, denied: &str) -> anyhow::Result<TestApp> {
    TestApp::start(&manifest(&format!(
        r#"
[[trigger.http]]
route = "/allowed/..."
component = "allowed"
[[trigger.http]]
route = "/denied/..."
component = "denied"
[component.allowed]
source = "PROBE"
allowed_outbound_hosts = [{allowed}]
[component.denied]
source = "PROBE"
allowed_outbound_hosts = [{denied}]
"#
    )))
    .await
}

#[tokio::test]
async fn outbound_redis_works_against_a_real_server_within_the_allow_list() -> anyhow::Result<()> {
    let redis = vitrine_tests::LoopbackService::redis()?;
    let port = redis.port;
    let app = allowed_and_denied(
        &format!(r#""redis://127.0.0.1:{port}""#),
        &format!(r#""redis://127.0.0.1:1", "tcp://127.0.0.1:{port}""#),
    )
    .await?;
    let address = format!("redis://127.0.0.1:{port}");
    let (status, headers, body) =
        fetch(get(format!("{}/allowed/redis?addr={address}", app.url))).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers, guest_headers());
    assert_eq!(
        body,
        json!({
            "get": "v1", "missing": null, "incr": [1, 2], "sadd": 2, "smembers": ["a", "b"],
            "srem": 1, "del": 3,
            "execute": ["hi", 5, { "status": "OK" }, null],
        })
    );
    // Not in the list (another port; a tcp:// entry does not count): Spin's invalid-address.
    let (status, _, body) = fetch(get(format!("{}/denied/redis?addr={address}", app.url))).await?;
    assert_eq!(
        (status, body),
        (403, json!({ "error": "Error::InvalidAddress" }))
    );
    let (status, _, body) = fetch(get(format!("{}/allowed/redis?addr=not-a-url", app.url))).await?;
    assert_eq!(
        (status, body),
        (403, json!({ "error": "Error::InvalidAddress" }))
    );
    Ok(())
}

#[tokio::test]
async fn outbound_mqtt_publishes_to_a_real_broker_within_the_allow_list() -> anyhow::Result<()> {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let broker = vitrine_tests::LoopbackService::mosquitto()?;
    let port = broker.port;
    // A subscriber, as another service of the shop would be.
    let (subscriber, mut events) =
        AsyncClient::new(MqttOptions::new("test-subscriber", "127.0.0.1", port), 16);
    subscriber
        .subscribe("vitrine/probe", QoS::AtLeastOnce)
        .await?;
    while !matches!(events.poll().await?, Event::Incoming(Incoming::SubAck(_))) {}
    let (received, mut messages) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Incoming::Publish(p)) = event {
                let _ = received.send((p.topic, p.payload.to_vec()));
            }
        }
    });
    let app = allowed_and_denied(
        &format!(r#""mqtt://127.0.0.1:{port}""#),
        &format!(r#""mqtt://127.0.0.1:1", "redis://127.0.0.1:{port}""#),
    )
    .await?;
    for qos in ["0", "1", "2"] {
        let url = format!(
            "{}/allowed/mqtt?topic=vitrine/probe&qos={qos}&addr=mqtt://127.0.0.1:{port}?client_id=probe-{qos}",
            app.url
        );
        let (status, headers, body) = fetch(get(url)).await?;
        assert_eq!(
            (status, &body),
            (200, &json!({ "published": true })),
            "qos {qos}"
        );
        assert_eq!(headers, guest_headers());
        let message =
            tokio::time::timeout(std::time::Duration::from_secs(5), messages.recv()).await?;
        assert_eq!(
            message,
            Some(("vitrine/probe".into(), b"hello from the probe".to_vec())),
            "qos {qos}"
        );
    }
    let url = format!(
        "{}/denied/mqtt?topic=vitrine/probe&qos=1&addr=mqtt://127.0.0.1:{port}?client_id=denied",
        app.url
    );
    let (status, _, body) = fetch(get(url)).await?;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("Error::ConnectionFailed") && error.contains("is not permitted"),
        "{body}"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), messages.recv())
            .await
            .is_err(),
        "a refused component published"
    );
    Ok(())
}

#[tokio::test]
async fn a_component_importing_an_interface_the_runtime_lacks_fails_at_startup(
) -> anyhow::Result<()> {
    let err = TestApp::start(&manifest(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"shop-db\"\n[component.shop-db]\nsource = \"UNSUPPORTED\"\n",
    ))
    .await
    .err()
    .expect("startup must fail");
    let message = format!("{err:#}");
    assert!(message.contains("`shop-db`"), "{message}");
    assert!(message.contains("fermyon:spin/mysql"), "{message}");
    Ok(())
}
