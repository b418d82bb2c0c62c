//! HTTP trigger routing: exact, `:name` and wildcard routes, most-specific match, Spin's
//! request headers, 404, and a fresh instance per request.

use vitrine_tests::{get_json, manifest, TestApp};

const ROUTES: &str = r#"
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/users/:id/orders/:order"
component = "users"
[[trigger.http]]
route = "/users/admin"
component = "admin"
[[trigger.http]]
route = "/exact"
component = "exact"
[[trigger.http]]
route = "/..."
component = "fallback"
[component.probe]
source = "PROBE"
[component.users]
source = "PROBE"
[component.admin]
source = "PROBE"
[component.exact]
source = "PROBE"
[component.fallback]
source = "PROBE"
"#;

#[tokio::test]
async fn spin_headers_describe_the_match() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(ROUTES)).await?;
    let (status, body) = get_json(&format!("{}/probe/echo/deeper?x=1&y=two", app.url)).await?;
    assert_eq!(status, 200);
    let headers = &body["headers"];
    assert_eq!(headers["spin-path-info"], "/echo/deeper");
    assert_eq!(headers["spin-matched-route"], "/probe/...");
    assert_eq!(headers["spin-raw-component-route"], "/probe/...");
    assert_eq!(headers["spin-component-route"], "/probe");
    assert_eq!(headers["spin-base-path"], "/");
    let full_url = format!("{}/probe/echo/deeper?x=1&y=two", app.url);
    assert_eq!(headers["spin-full-url"], full_url.as_str());
    assert!(headers["spin-client-addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    // The guest sees the real authority, scheme and path with query.
    assert_eq!(body["uri"], full_url.as_str());
    assert_eq!(body["path_and_query"], "/probe/echo/deeper?x=1&y=two");
    Ok(())
}

#[tokio::test]
async fn named_segments_become_headers_and_clients_cannot_forge_them() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(ROUTES)).await?;
    let response = reqwest::Client::new()
        .get(format!("{}/users/42/orders/A-7", app.url))
        .header("spin-path-match-id", "forged")
        .header("spin-component-route", "/forged")
        .send()
        .await?;
    let body: serde_json::Value = response.json().await?;
    let headers = &body["headers"];
    assert_eq!(headers["spin-path-match-id"], "42");
    assert_eq!(headers["spin-path-match-order"], "A-7");
    assert_eq!(headers["spin-matched-route"], "/users/:id/orders/:order");
    assert_eq!(headers["spin-component-route"], "/users/:id/orders/:order");
    assert_eq!(headers["spin-path-info"], "");
    Ok(())
}

#[tokio::test]
async fn most_specific_route_wins() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(ROUTES)).await?;
    for (path, route) in [
        ("/users/admin", "/users/admin"),
        ("/exact", "/exact"),
        ("/exact/", "/exact"),
        ("/exact/more", "/..."),
        ("/users/42", "/..."),
        ("/", "/..."),
        ("/probe", "/probe/..."),
    ] {
        let (status, body) = get_json(&format!("{}{path}", app.url)).await?;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["headers"]["spin-matched-route"], route, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn unmatched_paths_get_404() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(
        r#"
[[trigger.http]]
route = "/only"
component = "probe"
[component.probe]
source = "PROBE"
"#,
    ))
    .await?;
    let response = reqwest::get(format!("{}/other", app.url)).await?;
    assert_eq!(response.status(), 404);
    assert!(response.text().await?.contains("/other"));
    Ok(())
}

#[tokio::test]
async fn every_request_gets_a_fresh_instance() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(ROUTES)).await?;
    for _ in 0..5 {
        let (_, body) = get_json(&format!("{}/probe/instance-count", app.url)).await?;
        assert_eq!(body["served"], 1, "state leaked between requests");
    }
    Ok(())
}

#[tokio::test]
async fn metrics_and_health_are_served_on_the_admin_listener() -> anyhow::Result<()> {
    let app = TestApp::start(&manifest(ROUTES)).await?;
    get_json(&format!("{}/probe/echo", app.url)).await?;
    let health = reqwest::get(format!("{}/healthz", app.admin_url)).await?;
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", app.admin_url))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(
            r#"vitrine_http_requests_total{component="probe",release="local",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("vitrine_instantiation_duration_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vitrine_http_requests_in_flight"),
        "{metrics}"
    );
    // Nothing is left waiting for a turn on a processor once the request is answered.
    assert!(
        metrics.contains("vitrine_guests_waiting_for_cpu 0\n"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() -> anyhow::Result<()> {
    let mut app = TestApp::start(&manifest(ROUTES)).await?;
    let slow = tokio::spawn(reqwest::get(format!("{}/probe/sleep?ms=600", app.url)));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let server = app.begin_stop();
    let response = slow.await??;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await?["slept_ms"], 600);
    server.await??;
    assert!(
        reqwest::get(format!("{}/probe/echo", app.url))
            .await
            .is_err(),
        "still accepting after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn preview1_modules_are_turned_into_components() -> anyhow::Result<()> {
    let module = vitrine_tests::hello_preview1();
    let text = manifest(&format!(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"old\"\n[component.old]\nsource = \"{}\"\n",
        module.display()
    ));
    let app = TestApp::start(&text).await?;
    let response = reqwest::get(format!("{}/hi", app.url)).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "Hello, Vitrine!\n");
    Ok(())
}

#[tokio::test]
async fn a_request_without_host_is_addressed_to_localhost() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start(&manifest(ROUTES)).await?;
    let mut stream = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://")).await?;
    stream
        .write_all(b"GET /probe/echo?a=1 HTTP/1.0\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(
        response.contains(r#""spin-full-url":"http://localhost/probe/echo?a=1""#),
        "{response}"
    );
    Ok(())
}
