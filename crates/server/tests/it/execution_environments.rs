//! Environments end to end: egress only to allowlisted hosts through the sandbox's proxy, none
//! without an environment; secrets injected for the run and redacted from everything it prints;
//! an approval bound to the environment's grants refuses to run after they changed.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Deployment, Resp, Server};

const SHORT: Duration = Duration::from_secs(30);
const SECRET: &str = "s3cr3t-Value-9f8e7d6c";

async fn put(server: &Server, path: &str, token: &str, body: &Value) -> Resp {
    server
        .send(server.request(Method::PUT, path, Some(token)).json(body))
        .await
}

/// A one-line HTTP server on the host's loopback; answers every request with `body`.
async fn upstream(body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

async fn run(server: &Server, token: &str, command: &str, environment: Option<&str>) -> Value {
    let mut body = json!({"command": command});
    if let Some(env) = environment {
        body["environment"] = json!(env);
    }
    let task = server
        .post("/v1/tasks", Some(token), &body)
        .await
        .expect(202)
        .clone();
    let id = task["task_id"].as_str().unwrap().to_owned();
    if task["status"] == "WAITING_APPROVAL" {
        let approval = task["approval_id"].as_str().unwrap();
        server
            .post(
                &format!("/v1/approvals/{approval}/decision"),
                Some(token),
                &json!({"decision": "APPROVE"}),
            )
            .await
            .expect(200);
    }
    server.wait_finished(token, &id, SHORT).await
}

#[tokio::test]
async fn egress_goes_only_to_allowlisted_hosts_and_secrets_never_leak() {
    let allowed = upstream("hello from upstream").await;
    let other = upstream("must not be reached").await;
    let (server, token) = {
        let server = Server::start_with(Deployment::new().with_workers(4)).await;
        let token = server.org_init().admin_token;
        (server, token)
    };
    put(
        &server,
        "/v1/secrets/API_TOKEN",
        &token,
        &json!({"value": SECRET}),
    )
    .await
    .expect(200);
    put(
        &server,
        "/v1/environments/staging",
        &token,
        &json!({"egress": [format!("127.0.0.1:{allowed}")], "secrets": ["API_TOKEN"], "description": "test"}),
    )
    .await
    .expect(200);

    // Allowlisted: reachable through the proxy.
    let done = run(
        &server,
        &token,
        &format!("curl -sS http://127.0.0.1:{allowed}/"),
        Some("staging"),
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["result"]["output"], "hello from upstream", "{done}");

    // Another port on the same host: refused by the proxy.
    let done = run(
        &server,
        &token,
        &format!("curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{other}/"),
        Some("staging"),
    )
    .await;
    assert_eq!(done["result"]["output"], "403", "{done}");

    // Without an environment there is no network at all, not even the host's loopback.
    let done = run(
        &server,
        &token,
        &format!("curl -sS --max-time 5 http://127.0.0.1:{allowed}/"),
        None,
    )
    .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(
        !done["result"]["output"].as_str().unwrap().contains("hello"),
        "{done}"
    );

    // The secret is in the sandbox (variable and file) and redacted from the result.
    let done = run(
        &server,
        &token,
        "echo \"var=$API_TOKEN\"; cat /run/secrets/API_TOKEN; echo; printf %s \"$API_TOKEN\" | base64",
        Some("staging"),
    )
    .await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output = done["result"]["output"].as_str().unwrap();
    assert!(output.contains("var=[REDACTED:API_TOKEN]"), "{output}");
    assert!(!output.contains(SECRET), "{output}");
    let id = done["task_id"].as_str().unwrap();
    let events = server
        .get(&format!("/v1/tasks/{id}/events"), Some(&token))
        .await;
    assert!(
        events.text.contains("REDACTED:API_TOKEN"),
        "{}",
        events.text
    );
    assert!(!events.text.contains(SECRET), "{}", events.text);
    let audit = server
        .get("/v1/audit-events?limit=1000", Some(&token))
        .await;
    assert!(
        !audit.text.contains(SECRET),
        "the audit log holds the secret"
    );
    assert!(
        !server.log_text().contains(SECRET),
        "the server log holds the secret"
    );
    let tasks = server.get("/v1/tasks?limit=500", Some(&token)).await;
    assert!(!tasks.text.contains(SECRET));
}

#[tokio::test]
async fn an_approval_does_not_survive_a_change_of_the_environments_grants() {
    let allowed = upstream("ok").await;
    let server = Server::start_with(Deployment::new().with_workers(2)).await;
    let token = server.org_init().admin_token;
    let env = json!({"egress": [format!("127.0.0.1:{allowed}")], "secrets": [], "description": ""});
    put(&server, "/v1/environments/prod", &token, &env)
        .await
        .expect(200);
    let task = server
        .post(
            "/v1/tasks",
            Some(&token),
            &json!({"command": "touch deployed", "environment": "prod"}),
        )
        .await
        .expect(202)
        .clone();
    assert_eq!(task["status"], "WAITING_APPROVAL", "{task}");
    // The grants change after the request was made...
    let wider = json!({"egress": [format!("127.0.0.1:{allowed}"), "example.com"], "secrets": [], "description": ""});
    put(&server, "/v1/environments/prod", &token, &wider)
        .await
        .expect(200);
    // ...so approving what was shown does not run it with the new grants.
    let approval = task["approval_id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/approvals/{approval}/decision"),
            Some(&token),
            &json!({"decision": "APPROVE"}),
        )
        .await
        .expect(200);
    let done = server
        .wait_finished(&token, task["task_id"].as_str().unwrap(), SHORT)
        .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["error"]["code"], "approval_mismatch", "{done}");
    assert!(done["result"].is_null(), "nothing ran: {done}");
}
