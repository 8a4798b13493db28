//! The Bot API client against the fake server: the real wire format, retries of 429 / 5xx /
//! malformed answers, no retry of other 4xx, and a token that never leaks.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use telegram::api::{ApiError, BotApi, RetryPolicy};
use telegram::outgoing::{Action, Button, Outgoing};
use telegram::testing::{Failure, FakeBotApi, text_update};

const TOKEN: &str = "123456:SECRET-TOKEN-abcdefghijklmnop";

fn fast(api: BotApi) -> BotApi {
    api.with_retry(RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(3),
        request_timeout: Duration::from_secs(2),
    })
}

#[tokio::test]
async fn messages_use_the_real_wire_format() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fake.api();
    assert_eq!(
        api.get_me().await.unwrap().username.as_deref(),
        Some("fake_bot")
    );
    let buttons = vec![vec![
        Button {
            text: "Approve".into(),
            callback_data: "ap:apr_1".into(),
        },
        Button {
            text: "Deny".into(),
            callback_data: "dn:apr_1".into(),
        },
    ]];
    let first = api.send_message(42, "<b>hi</b>", &buttons).await.unwrap();
    let second = api.send_message(42, "again", &[]).await.unwrap();
    assert!(second > first);
    let body = &fake.calls_to("sendMessage")[0];
    assert_eq!(body["chat_id"], 42);
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["text"], "<b>hi</b>");
    assert_eq!(
        body["reply_markup"],
        json!({"inline_keyboard": [[
            {"text": "Approve", "callback_data": "ap:apr_1"},
            {"text": "Deny", "callback_data": "dn:apr_1"}
        ]]})
    );
    assert!(
        fake.calls_to("sendMessage")[1]
            .get("reply_markup")
            .is_none()
    );

    // Editing to the same text is "message is not modified": success.
    api.edit_message_text(42, second, "again", &[])
        .await
        .unwrap();
    api.edit_message_text(42, second, "changed", &[])
        .await
        .unwrap();
    let err = api
        .edit_message_text(42, 999_999, "x", &[])
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");

    api.answer_callback_query("cb1", "Approved").await.unwrap();
    assert_eq!(
        fake.calls_to("answerCallbackQuery")[0],
        json!({"callback_query_id": "cb1", "text": "Approved"})
    );
    api.set_my_commands(&[("/run", "run a command"), ("help", "list commands")])
        .await
        .unwrap();
    assert_eq!(
        fake.calls_to("setMyCommands")[0]["commands"],
        json!([{"command": "run", "description": "run a command"}, {"command": "help", "description": "list commands"}])
    );
    api.set_webhook("https://example.com/telegram/webhook", "s3cret")
        .await
        .unwrap();
    assert_eq!(
        fake.webhook().as_deref(),
        Some("https://example.com/telegram/webhook")
    );
    assert_eq!(fake.calls_to("setWebhook")[0]["secret_token"], "s3cret");
    api.delete_webhook().await.unwrap();
    assert_eq!(fake.webhook(), None);
}

#[tokio::test]
async fn documents_are_uploaded_as_multipart_and_execute_returns_message_ids() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fake.api();
    let contents = "line 1\nline \"2\"\r\n<tag>&\n".repeat(200);
    let doc = Outgoing {
        dedupe_key: "d".into(),
        chat_id: 7,
        action: Action::SendDocument {
            file_name: "out\"put.txt".into(),
            contents: contents.clone(),
            caption_html: "full output of <code>tsk_1</code>".into(),
        },
    };
    let id = api.execute(&doc).await.unwrap();
    assert!(id.is_some());
    let body = &fake.calls_to("sendDocument")[0];
    assert_eq!(body["chat_id"], 7);
    assert_eq!(body["document"], contents.as_str());
    assert_eq!(body["document_name"], "output.txt");
    assert_eq!(body["parse_mode"], "HTML");

    let msg = Outgoing {
        dedupe_key: "m".into(),
        chat_id: 7,
        action: Action::SendMessage {
            html: "hi".into(),
            buttons: vec![],
        },
    };
    let mid = api.execute(&msg).await.unwrap().unwrap();
    let edit = Outgoing {
        dedupe_key: "e".into(),
        chat_id: 7,
        action: Action::EditMessageText {
            message_id: mid,
            html: "ho".into(),
            buttons: vec![],
        },
    };
    assert_eq!(api.execute(&edit).await.unwrap(), None);
    let answer = Outgoing {
        dedupe_key: "a".into(),
        chat_id: 7,
        action: Action::AnswerCallbackQuery {
            callback_query_id: "q".into(),
            text: String::new(),
        },
    };
    assert_eq!(api.execute(&answer).await.unwrap(), None);
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_retried() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fast(BotApi::new(&fake.base_url(), TOKEN.to_owned()));
    fake.fail_next_for("sendMessage", 2, Failure::RateLimited { retry_after: 1 });
    let started = Instant::now();
    api.send_message(1, "x", &[]).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retry_after not honoured"
    );
    assert_eq!(fake.calls_to("sendMessage").len(), 3);

    // A wait longer than the cap is handed back to the caller at once.
    fake.fail_next_for("sendMessage", 1, Failure::RateLimited { retry_after: 60 });
    let started = Instant::now();
    let err = api.send_message(1, "x", &[]).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_and_malformed_answers_are_retried_then_reported() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fast(BotApi::new(&fake.base_url(), TOKEN.to_owned()));
    fake.fail_next(1, Failure::ServerError);
    fake.fail_next(1, Failure::Malformed);
    api.send_message(1, "x", &[]).await.unwrap();
    assert_eq!(fake.calls_to("sendMessage").len(), 3);

    fake.fail_next(10, Failure::ServerError);
    let err = api.send_message(1, "y", &[]).await.unwrap_err();
    assert!(matches!(err, ApiError::Server { .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert_eq!(fake.calls_to("sendMessage").len(), 3 + 4);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fast(BotApi::new(&fake.base_url(), TOKEN.to_owned()));
    fake.fail_next(1, Failure::BadRequest("Bad Request: chat not found".into()));
    let err = api.send_message(1, "x", &[]).await.unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.description(), Some("Bad Request: chat not found"));
    assert_eq!(fake.calls_to("sendMessage").len(), 1);
    // A too-long message is refused by Telegram, not retried.
    let err = api
        .send_message(1, &"x".repeat(5000), &[])
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert_eq!(fake.calls_to("sendMessage").len(), 2);
}

#[tokio::test]
async fn long_polls_return_as_soon_as_an_update_arrives() {
    let fake = FakeBotApi::start(TOKEN).await;
    let api = fake.api();
    let started = Instant::now();
    assert!(api.get_updates(0, 1).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    let poll = tokio::spawn({
        let api = api.clone();
        async move { api.get_updates(0, 20).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    fake.push_update(text_update(5, 1, "hi"));
    let updates = poll.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(updates[0]["update_id"], 5);
    // Asking from a later offset confirms it.
    assert!(api.get_updates(6, 0).await.unwrap().is_empty());
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

#[test]
fn the_token_never_appears_in_errors_debug_output_or_logs() {
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
            let fake = FakeBotApi::start(TOKEN).await;
            let api = fast(BotApi::new(&fake.base_url(), TOKEN.to_owned()));
            let mut errors = Vec::new();
            // Telegram echoing something token-like in a description.
            fake.fail_next(1, Failure::BadRequest(format!("Bad Request: {TOKEN}")));
            errors.push(api.send_message(1, "x", &[]).await.unwrap_err());
            fake.fail_next(10, Failure::ServerError);
            errors.push(api.send_message(1, "x", &[]).await.unwrap_err());
            fake.fail_next(10, Failure::Malformed);
            errors.push(api.get_me().await.unwrap_err());
            // A wrong token: 401.
            let wrong = fast(BotApi::new(&fake.base_url(), format!("{TOKEN}x")));
            errors.push(wrong.get_me().await.unwrap_err());
            // Nothing listening: a transport error whose reqwest form carries the URL.
            let port = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let dead = fast(BotApi::new(
                &format!("http://127.0.0.1:{port}"),
                TOKEN.to_owned(),
            ));
            errors.push(dead.get_me().await.unwrap_err());
            // A timeout.
            let slow = BotApi::new(&fake.base_url(), TOKEN.to_owned()).with_retry(RetryPolicy {
                attempts: 1,
                request_timeout: Duration::from_millis(1),
                ..RetryPolicy::default()
            });
            errors.push(
                slow.get_updates(0, 0)
                    .await
                    .map(drop)
                    .err()
                    .unwrap_or_else(|| ApiError::Transport {
                        method: "none".into(),
                        message: "none".into(),
                    }),
            );
            let mut texts: Vec<String> = errors
                .iter()
                .flat_map(|e| [e.to_string(), format!("{e:?}")])
                .collect();
            texts.push(format!("{api:?}"));
            tracing::warn!(error = %errors[4], "logged like the server logs it");
            assert!(
                matches!(errors[4], ApiError::Transport { .. }),
                "{:?}",
                errors[4]
            );
            texts
        })
    });
    texts.push(String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned());
    for text in &texts {
        assert!(!text.contains("SECRET-TOKEN"), "token leaked: {text}");
        assert!(!text.contains("123456:"), "token leaked: {text}");
    }
    assert!(texts.last().unwrap().contains("logged like the server"));
}
