//! `openapi.yaml` is the HTTP contract: these tests hold it to the router.
//!
//! The crate has no YAML parser and this check does not justify one, so the
//! operations are read line by line from the layout `openapi.yaml` keeps:
//! `paths:` at the top level, each path a key indented by two spaces, each
//! operation a method key indented by four, and the section ending at the
//! next top-level key. Anything in the section that breaks that layout
//! fails the test rather than being skipped, so the check cannot pass by
//! reading nothing.

use std::collections::BTreeSet;

/// The operation keys of an OpenAPI path item.
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

type Operation = (String, String);

fn read_spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// The key of a `key: value` or `key:` line (already unindented), with
/// quotes removed; `None` when the line is not a mapping key.
fn mapping_key(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Some(quote) = line.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let rest = &line[1..];
        let end = rest.find(quote)?;
        return rest[end + 1..].starts_with(':').then(|| rest[..end].to_string());
    }
    if line.starts_with('-') || line.starts_with('{') || line.starts_with('[') {
        return None;
    }
    let colon = line.find(": ").or_else(|| line.strip_suffix(':').map(|key| key.len()))?;
    Some(line[..colon].to_string())
}

/// The `(METHOD, path)` pairs under `paths:`, or what in the section does
/// not follow the expected layout.
fn spec_operations(spec: &str) -> Result<BTreeSet<Operation>, Vec<String>> {
    let mut operations = BTreeSet::new();
    let mut problems = Vec::new();
    let mut lines = spec.lines().enumerate().skip_while(|(_, line)| line.trim_end() != "paths:");
    if lines.next().is_none() {
        return Err(vec!["no top-level `paths:` line (a flow-style `paths: {...}` is not supported)".into()]);
    }
    // (path, its line number, how many operations it has so far)
    let mut current: Option<(String, usize, usize)> = None;
    fn finish(current: Option<(String, usize, usize)>, problems: &mut Vec<String>) {
        if let Some((path, number, 0)) = current {
            problems.push(format!("line {number}: path {path} has no operation (a path item `$ref` is not supported)"));
        }
    }
    for (index, line) in lines {
        let number = index + 1;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            break;
        }
        if line[..indent].contains('\t') {
            problems.push(format!("line {number}: tab in indentation"));
            continue;
        }
        match indent {
            2 => {
                finish(current.take(), &mut problems);
                match mapping_key(trimmed) {
                    Some(path) if path.starts_with('/') => current = Some((path, number, 0)),
                    _ => problems.push(format!("line {number}: expected a path key starting with `/`, found {trimmed:?}")),
                }
            }
            4 => {
                let Some(key) = mapping_key(trimmed) else {
                    problems.push(format!("line {number}: expected a key of a path item, found {trimmed:?}"));
                    continue;
                };
                if !METHODS.contains(&key.as_str()) {
                    // summary, description, parameters, servers: not operations.
                    if METHODS.contains(&key.to_ascii_lowercase().as_str()) {
                        problems.push(format!("line {number}: method key {key:?} must be lowercase"));
                    }
                    continue;
                }
                let Some((path, _, count)) = current.as_mut() else {
                    problems.push(format!("line {number}: operation {key:?} outside any path"));
                    continue;
                };
                *count += 1;
                if !operations.insert((key.to_ascii_uppercase(), path.clone())) {
                    problems.push(format!("line {number}: {} {path} is described twice", key.to_ascii_uppercase()));
                }
            }
            1 | 3 => problems.push(format!("line {number}: odd indentation of {indent} spaces")),
            _ => {}
        }
    }
    finish(current, &mut problems);
    if problems.is_empty() { Ok(operations) } else { Err(problems) }
}

fn router_operations(routes: &[(&str, &str)]) -> BTreeSet<Operation> {
    routes.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect()
}

/// What the router has and the spec lacks, and what the spec has and the
/// router lacks; both empty when they agree.
fn differences(spec: &BTreeSet<Operation>, routes: &BTreeSet<Operation>) -> (Vec<String>, Vec<String>) {
    let show = |operations: std::collections::btree_set::Difference<'_, Operation>| {
        operations.map(|(method, path)| format!("{method} {path}")).collect::<Vec<_>>()
    };
    (show(routes.difference(spec)), show(spec.difference(routes)))
}

#[test]
fn openapi_describes_exactly_the_routes_that_exist() {
    let spec = spec_operations(&read_spec())
        .unwrap_or_else(|problems| panic!("cannot read the operations of openapi.yaml:\n  {}", problems.join("\n  ")));
    let routes = router_operations(tessera::http::ROUTES);
    assert!(!routes.is_empty(), "tessera::http::ROUTES is empty");
    let (undocumented, unrouted) = differences(&spec, &routes);
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "openapi.yaml and tessera::http::ROUTES disagree\n\
         routes missing from openapi.yaml: {undocumented:?}\n\
         operations in openapi.yaml with no route: {unrouted:?}"
    );
}

#[test]
fn openapi_is_version_3_1() {
    let spec = read_spec();
    let first = spec
        .lines()
        .map(str::trim_end)
        .find(|line| !line.trim().is_empty() && !line.starts_with('#') && *line != "---")
        .expect("openapi.yaml is empty");
    let version = first.strip_prefix("openapi:").map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''));
    assert!(
        version.is_some_and(|v| v == "3.1" || v.starts_with("3.1.")),
        "the first line of openapi.yaml must be `openapi: 3.1.x`, found {first:?}"
    );
}

/// The comparison is only worth something if it notices a change on
/// either side: an operation added to the spec, a route added to (or
/// missing from) the router, and layout it cannot read. Nothing here
/// assumes which routes exist: the changes are made to synthetic route
/// lists and to paths no real route uses.
#[test]
fn the_route_check_notices_a_change_on_either_side() {
    // Synthetic both sides: agreement, then a change on each side.
    let fixture = "paths:\n  /a:\n    get: {}\n    post: {}\n  /b/{id}:\n    delete: {}\n";
    let fixture_spec = spec_operations(fixture).expect("the fixture is readable");
    let same = router_operations(&[("GET", "/a"), ("POST", "/a"), ("DELETE", "/b/{id}")]);
    assert_eq!(differences(&fixture_spec, &same), (vec![], vec![]));
    let more = router_operations(&[("GET", "/a"), ("POST", "/a"), ("DELETE", "/b/{id}"), ("GET", "/b/{id}")]);
    assert_eq!(differences(&fixture_spec, &more), (vec!["GET /b/{id}".to_string()], vec![]));
    let fewer = router_operations(&[("GET", "/a"), ("DELETE", "/b/{id}")]);
    assert_eq!(differences(&fixture_spec, &fewer), (vec![], vec!["POST /a".to_string()]));
    let renamed = router_operations(&[("GET", "/a"), ("POST", "/a"), ("DELETE", "/b/{sid}")]);
    assert_eq!(differences(&fixture_spec, &renamed), (vec!["DELETE /b/{sid}".to_string()], vec!["DELETE /b/{id}".to_string()]));

    // The real openapi.yaml, compared with its own operations as the
    // router, so that only the probe makes a difference.
    let text = read_spec();
    let spec = spec_operations(&text).expect("openapi.yaml is readable");
    assert!(!spec.is_empty(), "openapi.yaml describes no operation");
    let probe: Operation = ("PATCH".into(), "/route-check-probe/{id}".into());
    assert!(!spec.contains(&probe), "the probe must not be a real operation");

    let mut more_routes = spec.clone();
    more_routes.insert(probe.clone());
    assert_eq!(differences(&spec, &more_routes), (vec!["PATCH /route-check-probe/{id}".to_string()], vec![]));

    let extra = "paths:\n  '/route-check-probe/{id}':\n    summary: A probe.\n    patch:\n      responses: {}\n";
    let more_spec = spec_operations(&text.replacen("paths:\n", extra, 1)).expect("extended spec is readable");
    assert_eq!(differences(&more_spec, &spec), (vec![], vec!["PATCH /route-check-probe/{id}".to_string()]));

    let (method, path) = spec.first().expect("not empty").clone();
    let mut fewer_routes = spec.clone();
    fewer_routes.remove(&(method.clone(), path.clone()));
    assert_eq!(differences(&spec, &fewer_routes), (vec![], vec![format!("{method} {path}")]));

    // A path of the real file whose operation keys are renamed has no
    // operation left, and that is reported rather than skipped.
    let first_path = first_path_of(&text).expect("openapi.yaml has a path");
    let without = without_operations(&text, &first_path);
    assert_ne!(without, text, "the fixture edit must apply to openapi.yaml");
    let problems = spec_operations(&without).expect_err("a path without operations is reported");
    assert!(problems[0].contains(&format!("{first_path} has no operation")), "{problems:?}");

    assert!(spec_operations("openapi: 3.1.0\npaths: {}\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n    get: {}\n    get: {}\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n    GET: {}\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n   get: {}\n").is_err());
    assert_eq!(
        spec_operations("paths:\n  /a:\n    get: {}\n  \"/b\": # note\n    post:\n      summary: x\ncomponents:\n  /c:\n    put: {}\n"),
        Ok(BTreeSet::from([("GET".into(), "/a".into()), ("POST".into(), "/b".into())]))
    );
}

/// The first path key under `paths:`, as written (quotes removed).
fn first_path_of(spec: &str) -> Option<String> {
    spec.lines()
        .skip_while(|line| line.trim_end() != "paths:")
        .skip(1)
        .find(|line| line.starts_with("  ") && !line.starts_with("   ") && !line.trim().starts_with('#'))
        .and_then(|line| mapping_key(line.trim_start()))
}

/// `spec` with every operation key of `path` renamed to `x-removed`.
fn without_operations(spec: &str, path: &str) -> String {
    let mut inside = false;
    let mut out = String::with_capacity(spec.len());
    for line in spec.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 2 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            inside = mapping_key(trimmed).as_deref() == Some(path);
        } else if indent == 0 && !trimmed.is_empty() {
            inside = false;
        }
        match mapping_key(trimmed) {
            Some(key) if inside && indent == 4 && METHODS.contains(&key.as_str()) => {
                out.push_str(&line.replacen(&key, "x-removed", 1));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
