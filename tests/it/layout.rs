//! The layout of `src/services/` as its imports show it: the policy module depends on no
//! other service (everything asks it; it asks only the store), and no two services depend on
//! each other, even through others — so the direction of every dependency is visible.
//! `src/media/` (the machinery) and `src/jobs/` (the queue and its payloads) import no
//! service at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The services `text` (a file of service `me`) imports. `super::` means `services::` in a
/// service's own file (`x.rs` or `x/mod.rs`), and the service itself in its submodules.
fn service_imports(text: &str, me: &str, submodule: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pats: &[&str] = if submodule { &["crate::services::"] } else { &["crate::services::", "super::"] };
    for pat in pats {
        for (i, _) in text.match_indices(pat) {
            let rest = &text[i + pat.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != me {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn services_form_layers_without_cycles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "mod" {
            continue;
        }
        let mut deps = BTreeSet::new();
        if path.is_dir() {
            // A service split into submodules: `x/mod.rs` and its children.
            for child in std::fs::read_dir(&path).unwrap() {
                let child = child.unwrap().path();
                let text = std::fs::read_to_string(&child).unwrap();
                let sub = child.file_stem().is_some_and(|s| s != "mod");
                deps.extend(service_imports(&text, &name, sub));
            }
        } else {
            deps = service_imports(&std::fs::read_to_string(&path).unwrap(), &name, false);
        }
        graph.insert(name, deps);
    }
    assert!(graph["access"].is_empty(), "the policy module must not depend on a service: {:?}", graph["access"]);
    // Depth-first search for a cycle.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("services depend on each other in a cycle: {:?}", &path[i..]);
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn machinery_and_the_job_queue_import_no_service() {
    for dir in ["src/media", "src/jobs", "src/store", "src/broker"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    let uses: Vec<&str> = text
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("//") && l.contains("crate::services"))
                        .collect();
                    assert!(uses.is_empty(), "{} imports a service: {uses:?}", p.display());
                }
            }
        }
    }
}
