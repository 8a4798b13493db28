//! Group commit for new tasks.
//!
//! Creating a task is the hot path of the API. Under load many requests arrive together; writing
//! each in its own transaction makes them queue for the database's single writer (SQLite) or the
//! audit chain's tip (both), one commit at a time. The writer takes every request waiting at that
//! moment and stores them in one transaction — one insert for the tasks, one for their audit
//! events, one commit — and then answers each. A lone request is written at once: there is no
//! waiting for a batch to fill.
//!
//! If a batch's transaction fails, every request in it gets the error: the statements involved
//! cannot fail for one task alone (ids are random, the rows are validated beforehand), so a
//! failure is the database's, not a request's.

use store::tasks::TaskRecord;
use store::{Db, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most tasks written in one transaction.
const MAX_BATCH: usize = 128;
/// Requests that may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4096;

/// One task waiting to be stored, and who to tell.
struct Job {
    record: TaskRecord,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct TaskWriter {
    jobs: mpsc::Sender<Job>,
}

impl TaskWriter {
    /// Starts the writer on the current Tokio runtime; it stops when the last handle is dropped.
    pub(crate) fn start(db: Db) -> TaskWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, queue));
        TaskWriter { jobs }
    }

    /// Stores the task (with its approval) and audits it; returns once it is committed.
    pub(crate) async fn write(&self, record: TaskRecord) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the task writer has stopped".to_owned());
        self.jobs
            .send(Job { record, done })
            .await
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn run(db: Db, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let records: Vec<TaskRecord> = batch.iter().map(|job| job.record.clone()).collect();
        let result = write_batch(&db, &records).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, tasks = records.len(), "could not store a batch of tasks");
        }
        for job in batch.drain(..) {
            // The caller may have gone away (client disconnected); the task is stored anyway.
            let _ = job.done.send(result.clone());
        }
    }
}

async fn write_batch(db: &Db, records: &[TaskRecord]) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    store::tasks::insert_many(&mut tx, records).await?;
    tx.commit().await
}
