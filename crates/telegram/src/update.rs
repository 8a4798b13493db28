//! Telegram updates as we read them: leniently. Only the fields we act on are parsed; unknown
//! update kinds, unknown fields and missing optional fields never fail (an update we cannot use is
//! [`UpdateKind::Other`], acknowledged and ignored), so a strange update can never put the
//! webhook or the poller into an error loop.

use serde::Deserialize;

/// One update from `getUpdates` or the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

/// What an update carries, as far as we act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateKind {
    /// A (new) text message.
    Message(Message),
    /// An inline-button press.
    Callback(CallbackQuery),
    /// Anything else: edited messages, channel posts, member updates, stickers without text…
    Other,
}

/// A message with text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    /// The sender; absent for channel posts.
    pub from: Option<From>,
    /// The text; absent for photos, stickers and the like.
    pub text: Option<String>,
}

/// A chat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`; only private chats are acted on.
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl Chat {
    /// Whether this is a one-to-one chat with the bot.
    pub fn is_private(&self) -> bool {
        self.kind == "private"
    }
}

/// A Telegram user; identity is the numeric `id` only (usernames change).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct From {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

/// An inline-button press.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CallbackQuery {
    /// Answered with `answerCallbackQuery`.
    pub id: String,
    pub from: From,
    /// The message the button was on (absent when it is too old).
    pub message: Option<Message>,
    /// Our callback data (≤ 64 bytes), e.g. `ap:APPROVAL_ID`.
    pub data: Option<String>,
}

/// Why an update could not be read at all (not even its `update_id`).
#[derive(Debug, thiserror::Error)]
#[error("not a Telegram update: {0}")]
pub struct UpdateError(String);

impl Update {
    /// Parses one update. Only a missing or non-integer `update_id` (or input that is not a JSON
    /// object) is an error; everything else we cannot use becomes [`UpdateKind::Other`].
    pub fn parse(value: &serde_json::Value) -> Result<Update, UpdateError> {
        let update_id = value
            .get("update_id")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| UpdateError("no integer update_id".to_owned()))?;
        let kind = if let Some(m) = value.get("message") {
            Message::deserialize(m)
                .map(UpdateKind::Message)
                .unwrap_or(UpdateKind::Other)
        } else if let Some(c) = value.get("callback_query") {
            CallbackQuery::deserialize(c)
                .map(UpdateKind::Callback)
                .unwrap_or(UpdateKind::Other)
        } else {
            UpdateKind::Other
        };
        Ok(Update { update_id, kind })
    }

    /// Parses the body of a webhook request.
    pub fn from_slice(bytes: &[u8]) -> Result<Update, UpdateError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| UpdateError(e.to_string()))?;
        Update::parse(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_broken_updates_are_other_not_errors() {
        let u = Update::parse(&json!({"update_id": 7, "edited_message": {"x": 1}})).unwrap();
        assert_eq!(
            u,
            Update {
                update_id: 7,
                kind: UpdateKind::Other
            }
        );
        let u = Update::parse(&json!({"update_id": 8, "message": {"chat": "nonsense"}})).unwrap();
        assert_eq!(u.kind, UpdateKind::Other);
        assert!(Update::parse(&json!({"message": {}})).is_err());
        assert!(Update::from_slice(b"not json").is_err());
    }

    #[test]
    fn a_text_message_is_read_with_extra_fields_ignored() {
        let u = Update::parse(&json!({
            "update_id": 9,
            "message": {
                "message_id": 3, "date": 0, "new_field": true,
                "chat": {"id": 42, "type": "private", "first_name": "A"},
                "from": {"id": 42, "is_bot": false, "first_name": "A", "language_code": "en"},
                "text": "/status"
            }
        }))
        .unwrap();
        let UpdateKind::Message(m) = u.kind else {
            panic!("not a message")
        };
        assert!(m.chat.is_private());
        assert_eq!(m.from.unwrap().id, 42);
        assert_eq!(m.text.as_deref(), Some("/status"));
    }
}
