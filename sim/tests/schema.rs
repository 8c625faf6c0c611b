//! Recordings the simulator writes validate against `docs/recording.schema.json`, and the schema
//! rejects what the reader rejects.

use footfall_sim::{load_store_file, simulate_to_writer};
use serde_json::Value;

fn schema() -> jsonschema::Validator {
    let path = format!(
        "{}/../docs/recording.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema file"))
        .expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, line: &str) {
    let instance: Value = serde_json::from_str(line).expect("line is JSON");
    let errors: Vec<String> = v
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{line}\n{errors:#?}");
}

#[test]
fn simulated_lines_validate() {
    let v = schema();
    let path = format!(
        "{}/../docs/examples/boutique.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut file = load_store_file(&std::fs::read_to_string(path).unwrap()).unwrap();
    file.sim.raw_adv = true;
    let mut out = Vec::new();
    simulate_to_writer(&file, 1.0, 9, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (i, line) in text.lines().enumerate() {
        let value: Value = serde_json::from_str(line).unwrap();
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        let wearable = value.get("hr").is_some();
        let key = if wearable {
            "sighting+hr".to_string()
        } else {
            kind
        };
        let n = seen.entry(key).or_default();
        // The first few of every kind of line, then every 97th.
        if *n < 20 || i % 97 == 0 {
            assert_valid(&v, line);
        }
        *n += 1;
    }
    for kind in ["header", "sighting", "truth", "device"] {
        assert!(seen.contains_key(kind), "no {kind} line in {seen:?}");
    }
}

#[test]
fn hand_written_lines_validate_or_not() {
    let v = schema();
    assert_valid(
        &v,
        r#"{"type":"sighting","t":1,"node":3,"short_hash":9,"rssi":-71,"stats":{"n":4,"min":-80,"max":-65,"mean":-71.5}}"#,
    );
    assert_valid(
        &v,
        r#"{"type":"sighting","t":1,"node":3,"ibeacon":{"uuid":"f7826da6-4fa2-4e98-8024-bc5b71e0893e","major":1,"minor":2},"rssi":-71}"#,
    );
    let invalid = [
        r#"{"type":"sighting","t":1,"node":3,"rssi":-71}"#,
        r#"{"type":"sighting","t":-1,"node":3,"short_hash":9,"rssi":-71}"#,
        r#"{"type":"sighting","t":1,"node":3,"addr":"5A:00","rssi":-71}"#,
        r#"{"type":"header","format":"other","version":1,"store":"s"}"#,
        r#"{"type":"truth","t":1,"person":1,"x":0.0,"y":0.0}"#,
    ];
    for line in invalid {
        let instance: Value = serde_json::from_str(line).unwrap();
        assert!(!v.is_valid(&instance), "schema accepted {line}");
    }
}

#[test]
fn documented_example_lines_validate() {
    let v = schema();
    let path = format!("{}/../docs/recording.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(path).expect("docs/recording.md");
    let examples: Vec<&str> = doc.lines().filter(|l| l.starts_with("{\"type\"")).collect();
    assert!(examples.len() >= 6, "examples found: {}", examples.len());
    for line in examples {
        assert_valid(&v, line);
        serde_json::from_str::<footfall_sim::Record>(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}
