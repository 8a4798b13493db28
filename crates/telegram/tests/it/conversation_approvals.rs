//! Approvals in chat: the request names everything and carries buttons; a press by the requester
//! decides through the coordinator, is answered and edits the message; forged, replayed and
//! garbage presses change nothing; approvals that need an admin notify the linked admins.

use domain::{Role, TaskStatus};
use telegram::outgoing::Action;

use crate::support_chat::{ChatFixture, approval_id_in, button_data, joined, task_id_in};

#[tokio::test]
async fn the_requester_approves_with_the_button() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(30, Role::Member).await;
    let out = fx.send(30, "/run kubectl delete pod web-1").await;
    assert_eq!(out.len(), 2, "acceptance, then the approval request");
    let text = joined(&out);
    let task_id = task_id_in(&text);
    let approval_id = approval_id_in(&text);
    let request = match &out[1].action {
        Action::SendMessage { html, .. } => html.clone(),
        other => panic!("{other:?}"),
    };
    for needle in [
        approval_id.as_str(),
        task_id.as_str(),
        "<pre>kubectl delete pod web-1</pre>",
        "L2_DESTRUCTIVE",
        "Environment: none",
        "Why:",
    ] {
        assert!(request.contains(needle), "{needle} missing: {request}");
    }
    let data = button_data(&out);
    assert_eq!(
        data,
        vec![format!("ap:{approval_id}"), format!("dn:{approval_id}")]
    );
    assert!(data.iter().all(|d| d.len() <= 64));

    let pressed = fx.press(30, &data[0]).await;
    let answer = pressed
        .iter()
        .find_map(|o| match &o.action {
            Action::AnswerCallbackQuery {
                text,
                callback_query_id,
            } => Some((text.clone(), callback_query_id.clone())),
            _ => None,
        })
        .expect("the callback is answered");
    assert!(answer.0.contains("Approved"), "{answer:?}");
    let edited = pressed
        .iter()
        .find_map(|o| match &o.action {
            Action::EditMessageText {
                message_id,
                html,
                buttons,
            } => Some((*message_id, html.clone(), buttons.len())),
            _ => None,
        })
        .expect("the message is edited");
    assert_eq!(edited.0, 77);
    assert!(edited.1.contains("Approved") && edited.1.contains(approval_id.as_str()));
    assert_eq!(edited.2, 0, "no buttons after the decision");
    let task = fx.coord.get_task(&user, &task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Queued);

    // Replayed: harmless, the same outcome.
    let again = fx.press(30, &data[0]).await;
    assert!(joined(&again).contains("Approved"), "{}", joined(&again));
    // The other button after the decision: refused, nothing changes.
    let deny = fx.press(30, &data[1]).await;
    assert!(
        joined(&deny).contains("already decided"),
        "{}",
        joined(&deny)
    );
    assert_eq!(
        fx.coord.get_task(&user, &task_id).await.unwrap().status,
        TaskStatus::Queued
    );
}

#[tokio::test]
async fn a_forged_callback_by_another_user_changes_nothing() {
    let fx = ChatFixture::new().await;
    let alice = fx.onboard(31, Role::Member).await;
    fx.onboard(32, Role::Member).await;
    let out = fx.send(31, "/run kubectl delete pod db-0").await;
    let approval_id = approval_id_in(&joined(&out));
    let task_id = task_id_in(&joined(&out));
    let forged = fx.press(32, &format!("ap:{approval_id}")).await;
    assert!(
        joined(&forged).contains("No such approval"),
        "{}",
        joined(&forged)
    );
    assert!(
        !forged
            .iter()
            .any(|o| matches!(o.action, Action::EditMessageText { .. })),
        "no edit"
    );
    assert_eq!(
        fx.coord.get_task(&alice, &task_id).await.unwrap().status,
        TaskStatus::WaitingApproval
    );
    // Garbage and unknown ids: polite, nothing happens.
    for data in [
        "",
        "ap:",
        "xx:yy",
        "ap:APR_NOPE",
        "ap:apr_unknown",
        "💣",
        &"a".repeat(300),
    ] {
        let out = fx.press(32, data).await;
        assert_eq!(out.len(), 1, "{data}: {out:?}");
        assert!(matches!(out[0].action, Action::AnswerCallbackQuery { .. }));
    }
    assert_eq!(
        fx.coord.get_task(&alice, &task_id).await.unwrap().status,
        TaskStatus::WaitingApproval
    );
}

#[tokio::test]
async fn l3_approvals_notify_admins_who_decide_with_the_button() {
    let fx = ChatFixture::new().await;
    fx.link_admin(40).await;
    let member = fx.onboard(41, Role::Member).await;
    let out = fx.send(41, "/run sudo systemctl restart nginx").await;
    let text = joined(&out);
    let approval_id = approval_id_in(&text);
    let task_id = task_id_in(&text);
    assert!(text.contains("L3_PRIVILEGED"), "{text}");
    // The requester gets no buttons (they may not decide); the admin gets a notification with
    // buttons in their own chat.
    let to_member: Vec<_> = out.iter().filter(|o| o.chat_id == 41).collect();
    let to_admin: Vec<_> = out.iter().filter(|o| o.chat_id == 40).collect();
    assert!(to_member.iter().all(|o| match &o.action {
        Action::SendMessage { buttons, .. } => buttons.is_empty(),
        _ => true,
    }));
    assert!(joined(&out).contains("admins have been notified"), "{text}");
    assert_eq!(to_admin.len(), 1, "{out:?}");
    assert_eq!(
        to_admin[0].dedupe_key,
        format!("adm:{approval_id}:{}", fx.admin.user_id)
    );
    assert_eq!(
        button_data(&[to_admin[0].clone()]),
        vec![format!("ap:{approval_id}"), format!("dn:{approval_id}")]
    );
    // The member's press is refused (an admin must decide).
    let refused = fx.press(41, &format!("ap:{approval_id}")).await;
    assert!(joined(&refused).contains("admin"), "{}", joined(&refused));
    // The periodic scan finds the same notification (the same dedupe key: no second copy).
    let scanned = fx.conv.pending_admin_notifications().await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(scanned[0].dedupe_key, to_admin[0].dedupe_key);
    // The admin sees it in /approvals and approves it with the button.
    let list = fx.send(40, "/approvals").await;
    assert!(joined(&list).contains(approval_id.as_str()));
    let pressed = fx.press(40, &format!("ap:{approval_id}")).await;
    assert!(
        joined(&pressed).contains("Approved"),
        "{}",
        joined(&pressed)
    );
    assert_eq!(
        fx.coord.get_task(&member, &task_id).await.unwrap().status,
        TaskStatus::Queued
    );
    assert!(
        fx.conv
            .pending_admin_notifications()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_result_message_shows_exit_code_and_escaped_output() {
    let fx = ChatFixture::new().await;
    let user = fx.onboard(50, Role::Member).await;
    let task_id = task_id_in(&joined(&fx.send(50, "/run uptime").await));
    let mut task = fx.coord.get_task(&user, &task_id).await.unwrap();
    // Not finished: nothing to send.
    assert!(fx.conv.result_messages(&task).await.unwrap().is_empty());
    task.status = TaskStatus::Succeeded;
    task.result = Some(domain::TaskResult {
        exit_code: 0,
        output: "<a href=\"https://evil\">x</a>\n".repeat(400),
        truncated: false,
    });
    // Finished the moment it was created (denied, or a refused prompt): the reply said so.
    assert!(fx.conv.result_messages(&task).await.unwrap().is_empty());
    task.updated_at = domain::Timestamp::from_millis(task.created_at.as_millis() + 1500);
    let out = fx.conv.result_messages(&task).await.unwrap();
    assert_eq!(out.len(), 2, "message and document");
    assert_eq!(out[0].chat_id, 50);
    assert_eq!(out[0].dedupe_key, format!("res:{task_id}"));
    let Action::SendMessage { html, .. } = &out[0].action else {
        panic!()
    };
    assert!(html.contains(task_id.as_str()) && html.contains("exit code <b>0</b>"));
    assert!(!html.contains("<a "), "{html}");
    assert!(matches!(out[1].action, Action::SendDocument { .. }));
}
