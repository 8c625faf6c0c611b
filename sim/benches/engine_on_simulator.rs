//! The engine on simulator traffic: the example stores' sightings (seeded, generated in memory
//! before timing) through `Engine::handle` / `handle_timeout` with events drained, as the
//! gateway's loop does. Prints sightings per CPU-second of this thread, devices tracked and
//! zone evaluations. Complements `engine/benches/throughput.rs`, whose synthetic crowd scales to
//! 100 k devices but hears each device only ~5 times a second; a simulated shopper's phone is
//! heard ~20 times a second (several nodes, real advertising intervals), which changes how
//! many sightings share one zone evaluation.
//!
//! `cargo bench -p footfall-sim --bench engine_on_simulator`

#[path = "../../engine/benches/support/cpu_time.rs"]
mod cpu_time;

use cpu_time::thread_cpu_s;
use footfall_engine::input::Input;
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;
use footfall_sim::{load_store_file, to_inputs, Record, Simulator};

fn run(store: &str, minutes: f64) -> anyhow::Result<()> {
    let path = format!(
        "{}/../docs/examples/{store}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = load_store_file(&std::fs::read_to_string(&path)?)?;
    let mut inputs: Vec<(Timestamp, Input)> = Vec::new();
    let mut sightings = 0u64;
    for record in Simulator::new(&file, minutes, 1) {
        if let Record::Sighting(s) = record {
            let (t, items) = to_inputs(&s);
            for input in items {
                sightings += u64::from(matches!(input, Input::Sighting(_)));
                inputs.push((t, input));
            }
        }
    }
    let mut engine = Engine::new(file.layout.clone(), file.engine.clone())
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let (mut events, mut peak_devices) = (0u64, 0usize);
    let cpu0 = thread_cpu_s();
    for (i, (t, input)) in inputs.into_iter().enumerate() {
        while let Some(due) = engine.poll_timeout().filter(|d| *d <= t) {
            engine.handle_timeout(due);
        }
        engine.handle(t, input);
        while engine.poll_event().is_some() {
            events += 1;
        }
        if i % 1024 == 0 {
            peak_devices = peak_devices.max(engine.stats().devices_tracked as usize);
        }
    }
    let cpu = thread_cpu_s().zip(cpu0).map(|(b, a)| b - a);
    let stats = engine.stats();
    match cpu {
        // The clock ticks every 10 ms: a quick run (`cargo test --benches`) is too short to time.
        Some(cpu) if cpu < 0.1 => println!(
            "{store}, {minutes} min: {sightings} sightings, {events} events: too short to time"
        ),
        Some(cpu) => println!(
            "{store}, {minutes} min: {sightings} sightings in {cpu:.2} s CPU: {:.2} M sightings per CPU-second; {} zone evaluations ({:.1} % of sightings); {events} events; up to {peak_devices} devices tracked",
            sightings as f64 / cpu / 1e6,
            stats.evaluations,
            100.0 * stats.evaluations as f64 / sightings.max(1) as f64,
        ),
        None => println!("{store}: no CPU clock (/proc/thread-self/stat)"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this once with `--bench` absent: keep it short then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (boutique, large) = if quick { (2.0, 0.5) } else { (240.0, 20.0) };
    run("boutique", boutique)?;
    run("large-store", large)?;
    Ok(())
}
