//! Walking the syntax tree: every node is visited, so no construct is skipped by accident.
//!
//! The walk is an explicit stack (no recursion: a 10 000-deep `a && b && …` list cannot
//! overflow the stack). Simple commands are classified with what feeds their standard input
//! (a pipe, a heredoc, a file), redirections are judged by where they write, substitutions mark
//! the command as not fully visible, and parse errors raise the tier.

use domain::RiskTier;
use tree_sitter::Node;

use super::command::{Stdin, classify_argv, env_assignment, write_target};
use super::words::{Word, contains_kind, node_text, resolve};
use super::{Acc, Ctx};

/// Classifies everything under `root`.
pub(crate) fn walk(root: Node, src: &str, ctx: &Ctx, acc: &mut Acc) {
    let functions = collect_functions(root, src);
    let mut stack: Vec<(Node, Option<Node>)> = vec![(root, None)];
    let mut parse_error_seen = false;
    while let Some((node, parent)) = stack.pop() {
        if (node.is_error() || node.is_missing()) && !parse_error_seen {
            parse_error_seen = true;
            let what = if node.is_missing() {
                format!("is incomplete (missing `{}`)", node.kind())
            } else {
                format!(
                    "could not be parsed near `{}`",
                    snippet(node_text(node, src))
                )
            };
            acc.raise(
                RiskTier::L2Destructive,
                format!("the command {what}; it is not fully understood (L2)"),
            );
        }
        match node.kind() {
            "command" => command(node, parent, src, ctx, &functions, acc),
            "command_substitution" => acc.raise(
                RiskTier::L2Destructive,
                format!(
                    "the output of `{}` becomes part of the command, and cannot be seen before \
                     it runs (L2)",
                    snippet(node_text(node, src))
                ),
            ),
            "file_redirect" => redirect(node, src, ctx, acc),
            "variable_assignment" => {
                if let Some(name) = node.child_by_field_name("name") {
                    let name = match name.child_by_field_name("name") {
                        Some(n) => node_text(n, src),
                        None => node_text(name, src),
                    };
                    env_assignment(name, ctx, acc);
                }
            }
            "function_definition" => function(node, src, acc),
            "declaration_command" | "unset_command" => {
                if let Some(kw) = node.child(0) {
                    acc.program(kw.kind());
                }
            }
            _ => {}
        }
        let n = node.child_count();
        for i in (0..n).rev() {
            if let Some(c) = node.child(i) {
                stack.push((c, Some(node)));
            }
        }
    }
}

/// At most 60 characters of `s`, on one line.
pub(crate) fn snippet(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .take(60)
        .collect();
    if s.chars().count() > 60 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

fn collect_functions(root: Node, src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.kind() == "function_definition"
            && let Some(name) = n.child_by_field_name("name")
        {
            out.push(resolve(name, src).text);
        }
        let mut c = n.walk();
        stack.extend(n.named_children(&mut c));
    }
    out
}

fn function(node: Node, src: &str, acc: &mut Acc) {
    let (Some(name), Some(body)) = (
        node.child_by_field_name("name"),
        node.child_by_field_name("body"),
    ) else {
        return;
    };
    let name = resolve(name, src).text;
    let mut calls_itself = false;
    let mut spawns = false;
    let mut stack = vec![body];
    while let Some(n) = stack.pop() {
        match n.kind() {
            "command" => {
                if let Some(cn) = n.child_by_field_name("name")
                    && resolve(cn, src).text == name
                {
                    calls_itself = true;
                    if n.parent().is_some_and(|p| p.kind() == "pipeline") {
                        spawns = true;
                    }
                }
            }
            "pipeline" => {}
            _ => {}
        }
        if !n.is_named() && n.kind() == "&" {
            spawns = true;
        }
        let k = n.child_count();
        for i in 0..k {
            if let Some(c) = n.child(i) {
                stack.push(c);
            }
        }
    }
    if calls_itself && spawns {
        acc.forbid(format!(
            "the function `{name}` calls itself in a pipe or in the background: a fork bomb"
        ));
    } else if calls_itself {
        acc.raise(
            RiskTier::L2Destructive,
            format!("the function `{name}` calls itself (L2)"),
        );
    }
}

fn command(
    node: Node,
    parent: Option<Node>,
    src: &str,
    ctx: &Ctx,
    functions: &[String],
    acc: &mut Acc,
) {
    let mut argv: Vec<Word> = Vec::new();
    let mut own_redirects = Vec::new();
    let n = node.child_count();
    for i in 0..n {
        let Some(child) = node.child(i) else { continue };
        match node.field_name_for_child(i as u32) {
            Some("name") | Some("argument") => argv.push(resolve(child, src)),
            Some("redirect") => own_redirects.push(child),
            _ => {}
        }
    }
    let stdin = stdin_of(node, parent, &own_redirects, src);
    classify_argv(&argv, &stdin, ctx, functions, acc);
}

/// What feeds the standard input of the command `node` (whose parent the walk already knows:
/// `Node::parent` costs the depth of the tree, which a long `a && b && …` makes large).
fn stdin_of(node: Node, first_parent: Option<Node>, own: &[Node], src: &str) -> Stdin {
    for r in own {
        if let Some(s) = redirect_stdin(*r, src) {
            return s;
        }
    }
    let mut cur = node;
    let mut known = Some(first_parent);
    for _ in 0..64 {
        let parent = match known.take() {
            Some(p) => p,
            None => cur.parent(),
        };
        let Some(parent) = parent else { break };
        match parent.kind() {
            "redirected_statement" => {
                let is_body = parent
                    .child_by_field_name("body")
                    .is_some_and(|b| b.id() == cur.id());
                if !is_body {
                    break;
                }
                let mut c = parent.walk();
                for r in parent.children_by_field_name("redirect", &mut c) {
                    if let Some(s) = redirect_stdin(r, src) {
                        return s;
                    }
                }
            }
            "pipeline" => {
                let mut producers = Vec::new();
                let mut prev = cur.prev_named_sibling();
                let mut last_stage = None;
                while let Some(p) = prev {
                    if last_stage.is_none() {
                        last_stage = Some(p);
                    }
                    programs_in(p, src, &mut producers);
                    prev = p.prev_named_sibling();
                }
                if let Some(stage) = last_stage {
                    producers.reverse();
                    return Stdin::Pipe {
                        text: visible_output(stage, src),
                        producers,
                    };
                }
            }
            "heredoc_redirect" => {
                // `cat <<EOF | sh`: the pipe continues from the heredoc's command.
                if let Some(stmt) = parent.parent()
                    && let Some(body) = stmt.child_by_field_name("body")
                {
                    let mut producers = Vec::new();
                    programs_in(body, src, &mut producers);
                    let text = heredoc_text(parent, src)
                        .filter(|_| producers.iter().all(|p| p == "cat"))
                        .map(|(t, _)| t);
                    return Stdin::Pipe { producers, text };
                }
                break;
            }
            "process_substitution" => {
                if node_text(parent, src).starts_with(">(") {
                    return Stdin::Pipe {
                        producers: vec!["the enclosing command".to_owned()],
                        text: None,
                    };
                }
                break;
            }
            "subshell" | "compound_statement" | "do_group" | "negated_command" => {}
            _ => break,
        }
        cur = parent;
    }
    Stdin::None
}

/// The stdin given by one redirect node, if it gives one.
fn redirect_stdin(r: Node, src: &str) -> Option<Stdin> {
    match r.kind() {
        "heredoc_redirect" => {
            let (text, dynamic) = heredoc_text(r, src)?;
            Some(Stdin::Text { text, dynamic })
        }
        "herestring_redirect" => {
            let mut c = r.walk();
            let w = r
                .named_children(&mut c)
                .find(|n| n.kind() != "file_descriptor")?;
            let w = resolve(w, src);
            Some(Stdin::Text {
                dynamic: w.dynamic,
                text: if w.dynamic { w.source } else { w.text },
            })
        }
        "file_redirect" => {
            let op = operator(r)?;
            if op == "<" {
                let d = r.child_by_field_name("destination")?;
                Some(Stdin::File(resolve(d, src)))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The body of a heredoc and whether it has run-time parts.
fn heredoc_text(r: Node, src: &str) -> Option<(String, bool)> {
    let mut c = r.walk();
    let body = r
        .named_children(&mut c)
        .find(|n| n.kind() == "heredoc_body")?;
    let dynamic = {
        let mut c2 = body.walk();
        body.named_children(&mut c2)
            .any(|n| n.kind() != "heredoc_content")
    };
    Some((node_text(body, src).to_owned(), dynamic))
}

/// Program names of the commands in a pipeline stage (not inside substitutions).
fn programs_in(stage: Node, src: &str, out: &mut Vec<String>) {
    let mut stack = vec![stage];
    let mut found = Vec::new();
    while let Some(n) = stack.pop() {
        match n.kind() {
            "command_substitution" | "process_substitution" => continue,
            "command" => {
                if let Some(name) = n.child_by_field_name("name") {
                    let w = resolve(name, src);
                    let base = w.text.rsplit('/').next().unwrap_or("").to_owned();
                    found.push(base);
                }
            }
            _ => {}
        }
        let mut c = n.walk();
        let kids: Vec<Node> = n.named_children(&mut c).collect();
        stack.extend(kids.into_iter().rev());
    }
    found.reverse();
    out.extend(found);
}

/// The text a pipeline stage writes, when it is plainly visible (`echo 'ls'`, `cat <<EOF`).
fn visible_output(stage: Node, src: &str) -> Option<String> {
    let cmd = match stage.kind() {
        "command" => stage,
        "redirected_statement" => {
            let body = stage.child_by_field_name("body")?;
            if body.kind() != "command" {
                return None;
            }
            let mut c = stage.walk();
            for r in stage.children_by_field_name("redirect", &mut c) {
                if r.kind() == "heredoc_redirect" {
                    return heredoc_text(r, src).map(|(t, _)| t);
                }
            }
            body
        }
        _ => return None,
    };
    let mut words = Vec::new();
    let mut c = cmd.walk();
    for (i, child) in cmd.children(&mut c).enumerate() {
        if matches!(
            cmd.field_name_for_child(i as u32),
            Some("name") | Some("argument")
        ) {
            words.push(resolve(child, src));
        }
    }
    let (first, rest) = words.split_first()?;
    match first.literal()? {
        "echo" | "printf" => {}
        _ => return None,
    }
    if rest.iter().any(|w| w.dynamic) {
        return None;
    }
    let texts: Vec<&str> = rest
        .iter()
        .map(|w| w.text.as_str())
        .skip_while(|t| t.starts_with('-'))
        .collect();
    Some(texts.join(" "))
}

fn operator(r: Node) -> Option<&'static str> {
    let n = r.child_count();
    for i in 0..n {
        let c = r.child(i)?;
        if !c.is_named() {
            return Some(c.kind());
        }
    }
    None
}

fn redirect(node: Node, src: &str, ctx: &Ctx, acc: &mut Acc) {
    let Some(op) = operator(node) else { return };
    let Some(dest) = node.child_by_field_name("destination") else {
        return;
    };
    let w = resolve(dest, src);
    match op {
        "<" => write_target(&w, "reads", super::rules::Effect::Read, ctx, acc),
        ">&" | "<&" | ">&-" | "<&-"
            if w.text.chars().all(|c| c.is_ascii_digit() || c == '-') && !w.dynamic => {}
        ">" | ">>" | "&>" | "&>>" | ">|" | ">&" => {
            if w.procsubst || contains_kind(dest, "process_substitution", 0) {
                return;
            }
            write_target(
                &w,
                "redirects output to",
                super::rules::Effect::Write,
                ctx,
                acc,
            );
        }
        _ => {}
    }
}
