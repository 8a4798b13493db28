//! The one-shot CLI commands (everything but `serve`): each opens the shared services, does one
//! thing through the coordinator, and prints one JSON line.

use std::process::ExitCode;

use coordinator::{Actor, CoordError};

use crate::cli::{InviteCreate, OrgInit, PolicyExplain, TokenCreate, UserCreate};
use crate::config::Settings;
use crate::http::code_json;
use crate::services;

/// A failed command: the message for stderr and the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, code: 1 }
    }
}

impl From<CoordError> for Failure {
    fn from(e: CoordError) -> Self {
        Failure {
            message: match e {
                CoordError::Internal(detail) => format!("internal error: {detail}"),
                other => other.to_string(),
            },
            code: 1,
        }
    }
}

/// Prints one JSON line (fields in declaration order).
fn print_json(value: &impl serde::Serialize) -> Result<ExitCode, Failure> {
    let line = serde_json::to_string(value).map_err(|e| format!("cannot encode output: {e}"))?;
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// `agenticai migrate`.
pub async fn migrate(settings: &Settings) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    services.db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `agenticai org init`.
pub async fn org_init(settings: &Settings, args: &OrgInit) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    let init = services.coord.init_org(&args.name, &args.admin).await?;
    services.db.close().await;
    print_json(&init)
}

/// `agenticai invite create`.
pub async fn invite_create(settings: &Settings, args: &InviteCreate) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    let (code, role) = match &args.user {
        Some(user_id) => {
            services
                .coord
                .create_link_code(Actor::Operator, user_id, args.ttl)
                .await?
        }
        None => {
            let role = args.role_or_default();
            let code = services
                .coord
                .create_invite(Actor::Operator, role, args.ttl)
                .await?;
            (code, role)
        }
    };
    services.db.close().await;
    print_json(&code_json(&code, role))
}

/// `agenticai user create`.
pub async fn user_create(settings: &Settings, args: &UserCreate) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    let (user, token) = services
        .coord
        .create_user(Actor::Operator, &args.name, args.role)
        .await?;
    services.db.close().await;
    print_json(&serde_json::json!({
        "user_id": user.user_id,
        "role": user.role,
        "token": token.token,
    }))
}

/// `agenticai token create`.
pub async fn token_create(settings: &Settings, args: &TokenCreate) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    let token = services
        .coord
        .create_token(Actor::Operator, &args.user, args.ttl)
        .await?;
    services.db.close().await;
    print_json(&serde_json::json!({"token": token.token, "expires_at": token.expires_at}))
}

/// `agenticai policy explain`: exit 2 for an unknown user or environment (bad arguments).
pub async fn policy_explain(
    settings: &Settings,
    args: &PolicyExplain,
) -> Result<ExitCode, Failure> {
    let services = services::open(settings).await?;
    let explained = services
        .coord
        .explain(
            Actor::Operator,
            args.user.as_ref(),
            &args.command_line(),
            args.environment.as_deref(),
        )
        .await;
    services.db.close().await;
    match explained {
        Ok(explanation) => print_json(&explanation),
        Err(e @ (CoordError::NotFound(_) | CoordError::Invalid { .. })) => Err(Failure {
            message: e.to_string(),
            code: 2,
        }),
        Err(e) => Err(e.into()),
    }
}

/// The most `agenticai policy scan` reads from stdin.
pub const SCAN_MAX_INPUT: u64 = 1024 * 1024;

/// `agenticai policy scan`: scans stdin as untrusted input (tool output), prints
/// `{"flagged":bool,"reasons":[…]}` and exits 0 whatever it found. Input over 1 MiB is refused
/// (exit 2) rather than scanned in part; bytes that are not UTF-8 are scanned as U+FFFD.
pub fn policy_scan(input: impl std::io::Read) -> Result<ExitCode, Failure> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    input
        .take(SCAN_MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if bytes.len() as u64 > SCAN_MAX_INPUT {
        return Err(Failure {
            message: format!(
                "input too large: `policy scan` reads at most {SCAN_MAX_INPUT} bytes (1 MiB) from stdin"
            ),
            code: 2,
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let report = policy::scan::scan(&text, policy::scan::Source::ToolOutput);
    print_json(&serde_json::json!({"flagged": report.flagged, "reasons": report.reasons}))
}
