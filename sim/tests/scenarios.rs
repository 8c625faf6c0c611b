//! Scenario tests: the engine against the simulator's ground truth on both example stores, with
//! fixed seeds. They assert the quality floors (never loosen them): zone accuracy ≥ 90 %,
//! enter p95 ≤ 1.5 s, exit p95 ≤ 10 s, ≤ 0.1 flaps per device-hour. These are quality floors of
//! a deterministic replay, not timings.
//!
//! Simulated windows are kept short so the debug build stays quick on a 2-core CI machine; the
//! figures in `docs/accuracy.md` come from longer release runs of the same stores.

use footfall_sim::{evaluate, load_store_file, EvalReport, SimFile, Simulator};

fn example(name: &str) -> SimFile {
    let path = format!(
        "{}/../docs/examples/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    load_store_file(&std::fs::read_to_string(&path).expect("example store"))
        .expect("valid store file")
}

fn run(name: &str, minutes: f64, seed: u64) -> EvalReport {
    let file = example(name);
    let report = evaluate(
        &file.layout,
        &file.engine,
        Simulator::new(&file, minutes, seed),
    )
    .expect("evaluation runs");
    println!("{report}");
    report
}

fn assert_floors(r: &EvalReport) {
    assert!(
        r.visits > 10 && r.device_hours > 0.1,
        "scenario too small to judge:\n{r}"
    );
    assert_eq!(
        r.unmapped_identities, 0,
        "every identity maps to an engine person:\n{r}"
    );
    assert!(
        r.zone_accuracy >= 0.90,
        "zone accuracy {:.1} % < 90 %:\n{r}",
        r.zone_accuracy * 100.0
    );
    let enter = r.enter_latency.p95_ms.expect("enter latencies measured");
    assert!(enter <= 1_500, "enter p95 {enter} ms > 1.5 s:\n{r}");
    let exit = r.exit_latency.p95_ms.expect("exit latencies measured");
    assert!(exit <= 10_000, "exit p95 {exit} ms > 10 s:\n{r}");
    assert!(
        r.flaps_per_device_hour <= 0.1,
        "{:.3} flaps per device-hour > 0.1:\n{r}",
        r.flaps_per_device_hour
    );
}

// Ignored, not loosened: the engine does not reach these floors yet (issue 3). Last measured
// (docs/accuracy.md): boutique 87.3 % / enter p95 6.7 s / exit p95 7.8 s / 4.9 flaps per
// device-hour; large store 73.5 % / 11.2 s / 10.5 s / 13.4. Run with
// `cargo test -p footfall-sim --release --test scenarios -- --ignored` while tuning.
#[test]
#[ignore = "issue 3: engine misses the quality floors (figures in docs/accuracy.md)"]
fn boutique_meets_the_quality_floors() {
    assert_floors(&run("boutique", 10.0, 1));
}

#[test]
#[ignore = "issue 3: engine misses the quality floors (figures in docs/accuracy.md)"]
fn large_store_meets_the_quality_floors() {
    assert_floors(&run("large-store", 2.0, 1));
}

/// The harness itself: the same seed gives the same report.
#[test]
fn evaluation_is_deterministic() {
    let a = run("boutique", 2.0, 5);
    let b = run("boutique", 2.0, 5);
    assert_eq!(a, b);
    assert!(a.identities > 0 && a.zone_samples > 0);
}
