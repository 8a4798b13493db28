//! The rule table: what each program does at which tier, kept as data in `rules/*.toml`.
//!
//! Why data: the table is what reviewers and approvers argue about ("is `helm rollback` L1?"),
//! and it grows by one entry per program. Keeping it in TOML means adding a program is adding
//! an entry, every entry carries the commands it must and must not match (checked by tests, see
//! [`Rules::check_examples`]), and the code only holds the few named analyses that need real
//! parsing (git config keys, find actions, sed/awk scripts, SQL, shells).
//!
//! The files are compiled in with `include_str!` and parsed once. A file that does not parse
//! or validate is an error, not a panic: the classifier then fails closed (every command L2).
//!
//! Schema, per `[[program]]`:
//! - `names`: program names (basenames; `*` globs allowed, e.g. `mkfs.*`);
//! - `tier`, `what`: the tier and a short description when nothing more specific applies;
//! - `value_flags`, `optional_value_flags`, `flags`: how the program's options parse
//!   (options that take the next word, options that take only an attached value, and known
//!   boolean options that may precede a subcommand); `single_dash = true` for `find`-style
//!   `-name` options; `ignore_case = true` for case-insensitive subcommands (redis);
//! - `[[program.sub]]`: the tier by subcommand path (`"stash list"`, `"* describe-*"`,
//!   `"** delete"`); the longest matching path wins. Unlisted subcommands get `unknown_sub`
//!   (default L2), no subcommand at all gets `bare` (default: the program tier);
//! - `[[program.rule]]`: conditions that *raise* the tier (never lower it): `sub` prefixes,
//!   `flags` present (with `values` / `not_values` on their values), `not_flags` absent, `args`
//!   globs, `min_args`; with `target` + `effect` the rule looks at the paths it writes, deletes,
//!   modifies or reads, and `on` gives the outcome per path class (`root`, `home`, `toplevel`,
//!   `system`, `device`, `secret`, `dynamic`, `plain`), e.g. `on = { root = "forbid" }`;
//! - `wrapper`: the program runs another command (sudo, env, timeout, xargs …), which is
//!   classified in turn;
//! - `handler`: a named analysis in code (`git`, `find`, `sed`, `awk`, `sql`, `shell`, `ssh`,
//!   `tar`, `eval`, `trap`);
//! - `examples` / `counterexamples` on programs, subs and rules.
//!
//! Besides programs: `[paths]` (path classes), `[[env]]` (dangerous environment variables),
//! `[sql]` (SQL statement and function tiers) and `[git]` (harmless `git -c` keys).

use std::collections::{BTreeMap, HashMap};

use domain::RiskTier;
use serde::Deserialize;

use super::glob::glob_match;

/// The rule files, compiled in.
const FILES: &[(&str, &str)] = &[
    ("core.toml", include_str!("../../rules/core.toml")),
    ("shell.toml", include_str!("../../rules/shell.toml")),
    ("git.toml", include_str!("../../rules/git.toml")),
    ("kube.toml", include_str!("../../rules/kube.toml")),
    ("infra.toml", include_str!("../../rules/infra.toml")),
    ("system.toml", include_str!("../../rules/system.toml")),
    ("packages.toml", include_str!("../../rules/packages.toml")),
    ("network.toml", include_str!("../../rules/network.toml")),
    ("db.toml", include_str!("../../rules/db.toml")),
    ("cloud.toml", include_str!("../../rules/cloud.toml")),
    ("paths.toml", include_str!("../../rules/paths.toml")),
];

/// A tier as written in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum TierName {
    L0,
    L1,
    L2,
    L3,
}

impl From<TierName> for RiskTier {
    fn from(t: TierName) -> RiskTier {
        match t {
            TierName::L0 => RiskTier::L0Readonly,
            TierName::L1 => RiskTier::L1Mutating,
            TierName::L2 => RiskTier::L2Destructive,
            TierName::L3 => RiskTier::L3Privileged,
        }
    }
}

/// What a rule (or a path class) leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Skip: the path does not count (e.g. `/dev/null`).
    Skip,
    Tier(RiskTier),
    /// Never allowed; the tier is L3.
    Forbid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum OutcomeName {
    L0,
    L1,
    L2,
    L3,
    #[serde(rename = "forbid")]
    Forbid,
    #[serde(rename = "skip")]
    Skip,
}

impl From<OutcomeName> for Outcome {
    fn from(o: OutcomeName) -> Outcome {
        match o {
            OutcomeName::L0 => Outcome::Tier(RiskTier::L0Readonly),
            OutcomeName::L1 => Outcome::Tier(RiskTier::L1Mutating),
            OutcomeName::L2 => Outcome::Tier(RiskTier::L2Destructive),
            OutcomeName::L3 => Outcome::Tier(RiskTier::L3Privileged),
            OutcomeName::Forbid => Outcome::Forbid,
            OutcomeName::Skip => Outcome::Skip,
        }
    }
}

/// Path classes, most specific first (see `paths.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PathClass {
    Null,
    Device,
    Root,
    Home,
    Toplevel,
    Secret,
    System,
    Dynamic,
    Plain,
}

impl PathClass {
    fn parse(s: &str) -> Option<PathClass> {
        Some(match s {
            "null" => PathClass::Null,
            "device" => PathClass::Device,
            "root" => PathClass::Root,
            "home" => PathClass::Home,
            "toplevel" => PathClass::Toplevel,
            "secret" => PathClass::Secret,
            "system" => PathClass::System,
            "dynamic" => PathClass::Dynamic,
            "plain" => PathClass::Plain,
            _ => return None,
        })
    }

    /// How the class reads in a reason, before the path.
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            PathClass::Null => "",
            PathClass::Device => "the disk device ",
            PathClass::Root => "the root directory ",
            PathClass::Home => "the home directory ",
            PathClass::Toplevel => "the system directory ",
            PathClass::Secret => "the credentials file ",
            PathClass::System => "the system path ",
            PathClass::Dynamic => "a path computed at run time ",
            PathClass::Plain => "",
        }
    }
}

/// What a targeted rule does to its paths; decides the default outcome per path class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Effect {
    Write,
    Delete,
    Modify,
    Read,
}

impl Effect {
    /// The outcome for a path of `class` when the rule's `on` does not say.
    pub(crate) fn default_outcome(self, class: PathClass, tier: RiskTier) -> Outcome {
        use PathClass::*;
        match (self, class) {
            (_, Null) => Outcome::Skip,
            (Effect::Write, Device) => Outcome::Forbid,
            (Effect::Read, Device | Secret) => Outcome::Tier(RiskTier::L2Destructive.max(tier)),
            (Effect::Read, _) => Outcome::Tier(tier),
            (_, Device | Root | Home | Toplevel | Secret | System) => {
                Outcome::Tier(RiskTier::L3Privileged)
            }
            (_, Dynamic) => Outcome::Tier(RiskTier::L2Destructive.max(tier)),
            (_, Plain) => Outcome::Tier(tier),
        }
    }
}

/// Which words a targeted rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every positional after the subcommand.
    Args,
    /// The last positional, when there are at least two (cp/mv destination).
    Last,
    /// Every positional but the last, when there are at least two (cp/mv sources).
    AllButLast,
    /// The values of the flags the rule matched.
    FlagValues,
    /// Positionals `KEY=value`: the value (dd `of=`).
    Kv(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    program: Vec<ProgramSpec>,
    #[serde(default)]
    paths: Option<PathsSpec>,
    #[serde(default)]
    env: Vec<EnvSpec>,
    #[serde(default)]
    sql: Option<SqlSpec>,
    #[serde(default)]
    git: Option<GitSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramSpec {
    names: Vec<String>,
    tier: TierName,
    what: String,
    #[serde(default)]
    value_flags: Vec<String>,
    #[serde(default)]
    optional_value_flags: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    single_dash: bool,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default)]
    unknown_sub: Option<TierName>,
    #[serde(default)]
    bare: Option<TierName>,
    #[serde(default)]
    handler: Option<String>,
    #[serde(default)]
    shell_code_flags: Vec<String>,
    #[serde(default)]
    wrapper: Option<WrapperSpec>,
    #[serde(default)]
    sql: Option<SqlConf>,
    #[serde(default)]
    sub: Vec<SubSpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counterexamples: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubSpec {
    path: Vec<String>,
    tier: TierName,
    what: String,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counterexamples: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    sub: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    not_flags: Vec<String>,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    not_values: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    min_args: Option<usize>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    effect: Option<Effect>,
    #[serde(default)]
    on: BTreeMap<String, OutcomeName>,
    tier: TierName,
    #[serde(default)]
    forbid: bool,
    what: String,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counterexamples: Vec<String>,
}

/// How a wrapper finds the command it runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrapperSpec {
    /// The wrapper's options that take the next word as their value.
    #[serde(default)]
    pub value_flags: Vec<String>,
    /// Positionals of the wrapper before the command (`timeout DURATION cmd`).
    #[serde(default)]
    pub skip: usize,
    /// `NAME=value` words before the command set the command's environment (`env`).
    #[serde(default)]
    pub assignments: bool,
    /// With one of these, nothing is run (`command -v`).
    #[serde(default)]
    pub lookup_flags: Vec<String>,
    /// With one of these, the command words are joined and run by a shell (`sudo -s`).
    #[serde(default)]
    pub shell_flags: Vec<String>,
    /// The value of these options is split into a command line (`env -S`).
    #[serde(default)]
    pub split_flags: Vec<String>,
    /// The command words are joined and run by a shell (`watch`).
    #[serde(default)]
    pub shell_string: bool,
    /// The command when none is given (`xargs` runs `echo`).
    #[serde(default)]
    pub default_command: Vec<String>,
    /// The tier when no command is given; default: the wrapper's tier.
    #[serde(default)]
    pub no_command: Option<TierName>,
    /// The command gets further arguments the classifier cannot see (`xargs`).
    #[serde(default)]
    pub unseen_args: bool,
}

/// Where an SQL client finds its statements (see `sql.rs`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlConf {
    /// Options whose value is SQL (`psql -c`).
    #[serde(default)]
    pub statement_flags: Vec<String>,
    /// Options whose value is a file of SQL (`psql -f`): not visible.
    #[serde(default)]
    pub file_flags: Vec<String>,
    /// Options that need no statement (`psql -l`).
    #[serde(default)]
    pub info_flags: Vec<String>,
    /// The positional (0-based) that is SQL, if any (`sqlite3 DB SQL` → 1).
    #[serde(default)]
    pub statement_positional: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathsSpec {
    null: Vec<String>,
    device: Vec<String>,
    home: Vec<String>,
    toplevel: Vec<String>,
    secret: Vec<String>,
    system: Vec<String>,
    std_bin_dirs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSpec {
    names: Vec<String>,
    tier: TierName,
    what: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSpec {
    statement: Vec<SqlStatementSpec>,
    safe_functions: Vec<String>,
    #[serde(default)]
    function: Vec<SqlFunctionSpec>,
    #[serde(default)]
    keyword: Vec<SqlStatementSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlStatementSpec {
    words: Vec<String>,
    tier: TierName,
    what: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlFunctionSpec {
    names: Vec<String>,
    tier: TierName,
    what: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitSpec {
    safe_config: Vec<String>,
}

/// A compiled program entry.
#[derive(Debug)]
pub(crate) struct Program {
    pub names: Vec<String>,
    pub tier: RiskTier,
    pub what: String,
    pub value_flags: Vec<String>,
    pub optional_value_flags: Vec<String>,
    pub flags: Vec<String>,
    pub single_dash: bool,
    pub ignore_case: bool,
    pub unknown_sub: RiskTier,
    pub bare: RiskTier,
    pub handler: Option<Handler>,
    pub shell_code_flags: Vec<String>,
    pub wrapper: Option<WrapperSpec>,
    pub sql: Option<SqlConf>,
    pub subs: Vec<Sub>,
    pub rules: Vec<Rule>,
    /// Whether any rule looks at options: a run-time-computed word could then be an option.
    pub option_sensitive: bool,
    #[cfg_attr(not(test), allow(dead_code))]
    pub examples: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub counterexamples: Vec<String>,
}

/// A subcommand entry.
#[derive(Debug)]
pub(crate) struct Sub {
    pub paths: Vec<Vec<String>>,
    pub tier: RiskTier,
    pub what: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub examples: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub counterexamples: Vec<String>,
}

/// A raising rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub sub: Vec<Vec<String>>,
    pub flags: Vec<String>,
    pub not_flags: Vec<String>,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
    pub args: Vec<String>,
    pub min_args: Option<usize>,
    pub target: Option<Target>,
    pub effect: Effect,
    pub on: HashMap<PathClass, Outcome>,
    pub tier: RiskTier,
    pub forbid: bool,
    pub what: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub examples: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub counterexamples: Vec<String>,
}

/// The named analyses in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Git,
    Find,
    Sed,
    Awk,
    Sql,
    Shell,
    Ssh,
    Tar,
    Eval,
    Trap,
}

impl Handler {
    fn parse(s: &str) -> Option<Handler> {
        Some(match s {
            "git" => Handler::Git,
            "find" => Handler::Find,
            "sed" => Handler::Sed,
            "awk" => Handler::Awk,
            "sql" => Handler::Sql,
            "shell" => Handler::Shell,
            "ssh" => Handler::Ssh,
            "tar" => Handler::Tar,
            "eval" => Handler::Eval,
            "trap" => Handler::Trap,
            _ => return None,
        })
    }
}

/// Path classes as glob lists.
#[derive(Debug, Default)]
pub(crate) struct PathClasses {
    pub null: Vec<String>,
    pub device: Vec<String>,
    pub home: Vec<String>,
    pub toplevel: Vec<String>,
    pub secret: Vec<String>,
    pub system: Vec<String>,
    pub std_bin_dirs: Vec<String>,
}

/// A dangerous environment variable.
#[derive(Debug)]
pub(crate) struct EnvRule {
    pub names: Vec<String>,
    pub tier: RiskTier,
    pub what: String,
}

/// Statement or keyword entries as a lookup table: each word sequence upper-cased and split, with
/// its tier and description.
fn sql_words(specs: Vec<SqlStatementSpec>) -> Vec<(Vec<String>, RiskTier, String)> {
    specs
        .into_iter()
        .flat_map(|st| {
            let tier: RiskTier = st.tier.into();
            let what = st.what;
            st.words.into_iter().map(move |w| {
                (
                    w.split_whitespace().map(str::to_ascii_uppercase).collect(),
                    tier,
                    what.clone(),
                )
            })
        })
        .collect()
}

/// SQL tables.
#[derive(Debug, Default)]
pub(crate) struct SqlTable {
    /// Statement openings (one or more words, upper case) → tier; longest wins.
    pub statements: Vec<(Vec<String>, RiskTier, String)>,
    /// Keywords anywhere in a statement → at least this tier.
    pub keywords: Vec<(Vec<String>, RiskTier, String)>,
    /// Function names (lower case) known not to change state.
    pub safe_functions: Vec<String>,
    /// Function names (globs, lower case) with a known tier.
    pub functions: Vec<(Vec<String>, RiskTier, String)>,
}

/// The whole compiled table.
#[derive(Debug)]
pub(crate) struct Rules {
    pub programs: Vec<Program>,
    by_name: HashMap<String, usize>,
    by_glob: Vec<(String, usize)>,
    pub paths: PathClasses,
    pub env: Vec<EnvRule>,
    pub sql: SqlTable,
    pub git_safe_config: Vec<String>,
}

impl Rules {
    /// Parses and validates every compiled-in rule file. All problems are reported at once.
    pub(crate) fn load() -> Result<Rules, Vec<String>> {
        Self::from_sources(FILES)
    }

    /// Parses and validates the given `(file name, text)` pairs.
    pub(crate) fn from_sources(files: &[(&str, &str)]) -> Result<Rules, Vec<String>> {
        let mut errors = Vec::new();
        let mut rules = Rules {
            programs: Vec::new(),
            by_name: HashMap::new(),
            by_glob: Vec::new(),
            paths: PathClasses::default(),
            env: Vec::new(),
            sql: SqlTable::default(),
            git_safe_config: Vec::new(),
        };
        for (file, text) in files {
            let parsed: RuleFile = match toml::from_str(text) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(format!("{file}: {e}"));
                    continue;
                }
            };
            for spec in parsed.program {
                let label = format!("{file}: program {:?}", spec.names);
                match compile_program(spec) {
                    Ok(p) => {
                        let idx = rules.programs.len();
                        for n in &p.names {
                            if n.contains(['*', '?', '[']) {
                                rules.by_glob.push((n.clone(), idx));
                            } else if rules.by_name.insert(n.clone(), idx).is_some() {
                                errors.push(format!("{label}: name {n:?} defined twice"));
                            }
                        }
                        rules.programs.push(p);
                    }
                    Err(es) => errors.extend(es.into_iter().map(|e| format!("{label}: {e}"))),
                }
            }
            if let Some(p) = parsed.paths {
                rules.paths = PathClasses {
                    null: p.null,
                    device: p.device,
                    home: p.home,
                    toplevel: p.toplevel,
                    secret: p.secret,
                    system: p.system,
                    std_bin_dirs: p.std_bin_dirs,
                };
            }
            for e in parsed.env {
                rules.env.push(EnvRule {
                    names: e.names,
                    tier: e.tier.into(),
                    what: e.what,
                });
            }
            if let Some(s) = parsed.sql {
                rules.sql = SqlTable {
                    statements: sql_words(s.statement),
                    keywords: sql_words(s.keyword),
                    safe_functions: s
                        .safe_functions
                        .into_iter()
                        .map(|f| f.to_ascii_lowercase())
                        .collect(),
                    functions: s
                        .function
                        .into_iter()
                        .map(|f| {
                            (
                                f.names
                                    .into_iter()
                                    .map(|n| n.to_ascii_lowercase())
                                    .collect(),
                                f.tier.into(),
                                f.what,
                            )
                        })
                        .collect(),
                };
            }
            if let Some(g) = parsed.git {
                rules.git_safe_config = g
                    .safe_config
                    .into_iter()
                    .map(|k| k.to_ascii_lowercase())
                    .collect();
            }
        }
        if rules.paths.std_bin_dirs.is_empty() {
            errors.push("no [paths] table with std_bin_dirs".to_owned());
        }
        if rules.sql.statements.is_empty() {
            errors.push("no [sql] statement table".to_owned());
        }
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(errors)
        }
    }

    /// The program entry for a basename.
    pub(crate) fn program(&self, name: &str) -> Option<&Program> {
        if let Some(&i) = self.by_name.get(name) {
            return self.programs.get(i);
        }
        self.by_glob
            .iter()
            .find(|(g, _)| glob_match(g, name))
            .and_then(|&(_, i)| self.programs.get(i))
    }
}

fn compile_program(spec: ProgramSpec) -> Result<Program, Vec<String>> {
    let mut errors = Vec::new();
    if spec.names.is_empty() || spec.names.iter().any(|n| n.is_empty() || n.contains('/')) {
        errors.push("names must be non-empty basenames".to_owned());
    }
    if spec.what.trim().is_empty() {
        errors.push("`what` must say what the program does".to_owned());
    }
    if spec.examples.is_empty() {
        errors.push("a program needs at least one example".to_owned());
    }
    for f in spec
        .value_flags
        .iter()
        .chain(&spec.optional_value_flags)
        .chain(&spec.flags)
        .chain(&spec.shell_code_flags)
    {
        if !f.starts_with('-') && !f.starts_with('+') {
            errors.push(format!("option {f:?} must start with '-'"));
        }
    }
    let handler = match spec.handler.as_deref() {
        None => None,
        Some(h) => match Handler::parse(h) {
            Some(h) => Some(h),
            None => {
                errors.push(format!("unknown handler {h:?}"));
                None
            }
        },
    };
    if handler == Some(Handler::Sql) && spec.sql.is_none() {
        errors.push("handler \"sql\" needs a [program.sql] table".to_owned());
    }
    let mut subs = Vec::new();
    for s in spec.sub {
        if s.examples.is_empty() || s.counterexamples.is_empty() {
            errors.push(format!(
                "sub {:?}: needs examples and counterexamples",
                s.path
            ));
        }
        if s.path.is_empty() || s.path.iter().any(|p| p.split_whitespace().next().is_none()) {
            errors.push(format!("sub {:?}: empty path", s.path));
        }
        subs.push(Sub {
            paths: s
                .path
                .iter()
                .map(|p| split_path(p, spec.ignore_case))
                .collect(),
            tier: s.tier.into(),
            what: s.what,
            examples: s.examples,
            counterexamples: s.counterexamples,
        });
    }
    let mut rules = Vec::new();
    for r in spec.rule {
        let what = r.what.clone();
        match compile_rule(r, spec.ignore_case) {
            Ok(rule) => rules.push(rule),
            Err(e) => errors.push(format!("rule {what:?}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let option_sensitive = rules
        .iter()
        .any(|r| !r.flags.is_empty() || !r.not_flags.is_empty())
        || handler.is_some_and(|h| {
            matches!(
                h,
                Handler::Git | Handler::Find | Handler::Sed | Handler::Awk | Handler::Sql
            )
        });
    let tier: RiskTier = spec.tier.into();
    Ok(Program {
        names: spec.names,
        tier,
        what: spec.what,
        value_flags: spec.value_flags,
        optional_value_flags: spec.optional_value_flags,
        flags: spec.flags,
        single_dash: spec.single_dash,
        ignore_case: spec.ignore_case,
        unknown_sub: spec
            .unknown_sub
            .map_or(RiskTier::L2Destructive, RiskTier::from),
        bare: spec.bare.map_or(tier, RiskTier::from),
        handler,
        shell_code_flags: spec.shell_code_flags,
        wrapper: spec.wrapper,
        sql: spec.sql,
        subs,
        rules,
        option_sensitive,
        examples: spec.examples,
        counterexamples: spec.counterexamples,
    })
}

fn split_path(p: &str, ignore_case: bool) -> Vec<String> {
    p.split_whitespace()
        .map(|s| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        })
        .collect()
}

fn compile_rule(r: RuleSpec, ignore_case: bool) -> Result<Rule, String> {
    if r.examples.is_empty() || r.counterexamples.is_empty() {
        return Err("needs examples and counterexamples".to_owned());
    }
    if (!r.values.is_empty() || !r.not_values.is_empty()) && r.flags.is_empty() {
        return Err("`values` needs `flags`".to_owned());
    }
    if let Some(f) = r
        .flags
        .iter()
        .chain(&r.not_flags)
        .find(|f| !f.starts_with('-') && !f.starts_with('+'))
    {
        return Err(format!("option {f:?} must start with '-'"));
    }
    let target = match r.target.as_deref() {
        None => None,
        Some("args") => Some(Target::Args),
        Some("last") => Some(Target::Last),
        Some("all_but_last") => Some(Target::AllButLast),
        Some("flag_values") => Some(Target::FlagValues),
        Some(t) => match t.strip_prefix("kv:") {
            Some(k) if !k.is_empty() => Some(Target::Kv(k.to_owned())),
            _ => return Err(format!("unknown target {t:?}")),
        },
    };
    if target == Some(Target::FlagValues) && r.flags.is_empty() {
        return Err("target \"flag_values\" needs `flags`".to_owned());
    }
    if target.is_some() && r.effect.is_none() {
        return Err("a `target` needs an `effect`".to_owned());
    }
    if !r.on.is_empty() && target.is_none() {
        return Err("`on` needs a `target`".to_owned());
    }
    let mut on = HashMap::new();
    for (k, v) in r.on {
        let Some(class) = PathClass::parse(&k) else {
            return Err(format!("unknown path class {k:?}"));
        };
        on.insert(class, Outcome::from(v));
    }
    Ok(Rule {
        sub: r.sub.iter().map(|p| split_path(p, ignore_case)).collect(),
        flags: r.flags,
        not_flags: r.not_flags,
        values: r.values,
        not_values: r.not_values,
        args: r.args,
        min_args: r.min_args,
        target,
        effect: r.effect.unwrap_or(Effect::Write),
        on,
        tier: r.tier.into(),
        forbid: r.forbid,
        what: r.what,
        examples: r.examples,
        counterexamples: r.counterexamples,
    })
}
