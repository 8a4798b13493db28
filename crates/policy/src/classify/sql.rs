//! SQL given to database clients (`psql -c`, `mysql -e`, `sqlite3 db 'SQL'`, heredocs).
//!
//! When the SQL is visible, each statement is judged by its opening words (`SELECT` L0,
//! `UPDATE` L1, `DROP` L2, `GRANT` L3 …, a table in `rules/db.toml`), by dangerous keywords
//! anywhere (`TO PROGRAM`, `INTO OUTFILE`, `DELETE` in a CTE), and by the functions a read
//! calls (`SELECT pg_terminate_backend(…)` is not a read). psql meta-commands are judged too
//! (`\!` runs a shell). SQL that is not visible — a file, a pipe, an interactive session — is
//! L2.

use domain::RiskTier;

use super::argv::{Parsed, any_flag};
use super::command::{Stdin, pipe_origin};
use super::glob::glob_match;
use super::rules::{Program, SqlTable};
use super::{Acc, Ctx, short};

/// Checks an SQL client's command line.
pub(crate) fn check(
    prog: &Program,
    parsed: &Parsed,
    stdin: &Stdin,
    label: &str,
    ctx: &Ctx,
    acc: &mut Acc,
) {
    let Some(conf) = &prog.sql else { return };
    if !any_flag(parsed, &conf.file_flags).is_empty() {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{label}: runs SQL from a file the classifier cannot see (L2)"),
        );
        return;
    }
    let mut statements: Vec<(String, bool)> = any_flag(parsed, &conf.statement_flags)
        .into_iter()
        .filter_map(|f| f.value.as_ref())
        .map(|w| (w.text.clone(), w.dynamic))
        .collect();
    if let Some(i) = conf.statement_positional
        && let Some(w) = parsed.positionals.get(i)
    {
        statements.push((w.text.clone(), w.dynamic));
    }
    if statements.is_empty() {
        if !any_flag(parsed, &conf.info_flags).is_empty() {
            return;
        }
        match stdin {
            Stdin::Text { text, dynamic } => statements.push((text.clone(), *dynamic)),
            Stdin::Pipe { producers, .. } => {
                acc.raise(
                    RiskTier::L2Destructive,
                    format!(
                        "{label}: runs SQL read from {} (L2)",
                        pipe_origin(producers)
                    ),
                );
                return;
            }
            Stdin::File(w) => {
                acc.raise(
                    RiskTier::L2Destructive,
                    format!("{label}: runs SQL from the file `{}` (L2)", w.source),
                );
                return;
            }
            Stdin::None => {
                acc.raise(
                    RiskTier::L2Destructive,
                    format!(
                        "{label}: no SQL is given, so it runs whatever arrives on standard input (L2)"
                    ),
                );
                return;
            }
        }
    }
    for (text, dynamic) in statements {
        if dynamic {
            acc.raise(
                RiskTier::L2Destructive,
                format!("{label}: the SQL is computed at run time (L2)"),
            );
        }
        for (tier, why) in classify_sql(&text, &ctx.rules.sql) {
            acc.raise(tier, format!("{label}: {why} ({})", short(tier)));
        }
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Semi,
    Meta(String, String),
    Other,
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let c: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && c.get(i + 1) == Some(&'-') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if ch == '\'' || ch == '"' || ch == '`' {
            i += 1;
            while i < c.len() {
                if c[i] == '\\' {
                    i += 2;
                    continue;
                }
                if c[i] == ch {
                    if c.get(i + 1) == Some(&ch) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(if ch == '\'' {
                Tok::Other
            } else {
                Tok::Word("\"".into())
            });
        } else if ch == '$' && c.get(i + 1).is_some_and(|n| *n == '$' || n.is_alphabetic()) {
            // Dollar quoting: $tag$ … $tag$.
            let start = i;
            let mut j = i + 1;
            while j < c.len() && c[j] != '$' && (c[j].is_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            if c.get(j) == Some(&'$') {
                let tag: String = c[start..=j].iter().collect();
                let rest: String = c[j + 1..].iter().collect();
                match rest.find(&tag) {
                    Some(end) => i = j + 1 + rest[..end].chars().count() + tag.chars().count(),
                    None => i = c.len(),
                }
                out.push(Tok::Other);
            } else {
                i += 1;
                out.push(Tok::Other);
            }
        } else if ch == '\\' {
            // psql meta-command: to the end of the line.
            let mut j = i + 1;
            let mut name = String::new();
            while j < c.len() && !c[j].is_whitespace() && (name.is_empty() || c[j] != '\\') {
                name.push(c[j]);
                j += 1;
            }
            let mut arg = String::new();
            while j < c.len() && c[j] != '\n' && c[j] != '\\' {
                arg.push(c[j]);
                j += 1;
            }
            i = j;
            out.push(Tok::Meta(name, arg.trim().to_owned()));
        } else if ch.is_alphanumeric() || ch == '_' {
            let mut w = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                w.push(c[i]);
                i += 1;
            }
            out.push(Tok::Word(w));
        } else if ch == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if ch == ';' {
            out.push(Tok::Semi);
            i += 1;
        } else {
            out.push(Tok::Other);
            i += 1;
        }
    }
    out
}

fn meta(name: &str, arg: &str) -> Option<(RiskTier, String)> {
    let l0 = |_: ()| None;
    match name {
        "!" => Some((
            RiskTier::L2Destructive,
            "the psql meta-command \\! runs a shell command".into(),
        )),
        "copy" if arg.to_ascii_lowercase().contains("program") => Some((
            RiskTier::L2Destructive,
            "\\copy … program runs a shell command".into(),
        )),
        "copy" | "o" | "out" | "w" | "write" | "g" | "gx" if !arg.is_empty() => Some((
            RiskTier::L1Mutating,
            format!("the psql meta-command \\{name} writes or reads a file"),
        )),
        "i" | "ir" | "include" | "include_relative" | "gexec" | "e" | "edit" | "ef" | "ev" => {
            Some((
                RiskTier::L2Destructive,
                format!("the psql meta-command \\{name} runs SQL the classifier cannot see"),
            ))
        }
        n if n.starts_with('d')
            || n.starts_with('l')
            || matches!(
                n,
                "conninfo"
                    | "x"
                    | "timing"
                    | "q"
                    | "set"
                    | "echo"
                    | "pset"
                    | "a"
                    | "t"
                    | "c"
                    | "connect"
                    | "encoding"
                    | "g"
                    | "gx"
                    | "H"
                    | "f"
                    | "C"
                    | "z"
                    | "sf"
                    | "sv"
                    | "unset"
                    | "qecho"
                    | "warn"
                    | "if"
                    | "elif"
                    | "else"
                    | "endif"
                    | "?"
                    | "h"
                    | "help"
                    | "errverbose"
                    | "s"
                    | "watch"
                    | "crosstabview"
                    | "gdesc"
                    | "gset"
            ) =>
        {
            l0(())
        }
        other => Some((
            RiskTier::L2Destructive,
            format!("the psql meta-command \\{other} is not known to the classifier"),
        )),
    }
}

/// Tiers and reasons for a piece of SQL.
pub(crate) fn classify_sql(sql: &str, table: &SqlTable) -> Vec<(RiskTier, String)> {
    let toks = tokenize(sql);
    let mut out = Vec::new();
    let mut stmt: Vec<&Tok> = Vec::new();
    for t in toks.iter().chain(std::iter::once(&Tok::Semi)) {
        match t {
            Tok::Semi => {
                if !stmt.is_empty() {
                    statement(&stmt, table, &mut out);
                }
                stmt.clear();
            }
            Tok::Meta(n, a) => {
                if let Some(r) = meta(n, a) {
                    out.push(r);
                }
                if !stmt.is_empty() {
                    statement(&stmt, table, &mut out);
                }
                stmt.clear();
            }
            t => stmt.push(t),
        }
    }
    out
}

fn statement(toks: &[&Tok], table: &SqlTable, out: &mut Vec<(RiskTier, String)>) {
    let words: Vec<String> = toks
        .iter()
        .filter_map(|t| match t {
            Tok::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let Some(first) = words.first() else { return };
    // EXPLAIN ANALYZE runs the statement.
    let mut opening: &[String] = &words;
    if first == "EXPLAIN"
        && words
            .get(1)
            .is_some_and(|w| w == "ANALYZE" || w == "ANALYSE")
    {
        opening = &words[2..];
        while opening.first().is_some_and(|w| w == "VERBOSE") {
            opening = &opening[1..];
        }
    }
    let best = table
        .statements
        .iter()
        .filter(|(ws, _, _)| {
            ws.len() <= opening.len() && ws.iter().zip(opening).all(|(a, b)| a == b)
        })
        .max_by_key(|(ws, _, _)| ws.len());
    let shown = opening
        .iter()
        .take(2)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let read_only = match best {
        Some((_, tier, what)) => {
            out.push((*tier, format!("{what} (`{shown} …`)")));
            *tier == RiskTier::L0Readonly
        }
        None => {
            out.push((
                RiskTier::L2Destructive,
                format!("the SQL statement `{shown} …` is not known to the classifier"),
            ));
            false
        }
    };
    if opening.first().is_some_and(|w| w == "UPDATE") && !words.iter().any(|w| w == "WHERE") {
        out.push((
            RiskTier::L2Destructive,
            "UPDATE without WHERE rewrites every row".into(),
        ));
    }
    // Keywords anywhere (not `ON DELETE`/`ON UPDATE` in table definitions).
    for (kw, tier, what) in &table.keywords {
        let n = kw.len();
        if n == 0 || words.len() < n {
            continue;
        }
        for i in 0..=words.len() - n {
            // Not the opening word itself (judged above), nor `ON DELETE`-style clauses.
            if i > 0 && words[i..i + n] == kw[..] && words[i - 1] != "ON" {
                out.push((*tier, what.clone()));
                break;
            }
        }
    }
    // Functions called.
    for (i, t) in toks.iter().enumerate() {
        let Tok::Word(w) = t else { continue };
        if toks.get(i + 1) != Some(&&Tok::Open) {
            continue;
        }
        let name = w.to_ascii_lowercase();
        let name = name.rsplit('.').next().unwrap_or(&name).to_owned();
        if let Some((_, tier, what)) = table
            .functions
            .iter()
            .find(|(gs, _, _)| gs.iter().any(|g| glob_match(g, &name)))
        {
            out.push((*tier, format!("{what} (`{name}()`)")));
        } else if read_only && !table.safe_functions.contains(&name) {
            out.push((
                RiskTier::L1Mutating,
                format!("calls the function `{name}()`, which may change state"),
            ));
        }
    }
}
