//! Engine events → MQTT messages: topic, CloudEvents 1.0 structured JSON, MQTT 5 properties.
//!
//! This is the gateway's half of the contract documented in `docs/mqtt.md`, `docs/asyncapi.yaml`
//! and `docs/schemas/*.json` (`gateway/tests/contract_schema.rs` validates what this module writes
//! against those schemas). Pure: no IO, no clock — time comes from the event or is an argument.
//!
//! What is rendered, and where:
//!
//! | engine event | topic (under `{prefix}/{store}/`) | CloudEvents `type` | retained | expiry |
//! |---|---|---|---|---|
//! | `ZoneEnter` / `ZoneDwell` / `ZoneExit` | `zones/{zone}/enter` / `dwell` / `exit` | `footfall.zone.enter` / `.dwell` / `.exit` | no | – |
//! | `Engagement` | `zones/{zone}/engagement` (`engagement` when the zone is unknown) | `footfall.engagement` | no | – |
//! | `Occupancy` | `occupancy/{zone}` | `footfall.occupancy` | yes | – |
//! | `CampaignTrigger` | `campaigns/{campaign}` | `footfall.campaign.trigger` | no | campaign `expiry_s` |
//! | `NodeStatus`, node reports | `nodes/{node}/status` | `footfall.node.status` | yes | – |
//! | gateway online / last will | `gateway/{gateway}/status` | `footfall.gateway.status` | yes | – |
//!
//! Every message is QoS 1 with MQTT 5 content type `application/cloudevents+json`.
//!
//! Privacy: nothing here can see a raw address, IRK or key — the engine's [`Event`] carries only
//! pseudonyms ([`PersonId`]), zone and campaign indices and node ids.
//!
//! Design: the JSON is written by serde_json from small borrowed structs, with ids and times
//! formatted straight into the output buffer (`collect_str`), so rendering allocates only the
//! topic and payload of the message itself — and nothing at all with [`render_into`], which
//! reuses a message's buffers.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};

use footfall_engine::config::{EngineConfig, StoreLayout};
use footfall_engine::event::{
    CampaignIdx, EngagementLevel, Event, EventKind, LocateMethod, PersonId, Presence, Reason,
    ReasonRule, ZoneIdx,
};
use footfall_engine::input::DeviceKind;
use footfall_engine::time::Timestamp;
use footfall_proto::frame::{NodeHealth, NodeId};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// The default topic prefix.
pub const DEFAULT_TOPIC_PREFIX: &str = "footfall/v1";
/// MQTT 5 content type of every message (CloudEvents structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// `datacontenttype` of every CloudEvent.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// CloudEvents spec version.
pub const SPEC_VERSION: &str = "1.0";

/// The kind of a rendered message: its CloudEvents `type`, and the outbox's policy class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MessageClass {
    /// `footfall.zone.enter`.
    ZoneEnter,
    /// `footfall.zone.dwell`.
    ZoneDwell,
    /// `footfall.zone.exit`.
    ZoneExit,
    /// `footfall.engagement`.
    Engagement,
    /// `footfall.occupancy` (retained; superseded by the next report of the same zone).
    Occupancy,
    /// `footfall.campaign.trigger` (expires).
    CampaignTrigger,
    /// `footfall.node.status` (retained).
    NodeStatus,
    /// `footfall.gateway.status` (retained; also the last will).
    GatewayStatus,
}

impl MessageClass {
    /// Every class, in documentation order.
    pub const ALL: [MessageClass; 8] = [
        MessageClass::ZoneEnter,
        MessageClass::ZoneDwell,
        MessageClass::ZoneExit,
        MessageClass::Engagement,
        MessageClass::Occupancy,
        MessageClass::CampaignTrigger,
        MessageClass::NodeStatus,
        MessageClass::GatewayStatus,
    ];

    /// The CloudEvents `type` attribute.
    pub const fn cloudevents_type(self) -> &'static str {
        match self {
            MessageClass::ZoneEnter => "footfall.zone.enter",
            MessageClass::ZoneDwell => "footfall.zone.dwell",
            MessageClass::ZoneExit => "footfall.zone.exit",
            MessageClass::Engagement => "footfall.engagement",
            MessageClass::Occupancy => "footfall.occupancy",
            MessageClass::CampaignTrigger => "footfall.campaign.trigger",
            MessageClass::NodeStatus => "footfall.node.status",
            MessageClass::GatewayStatus => "footfall.gateway.status",
        }
    }

    /// The JSON Schema file under `docs/schemas/` that describes this class's payload.
    pub const fn schema_file(self) -> &'static str {
        match self {
            MessageClass::ZoneEnter => "zone-enter.json",
            MessageClass::ZoneDwell => "zone-dwell.json",
            MessageClass::ZoneExit => "zone-exit.json",
            MessageClass::Engagement => "engagement.json",
            MessageClass::Occupancy => "occupancy.json",
            MessageClass::CampaignTrigger => "campaign-trigger.json",
            MessageClass::NodeStatus => "node-status.json",
            MessageClass::GatewayStatus => "gateway-status.json",
        }
    }

    /// A short metrics label (`zone_enter`, `campaign_trigger`, …).
    pub const fn label(self) -> &'static str {
        match self {
            MessageClass::ZoneEnter => "zone_enter",
            MessageClass::ZoneDwell => "zone_dwell",
            MessageClass::ZoneExit => "zone_exit",
            MessageClass::Engagement => "engagement",
            MessageClass::Occupancy => "occupancy",
            MessageClass::CampaignTrigger => "campaign_trigger",
            MessageClass::NodeStatus => "node_status",
            MessageClass::GatewayStatus => "gateway_status",
        }
    }

    /// Retained messages carry state: a subscriber gets the latest one on subscribe.
    pub const fn retained(self) -> bool {
        matches!(
            self,
            MessageClass::Occupancy | MessageClass::NodeStatus | MessageClass::GatewayStatus
        )
    }
}

/// One message ready for the outbox and the MQTT client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMessage {
    /// Full topic.
    pub topic: String,
    /// CloudEvents structured JSON, UTF-8.
    pub payload: Vec<u8>,
    /// MQTT QoS: always 1.
    pub qos: u8,
    /// MQTT retain flag: occupancy and status.
    pub retain: bool,
    /// MQTT 5 message expiry interval as configured, seconds: campaign triggers only. The sink
    /// should publish [`OutMessage::remaining_expiry`] instead, so time spent in the outbox counts.
    pub expiry_s: Option<u32>,
    /// MQTT 5 content type.
    pub content_type: &'static str,
    /// The CloudEvents `id`: 32 lowercase hex digits, stable across redelivery.
    pub event_id: String,
    /// What kind of message this is.
    pub class: MessageClass,
    /// The CloudEvents `time` (the engine time of the event).
    pub time: Timestamp,
}

impl Default for OutMessage {
    fn default() -> Self {
        Self {
            topic: String::new(),
            payload: Vec::new(),
            qos: 1,
            retain: false,
            expiry_s: None,
            content_type: CONTENT_TYPE,
            event_id: String::new(),
            class: MessageClass::ZoneEnter,
            time: Timestamp(0),
        }
    }
}

/// How long a message may still be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The message never expires: publish with no expiry property.
    Never,
    /// Publish with this message expiry interval, seconds (at least 1).
    Remaining(u32),
    /// Expired before it could be published: drop it and count it.
    Expired,
}

impl OutMessage {
    /// The expiry to publish at `now`, counting the time since the event from the configured
    /// expiry. Rounds up, so a trigger with any time left is published with at least 1 s.
    pub fn remaining_expiry(&self, now: Timestamp) -> Expiry {
        match self.expiry_s {
            None => Expiry::Never,
            Some(total_s) => {
                let total_ms = u64::from(total_s) * 1000;
                let elapsed = now.since(self.time);
                if elapsed >= total_ms {
                    Expiry::Expired
                } else {
                    let left_s = (total_ms - elapsed).div_ceil(1000);
                    Expiry::Remaining(u32::try_from(left_s).unwrap_or(u32::MAX))
                }
            }
        }
    }

    /// The payload as text (it is always UTF-8 JSON).
    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap_or("")
    }
}

/// A campaign as the renderer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignMeta {
    /// Campaign id (topic segment).
    pub id: String,
    /// Trigger expiry, seconds; 0 = never expires.
    pub expiry_s: u32,
    /// Free-form key/values from the campaign config, passed through in `data.payload`.
    pub payload: BTreeMap<String, String>,
}

/// An identifier that cannot be used in a topic or a CloudEvents source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not a valid topic segment: use 1-64 characters of [A-Za-z0-9_.-]")]
pub struct InvalidId {
    /// Which id (`store id`, `zone id`, …).
    pub what: &'static str,
    /// The offending value.
    pub value: String,
}

/// An event the renderer cannot render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The event names a zone index the context does not know.
    #[error("event {event_id} names zone index {index}, but only {known} zones are configured")]
    UnknownZone {
        /// Event id.
        event_id: String,
        /// The index.
        index: u16,
        /// Zones known.
        known: usize,
    },
    /// The event names a campaign index the context does not know.
    #[error(
        "event {event_id} names campaign index {index}, but only {known} campaigns are configured"
    )]
    UnknownCampaign {
        /// Event id.
        event_id: String,
        /// The index.
        index: u16,
        /// Campaigns known.
        known: usize,
    },
    /// An event kind this version of the gateway does not know how to publish.
    #[error("event {event_id}: event kind {kind} has no MQTT rendering")]
    UnsupportedKind {
        /// Event id.
        event_id: String,
        /// The engine's name for the kind.
        kind: &'static str,
    },
}

/// Everything rendering needs besides the event: names for indices and where to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderCtx {
    store_id: String,
    gateway_id: String,
    topic_prefix: String,
    zones: Vec<String>,
    campaigns: Vec<CampaignMeta>,
    min_occupancy_count: u32,
    /// `/footfall/{store}/gateway/{gateway}`, computed once.
    source: String,
    /// `{prefix}/{store}`, computed once.
    root: String,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

fn check(what: &'static str, value: &str) -> Result<(), InvalidId> {
    if valid_segment(value) {
        Ok(())
    } else {
        Err(InvalidId {
            what,
            value: value.to_owned(),
        })
    }
}

impl RenderCtx {
    /// A context with no zones or campaigns under [`DEFAULT_TOPIC_PREFIX`].
    pub fn new(store_id: &str, gateway_id: &str) -> Result<Self, InvalidId> {
        check("store id", store_id)?;
        check("gateway id", gateway_id)?;
        let mut ctx = Self {
            store_id: store_id.to_owned(),
            gateway_id: gateway_id.to_owned(),
            topic_prefix: String::new(),
            zones: Vec::new(),
            campaigns: Vec::new(),
            min_occupancy_count: 0,
            source: format!("/footfall/{store_id}/gateway/{gateway_id}"),
            root: String::new(),
        };
        ctx.set_topic_prefix(DEFAULT_TOPIC_PREFIX)?;
        Ok(ctx)
    }

    /// Everything from the engine's configuration: zone ids by [`ZoneIdx`] (the layout's
    /// `zones` order), campaigns by [`CampaignIdx`] (the config's `campaigns` order), and the
    /// occupancy threshold.
    pub fn from_config(
        layout: &StoreLayout,
        engine: &EngineConfig,
        gateway_id: &str,
        topic_prefix: &str,
    ) -> Result<Self, InvalidId> {
        let mut ctx = Self::new(&layout.store_id, gateway_id)?;
        ctx.set_topic_prefix(topic_prefix)?;
        for z in &layout.zones {
            ctx.push_zone(&z.id)?;
        }
        for c in &engine.campaigns {
            ctx.push_campaign(CampaignMeta {
                id: c.id.clone(),
                expiry_s: c.expiry_s,
                payload: c.payload.clone(),
            })?;
        }
        ctx.min_occupancy_count = engine.privacy.min_occupancy_count;
        Ok(ctx)
    }

    /// Sets the topic prefix: one or more `/`-separated segments, no wildcards, no leading or
    /// trailing `/`.
    pub fn set_topic_prefix(&mut self, prefix: &str) -> Result<(), InvalidId> {
        if prefix.split('/').any(|s| !valid_segment(s)) {
            return Err(InvalidId {
                what: "topic prefix",
                value: prefix.to_owned(),
            });
        }
        self.topic_prefix = prefix.to_owned();
        self.root = format!("{prefix}/{}", self.store_id);
        Ok(())
    }

    /// Adds the zone with the next [`ZoneIdx`].
    pub fn push_zone(&mut self, id: &str) -> Result<ZoneIdx, InvalidId> {
        check("zone id", id)?;
        let idx = u16::try_from(self.zones.len()).map_err(|_| InvalidId {
            what: "zone id (too many zones)",
            value: id.to_owned(),
        })?;
        self.zones.push(id.to_owned());
        Ok(ZoneIdx(idx))
    }

    /// Adds the campaign with the next [`CampaignIdx`].
    pub fn push_campaign(&mut self, meta: CampaignMeta) -> Result<CampaignIdx, InvalidId> {
        check("campaign id", &meta.id)?;
        let idx = u16::try_from(self.campaigns.len()).map_err(|_| InvalidId {
            what: "campaign id (too many campaigns)",
            value: meta.id.clone(),
        })?;
        self.campaigns.push(meta);
        Ok(CampaignIdx(idx))
    }

    /// Sets the k-anonymity threshold reported in occupancy payloads (`min_count`).
    pub fn set_min_occupancy_count(&mut self, k: u32) {
        self.min_occupancy_count = k;
    }

    /// Store id.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }
    /// Gateway id.
    pub fn gateway_id(&self) -> &str {
        &self.gateway_id
    }
    /// Topic prefix.
    pub fn topic_prefix(&self) -> &str {
        &self.topic_prefix
    }
    /// The CloudEvents `source` of everything this gateway publishes.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The zone id of `idx`.
    pub fn zone_id(&self, idx: ZoneIdx) -> Option<&str> {
        self.zones.get(usize::from(idx.0)).map(String::as_str)
    }
    /// The campaign of `idx`.
    pub fn campaign(&self, idx: CampaignIdx) -> Option<&CampaignMeta> {
        self.campaigns.get(usize::from(idx.0))
    }

    /// The gateway status topic (for the last will).
    pub fn gateway_status_topic(&self) -> String {
        format!("{}/gateway/{}/status", self.root, self.gateway_id)
    }

    /// The topic filter Wi-Fi nodes publish report frames on (`nodes/+/uplink`).
    pub fn uplink_filter(&self) -> String {
        format!("{}/nodes/+/uplink", self.root)
    }

    /// A topic filter matching everything this gateway publishes.
    pub fn all_filter(&self) -> String {
        format!("{}/#", self.root)
    }

    fn zone(&self, event: &Event, idx: ZoneIdx) -> Result<&str, RenderError> {
        self.zone_id(idx).ok_or_else(|| RenderError::UnknownZone {
            event_id: event.id.to_string(),
            index: idx.0,
            known: self.zones.len(),
        })
    }
}

/// Renders one engine event.
pub fn render(event: &Event, ctx: &RenderCtx) -> Result<OutMessage, RenderError> {
    let mut out = OutMessage::default();
    render_into(event, ctx, &mut out)?;
    Ok(out)
}

/// Renders one engine event into `out`, reusing its buffers. On error `out` is unspecified.
pub fn render_into(
    event: &Event,
    ctx: &RenderCtx,
    out: &mut OutMessage,
) -> Result<(), RenderError> {
    out.topic.clear();
    out.payload.clear();
    out.event_id.clear();
    // Writing to a String cannot fail.
    let _ = write!(out.event_id, "{}", event.id);
    out.time = event.time;
    out.qos = 1;
    out.content_type = CONTENT_TYPE;
    out.expiry_s = None;

    let id = &event.id.0;
    let seq = Some(event.seq);
    match &event.kind {
        EventKind::ZoneEnter(p) => {
            let zone = ctx.zone(event, p.zone)?;
            let data = ZoneData::new(ctx, zone, p, event, ZoneExtra::Enter);
            out.class = MessageClass::ZoneEnter;
            let _ = write!(out.topic, "{}/zones/{zone}/enter", ctx.root);
            write_envelope(out, ctx, id, event.time, Some(Subject::Str(zone)), &data);
        }
        EventKind::ZoneDwell {
            presence: p,
            milestone_s,
        } => {
            let zone = ctx.zone(event, p.zone)?;
            let extra = ZoneExtra::Dwell {
                milestone_s: *milestone_s,
            };
            let data = ZoneData::new(ctx, zone, p, event, extra);
            out.class = MessageClass::ZoneDwell;
            let _ = write!(out.topic, "{}/zones/{zone}/dwell", ctx.root);
            write_envelope(out, ctx, id, event.time, Some(Subject::Str(zone)), &data);
        }
        EventKind::ZoneExit {
            presence: p,
            dwell_ms,
            pass_by,
        } => {
            let zone = ctx.zone(event, p.zone)?;
            let extra = ZoneExtra::Exit {
                dwell_ms: *dwell_ms,
                pass_by: *pass_by,
            };
            let data = ZoneData::new(ctx, zone, p, event, extra);
            out.class = MessageClass::ZoneExit;
            let _ = write!(out.topic, "{}/zones/{zone}/exit", ctx.root);
            write_envelope(out, ctx, id, event.time, Some(Subject::Str(zone)), &data);
        }
        EventKind::Engagement {
            person,
            zone,
            level,
            heart_rate_bpm,
        } => {
            let zone = match zone {
                Some(z) => Some(ctx.zone(event, *z)?),
                None => None,
            };
            let data = EngagementData {
                store: &ctx.store_id,
                zone,
                person: Person(person),
                level: level_str(*level),
                heart_rate_bpm: *heart_rate_bpm,
                seq: event.seq,
            };
            out.class = MessageClass::Engagement;
            match zone {
                Some(z) => {
                    let _ = write!(out.topic, "{}/zones/{z}/engagement", ctx.root);
                }
                None => {
                    let _ = write!(out.topic, "{}/engagement", ctx.root);
                }
            }
            write_envelope(out, ctx, id, event.time, zone.map(Subject::Str), &data);
        }
        EventKind::Occupancy {
            zone,
            count,
            period_ms,
        } => {
            let zone = ctx.zone(event, *zone)?;
            let data = OccupancyData {
                store: &ctx.store_id,
                zone,
                count: *count,
                suppressed: count.is_none(),
                min_count: ctx.min_occupancy_count,
                period_ms: *period_ms,
                seq: event.seq,
            };
            out.class = MessageClass::Occupancy;
            let _ = write!(out.topic, "{}/occupancy/{zone}", ctx.root);
            write_envelope(out, ctx, id, event.time, Some(Subject::Str(zone)), &data);
        }
        EventKind::CampaignTrigger {
            campaign,
            person,
            zone,
            device_kind,
            reason,
        } => {
            let meta = ctx
                .campaign(*campaign)
                .ok_or_else(|| RenderError::UnknownCampaign {
                    event_id: event.id.to_string(),
                    index: campaign.0,
                    known: ctx.campaigns.len(),
                })?;
            let zone = ctx.zone(event, *zone)?;
            let expires_at = (meta.expiry_s > 0)
                .then(|| Rfc3339(event.time.plus_millis(u64::from(meta.expiry_s) * 1000)));
            let data = TriggerData {
                store: &ctx.store_id,
                campaign: &meta.id,
                zone,
                person: Person(person),
                device_kind: device_kind_str(*device_kind),
                confidence: confidence(reason.confidence),
                dwell_ms: reason.dwell_ms,
                engagement: reason.engagement.map(level_str),
                reason: TriggerReasonData {
                    rule: "campaign",
                    nodes: &reason.nodes,
                },
                expires_at,
                payload: &meta.payload,
                seq: event.seq,
            };
            out.class = MessageClass::CampaignTrigger;
            out.expiry_s = (meta.expiry_s > 0).then_some(meta.expiry_s);
            let _ = write!(out.topic, "{}/campaigns/{}", ctx.root, meta.id);
            write_envelope(
                out,
                ctx,
                id,
                event.time,
                Some(Subject::Str(&meta.id)),
                &data,
            );
        }
        EventKind::NodeStatus { node, online } => {
            let data = NodeData {
                store: &ctx.store_id,
                node: *node,
                online: *online,
                health: None,
                seq,
            };
            out.class = MessageClass::NodeStatus;
            let _ = write!(out.topic, "{}/nodes/{node}/status", ctx.root);
            write_envelope(out, ctx, id, event.time, Some(Subject::Node(*node)), &data);
        }
        other => {
            return Err(RenderError::UnsupportedKind {
                event_id: event.id.to_string(),
                kind: other.name(),
            })
        }
    }
    out.retain = out.class.retained();
    Ok(())
}

/// The gateway's own status: `online = true` once connected, and `online = false` as the last
/// will (registered at connect, published by the broker if the gateway vanishes) and on a clean
/// shutdown. `at` is when the message was made — for the will, when the session was set up.
pub fn render_gateway_status(ctx: &RenderCtx, online: bool, at: Timestamp) -> OutMessage {
    let mut out = OutMessage {
        class: MessageClass::GatewayStatus,
        time: at,
        ..OutMessage::default()
    };
    let id = local_id(at, *b"gateway", u8::from(online));
    let _ = write!(out.event_id, "{}", Hex(&id));
    out.topic = ctx.gateway_status_topic();
    out.retain = true;
    let data = GatewayData {
        store: &ctx.store_id,
        gateway: &ctx.gateway_id,
        online,
        version: env!("CARGO_PKG_VERSION"),
    };
    write_envelope(
        &mut out,
        ctx,
        &id,
        at,
        Some(Subject::Str(&ctx.gateway_id)),
        &data,
    );
    out
}

/// A node's health from a verified report frame, on the node's retained status topic (the
/// engine's `NodeStatus` events say when a node goes on- or offline; these add the detail).
pub fn render_node_report(
    ctx: &RenderCtx,
    node: NodeId,
    health: &NodeHealth,
    at: Timestamp,
) -> OutMessage {
    let mut out = OutMessage {
        class: MessageClass::NodeStatus,
        time: at,
        ..OutMessage::default()
    };
    // The node id in the tag: distinct nodes reporting in the same millisecond get distinct ids.
    let [hi, lo] = node.to_be_bytes();
    let id = local_id(at, [b'n', b'o', b'd', b'e', 0, hi, lo], 0);
    let _ = write!(out.event_id, "{}", Hex(&id));
    let _ = write!(out.topic, "{}/nodes/{node}/status", ctx.root);
    out.retain = true;
    let data = NodeData {
        store: &ctx.store_id,
        node,
        online: true,
        health: Some(HealthData {
            uptime_s: health.uptime_s,
            dropped_sightings: health.dropped_sightings,
            dropped_frames: health.dropped_frames,
            queue_depth: health.queue_depth,
            battery_mv: health.battery_mv,
        }),
        seq: None,
    };
    write_envelope(&mut out, ctx, &id, at, Some(Subject::Node(node)), &data);
    out
}

/// Ids for messages the gateway makes itself (not engine events): the time in ms, a tag naming
/// the kind, and a discriminator. Engine ids are keyed permutations and look random; these are
/// unique per source because one source never makes two of a kind in the same millisecond with
/// the same discriminator.
fn local_id(at: Timestamp, tag: [u8; 7], disc: u8) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&at.as_millis().to_be_bytes());
    id[8..15].copy_from_slice(&tag);
    id[15] = disc;
    id
}

fn write_envelope<D: Serialize>(
    out: &mut OutMessage,
    ctx: &RenderCtx,
    id: &[u8; 16],
    time: Timestamp,
    subject: Option<Subject<'_>>,
    data: &D,
) {
    let env = Envelope {
        specversion: SPEC_VERSION,
        id: Hex(id),
        source: &ctx.source,
        ty: out.class.cloudevents_type(),
        time: Rfc3339(time),
        subject,
        datacontenttype: DATA_CONTENT_TYPE,
        data,
    };
    // Serializing plain structs of strings and numbers into a Vec cannot fail: serde_json only
    // errors on IO, non-string map keys and failing Serialize impls, none of which occur here.
    if serde_json::to_writer(&mut out.payload, &env).is_err() {
        out.payload.clear();
    }
}

// ------------------------------------------------------------------------------------------
// Payload shapes. Field names and types are the contract in docs/schemas/*.json.
// ------------------------------------------------------------------------------------------

struct Envelope<'a, D> {
    specversion: &'static str,
    id: Hex<'a>,
    source: &'a str,
    ty: &'static str,
    time: Rfc3339,
    subject: Option<Subject<'a>>,
    datacontenttype: &'static str,
    data: &'a D,
}

impl<D: Serialize> Serialize for Envelope<'_, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", self.specversion)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("source", self.source)?;
        m.serialize_entry("type", self.ty)?;
        m.serialize_entry("time", &self.time)?;
        if let Some(subject) = &self.subject {
            m.serialize_entry("subject", subject)?;
        }
        m.serialize_entry("datacontenttype", self.datacontenttype)?;
        m.serialize_entry("data", self.data)?;
        m.end()
    }
}

#[derive(Clone, Copy)]
enum Subject<'a> {
    Str(&'a str),
    Node(NodeId),
}

impl Serialize for Subject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Subject::Str(v) => s.serialize_str(v),
            Subject::Node(n) => s.collect_str(n),
        }
    }
}

/// Lowercase hex, written without an intermediate String.
struct Hex<'a>(&'a [u8]);

impl Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A person id as `p-…` (pseudonym) or `c-…` (campaign id).
struct Person<'a>(&'a PersonId);

impl Serialize for Person<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-23T13:01:50.123Z`. Times past year 9999 are
/// clamped to its last millisecond (RFC 3339 has four-digit years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub Timestamp);

/// 9999-12-31T23:59:59.999Z in ms since the epoch.
const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

impl Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis().min(MAX_RFC3339_MS);
        let days = ms / 86_400_000;
        let in_day = ms % 86_400_000;
        let (y, mo, d) = civil_from_days(days);
        let (h, mi, s, milli) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Proleptic Gregorian date of `days` since 1970-01-01: the calendar counted in 400-year eras
/// that start on 1 March, so the leap day falls at the end of the counted year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    const DAYS_PER_ERA: u64 = 146_097; // 400 years
                                       // 1970-01-01 is day 719_468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / DAYS_PER_ERA;
    let day_of_era = z % DAYS_PER_ERA;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524
        - day_of_era / (DAYS_PER_ERA - 1))
        / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn device_kind_str(k: DeviceKind) -> &'static str {
    match k {
        DeviceKind::Phone => "phone",
        DeviceKind::Wearable => "wearable",
        DeviceKind::Tag => "tag",
        DeviceKind::Beacon => "beacon",
        _ => "unknown",
    }
}

fn level_str(l: EngagementLevel) -> &'static str {
    match l {
        EngagementLevel::Calm => "calm",
        EngagementLevel::Elevated => "elevated",
        EngagementLevel::High => "high",
    }
}

fn rule_str(r: &ReasonRule) -> (&'static str, Option<(u8, u8)>) {
    match r {
        ReasonRule::Confirmed { n, m } => ("confirmed", Some((*n, *m))),
        ReasonRule::Milestone => ("milestone", None),
        ReasonRule::Moved => ("moved", None),
        ReasonRule::Grace => ("grace", None),
        ReasonRule::Evicted => ("evicted", None),
        ReasonRule::SaltRotated => ("salt_rotated", None),
        _ => ("other", None),
    }
}

fn method_str(m: LocateMethod) -> &'static str {
    match m {
        LocateMethod::Multilateration => "multilateration",
        LocateMethod::TwoNodes => "two_nodes",
        LocateMethod::NearestNode => "nearest_node",
        _ => "other",
    }
}

/// A confidence in [0, 1], rounded to 3 decimals (NaN, which the engine should never produce,
/// becomes 0 rather than JSON `null`).
fn confidence(c: f32) -> f64 {
    if c.is_nan() {
        return 0.0;
    }
    (f64::from(c.clamp(0.0, 1.0)) * 1000.0).round() / 1000.0
}

enum ZoneExtra {
    Enter,
    Dwell { milestone_s: u32 },
    Exit { dwell_ms: u64, pass_by: bool },
}

struct ZoneData<'a> {
    store: &'a str,
    zone: &'a str,
    presence: &'a Presence,
    time: Timestamp,
    seq: u64,
    extra: ZoneExtra,
}

impl<'a> ZoneData<'a> {
    fn new(
        ctx: &'a RenderCtx,
        zone: &'a str,
        p: &'a Presence,
        event: &Event,
        extra: ZoneExtra,
    ) -> Self {
        Self {
            store: &ctx.store_id,
            zone,
            presence: p,
            time: event.time,
            seq: event.seq,
            extra,
        }
    }
}

impl Serialize for ZoneData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.presence;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("store", self.store)?;
        m.serialize_entry("zone", self.zone)?;
        m.serialize_entry("person", &Person(&p.person))?;
        m.serialize_entry("device_kind", device_kind_str(p.device_kind))?;
        m.serialize_entry("confidence", &confidence(p.confidence))?;
        m.serialize_entry("first_seen", &Rfc3339(p.first_seen))?;
        m.serialize_entry("last_seen", &Rfc3339(p.last_seen))?;
        match self.extra {
            ZoneExtra::Enter => {}
            ZoneExtra::Dwell { milestone_s } => {
                m.serialize_entry("milestone_s", &milestone_s)?;
                m.serialize_entry("dwell_ms", &self.time.since(p.first_seen))?;
            }
            ZoneExtra::Exit { dwell_ms, pass_by } => {
                m.serialize_entry("dwell_ms", &dwell_ms)?;
                m.serialize_entry("pass_by", &pass_by)?;
            }
        }
        m.serialize_entry("reason", &ReasonData(&p.reason))?;
        m.serialize_entry("seq", &self.seq)?;
        m.end()
    }
}

struct ReasonData<'a>(&'a Reason);

impl Serialize for ReasonData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (rule, votes) = rule_str(&self.0.rule);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("rule", rule)?;
        if let Some((n, mm)) = votes {
            m.serialize_entry("n", &n)?;
            m.serialize_entry("m", &mm)?;
        }
        m.serialize_entry("method", method_str(self.0.method))?;
        m.serialize_entry("nodes", self.0.nodes.as_slice())?;
        m.end()
    }
}

#[derive(serde::Serialize)]
struct EngagementData<'a> {
    store: &'a str,
    zone: Option<&'a str>,
    person: Person<'a>,
    level: &'static str,
    heart_rate_bpm: Option<u16>,
    seq: u64,
}

#[derive(serde::Serialize)]
struct OccupancyData<'a> {
    store: &'a str,
    zone: &'a str,
    count: Option<u32>,
    suppressed: bool,
    min_count: u32,
    period_ms: u64,
    seq: u64,
}

#[derive(serde::Serialize)]
struct TriggerReasonData<'a> {
    rule: &'static str,
    nodes: &'a [NodeId],
}

#[derive(serde::Serialize)]
struct TriggerData<'a> {
    store: &'a str,
    campaign: &'a str,
    zone: &'a str,
    person: Person<'a>,
    device_kind: &'static str,
    confidence: f64,
    dwell_ms: u64,
    engagement: Option<&'static str>,
    reason: TriggerReasonData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Rfc3339>,
    payload: &'a BTreeMap<String, String>,
    seq: u64,
}

#[derive(serde::Serialize)]
struct HealthData {
    uptime_s: u32,
    dropped_sightings: u32,
    dropped_frames: u32,
    queue_depth: u16,
    battery_mv: Option<u16>,
}

#[derive(serde::Serialize)]
struct NodeData<'a> {
    store: &'a str,
    node: NodeId,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

#[derive(serde::Serialize)]
struct GatewayData<'a> {
    store: &'a str,
    gateway: &'a str,
    online: bool,
    version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_engine::event::{EventId, TriggerReason};
    use serde_json::{json, Value};

    const T0: u64 = 1_795_000_000_123; // 2026-11-18T11:06:40.123Z

    fn ctx() -> RenderCtx {
        let mut c = RenderCtx::new("store-042", "gw-1").unwrap();
        c.push_zone("entrance").unwrap();
        c.push_zone("wine").unwrap();
        let mut payload = BTreeMap::new();
        payload.insert("offer".to_owned(), "wine-10".to_owned());
        c.push_campaign(CampaignMeta {
            id: "wine-promo".into(),
            expiry_s: 120,
            payload,
        })
        .unwrap();
        c.set_min_occupancy_count(3);
        c
    }

    fn presence(zone: u16) -> Presence {
        let mut reason = Reason {
            nodes: Default::default(),
            rule: ReasonRule::Confirmed { n: 2, m: 3 },
            method: LocateMethod::Multilateration,
        };
        reason.nodes.push(7).unwrap();
        reason.nodes.push(3).unwrap();
        Presence {
            zone: ZoneIdx(zone),
            person: PersonId::Pseudonym([0xab; 16]),
            device_kind: DeviceKind::Phone,
            confidence: 0.8765,
            first_seen: Timestamp(T0 - 1500),
            last_seen: Timestamp(T0 - 100),
            reason,
        }
    }

    fn event(kind: EventKind) -> Event {
        let mut id = [0u8; 16];
        id[0] = 0x5e;
        id[15] = 0x01;
        Event {
            id: EventId(id),
            seq: 41,
            time: Timestamp(T0),
            kind,
        }
    }

    fn json(m: &OutMessage) -> Value {
        serde_json::from_slice(&m.payload).unwrap()
    }

    fn check_envelope(m: &OutMessage, ty: &str) -> Value {
        let v = json(m);
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], ty);
        assert_eq!(v["source"], "/footfall/store-042/gateway/gw-1");
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["id"].as_str().unwrap(), m.event_id);
        assert_eq!(m.event_id.len(), 32);
        assert!(m
            .event_id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(m.qos, 1);
        assert_eq!(m.content_type, "application/cloudevents+json");
        assert_eq!(m.class.cloudevents_type(), ty);
        assert_eq!(m.retain, m.class.retained());
        v
    }

    #[test]
    fn rfc3339_known_instants() {
        let f = |ms| Rfc3339(Timestamp(ms)).to_string();
        assert_eq!(f(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(f(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(f(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(f(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(f(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(f(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_dates_advance_one_day_at_a_time() {
        // Every day from 1970 to 2400: the next day is the next calendar date.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..157_000u64 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let leap = (py % 4 == 0 && py % 100 != 0) || py % 400 == 0;
            let month_len = match pm {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if pd < month_len {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn zone_enter() {
        let m = render(&event(EventKind::ZoneEnter(presence(1))), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/zones/wine/enter");
        assert!(!m.retain);
        assert_eq!(m.expiry_s, None);
        let v = check_envelope(&m, "footfall.zone.enter");
        assert_eq!(v["id"], "5e000000000000000000000000000001");
        assert_eq!(v["time"], "2026-11-18T11:06:40.123Z");
        assert_eq!(v["subject"], "wine");
        assert_eq!(
            v["data"],
            json!({
                "store": "store-042", "zone": "wine", "person": format!("p-{}", "ab".repeat(16)),
                "device_kind": "phone", "confidence": 0.877,
                "first_seen": "2026-11-18T11:06:38.623Z", "last_seen": "2026-11-18T11:06:40.023Z",
                "reason": {"rule": "confirmed", "n": 2, "m": 3, "method": "multilateration", "nodes": [7, 3]},
                "seq": 41
            })
        );
    }

    #[test]
    fn zone_dwell_and_exit() {
        let mut p = presence(0);
        p.reason.rule = ReasonRule::Milestone;
        let m = render(
            &event(EventKind::ZoneDwell {
                presence: p.clone(),
                milestone_s: 30,
            }),
            &ctx(),
        )
        .unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/zones/entrance/dwell");
        let v = check_envelope(&m, "footfall.zone.dwell");
        assert_eq!(v["data"]["milestone_s"], 30);
        assert_eq!(v["data"]["dwell_ms"], 1500);
        assert_eq!(
            v["data"]["reason"],
            json!({"rule": "milestone", "method": "multilateration", "nodes": [7, 3]})
        );

        p.reason.rule = ReasonRule::Grace;
        p.person = PersonId::Campaign([0x01; 16]);
        let exit = EventKind::ZoneExit {
            presence: p,
            dwell_ms: 1400,
            pass_by: true,
        };
        let m = render(&event(exit), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/zones/entrance/exit");
        let v = check_envelope(&m, "footfall.zone.exit");
        assert_eq!(v["data"]["dwell_ms"], 1400);
        assert_eq!(v["data"]["pass_by"], true);
        assert_eq!(v["data"]["person"], format!("c-{}", "01".repeat(16)));
        assert!(v["data"].get("milestone_s").is_none());
    }

    #[test]
    fn engagement_with_and_without_zone() {
        let kind = EventKind::Engagement {
            person: PersonId::Campaign([2; 16]),
            zone: Some(ZoneIdx(1)),
            level: EngagementLevel::High,
            heart_rate_bpm: None,
        };
        let m = render(&event(kind), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/zones/wine/engagement");
        let v = check_envelope(&m, "footfall.engagement");
        assert_eq!(v["subject"], "wine");
        assert_eq!(v["data"]["level"], "high");
        assert_eq!(v["data"]["heart_rate_bpm"], Value::Null);

        let kind = EventKind::Engagement {
            person: PersonId::Campaign([2; 16]),
            zone: None,
            level: EngagementLevel::Calm,
            heart_rate_bpm: Some(72),
        };
        let m = render(&event(kind), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/engagement");
        let v = check_envelope(&m, "footfall.engagement");
        assert!(v.get("subject").is_none());
        assert_eq!(v["data"]["zone"], Value::Null);
        assert_eq!(v["data"]["heart_rate_bpm"], 72);
    }

    #[test]
    fn occupancy_is_retained_and_suppressed_below_k() {
        let kind = EventKind::Occupancy {
            zone: ZoneIdx(0),
            count: Some(12),
            period_ms: 60_000,
        };
        let m = render(&event(kind), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/occupancy/entrance");
        assert!(m.retain);
        let v = check_envelope(&m, "footfall.occupancy");
        assert_eq!(
            v["data"],
            json!({"store": "store-042", "zone": "entrance", "count": 12, "suppressed": false,
                   "min_count": 3, "period_ms": 60000, "seq": 41})
        );
        let kind = EventKind::Occupancy {
            zone: ZoneIdx(0),
            count: None,
            period_ms: 60_000,
        };
        let v = json(&render(&event(kind), &ctx()).unwrap());
        assert_eq!(v["data"]["count"], Value::Null);
        assert_eq!(v["data"]["suppressed"], true);
    }

    #[test]
    fn campaign_trigger_expires() {
        let mut reason = TriggerReason {
            dwell_ms: 31_000,
            confidence: 1.2,
            engagement: Some(EngagementLevel::Elevated),
            nodes: Default::default(),
        };
        reason.nodes.push(9).unwrap();
        let kind = EventKind::CampaignTrigger {
            campaign: CampaignIdx(0),
            person: PersonId::Campaign([0xc0; 16]),
            zone: ZoneIdx(1),
            device_kind: DeviceKind::Wearable,
            reason,
        };
        let m = render(&event(kind), &ctx()).unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/campaigns/wine-promo");
        assert!(!m.retain);
        assert_eq!(m.expiry_s, Some(120));
        let v = check_envelope(&m, "footfall.campaign.trigger");
        assert_eq!(v["subject"], "wine-promo");
        assert_eq!(
            v["data"],
            json!({
                "store": "store-042", "campaign": "wine-promo", "zone": "wine",
                "person": format!("c-{}", "c0".repeat(16)), "device_kind": "wearable",
                "confidence": 1.0, "dwell_ms": 31000, "engagement": "elevated",
                "reason": {"rule": "campaign", "nodes": [9]},
                "expires_at": "2026-11-18T11:08:40.123Z",
                "payload": {"offer": "wine-10"}, "seq": 41
            })
        );

        assert_eq!(m.remaining_expiry(Timestamp(T0)), Expiry::Remaining(120));
        assert_eq!(
            m.remaining_expiry(Timestamp(T0 + 119_001)),
            Expiry::Remaining(1)
        );
        assert_eq!(m.remaining_expiry(Timestamp(T0 + 120_000)), Expiry::Expired);
        // A clock behind the event time does not extend the expiry.
        assert_eq!(
            m.remaining_expiry(Timestamp(T0 - 5_000)),
            Expiry::Remaining(120)
        );
    }

    #[test]
    fn campaign_without_expiry_never_expires() {
        let mut c = ctx();
        c.push_campaign(CampaignMeta {
            id: "forever".into(),
            expiry_s: 0,
            payload: BTreeMap::new(),
        })
        .unwrap();
        let kind = EventKind::CampaignTrigger {
            campaign: CampaignIdx(1),
            person: PersonId::Pseudonym([1; 16]),
            zone: ZoneIdx(0),
            device_kind: DeviceKind::Unknown,
            reason: TriggerReason {
                dwell_ms: 0,
                confidence: 0.5,
                engagement: None,
                nodes: Default::default(),
            },
        };
        let m = render(&event(kind), &c).unwrap();
        assert_eq!(m.expiry_s, None);
        assert_eq!(m.remaining_expiry(Timestamp(u64::MAX)), Expiry::Never);
        let v = json(&m);
        assert!(v["data"].get("expires_at").is_none());
        assert_eq!(v["data"]["engagement"], Value::Null);
        assert_eq!(v["data"]["payload"], json!({}));
    }

    #[test]
    fn node_status_and_report() {
        let m = render(
            &event(EventKind::NodeStatus {
                node: 513,
                online: false,
            }),
            &ctx(),
        )
        .unwrap();
        assert_eq!(m.topic, "footfall/v1/store-042/nodes/513/status");
        assert!(m.retain);
        let v = check_envelope(&m, "footfall.node.status");
        assert_eq!(v["subject"], "513");
        assert_eq!(
            v["data"],
            json!({"store": "store-042", "node": 513, "online": false, "seq": 41})
        );

        let health = NodeHealth {
            uptime_s: 3600,
            dropped_sightings: 1,
            dropped_frames: 0,
            queue_depth: 4,
            battery_mv: Some(2950),
        };
        let a = render_node_report(&ctx(), 513, &health, Timestamp(T0));
        let b = render_node_report(&ctx(), 514, &health, Timestamp(T0));
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.topic, m.topic);
        let v = check_envelope(&a, "footfall.node.status");
        assert_eq!(v["data"]["online"], true);
        assert_eq!(v["data"]["health"]["battery_mv"], 2950);
        assert!(v["data"].get("seq").is_none());
    }

    #[test]
    fn gateway_status_online_and_will() {
        let c = ctx();
        let on = render_gateway_status(&c, true, Timestamp(T0));
        let off = render_gateway_status(&c, false, Timestamp(T0));
        assert_eq!(on.topic, "footfall/v1/store-042/gateway/gw-1/status");
        assert_eq!(on.topic, c.gateway_status_topic());
        assert!(on.retain && off.retain);
        assert_ne!(on.event_id, off.event_id);
        let v = check_envelope(&off, "footfall.gateway.status");
        assert_eq!(v["subject"], "gw-1");
        assert_eq!(v["data"]["online"], false);
        assert_eq!(v["data"]["gateway"], "gw-1");
        assert_eq!(json(&on)["data"]["online"], true);
    }

    #[test]
    fn unknown_indices_are_errors_not_panics() {
        let e = event(EventKind::ZoneEnter(presence(9)));
        assert!(matches!(
            render(&e, &ctx()),
            Err(RenderError::UnknownZone {
                index: 9,
                known: 2,
                ..
            })
        ));
        let kind = EventKind::CampaignTrigger {
            campaign: CampaignIdx(5),
            person: PersonId::Pseudonym([1; 16]),
            zone: ZoneIdx(0),
            device_kind: DeviceKind::Unknown,
            reason: TriggerReason {
                dwell_ms: 0,
                confidence: 0.5,
                engagement: None,
                nodes: Default::default(),
            },
        };
        assert!(matches!(
            render(&event(kind), &ctx()),
            Err(RenderError::UnknownCampaign { index: 5, .. })
        ));
    }

    #[test]
    fn render_into_reuses_buffers_and_matches_render() {
        let c = ctx();
        let events = [
            event(EventKind::Occupancy {
                zone: ZoneIdx(1),
                count: Some(4),
                period_ms: 1000,
            }),
            event(EventKind::ZoneEnter(presence(0))),
            event(EventKind::NodeStatus {
                node: 1,
                online: true,
            }),
        ];
        let mut out = OutMessage::default();
        for e in &events {
            render_into(e, &c, &mut out).unwrap();
            assert_eq!(out, render(e, &c).unwrap());
        }
    }

    #[test]
    fn ids_and_prefix_are_validated() {
        assert!(RenderCtx::new("store/1", "gw").is_err());
        assert!(RenderCtx::new("store", "gw+").is_err());
        assert!(RenderCtx::new("", "gw").is_err());
        let mut c = ctx();
        assert!(c.set_topic_prefix("acme/footfall/v1").is_ok());
        assert!(c.set_topic_prefix("/footfall").is_err());
        assert!(c.set_topic_prefix("footfall/#").is_err());
        assert!(c.push_zone("a b").is_err());
        c.set_topic_prefix("acme/ff").unwrap();
        let m = render(&event(EventKind::ZoneEnter(presence(0))), &c).unwrap();
        assert_eq!(m.topic, "acme/ff/store-042/zones/entrance/enter");
        assert_eq!(c.uplink_filter(), "acme/ff/store-042/nodes/+/uplink");
    }

    #[test]
    fn nan_confidence_is_a_number() {
        let mut p = presence(0);
        p.confidence = f32::NAN;
        let v = json(&render(&event(EventKind::ZoneEnter(p)), &ctx()).unwrap());
        assert_eq!(v["data"]["confidence"], 0.0);
    }
}
