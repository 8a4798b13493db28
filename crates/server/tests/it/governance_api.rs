//! The policy and approval engine through the real binary (issue "Done means"): a destructive
//! command waits for its requester's approval, nobody else can see or decide it, L3 waits for a
//! second admin, bypass and the emergency controls behave, and `policy explain` tells the truth.

use serde_json::json;

use crate::support::Server;

#[tokio::test]
async fn a_destructive_command_waits_for_its_requester_only() {
    let server = Server::start().await;
    server.org_init();
    let alice = server.dep.user_create("alice", "member");
    let mallory = server.dep.user_create("mallory", "member");

    let task = server
        .create_command(&alice.token, "kubectl delete pod x")
        .await;
    assert_eq!(task["status"], "WAITING_APPROVAL", "{task}");
    assert_eq!(task["risk_tier"], "L2_DESTRUCTIVE");
    let approval_id = task["approval_id"]
        .as_str()
        .expect("approval_id")
        .to_owned();

    let listed = server
        .get("/v1/approvals?pending=true", Some(&alice.token))
        .await
        .expect(200)
        .clone();
    let approval = &listed["approvals"][0];
    assert_eq!(approval["approval_id"], approval_id.as_str());
    assert_eq!(approval["action"], "kubectl delete pod x");
    assert_eq!(approval["risk_tier"], "L2_DESTRUCTIVE");
    assert!(
        approval["rationale"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(approval["decision"], serde_json::Value::Null);

    let theirs = server
        .get("/v1/approvals", Some(&mallory.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(theirs["approvals"].as_array().map(Vec::len), Some(0));
    let path = format!("/v1/approvals/{approval_id}/decision");
    server
        .post(&path, Some(&mallory.token), &json!({"decision": "APPROVE"}))
        .await
        .expect_error(404, None);

    let decided = server
        .post(&path, Some(&alice.token), &json!({"decision": "APPROVE"}))
        .await
        .expect(200)
        .clone();
    assert_eq!(decided["decision"], "APPROVE");
    assert_eq!(decided["decided_by"], alice.user_id.as_str());
    server
        .post(&path, Some(&alice.token), &json!({"decision": "APPROVE"}))
        .await
        .expect(200);
    server
        .post(&path, Some(&alice.token), &json!({"decision": "DENY"}))
        .await
        .expect_error(409, None);
    server
        .post(&path, Some(&alice.token), &json!({"decision": "MAYBE"}))
        .await
        .expect_error(422, None);
    let task_id = task["task_id"].as_str().unwrap();
    let task = server
        .get(&format!("/v1/tasks/{task_id}"), Some(&alice.token))
        .await
        .expect(200)
        .clone();
    assert_ne!(task["status"], "WAITING_APPROVAL");
}

#[tokio::test]
async fn an_l3_command_waits_for_another_admin() {
    let server = Server::start().await;
    let org = server.org_init();
    let second = server.dep.user_create("bob", "admin");
    let task = server
        .create_command(&org.admin_token, "sudo systemctl restart nginx")
        .await;
    assert_eq!(task["risk_tier"], "L3_PRIVILEGED");
    assert_eq!(task["status"], "WAITING_APPROVAL");
    let path = format!(
        "/v1/approvals/{}/decision",
        task["approval_id"].as_str().unwrap()
    );
    server
        .post(
            &path,
            Some(&org.admin_token),
            &json!({"decision": "APPROVE"}),
        )
        .await
        .expect_error(403, None);
    server
        .post(&path, Some(&second.token), &json!({"decision": "APPROVE"}))
        .await
        .expect(200);
}

#[tokio::test]
async fn bypass_and_emergency_controls() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    let alice = server.dep.user_create("alice", "member");
    let bypass = format!("/v1/users/{}/bypass-mode", alice.user_id);

    server
        .post(&bypass, Some(&alice.token), &json!({"mode": "ON"}))
        .await
        .expect_error(403, None);
    let policy = server
        .send(
            server
                .request(reqwest::Method::PUT, "/v1/org/policy", Some(admin))
                .json(&json!({"bypass_allowed": true})),
        )
        .await;
    assert!(policy.expect(200)["bypass_allowed"].as_bool().unwrap());
    let on = server
        .post(&bypass, Some(&alice.token), &json!({"mode": "ON"}))
        .await
        .expect(200)
        .clone();
    assert_eq!(on, json!({"user_id": alice.user_id, "mode": "ON"}));
    let t = server.create_command(&alice.token, "touch notes.txt").await;
    assert_eq!(t["status"], "QUEUED", "L1 under bypass: {t}");

    let out = server
        .post(
            "/v1/org/emergency",
            Some(admin),
            &json!({"action": "disable_bypass"}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(out["policy"]["bypass_allowed"], false);
    assert!(out["canceled_task_ids"].is_array());
    let t = server.create_command(&alice.token, "touch notes.txt").await;
    assert_eq!(
        t["status"], "WAITING_APPROVAL",
        "bypass revoked at once: {t}"
    );

    server
        .post(
            "/v1/org/emergency",
            Some(admin),
            &json!({"action": "pause_mutations"}),
        )
        .await
        .expect(200);
    let t = server
        .create_command(&alice.token, "kubectl delete pod x")
        .await;
    assert_eq!(t["status"], "FAILED");
    assert_eq!(t["error"]["code"], "mutations_paused");
    let t = server
        .create_command(&alice.token, "kubectl get pods")
        .await;
    assert_eq!(t["status"], "QUEUED");
    let out = server
        .post(
            "/v1/org/emergency",
            Some(admin),
            &json!({"action": "cancel_risky_tasks"}),
        )
        .await
        .expect(200)
        .clone();
    assert!(!out["canceled_task_ids"].as_array().unwrap().is_empty());
    server
        .post(
            "/v1/org/emergency",
            Some(admin),
            &json!({"action": "explode"}),
        )
        .await
        .expect_error(422, None);
    server
        .post(
            "/v1/org/emergency",
            Some(&alice.token),
            &json!({"action": "resume_mutations"}),
        )
        .await
        .expect_error(403, None);
    let put = server
        .send(
            server
                .request(reqwest::Method::PUT, "/v1/org/policy", Some(admin))
                .json(&json!({"approval_ttl_seconds": 10})),
        )
        .await;
    put.expect_error(422, None);
    server
        .get("/v1/org/policy", Some(&alice.token))
        .await
        .expect_error(403, None);
}

#[tokio::test]
async fn policy_explain_by_cli_and_api() {
    let server = Server::start().await;
    let org = server.org_init();
    let run = server
        .dep
        .cli(&["policy", "explain", "--", "kubectl", "delete", "pod", "x"]);
    run.assert_success();
    let v = run.json_line();
    assert_eq!(v["risk_tier"], "L2_DESTRUCTIVE", "{v}");
    assert_eq!(v["decision"], "REQUIRE_APPROVAL");
    assert_eq!(v["source"], "ORG_DEFAULT");
    assert!(v["rationale"].as_str().is_some_and(|r| !r.is_empty()));
    let v = server.dep.cli_json(&["policy", "explain", "--", "ls -la"]);
    assert_eq!(v["decision"], "ALLOW");
    assert_eq!(v["risk_tier"], "L0_READONLY");
    let unknown = server
        .dep
        .cli(&["policy", "explain", "--user", "usr_nobody", "--", "ls"]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    let api = server
        .post(
            "/v1/policy/explain",
            Some(&org.admin_token),
            &json!({"command": "rm -rf /"}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(api["decision"], "DENY");
    assert_eq!(api["source"], "SYSTEM_ENFORCED");
}
