//! The HTTP API (CONTRACT.md "HTTP API"): routes, shared state and the middleware every request
//! passes through (body limit, request id, tracing, metrics).

mod audit;
mod environments;
mod error;
mod extract;
mod governance;
mod health;
mod metrics;
mod openapi;
mod secrets;
mod tasks;
mod users;
mod webhook;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, patch, post, put};
use coordinator::Coordinator;
use metrics_exporter_prometheus::PrometheusHandle;
use store::objects::Objects;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use metrics::recorder;
pub use users::code_json;

use crate::config::{Feature, Features};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub coord: Coordinator,
    pub objects: Objects,
    pub features: Features,
    pub metrics: PrometheusHandle,
    /// Checks the signatures of audit checkpoints (the public half of the audit key).
    pub audit_key: store::audit_checkpoint::Verifier,
    /// Whether commands can run: the sandbox in use, or why there is none (`/readyz`).
    pub executor: crate::execution::Readiness,
    /// The Telegram webhook, in webhook mode only (otherwise `POST /telegram/webhook` is 404).
    pub telegram_webhook: Option<crate::telegram::Webhook>,
}

impl AppState {
    /// 403 `feature_disabled` unless `feature` is on.
    pub fn require(&self, feature: Feature) -> Result<(), ApiError> {
        if self.features.enabled(feature) {
            Ok(())
        } else {
            Err(ApiError::feature_disabled(feature.as_str()))
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document))
        .route("/telegram/webhook", post(webhook::telegram))
        .route("/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/v1/tasks/{task_id}", get(tasks::get))
        .route("/v1/tasks/{task_id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{task_id}/events", get(tasks::events))
        .route("/v1/users", get(users::list))
        .route("/v1/users/{user_id}", patch(users::patch))
        .route("/v1/invites", post(users::create_invite))
        .route("/v1/audit-events", get(audit::list))
        .route("/v1/audit-events/verify", get(audit::verify))
        .route("/v1/approvals", get(governance::list_approvals))
        .route(
            "/v1/approvals/{approval_id}/decision",
            post(governance::decide),
        )
        .route(
            "/v1/users/{user_id}/bypass-mode",
            post(governance::set_bypass),
        )
        .route(
            "/v1/org/policy",
            get(governance::get_policy).put(governance::put_policy),
        )
        .route("/v1/org/emergency", post(governance::emergency))
        .route("/v1/environments", get(environments::list))
        .route(
            "/v1/environments/{name}",
            get(environments::get)
                .put(environments::put)
                .delete(environments::delete),
        )
        .route("/v1/secrets", get(secrets::list))
        .route("/v1/secrets/{name}", put(secrets::put).delete(secrets::delete))
        .route("/v1/policy/explain", post(governance::explain))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
