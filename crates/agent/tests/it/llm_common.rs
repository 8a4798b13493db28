//! Checks that hold for both wire formats, run against each fake LLM server by `llm_openai` and
//! `llm_anthropic`: retries, errors, timeouts, and the API key never leaking.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::llm::testing::{FakeLlm, Reply};
use agent::llm::{
    ApiKey, ChatMessage, ChatRequest, Finish, LlmConfig, LlmError, LlmProvider, Usage, WireFormat,
    provider,
};

/// The key the fakes accept.
pub const KEY: &str = "sk-test-SUPERSECRET-0123456789";

/// A one-question request with the contract's tools.
pub fn question(text: &str) -> ChatRequest {
    ChatRequest {
        system: "You are the AgenticAI planner.".to_owned(),
        messages: vec![ChatMessage::user(text)],
        tools: agent::planner::tools::specs(),
        max_tokens: 512,
    }
}

pub async fn fake(format: WireFormat) -> FakeLlm {
    FakeLlm::start(format, Some(KEY)).await
}

/// A provider for `fake` with `change` applied to its configuration.
pub fn provider_with(fake: &FakeLlm, change: impl FnOnce(&mut LlmConfig)) -> Arc<dyn LlmProvider> {
    let mut config = fake.config();
    change(&mut config);
    provider(config).unwrap()
}

pub async fn text_answer(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::text("The disk is 40% full."));
    let llm = fake.provider();
    assert_eq!(llm.wire_format(), format);
    assert_eq!(llm.model(), "fake-model");
    let answer = llm
        .complete(&question("How full is the disk?"))
        .await
        .unwrap();
    assert_eq!(answer.text.as_deref(), Some("The disk is 40% full."));
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.finish, Finish::Stop);
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 12,
            output_tokens: 7
        }
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], "fake-model");
    assert_eq!(requests[0].body["max_tokens"], 512);
    // The key travels in its header only.
    assert!(!requests[0].raw.contains(KEY));
}

pub async fn rate_limited_then_success(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::RateLimited {
        retry_after_secs: Some(1),
    });
    fake.push(Reply::RateLimited {
        retry_after_secs: None,
    });
    fake.push(Reply::text("done"));
    let started = Instant::now();
    let answer = fake.provider().complete(&question("hi")).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("done"));
    assert_eq!(fake.requests().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retry-after was not honoured: {:?}",
        started.elapsed()
    );
}

pub async fn retry_after_beyond_the_cap_is_returned(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::RateLimited {
        retry_after_secs: Some(3600),
    });
    fake.push(Reply::text("never asked"));
    let started = Instant::now();
    let err = fake.provider().complete(&question("hi")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    match &err {
        LlmError::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(err.to_string().contains("retry after 3600s"), "{err}");
    assert_eq!(fake.requests().len(), 1);
}

pub async fn server_errors_exhaust_the_retries(format: WireFormat) {
    let fake = fake(format).await;
    fake.push_n(3, Reply::error(500, "upstream model crashed"));
    fake.push(Reply::text("too late"));
    let err = fake.provider().complete(&question("hi")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::ServerError { status: 500, message, .. } if message.contains("upstream model crashed")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("is failing: HTTP 500"), "{text}");
    assert!(text.contains(&fake.base_url()), "{text}");
    assert_eq!(fake.requests().len(), 3, "attempts = 3");
    assert_eq!(fake.remaining(), 1);
}

pub async fn wrong_key_is_misconfigured(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::text("unused"));
    let wrong = format!("{KEY}-wrong");
    let llm = provider_with(&fake, |c| c.api_key = Some(ApiKey::new(wrong.clone())));
    let err = llm.complete(&question("hi")).await.unwrap_err();
    assert!(matches!(err, LlmError::Misconfigured { .. }), "{err:?}");
    assert!(
        err.to_string().contains("API key was refused (HTTP 401"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
    for text in [err.to_string(), format!("{err:?}"), format!("{llm:?}")] {
        assert!(!text.contains(&wrong) && !text.contains(KEY), "{text}");
    }
}

pub async fn unknown_model_is_misconfigured(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::error(404, "model 'fake-model' not found"));
    let err = fake.provider().complete(&question("hi")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Misconfigured { message, .. } if message.contains("AGENTICAI_LLM_MODEL") && message.contains("not found")),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

pub async fn other_4xx_is_rejected_without_retry(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::error(
        400,
        "prompt is too long: 250000 tokens > 200000 maximum",
    ));
    let err = fake.provider().complete(&question("hi")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Rejected { status: 400, message, .. } if message.contains("prompt is too long")),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

pub async fn malformed_body_is_a_bad_response(format: WireFormat) {
    let fake = fake(format).await;
    fake.push(Reply::Malformed);
    fake.push(Reply::json(serde_json::json!({"unexpected": "shape"})));
    let llm = fake.provider();
    let err = llm.complete(&question("hi")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::BadResponse { message, .. } if message.contains("not JSON")),
        "{err:?}"
    );
    let err = llm.complete(&question("hi")).await.unwrap_err();
    assert!(matches!(err, LlmError::BadResponse { .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 2, "a bad response is not retried");
}

pub async fn unreachable_and_timeouts(format: WireFormat) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fake = fake(format).await;
    let dead = provider_with(&fake, |c| {
        c.base_url = Some(format!("http://127.0.0.1:{port}"));
    });
    let err = dead.complete(&question("hi")).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Unreachable { message, .. } if message.contains("connection failed")),
        "{err:?}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");

    fake.push(Reply::Delayed(
        Duration::from_secs(3),
        Box::new(Reply::text("slow")),
    ));
    let impatient = provider_with(&fake, |c| {
        c.http.request_timeout = Duration::from_millis(300);
        c.http.attempts = 1;
    });
    let started = Instant::now();
    let err = impatient.complete(&question("hi")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&err, LlmError::Unreachable { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every failure path, with logs captured at TRACE: the key appears in no error, no `Debug`
/// output, no log line, and no request body.
pub fn key_never_leaks(format: WireFormat) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut texts = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let fake = fake(format).await;
            let llm = fake.provider();
            let mut errors = Vec::new();
            // A provider echoing the key in its messages.
            fake.push(Reply::error(400, format!("bad request from key {KEY}")));
            errors.push(llm.complete(&question("hi")).await.unwrap_err());
            fake.push_n(3, Reply::error(503, format!("overloaded ({KEY})")));
            errors.push(llm.complete(&question("hi")).await.unwrap_err());
            fake.push_n(
                3,
                Reply::RateLimited {
                    retry_after_secs: None,
                },
            );
            errors.push(llm.complete(&question("hi")).await.unwrap_err());
            fake.push(Reply::Raw {
                status: 200,
                body: format!("not json {KEY}"),
            });
            errors.push(llm.complete(&question("hi")).await.unwrap_err());
            // A wrong key (containing the right one).
            let wrong = provider_with(&fake, |c| c.api_key = Some(ApiKey::new(format!("{KEY}x"))));
            errors.push(wrong.complete(&question("hi")).await.unwrap_err());
            // Nothing listening.
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let dead = provider_with(&fake, |c| {
                c.base_url = Some(format!("http://127.0.0.1:{port}"));
            });
            errors.push(dead.complete(&question("hi")).await.unwrap_err());
            // A key that cannot be a header value.
            let broken = provider_with(&fake, |c| {
                c.api_key = Some(ApiKey::new(format!("{KEY}\n")));
            });
            errors.push(broken.complete(&question("hi")).await.unwrap_err());
            let mut texts: Vec<String> = errors
                .iter()
                .flat_map(|e| [e.to_string(), format!("{e:?}")])
                .collect();
            texts.push(format!("{llm:?}"));
            texts.push(format!("{:?}", fake.config()));
            texts.extend(fake.requests().iter().map(|r| r.raw.clone()));
            texts
        })
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("LLM call failed; retrying"),
        "logs were captured: {logs}"
    );
    texts.push(logs);
    for text in texts {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("SUPERSECRET"), "the key leaked: {text}");
    }
}
