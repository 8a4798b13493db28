//! Following one task: its events are shown as they arrive until the task is over, approvals are
//! asked about as they come, and a broken stream is resumed where it stopped (`Last-Event-ID`).
//!
//! The stream's first frame is the task as it is (event `task`), then its events, then — once it
//! is over — the final task, and the stream ends. A terminal task in the *first* frame does not
//! end the following (events stored before it still follow); the end of the stream does.

use std::time::Duration;

use domain::{Id, Task};
use serde_json::Value;

use super::api::ApiError;
use super::keyboard::Input;
use super::line::{self, Line};
use super::render::{self, ApprovalRequest, Shown};
use super::sanitize::sanitize;
use super::sse::Frame;
use super::stream::Frames;
use super::{Next, Session, stdout_failed};
use crate::commands::Failure;

/// Reconnections in a row, without a new event in between, before giving up on the stream.
const MAX_RECONNECTS: u32 = 5;
/// The pause before the first reconnection; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What is known of the task being followed.
struct Followed {
    /// Its id.
    task_id: Id,
    /// The task as the last `task` frame showed it.
    task: Task,
    /// The id of the last event shown, sent as `Last-Event-ID` when reconnecting.
    last_event_id: Option<String>,
    /// Whether an `answer` event was shown (then the result is not shown again at the end).
    answered: bool,
    /// Whether Ctrl-C already asked for a cancel (a second one leaves the chat).
    cancel_sent: bool,
}

/// How one connection to the stream ended.
enum Connection {
    /// The chat is done with this task.
    Done(Next),
    /// The stream broke (or could not be opened) before the task was over.
    Broken {
        /// Why.
        error: ApiError,
        /// Whether it brought new events before it broke.
        progressed: bool,
    },
}

impl Session {
    /// Shows `task`'s events until it is over (or the user leaves).
    pub(super) async fn follow(&mut self, task: Task) -> Result<Next, Failure> {
        let mut followed = Followed {
            task_id: task.task_id.clone(),
            task,
            last_event_id: None,
            answered: false,
            cancel_sent: false,
        };
        let mut failures = 0;
        loop {
            let opened = self
                .api
                .events(&followed.task_id, followed.last_event_id.as_deref())
                .await;
            let connection = match opened {
                Ok(response) => {
                    self.read_stream(Frames::read(response), &mut followed)
                        .await?
                }
                Err(error) => Connection::Broken {
                    error,
                    progressed: false,
                },
            };
            let (error, progressed) = match connection {
                Connection::Done(next) => return Ok(next),
                Connection::Broken { error, progressed } => (error, progressed),
            };
            let task_id = &followed.task_id;
            if !error.is_transient() {
                if error == ApiError::Unauthorized {
                    return Err(error.to_string().into());
                }
                self.warn(&format!("cannot follow task {task_id}: {error}"))?;
                return Ok(Next::Continue);
            }
            failures = if progressed { 1 } else { failures + 1 };
            if failures > MAX_RECONNECTS {
                return Err(format!(
                    "lost the events of task {task_id}: {error}; the task goes on on the server"
                )
                .into());
            }
            let pause = FIRST_BACKOFF * 2u32.pow(failures - 1);
            self.warn(&format!(
                "{error}; following task {task_id} again in {}",
                humantime::format_duration(pause)
            ))?;
            tokio::time::sleep(pause).await;
        }
    }

    /// Shows the frames of one connection while watching the keyboard and Ctrl-C.
    async fn read_stream(
        &mut self,
        mut frames: Frames,
        followed: &mut Followed,
    ) -> Result<Connection, Failure> {
        let mut progressed = false;
        loop {
            let step = tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(frame)) => self.on_frame(frame, followed, &mut progressed).await?,
                    Some(Err(why)) => {
                        return Ok(Connection::Broken {
                            error: ApiError::Unreachable(why),
                            progressed,
                        });
                    }
                    None => return self.stream_ended(followed, progressed),
                },
                input = self.keyboard.read() => self.typed_while_running(input, followed).await?,
                _ = self.interrupts.recv() => self.interrupted(followed).await?,
            };
            if let Next::Exit(code) = step {
                return Ok(Connection::Done(Next::Exit(code)));
            }
        }
    }

    /// The stream ended: the task is over (its outcome is shown), or it broke off early.
    fn stream_ended(
        &mut self,
        followed: &Followed,
        progressed: bool,
    ) -> Result<Connection, Failure> {
        if !followed.task.status.is_terminal() {
            return Ok(Connection::Broken {
                error: ApiError::Unreachable(
                    "the event stream ended before the task was over".to_owned(),
                ),
                progressed,
            });
        }
        if let Some(text) = render::finished(&followed.task, followed.answered) {
            self.say(&text)?;
        }
        Ok(Connection::Done(Next::Continue))
    }

    /// Shows one frame; asks about an approval.
    async fn on_frame(
        &mut self,
        frame: Frame,
        followed: &mut Followed,
        progressed: &mut bool,
    ) -> Result<Next, Failure> {
        if frame.event == "task" {
            match serde_json::from_str::<Task>(&frame.data) {
                Ok(task) => followed.task = task,
                Err(e) => tracing::debug!(error = %e, "a task frame that is not a task"),
            }
            return Ok(Next::Continue);
        }
        followed.last_event_id = frame.last_event_id;
        *progressed = true;
        let event: Value = serde_json::from_str(&frame.data).unwrap_or(Value::Null);
        let data = event.get("data").unwrap_or(&Value::Null);
        match render::event(&frame.event, data) {
            Some(Shown::Lines(text)) => self.say(&text)?,
            Some(Shown::Output(piece)) => {
                let (text, ends_line) = render::output(&piece, self.screen.at_line_start());
                self.screen
                    .output(&text, ends_line)
                    .map_err(stdout_failed)?;
            }
            None => return Ok(Next::Continue),
        }
        match frame.event.as_str() {
            "answer" => followed.answered = true,
            "approval" => {
                if let Some(request) = render::approval(data) {
                    return self.ask_approval(request, followed).await;
                }
            }
            _ => {}
        }
        Ok(Next::Continue)
    }

    /// `approve? [y/N]`: the next line decides (`y`/`yes` approve, anything else denies, a `/`
    /// command is run instead); end of input leaves the approval undecided and the chat.
    async fn ask_approval(
        &mut self,
        request: ApprovalRequest,
        followed: &mut Followed,
    ) -> Result<Next, Failure> {
        let Ok(approval_id) = Id::parse(&request.approval_id) else {
            self.warn(&format!(
                "the server sent an approval id that is not an id: {:?}",
                sanitize(&request.approval_id)
            ))?;
            return Ok(Next::Continue);
        };
        if self.interactive {
            self.screen
                .prompt("approve? [y/N] ")
                .map_err(stdout_failed)?;
        }
        let input = tokio::select! {
            input = self.keyboard.next() => input,
            _ = self.interrupts.recv() => return self.interrupted(followed).await,
        };
        let answer = match input {
            Input::Line(answer) => answer,
            Input::Eof => {
                self.say(&format!(
                    "no answer: approval {approval_id} is left undecided \
                     (decide it later with /approve or /deny, or in Telegram)"
                ))?;
                return Ok(Next::Exit(0));
            }
        };
        let answer = answer.trim();
        if answer.starts_with('/') {
            return self
                .command(line::parse(answer), Some(&followed.task_id))
                .await;
        }
        let approve = matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes");
        self.decide(&approval_id, approve).await?;
        Ok(Next::Continue)
    }

    /// A line typed while the task runs: `/cancel`, `/help`, `/approve` and `/deny` act at once;
    /// requests and `/quit` wait their turn (the next one may answer an approval question).
    async fn typed_while_running(
        &mut self,
        input: Input,
        followed: &Followed,
    ) -> Result<Next, Failure> {
        let Input::Line(text) = input else {
            self.keyboard.defer(Input::Eof);
            return Ok(Next::Continue);
        };
        match line::parse(&text) {
            Line::Quit => {
                self.keyboard.defer(Input::Line(text));
                Ok(Next::Continue)
            }
            line => self.command(line, Some(&followed.task_id)).await,
        }
    }

    /// Ctrl-C: the first cancels the task, the next leaves the chat.
    async fn interrupted(&mut self, followed: &mut Followed) -> Result<Next, Failure> {
        if followed.cancel_sent {
            return Ok(Next::Exit(super::INTERRUPTED));
        }
        followed.cancel_sent = true;
        if self.interactive {
            // The terminal echoed `^C` where the cursor was, perhaps after a prompt.
            self.say("")?;
        }
        self.say(&format!(
            "cancelling task {} (Ctrl-C again leaves the chat)",
            followed.task_id
        ))?;
        self.cancel(&followed.task_id).await?;
        Ok(Next::Continue)
    }
}
