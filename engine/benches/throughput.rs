//! Sightings per second through the whole engine (identity → filter → location → presence →
//! campaigns → events) with 1 k, 10 k and 100 k live devices on seeded synthetic traffic;
//! then allocations per sighting in steady state (counting allocator) and bytes per device.
//!
//! `cargo bench -p footfall-engine --bench throughput -- --warm-up-time 1 --measurement-time 3`

#[path = "support/cpu_time.rs"]
mod cpu_time;
#[path = "../tests/common/traffic.rs"]
mod traffic;

use cpu_time::thread_cpu_s;
use criterion::{BenchmarkId, Criterion, Throughput};
use footfall_engine::Engine;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use traffic::{big_config, Traffic};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 10_000;

fn setup(devices: usize) -> (Engine, Traffic) {
    let mut traffic = Traffic::new(devices, 0x5eed + devices as u64);
    let mut engine = Engine::new(traffic.layout().clone(), big_config(devices))
        .unwrap_or_else(|p| panic!("{p:?}"));
    traffic.warm_up(&mut engine);
    (engine, traffic)
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(BATCH as u64));
    for devices in [1_000usize, 10_000, 100_000] {
        let (mut engine, mut traffic) = setup(devices);
        g.bench_with_input(BenchmarkId::new("sightings", devices), &devices, |b, _| {
            b.iter(|| black_box(traffic.run(&mut engine, BATCH)));
        });
        let s = engine.stats();
        println!(
            "  {devices} devices: tracked {} evaluations {} events {:?} dropped {}",
            s.devices_tracked, s.evaluations, s.events, s.events_dropped
        );
    }
    g.finish();
}

fn allocations_and_memory() {
    for devices in [1_000usize, 10_000, 100_000] {
        let (mut engine, mut traffic) = setup(devices);
        let n = 2_000_000;
        let cpu0 = thread_cpu_s();
        let wall0 = std::time::Instant::now();
        let before = ALLOCS.load(Ordering::Relaxed);
        let events = traffic.run(&mut engine, n);
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        let wall = wall0.elapsed().as_secs_f64();
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_s()) {
            let evals = engine.stats().evaluations;
            println!(
                "cpu, {devices} devices: {n} sightings in {:.2} s CPU ({:.2} s wall): {:.2} M sightings per CPU-second; {evals} zone evaluations so far",
                b - a,
                wall,
                n as f64 / (b - a).max(1e-9) / 1e6
            );
        }
        println!(
            "steady state, {devices} devices: {allocs} allocations over {n} sightings and {events} events ({:.6} per sighting); {} bytes per device slot (record {} B)",
            allocs as f64 / n as f64,
            engine.bytes_per_device(),
            engine.device_record_bytes(),
        );
        let (cell_m, map_bytes) = engine.radio_map_size();
        println!(
            "radio map: {cell_m:.2} m cells, {:.2} MB",
            map_bytes as f64 / 1e6
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
    allocations_and_memory();
}
