//! What the emulated board gets from the host over semihosting (ARM's "Semihosting for AArch32
//! and AArch64", operations SYS_GET_CMDLINE, SYS_OPEN, SYS_READ, SYS_WRITE): its command line,
//! an advertisement stream read from a host file, and whole output lines.

use core::fmt;

use cortex_m_semihosting::{hio, nr, syscall, syscall1};
use footfall_firmware::recording::{Recording, RECORD_HEADER_LEN};
use footfall_firmware::scanner::AdvReport;

/// Longest advertising payload a record carries (legacy advertising data).
const MAX_ADV_DATA: usize = 31;
/// Longest record.
const MAX_RECORD: usize = RECORD_HEADER_LEN + MAX_ADV_DATA;

/// The semihosting command line (`-semihosting-config arg=…,arg=…`: the args joined by
/// spaces). Empty when the host has none: QEMU fails the call when no `arg` is set.
pub fn cmdline(buf: &mut [u8]) -> Result<&str, &'static str> {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // `syscall1`, not `syscall!`: the macro would pass a copy of the arguments as the parameter
    // block, and the host writes the length back into the block.
    // SAFETY: the block names a writable buffer of the stated length; both outlive the call.
    // The host writes at most that many bytes and the used length back into block[1].
    let r = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if r != 0 {
        return Ok("");
    }
    let len = block[1].min(buf.len());
    let bytes = buf.get(..len).ok_or("command line length")?;
    core::str::from_utf8(bytes)
        .map(|s| s.trim_end_matches('\0'))
        .map_err(|_| "command line is not UTF-8")
}

/// A host file opened for reading.
pub struct HostFile {
    fd: usize,
}

impl HostFile {
    /// Opens `path` (binary read). The path is copied to add the terminating NUL.
    pub fn open(path: &str) -> Result<Self, &'static str> {
        let mut name = [0u8; 256];
        let bytes = path.as_bytes();
        if bytes.len() >= name.len() {
            return Err("input path too long");
        }
        name.get_mut(..bytes.len())
            .ok_or("input path too long")?
            .copy_from_slice(bytes);
        // SAFETY: `name` is NUL-terminated at `bytes.len()` and lives across the call.
        let fd = unsafe { syscall!(OPEN, name.as_ptr(), nr::open::R_BINARY, bytes.len()) };
        if fd as isize == -1 {
            return Err("cannot open the input file");
        }
        Ok(Self { fd })
    }

    /// Reads up to `buf.len()` bytes; 0 at the end of the file.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, &'static str> {
        // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
        let not_read = unsafe { syscall!(READ, self.fd, buf.as_mut_ptr(), buf.len()) };
        buf.len().checked_sub(not_read).ok_or("SYS_READ failed")
    }
}

/// Records (`footfall_firmware::recording`'s format) streamed from a host file through a
/// small buffer, so a recording of any length fits the board's RAM.
pub struct RecordStream {
    file: HostFile,
    buf: [u8; 4096],
    start: usize,
    end: usize,
    eof: bool,
}

impl RecordStream {
    /// Streams `file`.
    pub fn new(file: HostFile) -> Self {
        Self {
            file,
            buf: [0; 4096],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next record, left in the buffer (read it again, or [`Self::advance`] past it);
    /// `Ok(None)` at a clean end, an error for a truncated or bad record.
    pub fn peek(&mut self) -> Result<Option<(u32, AdvReport<'_>)>, &'static str> {
        if self.end - self.start < MAX_RECORD && !self.eof {
            self.refill()?;
        }
        let pending = self.buf.get(self.start..self.end).ok_or("stream bounds")?;
        if pending.is_empty() {
            return Ok(None);
        }
        let record = pending
            .get(..record_len(pending)?)
            .ok_or("truncated record")?;
        let (t_ms, report) = Recording::new(record).next().ok_or("bad record")?;
        if report.data.len() > MAX_ADV_DATA {
            return Err("advertising data over 31 bytes");
        }
        Ok(Some((t_ms, report)))
    }

    /// Moves past the record [`Self::peek`] returned.
    pub fn advance(&mut self) -> Result<(), &'static str> {
        let pending = self.buf.get(self.start..self.end).ok_or("stream bounds")?;
        self.start += record_len(pending)?;
        Ok(())
    }

    fn refill(&mut self) -> Result<(), &'static str> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < self.buf.len() && !self.eof {
            let free = self.buf.get_mut(self.end..).ok_or("stream bounds")?;
            let n = self.file.read(free)?;
            self.eof = n == 0;
            self.end += n;
        }
        Ok(())
    }
}

/// The length of the record at the start of `pending`, from its header.
fn record_len(pending: &[u8]) -> Result<usize, &'static str> {
    let data_len = pending
        .get(RECORD_HEADER_LEN - 1)
        .ok_or("truncated record header")?;
    Ok(RECORD_HEADER_LEN + usize::from(*data_len))
}

/// An output line built in RAM and written with one SYS_WRITE (a `write!` straight to the host
/// would cost one trap per formatted piece: two hex digits each).
pub struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; 1024],
            len: 0,
        }
    }

    /// Writes the line and a newline to `out`, then empties it.
    pub fn flush_to(&mut self, out: &mut hio::HostStream) -> Result<(), &'static str> {
        fmt::Write::write_str(self, "\n").map_err(|_| "output line too long")?;
        let bytes = self.buf.get(..self.len).ok_or("line bounds")?;
        out.write_all(bytes).map_err(|_| "semihosting write")?;
        self.len = 0;
        Ok(())
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
