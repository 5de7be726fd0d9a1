//! The shape of the source tree, held by tests (as rust-analyzer's tidy tests hold theirs):
//! files stay small enough to read, modules import one way, and the run's pipe never calls
//! back into itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines a source file has before its tests.
const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// A file's text before its `#[cfg(test)]` module.
fn non_test(text: &str) -> &str {
    text.find("\n#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// The module path of a file under `src/` (`analyzer/session/mod.rs` → `analyzer::session`).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The modules `text` (of module `here`) imports from, as the longest paths that name a
/// module of the crate.
fn imports(here: &[String], text: &str, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for line in non_test(text).lines() {
        let line = line.trim_start();
        let Some(path) = line
            .strip_prefix("pub use ")
            .or_else(|| line.strip_prefix("pub(crate) use "))
            .or_else(|| line.strip_prefix("pub(super) use "))
            .or_else(|| line.strip_prefix("use "))
        else {
            continue;
        };
        let path = path.split(';').next().unwrap_or("");
        let (prefix, group) = match path.split_once('{') {
            Some((p, g)) => (p, g.trim_end_matches('}')),
            None => (path, ""),
        };
        let words = |s: &str| -> Vec<String> {
            s.split("::")
                .map(|w| w.split_whitespace().next().unwrap_or("").to_string())
                .filter(|w| !w.is_empty())
                .collect()
        };
        let prefix = words(prefix);
        let base: Vec<String> = match prefix.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => here[..here.len().saturating_sub(1)].to_vec(),
            Some("self") => here.to_vec(),
            // A child module (`use master::Phase`): its own parent's business.
            _ => continue,
        };
        let mut paths = vec![prefix[1..].to_vec()];
        for item in group.split(',') {
            let mut p = prefix[1..].to_vec();
            p.extend(words(item));
            paths.push(p);
        }
        for p in paths {
            let mut m = base.clone();
            let mut found = None;
            for w in p {
                m.push(w);
                if modules.contains(&m) {
                    found = Some(m.clone());
                }
            }
            out.extend(found);
        }
    }
    out
}

#[test]
fn no_source_file_is_longer_than_one_can_read() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let n = non_test(&text).lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines before the tests: {long:?}"
    );
}

#[test]
fn modules_import_one_way_with_no_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.retain(|f| !f.starts_with(src().join("bin")));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let here = module_of(f);
        let text = std::fs::read_to_string(f).unwrap();
        // A module and its own descendants are one unit: a child using its parent's types
        // is how Rust splits a type's code across files.
        let to: BTreeSet<Vec<String>> = imports(&here, &text, &modules)
            .into_iter()
            .filter(|m| !m.starts_with(&here) && !here.starts_with(m))
            .collect();
        graph.insert(here, to);
    }
    assert!(graph.len() > 40, "the modules were found: {}", graph.len());
    // Depth-first search for a back edge.
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            let circle: Vec<String> = path[i..].iter().map(|p| p.join("::")).collect();
            panic!(
                "an import circle: {} -> {}",
                circle.join(" -> "),
                m.join("::")
            );
        }
        if !done.insert(m.clone()) {
            return;
        }
        path.push(m.clone());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_pipe_runs_one_way_input_links_reports_sinks() {
    let read = |p: &str| std::fs::read_to_string(src().join(p)).unwrap();
    // The stages know nothing of the pipe or of where events go.
    for (file, text) in [
        ("analyzer/links.rs", read("analyzer/links.rs")),
        ("report/reports.rs", read("report/reports.rs")),
    ] {
        for name in ["Monitor", "Sink", "Tap"] {
            assert!(
                !non_test(&text).contains(&format!("{name} "))
                    && !text.contains(&format!("{name}>")),
                "{file} names {name}"
            );
        }
    }
    // The fold never re-enters itself: what it derives is returned.
    let reports = read("report/reports.rs");
    for call in ["self.observe(", "self.input(", "self.tick("] {
        assert!(!reports.contains(call), "reports.rs calls {call}");
    }
    let links = read("analyzer/links.rs");
    for call in ["self.handle(", "self.tick(", "self.poll("] {
        assert!(!links.contains(call), "links.rs calls {call}");
    }
    // The pipe's one loop calls no entry point of the pipe.
    let monitor = read("report/monitor.rs");
    let flush = &monitor[monitor.find("fn flush").expect("Monitor::flush")..];
    let flush = &flush[..flush.find("\n    }\n").unwrap()];
    for call in ["self.handle(", "self.tick(", "self.flush("] {
        assert!(!flush.contains(call), "Monitor::flush calls {call}");
    }
}

#[test]
fn spec_files_share_helpers_only_through_support() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let a_path = !module.is_empty() && rest[module.len()..].starts_with("::");
                if a_path && module != "support" {
                    let name = path.file_name().unwrap().to_string_lossy();
                    found.push(format!("{name}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "helpers belong in tests/it/support/: {found:#?}"
    );
}
