//! awk programs: `system()`, pipes to and from commands (`print | "cmd"`, `"cmd" | getline`,
//! `|&`) run shell commands; `print > "file"` writes files; `@load` loads native code.
//!
//! String and regex literals are set aside before looking, so `/a|b/` is not a pipe.

use domain::RiskTier;

use super::argv::{Parsed, any_flag};
use super::command::write_target;
use super::rules::Effect;
use super::words::Word;
use super::{Acc, Ctx};

/// Checks an awk command line.
pub(crate) fn check(parsed: &Parsed, label: &str, ctx: &Ctx, acc: &mut Acc) {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let l2 = |acc: &mut Acc, why: &str| {
        acc.raise(RiskTier::L2Destructive, format!("{label}: {why} (L2)"));
    };
    if !any_flag(parsed, &s(&["-f", "--file", "-E", "--exec"])).is_empty() {
        l2(
            acc,
            "runs an awk program from a file the classifier cannot see",
        );
    }
    if !any_flag(parsed, &s(&["-l", "--load"])).is_empty() {
        l2(acc, "loads a native extension");
    }
    let mut inplace = false;
    for f in any_flag(parsed, &s(&["-i", "--include"])) {
        match f.value.as_ref().and_then(Word::literal) {
            Some("inplace") => inplace = true,
            _ => l2(acc, "includes an awk library the classifier cannot see"),
        }
    }
    let mut programs: Vec<&Word> = any_flag(parsed, &s(&["-e", "--source"]))
        .into_iter()
        .filter_map(|f| f.value.as_ref())
        .collect();
    let mut files: &[Word] = &parsed.positionals;
    if programs.is_empty()
        && any_flag(parsed, &s(&["-f", "--file", "-E", "--exec"])).is_empty()
        && let Some((first, rest)) = parsed.positionals.split_first()
    {
        programs.push(first);
        files = rest;
    }
    if inplace {
        for f in files.iter().filter(|f| !f.text.contains('=')) {
            write_target(
                f,
                &format!("{label} -i inplace: edits in place"),
                Effect::Modify,
                ctx,
                acc,
            );
        }
    }
    for p in programs {
        if p.dynamic {
            l2(acc, "the awk program is computed at run time");
            continue;
        }
        let scan = scan(&p.text);
        if scan.exec {
            l2(
                acc,
                "the awk program runs shell commands (system(), pipes or getline from a command)",
            );
        }
        if scan.load {
            l2(acc, "the awk program loads code (@load/@include)");
        }
        for t in scan.writes {
            match t {
                Some(path) => write_target(
                    &Word::lit(&path),
                    &format!("{label}: the awk program writes"),
                    Effect::Write,
                    ctx,
                    acc,
                ),
                None => l2(acc, "the awk program writes to a file named at run time"),
            }
        }
    }
}

#[derive(Default)]
struct Scan {
    exec: bool,
    load: bool,
    writes: Vec<Option<String>>,
}

fn scan(src: &str) -> Scan {
    let chars: Vec<char> = src.chars().collect();
    let mut code = String::new();
    let mut strings: Vec<String> = Vec::new();
    let mut i = 0;
    let mut prev_sig: Option<char> = None;
    while i < chars.len() {
        let ch = chars[i];
        if ch == '"' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    s.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            code.push('"');
            code.push_str(&strings.len().to_string());
            code.push('"');
            strings.push(s);
            prev_sig = Some('"');
            continue;
        }
        if ch == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let regex_ok = match prev_sig {
            None => true,
            Some(p) => "(,{};!~&|=:?\n".contains(p),
        };
        if ch == '/' && regex_ok {
            i += 1;
            let mut in_class = false;
            while i < chars.len() {
                let c = chars[i];
                if c == '\\' {
                    i += 2;
                    continue;
                }
                if c == '[' {
                    in_class = true;
                } else if c == ']' {
                    in_class = false;
                } else if (c == '/' && !in_class) || c == '\n' {
                    break;
                }
                i += 1;
            }
            i += 1;
            code.push_str("//");
            prev_sig = Some('/');
            continue;
        }
        code.push(ch);
        if !ch.is_whitespace() || ch == '\n' {
            prev_sig = Some(ch);
        }
        i += 1;
    }
    let mut out = Scan::default();
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("system(") {
        out.exec = true;
    }
    if code.contains("@load") || code.contains("@include") {
        out.load = true;
    }
    let cc: Vec<char> = code.chars().collect();
    for (k, &c) in cc.iter().enumerate() {
        if c == '|' {
            let before = k > 0 && cc[k - 1] == '|';
            let after = cc.get(k + 1) == Some(&'|');
            if !before && !after {
                out.exec = true;
            }
        }
    }
    // print/printf … > target, at parenthesis depth 0 before the statement ends.
    let mut k = 0;
    while let Some(pos) = code[k..].find("print") {
        let start = k + pos;
        k = start + 5;
        let before_ok = code[..start]
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if !before_ok {
            continue;
        }
        let mut depth = 0i32;
        let rest: Vec<char> = code[k..].chars().collect();
        let mut j = 0;
        while j < rest.len() {
            match rest[j] {
                '(' => depth += 1,
                ')' => depth -= 1,
                ';' | '}' | '\n' if depth <= 0 => break,
                '>' if depth <= 0 => {
                    let mut t = j + 1;
                    while t < rest.len() && (rest[t] == '>' || rest[t] == ' ') {
                        t += 1;
                    }
                    let target = if rest.get(t) == Some(&'"') {
                        let digits: String = rest[t + 1..]
                            .iter()
                            .take_while(|c| c.is_ascii_digit())
                            .collect();
                        digits
                            .parse::<usize>()
                            .ok()
                            .and_then(|n| strings.get(n).cloned())
                    } else {
                        None
                    };
                    out.writes.push(target);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awk_programs() {
        assert!(!scan("{print $1}").exec);
        assert!(!scan("/error|warn/ {print}").exec);
        assert!(!scan("$3 > 100 || $2 == \"x|y\" {print $1}").exec);
        assert!(scan("$3 > 100 {print $1}").writes.is_empty());
        assert!(scan("BEGIN{system(\"id\")}").exec);
        assert!(scan("{print | \"sh\"}").exec);
        assert!(scan("BEGIN{\"date\" | getline d}").exec);
        assert_eq!(
            scan("{print > \"/etc/x\"}").writes,
            vec![Some("/etc/x".to_owned())]
        );
        assert_eq!(scan("{print $0 > $2}").writes, vec![None]);
        assert!(scan("{ printf(\"%d\", 1 > 0) }").writes.is_empty());
    }
}
