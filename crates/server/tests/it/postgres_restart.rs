//! The restart and concurrency scenarios on Postgres (a database of its own on the shared
//! server), whatever mode the suite runs in.

use crate::reliability_restart::{
    concurrent_idempotent_posts_make_one_task, concurrent_posts_all_land, restart_keeps_everything,
};
use crate::support::{Deployment, Server};

#[tokio::test]
async fn postgres_sigterm_exits_0_and_restart_keeps_tasks() {
    restart_keeps_everything(Deployment::postgres()).await;
}

#[tokio::test]
async fn postgres_readyz_is_ready_after_org_init() {
    let server = Server::start_with(Deployment::postgres()).await;
    let r = server.get("/readyz", None).await;
    assert_eq!(r.expect(503)["checks"]["database"], "ok");
    server.org_init();
    let r = server.get("/readyz", None).await;
    assert_eq!(r.expect(200)["status"], "ready");
}

#[tokio::test]
async fn postgres_concurrent_duplicate_posts_make_exactly_one_task() {
    let server = Server::start_with(Deployment::postgres()).await;
    let token = server.org_init().admin_token;
    concurrent_idempotent_posts_make_one_task(&server, &token).await;
}

#[tokio::test]
async fn postgres_concurrent_posts_are_all_stored() {
    let server = Server::start_with(Deployment::postgres()).await;
    let token = server.org_init().admin_token;
    concurrent_posts_all_land(&server, &token).await;
}

#[test]
fn postgres_concurrent_org_inits_exactly_one_succeeds() {
    let dep = Deployment::postgres();
    let a = dep.spawn_cli(&["org", "init", "--name", "A", "--admin", "alice"]);
    let b = dep.spawn_cli(&["org", "init", "--name", "B", "--admin", "bob"]);
    let a = a.wait(std::time::Duration::from_secs(60));
    let b = b.wait(std::time::Duration::from_secs(60));
    let ok = [&a, &b].iter().filter(|r| r.code == Some(0)).count();
    assert_eq!(ok, 1, "{a}\n{b}");
    let loser = if a.code == Some(0) { &b } else { &a };
    assert_eq!(loser.code, Some(1), "{loser}");
    assert!(loser.stderr.contains("already"), "{loser}");
}
