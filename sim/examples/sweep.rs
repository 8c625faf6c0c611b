//! How the engine's figures move with node density and radio noise: simulate a store under
//! variants of its layout and radio, evaluate each, print a Markdown table.
//!
//! `cargo run --release -p footfall-sim --example sweep -- docs/examples/boutique.toml 10 1`
//!
//! Density: `sparse` drops every other node, `dense` adds a node at the centre of every zone
//! with no node within 3 m. Noise: `quiet` (no shadowing, outliers, loss or body blocking; 1 dB
//! fast fading), `default` (the store file), `noisy` (shadowing 6 dB, fast fading 4 dB,
//! outliers 8 %, body loss 10 dB, loss 20 %). People and their paths are identical across
//! variants (the simulator's people and radio use separate random streams).
use anyhow::Context;
use footfall_engine::config::{NodeConfig, Point, ZoneShape};
use footfall_sim::{evaluate, load_store_file, SimFile, Simulator};

fn centre(shape: &ZoneShape, file: &SimFile) -> Point {
    match shape {
        ZoneShape::Polygon { points } => {
            let n = points.len().max(1) as f32;
            Point {
                x: points.iter().map(|p| p.x).sum::<f32>() / n,
                y: points.iter().map(|p| p.y).sum::<f32>() / n,
            }
        }
        ZoneShape::NodeRadius { node, .. } => file
            .layout
            .nodes
            .iter()
            .find(|n| n.id == *node)
            .map(|n| n.position)
            .unwrap_or_default(),
    }
}

fn density(file: &SimFile, which: &str) -> SimFile {
    let mut f = file.clone();
    match which {
        "sparse" => {
            let keep: Vec<NodeConfig> = f.layout.nodes.iter().step_by(2).cloned().collect();
            f.layout.nodes = keep;
        }
        "dense" => {
            let mut next = f.layout.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
            let template = f.layout.nodes[0].clone();
            for z in &file.layout.zones {
                let c = centre(&z.shape, file);
                let near = f
                    .layout
                    .nodes
                    .iter()
                    .any(|n| (n.position.x - c.x).hypot(n.position.y - c.y) < 3.0);
                if !near {
                    f.layout.nodes.push(NodeConfig {
                        id: next,
                        name: format!("extra-{next}"),
                        position: c,
                        ..template.clone()
                    });
                    next += 1;
                }
            }
        }
        _ => {}
    }
    f
}

fn noise(file: &SimFile, which: &str) -> SimFile {
    let mut f = file.clone();
    let r = &mut f.sim.radio;
    match which {
        "quiet" => {
            r.shadowing_db = 0.0;
            r.fast_fading_db = 1.0;
            r.outlier_prob = 0.0;
            r.body_loss_db = 0.0;
            r.loss_prob = 0.0;
        }
        "noisy" => {
            r.shadowing_db = 6.0;
            r.fast_fading_db = 4.0;
            r.outlier_prob = 0.08;
            r.body_loss_db = 10.0;
            r.loss_prob = 0.2;
        }
        _ => {}
    }
    f
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let store = args
        .get(1)
        .context("usage: sweep STORE.toml MINUTES SEED")?;
    let minutes: f64 = args.get(2).map_or(Ok(10.0), |s| s.parse())?;
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let base = load_store_file(&std::fs::read_to_string(store)?)?;
    println!("{} ({} min, seed {seed})\n", base.layout.store_id, minutes);
    println!("| nodes | noise | zone accuracy | enter p50 / p95 | exit p50 / p95 | flaps / device-h | missed / false sessions |");
    println!("|---|---|---|---|---|---|---|");
    let s = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{:.1} s", v as f64 / 1000.0));
    for d in ["sparse", "as configured", "dense"] {
        for n in ["quiet", "default", "noisy"] {
            let file = noise(&density(&base, d), n);
            let r = evaluate(
                &file.layout,
                &file.engine,
                Simulator::new(&file, minutes, seed),
            )?;
            println!(
                "| {} ({d}) | {n} | {:.1} % | {} / {} | {} / {} | {:.2} | {} / {} of {} |",
                file.layout.nodes.len(),
                r.zone_accuracy * 100.0,
                s(r.enter_latency.p50_ms),
                s(r.enter_latency.p95_ms),
                s(r.exit_latency.p50_ms),
                s(r.exit_latency.p95_ms),
                r.flaps_per_device_hour,
                r.missed_sessions,
                r.false_sessions,
                r.visits
            );
        }
    }
    Ok(())
}
