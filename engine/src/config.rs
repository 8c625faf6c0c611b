//! The store layout and the engine's policy. CONTRACT: the gateway's TOML config and the
//! simulator's store files deserialize straight into these types. Fields may be added with
//! `#[serde(default)]`; names are not changed without updating every user and the examples.

use footfall_proto::frame::NodeId;
use serde::{Deserialize, Serialize};

/// A point on the floor plan, metres.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// East, metres.
    pub x: f32,
    /// North, metres.
    pub y: f32,
}

/// An anchor node (or the gateway's own adapter) at a known position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id, as in its report frames.
    pub id: NodeId,
    /// Human name for logs and dashboards.
    #[serde(default)]
    pub name: String,
    /// Position on the floor plan.
    pub position: Point,
    /// Calibration: RSSI this node reads from a reference advertiser at 1 m, dBm.
    #[serde(default = "default_rssi_at_1m")]
    pub rssi_at_1m: f32,
    /// Calibration: log-distance path-loss exponent around this node.
    #[serde(default = "default_path_loss_exponent")]
    pub path_loss_exponent: f32,
}

fn default_rssi_at_1m() -> f32 {
    -59.0
}
fn default_path_loss_exponent() -> f32 {
    2.2
}

/// What a zone is for; used by the simulator's shopper paths and by campaign rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Store entrance.
    Entrance,
    /// Aisle / walkway.
    Aisle,
    /// A display or promotion area where shoppers stop.
    Display,
    /// Checkout / tills.
    Checkout,
    /// Anything else.
    #[default]
    Other,
}

/// A zone's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ZoneShape {
    /// A simple polygon (vertices in order, not closed).
    Polygon {
        /// Vertices.
        points: Vec<Point>,
    },
    /// Everything within `radius_m` of a node.
    NodeRadius {
        /// The node.
        node: NodeId,
        /// Radius, metres.
        radius_m: f32,
    },
}

/// A zone of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone id, used in topics: `[a-z0-9_-]+`.
    pub id: String,
    /// Human name.
    #[serde(default)]
    pub name: String,
    /// Kind of zone.
    #[serde(default)]
    pub kind: ZoneKind,
    /// Shape.
    pub shape: ZoneShape,
    /// Per-zone override of the dwell milestones, seconds.
    #[serde(default)]
    pub dwell_milestones_s: Option<Vec<u32>>,
}

/// The floor plan: nodes and zones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreLayout {
    /// Store id, used in topics.
    pub store_id: String,
    /// Floor width (x extent), metres.
    #[serde(default)]
    pub width_m: f32,
    /// Floor depth (y extent), metres.
    #[serde(default)]
    pub depth_m: f32,
    /// Anchor nodes.
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
}
