//! The anchor role on an emulated Cortex-M4 (QEMU `mps2-an386`).
//!
//! Feeds advertisements through `footfall_firmware::anchor::DefaultAnchor`, signs frames and
//! writes, over semihosting stdout:
//!
//! ```text
//! FRAME <hex>                                  one line per signed frame, in send order
//! WINDOW <i> reports=<r> devices=<d> frames=<f> systicks=<t> insns=<t*40>
//! DONE reports=<r> frames=<f> dropped_sightings=<n>
//! ```
//!
//! then exits 0 through semihosting (1 on any failure, via panic-semihosting's `exit`).
//!
//! The semihosting command line chooses the input:
//! - no arguments: the checked-in recording (`firmware/recording/adverts.bin`), signed with
//!   the public test node identity (`recording::TEST_NODE_ID` / `TEST_NODE_KEY`);
//! - `<file> <node id> <key, 32 hex digits>` (QEMU: `-semihosting-config
//!   enable=on,target=native,arg=footfall,arg=<file>,arg=<id>,arg=<key>`): the records of a
//!   host file in the same format (`recording::write_record`; times are the node's clock, ms
//!   since boot), streamed through a 4 KiB buffer, signed as that node. The end-to-end test
//!   `tests/tests/firmware_store_e2e.rs` runs one per anchor of a simulated store.
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

mod host;

use core::fmt::{self, Write as _};
use core::iter::Peekable;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use footfall_firmware::anchor::{AnchorConfig, DefaultAnchor};
use footfall_firmware::counter::RamCounterStore;
use footfall_firmware::recording::{Recording, TEST_NODE_ID, TEST_NODE_KEY, WINDOW_MS};
use footfall_firmware::uplink::{Uplink, UplinkError};
use footfall_proto::frame::{NodeId, NodeKey};
use host::{HostFile, Line, RecordStream};
use panic_semihosting as _;

/// Instructions per SysTick tick under `-icount shift=0` on a 25 MHz core clock.
const INSNS_PER_TICK: u32 = 40;

/// Writes frames as `FRAME <hex>` lines on the host's stdout.
struct SemihostingUplink {
    out: hio::HostStream,
    line: Line,
    frames: u32,
}

impl SemihostingUplink {
    /// Writes one text line.
    fn line(&mut self, args: fmt::Arguments<'_>) -> Result<(), &'static str> {
        self.line
            .write_fmt(args)
            .map_err(|_| "output line too long")?;
        self.line.flush_to(&mut self.out)
    }
}

impl Uplink for SemihostingUplink {
    fn send(&mut self, frame: &[u8]) -> Result<(), UplinkError> {
        self.line(format_args!("FRAME {}", Hex(frame)))
            .map_err(|_| UplinkError::Down)?;
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

/// Where the advertisements come from.
// One value for the whole run, on the stack: the stream's 4 KiB buffer costs nothing there,
// and the board has no heap to box it into.
#[allow(clippy::large_enum_variant)]
enum Input {
    /// The checked-in recording.
    Builtin(Peekable<Recording<'static>>),
    /// A host file.
    Stream(RecordStream),
}

impl Input {
    /// When the next advertisement was heard (node time, ms); `None` at the end.
    fn next_time(&mut self) -> Result<Option<u32>, &'static str> {
        match self {
            Input::Builtin(r) => Ok(r.peek().map(|(t, _)| *t)),
            Input::Stream(s) => Ok(s.peek()?.map(|(t, _)| t)),
        }
    }

    /// Hands the next advertisement to the anchor.
    fn feed(&mut self, anchor: &mut DefaultAnchor) -> Result<(), &'static str> {
        match self {
            Input::Builtin(r) => {
                if let Some((_, report)) = r.next() {
                    anchor.on_report(&report);
                }
            }
            Input::Stream(s) => {
                if let Some((_, report)) = s.peek()? {
                    anchor.on_report(&report);
                }
                s.advance()?;
            }
        }
        Ok(())
    }
}

/// The input and node identity the command line asks for.
fn configure() -> Result<(Input, NodeId, NodeKey), &'static str> {
    let mut buf = [0u8; 512];
    let line = host::cmdline(&mut buf)?;
    let mut args = line.split_ascii_whitespace().skip(1);
    let Some(path) = args.next() else {
        return Ok((
            Input::Builtin(Recording::builtin().peekable()),
            TEST_NODE_ID,
            TEST_NODE_KEY,
        ));
    };
    let node = args
        .next()
        .and_then(|s| s.parse::<NodeId>().ok())
        .ok_or("usage: <file> <node id> <key hex>: bad node id")?;
    let key = parse_key(args.next().unwrap_or(""))
        .ok_or("usage: <file> <node id> <key hex>: the key is 32 hex digits")?;
    let stream = RecordStream::new(HostFile::open(path)?);
    Ok((Input::Stream(stream), node, key))
}

fn parse_key(hex: &str) -> Option<NodeKey> {
    let mut key = [0u8; 16];
    if hex.len() != 2 * key.len() {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        let digits = hex.get(2 * i..2 * i + 2)?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(NodeKey(key))
}

fn run() -> Result<u32, &'static str> {
    let mut p = cortex_m::Peripherals::take().ok_or("peripherals taken")?;
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();

    let (mut input, node_id, key) = configure()?;
    let out = hio::hstdout().map_err(|_| "no semihosting stdout")?;
    let mut uplink = SemihostingUplink {
        out,
        line: Line::new(),
        frames: 0,
    };
    let mut store = RamCounterStore::default();
    let cfg = AnchorConfig {
        node_id,
        key,
        window_ms: WINDOW_MS,
        counter_block: 64,
    };
    let mut anchor = DefaultAnchor::new(cfg, &mut store, 0).map_err(|_| "counter boot")?;

    let mut window = 0u32;
    let mut window_reports = 0u32;
    let mut start = SYST::get_current();
    let mut last_deadline;
    loop {
        let deadline = anchor.poll_timeout();
        let next = input.next_time()?;
        if next.is_some_and(|t| u64::from(t) < deadline) {
            input.feed(&mut anchor)?;
            window_reports += 1;
            continue;
        }
        // The window's deadline comes before the next advertisement (or the input ended).
        let summary = anchor
            .handle_timeout(deadline, &mut store)
            .ok_or("deadline not reached")?;
        last_deadline = deadline;
        let ticks = ticks_since(start, SYST::get_current());
        anchor.flush(&mut uplink).map_err(|_| "uplink")?;
        uplink.line(format_args!(
            "WINDOW {} reports={} devices={} frames={} systicks={} insns={}",
            window,
            window_reports,
            summary.devices,
            summary.frames,
            ticks,
            ticks.saturating_mul(INSNS_PER_TICK)
        ))?;
        window += 1;
        window_reports = 0;
        if next.is_none() {
            break;
        }
        start = SYST::get_current();
    }
    let health = anchor.health(last_deadline);
    let frames = uplink.frames;
    uplink.line(format_args!(
        "DONE reports={} frames={} dropped_sightings={}",
        anchor.reports(),
        frames,
        health.dropped_sightings
    ))?;
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
