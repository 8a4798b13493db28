//! Environments and secrets through the coordinator: the admin rule, validation, auditing with
//! names only, and `rotate_credentials` re-encrypting every secret.

use coordinator::{Actor, CoordError, Emergency, EnvironmentSpec};
use domain::Role;
use store::bus::Bus;
use store::secrets::Keyring;

use crate::support::Fixture;

fn spec(egress: &[&str], secrets: &[&str]) -> EnvironmentSpec {
    EnvironmentSpec {
        egress: egress.iter().map(|s| (*s).to_owned()).collect(),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
        description: String::new(),
    }
}

#[tokio::test]
async fn only_admins_write_and_everything_is_audited_without_values() {
    let f = Fixture::new(Bus::in_process()).await;
    let coord = f.coord.clone().with_keyring(Keyring::new([9u8; 32]));
    let admin = f.user("ada", Role::Admin).await;
    let member = f.user("mo", Role::Member).await;

    let err = coord
        .put_secret(Actor::User(&member), "TOKEN", "value-123456")
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Forbidden(_)), "{err}");
    coord
        .put_secret(Actor::User(&admin), "TOKEN", "value-123456")
        .await
        .unwrap();
    let err = coord
        .put_secret(Actor::User(&admin), "TOKEN", "")
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Invalid { .. }), "{err}");
    assert!(coord.list_secrets(Actor::User(&member)).await.is_err());

    let env = coord
        .put_environment(
            Actor::User(&admin),
            "prod",
            spec(&["API.example.com:443"], &["TOKEN"]),
        )
        .await
        .unwrap();
    assert_eq!(env.egress, ["api.example.com:443"]);
    let err = coord
        .put_environment(Actor::User(&member), "prod", spec(&[], &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Forbidden(_)), "{err}");
    let err = coord
        .put_environment(Actor::User(&admin), "prod", spec(&[], &["NOT_THERE"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoordError::Invalid { code: "unknown_secret", message } if message.contains("NOT_THERE")),
        "{err}"
    );
    assert_eq!(
        coord
            .get_environment(Actor::User(&member), "prod")
            .await
            .unwrap(),
        env
    );
    assert_eq!(
        coord
            .list_environments(Actor::User(&member))
            .await
            .unwrap()
            .len(),
        1
    );

    let set = f.audit(Some(&admin.user_id), "secret.set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].data, serde_json::json!({"name": "TOKEN"}));
    assert_eq!(
        f.audit(Some(&admin.user_id), "environment.created")
            .await
            .len(),
        1
    );

    coord
        .delete_environment(Actor::User(&admin), "prod")
        .await
        .unwrap();
    assert!(matches!(
        coord.delete_environment(Actor::User(&admin), "prod").await,
        Err(CoordError::NotFound(_))
    ));
    coord
        .delete_secret(Actor::User(&admin), "TOKEN")
        .await
        .unwrap();
    assert!(matches!(
        coord.delete_secret(Actor::User(&admin), "TOKEN").await,
        Err(CoordError::NotFound(_))
    ));
}

#[tokio::test]
async fn without_a_keyring_secrets_cannot_be_stored() {
    let f = Fixture::new(Bus::in_process()).await;
    let admin = f.user("ada", Role::Admin).await;
    let err = f
        .coord
        .put_secret(Actor::User(&admin), "TOKEN", "value-123456")
        .await
        .unwrap_err();
    assert!(matches!(err, CoordError::Unavailable(_)), "{err}");
    // Rotation with nothing stored still works (it cancels tasks holding grants).
    f.coord
        .emergency(&admin, Emergency::RotateCredentials)
        .await
        .unwrap();
}

#[tokio::test]
async fn rotate_credentials_re_encrypts_every_secret() {
    let f = Fixture::new(Bus::in_process()).await;
    let keyring = Keyring::new([9u8; 32]);
    let coord = f.coord.clone().with_keyring(keyring.clone());
    let admin = f.user("ada", Role::Admin).await;
    for (name, value) in [("A_ONE", "value-one"), ("B_TWO", "value-two")] {
        coord
            .put_secret(Actor::User(&admin), name, value)
            .await
            .unwrap();
    }
    coord
        .emergency(&admin, Emergency::RotateCredentials)
        .await
        .unwrap();
    let events = f
        .audit(Some(&admin.user_id), "emergency.rotate_credentials")
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["secrets_reencrypted"], 2);
    assert_eq!(events[0].data["key_version"], 2);
    let values = store::secrets::resolve(
        coord.db(),
        &keyring,
        &["A_ONE".to_owned(), "B_TWO".to_owned()],
    )
    .await
    .unwrap();
    assert_eq!(values[0].1, "value-one");
    assert_eq!(values[1].1, "value-two");
    let data = events[0].data.to_string();
    assert!(
        !data.contains("value-one") && !data.contains("value-two"),
        "{data}"
    );
}
