//! Request extractors that answer bad input with the contract's errors: a body that is not JSON
//! is 400, JSON that breaks the rules (wrong types, unknown fields, bad enum values) is 422, a
//! body over 1 MiB is 413, and a missing or bad token is 401.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use domain::{Id, User};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body, parsed whatever the Content-Type says (curl's `-d` sends a form type).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the request body is larger than {} MiB",
                        MAX_BODY_BYTES >> 20
                    ),
                )
            } else {
                ApiError::bad_json(format!("could not read the request body: {r}"))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, telling syntax errors (400) from rule violations (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::unprocessable("invalid_body", e.to_string()),
        _ => ApiError::bad_json(format!("the body is not valid JSON: {e}")),
    })
}

/// Query parameters; anything that does not fit is 422.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| ApiError::unprocessable("invalid_query", e.to_string()))
    }
}

/// The authenticated caller.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send an API token: Authorization: Bearer TOKEN",
            ));
        };
        Ok(Caller(state.coord.authenticate(token).await?))
    }
}

/// Parses an id from a path segment; anything that is not an id cannot name anything (404).
pub fn path_id(raw: &str, what: &str) -> Result<Id, ApiError> {
    Id::parse(raw).map_err(|_| ApiError::not_found(what))
}
