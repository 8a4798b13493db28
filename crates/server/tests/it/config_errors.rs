//! Configuration and startup failures: each is a clear error naming the setting or dependency,
//! never a hang; an unknown `AGENTICAI_*` variable only warns; `/readyz` names what is missing.

use std::time::Duration;

use crate::support::{Database, Deployment, Server, free_port};

#[test]
fn malformed_listen_address_names_the_setting() {
    let dep = Deployment::sqlite().var("AGENTICAI_LISTEN", "nonsense");
    let run = dep.spawn_cli(&["serve"]).wait(Duration::from_secs(20));
    assert!(!run.timed_out, "{run}");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("AGENTICAI_LISTEN"), "{run}");
    let run = dep.cli(&["config", "check"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("AGENTICAI_LISTEN"), "{run}");
}

#[test]
fn malformed_values_name_their_setting() {
    for (name, value) in [
        ("AGENTICAI_DATABASE_URL", "mysql://x/y"),
        ("AGENTICAI_TELEGRAM_MODE", "push"),
        ("AGENTICAI_FEATURES", "-nope"),
        ("AGENTICAI_SHUTDOWN_GRACE", "soon"),
    ] {
        let dep = Deployment::sqlite().var(name, value);
        let run = dep.cli(&["config", "check"]);
        assert_ne!(run.code, Some(0), "{name}={value}: {run}");
        assert!(run.stderr.contains(name), "{name}={value}: {run}");
    }
}

#[test]
fn unknown_key_in_the_config_file_is_an_error_naming_it() {
    let dep = Deployment::sqlite();
    let file = dep.root().join("custom.toml");
    std::fs::write(&file, "listn = \"127.0.0.1:1\"\n").unwrap();
    let file = file.display().to_string();

    let run = dep.cli(&["--config", &file, "config", "check"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("listn"), "{run}");
    let run = dep
        .spawn_cli(&["--config", &file, "serve"])
        .wait(Duration::from_secs(20));
    assert!(!run.timed_out, "{run}");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("listn"), "{run}");
    // AGENTICAI_CONFIG names the file too.
    let run = dep.spawn_cli_with(&["config", "check"], |c| {
        c.env("AGENTICAI_CONFIG", &file);
    });
    let run = run.wait(Duration::from_secs(20));
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("listn"), "{run}");

    // agenticai.toml in the working directory is read without --config.
    std::fs::write(dep.root().join("agenticai.toml"), "databse_url = \"x\"\n").unwrap();
    let run = dep.cli(&["config", "check"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("databse_url"), "{run}");
}

#[test]
fn config_file_values_apply_and_the_environment_wins() {
    let dep = Deployment::sqlite();
    let file = dep.root().join("agenticai.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9998\"\nshutdown_grace = \"5s\"\n",
    )
    .unwrap();
    let run = dep.cli(&["config", "check"]);
    run.assert_success();
    assert!(run.stdout.contains("127.0.0.1:9998"), "{run}");
    let dep = dep.var("AGENTICAI_LISTEN", "127.0.0.1:9997");
    let run = dep.cli(&["config", "check"]);
    run.assert_success();
    assert!(run.stdout.contains("127.0.0.1:9997"), "{run}");
    assert!(!run.stdout.contains("127.0.0.1:9998"), "{run}");

    let dep = Deployment::sqlite();
    std::fs::write(dep.root().join("agenticai.toml"), "listen = \"nonsense\"\n").unwrap();
    let run = dep.cli(&["config", "check"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("listen"), "{run}");

    std::fs::write(dep.root().join("agenticai.toml"), "listen = [\n").unwrap();
    let run = dep.cli(&["config", "check"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("agenticai.toml"), "{run}");
}

#[test]
fn unknown_agenticai_variable_warns_but_works() {
    let dep = Deployment::new().var("AGENTICAI_LISTN", "x");
    let run = dep.cli(&["config", "check"]);
    run.assert_success();
    assert!(run.stderr.contains("AGENTICAI_LISTN"), "{run}");
    let run = dep.cli(&["migrate"]);
    run.assert_success();
    assert!(run.stderr.contains("AGENTICAI_LISTN"), "{run}");
    let v = dep.cli_json(&["org", "init", "--name", "Acme", "--admin", "alice"]);
    assert!(v["admin_token"].is_string(), "{v}");
}

#[tokio::test]
async fn unknown_agenticai_variable_does_not_stop_the_server() {
    let dep = Deployment::new().var("AGENTICAI_LISTN", "x");
    let server = Server::start_with(dep).await;
    server.get("/healthz", None).await.expect(200);
    assert!(server.log_text().contains("AGENTICAI_LISTN"));
}

#[test]
fn unreachable_database_fails_fast_naming_the_database() {
    let dep = Deployment::with_database(Database::Url(
        "postgres://postgres@127.0.0.1:1/x".to_owned(),
    ))
    .var("AGENTICAI_LISTEN", &format!("127.0.0.1:{}", free_port()));
    let run = dep.spawn_cli(&["serve"]).wait(Duration::from_secs(30));
    assert!(
        !run.timed_out,
        "serve kept running without a database: {run}"
    );
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.elapsed < Duration::from_secs(12),
        "took {:?}",
        run.elapsed
    );
    assert!(run.stderr.contains("database"), "{run}");
    let run = dep.cli(&["migrate"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("database"), "{run}");
}

#[test]
fn listen_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dep = Deployment::new().var("AGENTICAI_LISTEN", &address);
    let run = dep.spawn_cli(&["serve"]).wait(Duration::from_secs(30));
    assert!(!run.timed_out, "{run}");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains(&address), "{run}");
    drop(taken);
}

#[tokio::test]
async fn readyz_names_the_missing_org_until_org_init() {
    let server = Server::start().await;
    let health = server.get("/healthz", None).await;
    assert_eq!(health.expect(200)["status"], "ok");

    let r = server.get("/readyz", None).await;
    let body = r.expect(503);
    assert_eq!(body["status"], "not_ready", "{body}");
    assert!(body["checks"]["org"].is_string(), "{body}");
    assert_ne!(body["checks"]["org"], "ok", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    server.org_init();
    let r = server.get("/readyz", None).await;
    let body = r.expect(200);
    assert_eq!(body["status"], "ready", "{body}");
    let checks = body["checks"].as_object().expect("checks");
    for (name, verdict) in checks {
        assert_eq!(verdict, "ok", "{name}: {body}");
    }
    for name in ["database", "org"] {
        assert!(checks.contains_key(name), "{name} missing: {body}");
    }
}
