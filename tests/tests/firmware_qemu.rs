//! Firmware on an emulated Cortex-M4 → the gateway's frame verification.
//!
//! Builds and runs `firmware/qemu` (the anchor role over the checked-in recording, on QEMU
//! `mps2-an386`), collects the `FRAME <hex>` lines it prints over semihosting, and checks that
//! every frame verifies with the gateway's path (`footfall_proto::frame::verify_frame`, the test
//! node key, strictly increasing counters) and that the decoded sightings are exactly the
//! aggregation of the recorded advertisements, computed here on the host with the firmware's
//! own table over the same bytes.

mod support;

use std::collections::BTreeMap;

use footfall_firmware::observe::observe;
use footfall_firmware::recording::{Recording, TEST_NODE_ID, TEST_NODE_KEY, WINDOW_MS};
use footfall_firmware::table::SightingTable;
use footfall_proto::frame::{verify_frame, DeviceRef, NodeReport, SightingRecord, WearableRecord};
use support::qemu::run_firmware;

/// One window's content as the gateway sees it: sightings in order, and each wearable sample
/// with the device it belongs to (its in-frame index zeroed).
type Window = (Vec<SightingRecord>, Vec<(DeviceRef, WearableRecord)>);

/// What the gateway should decode, window by window: the firmware's own table over the
/// recording, keyed by the window's end (the frames' `node_time_ms`).
fn expected() -> BTreeMap<u32, Window> {
    let mut windows: BTreeMap<u32, SightingTable<128>> = BTreeMap::new();
    for (t, report) in Recording::builtin() {
        let end = (t / WINDOW_MS + 1) * WINDOW_MS;
        windows
            .entry(end)
            .or_default()
            .record(&report, &observe(report.data));
    }
    windows
        .into_iter()
        .map(|(end, table)| {
            let recs: Vec<_> = table.records().collect();
            let sightings = recs.iter().map(|r| r.sighting).collect();
            let wearables = recs
                .iter()
                .filter_map(|r| r.wearable(0).map(|w| (r.sighting.device, w)))
                .collect();
            (end, (sightings, wearables))
        })
        .collect()
}

#[test]
fn qemu_frames_verify_and_carry_the_recorded_sightings() {
    let stdout = run_firmware();
    assert!(
        stdout.lines().any(|l| l.starts_with("DONE ")),
        "no DONE line:\n{stdout}"
    );

    let mut last = None;
    let mut reports: Vec<NodeReport> = Vec::new();
    for line in stdout.lines().filter_map(|l| l.strip_prefix("FRAME ")) {
        let bytes = hex::decode(line.trim()).expect("frame line is hex");
        let report = verify_frame(&bytes, &TEST_NODE_KEY, last)
            .unwrap_or_else(|e| panic!("frame {} rejected: {e}", reports.len()));
        assert_eq!(report.header.node_id, TEST_NODE_ID);
        last = Some(report.header.counter);
        reports.push(report);
    }
    assert!(reports.len() >= 3, "only {} frames", reports.len());

    let mut actual: BTreeMap<u32, Window> = BTreeMap::new();
    for r in &reports {
        assert_eq!(r.health.dropped_sightings, 0);
        assert_eq!(r.health.dropped_frames, 0);
        let (s, w) = actual.entry(r.header.node_time_ms).or_default();
        for wear in &r.wearables {
            let device = r.sightings[usize::from(wear.sighting_index)].device;
            w.push((
                device,
                WearableRecord {
                    sighting_index: 0,
                    ..*wear
                },
            ));
        }
        s.extend(r.sightings.iter().copied());
    }

    let expected = expected();
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "windows"
    );
    for (end, (sightings, wearables)) in &expected {
        let (got_s, got_w) = &actual[end];
        assert_eq!(
            got_s, sightings,
            "sightings of the window ending at {end} ms"
        );
        assert_eq!(
            got_w, wearables,
            "wearables of the window ending at {end} ms"
        );
    }
    // The scene has beacons, tags and wearables: the check is not vacuous.
    let all: Vec<_> = expected.values().flat_map(|(s, _)| s).collect();
    assert!(all
        .iter()
        .any(|s| matches!(s.device, DeviceRef::IBeacon { .. })));
    assert!(all
        .iter()
        .any(|s| matches!(s.device, DeviceRef::EddystoneUid { .. })));
    assert!(all
        .iter()
        .any(|s| matches!(s.device, DeviceRef::TagEid { .. })));
    assert!(expected.values().all(|(_, w)| w.len() >= 6));
}
