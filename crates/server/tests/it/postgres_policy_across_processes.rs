//! Two server processes on one Postgres: a policy change made through one applies to the very
//! next decision in the other (PLAN.md governance scenario 2; no stale cache anywhere).

use serde_json::json;

use crate::support::{Deployment, Server};

#[tokio::test]
async fn postgres_policy_change_applies_to_the_next_decision_in_every_process() {
    let first = Server::start_with(Deployment::postgres()).await;
    let url = first.dep.database_url().expect("a Postgres URL");
    let second = Server::start_with(Deployment::sqlite().var("AGENTICAI_DATABASE_URL", &url)).await;
    let org = first.org_init();
    let alice = first.dep.user_create("alice", "member");

    let before = second.create_command(&alice.token, "touch notes.txt").await;
    assert_eq!(before["status"], "WAITING_APPROVAL", "{before}");

    first
        .post(
            "/v1/org/emergency",
            Some(&org.admin_token),
            &json!({"action": "pause_mutations"}),
        )
        .await
        .expect(200);
    let paused = second.create_command(&alice.token, "touch notes.txt").await;
    assert_eq!(paused["status"], "FAILED", "{paused}");
    assert_eq!(paused["error"]["code"], "mutations_paused");

    let policy = second
        .get("/v1/org/policy", Some(&org.admin_token))
        .await
        .expect(200)
        .clone();
    assert_eq!(policy["mutations_paused"], true);
}
