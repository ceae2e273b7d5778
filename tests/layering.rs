//! The crate's import graph points one way. This test reads the source under
//! `src/` (not the compiled crate), collects every `crate::…` path outside
//! `#[cfg(test)]` modules, and checks it against the rules below. The rule
//! tables are the documentation of the layering:
//!
//! ```text
//!   server (wiring)        config (assembles the sections)
//!     gateway   control
//!       dag  unixfs
//!         blocks ──uses the port──▶ fetch (BlockFetcher, FetchError)
//!           car                      │ bitswap, http, wants
//!   session   verify   (the bottom: import nothing of the crate)
//! ```
//!
//! Paths are collected with a small lexer (comments and string literals
//! skipped), so a rule is checked against what the code names, whether in a
//! `use` line or inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that may import only the listed crate modules. The bottom of the
/// graph: every layer reads the session and verifies blocks, so these two
/// must depend on nothing, or every layer depends on everything.
const ONLY: &[(&str, &[&str], &str)] = &[
    (
        "session",
        &[],
        "the session is read by every layer: it depends on nothing of the crate",
    ),
    (
        "verify",
        &[],
        "block verification is a leaf that blocks, fetch and car share",
    ),
    (
        "car",
        &["verify"],
        "a file format: it verifies sections, it does not reach into stores",
    ),
];

/// Modules that must not import the listed crate modules.
const NEVER: &[(&str, &[&str], &str)] = &[
    (
        "blocks",
        &["gateway", "control", "server", "dag", "unixfs", "p2p"],
        "the block service sits under the DAG layer and the HTTP layer",
    ),
    (
        "fetch",
        &[
            "blocks", "gateway", "control", "server", "dag", "unixfs", "car",
        ],
        "fetch implements the port blocks consumes: it must not call the service back",
    ),
    (
        "dag",
        &["fetch", "p2p", "server", "control"],
        "the DAG layer asks the block service for CIDs, never the network",
    ),
    (
        "unixfs",
        &["fetch", "p2p", "server", "control"],
        "the DAG layer asks the block service for CIDs, never the network",
    ),
    (
        "routing",
        &["names", "gateway", "blocks", "fetch", "server", "control"],
        "routing finds providers and records; names, fetch and the gateway use it, not the reverse",
    ),
    (
        "names",
        &[
            "gateway", "blocks", "fetch", "server", "control", "dag", "unixfs",
        ],
        "names resolve to /ipfs/ paths; what is served there is the gateway's",
    ),
];

/// `blocks` may use only the port `fetch` defines at its root (the
/// `BlockFetcher` trait and its error), never a submodule of `fetch`.
const PORT_ONLY: &[(&str, &str)] = &[("blocks", "fetch")];

/// The gateway is the top layer: only these modules may name it. `server`
/// wires it, `control` renders its pages with the gateway's templates,
/// `config` assembles its sections.
const GATEWAY_USERS: &[&str] = &["gateway", "server", "control", "config"];

/// One use of a crate path: the file and line it is in, and its segments
/// after `crate::` (or after `super::` for sibling references).
#[derive(Debug)]
struct Use {
    file: PathBuf,
    line: usize,
    path: Vec<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/fetch/wants.rs` → `fetch`),
/// or `None` for the crate root and the binary.
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The source with comments and the contents of string and char literals
/// blanked out (newlines kept, so line numbers still hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // Raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push('"');
            i = j + 1;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    out.push('"');
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                out.push(' ');
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && is_ident(chars[i - 1])
}

/// Blanks every `#[cfg(test)] mod name { … }` block: tests may reach
/// anywhere, the rules are about the code that ships.
fn without_test_modules(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(found) = text[from..].find("#[cfg(test)]") {
        let start = from + found;
        let after = &text[start + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        from = start + 1;
        if !trimmed.starts_with("mod ") {
            continue;
        }
        let Some(open) = after.find('{') else {
            continue;
        };
        // Byte offsets equal char offsets only for ASCII; the code is
        // ASCII once literals and comments are blanked.
        let open = start + "#[cfg(test)]".len() + open;
        let mut depth = 0;
        let mut end = open;
        for (k, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        for slot in out.iter_mut().take(end + 1).skip(start) {
            if *slot != '\n' {
                *slot = ' ';
            }
        }
    }
    out.into_iter().collect()
}

/// Every path that starts with `prefix::` (`crate`, `super`), with `use`
/// trees expanded: `crate::a::{b, c::d}` gives `[a, b]` and `[a, c, d]`.
fn paths_after(code: &str, prefix: &str) -> Vec<(usize, Vec<String>)> {
    let chars: Vec<char> = code.chars().collect();
    let needle: Vec<char> = format!("{prefix}::").chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i + needle.len() <= chars.len() {
        if chars[i..i + needle.len()] == needle[..]
            && !ident_before(&chars, i)
            && !(i >= 2 && chars[i - 2..i] == [':', ':'])
        {
            let line = chars[..i].iter().filter(|c| **c == '\n').count() + 1;
            let mut pos = i + needle.len();
            for path in parse_tree(&chars, &mut pos, Vec::new()) {
                found.push((line, path));
            }
            i = pos.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

fn skip_space(chars: &[char], pos: &mut usize) {
    while *pos < chars.len() && chars[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_tree(chars: &[char], pos: &mut usize, mut base: Vec<String>) -> Vec<Vec<String>> {
    loop {
        skip_space(chars, pos);
        if chars.get(*pos) == Some(&'{') {
            *pos += 1;
            let mut all = Vec::new();
            loop {
                skip_space(chars, pos);
                match chars.get(*pos) {
                    Some('}') => {
                        *pos += 1;
                        return all;
                    }
                    Some(',') => *pos += 1,
                    None => return all,
                    _ => {
                        let before = *pos;
                        all.extend(parse_tree(chars, pos, base.clone()));
                        if *pos == before {
                            *pos += 1;
                        }
                    }
                }
            }
        }
        let start = *pos;
        while *pos < chars.len() && (is_ident(chars[*pos]) || chars[*pos] == '*') {
            *pos += 1;
        }
        if *pos == start {
            return vec![base];
        }
        let segment: String = chars[start..*pos].iter().collect();
        if segment != "self" {
            base.push(segment);
        }
        skip_space(chars, pos);
        if chars.get(*pos) == Some(&':') && chars.get(*pos + 1) == Some(&':') {
            *pos += 2;
        } else {
            return vec![base];
        }
    }
}

/// Every crate path named by the shipping code of each file under `src/`.
fn crate_uses() -> Vec<Use> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut uses = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = without_test_modules(&code_only(&text));
        for (line, path) in paths_after(&code, "crate") {
            if !path.is_empty() {
                uses.push(Use {
                    file: file.clone(),
                    line,
                    path,
                });
            }
        }
    }
    uses
}

fn at(u: &Use) -> String {
    format!(
        "{}:{}: crate::{}",
        u.file.strip_prefix(src_dir()).unwrap().display(),
        u.line,
        u.path.join("::")
    )
}

fn violations() -> Vec<String> {
    let mut bad = Vec::new();
    for u in crate_uses() {
        let Some(from) = top_module(&u.file) else {
            continue;
        };
        let to = u.path[0].as_str();
        if to == from {
            continue;
        }
        for (module, allowed, why) in ONLY {
            if from == *module && !allowed.contains(&to) {
                bad.push(format!("{}: {module} imports {to} ({why})", at(&u)));
            }
        }
        for (module, denied, why) in NEVER {
            if from == *module && denied.contains(&to) {
                bad.push(format!("{}: {module} imports {to} ({why})", at(&u)));
            }
        }
        for (module, port) in PORT_ONLY {
            let into_submodule = u.path.len() > 2
                || u.path
                    .get(1)
                    .is_some_and(|s| s.starts_with(char::is_lowercase));
            if from == *module && to == *port && into_submodule {
                bad.push(format!(
                    "{}: {module} reaches inside {port} (only the port at its root)",
                    at(&u)
                ));
            }
        }
        if to == "gateway" && !GATEWAY_USERS.contains(&from.as_str()) {
            bad.push(format!(
                "{}: {from} imports the gateway (the top layer)",
                at(&u)
            ));
        }
    }
    bad
}

#[test]
fn imports_point_down() {
    let bad = violations();
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

/// Modules that must not lie on any circle of the module graph, whoever
/// else is on it. `config` is left out of the graph: it names every owner's
/// section type, and `server` reads the assembled `Config`.
const ON_NO_CIRCLE: &[&str] = &["session", "verify", "blocks", "fetch", "car"];

#[test]
fn lower_layers_are_on_no_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for u in crate_uses() {
        let Some(from) = top_module(&u.file) else {
            continue;
        };
        let to = u.path[0].clone();
        if to != from && from != "config" && to != "config" {
            edges.entry(from).or_default().insert(to);
        }
    }
    for module in ON_NO_CIRCLE {
        if path_exists(&edges, module, module) {
            // The modules on its circles: reachable from it and reaching it.
            let circle: Vec<&String> = edges
                .keys()
                .filter(|m| path_exists(&edges, module, m) && path_exists(&edges, m, module))
                .collect();
            panic!("{module} is on an import circle with {circle:?}");
        }
    }
}

/// Whether `to` can be reached from `from` by one or more edges.
fn path_exists(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = edges
        .get(from)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    while let Some(node) = todo.pop() {
        if node == to {
            return true;
        }
        if seen.insert(node) {
            todo.extend(edges.get(node).into_iter().flatten().map(String::as_str));
        }
    }
    false
}

/// `config.rs` only assembles: each `[section]` struct lives in the module
/// that owns it, and config names nothing but those `*Config` types.
#[test]
fn config_only_assembles_sections() {
    let text = std::fs::read_to_string(src_dir().join("config.rs")).unwrap();
    let code = without_test_modules(&code_only(&text));
    let mut bad = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if name.ends_with("Config") && name != "Config" {
                bad.push(format!(
                    "config.rs:{}: section struct {name} belongs in the module that owns it",
                    n + 1
                ));
            }
        }
    }
    for (line, path) in paths_after(&code, "crate") {
        let last = path.last().map(String::as_str).unwrap_or("");
        if !last.ends_with("Config") {
            bad.push(format!(
                "config.rs:{line}: crate::{} is not a section type",
                path.join("::")
            ));
        }
    }
    assert!(bad.is_empty(), "config layering:\n{}", bad.join("\n"));
}

/// No circle among the gateway's files. `mod.rs` is the composition root (it
/// declares the others, which may use its items), so it is left out; the
/// circles that matter are among the sibling files.
#[test]
fn gateway_files_form_no_circle() {
    let dir = src_dir().join("gateway");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let name_of = |p: &Path| -> String {
        let rel = p.strip_prefix(&dir).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let first = first.to_str().unwrap();
        first.strip_suffix(".rs").unwrap_or(first).to_string()
    };
    let siblings: BTreeSet<String> = files
        .iter()
        .map(|p| name_of(p))
        .filter(|n| n != "mod")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = name_of(file);
        if from == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code = without_test_modules(&code_only(&text));
        // Files directly in gateway/ name siblings as `super::x`; any file
        // may name them as `crate::gateway::x`.
        let mut named: Vec<String> = Vec::new();
        if file.parent() == Some(dir.as_path()) {
            named.extend(
                paths_after(&code, "super")
                    .into_iter()
                    .filter_map(|(_, p)| p.first().cloned()),
            );
        }
        named.extend(
            paths_after(&code, "crate")
                .into_iter()
                .filter(|(_, p)| p.first().is_some_and(|s| s == "gateway"))
                .filter_map(|(_, p)| p.get(1).cloned()),
        );
        for to in named {
            if to != from && siblings.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    if let Some(circle) = find_circle(&edges) {
        panic!(
            "the gateway's files import in a circle: {}",
            circle.join(" → ")
        );
    }
}

/// A circle in `edges`, as the list of its nodes (first repeated at the end).
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

/// The reader itself: `use` trees expand, comments, strings and test
/// modules are not code.
#[test]
fn the_reader_sees_what_the_code_names() {
    let code = without_test_modules(&code_only(
        "use crate::a::{b, c::{d, self}};\n\
         // crate::comment::x\n\
         let s = \"crate::string\";\n\
         let t = crate::inline::f(x);\n\
         #[cfg(test)]\nmod tests { use crate::tested; }\n\
         fn g<'a>(c: char) { if c == '{' { crate::after::y } }\n",
    ));
    let paths: Vec<String> = paths_after(&code, "crate")
        .into_iter()
        .map(|(_, p)| p.join("::"))
        .collect();
    assert_eq!(paths, ["a::b", "a::c::d", "a::c", "inline::f", "after::y"]);
}
