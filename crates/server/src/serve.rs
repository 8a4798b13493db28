//! `agenticai serve`: every role in one process — the HTTP API over the coordinator, the
//! Telegram channel (when a bot token is configured) and the execution manager's workers.

use tokio::net::TcpListener;

use crate::audit_cmd;
use crate::background;
use crate::config::Settings;
use crate::execution;
use crate::http::{self, AppState};
use crate::services;
use crate::telegram;

/// Runs until SIGINT or SIGTERM, then stops accepting requests and claiming work, lets in-flight
/// requests and running tasks finish within the grace period (tasks still running then are
/// stopped and settled by the recovery contract), and closes the database.
pub async fn run(settings: &Settings) -> Result<(), String> {
    // Fail at start, not at the first decision, if the shipped policies do not load.
    policy::decision::check_shipped_policies()
        .map_err(|e| format!("the shipped policies do not load: {e}"))?;
    let services = services::open(settings).await?;
    let metrics = http::recorder().map_err(|e| format!("metrics: {e}"))?;
    let audit_signer = audit_cmd::load_signer(settings)?;
    let (manager, executor_readiness) = execution::manager(settings, &services).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let channel = telegram::start(settings, &services, stop_rx.clone()).await?;
    let state = AppState {
        telegram_webhook: channel.as_ref().and_then(|c| c.webhook.clone()),
        executor: executor_readiness,
        coord: services.coord.clone(),
        objects: services.objects.clone(),
        features: settings.features,
        metrics,
        audit_key: audit_signer.verifier(),
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    tracing::info!(
        address = %local,
        database = ?services.db.dialect(),
        bus = services.bus.kind(),
        objects = %services.objects.describe(),
        "agenticai is serving"
    );
    let server = axum::serve(listener, http::router(state)).with_graceful_shutdown({
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    });
    let server = tokio::spawn(server.into_future());
    let workers = manager.map(|m| tokio::spawn(m.run(stop_rx.clone(), settings.shutdown_grace)));
    let expiry = background::spawn_approval_expiry(services.coord.clone(), stop_rx.clone());
    let wal = background::spawn_checkpointer(services.db.clone(), stop_rx.clone());
    let checkpointer = audit_cmd::spawn_checkpointer(
        services.db.clone(),
        services.objects.clone(),
        audit_signer.clone(),
        settings.audit_checkpoint_every,
        stop_rx.clone(),
    );
    shutdown_signal().await;
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(settings.shutdown_grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("grace period over; dropping remaining connections"),
    }
    if let Some(workers) = workers
        && let Err(e) = workers.await
    {
        tracing::warn!(error = %e, "execution manager task failed");
    }
    let _ = expiry.await;
    let _ = wal.await;
    for task in channel.map(|c| c.tasks).unwrap_or_default() {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "a Telegram task failed");
        }
    }
    let last_checkpoint = checkpointer.await.unwrap_or(0);
    audit_cmd::final_checkpoint(
        &services.db,
        &services.objects,
        &audit_signer,
        last_checkpoint,
    )
    .await;
    services.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
