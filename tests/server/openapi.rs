//! `openapi.yaml` is the HTTP contract: these tests hold it to the router
//! (`tessera::http::ROUTES`) and check that it hangs together: every
//! operation answers something and every `$ref` points at something.
//!
//! The file is read with a real YAML parser, `saphyr`: safe Rust (no
//! `unsafe`, where the `serde_yaml` forks wrap a C port, `unsafe-libyaml`),
//! YAML 1.2, maintained by the people who moved `yaml-rust2` into
//! maintenance in its favour, and it refuses duplicate keys as the
//! YAML spec asks. The tests then walk a `serde_json::Value` of the
//! document, so a `$ref` resolves as the JSON Pointer it is.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;
use std::collections::BTreeSet;

/// The operation keys of an OpenAPI path item.
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

type Operation = (String, String);

fn read_spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

/// The one YAML document in `text`, parsed.
fn parse(text: &str) -> Result<Yaml<'_>, String> {
    let mut documents = Yaml::load_from_str(text).map_err(|error| format!("not YAML: {error}"))?;
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

/// `node` as JSON. Mapping keys must be strings or integers (response
/// codes); tags and aliases are refused rather than guessed at.
fn to_json(node: &Yaml, at: &str) -> Result<Value, String> {
    Ok(match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(value)) => Value::from(*value),
        Yaml::Value(Scalar::Integer(value)) => Value::from(*value),
        Yaml::Value(Scalar::FloatingPoint(value)) => serde_json::Number::from_f64(value.into_inner())
            .map(Value::Number)
            .ok_or_else(|| format!("{at}: {value} is not a JSON number"))?,
        Yaml::Value(Scalar::String(value)) => Value::from(value.as_ref()),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().enumerate().map(|(index, item)| to_json(item, &format!("{at}/{index}"))).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(entries) => {
            let mut object = serde_json::Map::new();
            for (key, value) in entries {
                let key = match key {
                    Yaml::Value(Scalar::String(key)) => key.to_string(),
                    Yaml::Value(Scalar::Integer(key)) => key.to_string(),
                    other => return Err(format!("{at}: unsupported mapping key {other:?}")),
                };
                let value = to_json(value, &format!("{at}/{key}"))?;
                if object.insert(key.clone(), value).is_some() {
                    return Err(format!("{at}: key {key:?} is given twice (once quoted, once not)"));
                }
            }
            Value::Object(object)
        }
        other => return Err(format!("{at}: unsupported YAML node (tag or alias): {other:?}")),
    })
}

/// `openapi.yaml`-style text as JSON.
fn load(text: &str) -> Result<Value, String> {
    to_json(&parse(text)?, "#")
}

/// The `(METHOD, path)` pairs under `paths`, or what there is not an
/// operation the router could have: a path item without any operation, a
/// method key in capitals, an operation that is not an object.
fn operations(spec: &Value) -> Result<BTreeSet<Operation>, Vec<String>> {
    let Some(paths) = spec.get("paths") else {
        return Err(vec!["no top-level `paths`".into()]);
    };
    let Some(paths) = paths.as_object() else {
        return Err(vec![format!("`paths` is not a mapping: {paths}")]);
    };
    let mut operations = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            problems.push(format!("path {path:?} does not start with `/`"));
            continue;
        }
        let Some(item) = item.as_object() else {
            problems.push(format!("path {path} is not a mapping"));
            continue;
        };
        let mut found = 0;
        for (key, operation) in item {
            if !METHODS.contains(&key.as_str()) {
                // summary, description, parameters, servers: not operations.
                if METHODS.contains(&key.to_ascii_lowercase().as_str()) {
                    problems.push(format!("{path}: method key {key:?} must be lowercase"));
                }
                continue;
            }
            if !operation.is_object() {
                problems.push(format!("{} {path} is not an operation object: {operation}", key.to_ascii_uppercase()));
            }
            found += 1;
            operations.insert((key.to_ascii_uppercase(), path.clone()));
        }
        if found == 0 {
            problems.push(format!("path {path} has no operation (a path item `$ref` is not supported)"));
        }
    }
    if operations.is_empty() && problems.is_empty() {
        problems.push("`paths` describes no operation".into());
    }
    if problems.is_empty() { Ok(operations) } else { Err(problems) }
}

/// The operations of `openapi.yaml`-style text.
fn spec_operations(text: &str) -> Result<BTreeSet<Operation>, Vec<String>> {
    operations(&load(text).map_err(|problem| vec![problem])?)
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

/// The operations (as `METHOD path`) that document no response.
fn operations_without_responses(spec: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if operation["responses"].as_object().is_none_or(|responses| responses.is_empty()) {
                missing.push(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    missing.sort();
    missing
}

/// Every `$ref` in `node`, with where it stands, as `(location, target)`.
fn refs(node: &Value, at: &str, found: &mut Vec<(String, Value)>) {
    match node {
        Value::Object(object) => {
            for (key, value) in object {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                if key == "$ref" {
                    found.push((here, value.clone()));
                } else {
                    refs(value, &here, found);
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(index, item)| refs(item, &format!("{at}/{index}"), found)),
        _ => {}
    }
}

/// The `$ref`s of `spec` that do not point at something inside it (only
/// local references, `#/...`, are allowed), and how many there are.
fn unresolved_refs(spec: &Value) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    refs(spec, "#", &mut found);
    let mut broken: Vec<String> = found
        .iter()
        .filter(|(_, target)| target.as_str().and_then(|t| t.strip_prefix('#')).is_none_or(|pointer| spec.pointer(pointer).is_none()))
        .map(|(at, target)| format!("{at}: {target}"))
        .collect();
    broken.sort();
    (broken, found.len())
}

#[test]
fn openapi_describes_exactly_the_routes_that_exist() {
    let spec = spec_operations(&read_spec())
        .unwrap_or_else(|problems| panic!("cannot read the operations of openapi.yaml:\n  {}", problems.join("\n  ")));
    // The tables the routers are built from: the public listener's, the
    // `--dev` demo's and the management listener's.
    use tessera::http::{MANAGEMENT_ROUTES, ROUTES, demo};
    let table: Vec<(&str, &str)> = ROUTES.iter().chain(demo::ROUTES).chain(MANAGEMENT_ROUTES).map(|r| (r.method, r.path)).collect();
    let routes = router_operations(&table);
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
    let text = read_spec();
    let document = parse(&text).expect("openapi.yaml is YAML");
    let (key, value) = document.as_mapping().and_then(|mapping| mapping.iter().next()).expect("openapi.yaml is an empty mapping");
    let version = value.as_str();
    assert!(
        key.as_str() == Some("openapi") && version.is_some_and(|v| v == "3.1" || v.starts_with("3.1.")),
        "openapi.yaml must begin with `openapi: 3.1.x` (a string), found {key:?}: {value:?}"
    );
}

#[test]
fn every_documented_operation_has_a_response() {
    let spec = load(&read_spec()).expect("openapi.yaml is readable");
    let missing = operations_without_responses(&spec);
    assert!(missing.is_empty(), "operations in openapi.yaml without any response: {missing:?}");
}

#[test]
fn every_ref_in_openapi_resolves() {
    let spec = load(&read_spec()).expect("openapi.yaml is readable");
    let (broken, total) = unresolved_refs(&spec);
    assert!(total > 0, "openapi.yaml has no $ref at all: the check would pass by reading nothing");
    assert!(broken.is_empty(), "$refs in openapi.yaml that point at nothing:\n  {}", broken.join("\n  "));
}

/// The comparison is only worth something if it notices a change on
/// either side: an operation added to the spec, a route added to (or
/// missing from) the router, and a document it cannot read. Nothing here
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

    assert!(text.contains("\npaths:\n"), "openapi.yaml keeps `paths:` on a line of its own");
    let extra = "\npaths:\n  '/route-check-probe/{id}':\n    summary: A probe.\n    patch:\n      responses: {}\n";
    let more_spec = spec_operations(&text.replacen("\npaths:\n", extra, 1)).expect("extended spec is readable");
    assert_eq!(differences(&more_spec, &spec), (vec![], vec!["PATCH /route-check-probe/{id}".to_string()]));

    let (method, path) = spec.first().expect("not empty").clone();
    let mut fewer_routes = spec.clone();
    fewer_routes.remove(&(method.clone(), path.clone()));
    assert_eq!(differences(&spec, &fewer_routes), (vec![], vec![format!("{method} {path}")]));

    // A path of the real file whose operation keys are renamed has no
    // operation left, and that is reported rather than skipped.
    let mut document = load(&text).expect("openapi.yaml is readable");
    let (first_path, renamed) = without_operations(&mut document).expect("openapi.yaml has a path");
    assert!(renamed > 0, "the fixture edit must apply to openapi.yaml");
    let problems = operations(&document).expect_err("a path without operations is reported");
    assert!(problems[0].contains(&format!("{first_path} has no operation")), "{problems:?}");

    assert!(spec_operations("openapi: 3.1.0\npaths: {}\n").is_err());
    assert!(spec_operations("openapi: 3.1.0\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n    get: {}\n    get: {}\n").is_err(), "a duplicated key is refused");
    assert!(spec_operations("paths:\n  /a:\n    GET: {}\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n    get: []\n").is_err());
    assert!(spec_operations("paths:\n  a:\n    get: {}\n").is_err());
    assert!(spec_operations("paths:\n  /a:\n\tget: {}\n").is_err(), "a tab in indentation is not YAML");
    assert!(spec_operations("paths:\n  /a:\n    get: {}\n  /b: [\n").is_err(), "unclosed flow sequence");
    assert!(spec_operations("paths:\n  /a:\n    get: {}\n---\npaths: {}\n").is_err(), "two documents");
    // Indentation and quoting are the parser's business now: any layout
    // YAML allows reads the same.
    assert_eq!(spec_operations("paths:\n  /a:\n   get: {}\n"), Ok(BTreeSet::from([("GET".into(), "/a".into())])));
    assert_eq!(spec_operations("paths: {/a: {get: {}}}\n"), Ok(BTreeSet::from([("GET".into(), "/a".into())])));
    assert_eq!(
        spec_operations("paths:\n  /a:\n    get: {}\n  \"/b\": # note\n    post:\n      summary: x\ncomponents:\n  /c:\n    put: {}\n"),
        Ok(BTreeSet::from([("GET".into(), "/a".into()), ("POST".into(), "/b".into())]))
    );
}

/// `spec` with every operation key of its first path renamed to
/// `x-removed-<method>`; that path and how many keys were renamed.
fn without_operations(spec: &mut Value) -> Option<(String, usize)> {
    let (path, item) = spec.get_mut("paths")?.as_object_mut()?.iter_mut().next()?;
    let item = item.as_object_mut()?;
    let mut renamed = 0;
    for method in METHODS {
        if let Some(operation) = item.remove(*method) {
            item.insert(format!("x-removed-{method}"), operation);
            renamed += 1;
        }
    }
    Some((path.clone(), renamed))
}

/// The response and `$ref` checks notice what they are there for.
#[test]
fn the_response_and_ref_checks_notice_what_they_look_for() {
    let fixture = load(concat!(
        "paths:\n",
        "  /a:\n",
        "    get:\n",
        "      responses:\n",
        "        200: {$ref: '#/components/responses/Ok'}\n",
        "    post:\n",
        "      responses: {}\n",
        "    delete:\n",
        "      summary: no responses at all\n",
        "  /b~c/d:\n",
        "    put:\n",
        "      responses:\n",
        "        '204':\n",
        "          description: done\n",
        "          content: {application/json: {schema: {$ref: '#/components/schemas/Gone'}}}\n",
        "components:\n",
        "  responses:\n",
        "    Ok: {description: ok, headers: {A/B: {$ref: '#/components/headers/A~1B'}}}\n",
        "  headers:\n",
        "    A/B: {schema: {type: string}}\n",
        "  schemas:\n",
        "    Kept: {$ref: 'other.yaml#/Kept'}\n",
    ))
    .expect("the fixture is readable");
    assert_eq!(operations_without_responses(&fixture), ["DELETE /a", "POST /a"]);
    let (broken, total) = unresolved_refs(&fixture);
    assert_eq!(total, 4);
    assert_eq!(
        broken,
        [
            "#/components/schemas/Kept/$ref: \"other.yaml#/Kept\"",
            "#/paths/~1b~0c~1d/put/responses/204/content/application~1json/schema/$ref: \"#/components/schemas/Gone\""
        ]
    );
}
