//! A Server-Sent Events parser (the WHATWG `text/event-stream` format), fed the body as it
//! arrives in arbitrary chunks.
//!
//! Lines end with CRLF, LF or CR (a CRLF split across two chunks counts once); `:` lines are
//! comments (the server's keep-alives); `data` lines accumulate, joined by newlines; an empty line
//! dispatches the frame. `id` sets the last event id, which persists across frames as the spec
//! says and is what a reconnection sends as `Last-Event-ID`. A frame left unfinished when the
//! stream ends is discarded, also as the spec says.

use std::fmt;

/// The longest line, or the largest `data` of one frame, the parser accepts. A finished task's
/// frame carries its captured output (1 MiB by default), so this leaves ample room.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The `event` field; `message` when the frame had none.
    pub event: String,
    /// The `data` lines, joined by `\n`.
    pub data: String,
    /// The last event id seen on the stream so far (this frame's `id`, or an earlier one).
    pub last_event_id: Option<String>,
}

/// The stream sent a line or frame over [`MAX_FRAME_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge;

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an event is larger than {MAX_FRAME_BYTES} bytes")
    }
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of the line not finished yet.
    line: Vec<u8>,
    /// The previous line ended with CR: an LF right after it belongs to that line ending.
    after_cr: bool,
    /// Whether any line was completed yet (a byte order mark is skipped on the first).
    started: bool,
    /// The `event` field of the frame being built.
    event: String,
    /// The `data` of the frame being built, each line followed by `\n`.
    data: String,
    /// The last event id.
    last_event_id: Option<String>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds the next chunk of the body; returns the frames it completed, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Vec<Frame>, FrameTooLarge> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&bytes[..end]);
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    if let Some(frame) = self.line_done(&String::from_utf8_lossy(&line))? {
                        frames.push(frame);
                    }
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            if self.line.len() > MAX_FRAME_BYTES {
                return Err(FrameTooLarge);
            }
        }
        Ok(frames)
    }

    /// Handles one complete line; an empty one dispatches the frame being built.
    fn line_done(&mut self, line: &str) -> Result<Option<Frame>, FrameTooLarge> {
        let line = if self.started {
            line
        } else {
            self.started = true;
            line.strip_prefix('\u{feff}').unwrap_or(line)
        };
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() >= MAX_FRAME_BYTES {
                    return Err(FrameTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_owned()),
            // `retry` and unknown fields: nothing for us to do.
            _ => {}
        }
        Ok(None)
    }

    /// Ends the frame being built: a frame when it had data, else nothing.
    fn dispatch(&mut self) -> Option<Frame> {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(Frame {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            last_event_id: self.last_event_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: &str, data: &str, id: Option<&str>) -> Frame {
        Frame {
            event: event.to_owned(),
            data: data.to_owned(),
            last_event_id: id.map(str::to_owned),
        }
    }

    /// Feeds `chunks` one after the other and collects every frame.
    fn parse(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut parser = Parser::new();
        chunks
            .iter()
            .flat_map(|c| parser.feed(c).expect("within limits"))
            .collect()
    }

    #[test]
    fn the_servers_frames_parse() {
        let body = b"event: task\ndata: {\"task_id\":\"tsk_a\"}\n\n: keep-alive\n\n\
                     id: 1\nevent: plan\ndata: {\"seq\":1}\n\n\
                     id: 2\nevent: output\ndata: {\"seq\":2}\n\n";
        assert_eq!(
            parse(&[body]),
            vec![
                frame("task", "{\"task_id\":\"tsk_a\"}", None),
                frame("plan", "{\"seq\":1}", Some("1")),
                frame("output", "{\"seq\":2}", Some("2")),
            ]
        );
    }

    #[test]
    fn any_split_into_chunks_gives_the_same_frames() {
        let body: &[u8] = b"id: 7\r\nevent: answer\r\ndata: a\r\ndata: b\r\n\r\n\
                            : comment\r\rdata:c\r\r";
        let whole = parse(&[body]);
        assert_eq!(
            whole,
            vec![
                frame("answer", "a\nb", Some("7")),
                frame("message", "c", Some("7")),
            ]
        );
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(parse(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse(&bytes), whole, "byte by byte");
    }

    #[test]
    fn multi_line_data_keeps_inner_newlines_and_empty_lines() {
        let frames = parse(&[b"data: one\ndata:\ndata:  two spaces\n\n"]);
        assert_eq!(frames, vec![frame("message", "one\n\n two spaces", None)]);
    }

    #[test]
    fn comments_and_frames_without_data_dispatch_nothing() {
        assert_eq!(
            parse(&[b": keep-alive\n\nevent: task\n\nid: 3\n\n"]),
            vec![]
        );
    }

    #[test]
    fn the_last_event_id_persists_and_ignores_ids_with_nul() {
        let frames = parse(&[b"id: 4\ndata: a\n\ndata: b\n\nid: 5\0\ndata: c\n\n"]);
        assert_eq!(
            frames
                .iter()
                .map(|f| f.last_event_id.as_deref())
                .collect::<Vec<_>>(),
            vec![Some("4"), Some("4"), Some("4")]
        );
    }

    #[test]
    fn field_without_colon_and_unknown_fields() {
        let frames = parse(&[b"data\nretry: 10\nfoo: bar\nevent:x\n\n"]);
        assert_eq!(frames, vec![frame("x", "", None)]);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let frames = parse(&[b"\xef\xbb\xbfdata: x\n\n"]);
        assert_eq!(frames, vec![frame("message", "x", None)]);
    }

    #[test]
    fn an_unfinished_frame_at_the_end_is_not_dispatched() {
        assert_eq!(parse(&[b"event: task\ndata: {\"partial\""]), vec![]);
        assert_eq!(parse(&[b"data: x\n"]), vec![]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let frames = parse(&[b"data: a\xffb\n\n"]);
        assert_eq!(frames, vec![frame("message", "a\u{fffd}b", None)]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = Parser::new();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..=(MAX_FRAME_BYTES / chunk.len()) {
            result = parser.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(FrameTooLarge));
    }
}
