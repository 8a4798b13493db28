//! Environments (CONTRACT.md "Environment"): admin-defined bundles of egress hosts and secret
//! names that a task may use. Everyone authenticated may read them (they are shown in approvals
//! anyway); only admins and the operator change them. Every change is audited.
//!
//! Validation (422 `invalid_environment`, with a message naming the offending entry):
//! - name: lowercase letters, digits, `_` and `-`, 1 to 32 characters (like ids);
//! - egress entries: `host`, `host:port`, `IPv4[:port]` or `[IPv6][:port]` (a bare IPv6 address is
//!   accepted and stored bracketed). Hostnames are stored lowercase without a trailing dot. No
//!   schemes, paths, user info or wildcards: each host is listed exactly. An entry without a port
//!   allows ports 80 and 443 only. At most [`MAX_EGRESS`] entries; duplicates are dropped;
//! - secret names: `[A-Z_][A-Z0-9_]*`, at most 64 characters, at most [`MAX_SECRETS`]; each must
//!   name a stored secret when the environment is saved (422 `unknown_secret`). A secret deleted
//!   later makes tasks in the environment fail at start, naming the missing secret;
//! - description: at most [`MAX_DESCRIPTION_CHARS`] characters, no control characters except
//!   newline and tab.

use std::net::{Ipv4Addr, Ipv6Addr};

use domain::Id;
use store::audit::{self, NewAuditEvent};
use store::environments::{self as env_store, Environment};

use crate::Coordinator;
use crate::error::{CoordError, Result};
use crate::identity::Actor;

/// Most egress entries per environment.
pub const MAX_EGRESS: usize = 64;
/// Most secrets per environment.
pub const MAX_SECRETS: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest environment name.
pub const MAX_ENVIRONMENT_NAME: usize = 32;
/// Longest secret name.
pub const MAX_SECRET_NAME: usize = 64;

/// What a `PUT` gives for an environment (its name comes from the path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentSpec {
    pub egress: Vec<String>,
    pub secrets: Vec<String>,
    pub description: String,
}

fn invalid(message: impl Into<String>) -> CoordError {
    CoordError::invalid("invalid_environment", message)
}

/// Whether `name` is a valid environment name (the syntax of ids).
pub fn is_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ENVIRONMENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `name` is a valid secret name: `[A-Z_][A-Z0-9_]*`, at most 64 characters (so it is a
/// valid environment variable name).
pub fn is_secret_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'_'))
        && name.len() <= MAX_SECRET_NAME
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_hostname(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    // A last label of digits only is a malformed IPv4 address, not a name.
    labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_port(port: &str, entry: &str) -> std::result::Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!(
            "egress entry {entry:?}: the port must be a number from 1 to 65535"
        )),
    }
}

/// Checks one egress entry and returns its normal form (see the module docs), or why not.
pub fn normalize_egress(entry: &str) -> std::result::Result<String, String> {
    let e = entry.trim();
    if e.is_empty() {
        return Err("egress entries must not be empty".to_owned());
    }
    if e.contains("://") {
        return Err(format!(
            "egress entry {entry:?}: write host[:port] without a scheme (e.g. api.github.com:443)"
        ));
    }
    if e.contains('*') {
        return Err(format!(
            "egress entry {entry:?}: wildcards are not supported; list each host"
        ));
    }
    if e.bytes()
        .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@') || b.is_ascii_whitespace() || !b.is_ascii())
    {
        return Err(format!(
            "egress entry {entry:?}: only a host name or IP address with an optional port, \
             no path, user or spaces"
        ));
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("egress entry {entry:?}: missing ']' after the IPv6 address"))?;
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("egress entry {entry:?}: {addr:?} is not an IPv6 address"))?;
        return match after {
            "" => Ok(format!("[{ip}]")),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok(format!("[{ip}]:{}", parse_port(port, entry)?)),
                None => Err(format!("egress entry {entry:?}: expected :PORT after ']'")),
            },
        };
    }
    if let Ok(ip) = e.parse::<Ipv6Addr>() {
        return Ok(format!("[{ip}]"));
    }
    let (host, port) = match e.split_once(':') {
        Some((h, p)) => (h, Some(parse_port(p, entry)?)),
        None => (e, None),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
        ip.to_string()
    } else if is_hostname(host) {
        host.to_owned()
    } else {
        return Err(format!(
            "egress entry {entry:?}: {host:?} is not a valid host name or IP address"
        ));
    };
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Checks and normalises a whole environment.
pub fn validate_environment(name: &str, spec: EnvironmentSpec) -> Result<Environment> {
    if !is_environment_name(name) {
        return Err(invalid(format!(
            "environment name {name:?}: use 1 to {MAX_ENVIRONMENT_NAME} lowercase letters, \
             digits, '_' or '-'"
        )));
    }
    if spec.egress.len() > MAX_EGRESS {
        return Err(invalid(format!(
            "at most {MAX_EGRESS} egress entries per environment"
        )));
    }
    if spec.secrets.len() > MAX_SECRETS {
        return Err(invalid(format!(
            "at most {MAX_SECRETS} secrets per environment"
        )));
    }
    let mut egress: Vec<String> = Vec::with_capacity(spec.egress.len());
    for entry in &spec.egress {
        let normal = normalize_egress(entry).map_err(invalid)?;
        if !egress.contains(&normal) {
            egress.push(normal);
        }
    }
    let mut secrets: Vec<String> = Vec::with_capacity(spec.secrets.len());
    for secret in spec.secrets {
        if !is_secret_name(&secret) {
            return Err(invalid(format!(
                "secret name {secret:?}: use A-Z, 0-9 and '_', not starting with a digit, \
                 at most {MAX_SECRET_NAME} characters"
            )));
        }
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    if spec.description.chars().count() > MAX_DESCRIPTION_CHARS
        || spec
            .description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(format!(
            "the description must be at most {MAX_DESCRIPTION_CHARS} printable characters"
        )));
    }
    Ok(Environment {
        name: name.to_owned(),
        egress,
        secrets,
        description: spec.description,
    })
}

pub(crate) fn actor_id<'a>(actor: &Actor<'a>) -> Option<&'a Id> {
    match actor {
        Actor::Operator => None,
        Actor::User(u) => Some(&u.user_id),
    }
}

fn audit_data(env: &Environment) -> serde_json::Value {
    serde_json::json!({
        "name": env.name,
        "egress": env.egress,
        "secrets": env.secrets,
        "description": env.description,
    })
}

impl Coordinator {
    /// Every environment, most recently changed first (any authenticated caller).
    pub async fn list_environments(&self, _actor: Actor<'_>) -> Result<Vec<Environment>> {
        Ok(env_store::list(&self.db).await?)
    }

    /// Environment `name` (any authenticated caller); 404 when unknown.
    pub async fn get_environment(&self, _actor: Actor<'_>, name: &str) -> Result<Environment> {
        if !is_environment_name(name) {
            return Err(CoordError::NotFound("environment"));
        }
        env_store::get(&self.db, name)
            .await?
            .ok_or(CoordError::NotFound("environment"))
    }

    /// Creates or replaces environment `name` (admins); audited `environment.created` or
    /// `environment.updated` (with the previous grants). Returns it as stored.
    pub async fn put_environment(
        &self,
        actor: Actor<'_>,
        name: &str,
        spec: EnvironmentSpec,
    ) -> Result<Environment> {
        actor.require_admin()?;
        let env = validate_environment(name, spec)?;
        let missing = store::secrets::missing(&self.db, &env.secrets).await?;
        if !missing.is_empty() {
            return Err(CoordError::invalid(
                "unknown_secret",
                format!(
                    "no secret named {}: set it first with PUT /v1/secrets/NAME",
                    missing.join(", ")
                ),
            ));
        }
        let mut tx = self.db.begin().await?;
        let before = env_store::put(&mut tx, &env).await?;
        let (kind, data) = match &before {
            None => ("environment.created", audit_data(&env)),
            Some(old) => {
                let mut data = audit_data(&env);
                data["before"] = audit_data(old);
                ("environment.updated", data)
            }
        };
        audit::append(&mut tx, NewAuditEvent::new(kind, data).by(actor_id(&actor))).await?;
        tx.commit().await?;
        Ok(env)
    }

    /// Deletes environment `name` (admins); audited `environment.deleted`. Returns what it was.
    pub async fn delete_environment(&self, actor: Actor<'_>, name: &str) -> Result<Environment> {
        actor.require_admin()?;
        if !is_environment_name(name) {
            return Err(CoordError::NotFound("environment"));
        }
        let mut tx = self.db.begin().await?;
        let Some(env) = env_store::delete(&mut tx, name).await? else {
            return Err(CoordError::NotFound("environment"));
        };
        audit::append(
            &mut tx,
            NewAuditEvent::new("environment.deleted", audit_data(&env)).by(actor_id(&actor)),
        )
        .await?;
        tx.commit().await?;
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_entries_normalise_or_explain() {
        for (input, out) in [
            ("api.github.com", "api.github.com"),
            ("API.GitHub.com.:443", "api.github.com:443"),
            ("10.0.0.1:8080", "10.0.0.1:8080"),
            ("[::1]:443", "[::1]:443"),
            ("::1", "[::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(normalize_egress(input).as_deref(), Ok(out), "{input}");
        }
        for bad in [
            "",
            "https://api.github.com",
            "api.github.com/path",
            "*.example.com",
            "user@host",
            "host:0",
            "host:65536",
            "host:https",
            "host:+80",
            "-bad.com",
            "bad_host.com",
            "1.2.3",
            "[::1",
            "[nothost]:80",
            "a b",
            "héllo.com",
            "a:1:2",
        ] {
            assert!(normalize_egress(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn names() {
        assert!(is_secret_name("GITHUB_TOKEN"));
        assert!(is_secret_name("_X1"));
        assert!(!is_secret_name("1X"));
        assert!(!is_secret_name("lower"));
        assert!(!is_secret_name(""));
        assert!(!is_secret_name(&"A".repeat(65)));
        assert!(is_environment_name("prod-eu_1"));
        assert!(!is_environment_name("Prod"));
        assert!(!is_environment_name(&"a".repeat(33)));
    }
}
