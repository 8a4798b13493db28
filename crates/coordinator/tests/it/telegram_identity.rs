//! Telegram identity at the coordinator: invites create users, link codes attach Telegram to
//! existing users (the admin from `org init`), codes are single-use and expire, a wrong, used or
//! expired code changes nothing, an account linked to someone else is refused, disabled users
//! are not found, and messages of unlinked accounts are audited in aggregate.

use std::time::Duration;

use coordinator::{Actor, CoordError, Page, TelegramAccount, UserPatch};
use domain::{Role, User};
use store::bus::Bus;

use crate::support::Fixture;

fn account(id: i64, username: &str) -> TelegramAccount {
    TelegramAccount {
        telegram_user_id: id,
        chat_id: id,
        username: Some(username.to_owned()),
        first_name: None,
    }
}

async fn root(fx: &Fixture) -> User {
    fx.coord
        .list_users(Actor::Operator, &Page::default())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.role == Role::Admin)
        .expect("the org init admin")
}

async fn user_count(fx: &Fixture) -> usize {
    fx.coord
        .list_users(Actor::Operator, &Page::default())
        .await
        .unwrap()
        .len()
}

fn is_invalid_code(e: &CoordError) -> bool {
    matches!(
        e,
        CoordError::Invalid {
            code: "invalid_code",
            ..
        }
    )
}

#[tokio::test]
async fn an_invite_creates_a_linked_user_once() {
    let fx = Fixture::new(Bus::in_process()).await;
    let invite = fx
        .coord
        .create_invite(Actor::Operator, Role::Member, Duration::from_secs(3600))
        .await
        .unwrap();
    let before = user_count(&fx).await;
    let alice_tg = account(1001, "alice");
    let r = fx.coord.redeem_code(&alice_tg, &invite.code).await.unwrap();
    assert!(!r.linked_existing);
    assert_eq!(r.user.role, Role::Member);
    assert_eq!(r.user.name, "alice");
    assert!(r.user.telegram_linked);
    assert_eq!(user_count(&fx).await, before + 1);
    let found = fx.coord.user_by_telegram(1001).await.unwrap().unwrap();
    assert_eq!(found.user_id, r.user.user_id);

    // A redelivered /start: the same outcome, nothing new.
    let again = fx.coord.redeem_code(&alice_tg, &invite.code).await.unwrap();
    assert_eq!(again.user.user_id, r.user.user_id);
    assert_eq!(user_count(&fx).await, before + 1);

    // Someone else with the used code: refused, nothing changes.
    let e = fx
        .coord
        .redeem_code(&account(2002, "mallory"), &invite.code)
        .await
        .unwrap_err();
    assert!(is_invalid_code(&e), "{e:?}");
    assert!(fx.coord.user_by_telegram(2002).await.unwrap().is_none());
    assert_eq!(user_count(&fx).await, before + 1);

    let redeemed = fx.audit(Some(&r.user.user_id), "invite.redeemed").await;
    assert_eq!(redeemed.len(), 1);
    assert_eq!(redeemed[0].data["code_ref"], invite.code_ref.as_str());
    assert_eq!(redeemed[0].data["telegram_user_id"], 1001);
    assert_eq!(
        fx.audit(Some(&r.user.user_id), "user.telegram_linked")
            .await
            .len(),
        1
    );
    let failed = fx.audit(None, "invite.redeem_failed").await;
    assert_eq!(failed.len(), 1, "the refused attempt is audited");
}

#[tokio::test]
async fn the_admin_links_their_own_telegram_with_a_link_code() {
    let fx = Fixture::new(Bus::in_process()).await;
    let admin = root(&fx).await;
    let (code, role) = fx
        .coord
        .create_link_code(Actor::Operator, &admin.user_id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(role, Role::Admin);
    let before = user_count(&fx).await;
    let r = fx
        .coord
        .redeem_code(&account(42, "founder"), &code.code)
        .await
        .unwrap();
    assert!(r.linked_existing);
    assert_eq!(r.user.user_id, admin.user_id);
    assert_eq!(r.user.role, Role::Admin);
    assert_eq!(user_count(&fx).await, before, "no new user");
    assert_eq!(
        fx.coord.admin_chats().await.unwrap(),
        vec![(admin.user_id.clone(), 42)]
    );
    assert_eq!(
        fx.coord.telegram_chat_of(&admin.user_id).await.unwrap(),
        Some(42)
    );

    // A new link code moves the admin to a new phone; the old account is unlinked.
    let (code2, _) = fx
        .coord
        .create_link_code(Actor::Operator, &admin.user_id, Duration::from_secs(600))
        .await
        .unwrap();
    fx.coord
        .redeem_code(&account(43, "founder-new-phone"), &code2.code)
        .await
        .unwrap();
    assert!(fx.coord.user_by_telegram(42).await.unwrap().is_none());
    assert_eq!(
        fx.coord
            .user_by_telegram(43)
            .await
            .unwrap()
            .unwrap()
            .user_id,
        admin.user_id
    );
    let linked = fx.audit(Some(&admin.user_id), "user.telegram_linked").await;
    assert_eq!(linked.len(), 2);
    assert_eq!(linked[1].data["replaced_telegram_user_id"], 42);
}

#[tokio::test]
async fn wrong_and_expired_codes_change_nothing() {
    let fx = Fixture::new(Bus::in_process()).await;
    let before = user_count(&fx).await;
    for wrong in ["", "nope", "abc def", &"x".repeat(500), "<script>"] {
        let e = fx
            .coord
            .redeem_code(&account(7, "eve"), wrong)
            .await
            .unwrap_err();
        assert!(is_invalid_code(&e), "{wrong:?}: {e:?}");
    }
    let short = fx
        .coord
        .create_invite(Actor::Operator, Role::Admin, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let e = fx
        .coord
        .redeem_code(&account(7, "eve"), &short.code)
        .await
        .unwrap_err();
    assert!(is_invalid_code(&e), "{e:?}");
    assert_eq!(user_count(&fx).await, before);
    assert!(fx.coord.user_by_telegram(7).await.unwrap().is_none());
}

#[tokio::test]
async fn an_account_linked_to_someone_is_refused_and_the_code_survives() {
    let fx = Fixture::new(Bus::in_process()).await;
    let first = fx
        .coord
        .create_invite(Actor::Operator, Role::Member, Duration::from_secs(600))
        .await
        .unwrap();
    let alice = fx
        .coord
        .redeem_code(&account(5, "alice"), &first.code)
        .await
        .unwrap()
        .user;
    let second = fx
        .coord
        .create_invite(Actor::Operator, Role::Admin, Duration::from_secs(600))
        .await
        .unwrap();
    let e = fx
        .coord
        .redeem_code(&account(5, "alice"), &second.code)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CoordError::Conflict {
                code: "telegram_already_linked",
                ..
            }
        ),
        "{e:?}"
    );
    // A link code for another user is refused as well.
    let bob = fx.user("bob", Role::Member).await;
    let (bob_code, _) = fx
        .coord
        .create_link_code(Actor::Operator, &bob.user_id, Duration::from_secs(600))
        .await
        .unwrap();
    let e = fx
        .coord
        .redeem_code(&account(5, "alice"), &bob_code.code)
        .await
        .unwrap_err();
    assert!(matches!(e, CoordError::Conflict { .. }), "{e:?}");
    assert_eq!(
        fx.coord.user_by_telegram(5).await.unwrap().unwrap().user_id,
        alice.user_id
    );
    // Both codes still work for the right people.
    let carol = fx
        .coord
        .redeem_code(&account(6, "carol"), &second.code)
        .await
        .unwrap();
    assert_eq!(carol.user.role, Role::Admin);
    let bob_linked = fx
        .coord
        .redeem_code(&account(8, "bob"), &bob_code.code)
        .await
        .unwrap();
    assert_eq!(bob_linked.user.user_id, bob.user_id);
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_have_one_winner() {
    let fx = Fixture::new(Bus::in_process()).await;
    let invite = fx
        .coord
        .create_invite(Actor::Operator, Role::Member, Duration::from_secs(600))
        .await
        .unwrap();
    let before = user_count(&fx).await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let coord = fx.coord.clone();
        let code = invite.code.clone();
        handles.push(tokio::spawn(async move {
            coord.redeem_code(&account(100 + i, "racer"), &code).await
        }));
    }
    let mut wins = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => wins += 1,
            Err(CoordError::Invalid { .. } | CoordError::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(user_count(&fx).await, before + 1);
}

#[tokio::test]
async fn disabled_users_are_not_found_by_telegram() {
    let fx = Fixture::new(Bus::in_process()).await;
    let invite = fx
        .coord
        .create_invite(Actor::Operator, Role::Member, Duration::from_secs(600))
        .await
        .unwrap();
    let user = fx
        .coord
        .redeem_code(&account(9, "dave"), &invite.code)
        .await
        .unwrap()
        .user;
    fx.coord
        .patch_user(
            Actor::Operator,
            &user.user_id,
            &UserPatch {
                role: None,
                disabled: Some(true),
            },
        )
        .await
        .unwrap();
    assert!(fx.coord.user_by_telegram(9).await.unwrap().is_none());
    assert!(
        fx.coord
            .telegram_chat_of(&user.user_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unlinked_messages_are_audited_once_per_account_and_minute() {
    let fx = Fixture::new(Bus::in_process()).await;
    for _ in 0..50 {
        fx.coord.note_unlinked_message(777).await.unwrap();
    }
    fx.coord.note_unlinked_message(778).await.unwrap();
    let events = fx.audit(None, "telegram.unlinked_message").await;
    assert_eq!(events.len(), 2, "one per account in this minute");
    assert_eq!(events[0].data["telegram_user_id"], 777);
    assert_eq!(events[1].data["telegram_user_id"], 778);
}
