//! `footfall demo` shows events, the occupancy table and the mosquitto_sub line, and stops.

use std::process::Command;

#[test]
fn demo_shows_events_and_stops() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18999);
    let out = Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args([
            "demo",
            "--duration-s",
            "12",
            "--no-color",
            "--table-every-s",
            "4",
            "--port",
            &port.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("mosquitto_sub -h 127.0.0.1 -p"), "{text}");
    assert!(
        text.contains(" enter "),
        "no zone events within the demo's first seconds:\n{text}"
    );
    assert!(text.contains("── occupancy"), "{text}");
    assert!(text.contains("0 left in the outbox"), "{text}");
}
