//! The conversation: what a message or a button press does, through the coordinator.
//!
//! [`Conversation`] implements [`Handler`]: ingress hands it each update, it returns the replies
//! for the outbox. Rules (CONTRACT.md "Telegram"):
//! * private chats only — anything from a group, supergroup or channel is ignored, no reply;
//! * identity is the sender's numeric Telegram id only; an unlinked account gets, for anything
//!   but `/start CODE` and `/help`, a short refusal that says how to join (audited in aggregate);
//! * each user has a rate limit on inbound messages, with one polite reply per window when over;
//! * effects are idempotent per `update_id` (tasks use the idempotency key `tg:{update_id}`,
//!   decisions are idempotent) and replies carry the dedupe keys `u:{update_id}:{n}`.

use std::sync::Arc;
use std::time::Duration;

use coordinator::{CoordError, Coordinator, TelegramAccount};
use domain::{Approval, Task, Timestamp};

use crate::commands::{self, Ctx, Parsed};
use crate::handler::{HandleError, Handler};
use crate::outgoing::{Action, Outgoing};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::render::{self, Rendered};
use crate::update::{CallbackQuery, From, Message, Update, UpdateKind};

/// How the conversation behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// The bot's username (from `getMe`), without `@`. Commands addressed to another bot
    /// (`/cmd@otherbot`) are ignored; `None` accepts any `@name`.
    pub bot_username: Option<String>,
    /// Inbound messages (and button presses) per user and minute; 0 means no limit.
    pub messages_per_minute: u32,
    /// Whether free text starts an agent task (a language model is configured and the `agent`
    /// feature is on); otherwise it is answered with how to use `/run`.
    pub agent: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            bot_username: None,
            messages_per_minute: 20,
            agent: false,
        }
    }
}

/// The Telegram conversation over a coordinator. Cheap to clone.
#[derive(Clone)]
pub struct Conversation {
    inner: Arc<Inner>,
}

struct Inner {
    coord: Coordinator,
    config: ChatConfig,
    limiter: RateLimiter,
}

/// Replies to one update, numbered for their dedupe keys `u:{update_id}:{n}`.
pub(crate) struct Replies {
    update_id: i64,
    chat_id: i64,
    out: Vec<Outgoing>,
}

impl Replies {
    fn new(update_id: i64, chat_id: i64) -> Replies {
        Replies {
            update_id,
            chat_id,
            out: Vec::new(),
        }
    }

    fn next_key(&self) -> String {
        format!("u:{}:{}", self.update_id, self.out.len())
    }

    /// A message (escaped HTML) to the sender's chat.
    pub(crate) fn text(&mut self, html: impl Into<String>) {
        self.push(Action::SendMessage {
            html: html.into(),
            buttons: Vec::new(),
        });
    }

    /// A rendered message (with its buttons and document, if any) to the sender's chat.
    pub(crate) fn rendered(&mut self, rendered: Rendered) {
        self.push(Action::SendMessage {
            html: rendered.html,
            buttons: rendered.buttons,
        });
        if let Some(doc) = rendered.document {
            self.push(Action::SendDocument {
                file_name: doc.file_name,
                contents: doc.contents,
                caption_html: doc.caption_html,
            });
        }
    }

    /// Any action to the sender's chat.
    pub(crate) fn push(&mut self, action: Action) {
        let dedupe_key = self.next_key();
        self.out.push(Outgoing {
            dedupe_key,
            chat_id: self.chat_id,
            action,
        });
    }

    /// A message to another chat (notifications), with its own stable dedupe key.
    pub(crate) fn notify(&mut self, outgoing: Outgoing) {
        self.out.push(outgoing);
    }
}

/// The command menu for `setMyCommands` (name without `/`, description), in CONTRACT.md order.
pub const BOT_COMMANDS: &[(&str, &str)] = &[
    ("start", "Join with an invite or link code: /start CODE"),
    ("help", "List the commands"),
    (
        "status",
        "Running and queued tasks, approvals, bypass, pause",
    ),
    ("tasks", "Your recent tasks"),
    ("run", "Run one shell command: /run [@ENV] COMMAND"),
    ("cancel", "Cancel a task: /cancel TASK_ID or /cancel all"),
    ("approvals", "Approvals waiting for you"),
    ("approve", "Approve: /approve APPROVAL_ID"),
    ("deny", "Deny: /deny APPROVAL_ID"),
    ("bypass", "Your bypass toggle: /bypass on|off"),
];

/// What an unlinked account is told.
pub(crate) const JOIN_HINT: &str = "You are not linked to this deployment yet. Ask an admin for an \
    invite or link code and send <code>/start CODE</code>.";

const NOT_SET_UP: &str = "This deployment is not set up yet: the operator must run \
    <code>agenticai org init</code> first.";

impl Conversation {
    /// A conversation over `coord` with `config`. The rate limiter lives in the conversation, so
    /// create one per process and share it (it is cheap to clone).
    pub fn new(coord: Coordinator, config: ChatConfig) -> Conversation {
        let limiter = RateLimiter::new(config.messages_per_minute, Duration::from_secs(60));
        Conversation {
            inner: Arc::new(Inner {
                coord,
                config,
                limiter,
            }),
        }
    }

    /// The coordinator it talks to.
    pub fn coordinator(&self) -> &Coordinator {
        &self.inner.coord
    }

    /// Whether free text goes to the agent ([`ChatConfig::agent`]).
    pub fn agent(&self) -> bool {
        self.inner.config.agent
    }

    /// Notifications to every linked admin (other than the requester) of `approval`, when it
    /// needs an admin other than the requester (service users' approvals, L3 under
    /// `l3_requires_admin`); otherwise none. Dedupe keys `adm:{approval_id}:{admin_user_id}`, so
    /// calling this again (e.g. from a periodic scan) never sends a second copy.
    pub async fn admin_notifications(
        &self,
        approval: &Approval,
    ) -> Result<Vec<Outgoing>, HandleError> {
        let coord = &self.inner.coord;
        if approval.decision.is_some()
            || !coord
                .approval_needs_other_admin(approval)
                .await
                .map_err(retry)?
        {
            return Ok(Vec::new());
        }
        self.admin_notices(approval).await.map_err(retry)
    }

    /// Notifications of `approval` to every linked admin other than its requester (whether it
    /// needs an admin is the caller's question).
    pub(crate) async fn admin_notices(
        &self,
        approval: &Approval,
    ) -> Result<Vec<Outgoing>, CoordError> {
        let admins = self.inner.coord.admin_chats().await?;
        let rendered = render::approval_request(approval, "Approval needed from an admin", true);
        let mut out = Vec::new();
        for (admin_id, chat_id) in admins {
            if admin_id != approval.requested_by {
                let key = format!("adm:{}:{}", approval.approval_id, admin_id);
                out.extend(rendered.clone().into_outgoing(chat_id, &key));
            }
        }
        Ok(out)
    }

    /// Admin notifications for every pending approval that awaits an admin (approvals of
    /// service users made through the API, L3 approvals of agent tasks…). Meant for a periodic
    /// scan by the server; stable dedupe keys make repeats free.
    pub async fn pending_admin_notifications(&self) -> Result<Vec<Outgoing>, HandleError> {
        let pending = self
            .inner
            .coord
            .approvals_needing_admin(200)
            .await
            .map_err(retry)?;
        let mut out = Vec::new();
        for approval in &pending {
            out.extend(self.admin_notifications(approval).await?);
        }
        Ok(out)
    }

    /// The result message of a finished task for its owner's linked chat (none when the owner
    /// has no Telegram): a command's output, or an agent's final answer as ordinary escaped text
    /// (see [`render::task_result`]), with the whole of it as a document when it does not fit.
    /// Dedupe keys `res:{task_id}` and `res:{task_id}:doc`. A task that was finished when it was
    /// created (denied by the policy, or a prompt the scanner refused) gets none: the reply to
    /// its message already said so.
    pub async fn result_messages(&self, task: &Task) -> Result<Vec<Outgoing>, HandleError> {
        if !task.status.is_terminal() || task.updated_at == task.created_at {
            return Ok(Vec::new());
        }
        let Some(chat_id) = self
            .inner
            .coord
            .telegram_chat_of(&task.user_id)
            .await
            .map_err(retry)?
        else {
            return Ok(Vec::new());
        };
        let key = format!("res:{}", task.task_id);
        Ok(render::task_result(task).into_outgoing(chat_id, &key))
    }

    /// Applies the per-user rate limit; `Some(replies)` when the update must not be handled.
    fn rate_limited(&self, telegram_user_id: i64, replies: &mut Replies) -> bool {
        match self
            .inner
            .limiter
            .check(telegram_user_id, Timestamp::now().as_millis())
        {
            Verdict::Allow => false,
            Verdict::Refuse => {
                replies.text(format!(
                    "You are sending messages faster than I can take them (at most {} a \
                     minute). I will ignore new ones for a moment; please wait a minute.",
                    self.inner.config.messages_per_minute
                ));
                true
            }
            Verdict::Silent => true,
        }
    }

    async fn on_message(&self, update_id: i64, m: Message) -> Result<Vec<Outgoing>, HandleError> {
        if !m.chat.is_private() {
            return Ok(Vec::new());
        }
        let Some(from) = m.from.clone().filter(|f| !f.is_bot) else {
            return Ok(Vec::new());
        };
        let mut replies = Replies::new(update_id, m.chat.id);
        if self.rate_limited(from.id, &mut replies) {
            return Ok(replies.out);
        }
        let outcome = self.message(update_id, &m, &from, &mut replies).await;
        finish(outcome, replies, |r| {
            r.text("Something went wrong on our side; please try again later.");
        })
    }

    async fn message(
        &self,
        update_id: i64,
        m: &Message,
        from: &From,
        replies: &mut Replies,
    ) -> Result<(), CoordError> {
        let coord = &self.inner.coord;
        if !coord.org_exists().await? {
            replies.text(NOT_SET_UP);
            return Ok(());
        }
        let text = m.text.as_deref().unwrap_or("");
        let parsed = commands::parse(text, self.inner.config.bot_username.as_deref());
        let account = TelegramAccount {
            telegram_user_id: from.id,
            chat_id: m.chat.id,
            username: from.username.clone(),
            first_name: from.first_name.clone(),
        };
        let Some(user) = coord.user_by_telegram(from.id).await? else {
            match parsed {
                Parsed::Command {
                    name: "start",
                    args,
                } => {
                    commands::start::unlinked(coord, &account, args, replies).await?;
                }
                Parsed::Command { name: "help", .. } => replies.text(commands::help::unlinked()),
                Parsed::NotForUs => {}
                _ => {
                    coord.note_unlinked_message(from.id).await?;
                    replies.text(JOIN_HINT);
                }
            }
            return Ok(());
        };
        let mut ctx = Ctx {
            coord,
            user: &user,
            account: &account,
            update_id,
            replies,
            conversation: self,
        };
        match parsed {
            Parsed::NotForUs => Ok(()),
            Parsed::Empty => {
                ctx.replies.text(
                    "I can only read text messages. Send <code>/help</code> for the commands.",
                );
                Ok(())
            }
            Parsed::Text(text) => commands::text::run(&mut ctx, text).await,
            Parsed::Unknown(name) => {
                commands::unknown(ctx.replies, name);
                Ok(())
            }
            Parsed::Command { name, args } => commands::dispatch(&mut ctx, name, args).await,
        }
    }

    async fn on_callback(
        &self,
        update_id: i64,
        q: CallbackQuery,
    ) -> Result<Vec<Outgoing>, HandleError> {
        if q.from.is_bot {
            return Ok(Vec::new());
        }
        // The chat of the pressed message; without it (a very old message) the presser's private
        // chat, whose id equals their user id.
        let chat_id = match &q.message {
            Some(m) if !m.chat.is_private() => return Ok(Vec::new()),
            Some(m) => m.chat.id,
            None => q.from.id,
        };
        let mut replies = Replies::new(update_id, chat_id);
        if self.rate_limited(q.from.id, &mut replies) {
            // Stop the button's spinner; the one polite chat message (if any) is already there.
            commands::decide::answer(&mut replies, &q, "Too many requests; please wait a minute.");
            return Ok(replies.out);
        }
        let outcome = self.callback(&q, &mut replies).await;
        finish(outcome, replies, |r| {
            commands::decide::answer(r, &q, "Something went wrong on our side; please try again.");
        })
    }

    async fn callback(&self, q: &CallbackQuery, replies: &mut Replies) -> Result<(), CoordError> {
        let coord = &self.inner.coord;
        let Some(user) = coord.user_by_telegram(q.from.id).await? else {
            coord.note_unlinked_message(q.from.id).await?;
            commands::decide::answer(
                replies,
                q,
                "You are not linked to this deployment; send /start CODE first.",
            );
            return Ok(());
        };
        commands::decide::button(coord, &user, q, replies).await
    }
}

/// Turns the outcome of handling into the handler's result: a dependency that is down means
/// "retry later" (the update stays unprocessed); any other fault would only repeat on retry, so
/// it is logged and answered with `on_fault` instead of looping.
fn finish(
    outcome: Result<(), CoordError>,
    mut replies: Replies,
    on_fault: impl FnOnce(&mut Replies),
) -> Result<Vec<Outgoing>, HandleError> {
    match outcome {
        Ok(()) => Ok(replies.out),
        Err(CoordError::Unavailable(m)) => Err(HandleError(m)),
        Err(e) => {
            tracing::error!(error = %e, update_id = replies.update_id, "telegram: handling failed");
            replies.out.clear();
            on_fault(&mut replies);
            Ok(replies.out)
        }
    }
}

/// A coordinator message as a sentence: first letter upper-case, final period.
pub(crate) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A coordinator error as a [`HandleError`] (for the notification helpers, whose caller
/// retries).
fn retry(e: CoordError) -> HandleError {
    match e {
        CoordError::Unavailable(m) => HandleError(m),
        other => {
            tracing::error!(error = %other, "telegram conversation: coordinator error");
            HandleError(other.to_string())
        }
    }
}

impl Handler for Conversation {
    async fn handle(&self, update: Update) -> Result<Vec<Outgoing>, HandleError> {
        match update.kind {
            UpdateKind::Message(m) => self.on_message(update.update_id, m).await,
            UpdateKind::Callback(q) => self.on_callback(update.update_id, q).await,
            UpdateKind::Other => Ok(Vec::new()),
        }
    }
}
