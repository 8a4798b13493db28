//! Onboarding in chat: an invite makes a new user, the admin links their own Telegram with the
//! `org init` link code, wrong codes change nothing, and an unlinked account gets only the
//! refusal.

use coordinator::{Page, TaskQuery};
use domain::Role;
use store::audit::AuditFilter;

use crate::support_chat::{ChatFixture, joined, texts};

#[tokio::test]
async fn an_invited_user_onboards_and_can_use_commands() {
    let fx = ChatFixture::new().await;
    let code = fx.invite(Role::Member).await;
    let out = fx.send(501, &format!("/start {code}")).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].chat_id, 501);
    assert!(out[0].dedupe_key.starts_with("u:"), "{}", out[0].dedupe_key);
    let text = joined(&out);
    assert!(
        text.contains("Welcome") && text.contains("member"),
        "{text}"
    );
    let user = fx.coord.user_by_telegram(501).await.unwrap().unwrap();
    assert_eq!(user.role, Role::Member);
    assert_eq!(user.name, "user501");

    let out = fx.send(501, "/start").await;
    assert!(
        joined(&out).contains("linked as <b>user501</b>"),
        "{}",
        joined(&out)
    );
    let out = fx.send(501, "/help").await;
    assert!(joined(&out).contains("/run"), "{}", joined(&out));
}

#[tokio::test]
async fn the_admin_links_with_the_org_init_link_code() {
    let fx = ChatFixture::new().await;
    fx.link_admin(900).await;
    let linked = fx.coord.user_by_telegram(900).await.unwrap().unwrap();
    assert_eq!(linked.user_id, fx.admin.user_id);
    assert_eq!(linked.role, Role::Admin);
    // The code is single-use: nobody else can take it.
    let out = fx
        .send(901, &format!("/start {}", fx.admin_link_code))
        .await;
    assert!(joined(&out).contains("not valid"), "{}", joined(&out));
    assert!(fx.coord.user_by_telegram(901).await.unwrap().is_none());
}

#[tokio::test]
async fn wrong_codes_and_misuse_get_clear_replies_and_change_nothing() {
    let fx = ChatFixture::new().await;
    let out = fx.send(600, "/start not-a-real-code").await;
    assert!(joined(&out).contains("not valid"), "{}", joined(&out));
    let out = fx.send(600, "/start two words").await;
    assert!(joined(&out).contains("on its own"), "{}", joined(&out));
    let out = fx.send(600, "/start").await;
    assert!(joined(&out).contains("/start CODE"), "{}", joined(&out));
    let out = fx.send(600, "/help").await;
    assert!(joined(&out).contains("/start CODE"), "{}", joined(&out));
    assert!(fx.coord.user_by_telegram(600).await.unwrap().is_none());
}

#[tokio::test]
async fn an_unlinked_account_gets_only_the_refusal_audited_in_aggregate() {
    let fx = ChatFixture::new().await;
    for text in [
        "/run rm -rf /",
        "/status",
        "hello",
        "/approve apr_x",
        "/bypass on",
    ] {
        let out = fx.send(666, text).await;
        let t = texts(&out);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(
            t[0].contains("not linked") && t[0].contains("/start CODE"),
            "{t:?}"
        );
    }
    // A button press too.
    let out = fx.press(666, "ap:apr_whatever").await;
    assert!(joined(&out).contains("not linked"), "{}", joined(&out));
    // No task anywhere, and one audit event for the minute.
    let tasks = fx
        .coord
        .list_tasks(
            &fx.admin,
            &TaskQuery {
                page: Page::default(),
                ..TaskQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(tasks.is_empty());
    let events = store::audit::list(
        fx.coord.db(),
        &AuditFilter {
            kind: Some("telegram.unlinked_message".to_owned()),
            ..AuditFilter::default()
        },
        100,
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["telegram_user_id"], 666);
}

#[tokio::test]
async fn before_org_init_users_are_told_it_is_not_set_up() {
    let fx = ChatFixture::uninitialised(1000).await;
    for text in ["/start abc", "/help", "hello"] {
        let out = fx.send(1, text).await;
        assert!(joined(&out).contains("not set up yet"), "{}", joined(&out));
    }
}
