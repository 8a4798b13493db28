//! Authentication (401 for every kind of bad credential) and authorisation (404 for someone
//! else's task, audited; 403 for what a role may not do).

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::support::{Server, parse_time};

#[tokio::test]
async fn missing_or_bad_tokens_are_401_and_audited() {
    let server = Server::start().await;
    let org = server.org_init();

    let r = server.get("/v1/tasks", None).await;
    r.expect_error(401, None);
    let r = server
        .post("/v1/tasks", None, &json!({"command": "ls"}))
        .await;
    r.expect_error(401, None);

    for bad in [
        "agt_thisisnotarealtoken0000000000000000000000000000",
        "garbage",
        "agt_",
        &format!("{}x", org.admin_token),
    ] {
        let r = server.get("/v1/tasks", Some(bad)).await;
        r.expect_error(401, None);
    }
    // Not a bearer scheme at all.
    let r = server
        .send(
            server
                .request(reqwest::Method::GET, "/v1/tasks", None)
                .header("Authorization", format!("Basic {}", org.admin_token)),
        )
        .await;
    r.expect_error(401, None);
    // The real token works, and nothing was created by the refused POST.
    let r = server.get("/v1/tasks", Some(&org.admin_token)).await;
    assert_eq!(r.expect(200)["tasks"], json!([]));

    if let Some(n) = server
        .dep
        .sql("SELECT count(*) FROM audit_events WHERE type = 'auth.failed'")
    {
        let n: u32 = n.parse().expect("a count");
        // Failures are aggregated per reason, user and minute (a flood cannot fill the disk),
        // so at least one event, not one per request.
        assert!(n >= 1, "expected an auth.failed audit event, found {n}");
    }
}

#[tokio::test]
async fn user_create_token_works_and_disabling_revokes_it() {
    let server = Server::start().await;
    let org = server.org_init();
    let bob = server.dep.user_create("bob", "member");

    let r = server.get("/v1/tasks", Some(&bob.token)).await;
    r.expect(200);
    server.create_command(&bob.token, "whoami").await;

    let r = server
        .patch(
            &format!("/v1/users/{}", bob.user_id),
            Some(&org.admin_token),
            &json!({"disabled": true}),
        )
        .await;
    let user = r.expect(200);
    assert_eq!(user["disabled"], true, "{user}");

    let r = server.get("/v1/tasks", Some(&bob.token)).await;
    r.expect_error(401, None);
    let r = server
        .post("/v1/tasks", Some(&bob.token), &json!({"command": "ls"}))
        .await;
    r.expect_error(401, None);
    // No new token for a disabled user.
    let run = server.dep.cli(&["token", "create", "--user", &bob.user_id]);
    assert_ne!(run.code, Some(0), "{run}");
}

#[tokio::test]
async fn service_users_may_create_tasks() {
    let server = Server::start().await;
    server.org_init();
    let ci = server.dep.user_create("ci", "service");
    let task = server.create_command(&ci.token, "ls").await;
    assert_eq!(task["user_id"], ci.user_id.as_str());
    let r = server.get("/v1/users", Some(&ci.token)).await;
    r.expect_error(403, None);
}

#[tokio::test]
async fn expired_token_is_401() {
    let server = Server::start().await;
    server.org_init();
    let bob = server.dep.user_create("bob", "member");
    let issued = server
        .dep
        .cli_json(&["token", "create", "--user", &bob.user_id, "--ttl", "1s"]);
    let token = issued["token"].as_str().expect("token").to_owned();
    let expires = parse_time(&issued["expires_at"], "expires_at");
    // Wait until the expiry has passed (about a second), then the token is refused.
    if let Ok(left) = expires.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
    let r = server.get("/v1/tasks", Some(&token)).await;
    r.expect_error(401, None);
    // The user's other token still works.
    server.get("/v1/tasks", Some(&bob.token)).await.expect(200);
}

#[tokio::test]
async fn member_gets_404_for_someone_elses_task_and_it_is_audited() {
    let server = Server::start().await;
    let org = server.org_init();
    let bob = server.dep.user_create("bob", "member");
    let admins = server.create_command(&org.admin_token, "ls /root").await;
    let id = admins["task_id"].as_str().unwrap();

    let r = server
        .get(&format!("/v1/tasks/{id}"), Some(&bob.token))
        .await;
    let hidden = r.expect_error(404, None).clone();
    // Exactly what an unknown id gets: no existence leak.
    let unknown = server
        .get("/v1/tasks/tsk_aaaaaaaaaaaaaaaaaaaaaaaa", Some(&bob.token))
        .await;
    assert_eq!(unknown.expect_error(404, None), &hidden);
    let r = server
        .post(
            &format!("/v1/tasks/{id}/cancel"),
            Some(&bob.token),
            &json!({}),
        )
        .await;
    r.expect_error(404, None);
    // The task is untouched.
    let r = server
        .get(&format!("/v1/tasks/{id}"), Some(&org.admin_token))
        .await;
    assert_eq!(r.expect(200)["status"], "QUEUED");

    match server.dep.sql(&format!(
        "SELECT count(*) FROM audit_events WHERE type = 'access.denied' AND actor = '{}'",
        bob.user_id
    )) {
        Some(n) => {
            let n: u32 = n.parse().expect("a count");
            assert!(n >= 1, "no access.denied audit event for {}", bob.user_id);
        }
        None => eprintln!("sqlite3 is not installed: the access.denied audit check is skipped"),
    }
}

#[tokio::test]
async fn members_may_not_administer() {
    let server = Server::start().await;
    let org = server.org_init();
    let bob = server.dep.user_create("bob", "member");
    let token = Some(bob.token.as_str());

    server.get("/v1/users", token).await.expect_error(403, None);
    server
        .get(&format!("/v1/tasks?user_id={}", org.admin_user_id), token)
        .await
        .expect_error(403, None);
    server
        .patch(
            &format!("/v1/users/{}", org.admin_user_id),
            token,
            &json!({"disabled": true}),
        )
        .await
        .expect_error(403, None);
    // Not even on themselves.
    server
        .patch(
            &format!("/v1/users/{}", bob.user_id),
            token,
            &json!({"role": "admin"}),
        )
        .await
        .expect_error(403, None);
    server
        .post("/v1/invites", token, &json!({}))
        .await
        .expect_error(403, None);
    // The admin is unaffected.
    let r = server.get("/v1/users", Some(&org.admin_token)).await;
    assert_eq!(r.expect(200)["users"].as_array().map(Vec::len), Some(2));
}
