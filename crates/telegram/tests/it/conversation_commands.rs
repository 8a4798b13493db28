//! Every command for a linked user, with its misuse replies.

use coordinator::{Actor, EnvironmentSpec};
use domain::{BypassMode, Role, TaskStatus};
use store::policy::PolicyChange;

use crate::support_chat::{ChatFixture, approval_id_in, button_data, joined, task_id_in};

#[tokio::test]
async fn run_creates_a_task_and_answers_with_its_id() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(10, Role::Member).await;
    let out = fx.send(10, "/run ls -la").await;
    let text = joined(&out);
    let task_id = task_id_in(&text);
    let task = fx.coord.get_task(&user, &task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.input, "ls -la");
    assert!(
        text.contains("QUEUED") && text.contains("L0_READONLY"),
        "{text}"
    );

    // /cmd@ourbot works; /cmd@otherbot is not for us.
    let out = fx.send(10, "/run@agentic_bot echo hi").await;
    assert!(joined(&out).contains("tsk_"), "{}", joined(&out));
    assert!(fx.send(10, "/run@other_bot echo hi").await.is_empty());
}

#[tokio::test]
async fn run_passes_the_text_through_and_the_gate_normalises_phone_quotes() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(11, Role::Member).await;
    let out = fx.send(11, "/run echo “hello   world” – done").await;
    let task = fx
        .coord
        .get_task(&user, &task_id_in(&joined(&out)))
        .await
        .unwrap();
    assert_eq!(task.input, "echo \"hello   world\" - done");
    // Escaped in the reply: nothing from the command becomes markup.
    let out = fx.send(11, "/run echo '<b>x</b>' && true").await;
    let text = joined(&out);
    assert!(!text.contains("<b>x</b>"), "{text}");
}

#[tokio::test]
async fn run_misuse_gets_the_usage() {
    let fx = ChatFixture::new().await;
    fx.onboard(12, Role::Member).await;
    for (input, expect) in [
        ("/run", "Usage"),
        ("/run   ", "Usage"),
        ("/run @prod", "Which command"),
        ("/run @Bad!Env ls", "not an environment name"),
        ("/run @nowhere ls", "no environment named"),
    ] {
        let out = fx.send(12, input).await;
        assert!(joined(&out).contains(expect), "{input}: {}", joined(&out));
        assert!(!joined(&out).contains("tsk_"), "{input}: no task");
    }
}

#[tokio::test]
async fn run_in_an_environment_shows_its_grants_in_the_approval() {
    let fx = ChatFixture::new().await;
    fx.coord
        .put_environment(
            Actor::Operator,
            "staging",
            EnvironmentSpec {
                egress: vec!["example.com:443".to_owned()],
                secrets: vec![],
                description: String::new(),
            },
        )
        .await
        .unwrap();
    fx.onboard(13, Role::Member).await;
    let out = fx.send(13, "/run @staging touch /tmp/marker").await;
    let text = joined(&out);
    assert!(text.contains("tsk_"), "{text}");
    assert!(text.contains("<code>staging</code>"), "{text}");
    assert!(
        text.contains("apr_"),
        "an environment's grants need an approval: {text}"
    );
    assert!(text.contains("example.com:443"), "grants shown: {text}");
}

#[tokio::test]
async fn tasks_status_and_cancel() {
    let fx = ChatFixture::new().await;
    fx.onboard(14, Role::Member).await;
    let out = fx.send(14, "/tasks").await;
    assert!(joined(&out).contains("no tasks yet"), "{}", joined(&out));
    let first = task_id_in(&joined(&fx.send(14, "/run uptime").await));
    let second = task_id_in(&joined(&fx.send(14, "/run df -h").await));
    let waiting = task_id_in(&joined(&fx.send(14, "/run kubectl delete pod x").await));

    let tasks = joined(&fx.send(14, "/tasks").await);
    for id in [&first, &second, &waiting] {
        assert!(tasks.contains(id.as_str()), "{tasks}");
    }
    let status = joined(&fx.send(14, "/status").await);
    assert!(status.contains("<b>Queued</b> (2)"), "{status}");
    assert!(
        status.contains("<b>Waiting for approval</b> (1)"),
        "{status}"
    );
    assert!(
        status.contains("Approvals waiting for you: <b>1</b>"),
        "{status}"
    );
    assert!(status.contains("Bypass: <b>OFF</b>"), "{status}");
    assert!(status.contains("Mutations: allowed"), "{status}");
    assert!(joined(&fx.send(14, "/status now").await).contains("takes no arguments"));

    let out = joined(&fx.send(14, &format!("/cancel {first}")).await);
    assert!(
        out.contains("Cancelled") && out.contains(first.as_str()),
        "{out}"
    );
    let out = joined(&fx.send(14, &format!("/cancel {first}")).await);
    assert!(
        out.contains(first.as_str()) && out.contains("already"),
        "{out}"
    );
    for bad in ["/cancel", "/cancel a b", "/cancel NOT-AN-ID"] {
        assert!(joined(&fx.send(14, bad).await).contains("Usage"), "{bad}");
    }
    let out = joined(&fx.send(14, "/cancel tsk_doesnotexist").await);
    assert!(out.contains("no such task"), "{out}");
    let out = joined(&fx.send(14, "/cancel all").await);
    assert!(out.contains("Cancelled 2 tasks"), "{out}");
    assert!(
        out.contains(second.as_str()) && out.contains(waiting.as_str()),
        "{out}"
    );
    let out = joined(&fx.send(14, "/cancel all").await);
    assert!(out.contains("Nothing to cancel"), "{out}");
}

#[tokio::test]
async fn cancel_of_another_users_task_is_not_found() {
    let fx = ChatFixture::new().await;
    fx.onboard(15, Role::Member).await;
    fx.onboard(16, Role::Member).await;
    let task = task_id_in(&joined(&fx.send(15, "/run uptime").await));
    let out = joined(&fx.send(16, &format!("/cancel {task}")).await);
    assert!(out.contains("no such task"), "{out}");
    let owner = fx.coord.user_by_telegram(15).await.unwrap().unwrap();
    assert_eq!(
        fx.coord.get_task(&owner, &task).await.unwrap().status,
        TaskStatus::Queued
    );
}

#[tokio::test]
async fn bypass_within_org_policy() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(17, Role::Member).await;
    let out = joined(&fx.send(17, "/bypass on").await);
    assert!(out.contains("does not allow bypass"), "{out}");
    assert!(joined(&fx.send(17, "/bypass").await).contains("Usage"));
    assert!(joined(&fx.send(17, "/bypass maybe").await).contains("Usage"));
    fx.coord
        .update_org_policy(
            &fx.admin,
            &PolicyChange {
                bypass_allowed: Some(true),
                ..PolicyChange::default()
            },
        )
        .await
        .unwrap();
    assert!(joined(&fx.send(17, "/bypass ON").await).contains("now <b>ON</b>"));
    let now = fx.coord.user_by_telegram(17).await.unwrap().unwrap();
    assert_eq!(now.bypass, BypassMode::On);
    assert_eq!(now.user_id, user.user_id);
    assert!(joined(&fx.send(17, "/status").await).contains("Bypass: <b>ON</b>"));
    assert!(joined(&fx.send(17, "/bypass off").await).contains("now <b>OFF</b>"));
}

#[tokio::test]
async fn approvals_approve_and_deny_by_command() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(18, Role::Member).await;
    assert!(joined(&fx.send(18, "/approvals").await).contains("No approvals"));
    let out = fx.send(18, "/run kubectl delete pod a").await;
    let a = approval_id_in(&joined(&out));
    let b = approval_id_in(&joined(&fx.send(18, "/run kubectl delete pod b").await));
    let list = fx.send(18, "/approvals").await;
    let text = joined(&list);
    assert!(
        text.contains(a.as_str()) && text.contains(b.as_str()),
        "{text}"
    );
    assert!(button_data(&list).contains(&format!("ap:{a}")));

    for bad in ["/approve", "/approve x y", "/deny Not_An_Id"] {
        assert!(joined(&fx.send(18, bad).await).contains("Usage"), "{bad}");
    }
    let out = joined(&fx.send(18, &format!("/approve {a}")).await);
    assert!(
        out.contains("Approved") && out.contains(a.as_str()),
        "{out}"
    );
    let out = joined(&fx.send(18, &format!("/deny {a}")).await);
    assert!(out.contains("already decided"), "{out}");
    let out = joined(&fx.send(18, &format!("/deny {b}")).await);
    assert!(
        out.contains("Denied") && out.contains("approval_denied"),
        "{out}"
    );
    let tasks = fx
        .coord
        .list_tasks(&user, &coordinator::TaskQuery::default())
        .await
        .unwrap();
    let statuses: Vec<_> = tasks.iter().map(|t| t.status).collect();
    assert!(statuses.contains(&TaskStatus::Queued));
    assert!(statuses.contains(&TaskStatus::Failed));
    let out = joined(&fx.send(18, "/approve apr_unknown").await);
    assert!(out.contains("no such approval"), "{out}");
}

#[tokio::test]
async fn free_text_and_unknown_commands_explain_what_to_do() {
    let fx = ChatFixture::new().await;
    fx.onboard(19, Role::Member).await;
    let out = joined(&fx.send(19, "please restart nginx").await);
    assert!(out.contains("/run COMMAND"), "{out}");
    let out = joined(&fx.send(19, "/frobnicate").await);
    assert!(out.contains("don't know") && out.contains("/help"), "{out}");
    let out = joined(&fx.send(19, "/<b>x").await);
    assert!(!out.contains("<b>x"), "escaped: {out}");
}

#[tokio::test]
async fn admins_see_their_own_tasks_in_tasks() {
    let fx = ChatFixture::new().await;
    fx.link_admin(20).await;
    fx.onboard(21, Role::Member).await;
    let members = task_id_in(&joined(&fx.send(21, "/run uptime").await));
    let out = joined(&fx.send(20, "/tasks").await);
    assert!(!out.contains(members.as_str()), "{out}");
}
