//! Test guest: reports what it sees and exercises every Spin host API, chosen by the path
//! under its route (`spin-path-info`):
//!
//! - anything else (e.g. `/echo`) — method, URL, headers and body length as JSON;
//! - `/kv/<store>[/<key>]` — GET/PUT/DELETE a key, or list keys;
//! - `/sqlite/<db>` — POST a statement (JSON `{"sql": …, "params": […]}`; `sql` may be a list
//!   run in order on one connection, `params` going to the last), get rows as JSON;
//! - `/var/<name>` — a component variable;
//! - `/env/<name>`, `/file/<path>` — environment and mounted files;
//! - `/outbound?url=…` — GET another URL through outbound HTTP;
//! - `/outbound-raw?url=…` — the same through `wasi:http/outgoing-handler` directly, reporting
//!   whether an error came from `handle` itself or from the future response;
//! - `/tcp?addr=IP:PORT` — connect a TCP socket, send `ping\n`, answer with the reply line;
//! - `/redis?addr=redis://…` — a round of every outbound Redis operation, results as JSON;
//! - `/mqtt?topic=T&qos=0|1|2&addr=mqtt://…` — publish `hello from the probe` (`addr` last);
//! - `/sleep?ms=N` — answer after N milliseconds;
//! - `/print?<text>` — write the text to stdout and stderr;
//! - `/instance-count` — how many requests this instance has served (always 1 when each
//!   request gets a fresh instance);
//! - `/loop`, `/memory`, `/trap` — misbehave (for limit tests);
//! - `/behave` — slow by `DELAY_MS`, failing `FAIL_PERCENT` of the time (for rollout tests);
//! - `/nn/<model>`, `/nn-load-bytes` — `wasi:nn` (see `nn.rs`).

mod nn;

use std::sync::atomic::{AtomicU32, Ordering};

/// Requests served by this instance.
static SERVED: AtomicU32 = AtomicU32::new(0);

use serde_json::{json, Value as Json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::{http_component, key_value, sqlite, variables};

fn respond(status: u16, body: Json) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let info = req
        .header("spin-path-info")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .to_string();
    let parts: Vec<&str> = info.trim_start_matches('/').splitn(3, '/').collect();
    Ok(match parts.as_slice() {
        ["kv", store, rest @ ..] => kv(&req, store, rest.first().copied()),
        ["sqlite", db, ..] => sql(&req, db),
        ["var", name, ..] => match variables::get(name) {
            Ok(value) => respond(200, json!({ "value": value })),
            Err(e) => respond(404, json!({ "error": format!("{e:?}") })),
        },
        ["env", name, ..] => respond(200, json!({ "value": std::env::var(name).ok() })),
        ["file", ..] => {
            let path = info.trim_start_matches("/file");
            match std::fs::read_to_string(path) {
                Ok(text) => respond(200, json!({ "content": text })),
                Err(e) => respond(404, json!({ "error": e.to_string() })),
            }
        }
        ["outbound", ..] => outbound(&req).await,
        ["outbound-raw", ..] => outbound_raw(&req),
        ["tcp", ..] => tcp(&req),
        ["redis", ..] => redis(&req),
        ["mqtt", ..] => mqtt(&req),
        // A release's behaviour under rollout tests: the environment's `DELAY_MS` added to
        // every answer, `FAIL_PERCENT` of answers a 500 (drawn from WASI's random source),
        // and, with `CONVERT_PERCENT`, a business metric `converted` (1 that often, else 0).
        ["behave", ..] => {
            let env = |name: &str| -> u64 {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            std::thread::sleep(std::time::Duration::from_millis(env("DELAY_MS")));
            use std::hash::{BuildHasher, Hasher};
            let percent = || {
                let mut draw = std::collections::hash_map::RandomState::new().build_hasher();
                draw.write_u32(SERVED.load(Ordering::Relaxed));
                draw.finish() % 100
            };
            if std::env::var("CONVERT_PERCENT").is_ok() {
                let converted = u8::from(percent() < env("CONVERT_PERCENT"));
                println!("vitrine-metric converted={converted}");
            }
            match percent() < env("FAIL_PERCENT") {
                true => respond(500, json!({ "error": "failing on purpose" })),
                false => respond(200, json!({ "ok": true })),
            }
        }
        ["sleep", ..] => {
            let ms = req
                .query()
                .strip_prefix("ms=")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            respond(200, json!({ "slept_ms": ms }))
        }
        ["print", ..] => {
            println!("stdout says {}", req.query());
            eprintln!("stderr says {}", req.query());
            respond(200, json!({ "printed": req.query() }))
        }
        ["instance-count", ..] => respond(
            200,
            json!({ "served": SERVED.fetch_add(1, Ordering::SeqCst) + 1 }),
        ),
        ["loop", ..] => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        ["memory", ..] => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 4 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        ["trap", ..] => panic!("the probe was asked to trap"),
        ["nn", model, ..] => {
            let repeat = req
                .query()
                .strip_prefix("repeat=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let (status, body) = nn::compute(model, req.body(), repeat);
            respond(status, body)
        }
        ["nn-load-bytes", ..] => {
            let (status, body) = nn::load_bytes();
            respond(status, body)
        }
        _ => echo(&req),
    })
}

fn echo(req: &Request) -> Response {
    let headers: serde_json::Map<String, Json> = req
        .headers()
        .map(|(name, value)| (name.to_string(), json!(value.as_str().unwrap_or(""))))
        .collect();
    respond(
        200,
        json!({
            "method": req.method().to_string(),
            "uri": req.uri(),
            "path_and_query": req.path_and_query(),
            "headers": headers,
            "body_length": req.body().len(),
        }),
    )
}

fn kv(req: &Request, label: &str, key: Option<&str>) -> Response {
    let store = match key_value::Store::open(label) {
        Ok(store) => store,
        Err(e) => return respond(403, json!({ "error": format!("{e:?}") })),
    };
    let result = match (req.method(), key) {
        (Method::Get, None) => store.get_keys().map(|keys| json!({ "keys": keys })),
        (Method::Get, Some(key)) => store.get(key).map(|v| {
            json!({ "value": v.map(|v| String::from_utf8_lossy(&v).into_owned()), "exists": store.exists(key).unwrap_or(false) })
        }),
        (Method::Put, Some(key)) => store.set(key, req.body()).map(|()| json!({ "stored": key })),
        (Method::Delete, Some(key)) => store.delete(key).map(|()| json!({ "deleted": key })),
        _ => return respond(405, json!({ "error": "unsupported method" })),
    };
    match result {
        Ok(body) => respond(200, body),
        Err(e) => respond(500, json!({ "error": format!("{e:?}") })),
    }
}

fn sql(req: &Request, label: &str) -> Response {
    let Ok(input) = serde_json::from_slice::<Json>(req.body()) else {
        return respond(400, json!({ "error": "body must be JSON" }));
    };
    // One statement, or several run in order on one connection (the last one's rows answer).
    let statements: Vec<&str> = match &input["sql"] {
        Json::Array(list) => list.iter().filter_map(Json::as_str).collect(),
        other => vec![other.as_str().unwrap_or_default()],
    };
    let params: Vec<sqlite::Value> = input["params"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| match p {
                    Json::Number(n) if n.is_i64() => {
                        sqlite::Value::Integer(n.as_i64().unwrap_or(0))
                    }
                    Json::Number(n) => sqlite::Value::Real(n.as_f64().unwrap_or(0.0)),
                    Json::String(s) => sqlite::Value::Text(s.clone()),
                    _ => sqlite::Value::Null,
                })
                .collect()
        })
        .unwrap_or_default();
    let conn = match sqlite::Connection::open(label) {
        Ok(conn) => conn,
        Err(e) => return respond(403, json!({ "error": format!("{e:?}") })),
    };
    let (last, before) = statements.split_last().unwrap_or((&"", &[]));
    for (i, statement) in before.iter().enumerate() {
        if let Err(e) = conn.execute(statement, &[]) {
            return respond(500, json!({ "error": format!("statement {i}: {e:?}") }));
        }
    }
    match conn.execute(last, &params) {
        Ok(result) => {
            let rows: Vec<Json> = result
                .rows
                .iter()
                .map(|row| {
                    Json::Array(
                        row.values
                            .iter()
                            .map(|v| match v {
                                sqlite::Value::Integer(i) => json!(i),
                                sqlite::Value::Real(r) => json!(r),
                                sqlite::Value::Text(t) => json!(t),
                                sqlite::Value::Blob(b) => json!(b),
                                sqlite::Value::Null => Json::Null,
                            })
                            .collect(),
                    )
                })
                .collect();
            respond(200, json!({ "columns": result.columns, "rows": rows }))
        }
        Err(e) => respond(500, json!({ "error": format!("{e:?}") })),
    }
}

/// Connects to `addr`, sends `ping`, and reports the reply line or the error's kind.
fn tcp(req: &Request) -> Response {
    use std::io::{BufRead, BufReader, Write};
    let addr = req.query().strip_prefix("addr=").unwrap_or_default();
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        return respond(400, json!({ "error": format!("`{addr}` is not IP:PORT") }));
    };
    let exchange = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.write_all(b"ping\n")?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply)?;
        Ok(reply.trim_end().to_string())
    };
    match exchange() {
        Ok(reply) => respond(200, json!({ "reply": reply })),
        Err(e) => respond(
            502,
            json!({ "kind": format!("{:?}", e.kind()), "error": e.to_string() }),
        ),
    }
}

/// Publishes one message through `fermyon:spin/mqtt`.
fn mqtt(req: &Request) -> Response {
    use spin_sdk::mqtt::{Connection, Qos};
    let query = req.query();
    let (params, addr) = query.split_once("addr=").unwrap_or((query, ""));
    let param = |name: &str| {
        params
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
    };
    let qos = match param("qos") {
        "0" => Qos::AtMostOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtLeastOnce,
    };
    let published = Connection::open(addr, "", "", 30)
        .and_then(|conn| conn.publish(param("topic"), b"hello from the probe".as_ref(), qos));
    match published {
        Ok(()) => respond(200, json!({ "published": true })),
        Err(e) => respond(502, json!({ "error": format!("{e:?}") })),
    }
}

/// Runs every `fermyon:spin/redis` operation once against `addr` (keys `probe:*`).
fn redis(req: &Request) -> Response {
    use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
    let addr = req.query().strip_prefix("addr=").unwrap_or_default();
    let conn = match Connection::open(addr) {
        Ok(conn) => conn,
        Err(e) => return respond(403, json!({ "error": format!("{e:?}") })),
    };
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    let round = || -> Result<Json, spin_sdk::redis::Error> {
        conn.set("probe:k", b"v1".as_ref())?;
        let got = conn
            .get("probe:k")?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let missing = conn.get("probe:missing")?;
        let counts = [conn.incr("probe:n")?, conn.incr("probe:n")?];
        let added = conn.sadd("probe:s", &strings(&["a", "b", "a"]))?;
        let mut members = conn.smembers("probe:s")?;
        members.sort();
        let removed = conn.srem("probe:s", &strings(&["a", "zz"]))?;
        let deleted = conn.del(&strings(&[
            "probe:k",
            "probe:n",
            "probe:s",
            "probe:missing",
        ]))?;
        let echoed: Vec<Json> = conn
            .execute("ECHO", &[RedisParameter::Binary(b"hi".to_vec())])?
            .into_iter()
            .chain(conn.execute(
                "INCRBY",
                &[
                    RedisParameter::Binary(b"probe:x".to_vec()),
                    RedisParameter::Int64(5),
                ],
            )?)
            .chain(conn.execute(
                "SET",
                &[
                    RedisParameter::Binary(b"probe:x".to_vec()),
                    RedisParameter::Binary(b"1".to_vec()),
                ],
            )?)
            .chain(conn.execute("GET", &[RedisParameter::Binary(b"probe:nothing".to_vec())])?)
            .map(|r| match r {
                RedisResult::Nil => json!(null),
                RedisResult::Status(s) => json!({ "status": s }),
                RedisResult::Int64(i) => json!(i),
                RedisResult::Binary(b) => json!(String::from_utf8_lossy(&b)),
            })
            .collect();
        conn.del(&strings(&["probe:x"]))?;
        conn.publish("probe:channel", b"hello".as_ref())?;
        Ok(json!({
            "get": got, "missing": missing, "incr": counts, "sadd": added, "smembers": members,
            "srem": removed, "del": deleted, "execute": echoed,
        }))
    };
    match round() {
        Ok(body) => respond(200, body),
        Err(e) => respond(500, json!({ "error": format!("{e:?}") })),
    }
}

/// The `url` query parameter.
fn url_parameter(req: &Request) -> String {
    req.query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("url="))
        .unwrap_or_default()
        .to_string()
}

/// GETs `http://authority/path` through `outgoing-handler.handle` and says at which step an
/// error arrived: `handle` (returned at once) or `response` (the future resolved to it).
fn outbound_raw(req: &Request) -> Response {
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};
    let url = url_parameter(req);
    let rest = url.strip_prefix("http://").unwrap_or(&url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = types::OutgoingRequest::new(types::Fields::new());
    let _ = request.set_scheme(Some(&types::Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(if path.is_empty() { "/" } else { path }));
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => {
            return respond(
                200,
                json!({ "step": "handle", "error": format!("{code:?}") }),
            )
        }
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => respond(
            200,
            json!({ "step": "response", "status": response.status() }),
        ),
        Some(Ok(Err(code))) => respond(
            200,
            json!({ "step": "response", "error": format!("{code:?}") }),
        ),
        other => respond(
            500,
            json!({ "step": "response", "error": format!("{other:?}") }),
        ),
    }
}

async fn outbound(req: &Request) -> Response {
    let url = url_parameter(req);
    let request = Request::get(url.clone()).build();
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(response) => respond(
            200,
            json!({
                "status": *response.status(),
                "body": String::from_utf8_lossy(response.body()),
            }),
        ),
        Err(e) => respond(502, json!({ "error": e.to_string(), "url": url })),
    }
}
