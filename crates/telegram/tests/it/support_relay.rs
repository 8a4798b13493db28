//! A chat over a real database whose replies go through the outbox and the sender to the fake
//! Bot API, with a hand in place of the worker: tasks are claimed, given events and finished
//! directly in the store — for the tests of the relays (progress edits, agent messages,
//! results).

use std::sync::Arc;
use std::time::Duration;

use domain::{Id, Role, TaskError, TaskResult, TaskStatus, Timestamp};
use serde_json::Value;
use store::Db;
use store::tasks::StatusChange;
use telegram::handler::Handler;
use telegram::outbox::{self, Sender};
use telegram::outgoing::{Action, Outgoing};
use telegram::progress::{acceptance_key, progress_edits};
use telegram::testing::FakeBotApi;
use tokio::sync::Notify;

use crate::support_chat::{ChatFixture, task_id_in, texts};

/// The Telegram user of the fixture's member (and their chat).
pub const TG: i64 = 5_001;

pub struct RelayFixture {
    pub fx: ChatFixture,
    pub db: Db,
    pub fake: FakeBotApi,
    sender: Sender,
}

impl RelayFixture {
    /// A member linked to Telegram user [`TG`]; free text explains `/run`.
    pub async fn new() -> RelayFixture {
        RelayFixture::over(ChatFixture::new().await).await
    }

    /// The same, with free text going to the agent.
    pub async fn with_agent() -> RelayFixture {
        RelayFixture::over(ChatFixture::with_agent().await).await
    }

    async fn over(fx: ChatFixture) -> RelayFixture {
        fx.onboard(TG, Role::Member).await;
        let db = fx.coord.db().clone();
        let fake = FakeBotApi::start("1:TEST").await;
        let sender = Sender::new(db.clone(), fake.api(), Arc::new(Notify::new()));
        RelayFixture {
            fx,
            db,
            fake,
            sender,
        }
    }

    /// Sends `/run command` and queues the replies; returns the task id and the update id.
    pub async fn run(&self, command: &str) -> (Id, i64) {
        self.say(&format!("/run {command}")).await
    }

    /// Sends `text` and queues the replies; returns the id of the task the first reply names, and
    /// the update id.
    pub async fn say(&self, text: &str) -> (Id, i64) {
        let update_id = self.fx.update_id();
        let out = self
            .fx
            .conv
            .handle(self.fx.message(update_id, TG, text))
            .await
            .unwrap();
        let first = texts(&out).into_iter().next().unwrap();
        assert_eq!(out[0].dedupe_key, acceptance_key(update_id));
        self.queue(&out).await;
        (task_id_in(&first), update_id)
    }

    pub async fn queue(&self, out: &[Outgoing]) {
        let mut tx = self.db.begin().await.unwrap();
        outbox::enqueue(&mut tx, out).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Delivers everything queued to the fake Bot API.
    pub async fn deliver(&self) {
        let round = self.sender.deliver_due().await.unwrap();
        assert_eq!(round.given_up, 0, "{round:?}");
        assert_eq!(round.retried, 0, "{round:?}");
    }

    /// Claims the oldest queued task (QUEUED → RUNNING, a `status` event).
    pub async fn claim(&self, task_id: &Id) {
        let claimed = store::tasks::claim(&self.db, "worker-1", Duration::from_secs(60), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&claimed.task_id, task_id);
    }

    /// Appends a task event as a worker would.
    pub async fn event(&self, task_id: &Id, kind: &str, data: Value) {
        let mut tx = self.db.begin().await.unwrap();
        store::task_events::append(&mut tx, task_id, kind, data)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn output(&self, task_id: &Id, text: &str) {
        self.event(task_id, "output", serde_json::json!({ "text": text }))
            .await;
    }

    /// Moves the task to `status` with `change`; returns the task as it is now.
    pub async fn set_status(
        &self,
        task_id: &Id,
        status: TaskStatus,
        change: StatusChange,
    ) -> domain::Task {
        let mut tx = self.db.begin().await.unwrap();
        let task = store::tasks::set_status(&mut tx, task_id, status, change, None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        task
    }

    /// Finishes the task with a result.
    pub async fn finish(
        &self,
        task_id: &Id,
        status: TaskStatus,
        exit_code: i32,
        output: &str,
    ) -> domain::Task {
        let result = TaskResult {
            exit_code,
            output: output.to_owned(),
            truncated: false,
        };
        self.set_status(
            task_id,
            status,
            StatusChange {
                result: Some(result),
                ..StatusChange::default()
            },
        )
        .await
    }

    /// Fails the task with an error.
    pub async fn fail(&self, task_id: &Id, code: &str, message: &str) -> domain::Task {
        let error = TaskError {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        self.set_status(
            task_id,
            TaskStatus::Failed,
            StatusChange {
                error: Some(error),
                ..StatusChange::default()
            },
        )
        .await
    }

    pub async fn edits(&self, at: Timestamp) -> Vec<Outgoing> {
        progress_edits(&self.fx.conv, &self.db, at).await.unwrap()
    }

    pub async fn acceptance_message_id(&self, update_id: i64) -> i64 {
        outbox::message_id_of(&self.db, &acceptance_key(update_id))
            .await
            .unwrap()
            .expect("the acceptance message was sent")
    }
}

pub fn at(base: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_millis(base.as_millis() + ms)
}

/// The one edit in `out`: (message id, html).
pub fn the_edit(out: &[Outgoing]) -> (i64, String) {
    assert_eq!(out.len(), 1, "{out:?}");
    match &out[0].action {
        Action::EditMessageText {
            message_id,
            html,
            buttons,
        } => {
            assert!(buttons.is_empty());
            assert_eq!(out[0].chat_id, TG);
            (*message_id, html.clone())
        }
        other => panic!("not an edit: {other:?}"),
    }
}

/// No tag in `html` other than ours.
pub fn only_our_tags(html: &str) {
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("closed tag");
        let tag = &rest[..end];
        assert!(
            ["b", "/b", "pre", "/pre", "code", "/code"].contains(&tag),
            "foreign tag <{tag}> in {html}"
        );
    }
}
