//! The JSON endpoints under `/api/`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::HttpConfig;
use super::problem::ApiError;
use super::query::{ListQuery, count_by_status};
use super::view::{ExecutionView, SummaryView, WorkerView};
use crate::error::Error;
use crate::record::ExecutionId;
use crate::runtime::Runtime;
use crate::status::{AdminAction, ExecutionStatus};

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub rt: Runtime,
    pub config: Arc<HttpConfig>,
}

type ApiResult = Result<Response, ApiError>;

fn ok_json(status: StatusCode, body: &impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn query_or_400(query: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The workflow names to offer: those this process registers, or on an admin
/// open (which registers none) those the database's workers registered.
async fn known_workflows(rt: &Runtime) -> Result<Vec<String>, ApiError> {
    if rt.is_admin() {
        Ok(rt.registered_workflows().await?)
    } else {
        Ok(rt.workflows().into_iter().map(str::to_owned).collect())
    }
}

/// `GET /api/info`: the server's mode and what the dashboard may offer.
pub(crate) async fn info(State(state): State<AppState>) -> ApiResult {
    let admin = state.rt.is_admin();
    let workflows = known_workflows(&state.rt).await?;
    let database = state
        .rt
        .path()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    Ok(ok_json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": if admin { "admin" } else { "worker" },
            "read_only": state.config.read_only,
            "can_start": !admin && !state.config.read_only,
            "database": database,
            "statuses": ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "workflows": workflows,
        }),
    ))
}

/// `GET /api/executions`: a page of executions, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let query = query_or_400(query)?;
    let mut filter = query
        .to_filter(state.rt.engine.clock.now())
        .map_err(ApiError::bad_request)?;
    let limit = filter.limit.unwrap_or(super::query::DEFAULT_LIMIT);
    let offset = filter.offset.unwrap_or(0);
    // One more than asked, to tell whether another page follows.
    filter.limit = Some(limit.saturating_add(1));
    let mut rows = state.rt.list(filter).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let executions: Vec<SummaryView> = rows.iter().map(SummaryView::from).collect();
    Ok(ok_json(
        StatusCode::OK,
        &json!({
            "executions": executions,
            "limit": limit,
            "offset": offset,
            "has_more": has_more,
        }),
    ))
}

/// `GET /api/counts`: executions per status, for the list's workflow and
/// time filters.
pub(crate) async fn counts(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let query = query_or_400(query)?;
    let filter = query
        .to_filter(state.rt.engine.clock.now())
        .map_err(ApiError::bad_request)?;
    let counts = count_by_status(&state.rt, &filter).await?;
    Ok(ok_json(StatusCode::OK, &counts))
}

/// `GET /api/executions/{id}`: one execution with its journal.
pub(crate) async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let info = state.rt.status(id).await?;
    let view = ExecutionView::new(&info, state.rt.engine.clock.now());
    Ok(ok_json(StatusCode::OK, &view))
}

/// `POST /api/executions/{id}/{cancel|resume|restart}`.
pub(crate) async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let action = match action.as_str() {
        "cancel" => AdminAction::Cancel,
        "resume" => AdminAction::Resume,
        "restart" => AdminAction::Restart,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action `{action}`, expected cancel, resume or restart"),
            ));
        }
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<serde_json::Map<String, Value>>(&body).map_err(|e| {
            ApiError::bad_request(format!("the body must be empty or a JSON object: {e}"))
        })?;
    }
    let id = ExecutionId::new(id);
    let info = state.rt.status(id.clone()).await?;
    check_action(&id, info.status, action)?;
    match action {
        AdminAction::Cancel => state.rt.cancel(id.clone()).await?,
        AdminAction::Resume => state.rt.resume(id.clone()).await?,
        AdminAction::Restart => state.rt.restart(id.clone()).await?,
    }
    let (status, outcome, message) = if state.rt.is_admin() {
        (
            StatusCode::ACCEPTED,
            "requested",
            format!("{action} of `{id}` recorded; the worker applies it within a second"),
        )
    } else {
        (
            StatusCode::OK,
            "applied",
            format!("{action} of `{id}` applied"),
        )
    };
    Ok(ok_json(
        status,
        &json!({ "id": id.as_str(), "action": action, "outcome": outcome, "message": message }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageRequest {
    topic: String,
    message: Value,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `POST /api/executions/{id}/messages` with `{"topic": "...", "message":
/// <any JSON>, "idempotency_key": "..."}` (the key is optional): commits the
/// message for the execution's next `recv` of the topic.
pub(crate) async fn send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: MessageRequest = serde_json::from_slice(&body).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!(
                "the body must be {{\"topic\": \"...\", \"message\": ..., \"idempotency_key\": \"...\" (optional)}}: {e}"
            ),
        )
    })?;
    if request.topic.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`topic` must not be empty",
        ));
    }
    let options = match request.idempotency_key {
        Some(key) => crate::messages::SendOptions::idempotency_key(key),
        None => crate::messages::SendOptions::default(),
    };
    let id = ExecutionId::new(id);
    let delivery = state
        .rt
        .send_json(id.clone(), &request.topic, &request.message, options)
        .await?;
    let delivered = delivery == crate::messages::Delivery::Delivered;
    Ok(ok_json(
        StatusCode::OK,
        &json!({ "id": id.as_str(), "topic": request.topic, "delivered": delivered }),
    ))
}

/// `GET /api/executions/{id}/events`: the latest value of each event.
pub(crate) async fn events(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let events = state.rt.events(id).await?;
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "key": e.key,
                "value": e.value.to_json(),
                "updated_at": super::time::format_time(e.updated_at),
            })
        })
        .collect();
    Ok(ok_json(StatusCode::OK, &json!({ "events": events })))
}

/// `GET /api/executions/{id}/streams/{key}`: the stream's values as
/// server-sent events (`text/event-stream`), live: each event's `id` is the
/// value's offset and its `data` the value as JSON; a last event named
/// `end` says the stream was closed or the execution ended. A reconnecting
/// client sends `Last-Event-ID` and gets the values after it.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> ApiResult {
    use axum::response::sse::{Event, Sse};
    use futures_util::StreamExt;

    let from = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .and_then(|last| last.checked_add(1))
            .ok_or_else(|| {
                ApiError::bad_request("`Last-Event-ID` must be the offset of a value of the stream")
            })?,
    };
    let id = ExecutionId::new(id);
    // Unknown executions are a 404 before the stream begins.
    state.rt.status(id.clone()).await?;
    let values = state
        .rt
        .read_stream_from::<Value>(id, &key, from)
        .map(|item| {
            Ok::<_, std::convert::Infallible>(match item {
                Ok((offset, value)) => Event::default()
                    .id(offset.to_string())
                    .data(value.to_string()),
                Err(e) => Event::default().event("error").data(e.to_string()),
            })
        })
        .chain(futures_util::stream::once(async {
            Ok(Event::default().event("end").data("end"))
        }));
    Ok(Sse::new(values).into_response())
}

/// Refuses actions that cannot apply to an execution in `status`, so an
/// admin learns it now rather than from the worker's log.
pub(crate) fn check_action(
    id: &ExecutionId,
    status: ExecutionStatus,
    action: AdminAction,
) -> Result<(), ApiError> {
    if action.applies_to(status) {
        return Ok(());
    }
    Err(match action {
        AdminAction::Restart => Error::NotRestartable {
            id: id.clone(),
            status,
        }
        .into(),
        _ => ApiError::new(StatusCode::CONFLICT, action.refusal(id.as_str(), status)),
    })
}

/// `GET /api/workers`: the worker processes of a PostgreSQL database, live
/// ones first (none on SQLite).
pub(crate) async fn workers(State(state): State<AppState>) -> ApiResult {
    let workers: Vec<WorkerView> = state
        .rt
        .workers()
        .await?
        .iter()
        .map(WorkerView::new)
        .collect();
    Ok(ok_json(StatusCode::OK, &json!({ "workers": workers })))
}

/// `GET /api/workflows`: the workflows this process can start.
pub(crate) async fn workflows(State(state): State<AppState>) -> ApiResult {
    let admin = state.rt.is_admin();
    let names: Vec<Value> = known_workflows(&state.rt)
        .await?
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    Ok(ok_json(
        StatusCode::OK,
        &json!({ "workflows": names, "can_start": !admin && !state.config.read_only }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    id: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

/// `POST /api/workflows/{name}/executions` with `{"id": "...", "input": {...}}`.
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: StartRequest = serde_json::from_slice(&body).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!("the body must be {{\"id\": \"...\", \"input\": {{...}}}}: {e}"),
        )
    })?;
    if state.rt.is_admin() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this server opened the database as an admin and cannot start workflows; start them from the application that runs them (or embed replayflow::http::router in it)",
        ));
    }
    if !state.rt.workflows().contains(&name.as_str()) {
        return Err(Error::UnknownWorkflow(name).into());
    }
    let input = request.input.unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`input` must be a JSON object keyed by the workflow's parameter names",
        ));
    }
    let id = match request.id {
        Some(id) if id.trim().is_empty() => {
            return Err(ApiError::bad_request("`id` must not be empty"));
        }
        Some(id) => ExecutionId::new(id),
        None => ExecutionId::new(uuid::Uuid::new_v4().to_string()),
    };
    let existed = match state.rt.status(id.clone()).await {
        Ok(_) => true,
        Err(Error::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let id = state.rt.start_by_name(&name, id, &input).await?;
    let (status, created) = if existed {
        (StatusCode::OK, false)
    } else {
        (StatusCode::CREATED, true)
    };
    let mut response = ok_json(
        status,
        &json!({ "id": id.as_str(), "workflow": name, "created": created }),
    );
    let location = format!("/api/executions/{}", encode_segment(id.as_str()));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Percent-encodes a path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Any other path under `/api/`.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}
