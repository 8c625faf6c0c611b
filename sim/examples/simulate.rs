//! Simulate a store and write the recording: the library path `footfall simulate` takes.
//!
//! `cargo run --release -p footfall-sim --example simulate -- docs/examples/large-store.toml 10 42 /tmp/large.jsonl`
//! (the output path `-` discards the recording and only reports the rate).
use anyhow::Context;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let store = args
        .get(1)
        .context("usage: simulate STORE.toml MINUTES SEED OUT")?;
    let minutes: f64 = args.get(2).map_or(Ok(10.0), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(42), |s| s.parse())?;
    let out = args.get(4).map_or("-", String::as_str);
    let file = footfall_sim::load_store_file(&std::fs::read_to_string(store)?)?;
    let started = Instant::now();
    let summary = if out == "-" {
        footfall_sim::simulate_to_writer(&file, minutes, seed, &mut std::io::sink())?
    } else {
        let mut f = std::fs::File::create(out)?;
        footfall_sim::simulate_to_writer(&file, minutes, seed, &mut f)?
    };
    let wall = started.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    println!(
        "wall {wall:.2} s; {:.0} sightings/s of simulated time; {:.2} M sightings/s generated",
        summary.sightings as f64 / summary.seconds.max(1e-9),
        summary.sightings as f64 / wall / 1e6
    );
    Ok(())
}
