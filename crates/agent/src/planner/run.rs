//! One agent task in a worker: load (or start) its state, then alternate between answering the
//! model's pending tool calls and asking the model for its next step, saving after each, until
//! the model answers, a limit is reached, the task waits for a person, or it is stopped.

use std::time::{Duration, Instant};

use domain::{
    ApprovalDecision, EnvironmentGrants, Id, IdKind, Task, TaskError, TaskResult, TaskStatus,
    Timestamp,
};
use executor::redact::Redactor;
use policy::gate::{Gated, Subject};
use policy::scan::ScanReport;
use serde_json::{Value, json};
use store::StoreError;
use store::approvals::NewApproval;
use store::audit::{self, NewAuditEvent};
use store::tasks::{self as task_store, SetStatusError, StatusChange};
use tokio::sync::watch;

use super::state::{Awaiting, State};
use super::tools::{self, ToolOutcome};
use super::{AgentSettings, context, prompt};
use crate::llm::{ChatMessage, ChatResponse, Finish, LlmError, ToolCall};
use crate::manager::ExecutionManager;
use crate::manager::recovery::{self, Next};
use crate::manager::supervise::{Stop, Supervisor};

/// Most tool calls of one model answer that are carried out; the rest are answered with an
/// error, so one answer cannot fan out into unbounded actions.
const MAX_CALLS_PER_ANSWER: usize = 8;
/// Most characters of the model's text kept in an audit event.
const AUDIT_TEXT_CHARS: usize = 2_000;

/// Why a run stopped before the task reached an end.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// From outside: cancelled, lease lost, or the server's shutdown.
    Stop(Stop),
    /// The database failed; the lease runs out and recovery resumes the task.
    Store(StoreError),
}

impl From<StoreError> for Stopped {
    fn from(e: StoreError) -> Self {
        Stopped::Store(e)
    }
}

/// What became of a pending tool call.
enum Answered {
    /// Its result is saved.
    Done,
    /// The task now waits for a person.
    Paused,
}

/// How a task left the worker.
enum End {
    /// Finished (answered or failed) or waiting for a person: already recorded.
    Recorded,
    /// Stopped before an end.
    Stopped(Stopped),
}

/// One agent task being worked on by this worker.
pub(crate) struct AgentRun<'a> {
    pub manager: &'a ExecutionManager,
    settings: &'a AgentSettings,
    pub task: Task,
    pub state: State,
    /// Turns true when the run must stop (see [`Supervisor`]).
    pub cancel: watch::Receiver<bool>,
    supervisor: Supervisor,
    /// The environment's grants (for the gate and the system prompt).
    grants: Option<EnvironmentGrants>,
    /// Every secret value the server stores, redacted from everything sent to the model.
    redactor: Redactor,
    /// When time was last added to the state's `active_ms`.
    clock: Instant,
}

impl ExecutionManager {
    /// Runs a claimed agent task until it answers, fails, waits for a person, or is stopped.
    pub(crate) async fn run_agent(&self, task: Task, hard_stop: watch::Receiver<bool>) {
        let Some(settings) = self.config().agent.clone() else {
            let error = TaskError {
                code: "agent_unavailable".to_owned(),
                message: "no language model is configured on this server \
                          (AGENTICAI_LLM_PROVIDER=none), so requests in plain words cannot be \
                          planned; send a command instead"
                    .to_owned(),
            };
            self.settle(&task, Next::Fail(error), "agent_unavailable")
                .await;
            return;
        };
        let (cancel_tx, cancel) = watch::channel(false);
        let supervisor = Supervisor::start(self, task.task_id.clone(), cancel_tx, hard_stop);
        let mut run = match AgentRun::start(self, &settings, task.clone(), cancel, supervisor).await
        {
            Ok(run) => run,
            Err(Err(error)) => {
                let reason = error.code.clone();
                self.settle(&task, Next::Fail(error), &reason).await;
                return;
            }
            Err(Ok(e)) => {
                tracing::warn!(task_id = %task.task_id, error = %e, "cannot start an agent task; recovery will resume it");
                return;
            }
        };
        match run.drive().await {
            End::Recorded => {}
            End::Stopped(Stopped::Stop(Stop::Shutdown)) => {
                if let Err(e) = run.save().await {
                    tracing::warn!(task_id = %task.task_id, error = ?e, "cannot save an agent task at shutdown");
                }
                let attempts = task_store::attempts(self.db(), &task.task_id)
                    .await
                    .unwrap_or(i64::MAX);
                let next = recovery::after_interruption(&task, attempts, Timestamp::now());
                self.settle(&task, next, "interrupted_by_shutdown").await;
            }
            End::Stopped(Stopped::Stop(stop)) => {
                tracing::info!(task_id = %task.task_id, ?stop, "agent task stopped");
            }
            End::Stopped(Stopped::Store(e)) => {
                tracing::warn!(task_id = %task.task_id, error = %e, "agent task interrupted by a database error; recovery will resume it");
            }
        }
    }
}

impl<'a> AgentRun<'a> {
    /// Loads the task's saved state, or starts it: the conversation window and the request
    /// (`Err(Ok)`: the database failed; `Err(Err)`: the task cannot run).
    async fn start(
        manager: &'a ExecutionManager,
        settings: &'a AgentSettings,
        task: Task,
        cancel: watch::Receiver<bool>,
        supervisor: Supervisor,
    ) -> Result<AgentRun<'a>, Result<StoreError, TaskError>> {
        let db = manager.db();
        let state = match store::agent_transcripts::load(db, &task.task_id)
            .await
            .map_err(Ok)?
        {
            Some(stored) => State::from_stored(&stored).map_err(|why| {
                Err(TaskError {
                    code: "transcript_unreadable".to_owned(),
                    message: why,
                })
            })?,
            None => {
                let window = context::earlier_turns(db, &task, settings.limits.context_tokens)
                    .await
                    .map_err(Ok)?;
                State::new(window, &task.input)
            }
        };
        let grants = match &task.environment {
            Some(name) => Some(
                store::environments::grants(db, name)
                    .await
                    .map_err(Ok)?
                    .ok_or_else(|| {
                        Err(TaskError {
                            code: "unknown_environment".to_owned(),
                            message: format!("the environment {name:?} no longer exists"),
                        })
                    })?,
            ),
            None => None,
        };
        let redactor = manager.provider_redactor().await.map_err(Ok)?;
        Ok(AgentRun {
            manager,
            settings,
            task,
            state,
            cancel,
            supervisor,
            grants,
            redactor,
            clock: Instant::now(),
        })
    }

    /// The loop.
    async fn drive(&mut self) -> End {
        loop {
            if let Some(stop) = self.stop_reason() {
                return End::Stopped(Stopped::Stop(stop));
            }
            if let Some((position, call)) = self.state.pending_call() {
                match self.answer(position, &call).await {
                    Ok(Answered::Paused) => return End::Recorded,
                    Ok(Answered::Done) => continue,
                    Err(stopped) => return End::Stopped(stopped),
                }
            }
            match self.next_step().await {
                Ok(true) => continue,
                Ok(false) => return End::Recorded,
                Err(stopped) => return End::Stopped(stopped),
            }
        }
    }

    /// Answers one pending tool call, the `position`th of its answer (or leaves the task waiting
    /// for a person).
    async fn answer(&mut self, position: usize, call: &ToolCall) -> Result<Answered, Stopped> {
        let outcome = if position >= MAX_CALLS_PER_ANSWER {
            ToolOutcome::error(format!(
                "Not done: at most {MAX_CALLS_PER_ANSWER} tool calls of one answer are carried \
                 out; ask again for the rest after seeing these results."
            ))
        } else if self.state.running.as_deref() == Some(call.id.as_str()) {
            self.state.running = None;
            ToolOutcome::error(
                "The server stopped while this command was running. It may or may not have \
                 taken effect, and it was not run again — check before trying again.",
            )
        } else {
            tools::call(self, call).await
        };
        match outcome {
            ToolOutcome::Paused => Ok(Answered::Paused),
            ToolOutcome::Stopped(stopped) => Err(stopped),
            ToolOutcome::Done {
                content,
                is_error,
                report,
            } => {
                self.state.messages.push(ChatMessage::ToolResult {
                    tool_call_id: call.id.clone(),
                    content: content.clone(),
                    is_error,
                });
                let event = json!({
                    "step": self.state.steps,
                    "tool": call.name,
                    "exit_code": report.exit_code,
                    "denied": report.denied,
                    "error": is_error.then_some(first_line(&content)),
                    "flagged": report.flagged,
                    "reasons": report.reasons,
                });
                self.write(Write {
                    events: vec![("tool_result", event)],
                    tier: report.started,
                    ..Write::default()
                })
                .await?;
                Ok(Answered::Done)
            }
        }
    }

    /// Asks the model for its next step. `Ok(true)`: go on; `Ok(false)`: the task ended.
    async fn next_step(&mut self) -> Result<bool, Stopped> {
        if let Some(error) = self.over_limit().await? {
            self.end(TaskStatus::Failed, None, error).await?;
            return Ok(false);
        }
        let response = match self.complete().await? {
            Ok(response) => response,
            Err(e) => {
                let code = if e.is_transient() {
                    "llm_unavailable"
                } else if matches!(e, LlmError::Misconfigured { .. }) {
                    "llm_misconfigured"
                } else {
                    "llm_error"
                };
                let error = TaskError {
                    code: code.to_owned(),
                    message: e.to_string(),
                };
                self.end(TaskStatus::Failed, None, error).await?;
                return Ok(false);
            }
        };
        self.state.steps += 1;
        self.state.tokens += response.usage.input_tokens + response.usage.output_tokens;
        let step = self.state.steps;
        let task_id = self.task.task_id.clone();
        let audit = plan_audit(step, &response).task(&task_id);
        if response.tool_calls.is_empty() {
            if response.finish == Finish::Refused {
                let error = TaskError {
                    code: "model_refused".to_owned(),
                    message: "the model declined to answer".to_owned(),
                };
                self.end(TaskStatus::Failed, Some(audit), error).await?;
                return Ok(false);
            }
            let answer = response
                .text
                .clone()
                .unwrap_or_else(|| "(The model gave no answer.)".to_owned());
            self.state.messages.push(ChatMessage::assistant(&response));
            let result = TaskResult {
                exit_code: 0,
                output: answer,
                truncated: response.finish == Finish::MaxTokens,
            };
            self.end(TaskStatus::Succeeded, Some(audit), result).await?;
            return Ok(false);
        }
        self.state.messages.push(ChatMessage::assistant(&response));
        let events = match &response.text {
            Some(text) => vec![("plan", json!({"step": step, "text": text}))],
            None => Vec::new(),
        };
        self.write(Write {
            events,
            audits: vec![audit],
            ..Write::default()
        })
        .await?;
        Ok(true)
    }

    /// One model call, unless the run is stopped first.
    async fn complete(&mut self) -> Result<Result<ChatResponse, LlmError>, Stopped> {
        let mut request = self.state.request(
            prompt::system_prompt(self.grants.as_ref()),
            tools::specs(),
            self.settings.limits.max_answer_tokens,
        );
        request.redact(&self.redactor);
        let provider = &self.settings.provider;
        let mut cancel = self.cancel.clone();
        tokio::select! {
            response = provider.complete(&request) => Ok(response),
            _ = cancel.wait_for(|stop| *stop) => Err(Stopped::Stop(self.stop_reason().unwrap_or(Stop::Canceled))),
        }
    }

    /// The limit this task has reached, if any.
    async fn over_limit(&mut self) -> Result<Option<TaskError>, Stopped> {
        let limits = &self.settings.limits;
        self.tick();
        let error = |code: &str, message: String| {
            Some(TaskError {
                code: code.to_owned(),
                message,
            })
        };
        if self.state.steps >= limits.max_steps {
            return Ok(error(
                "step_limit",
                format!(
                    "stopped after {} model steps, the most one request may take; ask again \
                     with a narrower request",
                    limits.max_steps
                ),
            ));
        }
        if self.state.tokens >= limits.max_task_tokens {
            return Ok(error(
                "token_limit",
                format!(
                    "stopped after using {} tokens, the most one request may use",
                    self.state.tokens
                ),
            ));
        }
        if Duration::from_millis(self.state.active_ms) >= limits.max_time {
            return Ok(error(
                "time_limit",
                format!(
                    "stopped after working {} s, the most one request may take",
                    limits.max_time.as_secs()
                ),
            ));
        }
        if let Some(daily) = limits.daily_user_tokens {
            let since = Timestamp::from_millis(Timestamp::now().as_millis() - 86_400_000);
            let used = store::agent_transcripts::tokens_since(
                self.manager.db(),
                &self.task.user_id,
                since,
            )
            .await?;
            if u64::try_from(used).unwrap_or(u64::MAX) >= daily {
                return Ok(error(
                    "daily_token_limit",
                    format!(
                        "you used {used} tokens in the last 24 hours, the most allowed is \
                         {daily}; try again later"
                    ),
                ));
            }
        }
        Ok(None)
    }

    /// Decides `command` for this task as things are now: the user's role and bypass, the org
    /// policy, the environment's grants (read again), the task's taint and scanner flag.
    pub async fn decide(&mut self, command: &str) -> Result<Gated, Stopped> {
        let db = self.manager.db();
        // The grants as they are now (an environment deleted meanwhile keeps the last ones; the
        // run is then refused with `unknown_environment`).
        if let Some(name) = &self.task.environment
            && let Some(fresh) = store::environments::grants(db, name).await?
        {
            self.grants = Some(fresh);
        }
        let user = store::users::get(db, &self.task.user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound("user".to_owned()))?;
        let org = store::policy::get(db).await?;
        let subject = Subject {
            role: user.role,
            bypass: user.bypass,
            tainted: self.state.tainted,
            flagged: self.state.flagged,
        };
        Ok(policy::gate::gate(
            subject,
            command,
            &org,
            self.grants.clone(),
        ))
    }

    /// Records the decision on a call that runs now or is refused (`tool_call` event,
    /// `action.decided` audit). The task's tier rises only when an action starts.
    pub async fn record_decision(&mut self, call: &ToolCall, gated: &Gated) -> Result<(), Stopped> {
        let task = self.task.clone();
        let event = self.call_event(call, gated);
        self.write(Write {
            events: vec![("tool_call", event)],
            audits: vec![decided_audit(&task, call, gated, self.state.steps)],
            ..Write::default()
        })
        .await
    }

    /// Asks for an approval of `gated` and puts the task in WAITING_APPROVAL, all in one
    /// transaction with the saved state.
    pub async fn pause_for_approval(
        &mut self,
        call: &ToolCall,
        gated: &Gated,
    ) -> Result<(), Stopped> {
        let approval_id = Id::generate(IdKind::Approval).map_err(|e| {
            Stopped::Store(StoreError::Conflict(format!(
                "no randomness for an id: {e}"
            )))
        })?;
        let approval = NewApproval {
            action_hash: gated.action_hash(),
            grants: gated.grants_json(),
            approval: gated.approval(
                approval_id.clone(),
                self.task.task_id.clone(),
                self.task.user_id.clone(),
                Timestamp::now(),
            ),
        };
        self.state.awaiting = Some(Awaiting {
            call_id: call.id.clone(),
            approval_id: approval_id.clone(),
            command: gated.action.clone(),
            tier: gated.classification.tier,
        });
        let task = self.task.clone();
        let events = vec![
            ("tool_call", self.call_event(call, gated)),
            (
                "approval",
                json!({
                    "approval_id": approval_id,
                    "action": gated.action,
                    "risk_tier": gated.classification.tier,
                    "environment": gated.environment(),
                    "rationale": gated.rationale(),
                }),
            ),
        ];
        self.write(Write {
            events,
            audits: vec![decided_audit(&task, call, gated, self.state.steps)],
            approval: Some(&approval),
            status: Some((
                TaskStatus::WaitingApproval,
                StatusChange {
                    reason: Some("approval_required".to_owned()),
                    ..StatusChange::default()
                },
            )),
            ..Write::default()
        })
        .await
    }

    /// The decision on an approval this task waited for.
    pub async fn approval_decision(
        &self,
        approval_id: &Id,
    ) -> Result<Option<ApprovalDecision>, Stopped> {
        let mut tx = self.manager.db().begin().await?;
        let binding = store::approvals::binding(&mut tx, approval_id).await?;
        tx.rollback().await?;
        Ok(binding.and_then(|b| b.decision))
    }

    /// Audits the scanner's findings on tool output (`tool_output.flagged`), with the state.
    pub async fn audit_flagged(&mut self, report: &ScanReport) -> Result<(), Stopped> {
        let data = json!({
            "source": "tool_output",
            "step": self.state.steps,
            "reasons": report.reasons,
            "categories": report.categories,
        });
        self.audit("tool_output.flagged", data).await
    }

    /// Audits `kind` for this task, with the state, in one transaction.
    pub async fn audit(&mut self, kind: &str, data: Value) -> Result<(), Stopped> {
        let task = self.task.clone();
        let event = NewAuditEvent::new(kind, data).task(&task.task_id);
        self.write(Write {
            audits: vec![event],
            ..Write::default()
        })
        .await
    }

    /// Stores and publishes a task event (progress only; a lost one loses no outcome).
    pub async fn event(&self, kind: &str, data: Value) {
        self.manager
            .record_event(&self.task.task_id, kind, data)
            .await;
    }

    /// Saves the state.
    pub async fn save(&mut self) -> Result<(), Stopped> {
        self.write(Write::default()).await
    }

    /// Ends the task: SUCCEEDED with the answer, or FAILED with `error`.
    async fn end(
        &mut self,
        status: TaskStatus,
        plan: Option<NewAuditEvent<'_>>,
        outcome: impl Into<Ending>,
    ) -> Result<(), Stopped> {
        let (result, error) = match outcome.into() {
            Ending::Answer(result) => (Some(result), None),
            Ending::Error(error) => (None, Some(error)),
        };
        let events = match &result {
            Some(result) => vec![("answer", json!({"text": result.output}))],
            None => Vec::new(),
        };
        let reason = error.as_ref().map(|e| e.code.clone());
        self.write(Write {
            events,
            audits: plan.into_iter().collect(),
            status: Some((
                status,
                StatusChange {
                    result,
                    error,
                    reason,
                    ..StatusChange::default()
                },
            )),
            ..Write::default()
        })
        .await
    }

    /// Writes one step in one transaction — audit records, an approval asked for, the task's
    /// tier and approval, a status change, the saved state, task events — if this worker still
    /// holds the task (else nothing is written and the run stops: another worker took it over,
    /// or it was cancelled); publishes the events after the commit.
    async fn write(&mut self, step: Write<'_, '_>) -> Result<(), Stopped> {
        self.tick();
        let stored = self.stored()?;
        let task_id = self.task.task_id.clone();
        let mut tx = self.manager.db().begin().await?;
        if !task_store::hold_lease(&mut tx, &task_id, &self.manager.config().worker_id).await? {
            return Err(Stopped::Stop(self.stop_reason().unwrap_or(Stop::LeaseLost)));
        }
        audit::append_many(&mut tx, step.audits).await?;
        if let Some(approval) = step.approval {
            store::approvals::ask(&mut tx, approval).await?;
        }
        if step.tier.is_some() || step.approval.is_some() {
            let approval_id = step.approval.map(|a| &a.approval.approval_id);
            task_store::record_agent_action(&mut tx, &task_id, step.tier, approval_id).await?;
        }
        if let Some((status, change)) = step.status {
            match task_store::set_status(&mut tx, &task_id, status, change, None).await {
                Ok(_) => {}
                Err(SetStatusError::Store(e)) => return Err(e.into()),
                // Cancelled meanwhile: the cancel stands, nothing of this is kept.
                Err(_) => return Err(Stopped::Stop(Stop::Canceled)),
            }
        }
        store::agent_transcripts::save(&mut tx, &self.task, &stored).await?;
        let mut appended = Vec::new();
        for (kind, data) in step.events {
            appended.push(store::task_events::append(&mut tx, &task_id, kind, data).await?);
        }
        tx.commit().await?;
        self.manager.publish(&appended).await;
        Ok(())
    }

    /// Why the run must stop, if it must.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.supervisor.stop_reason()
    }

    /// The `tool_call` event of a decided shell call.
    fn call_event(&self, call: &ToolCall, gated: &Gated) -> Value {
        json!({
            "step": self.state.steps,
            "tool": call.name,
            "command": gated.action,
            "risk_tier": gated.classification.tier,
            "verdict": gated.decision.verdict,
            "rationale": gated.rationale(),
        })
    }

    fn stored(&self) -> Result<store::agent_transcripts::Transcript, Stopped> {
        self.state.to_stored().map_err(|e| {
            Stopped::Store(StoreError::Conflict(format!(
                "cannot encode the transcript: {e}"
            )))
        })
    }

    /// Adds the time since the last tick to the task's active time.
    fn tick(&mut self) {
        let elapsed = self.clock.elapsed();
        self.clock = Instant::now();
        self.state.active_ms = self
            .state
            .active_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }
}

/// What one step writes besides the state (see [`AgentRun::write`]).
#[derive(Default)]
struct Write<'e, 'a> {
    /// Task events, published after the commit.
    events: Vec<(&'static str, Value)>,
    /// Audit records.
    audits: Vec<NewAuditEvent<'a>>,
    /// An approval asked for (it also becomes the task's approval).
    approval: Option<&'e NewApproval>,
    /// The tier of an action that started (raises the task's tier).
    tier: Option<domain::RiskTier>,
    /// A status change.
    status: Option<(TaskStatus, StatusChange)>,
}

/// What a task ends with.
enum Ending {
    Answer(TaskResult),
    Error(TaskError),
}

impl From<TaskResult> for Ending {
    fn from(r: TaskResult) -> Self {
        Ending::Answer(r)
    }
}

impl From<TaskError> for Ending {
    fn from(e: TaskError) -> Self {
        Ending::Error(e)
    }
}

/// `plan.step`: what the model answered at one step (audited; text shortened).
fn plan_audit(step: u32, response: &ChatResponse) -> NewAuditEvent<'static> {
    NewAuditEvent::new(
        "plan.step",
        json!({
            "step": step,
            "text": response.text.as_deref().map(|t| t.chars().take(AUDIT_TEXT_CHARS).collect::<String>()),
            "tool_calls": response.tool_calls.iter().map(|c| json!({"tool": c.name, "arguments": c.arguments})).collect::<Vec<_>>(),
            "finish": format!("{:?}", response.finish),
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
        }),
    )
}

/// `action.decided` for a call the model proposed.
fn decided_audit<'t>(
    task: &'t Task,
    call: &ToolCall,
    gated: &Gated,
    step: u32,
) -> NewAuditEvent<'t> {
    let mut data = gated.audit_data();
    if let Value::Object(map) = &mut data {
        map.insert("proposed_by".into(), json!("model"));
        map.insert("tool_call_id".into(), json!(call.id));
        map.insert("step".into(), json!(step));
    }
    NewAuditEvent::new("action.decided", data)
        .actor(&task.user_id)
        .task(&task.task_id)
}

/// The first line of `text`, shortened, for event summaries.
fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}
