//! `/v1/users` and `/v1/invites`: the admin's identity management.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, assert_time_near, is_contract_id, parse_time};

fn users(list: &Value) -> &Vec<Value> {
    list["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array: {list}"))
}

fn assert_code(body: &Value, role: &str, ttl: Duration) {
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {body}"));
    // At least 96 random bits: 20+ characters of a 32-letter alphabet.
    assert!(code.len() >= 20, "code too short: {body}");
    assert!(is_contract_id(code), "code is not typeable: {body}");
    assert_eq!(body["role"], role, "{body}");
    assert_time_near(
        &body["expires_at"],
        ttl,
        Duration::from_secs(60),
        "expires_at",
    );
}

#[tokio::test]
async fn admins_list_users_newest_first() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    tokio::time::sleep(Duration::from_millis(3)).await;
    let bob = server.dep.user_create("bob", "member");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let ci = server.dep.user_create("ci", "service");

    let r = server.get("/v1/users", admin).await;
    let list = users(r.expect(200));
    let ids: Vec<&str> = list
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            ci.user_id.as_str(),
            bob.user_id.as_str(),
            org.admin_user_id.as_str()
        ]
    );
    let alice = &list[2];
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["disabled"], false);
    assert_eq!(list[1]["role"], "member");
    assert_eq!(list[0]["role"], "service");
    for u in list {
        parse_time(&u["created_at"], "created_at");
        assert!(u.get("token").is_none(), "tokens are never listed: {u}");
    }
    assert!(
        !r.text.contains(&bob.token),
        "a token leaked into the user list"
    );

    let page = server.get("/v1/users?limit=1", admin).await;
    assert_eq!(users(page.expect(200)).len(), 1);
    let page = server
        .get(&format!("/v1/users?before={}", bob.user_id), admin)
        .await;
    assert_eq!(
        users(page.expect(200))[0]["user_id"],
        org.admin_user_id.as_str()
    );
}

#[tokio::test]
async fn roles_change_and_the_last_admin_stays() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    let alice_path = format!("/v1/users/{}", org.admin_user_id);

    // The only admin can neither be demoted nor disabled.
    let r = server
        .patch(&alice_path, admin, &json!({"role": "member"}))
        .await;
    r.expect_error(409, Some("last_admin"));
    let r = server
        .patch(&alice_path, admin, &json!({"disabled": true}))
        .await;
    r.expect_error(409, Some("last_admin"));
    // Setting the role it already has is harmless.
    let r = server
        .patch(&alice_path, admin, &json!({"role": "admin"}))
        .await;
    assert_eq!(r.expect(200)["role"], "admin");

    // Promote bob; then alice may step down.
    let bob = server.dep.user_create("bob", "member");
    let bob_path = format!("/v1/users/{}", bob.user_id);
    let r = server
        .patch(&bob_path, admin, &json!({"role": "admin"}))
        .await;
    let patched = r.expect(200);
    assert_eq!(patched["role"], "admin");
    assert_eq!(patched["user_id"], bob.user_id.as_str());
    // Bob now administers.
    server.get("/v1/users", Some(&bob.token)).await.expect(200);

    let r = server
        .patch(&alice_path, admin, &json!({"role": "member"}))
        .await;
    assert_eq!(r.expect(200)["role"], "member");
    // Alice's token now acts as a member.
    server
        .get("/v1/users", Some(&org.admin_token))
        .await
        .expect_error(403, None);
    // And bob is now the last admin.
    let r = server
        .patch(&bob_path, Some(&bob.token), &json!({"role": "member"}))
        .await;
    r.expect_error(409, Some("last_admin"));
}

#[tokio::test]
async fn disabling_a_user_revokes_tokens_and_cancels_their_tasks() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    let bob = server.dep.user_create("bob", "member");
    let t1 = server.create_command(&bob.token, "ls").await;
    let t2 = server
        .post("/v1/tasks", Some(&bob.token), &json!({"prompt": "hi"}))
        .await;
    let t2 = t2.expect(202).clone();
    let done = server.create_command(&bob.token, "true").await;
    let done_path = format!("/v1/tasks/{}", done["task_id"].as_str().unwrap());
    server
        .post(&format!("{done_path}/cancel"), Some(&bob.token), &json!({}))
        .await
        .expect(200);
    let admins_task = server.create_command(&org.admin_token, "ls").await;

    let r = server
        .patch(
            &format!("/v1/users/{}", bob.user_id),
            admin,
            &json!({"disabled": true}),
        )
        .await;
    let user = r.expect(200);
    assert_eq!(user["disabled"], true);
    assert_eq!(user["telegram_linked"], false);

    server
        .get("/v1/tasks", Some(&bob.token))
        .await
        .expect_error(401, None);
    for t in [&t1, &t2] {
        let r = server
            .get(
                &format!("/v1/tasks/{}", t["task_id"].as_str().unwrap()),
                admin,
            )
            .await;
        assert_eq!(r.expect(200)["status"], "CANCELED", "{}", r.text);
    }
    let r = server.get(&done_path, admin).await;
    assert_eq!(r.expect(200)["status"], "CANCELED");
    // Someone else's tasks are untouched.
    let r = server
        .get(
            &format!("/v1/tasks/{}", admins_task["task_id"].as_str().unwrap()),
            admin,
        )
        .await;
    assert_eq!(r.expect(200)["status"], "QUEUED");

    // Disabling again is harmless; the list shows the state.
    let r = server
        .patch(
            &format!("/v1/users/{}", bob.user_id),
            admin,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.expect(200)["disabled"], true);
    let r = server.get("/v1/users", admin).await;
    let listed = users(r.expect(200))
        .iter()
        .find(|u| u["user_id"] == bob.user_id.as_str())
        .cloned()
        .expect("bob is listed");
    assert_eq!(listed["disabled"], true);
}

#[tokio::test]
async fn invites_and_link_codes() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    let day = Duration::from_secs(24 * 3600);

    let r = server.post("/v1/invites", admin, &json!({})).await;
    assert_code(r.expect(201), "member", day);
    let r = server
        .post("/v1/invites", admin, &json!({"role": "admin", "ttl": "1h"}))
        .await;
    assert_code(r.expect(201), "admin", Duration::from_secs(3600));
    let r = server
        .post(
            "/v1/invites",
            admin,
            &json!({"role": "member", "ttl": "30m"}),
        )
        .await;
    assert_code(r.expect(201), "member", Duration::from_secs(1800));

    // A link code carries the role of the user it links.
    let bob = server.dep.user_create("bob", "member");
    let r = server
        .post("/v1/invites", admin, &json!({"user_id": bob.user_id}))
        .await;
    assert_code(r.expect(201), "member", day);
    let r = server
        .post(
            "/v1/invites",
            admin,
            &json!({"user_id": org.admin_user_id, "ttl": "2h"}),
        )
        .await;
    assert_code(r.expect(201), "admin", Duration::from_secs(7200));

    // Codes are distinct.
    let a = server.post("/v1/invites", admin, &json!({})).await;
    let b = server.post("/v1/invites", admin, &json!({})).await;
    assert_ne!(a.expect(201)["code"], b.expect(201)["code"]);

    // Both forms at once, bad TTLs, unknown users.
    let r = server
        .post(
            "/v1/invites",
            admin,
            &json!({"role": "admin", "user_id": bob.user_id}),
        )
        .await;
    r.expect_error(422, None);
    for ttl in ["soon", "0s", "", "-1h", "400d"] {
        let r = server
            .post("/v1/invites", admin, &json!({"ttl": ttl}))
            .await;
        assert_eq!(r.status, 422, "ttl {ttl:?} → {} {}", r.status, r.text);
        r.expect_error(422, None);
    }
    let r = server
        .post(
            "/v1/invites",
            admin,
            &json!({"user_id": "usr_nosuchuser00"}),
        )
        .await;
    r.expect_error(404, None);

    // Members may not invite.
    let r = server
        .post("/v1/invites", Some(&bob.token), &json!({}))
        .await;
    r.expect_error(403, None);
    let r = server
        .post(
            "/v1/invites",
            Some(&bob.token),
            &json!({"user_id": bob.user_id}),
        )
        .await;
    r.expect_error(403, None);
}

#[tokio::test]
async fn invites_are_for_members_and_admins_only() {
    // CONTRACT: `invite create [--role member|admin]`; a Telegram invite for a `service` user
    // makes no sense (services have no Telegram), and the CLI refuses it.
    let server = Server::start().await;
    let org = server.org_init();
    let r = server
        .post(
            "/v1/invites",
            Some(&org.admin_token),
            &json!({"role": "service"}),
        )
        .await;
    r.expect_error(422, None);
}

#[tokio::test]
async fn link_code_for_a_disabled_user_is_refused() {
    let server = Server::start().await;
    let org = server.org_init();
    let admin = Some(org.admin_token.as_str());
    let bob = server.dep.user_create("bob", "member");
    server
        .patch(
            &format!("/v1/users/{}", bob.user_id),
            admin,
            &json!({"disabled": true}),
        )
        .await
        .expect(200);
    let r = server
        .post("/v1/invites", admin, &json!({"user_id": bob.user_id}))
        .await;
    assert!(
        r.status == 409 || r.status == 422,
        "link code for a disabled user: {} {}",
        r.status,
        r.text
    );
    r.expect_error(r.status, None);
}
