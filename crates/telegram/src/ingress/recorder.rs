//! Recording updates with group commit: every update waiting at that moment is stored in one
//! transaction, so a burst of webhook deliveries costs one commit instead of one each, and each
//! delivery is acknowledged as soon as its batch is durable.

use store::{Db, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most updates stored by one transaction.
const MAX_BATCH: usize = 256;

/// One update to record, and where to say that it is stored.
struct Request {
    update_id: i64,
    payload: String,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle to the recording task. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Recorder {
    requests: mpsc::Sender<Request>,
}

impl Recorder {
    /// Starts the recording task on the current Tokio runtime.
    pub(crate) fn start(db: Db) -> Recorder {
        let (requests, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, rx));
        Recorder { requests }
    }

    /// Stores the update (a duplicate id changes nothing) and returns once it is durable.
    pub(crate) async fn record(&self, update_id: i64, payload: String) -> Result<(), StoreError> {
        let (done, stored) = oneshot::channel();
        let gone = || StoreError::Unavailable("the update recorder stopped".to_owned());
        self.requests
            .send(Request {
                update_id,
                payload,
                done,
            })
            .await
            .map_err(|_| gone())?;
        stored.await.map_err(|_| gone())?
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let stored = store_batch(&db, &batch).await;
        for request in batch {
            let answer = match &stored {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(e.to_string())),
            };
            let _ = request.done.send(answer);
        }
    }
}

async fn store_batch(db: &Db, batch: &[Request]) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    for request in batch {
        store::telegram::record_update(&mut tx, request.update_id, &request.payload).await?;
    }
    tx.commit().await
}
