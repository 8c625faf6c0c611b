//! CPU time of the calling thread, shared by the engine's benches and the simulator's
//! (`sim/benches/engine_on_simulator.rs` includes this file by path).

/// This thread's CPU time (user + system), seconds, from `/proc/thread-self/stat` (Linux;
/// 100 ticks/s). On a shared machine wall-clock throughput understates the engine; CPU time
/// does not.
pub fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
