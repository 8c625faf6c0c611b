//! A simulated store's radio traffic as each anchor's scanner would hand it to the firmware:
//! the recording's sightings (with `[simulation] raw_adv = true`, so each carries the
//! advertising payload) split per node into the firmware's record format
//! (`footfall_firmware::recording::write_record`), timed on the node's own clock.
//!
//! Every node boots at its own moment, so their 2-second windows do not close together: node
//! time = recording time − the recording's start + the node's boot offset.

use std::collections::BTreeMap;
use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};

use footfall_firmware::recording::{write_record, RECORD_HEADER_LEN};
use footfall_firmware::scanner::AdvReport;
use footfall_proto::frame::NodeId;
use footfall_sim::record::{AddrType, Record};
use footfall_sim::{ReadOptions, RecordingReader};

/// One node's advertisement stream.
#[derive(Debug)]
pub struct NodeStream {
    /// The node.
    pub node: NodeId,
    /// Node time at the recording's start, ms.
    pub boot_offset_ms: u32,
    /// The stream file.
    pub path: PathBuf,
    /// Advertisements in it.
    pub adverts: usize,
}

/// The HCI address type a controller reports for a simulated address (the firmware tells the
/// random sub-types apart by the address's top bits, which the simulator sets).
fn hci_address_type(t: Option<AddrType>) -> u8 {
    match t {
        Some(AddrType::Public) => 0,
        _ => 1,
    }
}

/// Splits `recording` into one stream per node of `nodes` under `dir` (`adverts-<node>.bin`).
/// `boot_offset` gives each node's clock at the recording's start. Returns the recording's
/// start (Unix ms) and the streams.
pub fn write_node_streams(
    recording: &Path,
    nodes: &[NodeId],
    dir: &Path,
    boot_offset: impl Fn(NodeId) -> u32,
) -> (u64, Vec<NodeStream>) {
    let file = std::fs::File::open(recording).expect("open recording");
    let reader = RecordingReader::open(
        BufReader::new(file),
        ReadOptions::with_nodes(nodes.iter().copied()),
    )
    .expect("recording header");
    let start = reader
        .header()
        .start_ms
        .expect("a simulated recording has start_ms");
    let mut out: BTreeMap<NodeId, (NodeStream, std::io::BufWriter<std::fs::File>)> = nodes
        .iter()
        .map(|&node| {
            let path = dir.join(format!("adverts-{node}.bin"));
            let file = std::fs::File::create(&path).expect("create node stream");
            let stream = NodeStream {
                node,
                boot_offset_ms: boot_offset(node),
                path,
                adverts: 0,
            };
            (node, (stream, std::io::BufWriter::new(file)))
        })
        .collect();
    let mut buf = [0u8; RECORD_HEADER_LEN + 31];
    for record in reader {
        let Record::Sighting(s) = record.expect("recording line") else {
            continue;
        };
        let (stream, file) = out.get_mut(&s.node).expect("sighting of a store node");
        let adv = hex::decode(
            s.adv
                .as_deref()
                .expect("sighting without adv: raw_adv is off"),
        )
        .expect("adv is hex");
        let addr = s.addr.expect("simulated sightings carry the address").0;
        let report = AdvReport {
            addr,
            addr_type: hci_address_type(s.addr_type),
            rssi: s.rssi,
            data: &adv,
        };
        let node_ms = s.t - start + u64::from(stream.boot_offset_ms);
        let mut at = 0;
        assert!(
            write_record(
                &mut buf,
                &mut at,
                u32::try_from(node_ms).expect("node time fits u32"),
                &report
            ),
            "advertisement does not fit a record: {s:?}"
        );
        file.write_all(&buf[..at]).expect("write node stream");
        stream.adverts += 1;
    }
    let streams = out
        .into_values()
        .map(|(stream, mut file)| {
            file.flush().expect("flush node stream");
            stream
        })
        .collect();
    (start, streams)
}
