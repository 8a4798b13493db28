//! The agent loop's own cost per step, without the model and without the sandbox.
//!
//! Agent tasks run through the real execution manager (`ExecutionManager::run`, workers claiming
//! from the database), created through the coordinator, on a fresh SQLite database (WAL
//! checkpointed in the background every 200 ms, as the server does) or, with
//! `AGENTICAI_TEST_DATABASE=postgres`, a fresh schema on the test Postgres (see
//! `store::testing`). The model is an in-process [`ScriptedModel`] that answers at once:
//! `--steps` answers with one tool call each, then a final text, so a task makes `steps + 1`
//! model calls. Every step carries what a real step costs: the limit checks (the user's daily
//! tokens are read), the request built from the transcript (earlier turns of the conversation
//! included), the plan audited, the gate's decision (user and org policy read) with its
//! `action.decided` audit and `tool_call` event, the transcript saved after each change, the
//! events published on the bus (a subscriber watches every task, as a chat client would). The
//! manager has no sandbox, so an allowed `shell` call is decided, recorded, saved as running and
//! then answered "Not run (sandbox_unavailable)" without running anything: sandbox time is zero
//! by construction.
//!
//! What is timed, with `Instant`s only. Each step is measured directly rather than derived from
//! task wall time minus model time: the model records when each call came in and when it
//! answered, so the interval between two calls of one task is exactly the loop's own time, with
//! no subtraction and a figure (and a tail) per step.
//! * **step**: from the model's answer with a tool call being returned to the loop calling the
//!   model again — handling that tool call, saving, the next step's checks and request. Measured
//!   for every step but the last of every counted task.
//! * **start**: from `create_task` returning to the first model call (wake-up on the bus, claim,
//!   loading the conversation window, the first request); **end**: from the final answer being
//!   returned to the `answer` event reaching the subscriber (the SUCCEEDED transaction).
//! * **per model call, whole task**: (`create_task` returned → `answer` event received − time
//!   inside the model) / model calls — the same cost from the task's wall time, start and end
//!   spread over the steps.
//! * **parts** (after the allowed-`shell` scenario): the same database statements and gate as
//!   an allowed `shell` step, repeated in order and timed one by one — where a step's time goes —
//!   and what a real sandbox run adds around the sandbox (`action.started`, an `output` event,
//!   `action.executed`), which the step figures do not contain.
//!
//! Scenarios: the model's tool calls are an allowed L0 `shell` command, a `shell` command the
//! policy denies, or `reply`; one task at a time with one worker (latency), then all tasks queued
//! at once for `--workers` workers (two cores saturated: a step's latency then includes waiting
//! for the other tasks' steps). The first [`WARMUP`] tasks of a scenario are not counted. Target:
//! < 5 ms per step.
//!
//! `CARGO_TARGET_DIR=/work/bench-target cargo bench -p agent --bench agent_step`
//! (`-- --tasks 200 --steps 10 --workers 4` are the defaults; prefix
//! `AGENTICAI_TEST_DATABASE=postgres` for Postgres, which leaves a `t_…` schema in the `test`
//! database).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::llm::{
    BoxFuture, ChatMessage, ChatRequest, ChatResponse, Finish, LlmError, LlmProvider, ToolCall,
    Usage, WireFormat,
};
use agent::planner::{AgentLimits, AgentSettings};
use agent::{ExecutionManager, ManagerConfig};
use coordinator::{Actor, Coordinator, NewTask};
use domain::{Id, Role, TaskInput, TaskStatus, User};
use executor::{Limits, Workspaces};
use policy::decision::Verdict;
use policy::gate::Subject;
use serde_json::json;
use store::Db;
use store::bus::{Bus, EventStream};
use tokio::sync::watch;

/// Tasks per scenario run before the counted ones.
const WARMUP: usize = 20;
/// Longest wait for one task's answer before the bench gives up.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// The allowed (L0) command.
const ALLOWED: &str = "ls /workspace";
/// A command the default org policy denies a member outright (checked at start).
const DENIED: &str = "rm -rf /";

/// What the scripted model asks for at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    /// `shell` with [`ALLOWED`].
    ShellAllowed,
    /// `shell` with [`DENIED`].
    ShellDenied,
    /// `reply` with a short message.
    Reply,
}

impl Tool {
    /// How the scenario is named in the output.
    fn describe(self) -> &'static str {
        match self {
            Tool::ShellAllowed => "shell `ls /workspace` (L0, allowed; no sandbox: not run)",
            Tool::ShellDenied => "shell `rm -rf /` (denied by the policy)",
            Tool::Reply => "reply (a message to the user)",
        }
    }

    /// The tool call of the model's answer at `step` (from 0).
    fn call(self, step: usize) -> ToolCall {
        let (name, arguments) = match self {
            Tool::ShellAllowed => ("shell", json!({ "command": ALLOWED })),
            Tool::ShellDenied => ("shell", json!({ "command": DENIED })),
            Tool::Reply => (
                "reply",
                json!({ "text": format!("Working on it, step {step}.") }),
            ),
        };
        ToolCall {
            id: format!("call_{step}"),
            name: name.to_owned(),
            arguments,
        }
    }

    /// Whether `content` is the tool result this tool gives without a sandbox.
    fn expected(self, content: &str) -> bool {
        match self {
            Tool::ShellAllowed => content.contains("sandbox_unavailable"),
            Tool::ShellDenied => content.contains("policy refused"),
            Tool::Reply => content.contains("delivered"),
        }
    }
}

/// One model call as the scripted model saw it.
#[derive(Debug, Clone, Copy)]
struct Call {
    task: usize,
    step: usize,
    entered: Instant,
    left: Instant,
}

/// A model that answers at once from a script, and records when each call came in and left.
#[derive(Debug)]
struct ScriptedModel {
    /// Tool-call answers before the final text.
    steps: usize,
    tool: Tool,
    calls: Mutex<Vec<Call>>,
    /// Calls whose request did not look as the script expects (wrong tool result, no task
    /// number): the bench fails if there are any.
    surprises: Mutex<Vec<String>>,
}

impl ScriptedModel {
    /// A model that asks for `tool` `steps` times per task, then answers.
    fn new(steps: usize, tool: Tool) -> ScriptedModel {
        ScriptedModel {
            steps,
            tool,
            calls: Mutex::new(Vec::new()),
            surprises: Mutex::new(Vec::new()),
        }
    }

    /// Notes a request that does not look as the script expects.
    fn surprise(&self, what: String) {
        if let Ok(mut s) = self.surprises.lock() {
            s.push(what);
        }
    }

    /// The answer to `request`, and the task and step it belongs to.
    fn answer(&self, request: &ChatRequest) -> (usize, usize, ChatResponse) {
        // The task's own messages start at its request: the last user message (the earlier
        // turns of the conversation come before it).
        let start = request
            .messages
            .iter()
            .rposition(|m| matches!(m, ChatMessage::User { .. }))
            .unwrap_or(0);
        let own = &request.messages[start..];
        let task = match own.first() {
            Some(ChatMessage::User { text }) => parse_task_number(text),
            _ => None,
        };
        let task = task.unwrap_or_else(|| {
            self.surprise("a request without a task number".to_owned());
            usize::MAX
        });
        let step = own
            .iter()
            .filter(|m| matches!(m, ChatMessage::Assistant { .. }))
            .count();
        if step > 0 {
            match own.last() {
                Some(ChatMessage::ToolResult { content, .. }) if self.tool.expected(content) => {}
                other => self.surprise(format!("task {task} step {step}: last message {other:?}")),
            }
        }
        let usage = Usage {
            input_tokens: 200,
            output_tokens: 20,
        };
        let response = if step < self.steps {
            ChatResponse {
                text: Some(format!("Step {step}: looking around.")),
                tool_calls: vec![self.tool.call(step)],
                finish: Finish::ToolUse,
                usage,
            }
        } else {
            ChatResponse {
                text: Some(format!("Done with task {task}.")),
                tool_calls: Vec::new(),
                finish: Finish::Stop,
                usage,
            }
        };
        (task, step, response)
    }
}

impl LlmProvider for ScriptedModel {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        let entered = Instant::now();
        let (task, step, response) = self.answer(request);
        let left = Instant::now();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call {
                task,
                step,
                entered,
                left,
            });
        }
        Box::pin(async move { Ok(response) })
    }

    fn wire_format(&self) -> WireFormat {
        WireFormat::OpenAi
    }

    fn model(&self) -> &str {
        "scripted"
    }
}

/// The prompt of task `n`.
fn prompt(n: usize) -> String {
    format!("bench task {n}: look at the workspace and tell me what is there")
}

/// The task number in a prompt made by [`prompt`].
fn parse_task_number(text: &str) -> Option<usize> {
    text.strip_prefix("bench task ")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

/// One scenario's settings.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    tool: Tool,
    tasks: usize,
    steps: usize,
    /// Workers; with more than one, every task is queued before the workers start.
    workers: usize,
}

/// When one task was created and when its answer arrived.
#[derive(Debug, Clone, Copy)]
struct Span {
    created: Instant,
    answered: Instant,
}

/// A database with an org and a member, a coordinator, and a manager around the scripted model.
struct Deployment {
    coord: Coordinator,
    manager: ExecutionManager,
    bus: Bus,
    user: User,
    db: Db,
    _dir: tempfile::TempDir,
}

/// Sets up a [`Deployment`] whose manager plans with `model`, with the scenario's
/// workers (step limit: the script's calls).
async fn deploy(model: Arc<ScriptedModel>, scenario: &Scenario) -> Deployment {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store::testing::fresh_database(dir.path()).await;
    let bus = Bus::in_process();
    let coord = Coordinator::new(db.clone(), bus.clone());
    coord.init_org("Bench", "root").await.expect("org init");
    let user = coord
        .create_user(Actor::Operator, "bob", Role::Member)
        .await
        .expect("create user")
        .0;
    let limits = AgentLimits {
        max_steps: u32::try_from(scenario.steps + 1).expect("steps"),
        ..AgentLimits::default()
    };
    let config = ManagerConfig {
        worker_id: "wrk-bench".to_owned(),
        max_concurrent: scenario.workers,
        max_per_user: None,
        lease: Duration::from_secs(30),
        task_timeout: Duration::from_secs(10),
        output_limit: 64 * 1024,
        limits: Limits::default(),
        runtime_dir: dir.path().join("run"),
        agent: Some(AgentSettings {
            provider: model,
            limits,
        }),
    };
    let workspaces = Workspaces::new(dir.path().join("workspaces"), 1 << 30, None);
    let manager = ExecutionManager::new(
        config,
        db.clone(),
        bus.clone(),
        Err("sandbox_missing".to_owned()),
        None,
        workspaces,
    );
    Deployment {
        coord,
        manager,
        bus,
        user,
        db,
        _dir: dir,
    }
}

impl Deployment {
    /// Creates task `n` and subscribes to its events.
    async fn create(&self, n: usize) -> (Id, EventStream, Instant) {
        let task = self
            .coord
            .create_task(
                &self.user,
                NewTask {
                    input: TaskInput::Prompt(prompt(n)),
                    environment: None,
                    idempotency_key: None,
                },
            )
            .await
            .expect("create task")
            .0;
        let created = Instant::now();
        let events = self.bus.subscribe(&task.task_id).await.expect("subscribe");
        (task.task_id, events, created)
    }
}

/// Waits for the `answer` event of a task; panics with its state when it does not come.
async fn answered(db: Db, task_id: Id, mut events: EventStream) -> Instant {
    let wait = async {
        while let Some(event) = events.next().await {
            if event.kind == "answer" {
                return Some(Instant::now());
            }
        }
        None
    };
    match tokio::time::timeout(TASK_TIMEOUT, wait).await {
        Ok(Some(at)) => at,
        _ => {
            let task = store::tasks::get(&db, &task_id).await;
            panic!("task {task_id} gave no answer: {task:?}");
        }
    }
}

/// Runs one scenario and prints its figures (and, for allowed `shell` calls one task at a time,
/// the parts of a step).
async fn run(scenario: Scenario) {
    let model = Arc::new(ScriptedModel::new(scenario.steps, scenario.tool));
    let d = deploy(Arc::clone(&model), &scenario).await;
    if scenario.tool == Tool::ShellDenied {
        let org = store::policy::get(&d.db).await.expect("org policy");
        let gated = policy::gate::gate(
            Subject::direct(d.user.role, d.user.bypass),
            DENIED,
            &org,
            None,
        );
        assert_eq!(
            gated.decision.verdict,
            Verdict::Deny,
            "{DENIED:?} must be denied outright for this scenario"
        );
    }
    let total = WARMUP + scenario.tasks;
    let (stop_checkpoints, checkpoints_stopped) = watch::channel(false);
    let checkpointer = tokio::spawn(checkpoint(d.db.clone(), checkpoints_stopped));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let workers = tokio::spawn(d.manager.clone().run(shutdown_rx, Duration::from_secs(5)));
    for n in 0..WARMUP {
        let (task_id, events, _) = d.create(n).await;
        answered(d.db.clone(), task_id, events).await;
    }
    let mut spans = Vec::new();
    let mut last_task = None;
    if scenario.workers == 1 {
        for n in WARMUP..total {
            let (task_id, events, created) = d.create(n).await;
            last_task = Some(task_id.clone());
            let answered = answered(d.db.clone(), task_id, events).await;
            spans.push((n, Span { created, answered }));
        }
        let _ = shutdown_tx.send(true);
        let _ = workers.await;
    } else {
        // The counted tasks are all queued while no worker runs, then the workers start.
        let _ = shutdown_tx.send(true);
        let _ = workers.await;
        let mut pending = Vec::new();
        for n in WARMUP..total {
            pending.push((n, d.create(n).await));
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let workers = tokio::spawn(d.manager.clone().run(shutdown_rx, Duration::from_secs(5)));
        let started = Instant::now();
        let mut waiting = tokio::task::JoinSet::new();
        for (n, (task_id, events, _)) in pending {
            let db = d.db.clone();
            waiting.spawn(async move { (n, answered(db, task_id, events).await) });
        }
        while let Some(joined) = waiting.join_next().await {
            let (n, answered) = joined.expect("waiting for an answer");
            // Under load a task's span starts when the workers start: queueing is part of it.
            spans.push((
                n,
                Span {
                    created: started,
                    answered,
                },
            ));
        }
        let _ = shutdown_tx.send(true);
        let _ = workers.await;
    }
    let first = spans.iter().map(|(_, s)| s.created).min();
    let last = spans.iter().map(|(_, s)| s.answered).max();
    let wall = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    let counts = store::tasks::count_by_status(&d.db).await.expect("count");
    let succeeded = counts
        .iter()
        .find(|(s, _)| *s == TaskStatus::Succeeded)
        .map_or(0, |(_, n)| *n);
    assert_eq!(
        succeeded,
        i64::try_from(total).expect("tasks"),
        "every task SUCCEEDED: {counts:?}"
    );
    let calls = model.calls.lock().map(|c| c.clone()).unwrap_or_default();
    let surprises = model
        .surprises
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    assert!(
        surprises.is_empty(),
        "the loop did not behave as scripted: {surprises:?}"
    );
    report(&scenario, &calls, &spans, wall);
    if scenario.tool == Tool::ShellAllowed
        && let Some(task_id) = last_task
    {
        // On a runtime worker, as the loop runs (not on the thread that blocks on the bench).
        let d = Arc::new(d);
        let timed = tokio::spawn(async move { parts(&d, &task_id).await });
        timed.await.expect("timing the parts");
    }
    let _ = stop_checkpoints.send(true);
    let _ = checkpointer.await;
}

/// Checkpoints SQLite's write-ahead log every 200 ms, as a serving process does
/// (`server::background::spawn_checkpointer`), so that commits do not pay for checkpoints.
async fn checkpoint(db: Db, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = db.checkpoint().await {
            eprintln!("checkpoint failed: {e}");
        }
    }
}

/// What [`parts`] times, in the order a step does it; the first [`STEP_PARTS`] are the step's
/// own, the rest is what a real sandbox run adds around the sandbox.
const PARTS: [&str; 11] = [
    "daily tokens read (limit check)",
    "plan: audit + transcript + event, commit",
    "gate reads (user, org policy)",
    "gate (normalise, classify, decide)",
    "decision: audit + tier + transcript + event",
    "save before the launch: transcript, commit",
    "result: transcript + event, commit",
    "+ sandbox: reads before the launch",
    "+ sandbox: `action.started`, commit",
    "+ sandbox: one `output` event, commit",
    "+ sandbox: `action.executed`, commit",
];
/// How many of [`PARTS`] a step without a sandbox does.
const STEP_PARTS: usize = 7;

/// Lap times of the parts of one step.
struct Laps {
    last: Instant,
    samples: Vec<Vec<Duration>>,
}

impl Laps {
    /// Ends part `i` now.
    fn lap(&mut self, i: usize) {
        let now = Instant::now();
        self.samples[i].push(now - self.last);
        self.last = now;
    }
}

/// Does, step after step, the database work and the gate of one allowed `shell` step as the loop
/// does it (same statements in the same order, similar sizes: the transcript is a finished
/// task's), timing each part, to see where a step's time goes; then the bookkeeping a real
/// sandbox run adds around the sandbox (the reads and audits of `ExecutionManager::prepare` and
/// `audit_only`, one `output` event), which the step figures above do not contain. What the
/// parts leave out of a measured step: building the request, encoding the transcript, the tool
/// call's own code, and handing the task between threads.
async fn parts(d: &Deployment, task_id: &Id) {
    const RUNS: usize = 500;
    let task = store::tasks::get(&d.db, task_id)
        .await
        .expect("read the task")
        .expect("the task");
    let transcript = store::agent_transcripts::load(&d.db, &task.task_id)
        .await
        .expect("load transcript")
        .expect("a saved transcript");
    let subject = Subject::direct(d.user.role, d.user.bypass);
    let task_id = &task.task_id;
    // Every write of the loop first checks that the worker still holds the task (one guarded
    // UPDATE; here on a finished task it matches no row) and then saves the transcript.
    let save = async |tx: &mut store::Tx| {
        store::tasks::hold_lease(tx, &task.task_id, "wrk-bench")
            .await
            .expect("lease check");
        store::agent_transcripts::save(tx, &task, &transcript)
            .await
            .expect("save");
    };
    let event = async |tx: &mut store::Tx, kind: &str, data: serde_json::Value| {
        store::task_events::append(tx, task_id, kind, data)
            .await
            .expect("event")
    };
    let audit = async |tx: &mut store::Tx, kind: &'static str, data: serde_json::Value| {
        let event = store::audit::NewAuditEvent::new(kind, data)
            .actor(&d.user.user_id)
            .task(task_id);
        store::audit::append_many(tx, vec![event])
            .await
            .expect("audit");
    };
    let mut laps = Laps {
        last: Instant::now(),
        samples: vec![Vec::with_capacity(RUNS); PARTS.len()],
    };
    let mut totals = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let began = Instant::now();
        laps.last = began;
        let since = domain::Timestamp::from_millis(domain::Timestamp::now().as_millis() - 1);
        store::agent_transcripts::tokens_since(&d.db, &d.user.user_id, since)
            .await
            .expect("tokens");
        laps.lap(0);

        let mut tx = d.db.begin().await.expect("begin");
        let plan = json!({"step": 1, "text": "Step 1: looking around.",
            "tool_calls": [{"tool": "shell", "arguments": {"command": ALLOWED}}],
            "finish": "ToolUse", "input_tokens": 200, "output_tokens": 20});
        audit(&mut tx, "plan.step", plan).await;
        save(&mut tx).await;
        let planned = event(
            &mut tx,
            "plan",
            json!({"step": 1, "text": "Step 1: looking around."}),
        )
        .await;
        tx.commit().await.expect("commit");
        d.bus.publish(&planned).await.expect("publish");
        laps.lap(1);

        store::users::get(&d.db, &d.user.user_id)
            .await
            .expect("user");
        let org_now = store::policy::get(&d.db).await.expect("policy");
        laps.lap(2);

        let gated = policy::gate::gate(subject, std::hint::black_box(ALLOWED), &org_now, None);
        laps.lap(3);

        let mut tx = d.db.begin().await.expect("begin");
        audit(&mut tx, "action.decided", gated.audit_data()).await;
        save(&mut tx).await;
        let called = event(
            &mut tx,
            "tool_call",
            json!({"step": 1, "tool": "shell", "command": gated.action,
                   "risk_tier": gated.classification.tier, "verdict": gated.decision.verdict,
                   "rationale": gated.rationale()}),
        )
        .await;
        tx.commit().await.expect("commit");
        d.bus.publish(&called).await.expect("publish");
        laps.lap(4);

        let mut tx = d.db.begin().await.expect("begin");
        save(&mut tx).await;
        tx.commit().await.expect("commit");
        laps.lap(5);

        let mut tx = d.db.begin().await.expect("begin");
        store::tasks::record_agent_action(&mut tx, task_id, Some(gated.classification.tier), None)
            .await
            .expect("tier");
        save(&mut tx).await;
        let result = event(
            &mut tx,
            "tool_result",
            json!({"step": 1, "tool": "shell", "exit_code": null, "denied": false,
                   "error": "Not run (sandbox_unavailable): no sandbox", "flagged": false,
                   "reasons": []}),
        )
        .await;
        tx.commit().await.expect("commit");
        d.bus.publish(&result).await.expect("publish");
        laps.lap(6);
        totals.push(began.elapsed());

        store::tasks::attempts(&d.db, task_id)
            .await
            .expect("attempts");
        store::policy::get(&d.db).await.expect("policy");
        laps.lap(7);

        let mut tx = d.db.begin().await.expect("begin");
        let started = json!({"action": ALLOWED, "environment": null, "approval_id": null,
            "attempt": 1, "worker": "wrk-bench"});
        audit(&mut tx, "action.started", started).await;
        tx.commit().await.expect("commit");
        laps.lap(8);

        let mut tx = d.db.begin().await.expect("begin");
        let output = event(&mut tx, "output", json!({"text": "bin\netc\nnotes.txt\n"})).await;
        tx.commit().await.expect("commit");
        d.bus.publish(&output).await.expect("publish");
        laps.lap(9);

        let mut tx = d.db.begin().await.expect("begin");
        let executed = json!({"exit_code": 0, "duration_ms": 12, "timed_out": false,
            "oom_killed": false, "output_bytes": 20, "truncated": false, "attempt": 1,
            "stopped": null, "denied_egress": null});
        audit(&mut tx, "action.executed", executed).await;
        tx.commit().await.expect("commit");
        laps.lap(10);
    }
    println!(
        "  parts of an allowed shell step, done in order {RUNS} times (transcript {} bytes):",
        transcript.state.len()
    );
    let mut sandbox = Duration::ZERO;
    for (i, (name, mut samples)) in PARTS.iter().zip(laps.samples).enumerate() {
        samples.sort();
        let p50 = percentile(&samples, 0.5);
        if i >= STEP_PARTS {
            sandbox += p50;
        }
        println!(
            "    {name:<46} p50 {:>6.3} ms  p99 {:>6.3} ms",
            ms(p50),
            ms(percentile(&samples, 0.99))
        );
        if i + 1 == STEP_PARTS {
            totals.sort();
            println!(
                "    {:<46} p50 {:>6.3} ms  p99 {:>6.3} ms",
                "all of the step's parts",
                ms(percentile(&totals, 0.5)),
                ms(percentile(&totals, 0.99))
            );
        }
    }
    println!(
        "    {:<46} p50 {:>6.3} ms (sum of the p50s)",
        "what a real sandbox run adds",
        ms(sandbox)
    );
}

/// The `p` quantile of sorted samples (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One line of figures: p50, p99, mean, max.
fn line(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    println!(
        "  {name:<44} p50 {:>6.3} ms  p99 {:>6.3} ms  mean {:>6.3} ms  max {:>7.3} ms  (n={n})",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(mean),
        ms(samples.last().copied().unwrap_or_default()),
    );
}

/// Prints a scenario's figures: steps (the intervals between a task's model calls), starts,
/// ends, and the whole-task cost per model call.
fn report(scenario: &Scenario, calls: &[Call], spans: &[(usize, Span)], wall: Duration) {
    println!(
        "{} — {} tasks × {} tool steps + 1 answer, {} worker{}{}",
        scenario.tool.describe(),
        scenario.tasks,
        scenario.steps,
        scenario.workers,
        if scenario.workers == 1 { "" } else { "s" },
        if scenario.workers == 1 {
            ", one task at a time"
        } else {
            ", all queued at once"
        }
    );
    let mut by_task: std::collections::HashMap<usize, Vec<Call>> = Default::default();
    for c in calls {
        by_task.entry(c.task).or_default().push(*c);
    }
    let mut steps = Vec::new();
    let mut by_step: Vec<Vec<Duration>> = vec![Vec::new(); scenario.steps];
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut per_call = Vec::new();
    let mut model_time = Duration::ZERO;
    for (n, span) in spans {
        let Some(task_calls) = by_task.get_mut(n) else {
            panic!("task {n} has no model calls");
        };
        task_calls.sort_by_key(|c| c.step);
        assert_eq!(
            task_calls.len(),
            scenario.steps + 1,
            "model calls of task {n}"
        );
        for (k, pair) in task_calls.windows(2).enumerate() {
            let gap = pair[1].entered - pair[0].left;
            steps.push(gap);
            by_step[k].push(gap);
        }
        let first = task_calls[0];
        let last = task_calls[task_calls.len() - 1];
        if scenario.workers == 1 {
            starts.push(first.entered - span.created);
        }
        ends.push(span.answered - last.left);
        let model: Duration = task_calls.iter().map(|c| c.left - c.entered).sum();
        model_time += model;
        if scenario.workers == 1 {
            let wall = span.answered - span.created;
            per_call.push((wall - model) / u32::try_from(task_calls.len()).expect("calls"));
        }
    }
    line("step (tool answered → next model call)", steps);
    if scenario.workers == 1 {
        line("start (created → first model call)", starts);
    }
    line("end (final answer → `answer` event)", ends);
    if scenario.workers == 1 {
        line("per model call, whole task (wall − model)", per_call);
    }
    let medians: Vec<String> = by_step
        .into_iter()
        .map(|mut v| {
            v.sort();
            format!("{:.2}", ms(percentile(&v, 0.5)))
        })
        .collect();
    println!("  step p50 by step number (ms): {}", medians.join(" "));
    let model_calls = spans.len() * (scenario.steps + 1);
    println!(
        "  {} model calls in {:.2} s: {:.0} calls/s; time inside the model {:.1} ms in all",
        model_calls,
        wall.as_secs_f64(),
        model_calls as f64 / wall.as_secs_f64(),
        ms(model_time)
    );
}

/// `--name N` from the command line, or `default`.
fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the scenarios one after another on a multi-threaded runtime, as the server does.
fn main() {
    let tasks = arg("--tasks", 200);
    let steps = arg("--steps", 10).max(1);
    let workers = arg("--workers", 4).max(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let database = match std::env::var("AGENTICAI_TEST_DATABASE").as_deref() {
        Ok("postgres") => "Postgres (AGENTICAI_TEST_POSTGRES_URL or 127.0.0.1:5432/test)",
        _ => "SQLite (WAL, synchronous = NORMAL) in a temporary directory",
    };
    println!(
        "agent loop overhead per step — {database}; {} CPUs; warm-up {WARMUP} tasks per scenario",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let scenarios = [
        Scenario {
            tool: Tool::ShellAllowed,
            tasks,
            steps,
            workers: 1,
        },
        Scenario {
            tool: Tool::ShellDenied,
            tasks,
            steps,
            workers: 1,
        },
        Scenario {
            tool: Tool::Reply,
            tasks,
            steps,
            workers: 1,
        },
        Scenario {
            tool: Tool::ShellAllowed,
            tasks,
            steps,
            workers,
        },
    ];
    for scenario in scenarios {
        runtime.block_on(run(scenario));
    }
}
