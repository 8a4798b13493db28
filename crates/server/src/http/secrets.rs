//! Secrets over HTTP (admins only). Values go in and never come out: no endpoint returns one, and
//! errors about a body never quote it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use coordinator::Actor;
use store::secrets::SecretMeta;

use super::AppState;
use super::error::ApiError;
use super::extract::Caller;

/// `GET /v1/secrets`: names and times of last change, most recent first.
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let secrets = state.coord.list_secrets(Actor::User(&user)).await?;
    Ok(Json(serde_json::json!({"secrets": secrets})))
}

/// The `value` of a `{"value": "…"}` body. Parsed by hand so that no error message can quote
/// any part of the body (serde's type errors quote numbers and strings).
fn value_of(bytes: &[u8]) -> Result<String, ApiError> {
    let body: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_json("the body is not valid JSON"))?;
    let serde_json::Value::Object(mut map) = body else {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "the body must be an object {\"value\": \"…\"}",
        ));
    };
    let value = map.remove("value");
    if !map.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "the body takes only the field \"value\"",
        ));
    }
    match value {
        Some(serde_json::Value::String(v)) => Ok(v),
        Some(_) => Err(ApiError::unprocessable(
            "invalid_body",
            "\"value\" must be a string",
        )),
        None => Err(ApiError::unprocessable(
            "invalid_body",
            "the body needs a \"value\"",
        )),
    }
}

/// `PUT /v1/secrets/{name}` `{"value": "…"}`: sets it; 200 `{"name","updated_at"}`.
pub async fn put(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<SecretMeta>, ApiError> {
    // Who may set secrets is checked before the body is even looked at.
    Actor::User(&user).require_admin()?;
    let bytes = body.map_err(|r| {
        if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than 1 MiB",
            )
        } else {
            ApiError::bad_json("could not read the request body")
        }
    })?;
    let value = value_of(&bytes)?;
    Ok(Json(
        state
            .coord
            .put_secret(Actor::User(&user), &name, &value)
            .await?,
    ))
}

/// `DELETE /v1/secrets/{name}`: 200 `{"name","updated_at"}`; 404 when there is none.
pub async fn delete(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(name): Path<String>,
) -> Result<Json<SecretMeta>, ApiError> {
    Ok(Json(
        state.coord.delete_secret(Actor::User(&user), &name).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_never_quote_the_body() {
        for body in [
            r#"{"value": 123456789}"#,
            r#"{"value": "s3cr3t-value", "extra": "s3cr3t-value"}"#,
            r#"["s3cr3t-value"]"#,
            r#"{"value": "s3cr3t-value""#,
        ] {
            let err = value_of(body.as_bytes()).unwrap_err();
            assert!(!err.message.contains("s3cr3t"), "{}", err.message);
            assert!(!err.message.contains("123456789"), "{}", err.message);
        }
        assert_eq!(value_of(br#"{"value":"x"}"#).unwrap(), "x");
    }
}
