//! `git -c key=value`: configuration given on the command line.
//!
//! `git -c core.pager='sh -c …' log`, `git -c alias.x='!cmd' x`, `core.sshCommand`,
//! `core.fsmonitor`, `core.hooksPath`, `diff.external`, filters and many more make git run
//! arbitrary programs, so a read-only subcommand is no longer read-only. Only keys listed as
//! harmless in `rules/git.toml` (`[git] safe_config`) pass; any other key is L2.

use domain::RiskTier;

use super::argv::Parsed;
use super::glob::glob_match;
use super::{Acc, Ctx};

/// Checks configuration options given before the subcommand (and `clone -c/--config`).
pub(crate) fn check(parsed: &Parsed, label: &str, ctx: &Ctx, acc: &mut Acc) {
    let is_clone = parsed
        .positionals
        .first()
        .is_some_and(|w| w.literal() == Some("clone"));
    for f in &parsed.flags {
        let config = match f.name.as_str() {
            "-c" => f.before_sub || is_clone,
            "--config" => is_clone,
            "--config-env" | "--exec-path" => {
                if f.value.is_some() {
                    acc.raise(
                        RiskTier::L2Destructive,
                        format!(
                            "{label} {}: can make git run arbitrary programs (L2)",
                            f.name
                        ),
                    );
                }
                false
            }
            _ => false,
        };
        if !config {
            continue;
        }
        let Some(v) = &f.value else { continue };
        if v.dynamic {
            acc.raise(
                RiskTier::L2Destructive,
                format!("{label} {}: a setting computed at run time (L2)", f.name),
            );
            continue;
        }
        let key = v.text.split('=').next().unwrap_or("").to_ascii_lowercase();
        if !ctx
            .rules
            .git_safe_config
            .iter()
            .any(|g| glob_match(g, &key))
        {
            acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "{label} {} {key}=…: this setting can make git run arbitrary programs \
                     (pager, editor, alias, ssh command, hooks, filters) (L2)",
                    f.name
                ),
            );
        }
    }
}
