//! `/metrics` (Prometheus text) and `/openapi.json` (an OpenAPI 3 document).

use crate::support::Server;

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    server.create_command(&token, "ls").await;
    server.create_command(&token, "pwd").await;
    server.get("/v1/tasks", Some(&token)).await.expect(200);

    let r = server.get("/metrics", None).await;
    r.expect(200);
    let content_type = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(r.text.contains("http_requests_total"), "{}", r.text);
    let depth = r
        .text
        .lines()
        .find(|l| l.starts_with("agenticai_queue_depth"))
        .unwrap_or_else(|| panic!("no agenticai_queue_depth:\n{}", r.text));
    let value: f64 = depth
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {depth}"));
    // Both tasks wait in the queue while no executor runs them; later, fewer may.
    assert!((0.0..=2.0).contains(&value), "{depth}");
    assert!(
        r.text.contains("agenticai_tasks{status=\"QUEUED\"}"),
        "{}",
        r.text
    );
    // Secrets never appear.
    assert!(!r.text.contains(&token));
}

#[tokio::test]
async fn openapi_document_is_openapi_3() {
    let server = Server::start().await;
    let r = server.get("/openapi.json", None).await;
    let doc = r.expect(200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        r.text
    );
    let paths = doc["paths"].as_object().expect("paths is an object");
    assert!(!paths.is_empty());
}
