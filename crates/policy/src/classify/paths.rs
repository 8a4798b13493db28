//! Which kind of place a path names: `/`, a home directory, a system directory, a disk device,
//! a credentials file, or an ordinary path.
//!
//! The same `rm -rf X` is routine or catastrophic depending on X, so rules ask for the class of
//! their target paths. Paths are compared lexically after removing `.`/`..` and repeated `/`;
//! globs are honoured both ways (`/e*` may be `/etc`), `$HOME` counts as `~`, and a run-time
//! part of a word counts as `*`. A relative path is also compared as if relative to `~`
//! (`.bashrc`), because the working directory is not known.

use super::glob::{glob_match, has_glob};
use super::rules::{PathClass, PathClasses};
use super::words::{DYN, Word};

/// The class of the path in `w`. Words of the form `host:path` (scp) are judged by `path`.
pub(crate) fn classify_path(w: &Word, classes: &PathClasses) -> PathClass {
    if w.starts_dynamic() {
        return PathClass::Dynamic;
    }
    let text: String = w
        .text
        .chars()
        .map(|c| if c == DYN { '*' } else { c })
        .collect();
    let text = strip_remote(&text);
    classify_str(text, classes)
}

/// The class of a literal path string.
pub(crate) fn classify_str(text: &str, classes: &PathClasses) -> PathClass {
    if text.is_empty() {
        return PathClass::Plain;
    }
    if text == "-" || classes.null.iter().any(|p| glob_match(p, text)) {
        return PathClass::Null;
    }
    let segs = segments(text);
    let mut candidates = vec![segs.clone()];
    if !segs.is_empty() && !segs.first().is_some_and(|s| s == "/" || s.starts_with('~')) {
        // Relative: also judge it as relative to the home directory.
        let mut h = vec!["~".to_owned()];
        h.extend(segs.iter().cloned());
        candidates.push(h);
    }
    let mut best = PathClass::Plain;
    for c in &candidates {
        let class = classify_segs(c, classes);
        if class < best {
            best = class;
        }
    }
    best
}

fn classify_segs(segs: &[String], classes: &PathClasses) -> PathClass {
    if any_under(segs, &classes.device) {
        return PathClass::Device;
    }
    if segs.first().is_some_and(|s| s == "/") {
        let rest = &segs[1..];
        if rest.is_empty() || (rest.len() == 1 && is_wildcard_only(&rest[0])) {
            return PathClass::Root;
        }
    }
    if any_equal(segs, &classes.home) {
        return PathClass::Home;
    }
    if any_equal(segs, &classes.toplevel) {
        return PathClass::Toplevel;
    }
    if any_under(segs, &classes.secret) {
        return PathClass::Secret;
    }
    if any_under(segs, &classes.system) {
        return PathClass::System;
    }
    PathClass::Plain
}

/// `user@host:/path` → `/path`; other words unchanged.
fn strip_remote(s: &str) -> &str {
    if let Some((host, path)) = s.split_once(':')
        && !host.is_empty()
        && !host.contains('/')
        && !host.contains('=')
    {
        return path;
    }
    s
}

fn is_wildcard_only(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| matches!(c, '*' | '?' | '.')) && s.contains(['*', '?'])
}

/// Lexical segments: `"/"` first for absolute paths, `"~"`/`"~user"` first for home paths.
pub(crate) fn segments(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = path;
    if let Some(r) = path.strip_prefix('/') {
        out.push("/".to_owned());
        rest = r;
    } else if path.starts_with('~') {
        let (head, tail) = path.split_once('/').unwrap_or((path, ""));
        match head {
            "~" => out.push("~".to_owned()),
            "~root" => {
                out.push("/".to_owned());
                out.push("root".to_owned());
            }
            user => {
                out.push("/".to_owned());
                out.push("home".to_owned());
                out.push(user.trim_start_matches('~').to_owned());
            }
        }
        rest = tail;
    }
    let base = out.len();
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.len() > base {
                    out.pop();
                } else if base == 0 {
                    out.push("..".to_owned());
                }
            }
            s => out.push(s.to_owned()),
        }
    }
    out
}

fn seg_match(a: &str, b: &str) -> bool {
    match (has_glob(a), has_glob(b)) {
        (true, true) => true,
        (true, false) => glob_match(a, b),
        (false, true) => glob_match(b, a),
        (false, false) => a == b,
    }
}

fn any_equal(segs: &[String], patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        let ps = segments(p);
        ps.len() == segs.len() && ps.iter().zip(segs).all(|(a, b)| seg_match(a, b))
    })
}

fn any_under(segs: &[String], patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        let ps = segments(p);
        segs.len() >= ps.len() && ps.iter().zip(segs).all(|(a, b)| seg_match(a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> PathClasses {
        PathClasses {
            null: vec!["/dev/null".into()],
            device: vec!["/dev/sd*".into()],
            home: vec!["~".into(), "/root".into()],
            toplevel: vec!["/etc".into(), "/usr".into()],
            secret: vec!["/etc/shadow".into(), "~/.ssh/id_*".into()],
            system: vec![
                "/etc".into(),
                "/usr".into(),
                "~/.ssh".into(),
                "~/.bashrc".into(),
            ],
            std_bin_dirs: vec![],
        }
    }

    #[test]
    fn classes_of_paths() {
        let c = classes();
        assert_eq!(classify_str("/", &c), PathClass::Root);
        assert_eq!(classify_str("//", &c), PathClass::Root);
        assert_eq!(classify_str("/*", &c), PathClass::Root);
        assert_eq!(classify_str("/tmp/../", &c), PathClass::Root);
        assert_eq!(classify_str("/e*", &c), PathClass::Toplevel);
        assert_eq!(classify_str("/etc/nginx/x.conf", &c), PathClass::System);
        assert_eq!(classify_str("/etc/shadow", &c), PathClass::Secret);
        assert_eq!(classify_str("~", &c), PathClass::Home);
        assert_eq!(
            classify_str("~/.ssh/authorized_keys", &c),
            PathClass::System
        );
        assert_eq!(classify_str(".bashrc", &c), PathClass::System);
        assert_eq!(classify_str("/dev/sda1", &c), PathClass::Device);
        assert_eq!(classify_str("/dev/null", &c), PathClass::Null);
        assert_eq!(classify_str("build/out", &c), PathClass::Plain);
        assert_eq!(classify_str("host:/etc/x", &c), PathClass::Plain);
        assert_eq!(
            classify_path(&Word::lit("host:/etc/x"), &c),
            PathClass::System
        );
    }
}
