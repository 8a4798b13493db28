//! `agenticai chat`: a terminal chat with the agent over the HTTP API, for use without Telegram.
//!
//! Each line typed is a request: it becomes an agent task (`POST /v1/tasks {"prompt"}`), whose
//! events are followed (`GET /v1/tasks/{id}/events`) and shown as they happen — the model's plan,
//! the commands it runs with their risk tier and verdict, their output, approvals to decide, and
//! the answer. The server keeps the conversation, so the client keeps no history. Lines starting
//! with `/` are the chat's own commands (see [`line::HELP`]). Prompts are printed only when stdin
//! is a terminal, so piped input gives a clean transcript; end of input exits 0.
//!
//! Modules: [`api`] (the HTTP calls), [`stream`] and [`sse`] (reading the event stream),
//! [`follow`] (following one task), [`render`] and [`sanitize`] (what is shown), [`keyboard`] and
//! [`line`] (what is typed), [`screen`] (stdout).

mod api;
mod follow;
mod keyboard;
mod line;
mod render;
mod sanitize;
mod screen;
mod sse;
mod stream;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use domain::Id;
use tokio::signal::unix::{Signal, SignalKind, signal};

use self::api::{Api, ApiError};
use self::keyboard::{Input, Keyboard};
use self::line::Line;
use self::sanitize::sanitize;
use self::screen::Screen;
use crate::commands::Failure;
use crate::config::Settings;

/// The exit code after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

/// `agenticai chat`: exit 0 at the end of input or `/quit`; 2 without a token; 1 when the server
/// cannot be reached or refuses the token.
pub async fn run(settings: &Settings) -> Result<ExitCode, Failure> {
    let Some(token) = settings.token.clone() else {
        return Err(Failure {
            message: "`agenticai chat` needs an API token: set AGENTICAI_TOKEN (a token from \
                      `agenticai user create` or `agenticai token create`)"
                .to_owned(),
            code: 2,
        });
    };
    let api = Api::new(&settings.url, token)?;
    api.check()
        .await
        .map_err(|e| Failure::from(e.to_string()))?;
    let interrupts =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    let keyboard = Keyboard::start().map_err(|e| format!("cannot read stdin: {e}"))?;
    let mut session = Session {
        api,
        keyboard,
        screen: Screen::new(),
        interrupts,
        interactive: std::io::stdin().is_terminal(),
    };
    if session.interactive {
        let hello = format!(
            "connected to {}. Type a request for the agent; /help lists the commands, Ctrl-D leaves.",
            sanitize(session.api.base())
        );
        session.say(&hello)?;
    }
    session.converse().await
}

/// What to do after handling something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Go on: the next line, or the rest of the task's events.
    Continue,
    /// Leave with this exit code.
    Exit(u8),
}

/// One chat: the server, the keyboard and the screen.
struct Session {
    /// The server.
    api: Api,
    /// stdin.
    keyboard: Keyboard,
    /// stdout.
    screen: Screen,
    /// Ctrl-C (SIGINT); while it is watched, it no longer ends the process by itself.
    interrupts: Signal,
    /// Whether stdin is a terminal (then prompts are printed).
    interactive: bool,
}

impl Session {
    /// Reads and handles lines until the end of input, `/quit` or Ctrl-C.
    async fn converse(&mut self) -> Result<ExitCode, Failure> {
        loop {
            if self.interactive && !self.keyboard.has_queued() {
                self.screen.prompt("you> ").map_err(stdout_failed)?;
            }
            let input = tokio::select! {
                input = self.keyboard.next() => Some(input),
                _ = self.interrupts.recv() => None,
            };
            // Ctrl-D and Ctrl-C leave the cursor after the prompt; `/quit` was ended by Enter.
            let after_prompt = !matches!(input, Some(Input::Line(_)));
            let code = match input {
                Some(Input::Line(text)) => {
                    let next = match line::parse(&text) {
                        Line::Prompt(prompt) => self.request(&prompt).await?,
                        other => self.command(other, None).await?,
                    };
                    match next {
                        Next::Continue => continue,
                        Next::Exit(code) => code,
                    }
                }
                Some(Input::Eof) => 0,
                None => INTERRUPTED,
            };
            if self.interactive && after_prompt {
                self.say("")?;
            }
            return Ok(ExitCode::from(code));
        }
    }

    /// Acts on a line at once, except a request, which waits its turn in the keyboard's queue;
    /// `following` is the task whose events are being shown, if any.
    async fn command(&mut self, line: Line, following: Option<&Id>) -> Result<Next, Failure> {
        match line {
            Line::Blank => {}
            Line::Prompt(text) => self.keyboard.defer(Input::Line(text)),
            Line::Approve(id) => self.decide_typed(&id, true).await?,
            Line::Deny(id) => self.decide_typed(&id, false).await?,
            Line::Cancel => match following {
                Some(task_id) => self.cancel(task_id).await?,
                None => self.say("no task is running")?,
            },
            Line::Help => self.say(line::HELP)?,
            Line::Quit => return Ok(Next::Exit(0)),
            Line::Invalid(why) => self.say(&format!("{why}; /help lists the commands"))?,
        }
        Ok(Next::Continue)
    }

    /// Sends a request to the agent and follows the task it becomes.
    async fn request(&mut self, prompt: &str) -> Result<Next, Failure> {
        let task = match self.api.create_task(prompt).await {
            Ok(task) => task,
            Err(e @ (ApiError::Unauthorized | ApiError::Unreachable(_))) => {
                return Err(e.to_string().into());
            }
            Err(e) => {
                self.warn(&format!("the request was not accepted: {e}"))?;
                return Ok(Next::Continue);
            }
        };
        self.say(&format!("task {}", sanitize(task.task_id.as_str())))?;
        self.follow(task).await
    }

    /// `/approve ID` or `/deny ID`.
    async fn decide_typed(&mut self, approval_id: &str, approve: bool) -> Result<(), Failure> {
        match Id::parse(approval_id) {
            Ok(id) => self.decide(&id, approve).await,
            Err(e) => self.say(&format!(
                "{:?} is not an approval id: {e}",
                sanitize(approval_id)
            )),
        }
    }

    /// Approves or denies an approval, and says how it went.
    async fn decide(&mut self, approval_id: &Id, approve: bool) -> Result<(), Failure> {
        match self.api.decide(approval_id, approve).await {
            Ok(()) if approve => self.say(&format!("✓ approved {approval_id}")),
            Ok(()) => self.say(&format!("✓ denied {approval_id}")),
            Err(e) => self.refused("cannot decide the approval", e),
        }
    }

    /// Asks the server to cancel a task, and says how it went.
    async fn cancel(&mut self, task_id: &Id) -> Result<(), Failure> {
        match self.api.cancel(task_id).await {
            Ok(task) => self.say(&format!(
                "• cancel requested: task {task_id} is {}",
                task.status
            )),
            Err(e) => self.refused("cannot cancel the task", e),
        }
    }

    /// Reports an error answer: a refused token ends the chat, anything else is said on stderr.
    fn refused(&mut self, what: &str, error: ApiError) -> Result<(), Failure> {
        match error {
            ApiError::Unauthorized => Err(error.to_string().into()),
            other => self.warn(&format!("{what}: {other}")),
        }
    }

    /// Prints lines of the conversation (text already sanitised).
    fn say(&mut self, text: &str) -> Result<(), Failure> {
        self.screen.lines(text).map_err(stdout_failed)
    }

    /// Prints a problem on stderr, on a line of its own.
    fn warn(&mut self, text: &str) -> Result<(), Failure> {
        self.screen.end_line().map_err(stdout_failed)?;
        eprintln!("agenticai: {text}");
        Ok(())
    }
}

/// The failure when stdout cannot be written (e.g. the reader of a pipe went away).
fn stdout_failed(e: std::io::Error) -> Failure {
    format!("cannot write to stdout: {e}").into()
}
