//! The `footfall` command.
fn main() -> std::process::ExitCode {
    bound_malloc_arenas();
    footfall_gateway::cli::main()
}

/// glibc gives each thread that meets contention on the allocator an arena of its own (up to
/// eight per core) and keeps freed memory in each. The gateway runs ~10 threads (tokio workers
/// and blocking pool, rumqttd's router and listeners); with two arenas the 100 k-device memory
/// bench peaks 0.6–0.8 MiB lower at the same sighting rate (docs/benchmarks.md). An operator's
/// own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` setting wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn bound_malloc_arenas() {
    let tuned = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if !tuned {
        // SAFETY: first thing in `main`, before any thread exists; mallopt only sets a
        // parameter of glibc's allocator, which applies to arenas created from now on.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}
