//! The MQTT contract's JSON Schemas (`docs/schemas/*.json`, draft 2020-12) as validators, for
//! checking what a subscriber received. `$ref`s between the files (the common CloudEvents
//! envelope) are served from disk; nothing is fetched from the network. The same loading as
//! `gateway/tests/contract_schema.rs`, which checks the renderer's side.

use std::collections::HashMap;

use serde_json::Value;

/// Serves `$ref`s from the schema files by `$id`.
struct FromDisk(HashMap<String, Value>);

impl jsonschema::Retrieve for FromDisk {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .get(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("no schema file has $id {uri}").into())
    }
}

/// One validator per CloudEvents `type` that has a schema file (`footfall.zone.enter` →
/// `zone-enter.json`).
pub struct Contract {
    by_type: HashMap<String, jsonschema::Validator>,
}

impl Contract {
    /// Loads and compiles every schema in `docs/schemas/`.
    pub fn load() -> Contract {
        let dir = super::repo_root().join("docs/schemas");
        let mut files = Vec::new();
        let mut by_id = HashMap::new();
        for entry in std::fs::read_dir(&dir).expect("docs/schemas exists") {
            let path = entry.expect("readable dir").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable schema");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let id = v["$id"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no $id", path.display()))
                .to_owned();
            let stem = path
                .file_stem()
                .and_then(|n| n.to_str())
                .expect("utf-8 name")
                .to_owned();
            by_id.insert(id, v.clone());
            files.push((stem, v));
        }
        let by_type = files
            .into_iter()
            .filter(|(stem, _)| stem != "cloudevent")
            .map(|(stem, schema)| {
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .with_retriever(FromDisk(by_id.clone()))
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("docs/schemas/{stem}.json does not compile: {e}"));
                (format!("footfall.{}", stem.replace('-', ".")), validator)
            })
            .collect();
        Contract { by_type }
    }

    /// The schema violations of one received event (by its `type`); an unknown type is one.
    pub fn errors(&self, event: &Value) -> Vec<String> {
        let ty = event["type"].as_str().unwrap_or_default();
        match self.by_type.get(ty) {
            Some(v) => v
                .iter_errors(event)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect(),
            None => vec![format!("no schema for type {ty:?}")],
        }
    }
}
