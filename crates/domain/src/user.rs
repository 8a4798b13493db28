//! Users: people and services of the one organisation a deployment serves.

use serde::{Deserialize, Serialize};

use crate::{BypassMode, Id, Role, Timestamp};

/// A user as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: Id,
    pub name: String,
    pub role: Role,
    /// A disabled user cannot authenticate and has no Telegram link.
    pub disabled: bool,
    /// Whether a Telegram account is linked to this user.
    pub telegram_linked: bool,
    /// The user's persistent bypass toggle (always OFF unless the org allows bypass).
    pub bypass: BypassMode,
    pub created_at: Timestamp,
}
