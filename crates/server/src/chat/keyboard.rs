//! The user's input: one thread reads stdin line by line and feeds a channel, so following a
//! task's events and reading what the user types never block each other.
//!
//! Lines are taken in order. While a task runs, lines that are not acted on at once wait in a
//! queue: the next one answers the next approval question, or else is the next request (type-ahead,
//! as in a shell; it is also what makes piped input such as `request\ny\n` work).

use std::collections::VecDeque;
use std::io::BufRead as _;

use tokio::sync::mpsc;

/// One thing read from stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A line, without its line ending; bytes that are not UTF-8 become U+FFFD.
    Line(String),
    /// End of input (Ctrl-D, or the end of a pipe), or stdin could not be read.
    Eof,
}

/// The reading end of stdin.
pub struct Keyboard {
    /// Lines from the reader thread.
    rx: mpsc::Receiver<Input>,
    /// Lines read but not used yet, oldest first.
    queued: VecDeque<Input>,
    /// Whether [`Input::Eof`] came through the channel (nothing more will).
    closed: bool,
}

impl Keyboard {
    /// Starts the reader thread. It is a plain thread, not a runtime task: a read from a terminal
    /// cannot be interrupted, and the process must be able to exit while one is pending.
    pub fn start() -> std::io::Result<Keyboard> {
        let (tx, rx) = mpsc::channel(16);
        std::thread::Builder::new()
            .name("chat-stdin".to_owned())
            .spawn(move || read_lines(&tx))?;
        Ok(Keyboard {
            rx,
            queued: VecDeque::new(),
            closed: false,
        })
    }

    /// The next input: a queued one first, else the next one read ([`Input::Eof`] once input
    /// has ended).
    pub async fn next(&mut self) -> Input {
        match self.queued.pop_front() {
            Some(input) => input,
            None if self.closed => Input::Eof,
            None => self.read().await,
        }
    }

    /// The next input from the reader, bypassing the queue (while a task runs, to see commands
    /// as they are typed). Pending forever once input has ended, so it can sit in a `select!`.
    pub async fn read(&mut self) -> Input {
        if self.closed {
            return std::future::pending().await;
        }
        match self.rx.recv().await {
            Some(Input::Line(line)) => Input::Line(line),
            Some(Input::Eof) | None => {
                self.closed = true;
                Input::Eof
            }
        }
    }

    /// Puts `input` at the end of the queue, for a later [`Keyboard::next`].
    pub fn defer(&mut self, input: Input) {
        self.queued.push_back(input);
    }

    /// Whether lines are waiting in the queue (then no prompt is printed for them).
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }
}

/// The reader thread: lines until end of input, then [`Input::Eof`].
fn read_lines(tx: &mpsc::Sender<Input>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let input = match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => Input::Eof,
            Ok(_) => {
                while buf.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                    buf.pop();
                }
                Input::Line(String::from_utf8_lossy(&buf).into_owned())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("agenticai: cannot read stdin: {e}");
                Input::Eof
            }
        };
        let last = input == Input::Eof;
        if tx.blocking_send(input).is_err() || last {
            return;
        }
    }
}
