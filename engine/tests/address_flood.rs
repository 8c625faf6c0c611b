//! An address flood: a stream of distinct, never-repeating advertiser addresses (what a
//! tracker-spoofing tool or a crowd of rotating phones produces), a few per node per
//! millisecond of virtual time, through an engine whose device table is capped.
//!
//! - the table never holds more than `limits.max_devices`;
//! - every device pushed out is counted (`evictions_capacity` + `evictions_stale`);
//! - visitors whose open sessions are pushed out get an exit (reason `Evicted`), none is lost;
//! - a shopper standing still in one zone throughout keeps one session: one enter, no exit
//!   and no other zone during the flood, dwell milestones keep coming, and it exits when it
//!   leaves.
//!
//! Size: `FOOTFALL_FLOOD_ADDRESSES` (default 1 000 000: 4 per ms is 250 s of virtual time;
//! ≈ 6 s in a debug build on the 2-core development VM).

mod common;

use std::collections::HashSet;

use common::*;
use footfall_engine::event::{EventKind, ReasonRule};
use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting,
};
use footfall_engine::time::Timestamp;
use rand::Rng;

const CAP: u32 = 5_000;
/// Flood addresses per millisecond of virtual time (spread over the nodes).
const PER_MS: u32 = 4;
const VISITORS: u32 = 40;

fn flood_addr(i: u32) -> DeviceEvidence {
    let b = i.to_be_bytes();
    DeviceEvidence::Address {
        // A resolvable-private-looking address (top bits 01), unique per i.
        addr: [0x4f, 0xee, b[0], b[1], b[2], b[3]],
        kind: AddressType::RandomResolvable,
    }
}

fn visitor(i: u32) -> DeviceEvidence {
    let b = i.to_be_bytes();
    DeviceEvidence::Address {
        addr: [0xd1, 0x5e, b[0], b[1], b[2], b[3]],
        kind: AddressType::RandomStatic,
    }
}

#[test]
fn a_million_rotating_addresses_stay_under_the_cap() {
    let total: u32 = std::env::var("FOOTFALL_FLOOD_ADDRESSES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let layout = layout();
    let mut config = config();
    config.limits.max_devices = CAP;
    let mut d = Driver::new(layout.clone(), config);
    let mut radio = Radio::new(7, 2.0);
    let mut rng = rng(11);
    d.nodes_alive(&layout, &[]);

    let stable = addr(1);
    let bakery = zone_center(&layout, "bakery");
    let stable_person = d.engine.person_for(&stable, Timestamp(d.now));

    // Visitors: 40 devices stand in the fruit zone long enough to open sessions, then go
    // silent just before the flood starts.
    let fruit = zone_center(&layout, "fruit");
    let visitor_people: HashSet<_> = (0..VISITORS)
        .map(|i| d.engine.person_for(&visitor(i), Timestamp(d.now)))
        .collect();
    for _ in 0..40 {
        for i in 0..VISITORS {
            d.sight(
                &layout,
                &mut radio,
                visitor(i),
                DeviceKind::Phone,
                fruit,
                &[],
            );
        }
        d.sight(&layout, &mut radio, stable, DeviceKind::Phone, bakery, &[]);
        let t = d.now + 250;
        d.advance_to(t);
        if (d.now - T0) % 1000 < 250 {
            d.nodes_alive(&layout, &[]);
        }
    }
    let visitor_enters = d
        .events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::ZoneEnter(p) if visitor_people.contains(&p.person)),
        )
        .count();
    assert!(
        visitor_enters >= VISITORS as usize / 2,
        "only {visitor_enters} of {VISITORS} visitors opened a session before the flood"
    );
    let flood_start = d.now;

    // The flood, with the stable device heard every 200 ms and node heartbeats every second.
    let mut max_tracked = 0u64;
    let mut sent = 0u32;
    while sent < total {
        for _ in 0..PER_MS.min(total - sent) {
            let node = layout.nodes[rng.gen_range(0..layout.nodes.len())].id;
            let rssi: i8 = rng.gen_range(-95..-60);
            d.feed(Input::Sighting(Sighting {
                node,
                device: flood_addr(sent),
                kind: DeviceKind::Unknown,
                rssi: RssiObservation::single(rssi),
                tx_power_dbm: None,
            }));
            sent += 1;
        }
        let t = d.now + 1;
        d.advance_to(t);
        if (d.now - flood_start).is_multiple_of(200) {
            d.sight(&layout, &mut radio, stable, DeviceKind::Phone, bakery, &[]);
        }
        if (d.now - flood_start).is_multiple_of(1000) {
            d.nodes_alive(&layout, &[]);
            let s = d.engine.stats();
            max_tracked = max_tracked.max(s.devices_tracked);
            assert!(
                s.devices_tracked <= u64::from(CAP),
                "{} devices tracked, cap {CAP}",
                s.devices_tracked
            );
        }
    }
    let flood_end = d.now;
    let s = d.engine.stats();
    max_tracked = max_tracked.max(s.devices_tracked);
    assert!(s.devices_tracked <= u64::from(CAP));
    assert_eq!(s.devices_capacity, u64::from(CAP));
    let forgotten = s.evictions_capacity + s.evictions_stale;
    // Every device beyond the cap was forgotten and counted (visitors + stable included).
    let seen = u64::from(total) + u64::from(VISITORS) + 1;
    assert!(
        forgotten + s.devices_tracked >= seen,
        "{seen} devices seen, {} tracked, {} capacity + {} stale evictions: some were lost \
         without being counted",
        s.devices_tracked,
        s.evictions_capacity,
        s.evictions_stale
    );
    assert!(s.evictions_capacity > 0, "the cap was never reached: {s:?}");

    // Visitors: every session opened got exactly one exit, pushed out by the flood.
    let mut visitor_exits = 0usize;
    let mut visitor_evicted = 0usize;
    for e in &d.events {
        if let EventKind::ZoneExit { presence: p, .. } = &e.kind {
            if visitor_people.contains(&p.person) {
                visitor_exits += 1;
                if matches!(p.reason.rule, ReasonRule::Evicted) {
                    visitor_evicted += 1;
                }
            }
        }
    }
    assert_eq!(
        visitor_exits, visitor_enters,
        "{visitor_enters} visitor sessions opened, {visitor_exits} closed"
    );
    assert!(
        visitor_evicted > 0,
        "no visitor session was closed by an eviction ({visitor_exits} exits)"
    );

    // The stable shopper: one session in the bakery for the whole flood.
    let stable_events: Vec<_> = d.person_events(stable_person);
    let enters: Vec<_> = stable_events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ZoneEnter(_)))
        .collect();
    let exits_during: Vec<_> = stable_events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ZoneExit { .. }) && e.time.0 <= flood_end)
        .collect();
    assert_eq!(enters.len(), 1, "stable device: {stable_events:#?}");
    let EventKind::ZoneEnter(p) = &enters[0].kind else {
        unreachable!()
    };
    assert_eq!(d.engine.zone_id(p.zone), "bakery");
    assert!(
        exits_during.is_empty(),
        "the stable device lost its session during the flood: {exits_during:#?}"
    );
    let dwells_in_flood = stable_events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ZoneDwell { .. }) && e.time.0 > flood_start)
        .count();
    let flood_s = (flood_end - flood_start) / 1000;
    if flood_s > 60 {
        assert!(
            dwells_in_flood > 0,
            "no dwell milestone for the stable device in {flood_s} s of flood"
        );
    }

    // It leaves: silence until it is stale → one exit.
    let t = d.now + 200_000;
    for _ in 0..200 {
        let at = d.now + 1000;
        d.advance_to(at);
        d.nodes_alive(&layout, &[]);
    }
    d.advance_to(t);
    let exits = d
        .person_events(stable_person)
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::ZoneExit { .. }))
        .count();
    assert_eq!(
        exits, 1,
        "the stable device did not exit once after leaving"
    );
    eprintln!(
        "address flood: {total} addresses over {flood_s} s virtual, cap {CAP}, max tracked \
         {max_tracked}, evictions capacity {} / stale {}, visitor sessions {visitor_enters} \
         (exits {visitor_exits}, by eviction {visitor_evicted}), stable device dwell \
         milestones during flood {dwells_in_flood}, events dropped {}",
        s.evictions_capacity, s.evictions_stale, s.events_dropped
    );
}
