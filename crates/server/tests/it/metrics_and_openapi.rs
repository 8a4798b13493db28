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

/// The document and the router agree: every operation documented as implemented is routed, and
/// every operation still marked `x-status: planned` reaches the fallback (so the marker is removed
/// when the route lands).
#[tokio::test]
async fn every_documented_operation_matches_the_router() {
    let server = Server::start().await;
    let token = server.org_init().admin_token;
    let doc = server.get("/openapi.json", None).await.expect(200).clone();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "zz" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in ops.as_object().expect("operations") {
            let Ok(m) = method.to_uppercase().parse::<reqwest::Method>() else {
                continue;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                continue;
            }
            let mut request = server.request(m.clone(), &concrete, Some(&token));
            if ["POST", "PUT", "PATCH"].contains(&m.as_str()) {
                request = request.json(&serde_json::json!({}));
            }
            let r = server.send(request).await;
            let fell_through =
                r.status == 404 && r.text.contains("route not found") || r.status == 405;
            let planned = op.get("x-status").and_then(|s| s.as_str()) == Some("planned");
            assert_eq!(
                fell_through, planned,
                "{method} {path}: status {} (planned: {planned})",
                r.status
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations documented");
}
