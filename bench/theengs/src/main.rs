//! Footfall's side of the Theengs comparison: decodes every advertisement of `corpus.txt`
//! (`<kind> <hex>` lines, from corpus.py) N rounds the way the gateway does — check the AD
//! structures, try each as iBeacon / AltBeacon / Eddystone, read a Heart Rate Measurement from
//! service data 0x180D — and prints `footfall <adverts> <seconds> <adverts/s> <recognised>/<n>`.

use std::hint::black_box;
use std::time::Instant;

use footfall_proto::ad::types;
use footfall_proto::heart_rate::HeartRateMeasurement;
use footfall_proto::{Advertisement, Beacon, Uuid};

/// Decodes one advertisement; how many beacons / HR values it carried.
fn decode(adv: &[u8]) -> usize {
    let (adv, _overrun) = Advertisement::parse_lenient(adv);
    let mut found = 0;
    for s in adv.structures() {
        if let Ok(b) = Beacon::from_structure(&s) {
            black_box((b.device_ref(), b.power_at_1m_dbm(), &b));
            found += 1;
        } else if s.ad_type == types::SERVICE_DATA_UUID16 {
            if let Ok(sd) = s.service_data() {
                if sd.uuid == Uuid::Uuid16(0x180d) {
                    if let Ok(hr) = HeartRateMeasurement::parse(sd.data) {
                        black_box(&hr);
                        found += 1;
                    }
                }
            }
        }
    }
    black_box(adv.local_name());
    found
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(rounds)) = (args.next(), args.next()) else {
        eprintln!("usage: footfall-theengs-bench CORPUS.txt ROUNDS");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse().unwrap_or_else(|_| {
        eprintln!("ROUNDS must be a number");
        std::process::exit(2)
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(1)
    });
    let corpus: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, hex)| {
            (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect()
        })
        .collect();
    let recognised = corpus.iter().filter(|a| decode(a) > 0).count();
    let t0 = Instant::now();
    for _ in 0..rounds {
        for adv in &corpus {
            black_box(decode(black_box(adv)));
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let n = rounds * corpus.len();
    println!(
        "footfall {n} {dt:.3} {:.0} {recognised}/{}",
        n as f64 / dt,
        corpus.len()
    );
}
