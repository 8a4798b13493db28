//! sed scripts: the `e` command and `s///e` run shell commands, `w`/`W` and `s///w` write files,
//! `r`/`R` read them; `-i` rewrites the input files in place.
//!
//! A small parser of GNU sed syntax finds those commands; a script it cannot follow is L2.

use domain::RiskTier;

use super::argv::{Parsed, any_flag};
use super::command::write_target;
use super::rules::Effect;
use super::words::Word;
use super::{Acc, Ctx};

enum Found {
    Exec,
    Write(String),
    Read(String),
    Unknown(char),
}

/// Checks a sed command line.
pub(crate) fn check(parsed: &Parsed, label: &str, ctx: &Ctx, acc: &mut Acc) {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    if !any_flag(parsed, &s(&["-f", "--file"])).is_empty() {
        acc.raise(
            RiskTier::L2Destructive,
            format!("{label}: runs a sed script from a file the classifier cannot see (L2)"),
        );
    }
    let mut scripts: Vec<&Word> = any_flag(parsed, &s(&["-e", "--expression"]))
        .into_iter()
        .filter_map(|f| f.value.as_ref())
        .collect();
    let mut files: &[Word] = &parsed.positionals;
    if scripts.is_empty()
        && let Some((first, rest)) = parsed.positionals.split_first()
    {
        scripts.push(first);
        files = rest;
    }
    if !any_flag(parsed, &s(&["-i", "--in-place"])).is_empty() {
        if files.is_empty() {
            acc.raise(
                RiskTier::L1Mutating,
                format!("{label} -i: edits files in place (L1)"),
            );
        }
        for f in files {
            write_target(
                f,
                &format!("{label} -i: edits in place"),
                Effect::Modify,
                ctx,
                acc,
            );
        }
    }
    if !any_flag(parsed, &s(&["--sandbox"])).is_empty() {
        return;
    }
    for script in scripts {
        if script.dynamic {
            acc.raise(
                RiskTier::L2Destructive,
                format!("{label}: the sed script is computed at run time (L2)"),
            );
            continue;
        }
        for found in scan(&script.text) {
            match found {
                Found::Exec => acc.raise(
                    RiskTier::L2Destructive,
                    format!("{label}: the sed script runs shell commands (`e`) (L2)"),
                ),
                Found::Write(p) => write_target(
                    &Word::lit(&p),
                    &format!("{label}: the sed script writes"),
                    Effect::Write,
                    ctx,
                    acc,
                ),
                Found::Read(p) => write_target(
                    &Word::lit(&p),
                    &format!("{label}: the sed script reads"),
                    Effect::Read,
                    ctx,
                    acc,
                ),
                Found::Unknown(c) => acc.raise(
                    RiskTier::L2Destructive,
                    format!("{label}: the sed script has a command `{c}` the classifier does not know (L2)"),
                ),
            }
        }
    }
}

fn rest_of_line(c: &[char], i: &mut usize) -> String {
    let start = *i;
    while *i < c.len() && c[*i] != '\n' {
        *i += 1;
    }
    c[start..*i].iter().collect::<String>().trim().to_owned()
}

fn skip_delimited(c: &[char], i: &mut usize, delim: char) {
    while *i < c.len() {
        let ch = c[*i];
        *i += 1;
        if ch == '\\' {
            *i += 1;
        } else if ch == delim {
            return;
        }
    }
}

fn scan(script: &str) -> Vec<Found> {
    let c: Vec<char> = script.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut guard = 0;
    while i < c.len() {
        guard += 1;
        if guard > 100_000 {
            out.push(Found::Unknown('?'));
            break;
        }
        let ch = c[i];
        if ch.is_whitespace() || ch == ';' || ch == '{' || ch == '}' || ch == '!' {
            i += 1;
            continue;
        }
        if ch == '#' {
            rest_of_line(&c, &mut i);
            continue;
        }
        // Addresses.
        if ch.is_ascii_digit() || ch == '$' || ch == ',' || ch == '~' || ch == '+' {
            i += 1;
            continue;
        }
        if ch == '/' {
            i += 1;
            skip_delimited(&c, &mut i, '/');
            while i < c.len() && matches!(c[i], 'I' | 'M') {
                i += 1;
            }
            continue;
        }
        if ch == '\\' {
            i += 1;
            if let Some(&d) = c.get(i) {
                i += 1;
                skip_delimited(&c, &mut i, d);
            }
            continue;
        }
        i += 1;
        match ch {
            's' | 'y' => {
                let Some(&d) = c.get(i) else {
                    out.push(Found::Unknown(ch));
                    break;
                };
                i += 1;
                skip_delimited(&c, &mut i, d);
                skip_delimited(&c, &mut i, d);
                if ch == 's' {
                    while i < c.len() {
                        match c[i] {
                            'e' => {
                                out.push(Found::Exec);
                                i += 1;
                            }
                            'w' => {
                                i += 1;
                                out.push(Found::Write(rest_of_line(&c, &mut i)));
                            }
                            'g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9' => i += 1,
                            _ => break,
                        }
                    }
                }
            }
            'a' | 'i' | 'c' => {
                // Text to the end of the line, with backslash-newline continuations.
                while i < c.len() && c[i] != '\n' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            'w' | 'W' => out.push(Found::Write(rest_of_line(&c, &mut i))),
            'r' | 'R' => out.push(Found::Read(rest_of_line(&c, &mut i))),
            'e' => {
                out.push(Found::Exec);
                rest_of_line(&c, &mut i);
            }
            'b' | 't' | 'T' | ':' | 'v' => {
                while i < c.len() && c[i] != '\n' && c[i] != ';' {
                    i += 1;
                }
            }
            'q' | 'Q' | 'l' | 'L' => {
                while i < c.len() && (c[i].is_ascii_digit() || c[i] == ' ') {
                    i += 1;
                }
            }
            '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x' | 'z' | 'F' => {}
            other => {
                out.push(Found::Unknown(other));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<&'static str> {
        scan(s)
            .into_iter()
            .map(|f| match f {
                Found::Exec => "exec",
                Found::Write(_) => "write",
                Found::Read(_) => "read",
                Found::Unknown(_) => "unknown",
            })
            .collect()
    }

    #[test]
    fn sed_scripts() {
        assert!(kinds("s/a/b/g").is_empty());
        assert!(kinds("1,5d;/^#/d;$!N").is_empty());
        assert_eq!(kinds("s/a/b/e"), ["exec"]);
        assert_eq!(kinds("1e id"), ["exec"]);
        assert_eq!(kinds("w /etc/x"), ["write"]);
        assert_eq!(kinds("s/x/y/w out.txt"), ["write"]);
        assert_eq!(kinds("/x/r /etc/shadow"), ["read"]);
        assert!(kinds("s|/usr|/opt|g").is_empty());
        assert!(kinds("/foo/a bar").is_empty());
        assert_eq!(kinds("k"), ["unknown"]);
    }
}
