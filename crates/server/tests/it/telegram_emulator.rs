//! The Telegram channel end to end against an independent Bot API implementation: the npm
//! package `telegram-test-api` (pinned in `crates/server/tests/emulator/package-lock.json`,
//! installed there by `scripts/test` with `npm ci`), started by `tests/emulator/start.js`. The
//! real binary polls it (deleteWebhook, getUpdates) and answers with sendMessage and
//! editMessageText; the test plays the user through the emulator's own client routes
//! (`POST /sendCommand`, `POST /sendMessage`) and reads what the bot sent with
//! `POST /getUpdatesHistory`, which shows each bot message as last edited.
//!
//! The emulator lacks `setMyCommands` (it answers HTTP 500), so the server must carry on without
//! its command menu; its `getUpdates` answers at once (no long poll) and ignores `offset`, handing
//! out each update once.
//!
//! Node.js and the installed package are required: the test fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{Deployment, Server, free_port};

const TOKEN: &str = "424242:EMULATOR-token-never-logged";
const WITHIN: Duration = Duration::from_secs(30);
const ADMIN_TG: i64 = 7001;
const STRANGER_TG: i64 = 7002;

/// `crates/server/tests/emulator`: package.json, package-lock.json, start.js, node_modules.
fn emulator_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emulator")
}

/// The emulator as a child process on a loopback port; killed on drop (and it exits by itself
/// when its stdin, held here, closes).
struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    log: tempfile::NamedTempFile,
    url: String,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts it and waits until it answers; fails the test with a clear message when Node.js or
    /// the package is missing.
    async fn start() -> Emulator {
        let dir = emulator_dir();
        let node = Command::new("node")
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        match node {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "`node --version` failed ({}): this test needs Node.js 18+ for the telegram-test-api \
                 emulator (scripts/test installs the package; Node itself must be on PATH)",
                out.status
            ),
            Err(e) => panic!(
                "cannot run `node` ({e}): this test needs Node.js 18+ on PATH for the \
                 telegram-test-api emulator; scripts/test then installs the package"
            ),
        }
        let package = dir.join("node_modules/telegram-test-api/package.json");
        assert!(
            package.is_file(),
            "the telegram-test-api emulator is not installed ({} is missing): run \
             `npm ci --no-audit --no-fund` in {} (scripts/test does it)",
            package.display(),
            dir.display()
        );

        let port = free_port();
        let log = tempfile::Builder::new()
            .prefix("telegram-test-api-")
            .suffix(".log")
            .tempfile()
            .expect("emulator log file");
        let mut child = Command::new("node")
            .arg("start.js")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(log.reopen().expect("reopen log"))
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the emulator (node start.js {port}): {e}"));
        let stdin = child.stdin.take().expect("emulator stdin");
        let emulator = Emulator {
            child,
            _stdin: stdin,
            log,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        };
        emulator.wait_ready().await;
        emulator
    }

    /// Waits until the emulator answers a Bot API call (its getMe) with our token.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self
                .http
                .post(format!("{}/bot{TOKEN}/getMe", self.url))
                .json(&json!({}))
                .send()
                .await;
            if let Ok(r) = answer
                && let Ok(body) = r.json::<Value>().await
                && body["ok"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the telegram-test-api emulator did not answer on {} within 20 s\n--- emulator \
                 log ---\n{}",
                self.url,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The message a private-chat user sends, shaped as the emulator's own client makes it
    /// (`makeMessage` / `makeCommand`): the emulator turns it into an update for the bot.
    fn user_message(user_id: i64, text: &str) -> Value {
        let date = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut message = json!({
            "botToken": TOKEN,
            "from": {
                "id": user_id,
                "first_name": format!("User{user_id}"),
                "username": format!("user{user_id}"),
                "is_bot": false,
            },
            "chat": {
                "id": user_id,
                "first_name": format!("User{user_id}"),
                "username": format!("user{user_id}"),
                "type": "private",
            },
            "date": date,
            "text": text,
        });
        if text.starts_with('/') {
            let length = text.find(' ').unwrap_or(text.len());
            message["entities"] = json!([{"offset": 0, "length": length, "type": "bot_command"}]);
        }
        message
    }

    /// The user `user_id` sends `text` in their private chat with the bot (a command when it
    /// starts with `/`).
    async fn user_sends(&self, user_id: i64, text: &str) {
        let route = if text.starts_with('/') {
            "sendCommand"
        } else {
            "sendMessage"
        };
        let answer = self
            .http
            .post(format!("{}/{route}", self.url))
            .json(&Self::user_message(user_id, text))
            .send()
            .await
            .unwrap_or_else(|e| panic!("emulator /{route} failed: {e}"));
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "emulator /{route} answered {status}: {body}"
        );
    }

    /// Everything the bot has sent to `chat_id` so far, oldest first, each as last edited.
    async fn bot_texts(&self, chat_id: i64) -> Vec<String> {
        let answer = self
            .http
            .post(format!("{}/getUpdatesHistory", self.url))
            .json(&json!({"token": TOKEN}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("emulator /getUpdatesHistory failed: {e}"));
        let body: Value = answer
            .json()
            .await
            .expect("emulator /getUpdatesHistory JSON");
        body["result"]
            .as_array()
            .unwrap_or_else(|| panic!("no result list from /getUpdatesHistory: {body}"))
            .iter()
            .map(|entry| &entry["message"])
            // The bot's messages carry `chat_id`; the users' carry `from` and `chat`.
            .filter(|m| m.get("from").is_none())
            .filter(|m| match &m["chat_id"] {
                Value::Number(n) => n.as_i64() == Some(chat_id),
                Value::String(s) => s == &chat_id.to_string(),
                _ => false,
            })
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the bot has sent `chat_id` a message for which `wanted` holds; returns it.
    async fn wait_bot_text(
        &self,
        server: &Server,
        chat_id: i64,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WITHIN;
        loop {
            let texts = self.bot_texts(chat_id).await;
            if let Some(t) = texts.iter().find(|t| wanted(t)) {
                return t.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the bot sent chat {chat_id} no message {what} within {WITHIN:?}; it sent: \
                 {texts:#?}\n--- emulator log ---\n{}\n--- server log ---\n{}",
                self.log_text(),
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `tsk_…` word of `text`.
fn task_id_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .find(|w| w.starts_with("tsk_"))
        .map(str::to_owned)
}

#[tokio::test]
async fn telegram_emulator_polling_onboards_the_admin_and_runs_a_command() {
    let emulator = Emulator::start().await;
    let dep = Deployment::new()
        .with_workers(2)
        .var("AGENTICAI_TELEGRAM_BOT_TOKEN", TOKEN)
        .var("AGENTICAI_TELEGRAM_API_URL", &emulator.url);
    let server = Server::start_with(dep).await;
    let org = server.org_init();

    // An unlinked user: only the refusal that says how to join, and no task.
    emulator.user_sends(STRANGER_TG, "/run echo nope").await;
    let refusal = emulator
        .wait_bot_text(&server, STRANGER_TG, "refusing the stranger", |t| {
            t.contains("/start")
        })
        .await;
    assert!(!refusal.contains("tsk_"), "{refusal}");

    // The admin links their Telegram with the link code from `org init`.
    emulator
        .user_sends(ADMIN_TG, &format!("/start {}", org.admin_link_code))
        .await;
    emulator
        .wait_bot_text(&server, ADMIN_TG, "confirming the link", |t| {
            t.contains("Linked")
        })
        .await;

    // /run: answered with the task id, then the result (exit code and output).
    emulator
        .user_sends(ADMIN_TG, "/run echo hello emulator")
        .await;
    let accepted = emulator
        .wait_bot_text(&server, ADMIN_TG, "with a task id", |t| t.contains("tsk_"))
        .await;
    let task_id = task_id_in(&accepted).expect("a task id");
    let result = emulator
        .wait_bot_text(&server, ADMIN_TG, "with the result", |t| {
            t.contains(&task_id) && t.contains("exit code") && t.contains("<pre>hello emulator")
        })
        .await;
    assert!(result.contains("exit code <b>0</b>"), "{result}");

    // Plain text (the emulator's sendMessage route) without an LLM: the /run explanation.
    emulator.user_sends(ADMIN_TG, "hello bot").await;
    emulator
        .wait_bot_text(&server, ADMIN_TG, "explaining /run", |t| {
            t.contains("/run") && !t.contains("tsk_") && !t.contains("Linked")
        })
        .await;

    // Exactly one task, the admin's, finished; one link reply; the token is never logged.
    let tasks = server.get("/v1/tasks", Some(&org.admin_token)).await;
    let tasks = tasks.expect(200)["tasks"].as_array().cloned().unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(tasks[0]["task_id"], task_id.as_str());
    assert_eq!(tasks[0]["user_id"], org.admin_user_id.as_str());
    assert_eq!(tasks[0]["status"], "SUCCEEDED");
    let texts = emulator.bot_texts(ADMIN_TG).await;
    assert_eq!(
        texts.iter().filter(|t| t.contains("Linked")).count(),
        1,
        "{texts:#?}"
    );
    let log = server.log_text();
    assert!(
        !log.contains(TOKEN) && !log.contains("EMULATOR-token"),
        "the bot token is in the server log"
    );
}
