//! `/v1/tasks`: create, read, list (order, pagination, filters), idempotency, cancel.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::support::{Deployment, Server, assert_task_shape, parse_time};

fn ids(list: &Value) -> Vec<String> {
    list["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks array: {list}"))
        .iter()
        .map(|t| t["task_id"].as_str().expect("task_id").to_owned())
        .collect()
}

#[tokio::test]
async fn command_task_is_accepted_with_every_contract_field() {
    let server = Server::start().await;
    let org = server.org_init();
    let token = org.admin_token.as_str();

    let before = SystemTime::now() - Duration::from_secs(5);
    let r = server
        .post("/v1/tasks", Some(token), &json!({"command": "ls"}))
        .await;
    let task = r.expect(202).clone();
    assert!(
        r.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    assert_task_shape(&task);
    assert!(task["task_id"].as_str().unwrap().len() <= 32);
    assert_eq!(task["user_id"], org.admin_user_id.as_str());
    assert_eq!(task["kind"], "command");
    assert_eq!(task["input"], "ls");
    assert_eq!(task["environment"], Value::Null);
    assert_eq!(task["status"], "QUEUED", "{task}");
    // CONTRACT: a command task is classified at creation. Until the policy engine lands the
    // tier is null; once it is set, `ls` must be read-only.
    assert!(
        task["risk_tier"].is_null() || task["risk_tier"] == "L0_READONLY",
        "{task}"
    );
    assert_eq!(task["approval_id"], Value::Null);
    assert_eq!(task["result"], Value::Null);
    assert_eq!(task["error"], Value::Null);
    let created = parse_time(&task["created_at"], "created_at");
    assert!(
        created >= before && created <= SystemTime::now() + Duration::from_secs(5),
        "{task}"
    );

    let path = format!("/v1/tasks/{}", task["task_id"].as_str().unwrap());
    let got = server.get(&path, Some(token)).await;
    assert_eq!(got.expect(200), &task, "GET returns the same task");
}

#[tokio::test]
async fn prompt_task_is_an_agent_task() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let r = server
        .post("/v1/tasks", Some(&token), &json!({"prompt": "hi"}))
        .await;
    let task = r.expect(202);
    assert_task_shape(task);
    assert_eq!(task["kind"], "agent");
    assert_eq!(task["input"], "hi");
    assert_eq!(task["status"], "QUEUED");
}

#[tokio::test]
async fn unknown_environment_is_422() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let r = server
        .post(
            "/v1/tasks",
            Some(&token),
            &json!({"command": "ls", "environment": "no-such-env"}),
        )
        .await;
    r.expect_error(422, None);
    // Nothing was created.
    let list = server.get("/v1/tasks", Some(&token)).await;
    assert_eq!(ids(list.expect(200)).len(), 0);
}

#[tokio::test]
async fn list_is_newest_first_with_limit_before_and_status() {
    let server = Server::start().await;
    let org = server.org_init();
    let token = org.admin_token.as_str();
    let mut created = Vec::new();
    for i in 0..5 {
        let task = server.create_command(token, &format!("echo {i}")).await;
        created.push(task["task_id"].as_str().unwrap().to_owned());
        // Times have millisecond precision: keep creation times distinct.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let all = server.get("/v1/tasks", Some(token)).await;
    assert_eq!(ids(all.expect(200)), newest_first);
    for t in all.json["tasks"].as_array().unwrap() {
        assert_task_shape(t);
    }

    // Pages of two, following `before`.
    let mut paged = Vec::new();
    let mut path = "/v1/tasks?limit=2".to_owned();
    loop {
        let page = server.get(&path, Some(token)).await;
        let page_ids = ids(page.expect(200));
        assert!(page_ids.len() <= 2, "{page_ids:?}");
        if page_ids.is_empty() {
            break;
        }
        path = format!("/v1/tasks?limit=2&before={}", page_ids.last().unwrap());
        paged.extend(page_ids);
        assert!(paged.len() <= 5, "pagination does not end: {paged:?}");
    }
    assert_eq!(paged, newest_first);
    let page = server
        .get(&format!("/v1/tasks?before={}", created[2]), Some(token))
        .await;
    assert_eq!(
        ids(page.expect(200)),
        vec![created[1].clone(), created[0].clone()]
    );

    // Status filter.
    let cancel = format!("/v1/tasks/{}/cancel", created[1]);
    server
        .post(&cancel, Some(token), &json!({}))
        .await
        .expect(200);
    let queued = server.get("/v1/tasks?status=QUEUED", Some(token)).await;
    let queued_ids = ids(queued.expect(200));
    assert_eq!(queued_ids.len(), 4, "{queued_ids:?}");
    assert!(!queued_ids.contains(&created[1]));
    assert!(
        queued.json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "QUEUED")
    );
    let canceled = server.get("/v1/tasks?status=CANCELED", Some(token)).await;
    assert_eq!(ids(canceled.expect(200)), vec![created[1].clone()]);
    let none = server.get("/v1/tasks?status=SUCCEEDED", Some(token)).await;
    assert!(ids(none.expect(200)).is_empty());
}

#[tokio::test]
async fn members_list_their_own_tasks_and_admins_everyones() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    let bob = server.dep.user_create("bob", "member");
    let carol = server.dep.user_create("carol", "member");
    let a = server.create_command(admin, "ls /admin").await;
    let b = server.create_command(&bob.token, "ls /bob").await;
    let c = server.create_command(&carol.token, "ls /carol").await;
    let id = |t: &Value| t["task_id"].as_str().unwrap().to_owned();

    let mine = server.get("/v1/tasks", Some(&bob.token)).await;
    assert_eq!(ids(mine.expect(200)), vec![id(&b)]);
    let own_filter = server
        .get(
            &format!("/v1/tasks?user_id={}", bob.user_id),
            Some(&bob.token),
        )
        .await;
    assert_eq!(ids(own_filter.expect(200)), vec![id(&b)]);

    let everyone = ids(server.get("/v1/tasks", Some(admin)).await.expect(200));
    assert_eq!(everyone.len(), 3, "{everyone:?}");
    for t in [&a, &b, &c] {
        assert!(everyone.contains(&id(t)));
    }
    let carols = server
        .get(&format!("/v1/tasks?user_id={}", carol.user_id), Some(admin))
        .await;
    assert_eq!(ids(carols.expect(200)), vec![id(&c)]);

    // The admin reads and may cancel a member's task.
    let path = format!("/v1/tasks/{}", id(&b));
    assert_eq!(server.get(&path, Some(admin)).await.expect(200), &b);
    let canceled = server
        .post(&format!("{path}/cancel"), Some(admin), &json!({}))
        .await;
    assert_eq!(canceled.expect(200)["status"], "CANCELED");
}

#[tokio::test]
async fn idempotency_key_returns_the_first_task_for_the_same_user_only() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    let bob = server.dep.user_create("bob", "member");
    let post = |token: &str, key: &str, command: &str| {
        server.send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(token))
                .header("Idempotency-Key", key)
                .json(&json!({"command": command})),
        )
    };

    let first = post(admin, "deploy-42", "ls").await;
    let first = first.expect(202).clone();
    let again = post(admin, "deploy-42", "ls").await;
    assert_eq!(again.expect(200)["task_id"], first["task_id"]);
    assert_task_shape(&again.json);
    // Even with a different body, the key wins: the first task comes back.
    let different_body = post(admin, "deploy-42", "ls -la").await;
    assert_eq!(different_body.expect(200)["task_id"], first["task_id"]);

    // Another key: another task.
    let other = post(admin, "deploy-43", "ls").await;
    assert_ne!(other.expect(202)["task_id"], first["task_id"]);

    // Another user with the same key: a new task of theirs.
    let bobs = post(&bob.token, "deploy-42", "ls").await;
    let bobs = bobs.expect(202);
    assert_ne!(bobs["task_id"], first["task_id"]);
    assert_eq!(bobs["user_id"], bob.user_id.as_str());

    let all = ids(server.get("/v1/tasks", Some(admin)).await.expect(200));
    assert_eq!(all.len(), 3, "{all:?}");
}

#[tokio::test]
async fn cancel_then_cancel_again_is_409() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let task = server.create_command(&token, "sleep 100").await;
    let id = task["task_id"].as_str().unwrap();
    let path = format!("/v1/tasks/{id}/cancel");

    let canceled = server.post(&path, Some(&token), &json!({})).await;
    let canceled = canceled.expect(200).clone();
    assert_task_shape(&canceled);
    assert_eq!(canceled["status"], "CANCELED");
    assert_eq!(canceled["task_id"], id);
    assert_eq!(canceled["created_at"], task["created_at"]);
    assert!(
        parse_time(&canceled["updated_at"], "updated_at")
            >= parse_time(&task["updated_at"], "updated_at")
    );

    // Without a body, too (curl -X POST): still a conflict, not a parse error.
    let again = server
        .send(server.request(reqwest::Method::POST, &path, Some(&token)))
        .await;
    again.expect_error(409, None);

    let got = server.get(&format!("/v1/tasks/{id}"), Some(&token)).await;
    assert_eq!(got.expect(200), &canceled);
}

#[tokio::test]
async fn switched_off_capabilities_are_403_feature_disabled() {
    let dep = Deployment::new().var("AGENTICAI_FEATURES", "-shell,-agent");
    let server = Server::start_with(dep).await;
    let token = server.org_init().admin_token;
    let r = server
        .post("/v1/tasks", Some(&token), &json!({"command": "ls"}))
        .await;
    r.expect_error(403, Some("feature_disabled"));
    let r = server
        .post("/v1/tasks", Some(&token), &json!({"prompt": "hi"}))
        .await;
    r.expect_error(403, Some("feature_disabled"));
}
