//! Bad input: every client mistake gets the contract's status and error shape, never a 500
//! (the support code fails any test that sees one).

use serde_json::json;

use crate::support::{Resp, Server};

/// POST /v1/tasks with a raw body.
async fn post_raw(server: &Server, token: &str, body: impl Into<reqwest::Body>) -> Resp {
    server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(token))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
}

#[tokio::test]
async fn task_bodies_that_are_not_json_are_400() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;

    for body in [
        &b"hello"[..],
        b"{\"command\":",
        b"{\"command\": \"ls\"",
        b"{command: 'ls'}",
        b"",
        b"\xff\xfe{}",
        b"{\"command\":\"ls\"} trailing",
    ] {
        let r = post_raw(&server, &token, body.to_vec()).await;
        r.expect_error(400, Some("invalid_json"));
    }
    // Whatever the content type says (curl -d sends a form type).
    let r = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(&token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("command=ls"),
        )
        .await;
    r.expect_error(400, Some("invalid_json"));
    let r = server
        .send(
            server
                .request(reqwest::Method::POST, "/v1/tasks", Some(&token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(r#"{"command":"ls"}"#),
        )
        .await;
    r.expect(202);
}

#[tokio::test]
async fn task_bodies_that_break_the_rules_are_422() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let cases = [
        json!({"command": 5}),
        json!({"command": ["ls"]}),
        json!({"command": null, "prompt": null}),
        json!({"prompt": true}),
        json!({"command": "ls", "environment": 7}),
        json!({"command": "ls", "extra": 1}),
        json!({"command": "ls", "prompt": "hi"}),
        json!({}),
        json!({"environment": "prod"}),
        json!({"command": ""}),
        json!({"command": "   \n\t"}),
        json!({"prompt": ""}),
        json!({"command": "ls\u{0}rm"}),
        json!([]),
        json!("ls"),
        json!(null),
        json!(42),
    ];
    for body in cases {
        let r = post_raw(&server, &token, body.to_string()).await;
        assert_eq!(r.status, 422, "{body} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
    // Nothing was created by any of them.
    let list = server.get("/v1/tasks", Some(&token)).await;
    assert_eq!(list.expect(200)["tasks"], json!([]));
}

#[tokio::test]
async fn input_size_limits() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    const KIB64: usize = 64 * 1024;

    // Exactly 64 KiB is accepted; one byte more is 422.
    let r = server
        .post(
            "/v1/tasks",
            Some(&token),
            &json!({"command": "a".repeat(KIB64)}),
        )
        .await;
    r.expect(202);
    let r = server
        .post(
            "/v1/tasks",
            Some(&token),
            &json!({"command": "a".repeat(KIB64 + 1)}),
        )
        .await;
    r.expect_error(422, None);
    let r = server
        .post(
            "/v1/tasks",
            Some(&token),
            &json!({"prompt": "é".repeat(KIB64 / 2 + 1)}),
        )
        .await;
    r.expect_error(422, None);

    // A body over 1 MiB is 413, even when it is valid JSON.
    let big = json!({"command": "a".repeat(1024 * 1024)}).to_string();
    let r = post_raw(&server, &token, big).await;
    r.expect_error(413, None);
    // And when it is not, the size still decides.
    let r = post_raw(&server, &token, vec![b'x'; 1024 * 1024 + 1]).await;
    r.expect_error(413, None);

    let list = server.get("/v1/tasks", Some(&token)).await;
    assert_eq!(list.expect(200)["tasks"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn bad_idempotency_keys_are_422() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    for key in ["a b", &"k".repeat(201)] {
        let r = server
            .send(
                server
                    .request(reqwest::Method::POST, "/v1/tasks", Some(&token))
                    .header("Idempotency-Key", key)
                    .json(&json!({"command": "ls"})),
            )
            .await;
        r.expect_error(422, None);
    }
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let t = Some(token.as_str());
    for path in [
        "/v1/tasks/tsk_aaaaaaaaaaaaaaaaaaaaaaaa",
        "/v1/tasks/NOT_AN_ID!",
        "/v1/tasks/%00",
        "/v1/tasks/tsk%20x",
        &format!("/v1/tasks/{}", "a".repeat(33)),
    ] {
        server.get(path, t).await.expect_error(404, None);
    }
    for path in [
        "/v1/tasks/tsk_aaaaaaaaaaaaaaaaaaaaaaaa/cancel",
        "/v1/tasks/NOT_AN_ID!/cancel",
    ] {
        server
            .post(path, t, &json!({}))
            .await
            .expect_error(404, None);
    }
    server
        .patch("/v1/users/usr_nosuchuser00", t, &json!({"role": "admin"}))
        .await
        .expect_error(404, None);
    server
        .patch("/v1/users/NOT_AN_ID!", t, &json!({"role": "admin"}))
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let t = Some(token.as_str());
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "status=BOGUS",
        "status=queued",
        "before=NOT_AN_ID!",
        "user_id=NOT_AN_ID!",
    ] {
        let r = server.get(&format!("/v1/tasks?{query}"), t).await;
        assert_eq!(r.status, 422, "?{query} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
    for query in ["limit=0", "limit=501", "limit=abc", "before=NOT_AN_ID!"] {
        let r = server.get(&format!("/v1/users?{query}"), t).await;
        assert_eq!(r.status, 422, "users ?{query} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
    for query in ["limit=1", "limit=500", "status=QUEUED", ""] {
        server
            .get(&format!("/v1/tasks?{query}"), t)
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let t = Some(token.as_str());

    server.get("/nope", None).await.expect_error(404, None);
    server.get("/v1/nope", t).await.expect_error(404, None);
    server.get("/v2/tasks", t).await.expect_error(404, None);

    let cases = [
        (reqwest::Method::DELETE, "/v1/tasks"),
        (reqwest::Method::PUT, "/v1/tasks"),
        (reqwest::Method::POST, "/healthz"),
        (
            reqwest::Method::DELETE,
            "/v1/tasks/tsk_aaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        (
            reqwest::Method::GET,
            "/v1/tasks/tsk_aaaaaaaaaaaaaaaaaaaaaaaa/cancel",
        ),
        (reqwest::Method::POST, "/v1/users"),
    ];
    for (method, path) in cases {
        let r = server.send(server.request(method.clone(), path, t)).await;
        assert_eq!(r.status, 405, "{method} {path} → {} {}", r.status, r.text);
        r.expect_error(405, None);
    }
}

#[tokio::test]
async fn bad_user_and_invite_bodies_are_422() {
    let server = Server::start().await;
    let org = server.org_init();
    let t = Some(org.admin_token.as_str());
    let bob = server.dep.user_create("bob", "member");
    let user_path = format!("/v1/users/{}", bob.user_id);
    for body in [
        json!({}),
        json!({"role": "superuser"}),
        json!({"role": "Admin"}),
        json!({"disabled": "yes"}),
        json!({"name": "x"}),
        json!([]),
    ] {
        let r = server.patch(&user_path, t, &body).await;
        assert_eq!(r.status, 422, "{body} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
    let r = server
        .send(
            server
                .request(reqwest::Method::PATCH, &user_path, t)
                .body("{not json"),
        )
        .await;
    r.expect_error(400, Some("invalid_json"));

    for body in [
        json!({"role": "root"}),
        json!({"ttl": 5}),
        json!({"extra": true}),
        json!({"user_id": "NOT AN ID"}),
    ] {
        let r = server.post("/v1/invites", t, &body).await;
        assert_eq!(r.status, 422, "{body} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
}
