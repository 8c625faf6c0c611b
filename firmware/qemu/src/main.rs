//! The anchor role on an emulated Cortex-M4 (QEMU `mps2-an386`).
//!
//! Feeds the checked-in recording (`firmware/recording/adverts.bin`) through
//! `footfall_firmware::anchor::DefaultAnchor`, signs frames with the public test node identity
//! (`recording::TEST_NODE_ID` / `TEST_NODE_KEY`) and writes, over semihosting stdout:
//!
//! ```text
//! FRAME <hex>                                  one line per signed frame, in send order
//! WINDOW <i> reports=<r> devices=<d> frames=<f> systicks=<t> insns=<t*40>
//! DONE reports=<r> frames=<f>
//! ```
//!
//! then exits 0 through semihosting (1 on any failure, via panic-semihosting's `exit`).
//!
//! # Cycle counts
//!
//! QEMU does not implement the DWT cycle counter (CYCCNT reads 0), so the run times each window
//! with SysTick on the core clock. The runner passes `-icount shift=0`: every instruction
//! advances virtual time by exactly 1 ns, and the mps2-an386 core clock is 25 MHz, so one SysTick
//! tick = 40 instructions. The numbers are therefore *emulated instruction counts*,
//! deterministic from run to run, not cycles of real silicon (a Cortex-M4 spends ~1.2–1.5
//! cycles per instruction on this kind of code; see docs/firmware.md). The measured span
//! covers decoding and aggregating the window's advertisements and signing its frames; printing
//! the frames (semihosting) is outside it.
#![no_std]
#![no_main]

use core::fmt::{self, Write as _};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use footfall_firmware::anchor::{AnchorConfig, DefaultAnchor};
use footfall_firmware::counter::RamCounterStore;
use footfall_firmware::recording::{Recording, TEST_NODE_ID, TEST_NODE_KEY, WINDOW_MS};
use footfall_firmware::uplink::{Uplink, UplinkError};
use panic_semihosting as _;

/// Instructions per SysTick tick under `-icount shift=0` on a 25 MHz core clock.
const INSNS_PER_TICK: u32 = 40;

/// Writes frames as `FRAME <hex>` lines on the host's stdout.
struct SemihostingUplink {
    out: hio::HostStream,
    frames: u32,
}

impl Uplink for SemihostingUplink {
    fn send(&mut self, frame: &[u8]) -> Result<(), UplinkError> {
        writeln!(self.out, "FRAME {}", Hex(frame)).map_err(|_| UplinkError::Down)?;
        self.frames += 1;
        Ok(())
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Ticks elapsed from `start` to `now` on the 24-bit down-counting SysTick.
fn ticks_since(start: u32, now: u32) -> u32 {
    start.wrapping_sub(now) & 0x00FF_FFFF
}

fn run() -> Result<u32, &'static str> {
    let mut p = cortex_m::Peripherals::take().ok_or("peripherals taken")?;
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();

    let out = hio::hstdout().map_err(|_| "no semihosting stdout")?;
    let mut uplink = SemihostingUplink { out, frames: 0 };
    let mut store = RamCounterStore::default();
    let cfg = AnchorConfig {
        node_id: TEST_NODE_ID,
        key: TEST_NODE_KEY,
        window_ms: WINDOW_MS,
        counter_block: 64,
    };
    let mut anchor = DefaultAnchor::new(cfg, &mut store, 0).map_err(|_| "counter boot")?;

    let mut window = 0u32;
    let mut window_reports = 0u32;
    let mut start = SYST::get_current();
    let mut records = Recording::builtin().peekable();
    loop {
        let next_t = records.peek().map(|(t, _)| u64::from(*t));
        let deadline = anchor.poll_timeout();
        if next_t.is_some_and(|t| t < deadline) {
            if let Some((_, report)) = records.next() {
                anchor.on_report(&report);
                window_reports += 1;
            }
            continue;
        }
        // The window's deadline comes before the next advertisement (or the recording ended).
        let summary = anchor
            .handle_timeout(deadline, &mut store)
            .ok_or("deadline not reached")?;
        let ticks = ticks_since(start, SYST::get_current());
        anchor.flush(&mut uplink).map_err(|_| "uplink")?;
        writeln!(
            uplink.out,
            "WINDOW {} reports={} devices={} frames={} systicks={} insns={}",
            window,
            window_reports,
            summary.devices,
            summary.frames,
            ticks,
            ticks.saturating_mul(INSNS_PER_TICK)
        )
        .map_err(|_| "stdout")?;
        window += 1;
        window_reports = 0;
        if next_t.is_none() {
            break;
        }
        start = SYST::get_current();
    }
    writeln!(
        uplink.out,
        "DONE reports={} frames={}",
        anchor.reports(),
        uplink.frames
    )
    .map_err(|_| "stdout")?;
    Ok(uplink.frames)
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(_) => debug::exit(debug::EXIT_SUCCESS),
        Err(what) => {
            if let Ok(mut err) = hio::hstderr() {
                let _ = writeln!(err, "ERROR {what}");
            }
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}
