//! Liveness and readiness.

use std::collections::BTreeMap;

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
        state.coord.db().ping(),
        state.coord.bus().ping(),
        state.objects.check()
    );
    let db_ok = db.is_ok();
    checks.insert("database", verdict(db.map_err(|e| e.to_string())));
    checks.insert("bus", verdict(bus.map_err(|e| e.to_string())));
    checks.insert("object_store", verdict(objects.map_err(|e| e.to_string())));
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

fn verdict(r: Result<(), String>) -> String {
    match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e,
    }
}
