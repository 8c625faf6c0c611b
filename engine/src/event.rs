//! What the engine emits. CONTRACT: the gateway renders these as CloudEvents; the eval harness
//! scores them. Zones and campaigns are referred to by index into the engine's config so that
//! emitting an event allocates nothing; `Engine::zone_id` / `Engine::campaign_id` give names.

use crate::input::DeviceKind;
use crate::time::Timestamp;
use footfall_proto::frame::NodeId;
use serde::{Deserialize, Serialize};

/// Nodes named in a reason (the strongest few).
pub const REASON_NODES: usize = 4;

/// A zone, by index into the store layout's `zones`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneIdx(pub u16);

/// A campaign, by index into the engine config's `campaigns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CampaignIdx(pub u16);

fn write_hex(f: &mut core::fmt::Formatter<'_>, bytes: &[u8]) -> core::fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A unique, stable event id: a keyed permutation of the sequence number, so ids never repeat
/// for distinct sequence numbers and a redelivered event keeps its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId(pub [u8; 16]);

impl core::fmt::Display for EventId {
    /// Lowercase hex, 32 digits.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Who an event is about. Never a raw address or key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersonId {
    /// A pseudonym: keyed hash of the device key with the current period's salt. Unlinkable
    /// across salt periods.
    Pseudonym([u8; 16]),
    /// A stable campaign id of an opted-in device (registered app beacon, IRK, or tag).
    Campaign([u8; 16]),
}

impl PersonId {
    /// True for opted-in devices.
    pub fn is_opted_in(&self) -> bool {
        matches!(self, PersonId::Campaign(_))
    }
    /// The 16 id bytes.
    pub fn bytes(&self) -> &[u8; 16] {
        match self {
            PersonId::Pseudonym(b) | PersonId::Campaign(b) => b,
        }
    }
}

impl core::fmt::Display for PersonId {
    /// `p-` or `c-` followed by 32 lowercase hex digits.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PersonId::Pseudonym(b) => {
                f.write_str("p-")?;
                write_hex(f, b)
            }
            PersonId::Campaign(b) => {
                f.write_str("c-")?;
                write_hex(f, b)
            }
        }
    }
}

/// How a device's position was estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LocateMethod {
    /// Weighted least-squares multilateration from three or more nodes.
    Multilateration,
    /// Weighted between two nodes.
    TwoNodes,
    /// Nearest (single) node.
    #[default]
    NearestNode,
}

/// Which rule produced an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonRule {
    /// Enter: the zone won `n` of the last `m` evaluations.
    Confirmed {
        /// Evaluations that placed the device in the zone.
        n: u8,
        /// Window.
        m: u8,
    },
    /// Dwell: a configured milestone was reached.
    Milestone,
    /// Exit: the device was confirmed in another zone.
    Moved,
    /// Exit: no evidence for the zone within the grace period.
    Grace,
    /// Exit: the device was forgotten (stale or capacity eviction).
    Evicted,
    /// Exit: the pseudonym salt rotated (a new session starts under the new pseudonym).
    SaltRotated,
}

/// Why the engine said what it said.
#[derive(Clone, Debug, PartialEq)]
pub struct Reason {
    /// The nodes whose evidence counted, strongest first.
    pub nodes: heapless::Vec<NodeId, REASON_NODES>,
    /// The rule.
    pub rule: ReasonRule,
    /// How the position was estimated.
    pub method: LocateMethod,
}

/// A device present in a zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    /// The zone.
    pub zone: ZoneIdx,
    /// Who.
    pub person: PersonId,
    /// What kind of device.
    pub device_kind: DeviceKind,
    /// Confidence of the zone estimate in [0, 1] at the time of the event.
    pub confidence: f32,
    /// First evidence for this zone in this session.
    pub first_seen: Timestamp,
    /// Latest evidence for this zone.
    pub last_seen: Timestamp,
    /// Why.
    pub reason: Reason,
}

/// Engagement level from heart rate against the person's own baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngagementLevel {
    /// Near baseline.
    Calm,
    /// Noticeably above baseline.
    Elevated,
    /// Well above baseline.
    High,
}

/// Why a campaign fired.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerReason {
    /// Dwell in the zone when it fired, ms.
    pub dwell_ms: u64,
    /// Zone confidence when it fired.
    pub confidence: f32,
    /// Engagement level, when known.
    pub engagement: Option<EngagementLevel>,
    /// The nodes whose evidence placed the person.
    pub nodes: heapless::Vec<NodeId, REASON_NODES>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A device was confirmed in a zone.
    ZoneEnter(Presence),
    /// A device reached a dwell milestone.
    ZoneDwell {
        /// The session.
        presence: Presence,
        /// The milestone reached, seconds.
        milestone_s: u32,
    },
    /// A device left a zone.
    ZoneExit {
        /// The session, `last_seen` = last evidence in the zone.
        presence: Presence,
        /// Total dwell, `last_seen - first_seen`, ms.
        dwell_ms: u64,
        /// The visit was shorter than `passby_max_s`.
        pass_by: bool,
    },
    /// A consented wearable's engagement level changed.
    Engagement {
        /// Who (always a campaign id: engagement is consented only).
        person: PersonId,
        /// Where they are, if known.
        zone: Option<ZoneIdx>,
        /// The new level.
        level: EngagementLevel,
        /// Heart rate, only if `privacy.publish_heart_rate`.
        heart_rate_bpm: Option<u16>,
    },
    /// Periodic per-zone occupancy.
    Occupancy {
        /// The zone.
        zone: ZoneIdx,
        /// Devices present; `None` when below the k-anonymity threshold.
        count: Option<u32>,
        /// The reporting period, ms.
        period_ms: u64,
    },
    /// A campaign rule fired.
    CampaignTrigger {
        /// Which campaign.
        campaign: CampaignIdx,
        /// Who.
        person: PersonId,
        /// Where.
        zone: ZoneIdx,
        /// Device kind.
        device_kind: DeviceKind,
        /// Why.
        reason: TriggerReason,
    },
    /// A node came online or went silent.
    NodeStatus {
        /// The node.
        node: NodeId,
        /// Online now.
        online: bool,
    },
}

impl EventKind {
    /// A short stable name (`zone.enter`, `zone.dwell`, …), as used in CloudEvents types.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ZoneEnter(_) => "zone.enter",
            EventKind::ZoneDwell { .. } => "zone.dwell",
            EventKind::ZoneExit { .. } => "zone.exit",
            EventKind::Engagement { .. } => "zone.engagement",
            EventKind::Occupancy { .. } => "occupancy",
            EventKind::CampaignTrigger { .. } => "campaign.trigger",
            EventKind::NodeStatus { .. } => "node.status",
        }
    }

    /// The presence this event is about, for zone events.
    pub fn presence(&self) -> Option<&Presence> {
        match self {
            EventKind::ZoneEnter(p)
            | EventKind::ZoneDwell { presence: p, .. }
            | EventKind::ZoneExit { presence: p, .. } => Some(p),
            _ => None,
        }
    }
}

/// One context event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique and stable id.
    pub id: EventId,
    /// Engine sequence number, strictly increasing.
    pub seq: u64,
    /// When it happened (the engine time that produced it).
    pub time: Timestamp,
    /// What happened.
    pub kind: EventKind,
}
