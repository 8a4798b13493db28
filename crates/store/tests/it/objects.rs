//! Object storage on a real directory and on S3 as spoken by `moto_server` (DESIGN.md, "Real
//! components in tests"). The S3 test uses `AGENTICAI_TEST_S3_ENDPOINT` if set, otherwise starts
//! its own `moto_server` on a free port.

use std::sync::Once;
use std::time::Duration;

use bytes::Bytes;
use store::objects::{Objects, ObjectsError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{ChildGuard, free_port, unique, wait_for_port};

/// Keys that must be refused, on every operation.
const BAD_KEYS: &[&str] = &[
    "",
    "/etc/passwd",
    "../outside",
    "a/../../b",
    "a/./b",
    "a//b",
    "trailing/",
    "with space",
    "back\\slash",
    "hash#1",
    "ünïcode",
    "new\nline",
];

/// put/get/list/delete, missing keys and bad keys: the same behaviour on every backend.
async fn exercise(o: &Objects) {
    o.check().await.unwrap();

    // Missing.
    assert_eq!(o.get("audit/checkpoints/000001.json").await.unwrap(), None);
    assert_eq!(o.list("audit").await.unwrap(), Vec::<String>::new());
    o.delete("audit/never-there.json").await.unwrap();

    // Put and get, including arbitrary bytes.
    let all_bytes: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let objects: [(&str, Bytes); 5] = [
        (
            "audit/checkpoints/000002.json",
            Bytes::from_static(b"{\"n\":2}"),
        ),
        (
            "audit/checkpoints/000001.json",
            Bytes::from_static(b"{\"n\":1}"),
        ),
        ("audit/export.txt", Bytes::from_static(b"export")),
        ("auditor/x.bin", all_bytes.clone()),
        ("top-level_file.v1", Bytes::new()),
    ];
    for (key, data) in &objects {
        o.put(key, data.clone()).await.unwrap();
    }
    for (key, data) in &objects {
        assert_eq!(o.get(key).await.unwrap().as_ref(), Some(data), "{key}");
    }

    // Overwrite replaces.
    o.put(
        "audit/checkpoints/000001.json",
        Bytes::from_static(b"{\"n\":11}"),
    )
    .await
    .unwrap();
    assert_eq!(
        o.get("audit/checkpoints/000001.json").await.unwrap(),
        Some(Bytes::from_static(b"{\"n\":11}"))
    );

    // List: sorted, by whole path segments.
    let checkpoints = vec![
        "audit/checkpoints/000001.json".to_owned(),
        "audit/checkpoints/000002.json".to_owned(),
    ];
    assert_eq!(o.list("audit/checkpoints").await.unwrap(), checkpoints);
    assert_eq!(o.list("audit/checkpoints/").await.unwrap(), checkpoints);
    assert_eq!(
        o.list("audit").await.unwrap(),
        vec![
            "audit/checkpoints/000001.json",
            "audit/checkpoints/000002.json",
            "audit/export.txt",
        ]
    );
    let mut everything: Vec<String> = objects.iter().map(|(k, _)| k.to_string()).collect();
    everything.sort();
    assert_eq!(o.list("").await.unwrap(), everything);
    assert_eq!(o.list("audit/check").await.unwrap(), Vec::<String>::new());
    assert_eq!(o.list("nothing/here").await.unwrap(), Vec::<String>::new());

    // Delete, twice.
    o.delete("audit/checkpoints/000001.json").await.unwrap();
    o.delete("audit/checkpoints/000001.json").await.unwrap();
    assert_eq!(o.get("audit/checkpoints/000001.json").await.unwrap(), None);
    assert_eq!(
        o.list("audit/checkpoints").await.unwrap(),
        vec!["audit/checkpoints/000002.json"]
    );

    // Bad keys are refused before any I/O, with the rule they break.
    for bad in BAD_KEYS {
        let results = [
            o.put(bad, Bytes::from_static(b"x")).await.err(),
            o.get(bad).await.err(),
            o.delete(bad).await.err(),
        ];
        for result in results {
            match result {
                Some(e @ ObjectsError::InvalidKey { .. }) => {
                    assert!(e.to_string().starts_with("invalid object key"), "{e}")
                }
                other => panic!("{bad:?} was not refused: {other:?}"),
            }
        }
    }
    for bad_prefix in ["/abs", "../up", "a//b", "x y"] {
        assert!(
            matches!(
                o.list(bad_prefix).await,
                Err(ObjectsError::InvalidKey { .. })
            ),
            "{bad_prefix:?}"
        );
    }
    // Nothing was written by the refused calls.
    assert_eq!(o.list("").await.unwrap().len(), objects.len() - 1);

    // Leave the store empty.
    for key in o.list("").await.unwrap() {
        o.delete(&key).await.unwrap();
    }
    assert_eq!(o.list("").await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn file_store_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not/yet/there");
    let o = Objects::from_url(&format!("file://{}", root.display()), None).unwrap();
    assert!(root.is_dir(), "the directory is created");
    let canonical = std::fs::canonicalize(&root).unwrap();
    assert_eq!(o.describe(), format!("file://{}", canonical.display()));

    // Objects are plain files under the root, and no staging files are left behind.
    o.put(
        "audit/checkpoints/000007.json",
        Bytes::from_static(b"seven"),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(canonical.join("audit/checkpoints/000007.json")).unwrap(),
        b"seven"
    );
    let names: Vec<String> = std::fs::read_dir(canonical.join("audit/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["000007.json"]);
    o.delete("audit/checkpoints/000007.json").await.unwrap();

    exercise(&o).await;

    // Nothing was written outside the root.
    let outside: Vec<_> = std::fs::read_dir(dir.path().join("not/yet"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("there")]);

    // Readiness fails once the directory is gone.
    std::fs::remove_dir_all(&root).unwrap();
    let e = o.check().await.unwrap_err();
    assert!(matches!(e, ObjectsError::NotReady { .. }), "{e}");
}

#[tokio::test]
async fn in_memory_store_round_trip() {
    exercise(&Objects::in_memory()).await;
}

#[test]
fn urls_are_checked_clearly() {
    let e = Objects::from_url("ftp://example.com/x", None).unwrap_err();
    assert!(
        matches!(&e, ObjectsError::UnsupportedScheme(s) if s == "ftp"),
        "{e}"
    );
    assert!(e.to_string().contains("\"ftp\""), "{e}");
    let e = Objects::from_url("gs://bucket", None).unwrap_err();
    assert!(e.to_string().contains("\"gs\""), "{e}");

    for bad in [
        "/just/a/path",
        "file://relative/dir",
        "s3://",
        "s3://bucket/prefix",
    ] {
        let e = Objects::from_url(bad, None).unwrap_err();
        assert!(matches!(e, ObjectsError::InvalidUrl(_)), "{bad}: {e}");
    }
    let e = Objects::from_url("s3://AKIAEXAMPLE:very-secret@bucket", None).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
}

// ------------------------------------------------------------------------------------------- S3

/// Credentials for moto (any value works), set once for the whole test process unless the
/// environment already has them.
fn aws_test_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ] {
            if std::env::var_os(name).is_none() {
                // SAFETY: only test code changes the environment, once, through Rust's std (which
                // serialises its own environment accesses); the variables are read by
                // `AmazonS3Builder::from_env` in this same test.
                unsafe { std::env::set_var(name, value) };
            }
        }
    });
}

/// One plain HTTP/1.1 request without a body; returns the status code.
async fn http_status(endpoint: &str, method: &str, path: &str) -> u16 {
    let url = url::Url::parse(endpoint).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let port = url.port_or_known_default().unwrap();
    let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("not an HTTP response: {text}"))
}

/// The S3 endpoint to test against, and the moto server we started for it (if we did).
async fn s3_endpoint() -> (String, Option<ChildGuard>) {
    if let Ok(endpoint) = std::env::var("AGENTICAI_TEST_S3_ENDPOINT") {
        return (endpoint, None);
    }
    let port = free_port();
    let mut moto = ChildGuard::spawn("moto_server", &["-H", "127.0.0.1", "-p", &port.to_string()]);
    assert!(
        wait_for_port(port, Duration::from_secs(60)).await,
        "moto_server did not start on port {port}"
    );
    moto.assert_running();
    let endpoint = format!("http://127.0.0.1:{port}");
    // Listening is not always answering yet.
    for _ in 0..100 {
        if http_status(&endpoint, "GET", "/").await == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (endpoint, Some(moto))
}

#[tokio::test]
async fn s3_store_round_trip_and_missing_bucket() {
    aws_test_env();
    let (endpoint, _moto) = s3_endpoint().await;
    let bucket = unique("objects");
    assert_eq!(
        http_status(&endpoint, "PUT", &format!("/{bucket}")).await,
        200,
        "creating bucket {bucket}"
    );

    let o = Objects::from_url(&format!("s3://{bucket}"), Some(&endpoint)).unwrap();
    assert_eq!(o.describe(), format!("s3://{bucket}"));
    exercise(&o).await;

    // A bucket that does not exist: set-up succeeds (no I/O), the readiness check says why not.
    let missing =
        Objects::from_url(&format!("s3://{}", unique("missing")), Some(&endpoint)).unwrap();
    let e = missing.check().await.unwrap_err();
    assert!(matches!(e, ObjectsError::NotReady { .. }), "{e}");
    assert!(e.to_string().contains("bucket does not exist"), "{e}");
    assert!(!e.to_string().contains("AWS_SECRET"), "{e}");

    // Nothing at all listening: an error, not a hang.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let unreachable = Objects::from_url(&format!("s3://{bucket}"), Some(&nobody)).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(60), unreachable.check())
        .await
        .expect("the check gives up")
        .unwrap_err();
    assert!(matches!(e, ObjectsError::NotReady { .. }), "{e}");

    assert_eq!(
        http_status(&endpoint, "DELETE", &format!("/{bucket}")).await,
        204,
        "deleting bucket {bucket}"
    );
}
