//! The recording parser (`footfall_sim::RecordingReader`) on arbitrary bytes, strict and
//! lenient, with and without a node list; every sighting it yields is converted to engine
//! inputs (`footfall_sim::to_inputs`). Beyond "no panic": strict reading stops at its first
//! error, and lenient reading never yields more records than the input has lines.
#![no_main]

use footfall_sim::{to_inputs, ReadOptions, Record, RecordingReader};
use libfuzzer_sys::fuzz_target;

fn read(data: &[u8], options: ReadOptions) -> usize {
    let strict = !options.lenient;
    let Ok(reader) = RecordingReader::open(data, options) else {
        return 0;
    };
    let mut records = 0usize;
    let mut failed = false;
    for item in reader {
        assert!(
            !(strict && failed),
            "strict reading continued after an error"
        );
        match item {
            Ok(Record::Sighting(s)) => {
                let (_, inputs) = to_inputs(&s);
                for _ in inputs {}
                records += 1;
            }
            Ok(_) => records += 1,
            Err(e) => {
                let _ = e.to_string();
                failed = true;
            }
        }
    }
    records
}

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count();
    for lenient in [false, true] {
        let n = read(data, ReadOptions::default().lenient(lenient));
        assert!(n <= lines, "{n} records from {lines} lines");
        read(data, ReadOptions::with_nodes([1, 2, 3]).lenient(lenient));
    }
});
