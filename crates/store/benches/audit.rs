//! Benchmark of the audit chain on SQLite (release build via `cargo bench`): append rate (one
//! event per transaction, and batches through `append_many`) and verification speed over a chain
//! of 100,000 events, with and without signed checkpoints.
//!
//! Run: `cargo bench -p store --bench audit` (optionally `-- --events N --batch N`). Results go
//! to stdout as Markdown rows for docs/performance.md.

use std::time::{Duration, Instant};

use store::Db;
use store::audit::{self, NewAuditEvent};
use store::audit_checkpoint::{self, Signer};
use store::audit_verify;
use store::objects::Objects;

/// Events appended one transaction each.
const SINGLE: usize = 5_000;
/// Events per `append_many` batch unless `--batch N` says otherwise.
const BATCH: usize = 100;

fn event(i: usize) -> NewAuditEvent<'static> {
    NewAuditEvent::new(
        "task.status_changed",
        serde_json::json!({"from": "QUEUED", "to": "RUNNING", "worker": "w-1", "attempt": i % 3}),
    )
}

/// Verification runs measured.
const ROUNDS: usize = 5;

/// "median N events/s (T ms), best M events/s".
fn summary(n: usize, times: &mut [Duration]) -> String {
    times.sort();
    let median = times[times.len() / 2];
    format!(
        "median {} events/s ({:.0} ms), best {} events/s",
        rate(n, median),
        median.as_secs_f64() * 1000.0,
        rate(n, times[0])
    )
}

fn rate(n: usize, elapsed: Duration) -> String {
    let per_s = n as f64 / elapsed.as_secs_f64();
    let rounded = per_s.round() as u64;
    // Thousands separators for the docs.
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn run(total: usize, batch: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let db = Db::connect(&url).await.map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    let fail = |e: store::StoreError| e.to_string();

    // One event per transaction, as a lone state change writes it.
    let start = Instant::now();
    for i in 0..SINGLE {
        let mut tx = db.begin().await.map_err(fail)?;
        audit::append(&mut tx, event(i)).await.map_err(fail)?;
        tx.commit().await.map_err(fail)?;
    }
    let single = start.elapsed();
    println!(
        "| audit append, SQLite, 1 event per transaction ({SINGLE} events) | {} events/s |",
        rate(SINGLE, single)
    );

    // Batches, as group commit writes them.
    let start = Instant::now();
    let mut written = SINGLE;
    while written < total {
        let n = batch.min(total - written);
        let mut tx = db.begin().await.map_err(fail)?;
        audit::append_many(&mut tx, (0..n).map(|i| event(written + i)).collect())
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        written += n;
    }
    let batched = start.elapsed();
    println!(
        "| audit append, SQLite, `append_many` batches of {batch} ({} events) | {} events/s |",
        total - SINGLE,
        rate(total - SINGLE, batched)
    );

    // Verification of the whole chain: the median and the best of 5 runs (after a warm-up).
    let mut times = Vec::new();
    for round in 0..=ROUNDS {
        let start = Instant::now();
        let report = audit_verify::verify(&db, None).await.map_err(fail)?;
        let elapsed = start.elapsed();
        if !report.ok || report.events != total as u64 {
            return Err(format!("the chain did not verify: {report:?}"));
        }
        if round > 0 {
            times.push(elapsed);
        }
    }
    println!(
        "| audit verify, SQLite, chain only ({total} events) | {} |",
        summary(total, &mut times)
    );

    // With a checkpoint every 1,000 events in a local object store (as `serve` writes them).
    let objects = Objects::from_url(&format!("file://{}/objects", dir.path().display()), None)
        .map_err(|e| e.to_string())?;
    let signer = Signer::from_seed(&[9u8; 32]);
    let mut head = 0;
    for seq in (1000..=total as i64).step_by(1000) {
        let hash: String = sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_one(db.pool())
            .await
            .map_err(|e| e.to_string())?;
        let checkpoint = signer.sign(seq, &hash);
        let body = serde_json::to_vec(&checkpoint).map_err(|e| e.to_string())?;
        objects
            .put(&audit_checkpoint::checkpoint_key(seq), body.into())
            .await
            .map_err(|e| e.to_string())?;
        head = seq;
    }
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let report = audit_verify::verify(&db, Some((&objects, &signer.verifier())))
            .await
            .map_err(fail)?;
        times.push(start.elapsed());
        if !report.ok {
            return Err(format!("the chain did not verify: {report:?}"));
        }
    }
    println!(
        "| audit verify, SQLite, with {} checkpoints ({total} events) | {} |",
        head / 1000,
        summary(total, &mut times)
    );
    db.close().await;
    Ok(())
}

fn main() {
    let mut total = 100_000;
    let mut batch = BATCH;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = |default: usize, next: Option<String>| {
            next.and_then(|n| n.parse().ok()).unwrap_or(default).max(1)
        };
        match arg.as_str() {
            "--events" => total = value(total, args.next()).max(2 * SINGLE),
            "--batch" => batch = value(batch, args.next()),
            _ => {}
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    println!("| measure | result |\n|---|---|");
    if let Err(e) = runtime.block_on(run(total, batch)) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
