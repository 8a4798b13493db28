//! The risk tier of a shell action, from parsing it with a real shell grammar.
//!
//! Why parsing and not pattern-matching the string: the approval rules of OpenClaw-like agents
//! matched the command *string* and then ran it through `sh -c`, and were bypassed by newlines
//! and `;`, `env sh -c`, `time`, `git -c core.pager=…`, `find -exec`, `sort --compress-program`,
//! escaped or quote-split names (`git pu\sh`, `r''m`), `$IFS`, homoglyphs and `base64 -d | sh`.
//! Here the command is first normalised ([`crate::normalize`]), then parsed by tree-sitter-bash
//! into pipelines, lists, redirections, substitutions, heredocs, functions and simple commands.
//! Every simple command is resolved to the words bash will see (unquoted, unescaped), wrappers
//! are seen through (`sudo`, `env`, `timeout`, `xargs`, `sh -c '…'` …), and the program is looked
//! up in a rule table kept as data (`rules/*.toml`, see `rules.rs` for the schema). The tier of
//! the whole is the maximum over its parts.
//!
//! Fail closed: anything not fully understood — an unknown program, `eval`, `source`, command
//! substitution, inline interpreter code, a shell reading code from a pipe, a parse error, a
//! program name computed at run time, hidden characters, homoglyphs — is L2 or higher, never L0.
//! If the rule table itself failed to load, every command is L2.
//!
//! Pure and fast: no I/O; one tree-sitter parser per thread; the rules are parsed once.

mod argv;
mod awk;
mod command;
mod find;
mod git;
mod glob;
mod paths;
mod rules;
mod sed;
mod shell;
mod sql;
mod tree;
mod words;

#[cfg(test)]
mod check;

use std::cell::RefCell;
use std::sync::OnceLock;

use domain::RiskTier;
use serde::Serialize;

use crate::normalize::{Normalized, normalize};
use rules::Rules;

/// The classifier's verdict on one command text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    /// The highest tier of anything the command does.
    pub tier: RiskTier,
    /// Set when a rule marks the action as never allowed (e.g. `rm -rf /`, fork bomb, mkfs on a
    /// disk device, `dd of=/dev/sda`, kernel module loading, `chmod -R 777 /`): the system layer
    /// denies it.
    pub forbidden: Option<String>,
    /// One human sentence per reason that raised the tier, e.g. "kubectl delete: deletes
    /// cluster resources (L2)". Shown to approvers.
    pub reasons: Vec<String>,
    /// The programs found, in order (after seeing through wrappers), e.g. `["sudo",
    /// "systemctl"]`.
    pub programs: Vec<String>,
}

/// Classifies a shell command. Normalises it first ([`normalize`]); the verdict is about the
/// normalised text, which is therefore the text that must be executed.
pub fn classify(command: &str) -> Classification {
    classify_normalized(&normalize(command))
}

/// Classifies already normalised text (see [`classify`]). Hidden characters recorded in
/// `normalized.hidden` raise the tier to at least L2.
pub fn classify_normalized(normalized: &Normalized) -> Classification {
    let rules = match loaded() {
        Ok(r) => r,
        Err(errors) => {
            return Classification {
                tier: RiskTier::L2Destructive,
                forbidden: None,
                reasons: vec![format!(
                    "the classifier's rule table failed to load ({} problems, first: {}); \
                     every command needs approval (L2)",
                    errors.len(),
                    errors.first().map_or("?", String::as_str)
                )],
                programs: Vec::new(),
            };
        }
    };
    let mut acc = Acc::default();
    analyze(normalized, rules, &mut acc);
    acc.finish()
}

/// Problems in the compiled-in rule table, if any (empty when it loaded). For health checks and
/// tests: when this is not empty, every command classifies as L2.
pub fn rule_table_errors() -> Vec<String> {
    match loaded() {
        Ok(_) => Vec::new(),
        Err(e) => e.clone(),
    }
}

fn loaded() -> &'static Result<Rules, Vec<String>> {
    static RULES: OnceLock<Result<Rules, Vec<String>>> = OnceLock::new();
    RULES.get_or_init(Rules::load)
}

/// Longest command text classified; longer input is L3 with a reason (an approver must read it).
const MAX_LEN: usize = 256 * 1024;
/// Deepest nesting of `sh -c`, heredocs to shells and the like.
const MAX_DEPTH: usize = 8;
/// Deepest bracket nesting parsed (deeper input is L2 unparsed: the walk must stay shallow).
const MAX_NESTING: usize = 200;

/// The deepest nesting of `(`, `{` and backticks, roughly (quotes are not tracked: this only
/// bounds work, it decides nothing else).
fn nesting(text: &str) -> usize {
    let (mut depth, mut max, mut tick) = (0usize, 0usize, false);
    for c in text.chars() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth = depth.saturating_sub(1),
            '`' => {
                tick = !tick;
                if tick {
                    depth += 1;
                } else {
                    depth = depth.saturating_sub(1);
                }
            }
            _ => {}
        }
        max = max.max(depth);
    }
    max
}

/// Most reasons kept.
const MAX_REASONS: usize = 40;

fn analyze(n: &Normalized, rules: &Rules, acc: &mut Acc) {
    let text = n.text.as_str();
    for h in &n.hidden {
        acc.raise(
            RiskTier::L2Destructive,
            format!(
                "the command contained a hidden {} U+{:04X} at byte {}, removed before \
                 classification (L2)",
                h.kind.describe(),
                u32::from(h.codepoint),
                h.offset
            ),
        );
    }
    let smuggled = n.smuggled_text();
    if !smuggled.is_empty() {
        acc.raise(
            RiskTier::L2Destructive,
            format!("invisible tag characters spell {smuggled:?} (L2)"),
        );
    }
    if text.len() > MAX_LEN {
        acc.raise(
            RiskTier::L3Privileged,
            format!(
                "the command is {} bytes long, more than the classifier reads (L3)",
                text.len()
            ),
        );
        return;
    }
    if text.contains("$(") || text.contains('`') {
        acc.raise(
            RiskTier::L1Mutating,
            "the text contains command substitution syntax (`$(` or a backtick) (L1)".to_owned(),
        );
    }
    for w in n.non_ascii_in_words() {
        if w.mixed_script {
            acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "the word {:?} mixes Latin letters with look-alikes from another script \
                     (reads as {:?}) (L2)",
                    w.word,
                    crate::normalize::skeleton(&w.word)
                ),
            );
        }
    }
    let ctx = Ctx {
        rules,
        depth: 0,
        remote: false,
        unseen_args: false,
    };
    analyze_text(text, &ctx, acc);
    // `${IFS}` is a space at run time: judge the command as bash will split it too.
    if text.contains("$IFS") || text.contains("${IFS") {
        let spaced = text
            .replace("${IFS}", " ")
            .replace("$IFS", " ")
            .replace("${IFS:0:1}", " ");
        analyze_text(&spaced, &ctx, acc);
    }
}

thread_local! {
    static PARSER: RefCell<Option<tree_sitter::Parser>> = const { RefCell::new(None) };
}

/// Parses `text` with this thread's parser.
fn parse(text: &str) -> Option<tree_sitter::Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut p = tree_sitter::Parser::new();
            p.set_language(&tree_sitter_bash::LANGUAGE.into()).ok()?;
            *slot = Some(p);
        }
        slot.as_mut()?.parse(text, None)
    })
}

/// Parses and classifies one piece of shell code (the command, or code found inside it).
pub(crate) fn analyze_text(text: &str, ctx: &Ctx, acc: &mut Acc) {
    if ctx.depth > MAX_DEPTH {
        acc.raise(
            RiskTier::L2Destructive,
            "shell code is nested too deeply to classify (L2)".to_owned(),
        );
        return;
    }
    if nesting(text) > MAX_NESTING {
        acc.raise(
            RiskTier::L2Destructive,
            "the command is nested too deeply to classify (L2)".to_owned(),
        );
        return;
    }
    let Some(tree) = parse(text) else {
        acc.raise(
            RiskTier::L2Destructive,
            "the shell parser could not parse the command (L2)".to_owned(),
        );
        return;
    };
    tree::walk(tree.root_node(), text, ctx, acc);
}

/// What the classification of one piece of code runs in.
#[derive(Clone)]
pub(crate) struct Ctx<'r> {
    pub rules: &'r Rules,
    /// How many levels of `sh -c` and the like we are inside.
    pub depth: usize,
    /// The code runs on another host (`ssh host 'cmd'`).
    pub remote: bool,
    /// The command gets arguments the classifier cannot see (`xargs`, `find -exec`).
    pub unseen_args: bool,
}

impl<'r> Ctx<'r> {
    /// One level deeper.
    pub(crate) fn nested(&self) -> Ctx<'r> {
        Ctx {
            depth: self.depth + 1,
            ..self.clone()
        }
    }
}

/// Which table entry matched, for checking rule examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    Sub(usize, usize),
    Rule(usize, usize),
}

/// The running verdict.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    tier: Option<RiskTier>,
    forbidden: Option<String>,
    reasons: Vec<String>,
    dropped: usize,
    programs: Vec<String>,
    /// Entries that matched (only recorded when `trace` is on).
    pub hits: Vec<Hit>,
    pub trace: bool,
}

impl Acc {
    /// Raises the tier to at least `tier`; `reason` is kept when `tier` is above L0.
    pub(crate) fn raise(&mut self, tier: RiskTier, reason: String) {
        self.tier = Some(self.tier.map_or(tier, |t| t.max(tier)));
        if tier > RiskTier::L0Readonly {
            self.reason(reason);
        }
    }

    fn reason(&mut self, reason: String) {
        if self.reasons.contains(&reason) {
            return;
        }
        if self.reasons.len() >= MAX_REASONS {
            self.dropped += 1;
        } else {
            self.reasons.push(reason);
        }
    }

    /// Marks the action as never allowed.
    pub(crate) fn forbid(&mut self, reason: String) {
        self.tier = Some(RiskTier::L3Privileged);
        if self.forbidden.is_none() {
            self.forbidden = Some(reason.clone());
        }
        self.reason(format!("{reason} (forbidden)"));
    }

    /// Records a program found.
    pub(crate) fn program(&mut self, name: &str) {
        if self.programs.len() < 64 && !self.programs.iter().any(|p| p == name) {
            self.programs.push(name.to_owned());
        }
    }

    pub(crate) fn hit(&mut self, h: Hit) {
        if self.trace {
            self.hits.push(h);
        }
    }

    fn finish(mut self) -> Classification {
        if self.dropped > 0 {
            self.reasons
                .push(format!("… and {} more reasons", self.dropped));
        }
        Classification {
            tier: self.tier.unwrap_or(RiskTier::L0Readonly),
            forbidden: self.forbidden,
            reasons: self.reasons,
            programs: self.programs,
        }
    }
}

/// `L0`…`L3`, for reasons.
pub(crate) fn short(t: RiskTier) -> &'static str {
    match t {
        RiskTier::L0Readonly => "L0",
        RiskTier::L1Mutating => "L1",
        RiskTier::L2Destructive => "L2",
        RiskTier::L3Privileged => "L3",
    }
}

/// Classifies with a trace of matched entries (for rule example checks).
#[cfg(test)]
pub(crate) fn classify_traced(command: &str, rules: &Rules) -> (Classification, Vec<Hit>) {
    let mut acc = Acc {
        trace: true,
        ..Acc::default()
    };
    analyze(&normalize(command), rules, &mut acc);
    let hits = std::mem::take(&mut acc.hits);
    (acc.finish(), hits)
}
