//! The database goes away under a running server (a private Postgres cluster, stopped and
//! started by the test): liveness stays up, readiness and the API answer 503 in the error shape
//! (never 500), and everything recovers when the database is back.

use std::time::Duration;

use serde_json::json;

use crate::support::{Database, Deployment, PgCluster, Server, eventually};

#[tokio::test]
async fn postgres_down_while_running() {
    let cluster = PgCluster::start();
    let dep = Deployment::with_database(Database::Url(cluster.url("postgres")));
    let server = Server::start_with(dep).await;
    let org = server.org_init();
    let token = org.admin_token.as_str();
    let task = server.create_command(token, "ls").await;
    let task_path = format!("/v1/tasks/{}", task["task_id"].as_str().unwrap());

    cluster.stop();

    let body = json!({"command": "ls"});
    // Each of these may wait for the pool's acquire timeout: ask them all at once.
    let (health, ready, create, read, list, metrics) = tokio::join!(
        server.get("/healthz", None),
        server.get("/readyz", None),
        server.post("/v1/tasks", Some(token), &body),
        server.get(&task_path, Some(token)),
        server.get("/v1/tasks", Some(token)),
        server.get("/metrics", None),
    );
    health.expect(200);
    let readiness = ready.expect(503);
    assert_eq!(readiness["status"], "not_ready", "{readiness}");
    assert!(readiness["checks"]["database"].is_string(), "{readiness}");
    assert_ne!(readiness["checks"]["database"], "ok", "{readiness}");
    create.expect_error(503, None);
    read.expect_error(503, None);
    list.expect_error(503, None);
    metrics.expect(200);
    // Still alive after all that.
    server.get("/healthz", None).await.expect(200);

    cluster.start_again();

    let recovered = eventually(Duration::from_secs(10), "the API recovers", || async {
        let r = server.get(&task_path, Some(token)).await;
        (r.status == 200).then_some(r.json)
    })
    .await;
    assert_eq!(recovered, task, "the task is unchanged");
    let created = server.create_command(token, "uptime").await;
    assert_eq!(created["status"], "QUEUED");
    let r = server.get("/readyz", None).await;
    assert_eq!(r.expect(200)["status"], "ready");
    let list = server.get("/v1/tasks", Some(token)).await;
    assert_eq!(list.expect(200)["tasks"].as_array().map(Vec::len), Some(2));
}
