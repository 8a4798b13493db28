//! What we send: the conversation logic produces [`Outgoing`] messages; the outbox persists them
//! and the sender delivers them through the Bot API (at least once, deduplicated by key).

use serde::{Deserialize, Serialize};

/// One thing to send to a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Unique per logical message (e.g. `u:{update_id}:0`), so a redelivered update or a retried
    /// send never produces a second copy.
    pub dedupe_key: String,
    pub chat_id: i64,
    pub action: Action,
}

/// The Bot API call it becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "camelCase")]
pub enum Action {
    /// `sendMessage` with `parse_mode=HTML`; `html` is already escaped and within 4096
    /// characters.
    SendMessage {
        html: String,
        #[serde(default)]
        buttons: Vec<Vec<Button>>,
    },
    /// `editMessageText` of an earlier message of ours.
    EditMessageText {
        message_id: i64,
        html: String,
        #[serde(default)]
        buttons: Vec<Vec<Button>>,
    },
    /// `answerCallbackQuery` (a short notice on the pressed button).
    AnswerCallbackQuery {
        callback_query_id: String,
        text: String,
    },
    /// `sendDocument` of a text file (full output longer than a message).
    SendDocument {
        file_name: String,
        contents: String,
        caption_html: String,
    },
}

/// An inline keyboard button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub text: String,
    /// At most 64 bytes.
    pub callback_data: String,
}
