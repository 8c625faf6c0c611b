//! `footfall bench --devices N` (memory mode) runs the whole gateway under a small synthetic
//! crowd and reports its memory: the numbers are present and consistent with one another.
//! Nothing here depends on how fast the machine is (no timing, no absolute sizes).

use std::collections::HashMap;
use std::process::Command;

const DEVICES: u64 = 300;

#[test]
fn memory_mode_reports_consistent_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_footfall"))
        .args([
            "bench",
            "--devices",
            &DEVICES.to_string(),
            "--device-rate",
            "3000",
            "--seconds",
            "4",
            "--no-fsync",
            "--max-events-queued",
            "1024",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(text.contains("peak RSS (VmHWM)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("memory "))
        .unwrap_or_else(|| panic!("no key=value line:\n{text}\n{err}"));
    let m: HashMap<&str, u64> = line
        .split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{kv}"));
            (k, v.parse().unwrap_or_else(|e| panic!("{kv}: {e}")))
        })
        .collect();
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing: {line}"));
    assert_eq!(get("devices"), DEVICES);
    assert!(get("sightings") > 0, "{line}");
    assert!(
        (1..=DEVICES).contains(&get("devices_live")),
        "devices tracked: {line}"
    );
    assert_eq!(get("evictions"), 0, "{line}");
    // Linux: every figure read from /proc/self/status; the peak bounds every sample.
    let peak = get("peak_kib");
    for k in [
        "rss_start_kib",
        "rss_idle_kib",
        "rss_anon_end_kib",
        "rss_file_end_kib",
    ] {
        assert!(get(k) > 0, "{k}: {line}");
        assert!(get(k) <= peak, "{k} above the peak: {line}");
    }
    if get("all_live_after_ms") > 0 {
        let (lo, med, hi) = (
            get("rss_steady_min_kib"),
            get("rss_steady_kib"),
            get("rss_steady_max_kib"),
        );
        assert!(0 < lo && lo <= med && med <= hi && hi <= peak, "{line}");
        assert_eq!(get("devices_live"), DEVICES, "{line}");
    }
}
