//! The command line of `agenticai`: exactly the commands of CONTRACT.md "Binary and commands".
//!
//! Parsing only: each command is a plain value that `main` dispatches. Bad arguments make clap
//! print a usage error and exit with status 2, which is what the contract asks of
//! `policy explain` and a careful operator expects of every command.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use domain::{Id, Role};

/// The longest `--ttl` accepted for invites and tokens.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The default lifetime of an invite or link code (CONTRACT.md: 24h).
pub const DEFAULT_INVITE_TTL: &str = "24h";

/// `agenticai`: one binary for the server and its administration.
#[derive(Debug, Parser)]
#[command(
    name = "agenticai",
    version,
    about = "AgenticAI: a secure self-hosted agent for DevOps teams",
    after_help = "Configuration comes from AGENTICAI_* environment variables over an optional TOML \
                  file; `agenticai config check` prints the effective values."
)]
pub struct Cli {
    /// Configuration file (default: agenticai.toml in the working directory, if it exists).
    #[arg(long, global = true, value_name = "FILE", env = "AGENTICAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role: HTTP API, Telegram ingress, coordinator, execution manager.
    Serve,
    /// Apply database migrations.
    Migrate,
    /// The deployment's organisation.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Invite and link codes.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The policy gate and the untrusted-input scanner.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Chat with the agent in the terminal, over the HTTP API (AGENTICAI_URL, AGENTICAI_TOKEN).
    Chat,
}

/// `agenticai org …`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// One-time bootstrap: create the org and its first admin; prints their token and link code.
    Init(OrgInit),
}

/// Arguments of `agenticai org init`.
#[derive(Debug, Args)]
pub struct OrgInit {
    /// The organisation's name.
    #[arg(long)]
    pub name: String,
    /// The first admin's name.
    #[arg(long, value_name = "NAME")]
    pub admin: String,
}

/// `agenticai invite …`
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create a single-use invite code (new user), or with --user a link code (existing user).
    Create(InviteCreate),
}

/// Arguments of `agenticai invite create`.
#[derive(Debug, Args)]
pub struct InviteCreate {
    /// Role of the user the invite creates [default: member].
    #[arg(long, value_parser = role_parser(&["member", "admin"]))]
    pub role: Option<Role>,
    /// How long the code stays redeemable (e.g. 30m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_INVITE_TTL, value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Make a link code that attaches a Telegram account to this existing user.
    #[arg(long, value_name = "USER_ID", conflicts_with = "role")]
    pub user: Option<Id>,
}

impl InviteCreate {
    /// The role of the invited user: the one given, else member. Meaningless for a link code.
    pub fn role_or_default(&self) -> Role {
        self.role.unwrap_or(Role::Member)
    }
}

/// `agenticai user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user without Telegram (API, `agenticai chat`, or `service` for CI); prints a token.
    Create(UserCreate),
}

/// Arguments of `agenticai user create`.
#[derive(Debug, Args)]
pub struct UserCreate {
    /// The user's name.
    #[arg(long)]
    pub name: String,
    /// The user's role; `service` is for CI jobs and other non-humans.
    #[arg(long, default_value = "member", value_parser = role_parser(&["member", "admin", "service"]))]
    pub role: Role,
}

/// `agenticai token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a new API token for a user.
    Create(TokenCreate),
}

/// Arguments of `agenticai token create`.
#[derive(Debug, Args)]
pub struct TokenCreate {
    /// The user the token belongs to.
    #[arg(long, value_name = "USER_ID")]
    pub user: Id,
    /// How long the token is valid (e.g. 30d); without it the token does not expire.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

/// `agenticai audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole audit chain and its checkpoints (exit 0 intact, 1 tampered, 2 unchecked).
    Verify,
}

/// `agenticai config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted; fail with the reason if invalid.
    Check,
}

/// `agenticai policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Classify a shell command and decide it under the current org policy.
    Explain(PolicyExplain),
    /// Scan text read from stdin as untrusted input.
    Scan,
}

/// Arguments of `agenticai policy explain`.
#[derive(Debug, Args)]
#[command(
    override_usage = "agenticai policy explain [--user USER_ID] [--environment NAME] -- COMMAND..."
)]
pub struct PolicyExplain {
    /// Decide for this user [default: a member with bypass OFF].
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<Id>,
    /// Decide as if the task ran in this environment.
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// The command, after `--`; its words are joined by single spaces, so a whole command line
    /// may also be one quoted argument.
    #[arg(
        value_name = "COMMAND",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<String>,
}

impl PolicyExplain {
    /// The command line to classify: the words joined by single spaces.
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }
}

/// A role parser limited to `allowed`, which lists them in `--help` and in errors.
fn role_parser(allowed: &'static [&'static str]) -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(allowed).try_map(|s| s.parse::<Role>())
}

/// Parses a `--ttl`: a humantime duration greater than zero and at most 365 days.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = crate::config::parse_duration(s)?;
    if ttl.is_zero() {
        return Err(format!("{s:?} is zero; a TTL must be longer than that"));
    }
    if ttl > MAX_TTL {
        return Err(format!("{s:?} is longer than the maximum of 365d"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("agenticai").chain(args.iter().copied()))
    }

    fn explain(args: &[&str]) -> PolicyExplain {
        match parse(args).unwrap().command {
            Command::Policy(PolicyCommand::Explain(e)) => e,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_command_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn simple_commands() {
        assert!(matches!(parse(&["serve"]).unwrap().command, Command::Serve));
        assert!(matches!(
            parse(&["migrate"]).unwrap().command,
            Command::Migrate
        ));
        assert!(matches!(parse(&["chat"]).unwrap().command, Command::Chat));
        assert!(matches!(
            parse(&["audit", "verify"]).unwrap().command,
            Command::Audit(AuditCommand::Verify)
        ));
        assert!(matches!(
            parse(&["config", "check"]).unwrap().command,
            Command::Config(ConfigCommand::Check)
        ));
        assert!(matches!(
            parse(&["policy", "scan"]).unwrap().command,
            Command::Policy(PolicyCommand::Scan)
        ));
        assert!(parse(&[]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }

    #[test]
    fn config_is_global() {
        let cli = parse(&["config", "check", "--config", "/etc/agenticai.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/agenticai.toml")));
        let cli = parse(&["--config", "a.toml", "serve"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
    }

    #[test]
    fn org_init() {
        match parse(&["org", "init", "--name", "Acme", "--admin", "alice"])
            .unwrap()
            .command
        {
            Command::Org(OrgCommand::Init(o)) => {
                assert_eq!(o.name, "Acme");
                assert_eq!(o.admin, "alice");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["org", "init", "--name", "Acme"]).is_err());
    }

    #[test]
    fn invite_create() {
        let invite = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Invite(InviteCommand::Create(i))) => Ok(i),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e),
        };
        let i = invite(&["invite", "create"]).unwrap();
        assert_eq!(i.role, None);
        assert_eq!(i.role_or_default(), Role::Member);
        assert_eq!(i.ttl, Duration::from_secs(24 * 3600));
        assert!(i.user.is_none());

        let i = invite(&["invite", "create", "--role", "admin", "--ttl", "7d"]).unwrap();
        assert_eq!(i.role, Some(Role::Admin));
        assert_eq!(i.ttl, Duration::from_secs(7 * 86400));

        let i = invite(&["invite", "create", "--user", "usr_abc123", "--ttl", "30m"]).unwrap();
        assert_eq!(i.user.as_ref().map(Id::as_str), Some("usr_abc123"));
        assert_eq!(i.ttl, Duration::from_secs(1800));

        let e = invite(&["invite", "create", "--user", "usr_a", "--role", "admin"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(invite(&["invite", "create", "--role", "service"]).is_err());
        assert!(invite(&["invite", "create", "--user", "Not An Id"]).is_err());
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(parse_ttl("365d"), Ok(MAX_TTL));
        let e = parse_ttl("0s").unwrap_err();
        assert!(e.contains("zero"), "{e}");
        let e = parse_ttl("366d").unwrap_err();
        assert!(e.contains("365d"), "{e}");
        assert!(parse_ttl("soon").is_err());
        let e = parse(&["token", "create", "--user", "usr_a", "--ttl", "0s"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn user_and_token_create() {
        match parse(&["user", "create", "--name", "ci"]).unwrap().command {
            Command::User(UserCommand::Create(u)) => {
                assert_eq!(u.name, "ci");
                assert_eq!(u.role, Role::Member);
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse(&["user", "create", "--name", "ci", "--role", "service"])
            .unwrap()
            .command
        {
            Command::User(UserCommand::Create(u)) => assert_eq!(u.role, Role::Service),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["user", "create", "--name", "x", "--role", "root"]).is_err());
        match parse(&["token", "create", "--user", "usr_a"])
            .unwrap()
            .command
        {
            Command::Token(TokenCommand::Create(t)) => {
                assert_eq!(t.user.as_str(), "usr_a");
                assert_eq!(t.ttl, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["token", "create"]).is_err());
    }

    #[test]
    fn policy_explain_takes_the_words_after_double_dash() {
        let e = explain(&["policy", "explain", "--", "kubectl", "delete", "pod", "x"]);
        assert_eq!(e.command_line(), "kubectl delete pod x");
        assert!(e.user.is_none() && e.environment.is_none());

        let e = explain(&["policy", "explain", "--", "git push --force"]);
        assert_eq!(e.command_line(), "git push --force");

        let e = explain(&[
            "policy",
            "explain",
            "--user",
            "usr_bob",
            "--environment",
            "prod",
            "--",
            "rm",
            "-rf",
            "/",
        ]);
        assert_eq!(e.user.as_ref().map(Id::as_str), Some("usr_bob"));
        assert_eq!(e.environment.as_deref(), Some("prod"));
        assert_eq!(e.command_line(), "rm -rf /");

        // Options after `--` belong to the command, not to us.
        let e = explain(&["policy", "explain", "--", "curl", "--user", "a:b", "x"]);
        assert_eq!(e.command_line(), "curl --user a:b x");
        assert!(e.user.is_none());

        // Without `--`, a command that starts with a word still works.
        let e = explain(&["policy", "explain", "ls", "-la"]);
        assert_eq!(e.command_line(), "ls -la");
    }

    #[test]
    fn policy_explain_rejects_bad_arguments_with_exit_2() {
        let e = parse(&["policy", "explain"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["policy", "explain", "--"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        // A misspelt option is an error, not part of the command.
        let e = parse(&["policy", "explain", "--enviroment", "prod", "--", "ls"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = parse(&["policy", "explain", "--user", "Bad Id", "--", "ls"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
