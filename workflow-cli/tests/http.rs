//! The HTTP API through its router: every endpoint, every 4xx answer, and
//! the token, Host, Origin and read-only guards.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use replayflow::http::{HttpConfig, router};
use replayflow::{AnyError, Context, ExecutionStatus, Runtime, step, workflow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::{TempDb, seed, wait_status, within};
use tower::ServiceExt;

const HOST: &str = "localhost:8080";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// Asserts a JSON error answer with `status` and returns its message.
fn error(answer: &Answer, status: StatusCode) -> String {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "{}",
        answer.text
    );
    answer.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {}", answer.text))
        .to_owned()
}

async fn worker_app(db: &TempDb) -> (Runtime, Router) {
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    let app = router(rt.clone(), HttpConfig::new());
    (rt, app)
}

#[tokio::test]
async fn info_tells_the_mode_and_the_workflows() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;
    let a = send(&app, get("/api/info")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["mode"], "worker");
    assert_eq!(a.body["read_only"], false);
    assert_eq!(a.body["can_start"], true);
    assert_eq!(a.body["database"], "app.db");
    assert!(
        a.body["workflows"]
            .as_array()
            .unwrap()
            .contains(&json!("greet"))
    );
    assert_eq!(a.body["statuses"].as_array().unwrap().len(), 9);
    // A SQLite file has no workers to list (the process holding its lock runs it).
    let w = send(&app, get("/api/workers")).await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.text);
    assert_eq!(w.body, json!({ "workers": [] }));

    let admin = router(db.admin().await, HttpConfig::new().read_only(true));
    let a = send(&admin, get("/api/info")).await;
    assert_eq!(a.body["mode"], "admin");
    assert_eq!(a.body["read_only"], true);
    assert_eq!(a.body["can_start"], false);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn lists_with_filters_and_pages() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;

    let a = send(&app, get("/api/executions")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let all = a.body["executions"].as_array().unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(a.body["limit"], 50);
    assert_eq!(a.body["has_more"], false);
    // Newest first.
    assert_eq!(all[0]["id"], "boom-1");
    let first = &all[6];
    assert_eq!(first["id"], "greet-1");
    assert_eq!(first["workflow"], "greet");
    assert_eq!(first["status"], "completed");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));

    let a = send(&app, get("/api/executions?status=sleeping")).await;
    let ids: Vec<&str> = a.body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["nap-2", "nap-1"]);

    let a = send(&app, get("/api/executions?workflow=doomed&status=")).await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["executions"][0]["error_message"], "no such customer");

    let a = send(&app, get("/api/executions?limit=3&offset=2")).await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 3);
    assert_eq!(a.body["executions"][0]["id"], "nap-1");
    assert_eq!(a.body["has_more"], true);
    assert_eq!(a.body["offset"], 2);
    let a = send(&app, get("/api/executions?limit=3&offset=6")).await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["has_more"], false);

    let a = send(&app, get("/api/executions?since=1h")).await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 7);
    let a = send(&app, get("/api/executions?until=1h")).await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 0);
    let a = send(
        &app,
        get("/api/executions?since=2000-01-01T00:00:00%2B01:00"),
    )
    .await;
    assert_eq!(a.body["executions"].as_array().unwrap().len(), 7);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_filters_are_400() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;
    for (uri, needle) in [
        ("/api/executions?status=done", "unknown status `done`"),
        ("/api/executions?since=yesterday", "`since`"),
        ("/api/executions?until=2025-13-01", "`until`"),
        ("/api/executions?limit=0", "`limit`"),
        ("/api/executions?limit=100000", "`limit`"),
        ("/api/executions?limit=ten", "`limit`"),
        ("/api/executions?offset=-1", "`offset`"),
        ("/api/executions?colour=red", "colour"),
        ("/api/counts?since=soon", "`since`"),
    ] {
        let a = send(&app, get(uri)).await;
        let message = error(&a, StatusCode::BAD_REQUEST);
        assert!(message.contains(needle), "{uri}: {message}");
    }
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn counts_every_status() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;
    let a = send(&app, get("/api/counts")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["total"], 7);
    let counts = a.body["counts"].as_object().unwrap();
    assert_eq!(counts.len(), ExecutionStatus::ALL.len());
    assert_eq!(counts["completed"], 3);
    assert_eq!(counts["failed"], 1);
    assert_eq!(counts["sleeping"], 2);
    assert_eq!(counts["panicked"], 1);
    assert_eq!(counts["paused"], 0);
    // In declaration order.
    assert!(a.text.starts_with(r#"{"counts":{"running":"#), "{}", a.text);

    let a = send(&app, get("/api/counts?workflow=nap")).await;
    assert_eq!(a.body["total"], 2);
    assert_eq!(a.body["counts"]["sleeping"], 2);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn shows_an_execution_with_its_steps_and_attempts() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;

    let a = send(&app, get("/api/executions/flaky-1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let e = &a.body;
    assert_eq!(e["status"], "completed");
    assert_eq!(e["actions"], json!([]));
    assert_eq!(e["codec"], "json");
    assert_eq!(e["input"], json!({}));
    assert_eq!(e["output"], 3);
    assert!(e.get("error").is_none());
    assert!(e["completed_at"].is_string());
    let step = &e["steps"][0];
    assert_eq!(step["key"], "wobble#0");
    assert_eq!(step["kind"], "step");
    assert_eq!(step["status"], "completed");
    assert_eq!(step["attempts"], 3);
    assert_eq!(step["output"], 3);
    let log = step["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["error"], "wobble 1 fell over");
    assert_eq!(log[2]["status"], "completed");

    let a = send(&app, get("/api/executions/doomed-1")).await;
    assert_eq!(a.body["status"], "failed");
    assert_eq!(a.body["actions"], json!(["restart"]));
    assert_eq!(a.body["error"]["message"], "no such customer");
    assert_eq!(a.body["error_message"], "no such customer");
    assert!(a.body.get("output").is_none());

    let a = send(&app, get("/api/executions/nap-1")).await;
    assert_eq!(a.body["status"], "sleeping");
    assert_eq!(a.body["actions"], json!(["cancel", "resume"]));
    assert!(a.body["wake_at"].is_string());
    assert_eq!(a.body["steps"][1]["kind"], "sleep");
    assert_eq!(a.body["steps"][1]["status"], "sleeping");

    let a = send(&app, get("/api/executions/boom-1")).await;
    assert_eq!(a.body["status"], "panicked");
    assert!(
        a.body["error_message"]
            .as_str()
            .unwrap()
            .contains("the fuse was lit"),
        "{}",
        a.text
    );

    let message = error(
        &send(&app, get("/api/executions/no-such-id")).await,
        StatusCode::NOT_FOUND,
    );
    assert!(message.contains("no-such-id"), "{message}");

    // Ids travel percent-encoded in one segment.
    greet_with_id(&rt, "odd id/with slash").await;
    let a = send(&app, get("/api/executions/odd%20id%2Fwith%20slash")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["id"], "odd id/with slash");
    rt.shutdown().await.unwrap();
}

async fn greet_with_id(rt: &Runtime, id: &str) {
    support::greet::start(rt, id, "Odd".to_owned())
        .await
        .unwrap();
    wait_status(rt, id, ExecutionStatus::Completed).await;
}

#[tokio::test]
async fn actions_apply_on_a_worker() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;

    let a = send(&app, post("/api/executions/nap-1/cancel", "")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["outcome"], "applied");
    assert_eq!(a.body["action"], "cancel");
    wait_status(&rt, "nap-1", ExecutionStatus::Cancelled).await;

    let a = send(&app, post("/api/executions/nap-2/resume", "{}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    wait_status(&rt, "nap-2", ExecutionStatus::Completed).await;

    let a = send(&app, post("/api/executions/boom-1/restart", "{}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    wait_status(&rt, "boom-1", ExecutionStatus::Completed).await;
    assert_eq!(rt.status("boom-1").await.unwrap().restart_attempt, 1);

    // A failed one runs its failed step again (and fails again).
    let a = send(&app, post("/api/executions/doomed-1/restart", "{}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    within(async {
        loop {
            let info = rt.status("doomed-1").await.unwrap();
            if info.restart_attempt == 1 && info.status == ExecutionStatus::Failed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The entry the restart set aside is in the view, with its error.
    let a = send(&app, get("/api/executions/doomed-1")).await;
    assert_eq!(a.body["restart_attempt"], 1);
    let aside = a.body["superseded"].as_array().unwrap();
    assert_eq!(aside.len(), 1, "{}", a.text);
    assert_eq!(aside[0]["run"], 0);
    assert!(aside[0]["superseded_at"].is_string());
    assert_eq!(aside[0]["step"]["key"], "refuse#0");
    assert_eq!(aside[0]["step"]["status"], "failed");
    assert_eq!(aside[0]["step"]["error"], "no such customer");
    assert_eq!(
        aside[0]["step"]["attempt_log"][0]["error"],
        "no such customer"
    );

    // What the status does not allow is a conflict.
    for (uri, needle) in [
        ("/api/executions/greet-1/cancel", "nothing to cancel"),
        ("/api/executions/greet-1/resume", "nothing to resume"),
        (
            "/api/executions/greet-2/restart",
            "only panicked and failed",
        ),
    ] {
        let message = error(&send(&app, post(uri, "")).await, StatusCode::CONFLICT);
        assert!(message.contains(needle), "{uri}: {message}");
    }
    error(
        &send(&app, post("/api/executions/nope/cancel", "")).await,
        StatusCode::NOT_FOUND,
    );
    let message = error(
        &send(&app, post("/api/executions/greet-1/explode", "")).await,
        StatusCode::NOT_FOUND,
    );
    assert!(message.contains("unknown action"), "{message}");
    let message = error(
        &send(&app, post("/api/executions/greet-1/cancel", "[1, 2")).await,
        StatusCode::BAD_REQUEST,
    );
    assert!(message.contains("JSON object"), "{message}");
    error(
        &send(&app, get("/api/executions/greet-1/cancel")).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn actions_on_an_admin_server_are_requests_the_worker_applies() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    let admin = router(db.admin().await, HttpConfig::new());

    let a = send(&admin, post("/api/executions/nap-1/cancel", "{}")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.body["outcome"], "requested");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("within a second"),
        "{}",
        a.text
    );
    // The worker sweeps every second; allow for a loaded machine.
    within(async {
        loop {
            let a = send(&admin, get("/api/executions/nap-1")).await;
            if a.body["status"] == "cancelled" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let a = send(&admin, post("/api/executions/boom-1/restart", "{}")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    wait_status(&rt, "boom-1", ExecutionStatus::Completed).await;

    let message = error(
        &send(
            &admin,
            post(
                "/api/workflows/greet/executions",
                r#"{"input": {"name": "x"}}"#,
            ),
        )
        .await,
        StatusCode::CONFLICT,
    );
    assert!(message.contains("admin"), "{message}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn starts_a_registered_workflow_by_name() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;

    let a = send(&app, get("/api/workflows")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["can_start"], true);
    assert!(
        a.body["workflows"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "greet"}))
    );

    let a = send(
        &app,
        post(
            "/api/workflows/greet/executions",
            r#"{"id": "web-1", "input": {"name": "Linus"}}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["id"], "web-1");
    assert_eq!(a.body["created"], true);
    assert_eq!(a.headers[header::LOCATION], "/api/executions/web-1");
    wait_status(&rt, "web-1", ExecutionStatus::Completed).await;
    let a = send(&app, get("/api/executions/web-1")).await;
    assert_eq!(a.body["output"], "hello, Linus");

    // Idempotent on the id.
    let a = send(
        &app,
        post(
            "/api/workflows/greet/executions",
            r#"{"id": "web-1", "input": {"name": "Linus"}}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["created"], false);

    // Without an id, one is made up.
    let a = send(&app, post("/api/workflows/flaky/executions", "{}")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["id"].as_str().unwrap().len(), 36);

    for (uri, body, status, needle) in [
        (
            "/api/workflows/nope/executions",
            "{}",
            StatusCode::NOT_FOUND,
            "not registered",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"input": {"name": 7}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"input": "Linus"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "JSON object",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"id": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid type",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"input": {"name": "x"}, "extra": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "extra",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"input": {"#,
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        (
            "/api/workflows/greet/executions",
            "",
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        (
            "/api/workflows/greet/executions",
            r#"{"id": " ", "input": {"name": "x"}}"#,
            StatusCode::BAD_REQUEST,
            "`id`",
        ),
        (
            "/api/workflows/doomed/executions",
            r#"{"id": "greet-1", "input": {"reason": "x"}}"#,
            StatusCode::CONFLICT,
            "greet-1",
        ),
    ] {
        let message = error(&send(&app, post(uri, body)).await, status);
        assert!(message.contains(needle), "{body}: {message}");
    }
    rt.shutdown().await.unwrap();
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wide {
    max: u64,
    past_f64: u64,
    min: i64,
}

#[step]
async fn widen(n: u64) -> Result<Wide, AnyError> {
    Ok(Wide {
        max: n,
        past_f64: (1 << 53) + 1,
        min: i64::MIN,
    })
}

/// Integers no JavaScript number holds, in its input, a step's output and
/// its own output.
#[workflow]
async fn wide(_ctx: Context, n: u64) -> Result<Wide, AnyError> {
    widen(n).await
}

#[tokio::test]
async fn integers_beyond_2_pow_53_keep_every_digit() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new());

    // In: the input is read as the integer it is.
    let a = send(
        &app,
        post(
            "/api/workflows/wide/executions",
            r#"{"id": "wide-1", "input": {"n": 18446744073709551615}}"#,
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    wait_status(&rt, "wide-1", ExecutionStatus::Completed).await;

    // Out: every payload prints every digit.
    let a = send(&app, get("/api/executions/wide-1")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // (Payloads are decoded to JSON values, whose keys print sorted.)
    let wide =
        r#"{"max":18446744073709551615,"min":-9223372036854775808,"past_f64":9007199254740993}"#;
    assert!(
        a.text.contains(r#""input":{"n":18446744073709551615}"#),
        "{}",
        a.text
    );
    assert!(
        a.text.contains(&format!(r#""output":{wide}"#)),
        "{}",
        a.text
    );
    assert_eq!(a.text.matches(wide).count(), 2, "{}", a.text);
    assert_eq!(a.body["output"]["max"].as_u64(), Some(u64::MAX));
    assert_eq!(a.body["output"]["past_f64"].as_u64(), Some((1 << 53) + 1));
    assert_eq!(a.body["steps"][0]["output"]["min"].as_i64(), Some(i64::MIN));
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new().max_body_bytes(1024));
    let big = format!(r#"{{"input": {{"name": "{}"}}}}"#, "x".repeat(4096));
    let message = error(
        &send(&app, post("/api/workflows/greet/executions", &big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    assert!(message.contains("limit"), "{message}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn state_changes_need_json_and_an_allowed_origin() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;

    let request = |content_type: Option<&str>, origin: Option<&str>| {
        let mut r = Request::post("/api/executions/nap-1/resume").header(header::HOST, HOST);
        if let Some(c) = content_type {
            r = r.header(header::CONTENT_TYPE, c);
        }
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.body(Body::from("{}")).unwrap()
    };
    // A form post, or no type at all: a cross-site page could send those.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let message = error(
            &send(&app, request(content_type, None)).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        );
        assert!(message.contains("application/json"), "{message}");
    }
    for origin in ["http://evil.example", "null", "http://localhost:9999"] {
        let message = error(
            &send(&app, request(Some("application/json"), Some(origin))).await,
            StatusCode::FORBIDDEN,
        );
        assert!(message.contains("Origin"), "{message}");
    }
    let a = send(
        &app,
        request(
            Some("application/json; charset=utf-8"),
            Some("http://localhost:8080"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);

    let listed = router(
        rt.clone(),
        HttpConfig::new().allow_origin("https://ops.example.com"),
    );
    let a = send(
        &listed,
        request(Some("application/json"), Some("https://ops.example.com")),
    )
    .await;
    // Past the guard: the first resume may have let nap-1 complete already,
    // and then there is nothing left to resume (409), which is not a refusal
    // by the guard (403).
    assert!(
        a.status == StatusCode::OK || a.status == StatusCode::CONFLICT,
        "{} {}",
        a.status,
        a.text
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_host_is_checked_against_dns_rebinding() {
    let db = TempDb::new();
    let (rt, app) = worker_app(&db).await;
    let with_host = |host: &str, uri: &str| {
        Request::get(uri)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    for host in [
        "localhost:8080",
        "127.0.0.1:1234",
        "[::1]:8080",
        "localhost",
    ] {
        let a = send(&app, with_host(host, "/api/counts")).await;
        assert_eq!(a.status, StatusCode::OK, "{host}: {}", a.text);
    }
    for uri in ["/api/counts", "/"] {
        let message = error(
            &send(&app, with_host("attacker.example:8080", uri)).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(message.contains("Host"), "{message}");
    }
    let no_host = Request::get("/api/counts").body(Body::empty()).unwrap();
    error(&send(&app, no_host).await, StatusCode::BAD_REQUEST);

    // Bound to a port, only that port; other names when listed.
    let bound = router(
        rt.clone(),
        HttpConfig::for_addr("127.0.0.1:8080".parse().unwrap()).allow_host("ops.example.com"),
    );
    assert_eq!(
        send(&bound, with_host("localhost:8080", "/api/counts"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&bound, with_host("ops.example.com", "/api/counts"))
            .await
            .status,
        StatusCode::OK
    );
    error(
        &send(&bound, with_host("localhost:9090", "/api/counts")).await,
        StatusCode::BAD_REQUEST,
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_guards_the_api_but_not_the_dashboard_files() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    let app = router(rt.clone(), HttpConfig::new().token("s3cret-token"));
    let with_auth = |auth: Option<&str>, uri: &str| {
        let mut r = Request::get(uri).header(header::HOST, HOST);
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(Body::empty()).unwrap()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-token-and-more"),
        Some("Basic czNjcmV0LXRva2Vu"),
        Some("s3cret-token"),
    ] {
        let a = send(&app, with_auth(auth, "/api/executions")).await;
        error(&a, StatusCode::UNAUTHORIZED);
        assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
        assert!(!a.text.contains("s3cret"), "the token leaked: {}", a.text);
    }
    for auth in ["Bearer s3cret-token", "bearer s3cret-token"] {
        let a = send(&app, with_auth(Some(auth), "/api/executions")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    // Unknown API paths need the token too.
    error(
        &send(&app, with_auth(None, "/api/nope")).await,
        StatusCode::UNAUTHORIZED,
    );
    let a = send(&app, with_auth(None, "/")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(!format!("{:?}", HttpConfig::new().token("s3cret-token")).contains("s3cret"));
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn read_only_refuses_every_change() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    let app = router(rt.clone(), HttpConfig::new().read_only(true));
    for uri in [
        "/api/executions/nap-1/cancel",
        "/api/executions/nap-1/resume",
        "/api/executions/boom-1/restart",
        "/api/workflows/greet/executions",
    ] {
        let message = error(&send(&app, post(uri, "{}")).await, StatusCode::FORBIDDEN);
        assert!(message.contains("read-only"), "{message}");
    }
    assert_eq!(
        rt.status("nap-1").await.unwrap().status,
        ExecutionStatus::Sleeping
    );
    let a = send(&app, get("/api/executions/nap-1")).await;
    assert_eq!(a.status, StatusCode::OK);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new());
    error(&send(&app, get("/api/nope")).await, StatusCode::NOT_FOUND);
    error(&send(&app, get("/nope")).await, StatusCode::NOT_FOUND);
    let delete = Request::builder()
        .method(Method::DELETE)
        .uri("/api/executions/x")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    error(&send(&app, delete).await, StatusCode::METHOD_NOT_ALLOWED);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn serves_the_dashboard_files() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new());
    let a = send(&app, get("/")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(a.text.contains("assets/app.js"));
    for (uri, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let a = send(&app, get(uri)).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{uri}"
        );
    }
    // The script never turns data into markup.
    let script = send(&app, get("/assets/app.js")).await.text;
    assert!(!script.contains("innerHTML"));
    assert!(!script.contains("insertAdjacentHTML"));

    let without = router(rt.clone(), HttpConfig::new().dashboard(false));
    error(&send(&without, get("/")).await, StatusCode::NOT_FOUND);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn messages_are_sent_and_events_read_through_the_api() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new());
    let handle = support::mailbox::start(&rt, "m-1").await.unwrap();
    within(async {
        while rt
            .get_event::<String>("m-1", "state")
            .await
            .unwrap()
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let events = send(&app, get("/api/executions/m-1/events")).await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    assert_eq!(events.body["events"][0]["key"], "state");
    assert_eq!(events.body["events"][0]["value"], "waiting for approval");

    // Bad requests are 4xx with a JSON error, and send nothing.
    let uri = "/api/executions/m-1/messages";
    error(&send(&app, post(uri, "{")).await, StatusCode::BAD_REQUEST);
    let e = error(
        &send(&app, post(uri, r#"{"message": 1}"#)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(e.contains("topic"), "{e}");
    let e = error(
        &send(&app, post(uri, r#"{"topic": "", "message": 1}"#)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    assert!(e.contains("`topic` must not be empty"), "{e}");
    let unknown = post(
        "/api/executions/nobody/messages",
        r#"{"topic": "t", "message": 1}"#,
    );
    error(&send(&app, unknown).await, StatusCode::NOT_FOUND);
    error(
        &send(&app, get("/api/executions/nobody/events")).await,
        StatusCode::NOT_FOUND,
    );

    let body = r#"{"topic": "approval", "message": {"approver": "bo", "approved": false}, "idempotency_key": "hook-1"}"#;
    let sent = send(&app, post(uri, body)).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    assert_eq!(sent.body["delivered"], true);
    let again = send(&app, post(uri, body)).await;
    assert_eq!(again.body["delivered"], false, "one delivery per key");
    assert_eq!(within(handle.result()).await.unwrap(), "bo rejected");

    // Finished: 409.
    let late = send(&app, post(uri, r#"{"topic": "approval", "message": 1}"#)).await;
    let e = error(&late, StatusCode::CONFLICT);
    assert!(e.contains("takes no more messages"), "{e}");
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stream_is_served_as_server_sent_events_resumable_by_last_event_id() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let app = router(rt.clone(), HttpConfig::new());
    let handle = support::ticker::start(&rt, "t-1").await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 3);

    let all = send(&app, get("/api/executions/t-1/streams/ticks")).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.headers[header::CONTENT_TYPE], "text/event-stream");
    let events: Vec<&str> = all.text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events,
        [
            "id: 0\ndata: 0",
            "id: 1\ndata: 10",
            "id: 2\ndata: 20",
            "event: end\ndata: end"
        ],
        "{}",
        all.text
    );

    let resume = Request::get("/api/executions/t-1/streams/ticks")
        .header(header::HOST, HOST)
        .header("last-event-id", "1")
        .body(Body::empty())
        .unwrap();
    let rest = send(&app, resume).await;
    assert!(
        rest.text.starts_with("id: 2\ndata: 20\n\n"),
        "{}",
        rest.text
    );

    let bad = Request::get("/api/executions/t-1/streams/ticks")
        .header(header::HOST, HOST)
        .header("last-event-id", "yesterday")
        .body(Body::empty())
        .unwrap();
    let e = error(&send(&app, bad).await, StatusCode::BAD_REQUEST);
    assert!(e.contains("Last-Event-ID"), "{e}");
    error(
        &send(&app, get("/api/executions/nobody/streams/ticks")).await,
        StatusCode::NOT_FOUND,
    );
    rt.shutdown().await.unwrap();
}
