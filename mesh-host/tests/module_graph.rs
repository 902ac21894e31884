//! The areas of mesh-host (its top-level modules) depend on each other without cycles: each
//! file's `crate::<area>` paths are read from the source, and the area graph must be acyclic.
//! A cycle is reported with the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    out
}

/// The area a source file belongs to: `src/<area>.rs` or `src/<area>/...`.
fn area_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The areas named by `crate::<area>` in the code of `text` (comments, where doc links live,
/// are not dependencies).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Area -> areas it uses, with one file per edge as evidence.
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let areas: BTreeSet<String> = sources(&src)
        .iter()
        .filter_map(|file| area_of(&src, file))
        .collect();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in sources(&src) {
        let Some(area) = area_of(&src, &file) else {
            continue;
        };
        // The crate root and the binary wiring depend on everything by design.
        if matches!(area.as_str(), "lib" | "main" | "app") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for used in referenced(&text) {
            if used != area && areas.contains(&used) {
                graph
                    .entry(area.clone())
                    .or_default()
                    .entry(used)
                    .or_insert_with(|| file.clone());
            }
        }
    }
    graph
}

/// A cycle through `start`, as the list of areas on it, if there is one.
fn cycle_from(
    graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    start: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        start: &str,
        node: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    walk(graph, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_areas_of_mesh_host_have_no_dependency_cycle() {
    let graph = graph();
    assert!(
        graph.contains_key("inbound") && graph.contains_key("outbound"),
        "the source tree was not read: {graph:?}"
    );
    let mut cycles = Vec::new();
    for area in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, area) {
            let evidence: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    let file = &graph[&pair[0]][&pair[1]];
                    format!("{} -> {} ({})", pair[0], pair[1], file.display())
                })
                .collect();
            cycles.push(evidence.join(", "));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_runtime_sees_the_outside_only_through_its_outbound_trait() {
    let graph = graph();
    let runtime: BTreeSet<&String> = graph
        .get("runtime")
        .map(|edges| edges.keys().collect())
        .unwrap_or_default();
    for forbidden in [
        "handler", "mesh", "inbound", "outbound", "frontend", "egress",
    ] {
        assert!(
            !runtime.contains(&forbidden.to_owned()),
            "runtime uses {forbidden}: {:?}",
            graph["runtime"]
        );
    }
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    graph
        .entry("a".into())
        .or_default()
        .insert("b".into(), "a.rs".into());
    graph
        .entry("b".into())
        .or_default()
        .insert("c".into(), "b.rs".into());
    graph
        .entry("c".into())
        .or_default()
        .insert("a".into(), "c.rs".into());
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    if let Some(edges) = graph.get_mut("c") {
        edges.clear();
    }
    assert_eq!(cycle_from(&graph, "a"), None);
}
