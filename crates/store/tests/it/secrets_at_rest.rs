//! Secrets at rest and environments, on SQLite or Postgres: values round-trip only through the
//! right master key, ciphertexts are bound to their row, rotation leaves no old ciphertext usable,
//! and a missing secret is named.

use store::StoreError;
use store::environments::{self, Environment};
use store::secrets::{self, Keyring};

use crate::database::TestDb;

const MASTER: [u8; 32] = [42u8; 32];

async fn put(db: &store::Db, keyring: &Keyring, name: &str, value: &str) {
    let mut tx = db.begin().await.unwrap();
    secrets::put(&mut tx, keyring, name, value).await.unwrap();
    tx.commit().await.unwrap();
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// (nonce, ciphertext, key_version) of a secret's row.
async fn row(db: &store::Db, name: &str) -> (String, String, i64) {
    sqlx::query_as("SELECT nonce, ciphertext, key_version FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn set_row(db: &store::Db, name: &str, (nonce, ciphertext, version): &(String, String, i64)) {
    sqlx::query("UPDATE secrets SET nonce = $1, ciphertext = $2, key_version = $3 WHERE name = $4")
        .bind(nonce)
        .bind(ciphertext)
        .bind(version)
        .bind(name)
        .execute(db.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn values_round_trip_encrypted_and_missing_ones_are_named() {
    let t = TestDb::default_backend().await;
    let keyring = Keyring::new(MASTER);
    put(&t.db, &keyring, "API_TOKEN", "tok-abcdef").await;
    put(&t.db, &keyring, "DB_PASSWORD", "pw-123456").await;
    put(&t.db, &keyring, "API_TOKEN", "tok-replaced").await;

    let got = secrets::resolve(&t.db, &keyring, &names(&["DB_PASSWORD", "API_TOKEN"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            ("DB_PASSWORD".to_owned(), "pw-123456".to_owned()),
            ("API_TOKEN".to_owned(), "tok-replaced".to_owned())
        ]
    );
    assert!(
        secrets::resolve(&t.db, &keyring, &[])
            .await
            .unwrap()
            .is_empty()
    );

    let (_, ciphertext, version) = row(&t.db, "API_TOKEN").await;
    assert_eq!(version, 1);
    assert!(
        !ciphertext.contains(&hex_of("tok-replaced")),
        "stored in plain text"
    );

    let err = secrets::resolve(&t.db, &keyring, &names(&["API_TOKEN", "NOPE"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(m) if m.contains("NOPE")),
        "{err}"
    );

    let listed: Vec<String> = secrets::list(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        listed,
        ["API_TOKEN", "DB_PASSWORD"],
        "most recently changed first"
    );
    assert_eq!(
        secrets::missing(&t.db, &names(&["API_TOKEN", "X", "Y"]))
            .await
            .unwrap(),
        ["X", "Y"]
    );

    let mut tx = t.db.begin().await.unwrap();
    let gone = secrets::delete(&mut tx, "DB_PASSWORD")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.name, "DB_PASSWORD");
    assert!(
        secrets::delete(&mut tx, "DB_PASSWORD")
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    assert_eq!(secrets::count(&t.db).await.unwrap(), 1);
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_wrong_master_key_or_a_swapped_row_does_not_decrypt() {
    let t = TestDb::default_backend().await;
    let keyring = Keyring::new(MASTER);
    put(&t.db, &keyring, "A_SECRET", "value-of-a").await;
    put(&t.db, &keyring, "B_SECRET", "value-of-b").await;

    let other = Keyring::new([7u8; 32]);
    let err = secrets::resolve(&t.db, &other, &names(&["A_SECRET"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("master key"), "{err}");

    // A's ciphertext moved into B's row: B no longer decrypts, and the error names B only.
    let a = row(&t.db, "A_SECRET").await;
    set_row(&t.db, "B_SECRET", &a).await;
    let err = secrets::resolve(&t.db, &keyring, &names(&["B_SECRET"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("B_SECRET"), "{err}");
    assert!(!err.to_string().contains("value-of"), "{err}");
}

#[tokio::test]
async fn rotation_re_encrypts_everything_and_old_ciphertexts_stop_working() {
    let t = TestDb::default_backend().await;
    let keyring = Keyring::new(MASTER);

    // Rotating with nothing stored just makes a key.
    let mut tx = t.db.begin().await.unwrap();
    let first = secrets::rotate(&mut tx, &keyring).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first.reencrypted, first.key_version), (0, 1));

    put(&t.db, &keyring, "A_SECRET", "value-of-a").await;
    put(&t.db, &keyring, "B_SECRET", "value-of-b").await;
    let old_a = row(&t.db, "A_SECRET").await;
    assert_eq!(old_a.2, 1);

    let mut tx = t.db.begin().await.unwrap();
    let rotation = secrets::rotate(&mut tx, &keyring).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((rotation.reencrypted, rotation.key_version), (2, 2));
    let new_a = row(&t.db, "A_SECRET").await;
    assert_eq!(new_a.2, 2);
    assert_ne!(new_a.1, old_a.1);
    assert_eq!(
        secrets::resolve(&t.db, &keyring, &names(&["A_SECRET", "B_SECRET"]))
            .await
            .unwrap(),
        vec![
            ("A_SECRET".to_owned(), "value-of-a".to_owned()),
            ("B_SECRET".to_owned(), "value-of-b".to_owned())
        ]
    );

    // The old ciphertext, restored as it was or relabelled with the new version, is refused.
    set_row(&t.db, "A_SECRET", &old_a).await;
    assert!(
        secrets::resolve(&t.db, &keyring, &names(&["A_SECRET"]))
            .await
            .is_err()
    );
    set_row(&t.db, "A_SECRET", &(old_a.0.clone(), old_a.1.clone(), 2)).await;
    let err = secrets::resolve(&t.db, &keyring, &names(&["A_SECRET"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");

    // A rotation that meets an undecryptable secret changes nothing.
    let mut tx = t.db.begin().await.unwrap();
    assert!(secrets::rotate(&mut tx, &keyring).await.is_err());
    tx.rollback().await.unwrap();
    set_row(&t.db, "A_SECRET", &new_a).await;
    assert_eq!(
        secrets::resolve(&t.db, &keyring, &names(&["A_SECRET"]))
            .await
            .unwrap()[0]
            .1,
        "value-of-a"
    );
}

#[tokio::test]
async fn concurrent_first_writers_share_one_data_key() {
    let t = TestDb::default_backend().await;
    let keyring = Keyring::new(MASTER);
    let writers = (0..6).map(|i| {
        let db = t.db.clone();
        let keyring = keyring.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            secrets::put(&mut tx, &keyring, &format!("S_{i}"), &format!("value-{i}"))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let all: Vec<String> = (0..6).map(|i| format!("S_{i}")).collect();
    let got = secrets::resolve(&t.db, &keyring, &all).await.unwrap();
    assert_eq!(got.len(), 6);
    assert_eq!(got[5].1, "value-5");
}

#[tokio::test]
async fn environments_round_trip() {
    let t = TestDb::default_backend().await;
    let env = Environment {
        name: "staging".to_owned(),
        egress: vec!["api.github.com".to_owned(), "10.0.0.1:8443".to_owned()],
        secrets: vec!["TOKEN".to_owned()],
        description: "the staging cluster".to_owned(),
    };
    let mut tx = t.db.begin().await.unwrap();
    assert!(environments::put(&mut tx, &env).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(
        environments::get(&t.db, "staging").await.unwrap(),
        Some(env.clone())
    );
    let grants = environments::grants(&t.db, "staging")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grants.egress, env.egress);

    let changed = Environment {
        egress: vec![],
        ..env.clone()
    };
    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(
        environments::put(&mut tx, &changed).await.unwrap(),
        Some(env)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        environments::list(&t.db).await.unwrap(),
        vec![changed.clone()]
    );

    let mut tx = t.db.begin().await.unwrap();
    assert_eq!(
        environments::delete(&mut tx, "staging").await.unwrap(),
        Some(changed)
    );
    assert_eq!(
        environments::delete(&mut tx, "staging").await.unwrap(),
        None
    );
    tx.commit().await.unwrap();
    assert!(environments::get(&t.db, "staging").await.unwrap().is_none());
}
