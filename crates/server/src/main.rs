//! `agenticai`: the one binary of AgenticAI, a secure self-hosted agent for DevOps teams.
//!
//! Every command reads the same configuration, so the CLI and a running server share one
//! database. See CONTRACT.md for the commands and README.md for a tour.

mod audit_cmd;
mod background;
mod chat;
mod cli;
mod commands;
mod config;
mod execution;
mod http;
mod keys;
mod serve;
mod services;
mod telegram;

use std::process::ExitCode;

use clap::Parser;
use cli::{
    AuditCommand, Cli, Command, ConfigCommand, InviteCommand, OrgCommand, PolicyCommand,
    TokenCommand, UserCommand,
};
use commands::Failure;
use config::Settings;

fn main() -> ExitCode {
    // Inside a sandbox this binary is the shim (bound read-only at a fixed path): it confines
    // itself and execs the command. No configuration, logging or runtime is set up for it.
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(execution::SHIM_SUBCOMMAND)) {
        executor::shim::shim_main(args.collect());
    }
    let cli = Cli::parse();
    let loaded = match config::load(cli.config.as_deref(), &config::process_env()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agenticai: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&loaded.settings.log);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let settings = loaded.settings;
    if let Command::Config(ConfigCommand::Check) = cli.command {
        print!("{}", settings.report());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agenticai: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, &settings)) {
        Ok(code) => code,
        Err(Failure { message, code }) => {
            eprintln!("agenticai: {message}");
            ExitCode::from(code)
        }
    }
}

async fn dispatch(command: Command, settings: &Settings) -> Result<ExitCode, Failure> {
    match command {
        Command::Serve => serve::run(settings)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure::from),
        Command::Migrate => commands::migrate(settings).await,
        Command::Org(OrgCommand::Init(args)) => commands::org_init(settings, &args).await,
        Command::Invite(InviteCommand::Create(args)) => {
            commands::invite_create(settings, &args).await
        }
        Command::User(UserCommand::Create(args)) => commands::user_create(settings, &args).await,
        Command::Token(TokenCommand::Create(args)) => commands::token_create(settings, &args).await,
        Command::Config(ConfigCommand::Check) => Ok(ExitCode::SUCCESS),
        Command::Audit(AuditCommand::Verify) => audit_cmd::audit_verify(settings).await,
        Command::Policy(PolicyCommand::Explain(args)) => {
            commands::policy_explain(settings, &args).await
        }
        Command::Policy(PolicyCommand::Scan) => commands::policy_scan(std::io::stdin().lock()),
        Command::Chat => chat::run(settings).await,
    }
}

/// Logs go to stderr (stdout carries command output), filtered by `AGENTICAI_LOG`.
fn init_logging(filter: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Postgres NOTICEs ("relation already exists, skipping") are noise at info.
    if let Ok(quiet) = "sqlx::postgres::notice=warn".parse() {
        filter = filter.add_directive(quiet);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
