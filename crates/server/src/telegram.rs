//! Wiring of the Telegram channel (`crates/telegram`): the Bot API client, the conversation over
//! the coordinator (free text goes to the agent when a language model is configured and the
//! `agent` feature is on), ingress by long polling (default) or webhook, the outbox sender, and
//! the relays — approvals awaiting an admin, live progress (edits of each task's status
//! message), the approvals and messages of agent tasks, and results (or answers) of tasks started
//! from Telegram.

use std::sync::Arc;
use std::time::Duration;

use domain::Timestamp;
use telegram::api::BotApi;
use telegram::chat::{BOT_COMMANDS, ChatConfig, Conversation};
use telegram::ingress::Ingress;
use telegram::outbox::Sender;
use telegram::outgoing::Outgoing;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::{Settings, TelegramMode};
use crate::services::Services;

/// How often the relays look for approvals awaiting an admin and for finished tasks.
const RELAY_EVERY: Duration = Duration::from_secs(2);
/// How often updates that were recorded but not handled (a crash in between) are tried again.
const REDELIVER_EVERY: Duration = Duration::from_secs(30);
/// How long `getMe` may take at start before we go on without the bot's username.
const GET_ME_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the results relay remembers how far it got.
const RESULTS_CURSOR: &str = "telegram.results_cursor";

/// The webhook endpoint's state: present only in webhook mode.
#[derive(Clone)]
pub struct Webhook {
    pub ingress: Ingress<Conversation>,
    /// Compared in constant time with `X-Telegram-Bot-Api-Secret-Token`.
    pub secret: String,
}

/// The running channel: the webhook (if any) for the HTTP router, and the background tasks.
pub struct Channel {
    pub webhook: Option<Webhook>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts the channel when a bot token is configured and the feature is on; `None` otherwise.
pub async fn start(
    settings: &Settings,
    services: &Services,
    stop: watch::Receiver<bool>,
) -> Result<Option<Channel>, String> {
    let Some(token) = settings
        .telegram_bot_token
        .as_ref()
        .filter(|_| settings.telegram_enabled())
    else {
        return Ok(None);
    };
    let api = BotApi::new(&settings.telegram_api_url, token.expose().to_owned());
    let bot_username = match tokio::time::timeout(GET_ME_TIMEOUT, api.get_me()).await {
        Ok(Ok(me)) => me.username,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "telegram: getMe failed; commands addressed to any @bot are accepted");
            None
        }
        Err(_) => {
            tracing::warn!("telegram: getMe did not answer in time; going on");
            None
        }
    };
    let conversation = Conversation::new(
        services.coord.clone(),
        ChatConfig {
            bot_username,
            messages_per_minute: settings.telegram_messages_per_minute,
            agent: settings.agent_enabled(),
        },
    );
    // Fix where result relaying starts before any update is handled (first start: now).
    results_cursor(&services.db).await;
    let wake = Arc::new(Notify::new());
    let ingress = Ingress::new(services.db.clone(), conversation.clone(), Arc::clone(&wake));
    let mut tasks = vec![
        tokio::spawn(
            Sender::new(services.db.clone(), api.clone(), Arc::clone(&wake)).run(stop.clone()),
        ),
        tokio::spawn(
            ingress
                .clone()
                .run_redelivery(REDELIVER_EVERY, stop.clone()),
        ),
        tokio::spawn(relay(conversation, services.db.clone(), wake, stop.clone())),
    ];
    let commands = api.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = telegram::ingress::register_commands(&commands, BOT_COMMANDS).await {
            tracing::warn!(error = %e, "telegram: setMyCommands failed");
        }
    }));
    let webhook = match settings.telegram_mode {
        TelegramMode::Polling => {
            tasks.push(tokio::spawn(telegram::ingress::run_polling(
                api, ingress, stop,
            )));
            None
        }
        TelegramMode::Webhook => {
            let secret = settings
                .telegram_webhook_secret
                .as_ref()
                .ok_or("AGENTICAI_TELEGRAM_WEBHOOK_SECRET is required in webhook mode")?
                .expose()
                .to_owned();
            if let Some(url) = &settings.telegram_webhook_url {
                api.set_webhook(url, &secret)
                    .await
                    .map_err(|e| format!("telegram: setWebhook to {url} failed: {e}"))?;
                tracing::info!(%url, "telegram: webhook registered");
            }
            Some(Webhook { ingress, secret })
        }
    };
    tracing::info!(mode = ?settings.telegram_mode, "telegram channel started");
    Ok(Some(Channel { webhook, tasks }))
}

/// Every [`RELAY_EVERY`]: notifies admins of approvals awaiting them, edits the status messages
/// of tasks started from Telegram, sends the approvals and messages of their agent tasks, and
/// sends the results to their owners. All are deduplicated by the outbox keys, so a repeat (or
/// several processes) sends nothing twice.
async fn relay(
    conversation: Conversation,
    db: store::Db,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELAY_EVERY) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        // Before `org init` there is nothing to relay (and nobody to relay it to).
        if !conversation
            .coordinator()
            .org_exists()
            .await
            .unwrap_or(false)
        {
            continue;
        }
        let mut out = match conversation.pending_admin_notifications().await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %e, "telegram: cannot list approvals awaiting admins");
                Vec::new()
            }
        };
        match telegram::progress::progress_edits(&conversation, &db, Timestamp::now()).await {
            Ok(edits) => out.extend(edits),
            Err(e) => tracing::warn!(error = %e, "telegram: cannot update progress messages"),
        }
        // Before the results, so an agent's last message comes before its answer.
        match telegram::notices::agent_notices(&conversation, &db, Timestamp::now()).await {
            Ok(notices) => out.extend(notices),
            Err(e) => tracing::warn!(error = %e, "telegram: cannot relay agent messages"),
        }
        let cursor = results_cursor(&db).await;
        let finished =
            match store::tasks::finished_since(&db, cursor, telegram::relayed::KEY_PREFIX, 200)
                .await
            {
                Ok(tasks) => tasks,
                Err(e) => {
                    tracing::warn!(error = %e, "telegram: cannot list finished tasks");
                    Vec::new()
                }
            };
        let next_cursor = finished.last().map(|t| t.updated_at);
        for task in &finished {
            match conversation.result_messages(task).await {
                Ok(messages) => out.extend(messages),
                Err(e) => {
                    tracing::warn!(task_id = %task.task_id, error = %e, "telegram: cannot render a result")
                }
            }
        }
        if out.is_empty() && next_cursor.is_none() {
            continue;
        }
        match enqueue(&db, &out, next_cursor).await {
            Ok(()) => wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "telegram: cannot queue relayed messages"),
        }
    }
}

/// Queues `out` and moves the results cursor in one transaction.
async fn enqueue(
    db: &store::Db,
    out: &[Outgoing],
    cursor: Option<Timestamp>,
) -> Result<(), store::StoreError> {
    let mut tx = db.begin().await?;
    telegram::outbox::enqueue(&mut tx, out).await?;
    if let Some(at) = cursor {
        store::kv::set(&mut tx, RESULTS_CURSOR, &at.as_millis().to_string()).await?;
    }
    tx.commit().await
}

/// Where the results relay left off; at first start, now (older results are not sent).
async fn results_cursor(db: &store::Db) -> Timestamp {
    match store::kv::get(db, RESULTS_CURSOR).await {
        Ok(Some(v)) => v
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .unwrap_or_else(|_| Timestamp::now()),
        Ok(None) => {
            let now = Timestamp::now();
            if let Ok(mut tx) = db.begin().await
                && store::kv::set(&mut tx, RESULTS_CURSOR, &now.as_millis().to_string())
                    .await
                    .is_ok()
            {
                let _ = tx.commit().await;
            }
            now
        }
        Err(_) => Timestamp::now(),
    }
}
