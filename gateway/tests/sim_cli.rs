//! `footfall simulate` → `footfall replay` → `footfall eval`, and `footfall keys new-node`,
//! through the real binary.

use std::process::Command;

fn footfall(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BOUTIQUE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/boutique.toml"
);

#[test]
fn simulate_replay_eval() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rec = dir.path().join("rec.jsonl");
    let out = dir.path().join("events.jsonl");
    let rec_s = rec.to_str().unwrap_or_default();
    let (ok, _, err) = footfall(&[
        "simulate",
        "--store",
        BOUTIQUE,
        "--minutes",
        "3",
        "--seed",
        "5",
        "--out",
        rec_s,
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = footfall(&[
        "replay",
        "--config",
        BOUTIQUE,
        rec_s,
        "--out",
        out.to_str().unwrap_or_default(),
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e["type"] == "footfall.zone.enter"),
        "no zone.enter in {} events",
        events.len()
    );
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "event ids are unique");
    // Same recording, same events: replay is deterministic.
    let out2 = dir.path().join("events2.jsonl");
    let (ok, _, err) = footfall(&[
        "replay",
        "--config",
        BOUTIQUE,
        rec_s,
        "--out",
        out2.to_str().unwrap_or_default(),
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let types = |t: &str| {
        t.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["type"].to_string(), v["subject"].to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        types(&text),
        types(&std::fs::read_to_string(&out2).unwrap_or_default())
    );
    let (ok, report, err) = footfall(&["eval", "--config", BOUTIQUE, rec_s]);
    assert!(ok, "{err}");
    assert!(report.contains("zone accuracy"), "{report}");
}

#[test]
fn keys_new_node_prints_config_and_firmware_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = footfall(&[
        "keys",
        "new-node",
        "--id",
        "12",
        "--out",
        dir.path().to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{err}");
    let key = std::fs::read_to_string(dir.path().join("node-12.key")).unwrap_or_default();
    let key = key.trim();
    assert_eq!(key.len(), 32);
    assert!(
        out.contains("[[auth.nodes]]") && out.contains("id = 12"),
        "{out}"
    );
    assert!(
        out.contains(&format!("FOOTFALL_NODE_ID=12 FOOTFALL_NODE_KEY={key}")),
        "{out}"
    );
    let (ok, _, _) = footfall(&[
        "keys",
        "new-node",
        "--id",
        "12",
        "--out",
        dir.path().to_str().unwrap_or_default(),
    ]);
    assert!(!ok, "an existing key is never overwritten without --force");
}
