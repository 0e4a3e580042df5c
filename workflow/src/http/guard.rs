//! The checks every request passes before a handler sees it: the Host
//! allowlist (against DNS rebinding), the bearer token of the API, and for
//! state-changing requests the read-only switch, a JSON content type and an
//! allowed Origin (against cross-site requests).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::config::HttpConfig;
use super::problem::ApiError;

pub(crate) async fn guard(
    State(config): State<Arc<HttpConfig>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    match check(&config, &request) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

fn check(config: &HttpConfig, request: &Request<Body>) -> Result<(), Rejection> {
    let headers = request.headers();
    // An absolute-form request target carries the authority in the URI.
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_text(headers, header::HOST).map(str::to_owned))
        .ok_or_else(|| ApiError::bad_request("the request has no Host header"))?;
    if !config.host_allowed(&host) {
        return Err(ApiError::bad_request(
            "this Host is not allowed (a protection against DNS rebinding); the server accepts other names with --allowed-host",
        )
        .into());
    }

    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    if let (true, Some(expected)) = (is_api, &config.token) {
        check_token(headers, expected)?;
    }

    if is_safe(request.method()) {
        return Ok(());
    }
    if config.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the server is read-only: cancel, resume, restart and start are disabled",
        )
        .into());
    }
    let content_type = header_text(headers, header::CONTENT_TYPE).unwrap_or("");
    if !is_json(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "state-changing requests need `Content-Type: application/json`",
        )
        .into());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| config.origin_allowed(o, &host));
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this Origin may not change anything here (a protection against cross-site requests); the server accepts other origins with --allowed-origin",
            )
            .into());
        }
    }
    Ok(())
}

fn check_token(headers: &HeaderMap, expected: &str) -> Result<(), Rejection> {
    let Some(value) = header_text(headers, header::AUTHORIZATION) else {
        return Err(Rejection::unauthorized(
            "this server needs `Authorization: Bearer <token>`",
        ));
    };
    let presented = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Rejection::unauthorized("the bearer token is not valid")),
        None => Err(Rejection::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

/// Compares in time that depends only on the lengths, never on where the
/// first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An error answer, with the `WWW-Authenticate` challenge for a 401.
struct Rejection {
    error: ApiError,
    challenge: bool,
}

impl Rejection {
    fn unauthorized(message: &str) -> Self {
        Rejection {
            error: ApiError::new(StatusCode::UNAUTHORIZED, message),
            challenge: true,
        }
    }
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection {
            error,
            challenge: false,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"workflow\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn recognizes_json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json(""));
    }
}
