//! Environments and secrets through the real binary: who may read and write them, validation,
//! auditing, and the promise that a secret's value never comes back out — not from any endpoint,
//! not in the audit log, not in the server's log, and not in plain text in the database.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Resp, Server};

async fn put(server: &Server, path: &str, token: &str, body: &Value) -> Resp {
    server
        .send(server.request(Method::PUT, path, Some(token)).json(body))
        .await
}

async fn delete(server: &Server, path: &str, token: &str) -> Resp {
    server
        .send(server.request(Method::DELETE, path, Some(token)))
        .await
}

async fn audit_of(server: &Server, token: &str, kind: &str) -> Vec<Value> {
    let r = server
        .get(
            &format!("/v1/audit-events?type={kind}&limit=1000"),
            Some(token),
        )
        .await;
    r.expect(200)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn environments_are_read_by_everyone_written_by_admins_validated_and_audited() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    let member = server.dep.user_create("mia", "member");

    put(
        &server,
        "/v1/secrets/DEPLOY_TOKEN",
        admin,
        &json!({"value": "tok-123456"}),
    )
    .await
    .expect(200);
    let body = json!({
        "egress": ["API.GitHub.com", "registry.example.com:5000", "api.github.com"],
        "secrets": ["DEPLOY_TOKEN"],
        "description": "staging"
    });
    let created = put(&server, "/v1/environments/staging", admin, &body)
        .await
        .expect(200)
        .clone();
    assert_eq!(
        created,
        json!({
            "name": "staging",
            "egress": ["api.github.com", "registry.example.com:5000"],
            "secrets": ["DEPLOY_TOKEN"],
            "description": "staging"
        })
    );

    // Everyone authenticated reads; only admins write.
    let got = server
        .get("/v1/environments/staging", Some(&member.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(got, created);
    let list = server
        .get("/v1/environments", Some(&member.token))
        .await
        .expect(200)
        .clone();
    assert_eq!(list["environments"], json!([created]));
    put(&server, "/v1/environments/staging", &member.token, &body)
        .await
        .expect_error(403, Some("forbidden"));
    delete(&server, "/v1/environments/staging", &member.token)
        .await
        .expect_error(403, Some("forbidden"));
    server
        .get("/v1/environments", None)
        .await
        .expect_error(401, None);
    server
        .get("/v1/environments/nope", Some(&member.token))
        .await
        .expect_error(404, Some("not_found"));

    // Validation: 422 with a message naming the problem; a non-JSON body is 400.
    for (path, bad, needle) in [
        (
            "/v1/environments/staging",
            json!({"egress": ["https://x.example.com"]}),
            "scheme",
        ),
        (
            "/v1/environments/staging",
            json!({"egress": ["x.example.com/path"]}),
            "path",
        ),
        (
            "/v1/environments/staging",
            json!({"egress": ["*.example.com"]}),
            "wildcard",
        ),
        (
            "/v1/environments/staging",
            json!({"egress": ["x.example.com:99999"]}),
            "port",
        ),
        (
            "/v1/environments/staging",
            json!({"secrets": ["lower"]}),
            "secret name",
        ),
        ("/v1/environments/Bad!", json!({}), "environment name"),
        ("/v1/environments/staging", json!({"name": "other"}), "name"),
        (
            "/v1/environments/staging",
            json!({"egress": "api.github.com"}),
            "sequence",
        ),
        ("/v1/environments/staging", json!({"unknown": 1}), "unknown"),
    ] {
        let r = put(&server, path, admin, &bad).await;
        r.expect_error(422, None);
        let message = r.json["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(needle), "{bad}: {message}");
    }
    let r = put(
        &server,
        "/v1/environments/staging",
        admin,
        &json!({"secrets": ["MISSING"]}),
    )
    .await;
    r.expect_error(422, Some("unknown_secret"));
    assert!(r.text.contains("MISSING"), "{}", r.text);
    let r = server
        .send(
            server
                .request(Method::PUT, "/v1/environments/staging", Some(admin))
                .body("{not json"),
        )
        .await;
    r.expect_error(400, None);

    // Replace, then delete: 200 with the deleted one; again: 404.
    let replaced = put(
        &server,
        "/v1/environments/staging",
        admin,
        &json!({"egress": ["10.0.0.1:8443"]}),
    )
    .await
    .expect(200)
    .clone();
    assert_eq!(
        replaced,
        json!({"name": "staging", "egress": ["10.0.0.1:8443"], "secrets": [], "description": ""})
    );
    let deleted = delete(&server, "/v1/environments/staging", admin)
        .await
        .expect(200)
        .clone();
    assert_eq!(deleted, replaced);
    delete(&server, "/v1/environments/staging", admin)
        .await
        .expect_error(404, None);

    let created_events = audit_of(&server, admin, "environment.created").await;
    assert_eq!(created_events.len(), 1, "{created_events:?}");
    assert_eq!(created_events[0]["actor"], org.admin_user_id.as_str());
    assert_eq!(created_events[0]["data"]["egress"], created["egress"]);
    let updated = audit_of(&server, admin, "environment.updated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(
        updated[0]["data"]["before"]["secrets"],
        json!(["DEPLOY_TOKEN"])
    );
    assert_eq!(
        audit_of(&server, admin, "environment.deleted").await.len(),
        1
    );
}

#[tokio::test]
async fn secret_values_go_in_and_never_come_out() {
    const VALUE: &str = "s3cr3t-V4lue-that-must-never-leak";
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    let member = server.dep.user_create("mia", "member");
    let service = server.dep.user_create("ci", "service");

    let mut answers: Vec<String> = Vec::new();
    let set = put(
        &server,
        "/v1/secrets/GITHUB_TOKEN",
        admin,
        &json!({"value": VALUE}),
    )
    .await;
    let meta = set.expect(200).clone();
    answers.push(set.text.clone());
    assert_eq!(meta["name"], "GITHUB_TOKEN");
    assert!(meta["updated_at"].is_string(), "{meta}");
    assert_eq!(meta.as_object().map(|m| m.len()), Some(2), "{meta}");

    // Only admins, for every operation.
    for token in [&member.token, &service.token] {
        for r in [
            put(
                &server,
                "/v1/secrets/GITHUB_TOKEN",
                token,
                &json!({"value": "x-other"}),
            )
            .await,
            server.get("/v1/secrets", Some(token)).await,
            delete(&server, "/v1/secrets/GITHUB_TOKEN", token).await,
        ] {
            r.expect_error(403, Some("forbidden"));
        }
    }

    // Bad input: 422 (never quoting the body), not-JSON 400.
    for bad in [
        json!({"value": ""}),
        json!({"value": 12345}),
        json!({"value": VALUE, "extra": VALUE}),
        json!({}),
        json!({"value": "x".repeat(64 * 1024 + 1)}),
    ] {
        let r = put(&server, "/v1/secrets/GITHUB_TOKEN", admin, &bad).await;
        r.expect_error(422, None);
        answers.push(r.text.clone());
    }
    put(
        &server,
        "/v1/secrets/lower-case",
        admin,
        &json!({"value": VALUE}),
    )
    .await
    .expect_error(422, Some("invalid_name"));
    let r = server
        .send(
            server
                .request(Method::PUT, "/v1/secrets/GITHUB_TOKEN", Some(admin))
                .body(format!("{{\"value\": \"{VALUE}\"")),
        )
        .await;
    r.expect_error(400, None);
    answers.push(r.text.clone());

    let list = server.get("/v1/secrets", Some(admin)).await;
    answers.push(list.text.clone());
    let names: Vec<&str> = list.expect(200)["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["GITHUB_TOKEN"]);

    // Used by an environment, rotated, then deleted.
    let env = put(
        &server,
        "/v1/environments/prod",
        admin,
        &json!({"secrets": ["GITHUB_TOKEN"]}),
    )
    .await;
    env.expect(200);
    answers.push(env.text.clone());
    let rotated = server
        .post(
            "/v1/org/emergency",
            Some(admin),
            &json!({"action": "rotate_credentials"}),
        )
        .await;
    rotated.expect(200);
    answers.push(rotated.text.clone());
    let gone = delete(&server, "/v1/secrets/GITHUB_TOKEN", admin).await;
    assert_eq!(gone.expect(200)["name"], "GITHUB_TOKEN");
    answers.push(gone.text.clone());
    delete(&server, "/v1/secrets/GITHUB_TOKEN", admin)
        .await
        .expect_error(404, None);

    assert_eq!(audit_of(&server, admin, "secret.set").await.len(), 1);
    let deleted = audit_of(&server, admin, "secret.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"], json!({"name": "GITHUB_TOKEN"}));
    let rotation = audit_of(&server, admin, "emergency.rotate_credentials").await;
    assert_eq!(rotation.len(), 1, "{rotation:?}");
    assert_eq!(
        rotation[0]["data"]["secrets_reencrypted"], 1,
        "{rotation:?}"
    );
    assert_eq!(rotation[0]["data"]["key_version"], 2, "{rotation:?}");

    let all_audit = server.get("/v1/audit-events?limit=1000", Some(admin)).await;
    answers.push(all_audit.text.clone());
    for text in &answers {
        assert!(!text.contains(VALUE), "the value came back: {text}");
    }
    assert!(
        !server.log_text().contains(VALUE),
        "the value is in the server log"
    );
    if !server.dep.is_postgres() {
        // Nothing on disk holds the value in plain text (database file, its WAL, anything).
        for entry in walk(&server.dep.data_dir) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
                "{} holds the value in plain text",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn rotate_credentials_re_encrypts_every_secret_under_a_new_data_key() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = org.admin_token.as_str();
    for name in ["A_ONE", "B_TWO", "C_THREE"] {
        put(
            &server,
            &format!("/v1/secrets/{name}"),
            admin,
            &json!({"value": format!("value-of-{name}")}),
        )
        .await
        .expect(200);
    }
    let before = server
        .dep
        .sql("SELECT name, key_version, ciphertext FROM secrets ORDER BY name");
    for _ in 0..2 {
        server
            .post(
                "/v1/org/emergency",
                Some(admin),
                &json!({"action": "rotate_credentials"}),
            )
            .await
            .expect(200);
    }
    let rotations = audit_of(&server, admin, "emergency.rotate_credentials").await;
    let versions: Vec<&Value> = rotations
        .iter()
        .map(|e| &e["data"]["key_version"])
        .collect();
    assert_eq!(versions, [&json!(2), &json!(3)]);
    assert!(
        rotations
            .iter()
            .all(|e| e["data"]["secrets_reencrypted"] == 3)
    );
    if let (Some(before), Some(after)) = (
        before,
        server
            .dep
            .sql("SELECT name, key_version, ciphertext FROM secrets ORDER BY name"),
    ) {
        assert_ne!(before, after);
        for line in after.lines() {
            assert!(line.contains("|3|"), "not under data key v3: {line}");
        }
    }
    // Still usable afterwards: setting one more works under the new key.
    put(
        &server,
        "/v1/secrets/D_FOUR",
        admin,
        &json!({"value": "value-four"}),
    )
    .await
    .expect(200);
}
