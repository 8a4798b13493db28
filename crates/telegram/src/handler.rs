//! The seam between ingress (how updates arrive) and the conversation (what they do).

use std::future::Future;

use crate::outgoing::Outgoing;
use crate::update::Update;

/// What the channel does with one update. Must be idempotent per `update_id`: a redelivered
/// update (after a crash between effect and acknowledgement) is handled again and must change
/// nothing more (task creation uses the idempotency key `tg:{update_id}`, decisions are
/// idempotent); its replies are deduplicated by their keys.
pub trait Handler: Send + Sync + 'static {
    /// The replies to send for `update` (possibly none). An `Err` means "could not handle it now"
    /// (e.g. the database is down): the update stays unprocessed and is tried again.
    fn handle(
        &self,
        update: Update,
    ) -> impl Future<Output = Result<Vec<Outgoing>, HandleError>> + Send;
}

/// Handling failed for a reason that may pass (retry later).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandleError(pub String);
