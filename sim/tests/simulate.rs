//! The simulator: store files load, output is a pure function of (file, minutes, seed), and the
//! traffic looks like a store.

use footfall_sim::record::Record;
use footfall_sim::{
    load_store_file, simulate_to_writer, ReadOptions, RecordingReader, SimFile, Simulator,
};
use std::io::Cursor;

fn example(name: &str) -> SimFile {
    let path = format!(
        "{}/../docs/examples/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    load_store_file(&std::fs::read_to_string(&path).expect("example store"))
        .expect("valid store file")
}

fn simulate(file: &SimFile, minutes: f64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    simulate_to_writer(file, minutes, seed, &mut out).expect("in-memory write");
    out
}

#[test]
fn example_stores_load() {
    let b = example("boutique");
    assert_eq!(b.layout.nodes.len(), 6);
    assert!(!b.engine.campaigns.is_empty());
    let l = example("large-store");
    assert!(l.layout.nodes.len() >= 40);
    assert!(l.layout.width_m * l.layout.depth_m >= 9_000.0);
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let file = example("boutique");
    let a = simulate(&file, 2.0, 11);
    let b = simulate(&file, 2.0, 11);
    assert!(a.len() > 10_000);
    assert_eq!(a, b);
    assert_ne!(
        a,
        simulate(&file, 2.0, 12),
        "another seed, another recording"
    );
    let large = example("large-store");
    assert_eq!(simulate(&large, 0.25, 5), simulate(&large, 0.25, 5));
}

#[test]
fn radio_parameters_do_not_move_people() {
    let file = example("boutique");
    let mut noisy = file.clone();
    noisy.sim.radio.shadowing_db = 8.0;
    noisy.sim.radio.loss_prob = 0.5;
    let truth = |f: &SimFile| -> Vec<Record> {
        Simulator::new(f, 2.0, 3)
            .filter(|r| matches!(r, Record::Truth(_) | Record::Device(_)))
            .collect()
    };
    assert_eq!(truth(&file), truth(&noisy));
}

#[test]
fn unknown_sections_are_ignored_but_bad_stores_are_refused() {
    let text = r#"
        [broker]
        listen = "127.0.0.1:1883"
        [store]
        store_id = "s"
        width_m = 10.0
        depth_m = 10.0
        [[store.nodes]]
        id = 1
        position = { x = 5.0, y = 5.0 }
        [[store.zones]]
        id = "z"
        shape = { type = "node_radius", node = 1, radius_m = 3.0 }
    "#;
    let f = load_store_file(text).expect("gateway sections are not ours to judge");
    assert_eq!(f.sim, footfall_sim::SimConfig::default());
    let bad = text.replace("node = 1, radius", "node = 7, radius");
    assert!(load_store_file(&bad).is_err());
    let no_nodes = "[store]\nstore_id = \"s\"\nwidth_m = 1.0\ndepth_m = 1.0\n";
    assert!(load_store_file(no_nodes)
        .unwrap_err()
        .to_string()
        .contains("no nodes"));
    let typo = format!("{text}\n[simulation]\narrivals_per_hr = 3.0\n");
    assert!(
        load_store_file(&typo).is_err(),
        "typos in our own section are errors"
    );
}

#[test]
fn recordings_are_ordered_valid_and_store_like() {
    let file = example("boutique");
    let bytes = simulate(&file, 3.0, 21);
    let opts = ReadOptions::with_nodes(file.layout.nodes.iter().map(|n| n.id));
    let mut reader = RecordingReader::open(Cursor::new(bytes), opts).expect("header");
    assert_eq!(reader.header().store, "boutique");
    assert_eq!(reader.header().seed, Some(21));
    let records: Vec<Record> = reader
        .by_ref()
        .collect::<Result<_, _>>()
        .expect("strictly valid");
    let sightings = records
        .iter()
        .filter(|r| matches!(r, Record::Sighting(_)))
        .count();
    let truth = records
        .iter()
        .filter(|r| matches!(r, Record::Truth(_)))
        .count();
    assert!(sightings > 1_000, "{sightings} sightings");
    assert!(truth > 100, "{truth} truth lines");
    // Every sighting's kind of identity is one the simulator makes.
    for r in &records {
        if let Record::Sighting(s) = r {
            assert!(s.rssi < -20 && s.rssi >= -100, "rssi {}", s.rssi);
        }
    }
}

#[test]
fn faults_take_effect() {
    let mut file = example("boutique");
    file.sim.faults = vec![
        footfall_sim::Fault::NodeSilent {
            node: 3,
            from_s: 0.0,
            to_s: 60.0,
        },
        footfall_sim::Fault::AddressFlood {
            from_s: 0.0,
            to_s: 30.0,
            devices: 50,
            rotate_s: 1.0,
            at: Default::default(),
        },
    ];
    file.sim.faults.push(footfall_sim::Fault::ClockDrift {
        node: 2,
        ppm: 20_000.0,
    });
    file.sim.faults.push(footfall_sim::Fault::LossBurst {
        from_s: 30.0,
        to_s: 60.0,
        loss: 1.0,
        nodes: vec![],
    });
    let mut bytes = Vec::new();
    simulate_to_writer(&file, 1.0, 4, &mut bytes).unwrap();
    let opts = ReadOptions::with_nodes(file.layout.nodes.iter().map(|n| n.id));
    let reader = RecordingReader::open(Cursor::new(bytes), opts).expect("header");
    let records: Vec<Record> = reader
        .collect::<Result<_, _>>()
        .expect("faults keep the recording valid and ordered");
    let start = records.iter().find_map(Record::time).unwrap();
    let burst = records.iter().filter(|r| {
        matches!(r, Record::Sighting(s) if s.t >= start + 31_000 && s.t < start + 59_000 && s.node != 2)
    });
    assert_eq!(burst.count(), 0, "a total loss burst silences every node");
    // A 2 % slow clock delivers node 2's reports up to 1.2 s late after a minute: they are the
    // only ones still arriving after the burst's start.
    let late = records
        .iter()
        .filter(|r| matches!(r, Record::Sighting(s) if s.node == 2 && s.t >= start + 30_500))
        .count();
    assert!(late > 0, "drifted reports arrive late");
    let from_node3 = records
        .iter()
        .filter(|r| matches!(r, Record::Sighting(s) if s.node == 3))
        .count();
    assert_eq!(from_node3, 0);
    let addrs: std::collections::HashSet<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Sighting(s) => s.addr,
            _ => None,
        })
        .collect();
    assert!(
        addrs.len() > 50 * 20,
        "a rotating flood makes many addresses: {}",
        addrs.len()
    );
}
