//! Configuration: every setting of CONTRACT.md "Configuration", where it comes from, and its checks.
//!
//! A setting is read from the environment (`AGENTICAI_<NAME>`), else from the optional TOML file
//! (`--config FILE`, or `agenticai.toml` in the working directory) under its lowercase key, else it
//! takes its default. [`SETTINGS`] is the single home of every setting's names, default, secrecy and
//! meaning: parsing, typo warnings and `agenticai config check` all read it, so adding a setting is
//! one line there, its field in [`Settings`], and the line in [`Settings::resolve`] that parses it.
//!
//! Errors are for the operator at startup: each names the setting in both of its forms
//! (`AGENTICAI_LISTEN (listen): …`) and never quotes the value of a secret.

use agent::planner::AgentLimits;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_FILE: &str = "agenticai.toml";

/// The prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "AGENTICAI_";

/// Environment variables that are not settings of the file but are still ours, so they draw no
/// typo warning: `AGENTICAI_CONFIG` names the file itself (the CLI's `--config`).
const OTHER_ENV: &[&str] = &["AGENTICAI_CONFIG"];

/// Variables with this prefix belong to the test suites and are ignored without a warning.
const TEST_ENV_PREFIX: &str = "AGENTICAI_TEST_";

/// One setting: its names, its default and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingInfo {
    /// The TOML key, lowercase (`listen`).
    pub key: &'static str,
    /// The environment variable (`AGENTICAI_LISTEN`).
    pub env: &'static str,
    /// The default as written in the docs; `{data_dir}` stands for the data directory. `None`:
    /// unset unless given.
    pub default: Option<&'static str>,
    /// Whether the value is a secret: never printed, logged or quoted in an error.
    pub secret: bool,
    /// One line for the operator.
    pub about: &'static str,
}

/// Builds one row of [`SETTINGS`].
const fn setting(
    key: &'static str,
    env: &'static str,
    default: Option<&'static str>,
    secret: bool,
    about: &'static str,
) -> SettingInfo {
    SettingInfo {
        key,
        env,
        default,
        secret,
        about,
    }
}

/// Every setting, in the order `agenticai config check` prints them.
#[rustfmt::skip]
pub const SETTINGS: &[SettingInfo] = &[
    // key, environment variable, default, secret, meaning
    setting("data_dir", "AGENTICAI_DATA_DIR", Some("./data"), false,
        "directory of the embedded database, objects and keys"),
    setting("database_url", "AGENTICAI_DATABASE_URL", Some("sqlite://{data_dir}/agenticai.db"), false,
        "sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"),
    setting("redis_url", "AGENTICAI_REDIS_URL", None, false,
        "redis://… or rediss://…; unset: in-process bus"),
    setting("object_store_url", "AGENTICAI_OBJECT_STORE_URL", Some("file://{data_dir}/objects"), false,
        "file://PATH or s3://BUCKET (the bucket must exist)"),
    setting("s3_endpoint", "AGENTICAI_S3_ENDPOINT", None, false,
        "endpoint of an S3-compatible store; credentials come from the standard AWS_* variables"),
    setting("listen", "AGENTICAI_LISTEN", Some("127.0.0.1:8080"), false,
        "HTTP address (put TLS in a reverse proxy in front)"),
    setting("master_key_file", "AGENTICAI_MASTER_KEY_FILE", Some("{data_dir}/master.key"), false,
        "key that encrypts stored secrets; keep it off the data volume in production"),
    setting("audit_key_file", "AGENTICAI_AUDIT_KEY_FILE", Some("{data_dir}/audit.key"), false,
        "ed25519 key that signs audit checkpoints"),
    setting("audit_checkpoint_every", "AGENTICAI_AUDIT_CHECKPOINT_EVERY", Some("1000"), false,
        "a signed audit checkpoint every this many events (and within a minute of any new event)"),
    setting("telegram_bot_token", "AGENTICAI_TELEGRAM_BOT_TOKEN", None, true,
        "the org's bot; unset: Telegram off"),
    setting("telegram_api_url", "AGENTICAI_TELEGRAM_API_URL", Some("https://api.telegram.org"), false,
        "Bot API base; requests go to {base}/bot{token}/{method}"),
    setting("telegram_mode", "AGENTICAI_TELEGRAM_MODE", Some("polling"), false,
        "polling or webhook"),
    setting("telegram_webhook_url", "AGENTICAI_TELEGRAM_WEBHOOK_URL", None, false,
        "webhook mode: the public URL given to setWebhook at start"),
    setting("telegram_webhook_secret", "AGENTICAI_TELEGRAM_WEBHOOK_SECRET", None, true,
        "webhook mode (required): checked against X-Telegram-Bot-Api-Secret-Token"),
    setting("telegram_messages_per_minute", "AGENTICAI_TELEGRAM_MESSAGES_PER_MINUTE", Some("20"), false,
        "messages and button presses one Telegram user may send per minute (0: no limit); over it, one polite reply"),
    setting("llm_provider", "AGENTICAI_LLM_PROVIDER", Some("none"), false,
        "none, openai (any OpenAI-compatible server) or anthropic"),
    setting("llm_base_url", "AGENTICAI_LLM_BASE_URL", None, false,
        "provider API base; unset: the provider's public API"),
    setting("llm_api_key", "AGENTICAI_LLM_API_KEY", None, true,
        "provider API key (required for anthropic)"),
    setting("llm_model", "AGENTICAI_LLM_MODEL", None, false,
        "model name (required when a provider is set)"),
    setting("agent_max_steps", "AGENTICAI_AGENT_MAX_STEPS", Some("20"), false,
        "model calls one agent task may make (1-200); then it fails with step_limit"),
    setting("agent_max_tokens", "AGENTICAI_AGENT_MAX_TOKENS", Some("200000"), false,
        "tokens (prompt and completion) one agent task may use; then it fails with token_limit"),
    setting("agent_time_limit", "AGENTICAI_AGENT_TIME_LIMIT", Some("15m"), false,
        "time one agent task may spend working (waiting for approval does not count); then it fails with time_limit"),
    setting("agent_tokens_per_day", "AGENTICAI_AGENT_TOKENS_PER_DAY", Some("2000000"), false,
        "tokens one user's agent tasks may use in 24 hours (0: no limit); then tasks fail with daily_token_limit"),
    setting("agent_context_tokens", "AGENTICAI_AGENT_CONTEXT_TOKENS", Some("4000"), false,
        "tokens of earlier conversation turns sent with a new request (0: none)"),
    setting("features", "AGENTICAI_FEATURES", Some("all"), false,
        "comma list of capabilities; -NAME switches one off, e.g. -agent,-browser"),
    setting("url", "AGENTICAI_URL", Some("http://127.0.0.1:8080"), false,
        "server URL used by client commands such as `agenticai chat`"),
    setting("token", "AGENTICAI_TOKEN", None, true,
        "API token used by client commands such as `agenticai chat`"),
    setting("shutdown_grace", "AGENTICAI_SHUTDOWN_GRACE", Some("30s"), false,
        "on SIGINT/SIGTERM, how long running actions may finish before they are cancelled"),
    setting("log", "AGENTICAI_LOG", Some("info"), false,
        "log filter (tracing EnvFilter syntax, e.g. info,agenticai=debug)"),
    setting("max_concurrent_tasks", "AGENTICAI_MAX_CONCURRENT_TASKS", Some("16"), false,
        "tasks one server process runs at once (0-1024; 0: this process serves the API only and runs no tasks)"),
    setting("max_tasks_per_user", "AGENTICAI_MAX_TASKS_PER_USER", Some("0"), false,
        "tasks of one user running at once across the deployment (0: no limit)"),
    setting("tasks_per_hour", "AGENTICAI_TASKS_PER_HOUR", Some("0"), false,
        "tasks one user may create per hour; more get 429 quota_exceeded (0: no limit)"),
    setting("task_timeout", "AGENTICAI_TASK_TIMEOUT", Some("10m"), false,
        "wall-clock limit of one command; then the task is TIMED_OUT"),
    setting("task_lease", "AGENTICAI_TASK_LEASE", Some("30s"), false,
        "how long a worker's claim on a running task lasts without renewal; after a crash its tasks are recovered this long after the last renewal"),
    setting("task_output_limit", "AGENTICAI_TASK_OUTPUT_LIMIT", Some("1MiB"), false,
        "captured output (stdout and stderr merged) kept per task; the rest is cut and marked truncated"),
    setting("sandbox_memory", "AGENTICAI_SANDBOX_MEMORY", Some("1GiB"), false,
        "memory limit of one sandbox (cgroup)"),
    setting("sandbox_pids", "AGENTICAI_SANDBOX_PIDS", Some("256"), false,
        "process limit of one sandbox (cgroup)"),
    setting("sandbox_cpu", "AGENTICAI_SANDBOX_CPU", Some("1"), false,
        "CPU quota of one sandbox, in cores (e.g. 0.5)"),
    setting("workspace_quota", "AGENTICAI_WORKSPACE_QUOTA", Some("2GiB"), false,
        "size cap of one user's persistent workspace"),
    setting("bwrap", "AGENTICAI_BWRAP", None, false,
        "path of bubblewrap; unset: /usr/bin/bwrap, else bwrap on PATH"),
    setting("sandbox_user", "AGENTICAI_SANDBOX_USER", None, false,
        "UID:GID the sandbox runs as on the host when the server runs as root (never 0); unset: 65534:65534"),
];

/// Looks a setting up by its TOML key.
pub fn setting_info(key: &str) -> Option<&'static SettingInfo> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// A value that must never be shown: `Debug` and `Display` print `[redacted]`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL that may carry a password (`postgres://user:pw@host/db`, `redis://:pw@host`):
/// `Debug` and `Display` show it with the password replaced by `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// The full URL, password included, for the driver that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password (in the user info or a `password=` query parameter) redacted.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host…` and `password=` query values.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..rest_start].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":[redacted]");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let query = &tail[q + 1..];
            let (query, fragment) = match query.find('#') {
                Some(h) => (&query[..h], &query[h..]),
                None => (query, ""),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                        format!("{k}=[redacted]")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

/// Defines a configuration enum whose values are lowercase words, with `ALL`, `as_str`,
/// `Display` and a case-insensitive `FromStr` whose error lists the valid words.
macro_rules! config_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The configuration word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let lower = s.trim().to_ascii_lowercase();
                match Self::ALL.iter().find(|v| v.as_str() == lower) {
                    Some(v) => Ok(*v),
                    None => Err(format!(
                        "unknown {} {s:?}; expected one of: {}",
                        $what,
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
    };
}

config_enum! {
    /// How Telegram updates reach the server.
    TelegramMode, "telegram mode" {
        /// `deleteWebhook`, then `getUpdates` in a loop; one poller per deployment.
        Polling = "polling",
        /// Telegram posts updates to `POST /telegram/webhook`.
        Webhook = "webhook",
    }
}

config_enum! {
    /// Which LLM wire format the agent speaks.
    LlmProvider, "LLM provider" {
        /// No model: agent tasks and free-text chat are unavailable; `/run` still works.
        None = "none",
        /// Any server speaking the OpenAI chat-completions format.
        Openai = "openai",
        /// Anthropic's Messages API.
        Anthropic = "anthropic",
    }
}

impl LlmProvider {
    /// The provider's public API base, used when `llm_base_url` is not set.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            LlmProvider::None => None,
            LlmProvider::Openai => Some("https://api.openai.com/v1"),
            LlmProvider::Anthropic => Some("https://api.anthropic.com"),
        }
    }
}

config_enum! {
    /// A capability the operator can switch off with `AGENTICAI_FEATURES` (PLAN.md "In Scope").
    /// A switched-off capability answers 403 `feature_disabled` on the API and a refusal in chat.
    Feature, "feature" {
        /// Agent tasks (`{"prompt":…}`) and free-text conversation with the agent.
        Agent = "agent",
        /// The Telegram ingress, even when a bot token is configured.
        Telegram = "telegram",
        /// Command tasks (`{"command":…}`, `/run`) and the agent's `shell` tool.
        Shell = "shell",
        /// Web search and web requests.
        Web = "web",
        /// Browser automation.
        Browser = "browser",
        /// Installing and running skills.
        Skills = "skills",
        /// Long-term memory.
        Memory = "memory",
        /// App and workload spin-up and lifecycle controls.
        Apps = "apps",
    }
}

/// Which capabilities are switched on. Default: all of them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// One bit per [`Feature`], by its position in [`Feature::ALL`].
    bits: u32,
}

impl Features {
    /// Every capability on.
    pub fn all() -> Self {
        Features {
            bits: (1u32 << Feature::ALL.len()) - 1,
        }
    }

    /// Every capability off.
    pub fn none() -> Self {
        Features { bits: 0 }
    }

    fn bit(feature: Feature) -> u32 {
        1u32 << (feature as u32)
    }

    /// Whether `feature` is on.
    pub fn enabled(self, feature: Feature) -> bool {
        self.bits & Self::bit(feature) != 0
    }

    /// Switches `feature` on or off.
    pub fn set(&mut self, feature: Feature, on: bool) {
        if on {
            self.bits |= Self::bit(feature);
        } else {
            self.bits &= !Self::bit(feature);
        }
    }

    /// Applies a list of items in order, starting from all on: `name` or `+name` switches a
    /// capability on, `-name` off; `all`, `+all` and `-all` act on every capability. Items may
    /// themselves be comma lists (the environment form). Empty items are skipped.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Features, String> {
        let mut features = Features::all();
        let mut unknown = Vec::new();
        for item in items
            .iter()
            .flat_map(|i| i.as_ref().split(','))
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (on, name) = match item.strip_prefix('-') {
                Some(name) => (false, name),
                None => (true, item.strip_prefix('+').unwrap_or(item)),
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("all") {
                features = if on {
                    Features::all()
                } else {
                    Features::none()
                };
            } else {
                match name.parse::<Feature>() {
                    Ok(feature) => features.set(feature, on),
                    Err(_) => unknown.push(format!("{name:?}")),
                }
            }
        }
        if unknown.is_empty() {
            Ok(features)
        } else {
            Err(format!(
                "unknown feature{} {}; valid features: all, {} (prefix one with - to switch it off, e.g. -browser)",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                Feature::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// The capabilities that are on, in declaration order.
    pub fn on(self) -> Vec<Feature> {
        Feature::ALL
            .iter()
            .copied()
            .filter(|f| self.enabled(*f))
            .collect()
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Features({self})")
    }
}

impl Default for Features {
    fn default() -> Self {
        Features::all()
    }
}

/// The canonical setting value that yields this set: `all`, or `-name,…` for what is off (or
/// `-all,name,…` when fewer are on than off).
impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = self.on();
        if on.len() == Feature::ALL.len() {
            return f.write_str("all");
        }
        let off: Vec<Feature> = Feature::ALL
            .iter()
            .copied()
            .filter(|x| !self.enabled(*x))
            .collect();
        let words: Vec<String> = if on.len() < off.len() {
            std::iter::once("-all".to_owned())
                .chain(on.iter().map(|x| x.as_str().to_owned()))
                .collect()
        } else {
            off.iter().map(|x| format!("-{x}")).collect()
        };
        f.write_str(&words.join(","))
    }
}

/// Where objects (large outputs, artifacts) are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreUrl {
    /// A directory on the local filesystem; always absolute.
    File(PathBuf),
    /// An S3 bucket (which must exist); endpoint from `s3_endpoint`, credentials from `AWS_*`.
    S3 {
        /// The bucket name.
        bucket: String,
    },
}

impl fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectStoreUrl::File(path) => write!(f, "file://{}", path.display()),
            ObjectStoreUrl::S3 { bucket } => write!(f, "s3://{bucket}"),
        }
    }
}

/// Where a setting's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nobody set it.
    Default,
    /// The configuration file.
    File,
    /// The environment.
    Env,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "file",
            Source::Env => "env",
        })
    }
}

/// Why the configuration cannot be used. Every message names the file or the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not TOML. Only the position and the parser's reason are given,
    /// never the offending line, which may hold a secret.
    #[error("configuration file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and why.
        message: String,
    },
    /// The configuration file has a key that is no setting.
    #[error("unknown setting `{key}` in configuration file {}{hint}", path.display())]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The file.
        path: PathBuf,
        /// A suggestion or the list of valid keys.
        hint: String,
    },
    /// A setting has a value that cannot be used.
    #[error("{env} ({key}): {message}")]
    Invalid {
        /// The environment variable of the setting.
        env: &'static str,
        /// The TOML key of the setting.
        key: &'static str,
        /// What is wrong (without a secret's value).
        message: String,
    },
}

/// The result of [`load`]: the settings, and warnings for the operator (print them; they are not
/// fatal).
#[derive(Debug)]
pub struct Loaded {
    /// The effective settings.
    pub settings: Settings,
    /// Likely mistakes that did not stop loading, e.g. an unknown `AGENTICAI_*` variable.
    pub warnings: Vec<String>,
}

/// The effective configuration. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory of the embedded database, objects and keys (`AGENTICAI_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`AGENTICAI_DATABASE_URL`).
    pub database_url: ConnectionUrl,
    /// `redis://…`; `None`: in-process bus (`AGENTICAI_REDIS_URL`).
    pub redis_url: Option<ConnectionUrl>,
    /// The object store (`AGENTICAI_OBJECT_STORE_URL`); a file store's path is absolute.
    pub object_store_url: ObjectStoreUrl,
    /// Endpoint of an S3-compatible store, without trailing `/` (`AGENTICAI_S3_ENDPOINT`).
    pub s3_endpoint: Option<String>,
    /// The HTTP listen address (`AGENTICAI_LISTEN`).
    pub listen: SocketAddr,
    /// The master key file that encrypts stored secrets (`AGENTICAI_MASTER_KEY_FILE`).
    pub master_key_file: PathBuf,
    /// The ed25519 key file that signs audit checkpoints (`AGENTICAI_AUDIT_KEY_FILE`).
    pub audit_key_file: PathBuf,
    /// A signed audit checkpoint after this many new events (`AGENTICAI_AUDIT_CHECKPOINT_EVERY`).
    pub audit_checkpoint_every: u64,
    /// The bot token; `None`: Telegram off (`AGENTICAI_TELEGRAM_BOT_TOKEN`).
    pub telegram_bot_token: Option<Secret>,
    /// Bot API base without trailing `/` (`AGENTICAI_TELEGRAM_API_URL`).
    pub telegram_api_url: String,
    /// Polling or webhook (`AGENTICAI_TELEGRAM_MODE`).
    pub telegram_mode: TelegramMode,
    /// Webhook mode: the URL given to `setWebhook` at start; `None`: the operator registers the
    /// webhook (`AGENTICAI_TELEGRAM_WEBHOOK_URL`).
    pub telegram_webhook_url: Option<String>,
    /// Webhook mode: the `X-Telegram-Bot-Api-Secret-Token` value; always set when the webhook is
    /// active (`AGENTICAI_TELEGRAM_WEBHOOK_SECRET`).
    pub telegram_webhook_secret: Option<Secret>,
    /// Inbound Telegram messages per user and minute; 0: no limit
    /// (`AGENTICAI_TELEGRAM_MESSAGES_PER_MINUTE`).
    pub telegram_messages_per_minute: u32,
    /// The LLM wire format (`AGENTICAI_LLM_PROVIDER`).
    pub llm_provider: LlmProvider,
    /// Provider API base without trailing `/`; the provider's public API when not given; `None`
    /// exactly when the provider is `none` (`AGENTICAI_LLM_BASE_URL`).
    pub llm_base_url: Option<String>,
    /// Provider API key (`AGENTICAI_LLM_API_KEY`).
    pub llm_api_key: Option<Secret>,
    /// Model name; set whenever a provider is (`AGENTICAI_LLM_MODEL`).
    pub llm_model: Option<String>,
    /// Limits of the agent loop (`AGENTICAI_AGENT_*`).
    pub agent_limits: AgentLimits,
    /// Capabilities switched on (`AGENTICAI_FEATURES`).
    pub features: Features,
    /// Client commands: the server's URL, without trailing `/` (`AGENTICAI_URL`).
    pub url: String,
    /// Client commands: the API token (`AGENTICAI_TOKEN`).
    pub token: Option<Secret>,
    /// How long running actions may finish after SIGINT/SIGTERM (`AGENTICAI_SHUTDOWN_GRACE`).
    pub shutdown_grace: Duration,
    /// The log filter, tracing `EnvFilter` syntax, already checked (`AGENTICAI_LOG`).
    pub log: String,
    /// How tasks are run: concurrency, quotas, time and resource limits.
    pub execution: ExecutionSettings,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Per setting, in [`SETTINGS`] order: the value as shown by [`Settings::report`] (secrets
    /// already redacted) and where it came from.
    shown: ReportLines,
}

/// How tasks are run (the `AGENTICAI_MAX_*`, `AGENTICAI_TASK*`, `AGENTICAI_SANDBOX_*`,
/// `AGENTICAI_WORKSPACE_QUOTA` and `AGENTICAI_BWRAP` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionSettings {
    /// Tasks one process runs at once; 0: this process runs no tasks (API only).
    pub max_concurrent: usize,
    /// Running tasks per user across the deployment; `None`: no limit.
    pub max_per_user: Option<i64>,
    /// Tasks a user may create per hour; `None`: no limit.
    pub tasks_per_hour: Option<u32>,
    /// Wall-clock limit of one command.
    pub task_timeout: Duration,
    /// A worker's claim on a running task.
    pub lease: Duration,
    /// Captured output per task, in bytes.
    pub output_limit: u64,
    /// Memory of one sandbox, in bytes.
    pub memory_bytes: u64,
    /// Processes of one sandbox.
    pub pids: u64,
    /// CPU quota of one sandbox, in thousandths of a core.
    pub cpu_millis: u64,
    /// Size cap of one user's workspace, in bytes.
    pub workspace_quota: u64,
    /// bubblewrap's path; `None`: searched.
    pub bwrap: Option<PathBuf>,
    /// Host uid and gid of the sandbox when the server runs as root; `None`: 65534:65534.
    pub sandbox_user: Option<(u32, u32)>,
}

/// The lines of [`Settings::report`]; left out of `Debug`, which shows the fields themselves.
#[derive(Clone, Default)]
struct ReportLines(Vec<Shown>);

impl fmt::Debug for ReportLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} lines>", self.0.len())
    }
}

/// One line of [`Settings::report`].
#[derive(Debug, Clone)]
struct Shown {
    /// The setting.
    info: &'static SettingInfo,
    /// The displayed value; `None`: unset. Secrets are `[redacted]`.
    value: Option<String>,
    /// Where it came from.
    source: Source,
}

/// The file and environment of one load, merged per setting.
struct Resolver {
    /// Values from the file, by key.
    file: BTreeMap<&'static str, RawValue>,
    /// The file's path, for messages.
    file_path: Option<PathBuf>,
    /// Values from the environment, by key.
    env: BTreeMap<&'static str, String>,
    /// The data directory, once resolved, for `{data_dir}` defaults.
    data_dir: PathBuf,
    /// What was resolved, for the report, in resolution order.
    shown: Vec<Shown>,
}

/// A value as written, before parsing.
#[derive(Debug, Clone)]
enum RawValue {
    /// A string (every setting).
    Text(String),
    /// A list of strings (`features` in the file).
    List(Vec<String>),
}

/// A raw value and its origin.
struct Raw {
    /// The value, trimmed, never empty.
    value: RawValue,
    /// Where it came from.
    source: Source,
}

impl Resolver {
    /// The merged raw value of `info`: environment, else file, else default. Empty values count as
    /// not given.
    fn raw(&self, info: &'static SettingInfo) -> Option<Raw> {
        if let Some(v) = self.env.get(info.key) {
            return Some(Raw {
                value: RawValue::Text(v.clone()),
                source: Source::Env,
            });
        }
        if let Some(v) = self.file.get(info.key) {
            return Some(Raw {
                value: v.clone(),
                source: Source::File,
            });
        }
        info.default.map(|d| Raw {
            value: RawValue::Text(expand_data_dir(d, &self.data_dir)),
            source: Source::Default,
        })
    }

    /// An error about `info`, saying where the bad value came from.
    fn invalid(&self, info: &'static SettingInfo, source: Source, message: String) -> ConfigError {
        let origin = match (source, &self.file_path) {
            (Source::Env, _) => " (set in the environment)".to_owned(),
            (Source::File, Some(path)) => format!(" (set in {})", path.display()),
            (Source::File, None) | (Source::Default, _) => String::new(),
        };
        ConfigError::Invalid {
            env: info.env,
            key: info.key,
            message: format!("{message}{origin}"),
        }
    }

    /// Resolves and parses one optional setting, recording it for the report. `parse` gets the
    /// trimmed, non-empty text; its error message must not quote a secret.
    fn opt<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
        show: impl FnOnce(&T) -> String,
    ) -> Result<Option<T>, ConfigError> {
        let info = info_for(key)?;
        let Some(raw) = self.raw(info) else {
            self.record(info, None, Source::Default);
            return Ok(None);
        };
        let text = match raw.value {
            RawValue::Text(t) => t,
            RawValue::List(_) => {
                return Err(self.invalid(info, raw.source, "expected a string, not a list".into()));
            }
        };
        let value = parse(&text).map_err(|m| self.invalid(info, raw.source, m))?;
        let shown = show(&value);
        self.record(info, Some(shown), raw.source);
        Ok(Some(value))
    }

    /// Like [`Resolver::opt`] for a setting with a default.
    fn req<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, ConfigError> {
        let info = info_for(key)?;
        match self.opt(key, parse, show)? {
            Some(v) => Ok(v),
            None => Err(ConfigError::Invalid {
                env: info.env,
                key: info.key,
                message: "must not be empty".into(),
            }),
        }
    }

    /// Records what the report shows for `info`, replacing an earlier record.
    fn record(&mut self, info: &'static SettingInfo, value: Option<String>, source: Source) {
        let value = if info.secret {
            value.map(|_| "[redacted]".to_owned())
        } else {
            value
        };
        self.shown.retain(|s| s.info.key != info.key);
        self.shown.push(Shown {
            info,
            value,
            source,
        });
    }
}

/// The table row of a key used in code; a key missing from [`SETTINGS`] is a bug caught by tests.
fn info_for(key: &'static str) -> Result<&'static SettingInfo, ConfigError> {
    setting_info(key).ok_or(ConfigError::Invalid {
        env: "AGENTICAI_?",
        key,
        message: "internal error: setting missing from the settings table".into(),
    })
}

/// Replaces `{data_dir}` in a default by the data directory, joining paths properly.
fn expand_data_dir(template: &str, data_dir: &Path) -> String {
    match template.split_once("{data_dir}") {
        Some((prefix, rest)) => {
            let rest = rest.trim_start_matches('/');
            let path = if rest.is_empty() {
                data_dir.to_path_buf()
            } else {
                data_dir.join(rest)
            };
            format!("{prefix}{}", path.display())
        }
        None => template.to_owned(),
    }
}

/// Loads the configuration: `file` if given (it must exist), else `agenticai.toml` in the working
/// directory if present; then `env` (pass [`process_env`]) over it; then defaults.
pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let default_file = Path::new(DEFAULT_FILE);
    let file = match file {
        Some(path) => Some(path),
        None if default_file.is_file() => Some(default_file),
        None => None,
    };
    load_from(file, env)
}

/// The process environment, skipping variables whose name is not Unicode (a value that is not
/// Unicode is converted lossily and then fails its setting's checks, if it is ours).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

/// Loads exactly `file` (if any) and `env`, without looking for a default file.
fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let file_values = match file {
        Some(path) => read_file(path, &mut warnings)?,
        None => BTreeMap::new(),
    };
    let env_values = read_env(env, &mut warnings);
    let mut resolver = Resolver {
        file: file_values,
        file_path: file.map(Path::to_path_buf),
        env: env_values,
        data_dir: PathBuf::new(),
        shown: Vec::new(),
    };
    let settings = Settings::resolve(&mut resolver, &mut warnings)?;
    Ok(Loaded { settings, warnings })
}

/// Reads and checks the TOML file: every key must be a setting.
fn read_file(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<&'static str, RawValue>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: match e.span() {
            Some(span) => {
                let (line, column) = line_column(&text, span.start);
                format!("line {line}, column {column}: {}", e.message())
            }
            None => e.message().to_owned(),
        },
    })?;
    let mut values = BTreeMap::new();
    let mut secrets_in_file = Vec::new();
    for (key, value) in table {
        let Some(info) = setting_info(&key) else {
            let hint = match suggest(&key, SETTINGS.iter().map(|s| s.key)) {
                Some(s) => format!(" (did you mean `{s}`?)"),
                None => format!(
                    "; valid settings: {}",
                    SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_path_buf(),
                hint,
            });
        };
        let invalid = |message: &str| ConfigError::Invalid {
            env: info.env,
            key: info.key,
            message: format!("{message} (set in {})", path.display()),
        };
        let raw = match value {
            toml::Value::String(s) => RawValue::Text(s.trim().to_owned()),
            toml::Value::Array(items) if info.key == "features" => {
                let mut list = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => list.push(s.trim().to_owned()),
                        _ => return Err(invalid("expected a string or a list of strings")),
                    }
                }
                RawValue::List(list)
            }
            _ if info.key == "features" => {
                return Err(invalid("expected a string or a list of strings"));
            }
            _ => return Err(invalid("expected a string (put the value in quotes)")),
        };
        let empty = matches!(&raw, RawValue::Text(t) if t.is_empty());
        if !empty {
            if info.secret {
                secrets_in_file.push(info.key);
            }
            values.insert(info.key, raw);
        }
    }
    if !secrets_in_file.is_empty() && readable_by_others(path) {
        warnings.push(format!(
            "configuration file {} holds secrets ({}) but other users can read it; run `chmod 600` on it",
            path.display(),
            secrets_in_file.join(", ")
        ));
    }
    Ok(values)
}

/// Whether users other than the owner may read `path`.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

/// Whether users other than the owner may read `path` (unknown off Unix).
#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Our settings from the environment, by key; warns about unknown `AGENTICAI_*` variables.
fn read_env(
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> BTreeMap<&'static str, String> {
    let mut values = BTreeMap::new();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX)
            || name.starts_with(TEST_ENV_PREFIX)
            || OTHER_ENV.contains(&name.as_str())
        {
            continue;
        }
        match SETTINGS.iter().find(|s| s.env == name) {
            Some(info) => {
                let value = value.trim();
                if value.is_empty() {
                    values.remove(info.key);
                } else {
                    values.insert(info.key, value.to_owned());
                }
            }
            None => {
                let hint = suggest(
                    name,
                    SETTINGS
                        .iter()
                        .map(|s| s.env)
                        .chain(OTHER_ENV.iter().copied()),
                )
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
                warnings.push(format!("unknown setting {name} — a typo?{hint}"));
            }
        }
    }
    values
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses a humantime duration (`30s`, `30m`, `24h`, `7d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 30s, 30m, 24h, 7d"))
}

/// Formats a duration the way [`parse_duration`] reads it.
fn show_duration(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}

/// Checks an `http://` or `https://` URL with a host and returns it without trailing `/`.
fn parse_http_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL {s:?} has no host"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// Checks a database URL: `sqlite:…`, `postgres://…` or `postgresql://…`.
fn parse_database_url(s: &str) -> Result<ConnectionUrl, String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        if lower == "sqlite:" || lower == "sqlite://" {
            return Err("sqlite URL has no path; use e.g. sqlite://./data/agenticai.db".into());
        }
        return Ok(ConnectionUrl(s.to_owned()));
    }
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        // The error of `url` never quotes the input, so a password cannot leak through it.
        url::Url::parse(s).map_err(|e| format!("invalid postgres URL: {e}"))?;
        return Ok(ConnectionUrl(s.to_owned()));
    }
    Err(format!(
        "{:?} is not a supported database URL; use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
        redact_url(s)
    ))
}

/// Checks a Redis URL: `redis://…` or `rediss://…`.
fn parse_redis_url(s: &str) -> Result<ConnectionUrl, String> {
    let url = url::Url::parse(s).map_err(|e| format!("invalid Redis URL: {e}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!(
            "{:?} is not a Redis URL; use redis://HOST:PORT or rediss://HOST:PORT",
            redact_url(s)
        ));
    }
    Ok(ConnectionUrl(s.to_owned()))
}

/// Checks an object store URL: `file://PATH` (made absolute against the working directory) or
/// `s3://BUCKET`.
fn parse_object_store_url(s: &str) -> Result<ObjectStoreUrl, String> {
    if let Some(path) = s.strip_prefix("file://") {
        if path.is_empty() {
            return Err(
                "file:// URL has no path; use e.g. file:///var/lib/agenticai/objects".into(),
            );
        }
        let absolute = std::path::absolute(path)
            .map_err(|e| format!("cannot make {path:?} an absolute path: {e}"))?;
        return Ok(ObjectStoreUrl::File(absolute));
    }
    if let Some(rest) = s.strip_prefix("s3://") {
        let bucket = rest.trim_end_matches('/');
        if bucket.is_empty() {
            return Err("s3:// URL has no bucket; use s3://BUCKET".into());
        }
        if bucket.contains(['/', '?', '#', '@', ':']) {
            return Err(format!(
                "{s:?}: use s3://BUCKET, without a path, port or credentials"
            ));
        }
        return Ok(ObjectStoreUrl::S3 {
            bucket: bucket.to_owned(),
        });
    }
    Err(format!(
        "{s:?} is not a supported object store URL; use file://PATH or s3://BUCKET"
    ))
}

/// Checks a listen address (`IP:PORT`).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("invalid socket address {s:?}; use IP:PORT, e.g. 127.0.0.1:8080 or [::]:8080")
    })
}

/// Checks a Telegram bot token well enough that it fits in `{base}/bot{token}/{method}`.
fn parse_bot_token(s: &str) -> Result<Secret, String> {
    if s.chars().any(|c| c.is_whitespace() || "/?#%".contains(c)) {
        return Err("not a bot token: it contains spaces or URL characters (/ ? # %)".into());
    }
    Ok(Secret::new(s))
}

/// Checks a webhook secret against Telegram's rule for `secret_token`.
fn parse_webhook_secret(s: &str) -> Result<Secret, String> {
    let ok = s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(
            "Telegram accepts only 1-256 characters of A-Z, a-z, 0-9, _ and - as a webhook secret"
                .into(),
        );
    }
    Ok(Secret::new(s))
}

/// Checks a log filter with tracing's own parser.
fn parse_log(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map_err(|e| format!("invalid log filter {s:?}: {e}"))?;
    Ok(s.to_owned())
}

/// A number of audit events between checkpoints: 1 to 1,000,000.
fn parse_checkpoint_every(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number of events from 1 to 1000000, got {s:?}"
        )),
    }
}

/// The agent loop's limits (`AGENTICAI_AGENT_*`).
fn resolve_agent_limits(r: &mut Resolver) -> Result<AgentLimits, ConfigError> {
    let defaults = AgentLimits::default();
    Ok(AgentLimits {
        max_steps: r.req("agent_max_steps", |s| parse_count(s, 1, 200), show)? as u32,
        max_task_tokens: r.req(
            "agent_max_tokens",
            |s| parse_count(s, 1_000, 100_000_000),
            show,
        )?,
        max_time: r.req(
            "agent_time_limit",
            |s| parse_bounded_duration(s, Duration::from_secs(10), Duration::from_secs(86400)),
            show_duration,
        )?,
        daily_user_tokens: Some(r.req(
            "agent_tokens_per_day",
            |s| parse_count(s, 0, 10_000_000_000),
            show,
        )?)
        .filter(|n| *n > 0),
        context_tokens: r.req(
            "agent_context_tokens",
            |s| parse_count(s, 0, 1_000_000),
            show,
        )? as usize,
        max_answer_tokens: defaults.max_answer_tokens,
    })
}

impl ExecutionSettings {
    fn resolve(r: &mut Resolver) -> Result<ExecutionSettings, ConfigError> {
        let zero_is_none = |n: u64| (n > 0).then_some(n);
        Ok(ExecutionSettings {
            max_concurrent: r.req("max_concurrent_tasks", |s| parse_count(s, 0, 1024), show)?
                as usize,
            max_per_user: zero_is_none(r.req(
                "max_tasks_per_user",
                |s| parse_count(s, 0, 1024),
                show,
            )?)
            .map(|n| n as i64),
            tasks_per_hour: zero_is_none(r.req(
                "tasks_per_hour",
                |s| parse_count(s, 0, 1_000_000),
                show,
            )?)
            .map(|n| n as u32),
            task_timeout: r.req(
                "task_timeout",
                |s| {
                    parse_bounded_duration(
                        s,
                        Duration::from_secs(1),
                        Duration::from_secs(7 * 86400),
                    )
                },
                show_duration,
            )?,
            lease: r.req(
                "task_lease",
                |s| parse_bounded_duration(s, Duration::from_secs(3), Duration::from_secs(3600)),
                show_duration,
            )?,
            output_limit: r.req(
                "task_output_limit",
                |s| parse_size(s, 1024, 64 << 20),
                show_size,
            )?,
            memory_bytes: r.req(
                "sandbox_memory",
                |s| parse_size(s, 16 << 20, 1 << 40),
                show_size,
            )?,
            pids: r.req("sandbox_pids", |s| parse_count(s, 8, 1_000_000), show)?,
            cpu_millis: r.req("sandbox_cpu", parse_cores, |m| {
                format!("{}", *m as f64 / 1000.0)
            })?,
            workspace_quota: r.req(
                "workspace_quota",
                |s| parse_size(s, 1 << 20, 1 << 50),
                show_size,
            )?,
            bwrap: r.opt("bwrap", parse_path, |p| show_path(p))?,
            sandbox_user: r.opt("sandbox_user", parse_uid_gid, |(u, g)| format!("{u}:{g}"))?,
        })
    }
}

/// `UID:GID`, both numeric and neither 0 (the sandbox never runs as host root).
fn parse_uid_gid(s: &str) -> Result<(u32, u32), String> {
    let parsed = s
        .split_once(':')
        .and_then(|(u, g)| Some((u.trim().parse::<u32>().ok()?, g.trim().parse::<u32>().ok()?)));
    match parsed {
        Some((0, _)) | Some((_, 0)) => Err(format!("{s:?}: the sandbox never runs as root")),
        Some(ids) => Ok(ids),
        None => Err(format!(
            "expected numeric UID:GID such as 990:990, got {s:?}"
        )),
    }
}

/// A whole number from `min` to `max`.
fn parse_count(s: &str, min: u64, max: u64) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, got {s:?}"
        )),
    }
}

/// A humantime duration from `min` to `max`.
fn parse_bounded_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "expected a duration from {} to {}, got {s:?}",
            show_duration(&min),
            show_duration(&max)
        ));
    }
    Ok(d)
}

/// A size in bytes with an optional unit (`KiB`, `MiB`, `GiB`, `TiB`; also `K`, `M`, `G`, `T`,
/// binary), from `min` to `max`.
fn parse_size(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        _ => {
            return Err(format!(
                "unknown size unit in {s:?}; use KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("expected a size such as 512MiB, got {s:?}"))?;
    if bytes < min || bytes > max {
        return Err(format!(
            "expected a size from {} to {}, got {s:?}",
            show_size(&min),
            show_size(&max)
        ));
    }
    Ok(bytes)
}

/// Bytes in the largest binary unit that divides them.
fn show_size(bytes: &u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if *bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Cores as a decimal (`0.5`, `2`) → thousandths of a core, from 0.01 to 256 cores.
fn parse_cores(s: &str) -> Result<u64, String> {
    let cores: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of cores such as 0.5 or 2, got {s:?}"))?;
    if !(0.01..=256.0).contains(&cores) {
        return Err(format!("expected from 0.01 to 256 cores, got {s:?}"));
    }
    Ok((cores * 1000.0).round() as u64)
}

/// A plain path.
fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

/// Shows a path.
fn show_path(p: &Path) -> String {
    p.display().to_string()
}

/// Shows anything by `Display`.
fn show<T: fmt::Display>(v: &T) -> String {
    v.to_string()
}

impl Settings {
    /// Resolves every setting of [`SETTINGS`], then checks the rules between settings.
    fn resolve(r: &mut Resolver, warnings: &mut Vec<String>) -> Result<Settings, ConfigError> {
        let data_dir = r.req("data_dir", parse_path, |p| show_path(p))?;
        r.data_dir = data_dir.clone();
        let database_url = r.req("database_url", parse_database_url, ConnectionUrl::redacted)?;
        let redis_url = r.opt("redis_url", parse_redis_url, ConnectionUrl::redacted)?;
        let object_store_url = r.req("object_store_url", parse_object_store_url, show)?;
        let s3_endpoint = r.opt("s3_endpoint", parse_http_url, String::clone)?;
        let listen = r.req("listen", parse_listen, show)?;
        let master_key_file = r.req("master_key_file", parse_path, |p| show_path(p))?;
        let audit_key_file = r.req("audit_key_file", parse_path, |p| show_path(p))?;
        let audit_checkpoint_every =
            r.req("audit_checkpoint_every", parse_checkpoint_every, show)?;
        let telegram_bot_token = r.opt("telegram_bot_token", parse_bot_token, show)?;
        let telegram_api_url = r.req("telegram_api_url", parse_http_url, String::clone)?;
        let telegram_mode = r.req("telegram_mode", str::parse::<TelegramMode>, show)?;
        let telegram_webhook_url = r.opt("telegram_webhook_url", parse_http_url, String::clone)?;
        let telegram_webhook_secret =
            r.opt("telegram_webhook_secret", parse_webhook_secret, show)?;
        let telegram_messages_per_minute = r.req(
            "telegram_messages_per_minute",
            |s| parse_count(s, 0, 10_000),
            show,
        )? as u32;
        let llm_provider = r.req("llm_provider", str::parse::<LlmProvider>, show)?;
        let llm_base_url = r.opt("llm_base_url", parse_http_url, String::clone)?;
        let llm_api_key = r.opt("llm_api_key", |s| Ok(Secret::new(s)), show)?;
        let llm_model = r.opt("llm_model", |s| Ok(s.to_owned()), String::clone)?;
        let agent_limits = resolve_agent_limits(r)?;
        let features = r.features()?;
        let url = r.req("url", parse_http_url, String::clone)?;
        let token = r.opt("token", |s| Ok(Secret::new(s)), show)?;
        let shutdown_grace = r.req("shutdown_grace", parse_duration, show_duration)?;
        let log = r.req("log", parse_log, String::clone)?;
        let execution = ExecutionSettings::resolve(r)?;

        let mut settings = Settings {
            data_dir,
            database_url,
            redis_url,
            object_store_url,
            s3_endpoint,
            listen,
            master_key_file,
            audit_key_file,
            audit_checkpoint_every,
            telegram_bot_token,
            telegram_api_url,
            telegram_mode,
            telegram_webhook_url,
            telegram_webhook_secret,
            telegram_messages_per_minute,
            llm_provider,
            llm_base_url,
            llm_api_key,
            llm_model,
            agent_limits,
            features,
            url,
            token,
            shutdown_grace,
            log,
            execution,
            config_file: r.file_path.clone(),
            shown: ReportLines::default(),
        };
        settings.check(r, warnings)?;
        settings.shown = ReportLines(
            SETTINGS
                .iter()
                .filter_map(|info| r.shown.iter().find(|s| s.info.key == info.key).cloned())
                .collect(),
        );
        Ok(settings)
    }

    /// The rules between settings; may fill in derived values (the LLM base URL).
    fn check(&mut self, r: &mut Resolver, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        let err = |key: &'static str, message: String| -> Result<(), ConfigError> {
            let info = info_for(key)?;
            Err(ConfigError::Invalid {
                env: info.env,
                key: info.key,
                message,
            })
        };

        // Telegram.
        if self.telegram_bot_token.is_some() && self.telegram_mode == TelegramMode::Webhook {
            if self.telegram_webhook_secret.is_none() {
                return err(
                    "telegram_webhook_secret",
                    "required when AGENTICAI_TELEGRAM_MODE is webhook; choose 1-256 random characters of A-Z, a-z, 0-9, _ and -".into(),
                );
            }
            match &self.telegram_webhook_url {
                None => warnings.push(
                    "AGENTICAI_TELEGRAM_WEBHOOK_URL is unset in webhook mode: the server does not call setWebhook, so register the webhook with Telegram yourself".into(),
                ),
                Some(u) if u.starts_with("http://") => warnings.push(format!(
                    "AGENTICAI_TELEGRAM_WEBHOOK_URL {u:?} is not https://; Telegram delivers webhooks only over HTTPS"
                )),
                Some(_) => {}
            }
        }
        if self.telegram_mode == TelegramMode::Polling
            && (self.telegram_webhook_url.is_some() || self.telegram_webhook_secret.is_some())
        {
            warnings.push(
                "AGENTICAI_TELEGRAM_WEBHOOK_URL/_SECRET are ignored in polling mode (AGENTICAI_TELEGRAM_MODE=polling)".into(),
            );
        }

        // LLM.
        match self.llm_provider {
            LlmProvider::None => {
                let stray: Vec<&str> = [
                    ("AGENTICAI_LLM_BASE_URL", self.llm_base_url.is_some()),
                    ("AGENTICAI_LLM_API_KEY", self.llm_api_key.is_some()),
                    ("AGENTICAI_LLM_MODEL", self.llm_model.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .collect();
                if !stray.is_empty() {
                    warnings.push(format!(
                        "{} ignored because AGENTICAI_LLM_PROVIDER is none",
                        stray.join(", ")
                    ));
                }
                self.llm_base_url = None;
            }
            provider => {
                if self.llm_model.is_none() {
                    return err(
                        "llm_model",
                        format!("required when AGENTICAI_LLM_PROVIDER is {provider}"),
                    );
                }
                if provider == LlmProvider::Anthropic && self.llm_api_key.is_none() {
                    return err(
                        "llm_api_key",
                        "required when AGENTICAI_LLM_PROVIDER is anthropic".into(),
                    );
                }
                if self.llm_base_url.is_none()
                    && let Some(base) = provider.default_base_url()
                {
                    self.llm_base_url = Some(base.to_owned());
                    if let Ok(info) = info_for("llm_base_url") {
                        r.record(info, Some(base.to_owned()), Source::Default);
                    }
                }
            }
        }

        // Object store.
        if self.s3_endpoint.is_some() && !matches!(self.object_store_url, ObjectStoreUrl::S3 { .. })
        {
            warnings.push(
                "AGENTICAI_S3_ENDPOINT is ignored: AGENTICAI_OBJECT_STORE_URL is not an s3:// URL"
                    .into(),
            );
        }
        Ok(())
    }

    /// Defaults for a data directory, ignoring the environment and any file: a starting point for
    /// tests, which may then change fields.
    #[cfg(test)]
    pub fn for_data_dir(data_dir: &Path) -> Result<Settings, ConfigError> {
        let env = [(
            "AGENTICAI_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        )];
        Ok(load_from(None, &env)?.settings)
    }

    /// Whether a capability is switched on.
    pub fn feature_enabled(&self, feature: Feature) -> bool {
        self.features.enabled(feature)
    }

    /// Whether the agent plans free text and prompts: a provider is set and the feature is on.
    pub fn agent_enabled(&self) -> bool {
        self.llm_provider != LlmProvider::None && self.feature_enabled(Feature::Agent)
    }

    /// Whether the Telegram ingress runs: a bot token is set and the feature is on.
    pub fn telegram_enabled(&self) -> bool {
        self.telegram_bot_token.is_some() && self.feature_enabled(Feature::Telegram)
    }

    /// The effective configuration as loaded, for `agenticai config check`: one
    /// `name = value  # source` line per setting, secrets `[redacted]`, unset values `(unset)`,
    /// passwords in URLs redacted. Warnings are not included.
    pub fn report(&self) -> String {
        let width = SETTINGS.iter().map(|s| s.key.len()).max().unwrap_or(0);
        let mut out = match &self.config_file {
            Some(path) => format!("# configuration file: {}\n", path.display()),
            None => "# configuration file: none (environment and defaults only)\n".to_owned(),
        };
        for shown in &self.shown.0 {
            let value = match &shown.value {
                Some(v) if shown.info.secret => v.clone(),
                Some(v) => quote(v),
                None => "(unset)".to_owned(),
            };
            let source = match shown.source {
                Source::Env => format!("env {}", shown.info.env),
                other => other.to_string(),
            };
            let extra = if shown.info.key == "features" {
                let on: Vec<&str> = self.features.on().iter().map(|f| f.as_str()).collect();
                format!(
                    " (on: {})",
                    if on.is_empty() {
                        "none".to_owned()
                    } else {
                        on.join(", ")
                    }
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:width$} = {value}  # {source}{extra}\n",
                shown.info.key
            ));
        }
        out
    }
}

impl Resolver {
    /// Resolves `features`: a comma string, or a list of strings in the file.
    fn features(&mut self) -> Result<Features, ConfigError> {
        let info = info_for("features")?;
        let Some(raw) = self.raw(info) else {
            self.record(info, Some(Features::all().to_string()), Source::Default);
            return Ok(Features::all());
        };
        let items = match raw.value {
            RawValue::Text(t) => vec![t],
            RawValue::List(l) => l,
        };
        let features = Features::parse(&items).map_err(|m| self.invalid(info, raw.source, m))?;
        self.record(info, Some(features.to_string()), raw.source);
        Ok(features)
    }
}

/// Quotes a value TOML-style.
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        load_from(None, &env(pairs))
    }

    fn err_text(pairs: &[(&str, &str)]) -> String {
        match load_env(pairs) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn write_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agenticai.toml");
        std::fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn the_table_is_consistent() {
        for (i, s) in SETTINGS.iter().enumerate() {
            assert_eq!(s.env, format!("AGENTICAI_{}", s.key.to_ascii_uppercase()));
            assert!(
                SETTINGS[..i].iter().all(|o| o.key != s.key),
                "{} twice",
                s.key
            );
            assert!(!s.about.is_empty());
        }
        // Every setting is resolved and shown, in table order.
        let settings = load_env(&[]).unwrap().settings;
        let shown: Vec<&str> = settings.shown.0.iter().map(|s| s.info.key).collect();
        let table: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(shown, table);
    }

    #[test]
    fn defaults() {
        let loaded = load_env(&[]).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let s = loaded.settings;
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.database_url.expose(), "sqlite://./data/agenticai.db");
        assert!(s.redis_url.is_none());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            s.object_store_url,
            ObjectStoreUrl::File(cwd.join("data").join("objects"))
        );
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.master_key_file, PathBuf::from("./data/master.key"));
        assert_eq!(s.audit_key_file, PathBuf::from("./data/audit.key"));
        assert!(s.telegram_bot_token.is_none());
        assert!(!s.telegram_enabled());
        assert_eq!(s.telegram_api_url, "https://api.telegram.org");
        assert_eq!(s.telegram_mode, TelegramMode::Polling);
        assert_eq!(s.llm_provider, LlmProvider::None);
        assert!(s.llm_base_url.is_none());
        assert_eq!(s.features, Features::all());
        for f in Feature::ALL {
            assert!(s.feature_enabled(*f));
        }
        assert_eq!(s.url, "http://127.0.0.1:8080");
        assert!(s.token.is_none());
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.log, "info");
        assert!(s.config_file.is_none());
    }

    #[test]
    fn data_dir_moves_the_derived_defaults() {
        let s = load_env(&[("AGENTICAI_DATA_DIR", "/var/lib/agenticai/")])
            .unwrap()
            .settings;
        assert_eq!(
            s.database_url.expose(),
            "sqlite:///var/lib/agenticai/agenticai.db"
        );
        assert_eq!(
            s.object_store_url,
            ObjectStoreUrl::File("/var/lib/agenticai/objects".into())
        );
        assert_eq!(
            s.object_store_url.to_string(),
            "file:///var/lib/agenticai/objects"
        );
        assert_eq!(
            s.master_key_file,
            PathBuf::from("/var/lib/agenticai/master.key")
        );
        let s = Settings::for_data_dir(Path::new("/tmp/x")).unwrap();
        assert_eq!(s.audit_key_file, PathBuf::from("/tmp/x/audit.key"));
    }

    #[test]
    fn env_wins_over_file_and_file_over_defaults() {
        let (_dir, path) = write_file(
            "listen = \"0.0.0.0:9000\"\nlog = \"debug\"\nfeatures = [\"-browser\", \"-agent\"]\n",
        );
        let loaded =
            load_from(Some(&path), &env(&[("AGENTICAI_LISTEN", "127.0.0.1:9999")])).unwrap();
        let s = loaded.settings;
        assert_eq!(s.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(s.log, "debug");
        assert!(!s.feature_enabled(Feature::Browser));
        assert!(!s.feature_enabled(Feature::Agent));
        assert!(s.feature_enabled(Feature::Shell));
        assert_eq!(s.config_file.as_deref(), Some(path.as_path()));
        let report = s.report();
        assert!(report.contains("listen"), "{report}");
        assert!(
            report.contains("\"127.0.0.1:9999\"  # env AGENTICAI_LISTEN"),
            "{report}"
        );
        assert!(report.contains("\"debug\"  # file"), "{report}");
        assert!(report.contains("\"30s\"  # default"), "{report}");
        assert!(
            report.contains("\"-agent,-browser\"  # file (on: telegram, shell"),
            "{report}"
        );
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let (_dir, path) = write_file("redis_url = \"redis://127.0.0.1:6379\"\n");
        let s = load_from(Some(&path), &env(&[("AGENTICAI_REDIS_URL", " ")]))
            .unwrap()
            .settings;
        assert_eq!(s.redis_url.unwrap().expose(), "redis://127.0.0.1:6379");
        let s = load_env(&[("AGENTICAI_LISTEN", "")]).unwrap().settings;
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn unknown_file_key_is_an_error_naming_key_and_file() {
        let (_dir, path) = write_file("listn = \"0.0.0.0:1\"\n");
        let e = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(e.contains("unknown setting `listn`"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("did you mean `listen`?"), "{e}");

        let (_dir, path) = write_file("[telegram]\nbot_token = \"x\"\n");
        let e = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(
            e.contains("`telegram`") && e.contains("valid settings: data_dir"),
            "{e}"
        );
    }

    #[test]
    fn file_errors_name_the_file_and_never_quote_a_line() {
        let missing = Path::new("/nonexistent/agenticai.toml");
        let e = load_from(Some(missing), &[]).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/agenticai.toml"), "{e}");

        let (_dir, path) = write_file("log = \"info\"\ntelegram_bot_token = 123:supersecret\n");
        let e = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(e.contains("not valid TOML") && e.contains("line 2"), "{e}");
        assert!(!e.contains("supersecret"), "{e}");

        let (_dir, path) = write_file("listen = 8080\n");
        let e = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("AGENTICAI_LISTEN (listen): expected a string"),
            "{e}"
        );
    }

    #[test]
    fn malformed_values_name_the_setting() {
        let e = err_text(&[("AGENTICAI_LISTEN", "x")]);
        assert!(
            e.starts_with("AGENTICAI_LISTEN (listen): invalid socket address \"x\""),
            "{e}"
        );
        assert!(e.contains("(set in the environment)"), "{e}");
        let e = err_text(&[("AGENTICAI_SHUTDOWN_GRACE", "soon")]);
        assert!(
            e.starts_with("AGENTICAI_SHUTDOWN_GRACE (shutdown_grace): invalid duration"),
            "{e}"
        );
        let e = err_text(&[("AGENTICAI_DATABASE_URL", "mysql://u:hunter2@h/db")]);
        assert!(
            e.starts_with("AGENTICAI_DATABASE_URL (database_url):"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = err_text(&[("AGENTICAI_OBJECT_STORE_URL", "gs://bucket")]);
        assert!(
            e.starts_with("AGENTICAI_OBJECT_STORE_URL (object_store_url):"),
            "{e}"
        );
        let e = err_text(&[("AGENTICAI_OBJECT_STORE_URL", "s3://bucket/prefix")]);
        assert!(e.contains("s3://BUCKET"), "{e}");
        let e = err_text(&[("AGENTICAI_TELEGRAM_MODE", "push")]);
        assert!(
            e.starts_with("AGENTICAI_TELEGRAM_MODE (telegram_mode): unknown telegram mode \"push\"; expected one of: polling, webhook"),
            "{e}"
        );
        let e = err_text(&[("AGENTICAI_LLM_PROVIDER", "gemini")]);
        assert!(e.contains("none, openai, anthropic"), "{e}");
        let e = err_text(&[("AGENTICAI_TELEGRAM_API_URL", "ftp://x")]);
        assert!(
            e.starts_with("AGENTICAI_TELEGRAM_API_URL (telegram_api_url):"),
            "{e}"
        );
        let e = err_text(&[("AGENTICAI_REDIS_URL", "http://x")]);
        assert!(e.starts_with("AGENTICAI_REDIS_URL (redis_url):"), "{e}");
        let e = err_text(&[("AGENTICAI_URL", "not a url")]);
        assert!(e.starts_with("AGENTICAI_URL (url):"), "{e}");
        let e = err_text(&[("AGENTICAI_LOG", "info,=[")]);
        assert!(e.starts_with("AGENTICAI_LOG (log):"), "{e}");
        let e = err_text(&[("AGENTICAI_LLM_PROVIDER", "openai")]);
        assert!(
            e.starts_with("AGENTICAI_LLM_MODEL (llm_model): required"),
            "{e}"
        );
        let e = err_text(&[("AGENTICAI_TELEGRAM_BOT_TOKEN", "12 34")]);
        assert!(
            e.starts_with("AGENTICAI_TELEGRAM_BOT_TOKEN (telegram_bot_token):"),
            "{e}"
        );
        assert!(!e.contains("12 34"), "{e}");
    }

    #[test]
    fn accepted_urls() {
        let s = load_env(&[
            (
                "AGENTICAI_DATABASE_URL",
                "postgresql://u:pw@127.0.0.1:5432/test",
            ),
            ("AGENTICAI_REDIS_URL", "redis://:pw@127.0.0.1:6379/0"),
            ("AGENTICAI_OBJECT_STORE_URL", "s3://my-bucket"),
            ("AGENTICAI_S3_ENDPOINT", "http://127.0.0.1:5000/"),
            ("AGENTICAI_TELEGRAM_API_URL", "http://127.0.0.1:8081/"),
        ])
        .unwrap()
        .settings;
        assert_eq!(
            s.database_url.expose(),
            "postgresql://u:pw@127.0.0.1:5432/test"
        );
        assert_eq!(
            s.object_store_url,
            ObjectStoreUrl::S3 {
                bucket: "my-bucket".into()
            }
        );
        assert_eq!(s.s3_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s.telegram_api_url, "http://127.0.0.1:8081");
        assert!(load_env(&[("AGENTICAI_DATABASE_URL", "sqlite::memory:")]).is_ok());
    }

    #[test]
    fn unknown_env_var_warns_and_test_vars_are_silent() {
        let loaded = load_env(&[
            ("AGENTICAI_LISTN", "0.0.0.0:1"),
            ("AGENTICAI_TEST_PG", "postgres://x"),
            ("AGENTICAI_CONFIG", "/etc/agenticai.toml"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].starts_with("unknown setting AGENTICAI_LISTN — a typo?"),
            "{:?}",
            loaded.warnings
        );
        assert!(loaded.warnings[0].contains("did you mean AGENTICAI_LISTEN?"));
        assert_eq!(loaded.settings.listen, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn secrets_never_appear_in_report_debug_or_errors() {
        let loaded = load_env(&[
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", "123:bot-secret-value"),
            ("AGENTICAI_TELEGRAM_MODE", "webhook"),
            (
                "AGENTICAI_TELEGRAM_WEBHOOK_URL",
                "https://bot.example.com/telegram/webhook",
            ),
            ("AGENTICAI_TELEGRAM_WEBHOOK_SECRET", "hook-secret-value"),
            ("AGENTICAI_LLM_PROVIDER", "anthropic"),
            ("AGENTICAI_LLM_API_KEY", "llm-secret-value"),
            ("AGENTICAI_LLM_MODEL", "claude"),
            ("AGENTICAI_TOKEN", "tok-secret-value"),
            (
                "AGENTICAI_DATABASE_URL",
                "postgres://app:db-secret-value@db/app",
            ),
            (
                "AGENTICAI_REDIS_URL",
                "redis://:redis-secret-value@cache:6379",
            ),
        ])
        .unwrap();
        let s = &loaded.settings;
        assert!(s.telegram_enabled());
        assert_eq!(
            s.telegram_bot_token.as_ref().unwrap().expose(),
            "123:bot-secret-value"
        );
        assert_eq!(s.llm_base_url.as_deref(), Some("https://api.anthropic.com"));
        let report = s.report();
        let debug = format!("{s:?}");
        for text in [&report, &debug] {
            assert!(!text.contains("secret-value"), "{text}");
        }
        assert!(report.contains("telegram_bot_token") && report.contains("= [redacted]  # env"));
        assert!(
            report.contains("postgres://app:[redacted]@db/app"),
            "{report}"
        );
        assert!(
            report.contains("redis://:[redacted]@cache:6379"),
            "{report}"
        );
        assert!(report.contains("= (unset)  # default"), "{report}");
        assert_eq!(format!("{}", Secret::new("x")), "[redacted]");
        assert_eq!(format!("{:?}", Secret::new("x")), "[redacted]");

        let e = err_text(&[
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", "123:abc"),
            ("AGENTICAI_TELEGRAM_MODE", "webhook"),
            (
                "AGENTICAI_TELEGRAM_WEBHOOK_SECRET",
                "bad secret with spaces",
            ),
        ]);
        assert!(!e.contains("bad secret"), "{e}");
    }

    #[test]
    fn url_redaction() {
        assert_eq!(
            redact_url("postgres://u:p@h:5432/db?sslmode=require&password=x#f"),
            "postgres://u:[redacted]@h:5432/db?sslmode=require&password=[redacted]#f"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./data/a.db"), "sqlite://./data/a.db");
        assert_eq!(redact_url("redis://:p@w@h"), "redis://:[redacted]@h");
    }

    #[test]
    fn features_parsing() {
        let f = Features::parse(&["-agent,-browser"]).unwrap();
        assert!(!f.enabled(Feature::Agent) && !f.enabled(Feature::Browser));
        assert!(f.enabled(Feature::Shell) && f.enabled(Feature::Telegram));
        assert_eq!(f.to_string(), "-agent,-browser");
        assert_eq!(Features::parse(&["all"]).unwrap(), Features::all());
        assert_eq!(
            Features::parse(&["agent, +shell"]).unwrap(),
            Features::all()
        );
        assert_eq!(Features::parse::<&str>(&[]).unwrap(), Features::all());
        let only = Features::parse(&["-all,shell,telegram"]).unwrap();
        assert_eq!(only.on(), vec![Feature::Telegram, Feature::Shell]);
        assert_eq!(only.to_string(), "-all,telegram,shell");
        assert_eq!(Features::parse(&[only.to_string()]).unwrap(), only);
        let e = Features::parse(&["-agnet,-browser,wat"]).unwrap_err();
        assert!(e.contains("\"agnet\", \"wat\""), "{e}");
        assert!(
            e.contains("agent, telegram, shell, web, browser, skills, memory, apps"),
            "{e}"
        );

        let e = err_text(&[("AGENTICAI_FEATURES", "-nope")]);
        assert!(
            e.starts_with("AGENTICAI_FEATURES (features): unknown feature \"nope\""),
            "{e}"
        );
        let s = load_env(&[
            ("AGENTICAI_FEATURES", "-telegram"),
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", "1:a"),
        ])
        .unwrap()
        .settings;
        assert!(!s.telegram_enabled());
        let (_dir, path) = write_file("features = \"-web\"\n");
        let s = load_from(Some(&path), &[]).unwrap().settings;
        assert!(!s.feature_enabled(Feature::Web));
        let (_dir, path) = write_file("features = [1]\n");
        assert!(load_from(Some(&path), &[]).is_err());
    }

    #[test]
    fn webhook_mode_without_secret_is_an_error() {
        let e = err_text(&[
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", "123:abc"),
            ("AGENTICAI_TELEGRAM_MODE", "webhook"),
        ]);
        assert!(
            e.starts_with("AGENTICAI_TELEGRAM_WEBHOOK_SECRET (telegram_webhook_secret): required"),
            "{e}"
        );
        // Without a bot token Telegram is off, so nothing is required.
        assert!(load_env(&[("AGENTICAI_TELEGRAM_MODE", "webhook")]).is_ok());
        // With a secret but no URL: runs, with a warning.
        let loaded = load_env(&[
            ("AGENTICAI_TELEGRAM_BOT_TOKEN", "123:abc"),
            ("AGENTICAI_TELEGRAM_MODE", "WEBHOOK"),
            ("AGENTICAI_TELEGRAM_WEBHOOK_SECRET", "s3cr3t_-X"),
        ])
        .unwrap();
        assert_eq!(loaded.settings.telegram_mode, TelegramMode::Webhook);
        assert!(loaded.warnings.iter().any(|w| w.contains("setWebhook")));
    }

    #[test]
    fn operational_warnings() {
        let loaded = load_env(&[("AGENTICAI_LLM_MODEL", "gpt")]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("AGENTICAI_LLM_MODEL ignored"))
        );
        let loaded = load_env(&[("AGENTICAI_S3_ENDPOINT", "http://127.0.0.1:5000")]).unwrap();
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("AGENTICAI_S3_ENDPOINT is ignored"))
        );
        let loaded = load_env(&[
            ("AGENTICAI_LLM_PROVIDER", "openai"),
            ("AGENTICAI_LLM_MODEL", "gpt-4o"),
        ])
        .unwrap();
        assert_eq!(
            loaded.settings.llm_base_url.as_deref(),
            Some("https://api.openai.com/v1")
        );
        assert!(
            loaded
                .settings
                .report()
                .contains("\"https://api.openai.com/v1\"  # default")
        );
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_file_with_secrets_warns() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = write_file("token = \"abc\"\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = load_from(Some(&path), &[]).unwrap();
        assert!(
            loaded.warnings.iter().any(|w| w.contains("chmod 600")),
            "{:?}",
            loaded.warnings
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_from(Some(&path), &[]).unwrap().warnings.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration(" 30m "), Ok(Duration::from_secs(1800)));
        assert!(parse_duration("30").is_err());
        let s = load_env(&[("AGENTICAI_SHUTDOWN_GRACE", "2m 30s")])
            .unwrap()
            .settings;
        assert_eq!(s.shutdown_grace, Duration::from_secs(150));
    }
}
