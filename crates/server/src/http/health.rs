//! Liveness and readiness.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: every dependency answers and the org exists; otherwise 503 naming what is not.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    let (db, bus, objects) = tokio::join!(
        within(state.coord.db().ping()),
        within(state.coord.bus().ping()),
        within(state.objects.check())
    );
    let db_ok = db.is_ok();
    checks.insert("database", verdict(db));
    checks.insert("bus", verdict(bus));
    checks.insert("object_store", verdict(objects));
    let org = if db_ok {
        match state.coord.org_exists().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("not initialised: run `agenticai org init`".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    } else {
        Err("unknown: database unavailable".to_owned())
    };
    checks.insert("org", verdict(org));
    checks.insert("executor", verdict(state.executor.clone().map(|_| ())));
    let ready = checks.values().all(|v| v == "ok");
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
        "features": crate::config::Feature::ALL
            .iter()
            .map(|f| (f.as_str(), state.features.enabled(*f)))
            .collect::<BTreeMap<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// How long a readiness probe may wait for one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one check with [`CHECK_TIMEOUT`].
async fn within<E: std::fmt::Display>(
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

fn verdict(r: Result<(), String>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e,
    }
}
