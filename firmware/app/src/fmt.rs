//! Logging shim: shared code logs through `defmt` when the `defmt` feature is on and compiles to
//! nothing otherwise (host tests, QEMU without a decoder). Same idea as embassy's and trouble's
//! `fmt.rs`: the library never picks a logger; the binary does.
#![allow(unused_macros)]

macro_rules! log_impl {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        {
            // Evaluate nothing, but keep the arguments "used" so host builds stay warning-free.
            let _ = ($( &$x ),*);
        }
    }};
}

macro_rules! trace {
    ($($arg:tt)*) => { log_impl!(trace, $($arg)*) };
}
macro_rules! debug {
    ($($arg:tt)*) => { log_impl!(debug, $($arg)*) };
}
macro_rules! info {
    ($($arg:tt)*) => { log_impl!(info, $($arg)*) };
}
macro_rules! warn {
    ($($arg:tt)*) => { log_impl!(warn, $($arg)*) };
}
macro_rules! error {
    ($($arg:tt)*) => { log_impl!(error, $($arg)*) };
}
