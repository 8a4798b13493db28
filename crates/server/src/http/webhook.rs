//! `POST /telegram/webhook`: Telegram's deliveries in webhook mode.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// 401 on a missing or wrong secret header (compared in constant time); 200 once the update is
/// recorded (it is handled after the answer; a duplicate `update_id` is acknowledged and
/// ignored); 503 when it cannot be recorded (Telegram delivers it again); 404 unless the server
/// runs in webhook mode.
pub async fn telegram(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(webhook) = &state.telegram_webhook else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the Telegram webhook is not served: Telegram runs in polling mode or is off",
        )
        .into_response();
    };
    let secret = headers
        .get(telegram::ingress::webhook::SECRET_HEADER)
        .and_then(|v| v.to_str().ok());
    let outcome = webhook
        .ingress
        .webhook(secret, &webhook.secret, &body)
        .await;
    match outcome.status() {
        200 => (StatusCode::OK, axum::Json(serde_json::json!({"ok": true}))).into_response(),
        401 => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing or wrong X-Telegram-Bot-Api-Secret-Token",
        )
        .into_response(),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the update could not be recorded; deliver it again",
        )
        .into_response(),
    }
}
