//! The policy gate as the coordinator uses it: load the environment's grants and the org policy
//! as they are now, then ask the pure [`policy::gate`]. Used by task creation and by
//! `policy explain`, so the explanation is always the real decision.

use policy::gate::{Gated, Subject};

use crate::Coordinator;
use crate::error::{CoordError, Result};

impl Coordinator {
    /// Decides `command` for `subject` in `environment` under the org policy as it is now.
    pub(crate) async fn gate(
        &self,
        subject: Subject,
        command: &str,
        environment: Option<&str>,
    ) -> Result<Gated> {
        let grants = match environment {
            Some(name) => Some(
                store::environments::grants(&self.db, name)
                    .await?
                    .ok_or_else(|| {
                        CoordError::invalid(
                            "unknown_environment",
                            format!("there is no environment named {name:?}"),
                        )
                    })?,
            ),
            None => None,
        };
        let org = store::policy::get(&self.db).await?;
        Ok(policy::gate::gate(subject, command, &org, grants))
    }
}
