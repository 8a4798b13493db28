//! Option parsing, close enough to getopt to know which words are options, which are their
//! values and which are operands.
//!
//! Rules look at options (`--force`, `-X POST`) and at operands (subcommands, paths), so the
//! two must be told apart the way the program does: short options cluster (`-rf` is `-r -f`),
//! an option that takes a value swallows the rest of its cluster or the next word (`-m msg`,
//! `-mmsg`, `--message=msg`), `--` ends options, and GNU programs accept unambiguous
//! abbreviations of long options (`--forc` is `--force`), which rules honour too.

use super::glob::{glob_match, glob_match_ci};
use super::rules::Program;
use super::words::Word;

/// One option as given.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    /// `-f`, `--force`, or `-delete` for single-dash programs.
    pub name: String,
    /// Its value, if it took one.
    pub value: Option<Word>,
    /// Whether the option word started with a run-time part (could be any option).
    pub from_dynamic: bool,
    /// Whether it came before the first operand (a global option, before a subcommand).
    pub before_sub: bool,
}

/// A parsed command line (without the program name).
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub flags: Vec<Flag>,
    pub positionals: Vec<Word>,
    /// Options before the first operand that the rule table does not know (checked for
    /// programs with subcommands: an unknown option might swallow the subcommand).
    pub unknown_before_sub: Vec<String>,
}

/// Parses `args` by the program's option table.
pub(crate) fn parse(args: &[Word], prog: &Program) -> Parsed {
    parse_with(
        args,
        &prog.value_flags,
        &prog.optional_value_flags,
        prog.single_dash,
        false,
        Some(&prog.flags),
    )
}

/// Parses with explicit tables. `posix`: options end at the first operand.
pub(crate) fn parse_with(
    args: &[Word],
    value_flags: &[String],
    optional_flags: &[String],
    single_dash: bool,
    posix: bool,
    known_bool: Option<&[String]>,
) -> Parsed {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_operands = false;
    while i < args.len() {
        let w = &args[i];
        i += 1;
        let t = w.text.as_str();
        if only_operands || !t.starts_with('-') || t == "-" {
            if w.starts_dynamic() && !only_operands {
                // Could be an option at run time; record as an operand and as an unknown.
                p.flags.push(Flag {
                    name: String::new(),
                    value: None,
                    from_dynamic: true,
                    before_sub: p.positionals.is_empty(),
                });
            }
            p.positionals.push(w.clone());
            if posix {
                only_operands = true;
            }
            continue;
        }
        if t == "--" {
            only_operands = true;
            continue;
        }
        let before_sub = p.positionals.is_empty();
        let known = |name: &str| {
            value_flags.iter().any(|f| f == name)
                || optional_flags.iter().any(|f| f == name)
                || known_bool.is_some_and(|k| k.iter().any(|f| f == name))
        };
        if let Some(long) = t.strip_prefix("--").or(single_dash.then(|| &t[1..])) {
            let dashes = if t.starts_with("--") { "--" } else { "-" };
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (format!("{dashes}{n}"), Some(v)),
                None => (format!("{dashes}{long}"), None),
            };
            let takes = takes_value(&name, value_flags);
            let value = match attached {
                Some(v) => Some(sub_word(w, v)),
                None if takes => {
                    let v = args.get(i).cloned();
                    i += 1;
                    v
                }
                None => None,
            };
            if before_sub && attached.is_none() && !known(&name) && !takes {
                p.unknown_before_sub.push(name.clone());
            }
            p.flags.push(Flag {
                name,
                value,
                from_dynamic: false,
                before_sub,
            });
            continue;
        }
        // Short cluster.
        let body: Vec<char> = t.chars().skip(1).collect();
        let mut j = 0;
        while j < body.len() {
            let name = format!("-{}", body[j]);
            j += 1;
            let rest: String = body[j..].iter().collect();
            if value_flags.contains(&name) {
                let value = if rest.is_empty() {
                    let v = args.get(i).cloned();
                    i += 1;
                    v
                } else {
                    Some(sub_word(w, &rest))
                };
                p.flags.push(Flag {
                    name,
                    value,
                    from_dynamic: false,
                    before_sub,
                });
                break;
            }
            if optional_flags.contains(&name) {
                let value = (!rest.is_empty()).then(|| sub_word(w, &rest));
                p.flags.push(Flag {
                    name,
                    value,
                    from_dynamic: false,
                    before_sub,
                });
                break;
            }
            if before_sub && !known(&name) {
                p.unknown_before_sub.push(name.clone());
            }
            p.flags.push(Flag {
                name,
                value: None,
                from_dynamic: false,
                before_sub,
            });
        }
    }
    p
}

/// Whether the long option `name` takes a value: listed, or an unambiguous abbreviation of
/// exactly one listed long option.
fn takes_value(name: &str, value_flags: &[String]) -> bool {
    if value_flags.iter().any(|f| f == name) {
        return true;
    }
    if !name.starts_with("--") || name.len() < 4 {
        return false;
    }
    let mut hits = value_flags
        .iter()
        .filter(|f| f.starts_with("--") && f.starts_with(name));
    hits.next().is_some() && hits.next().is_none()
}

fn sub_word(w: &Word, v: &str) -> Word {
    Word {
        text: v.to_owned(),
        source: v.to_owned(),
        ..w.clone()
    }
}

/// Whether a given option matches a rule's option spec: exactly, by `*` glob (`--data*`), or
/// as a GNU-style abbreviation of a long spec (`--forc` for `--force`).
pub(crate) fn flag_matches(spec: &str, flag: &Flag) -> bool {
    if flag.from_dynamic {
        return false;
    }
    let name = flag.name.as_str();
    if spec == name {
        return true;
    }
    if spec.contains('*') {
        return glob_match(spec, name);
    }
    spec.starts_with("--") && name.starts_with("--") && name.len() >= 4 && spec.starts_with(name)
}

/// Whether any option matches any spec.
pub(crate) fn any_flag<'a>(parsed: &'a Parsed, specs: &[String]) -> Vec<&'a Flag> {
    parsed
        .flags
        .iter()
        .filter(|f| specs.iter().any(|s| flag_matches(s, f)))
        .collect()
}

/// Whether a value matches any glob (case-insensitive). A run-time value matches.
pub(crate) fn value_matches(value: Option<&Word>, globs: &[String]) -> bool {
    match value {
        None => globs.iter().any(|g| g.is_empty()),
        Some(w) if w.dynamic => true,
        Some(w) => globs.iter().any(|g| glob_match_ci(g, &w.text)),
    }
}

/// Whether a value is known to match none of the globs. A run-time value is not known.
pub(crate) fn value_outside(value: Option<&Word>, globs: &[String]) -> bool {
    match value {
        None => !globs.iter().any(|g| g.is_empty()),
        Some(w) if w.dynamic => true,
        Some(w) => !globs.iter().any(|g| glob_match_ci(g, &w.text)),
    }
}
