//! One connection to a task's event stream, read by a task of its own: the body is read chunk by
//! chunk, parsed as Server-Sent Events and handed over frame by frame through a channel, so the
//! chat can wait on frames, typed lines and Ctrl-C at once (all cancel-safe).

use std::time::Duration;

use tokio::sync::mpsc;

use super::api::error_chain;
use super::sse::{Frame, Parser};

/// Silence after which the connection is taken for dead: the server sends a keep-alive comment
/// after every 15 s without events.
const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// The frames of one open stream; reading stops when this is dropped.
pub struct Frames {
    /// Frames in order; an `Err` says why the stream broke; the end of the channel is the end of
    /// the stream.
    rx: mpsc::Receiver<Result<Frame, String>>,
    /// The reading task.
    reader: tokio::task::JoinHandle<()>,
}

impl Frames {
    /// Starts reading the body of `response`.
    pub fn read(response: reqwest::Response) -> Frames {
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(read_body(response, tx));
        Frames { rx, reader }
    }

    /// The next frame; `Err` when the stream broke; `None` when it ended.
    pub async fn next(&mut self) -> Option<Result<Frame, String>> {
        self.rx.recv().await
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads and parses the body until it ends, breaks or nobody listens any more.
async fn read_body(mut response: reqwest::Response, tx: mpsc::Sender<Result<Frame, String>>) {
    let mut parser = Parser::new();
    loop {
        let bytes = match tokio::time::timeout(IDLE_LIMIT, response.chunk()).await {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                let _ = tx
                    .send(Err(format!("the event stream broke: {}", error_chain(&e))))
                    .await;
                return;
            }
            Err(_) => {
                let why = format!("no data on the event stream for {} s", IDLE_LIMIT.as_secs());
                let _ = tx.send(Err(why)).await;
                return;
            }
        };
        let frames = match parser.feed(&bytes) {
            Ok(frames) => frames,
            Err(e) => {
                let _ = tx
                    .send(Err(format!("the event stream is malformed: {e}")))
                    .await;
                return;
            }
        };
        for frame in frames {
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    }
}
