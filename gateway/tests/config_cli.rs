//! `footfall check-config` and `footfall run` refuse bad configs with FILE:LINE:COL.

use std::process::Command;

const STORE: &str = include_str!("../../docs/examples/large-store.toml");

fn footfall(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn good_example_passes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = dir.path().join("good.toml");
    std::fs::write(&p, STORE).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = footfall(&["check-config", p.to_str().unwrap_or_default()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": ok"), "{out}");
}

#[test]
fn unknown_key_and_semantic_errors_are_located() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // A typo in a gateway key.
    let typo = format!("{STORE}\n[gateway]\ngateway_idd = \"x\"\n");
    let p = dir.path().join("typo.toml");
    std::fs::write(&p, &typo).unwrap_or_else(|e| panic!("{e}"));
    let line = typo
        .lines()
        .position(|l| l.starts_with("gateway_idd"))
        .map_or(0, |i| i + 1);
    let path = p.to_str().unwrap_or_default();
    let (code, _, err) = footfall(&["check-config", path]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{path}:{line}:1: unknown field `gateway_idd`")),
        "{err}"
    );
    let (code, _, err) = footfall(&["run", "--config", path]);
    assert_eq!(code, 2, "run refuses it too: {err}");

    // Semantic problems: a non-loopback embedded broker without auth, a bad node key; every
    // problem is reported, each at its own line.
    let sem = format!("{STORE}\n[broker.embedded]\nlisten = \"0.0.0.0:1883\"\n\n[[auth.nodes]]\nid = 1\nkey = \"nothex\"\n");
    let p = dir.path().join("sem.toml");
    std::fs::write(&p, &sem).unwrap_or_else(|e| panic!("{e}"));
    let path = p.to_str().unwrap_or_default();
    let listen_line = sem
        .lines()
        .position(|l| l.starts_with("listen = \"0.0.0.0"))
        .map_or(0, |i| i + 1);
    let key_line = sem
        .lines()
        .position(|l| l.starts_with("key = \"nothex\""))
        .map_or(0, |i| i + 1);
    let (code, _, err) = footfall(&["check-config", path]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{path}:{listen_line}:10: broker.embedded.listen")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:{key_line}:7: auth.nodes[0].key")),
        "{err}"
    );
    assert!(err.contains("(hint: "), "{err}");
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let (code, _, err) = footfall(&["check-config", "/nonexistent/footfall.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
}
