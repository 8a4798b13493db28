//! A conversation over a real database and coordinator (no network): updates are built as
//! Telegram sends them and handed to `Conversation::handle` directly.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use coordinator::{Actor, Coordinator, Page};
use domain::{Role, User};
use serde_json::json;
use store::bus::Bus;
use telegram::chat::{ChatConfig, Conversation};
use telegram::handler::Handler;
use telegram::outgoing::{Action, Outgoing};
use telegram::update::Update;

/// Our bot's username in these tests.
pub const BOT: &str = "agentic_bot";

pub struct ChatFixture {
    pub conv: Conversation,
    pub coord: Coordinator,
    /// The `org init` admin and the link code for their Telegram.
    pub admin: User,
    pub admin_link_code: String,
    next_update: AtomicI64,
    _dir: tempfile::TempDir,
}

impl ChatFixture {
    /// An initialised org, and a conversation with a generous rate limit.
    pub async fn new() -> ChatFixture {
        ChatFixture::with_limit(1000).await
    }

    /// An initialised org, and a conversation where free text goes to the agent.
    pub async fn with_agent() -> ChatFixture {
        ChatFixture::initialised(1000, true).await
    }

    pub async fn with_limit(messages_per_minute: u32) -> ChatFixture {
        ChatFixture::initialised(messages_per_minute, false).await
    }

    async fn initialised(messages_per_minute: u32, agent: bool) -> ChatFixture {
        let fx = ChatFixture::create(messages_per_minute, agent).await;
        let init = fx.coord.init_org("Acme", "root").await.unwrap();
        let admin = fx
            .coord
            .list_users(Actor::Operator, &Page::default())
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.user_id == init.admin_user_id)
            .unwrap();
        ChatFixture {
            admin,
            admin_link_code: init.admin_link_code,
            ..fx
        }
    }

    /// A deployment where `org init` has not run.
    pub async fn uninitialised(messages_per_minute: u32) -> ChatFixture {
        ChatFixture::create(messages_per_minute, false).await
    }

    async fn create(messages_per_minute: u32, agent: bool) -> ChatFixture {
        let dir = tempfile::tempdir().unwrap();
        let db = store::testing::fresh_database(dir.path()).await;
        let coord = Coordinator::new(db, Bus::in_process());
        let conv = Conversation::new(
            coord.clone(),
            ChatConfig {
                bot_username: Some(BOT.to_owned()),
                messages_per_minute,
                agent,
            },
        );
        let placeholder = User {
            user_id: domain::Id::parse("usr_none").unwrap(),
            name: String::new(),
            role: Role::Member,
            disabled: false,
            telegram_linked: false,
            bypass: domain::BypassMode::Off,
            created_at: domain::Timestamp::from_millis(0),
        };
        ChatFixture {
            conv,
            coord,
            admin: placeholder,
            admin_link_code: String::new(),
            next_update: AtomicI64::new(1000),
            _dir: dir,
        }
    }

    pub fn update_id(&self) -> i64 {
        self.next_update.fetch_add(1, Ordering::SeqCst)
    }

    /// A private text message from Telegram user `from`, as Telegram sends it.
    pub fn message(&self, update_id: i64, from: i64, text: &str) -> Update {
        Update::parse(&json!({
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": from, "type": "private", "first_name": "T"},
                "from": {"id": from, "is_bot": false, "first_name": "T", "username": format!("user{from}")},
                "text": text
            }
        }))
        .unwrap()
    }

    /// A group message.
    pub fn group_message(&self, update_id: i64, from: i64, text: &str) -> Update {
        Update::parse(&json!({
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": -100_123, "type": "supergroup", "title": "ops"},
                "from": {"id": from, "is_bot": false, "first_name": "T"},
                "text": text
            }
        }))
        .unwrap()
    }

    /// A button press by `from` on message `message_id` of their private chat.
    pub fn callback(&self, update_id: i64, from: i64, data: &str, message_id: i64) -> Update {
        Update::parse(&json!({
            "update_id": update_id,
            "callback_query": {
                "id": format!("cb{update_id}"),
                "from": {"id": from, "is_bot": false, "first_name": "T"},
                "message": {
                    "message_id": message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": from, "type": "private"},
                    "text": "the approval"
                },
                "chat_instance": "1",
                "data": data
            }
        }))
        .unwrap()
    }

    /// Sends a private message and returns the replies.
    pub async fn send(&self, from: i64, text: &str) -> Vec<Outgoing> {
        let u = self.message(self.update_id(), from, text);
        self.conv.handle(u).await.unwrap()
    }

    /// Presses a button and returns the replies.
    pub async fn press(&self, from: i64, data: &str) -> Vec<Outgoing> {
        let u = self.callback(self.update_id(), from, data, 77);
        self.conv.handle(u).await.unwrap()
    }

    /// A fresh invite code.
    pub async fn invite(&self, role: Role) -> String {
        self.coord
            .create_invite(Actor::Operator, role, Duration::from_secs(3600))
            .await
            .unwrap()
            .code
    }

    /// Onboards Telegram user `tg` through an invite and `/start`; returns the new user.
    pub async fn onboard(&self, tg: i64, role: Role) -> User {
        let code = self.invite(role).await;
        let out = self.send(tg, &format!("/start {code}")).await;
        assert!(joined(&out).contains("Welcome"), "{}", joined(&out));
        self.coord.user_by_telegram(tg).await.unwrap().unwrap()
    }

    /// Links the `org init` admin's Telegram (`tg`) with the admin link code.
    pub async fn link_admin(&self, tg: i64) {
        let out = self
            .send(tg, &format!("/start {}", self.admin_link_code))
            .await;
        assert!(joined(&out).contains("Linked"), "{}", joined(&out));
    }
}

/// The HTML of every message (sent or edited) and callback answer, in order.
pub fn texts(out: &[Outgoing]) -> Vec<String> {
    out.iter()
        .map(|o| match &o.action {
            Action::SendMessage { html, .. } | Action::EditMessageText { html, .. } => html.clone(),
            Action::AnswerCallbackQuery { text, .. } => text.clone(),
            Action::SendDocument { caption_html, .. } => caption_html.clone(),
        })
        .collect()
}

/// All texts joined, for `contains` checks.
pub fn joined(out: &[Outgoing]) -> String {
    texts(out).join("\n---\n")
}

/// The callback data of every button in `out`.
pub fn button_data(out: &[Outgoing]) -> Vec<String> {
    out.iter()
        .flat_map(|o| match &o.action {
            Action::SendMessage { buttons, .. } | Action::EditMessageText { buttons, .. } => {
                buttons
                    .iter()
                    .flatten()
                    .map(|b| b.callback_data.clone())
                    .collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The first `tsk_…` id in `text`.
pub fn task_id_in(text: &str) -> domain::Id {
    id_in(text, "tsk_")
}

/// The first `apr_…` id in `text`.
pub fn approval_id_in(text: &str) -> domain::Id {
    id_in(text, "apr_")
}

fn id_in(text: &str, prefix: &str) -> domain::Id {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    domain::Id::parse(&id).unwrap()
}
