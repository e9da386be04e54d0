//! The JSON Schemas of `protocol/schemas`, loaded once, to validate real server output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub struct Schemas {
    validators: HashMap<String, jsonschema::Validator>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol/schemas")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out)
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p)
        }
    }
}

impl Schemas {
    pub fn load() -> Schemas {
        let mut files = Vec::new();
        walk(&root(), &mut files);
        let docs: Vec<(String, Value)> = files
            .iter()
            .map(|p| {
                let rel = p.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
                (rel, serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            })
            .collect();
        let mut validators = HashMap::new();
        for (name, doc) in &docs {
            let mut opts = jsonschema::options();
            for (_, other) in &docs {
                let id = other["$id"].as_str().expect("every schema has an $id").to_string();
                opts = opts.with_resource(id, jsonschema::Resource::from_contents(other.clone()).unwrap());
            }
            let v = opts.build(doc).unwrap_or_else(|e| panic!("schema {name} is invalid: {e}"));
            validators.insert(name.clone(), v);
        }
        Schemas { validators }
    }

    pub fn has(&self, name: &str) -> bool {
        self.validators.contains_key(name)
    }

    /// Validates `v` against schema file `name` (e.g. `server/hello.json`).
    pub fn check(&self, name: &str, v: &Value) {
        let validator = self.validators.get(name).unwrap_or_else(|| panic!("no schema {name}"));
        let errors: Vec<String> = validator.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{v} does not match {name}: {errors:?}");
    }

    /// Validates a plain-WebSocket server frame (and the data of events).
    pub fn check_ws_frame(&self, v: &Value) {
        let op = v["op"].as_str().unwrap_or_else(|| panic!("frame without op: {v}"));
        self.check(&format!("server/{op}.json"), v);
        if op == "event" {
            self.check(&format!("events/{}.json", v["event"].as_str().unwrap()), &v["data"]);
        }
    }

    /// Validates a Socket.IO event argument (and the data of domain events).
    pub fn check_sio_event(&self, event: &str, arg: &Value) {
        let name = format!("events/{event}.json");
        if self.has(&name) {
            self.check("server/sio_event.json", arg);
            self.check(&name, &arg["data"]);
        }
    }
}
