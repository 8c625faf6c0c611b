//! The MQTT contract, checked from the gateway's side: every kind of message the gateway renders
//! validates against `docs/schemas/*.json`, the schemas are strict enough to reject what they
//! should, and `docs/asyncapi.yaml` describes every channel and references every schema.
//!
//! Real published messages are validated again end to end by `tests/python/test_contract.py`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use footfall_engine::event::{
    CampaignIdx, EngagementLevel, Event, EventId, EventKind, LocateMethod, PersonId, Presence,
    Reason, ReasonRule, TriggerReason, ZoneIdx,
};
use footfall_engine::input::DeviceKind;
use footfall_engine::time::Timestamp;
use footfall_gateway::cloudevents::{
    render, render_gateway_status, render_node_report, CampaignMeta, MessageClass, OutMessage,
    RenderCtx,
};
use footfall_proto::frame::NodeHealth;
use serde_json::{json, Value};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// Every schema file, by file name and by `$id`.
struct Schemas {
    by_file: BTreeMap<String, Value>,
    by_id: HashMap<String, Value>,
}

fn load_schemas() -> Schemas {
    let dir = docs().join("schemas");
    let mut by_file = BTreeMap::new();
    let mut by_id = HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("docs/schemas exists") {
        let path = entry.expect("readable dir").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable schema");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let id = v["$id"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no $id"))
            .to_owned();
        assert!(
            id.ends_with(&format!("/{name}")),
            "{name}: $id {id} must end with the file name"
        );
        by_id.insert(id, v.clone());
        by_file.insert(name, v);
    }
    Schemas { by_file, by_id }
}

/// Serves `$ref`s from the files on disk: nothing is fetched from the network.
struct FromDisk(HashMap<String, Value>);

impl jsonschema::Retrieve for FromDisk {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .get(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("no schema file has $id {uri}").into())
    }
}

fn validator(schemas: &Schemas, file: &str) -> jsonschema::Validator {
    let schema = schemas
        .by_file
        .get(file)
        .unwrap_or_else(|| panic!("docs/schemas/{file} missing"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_retriever(FromDisk(schemas.by_id.clone()))
        .build(schema)
        .unwrap_or_else(|e| panic!("docs/schemas/{file} does not compile: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

// ------------------------------------------------------------------------------------------
// A corpus of events covering every kind and every optional shape.
// ------------------------------------------------------------------------------------------

const T0: u64 = 1_795_000_000_000;

fn ctx() -> RenderCtx {
    let mut c = RenderCtx::new("store-042", "gw-1").expect("valid ids");
    c.push_zone("entrance").expect("zone");
    c.push_zone("wine").expect("zone");
    let mut payload = BTreeMap::new();
    payload.insert("offer".to_owned(), "wine-10".to_owned());
    payload.insert("locale".to_owned(), "en-GB".to_owned());
    c.push_campaign(CampaignMeta {
        id: "wine-promo".into(),
        expiry_s: 120,
        payload,
    })
    .expect("campaign");
    c.push_campaign(CampaignMeta {
        id: "welcome".into(),
        expiry_s: 0,
        payload: BTreeMap::new(),
    })
    .expect("campaign");
    c.set_min_occupancy_count(3);
    c
}

fn reason(rule: ReasonRule, method: LocateMethod, nodes: &[u16]) -> Reason {
    let mut r = Reason {
        nodes: Default::default(),
        rule,
        method,
    };
    for n in nodes {
        r.nodes.push(*n).expect("at most 4 nodes");
    }
    r
}

fn presence(zone: u16, person: PersonId, rule: ReasonRule) -> Presence {
    Presence {
        zone: ZoneIdx(zone),
        person,
        device_kind: DeviceKind::Phone,
        confidence: 0.91,
        first_seen: Timestamp(T0 - 30_000),
        last_seen: Timestamp(T0 - 200),
        reason: reason(rule, LocateMethod::Multilateration, &[4, 1, 9]),
    }
}

fn corpus() -> Vec<EventKind> {
    let pseudo = PersonId::Pseudonym([0x3c; 16]);
    let opted = PersonId::Campaign([0xc1; 16]);
    let trigger_reason = |engagement| {
        let mut r = TriggerReason {
            dwell_ms: 31_000,
            confidence: 0.88,
            engagement,
            nodes: Default::default(),
        };
        r.nodes.push(4).expect("room");
        r
    };
    let mut kinds = vec![
        EventKind::ZoneEnter(presence(0, pseudo, ReasonRule::Confirmed { n: 2, m: 3 })),
        EventKind::ZoneEnter(Presence {
            device_kind: DeviceKind::Unknown,
            confidence: 0.0,
            reason: reason(
                ReasonRule::Confirmed { n: 1, m: 1 },
                LocateMethod::NearestNode,
                &[],
            ),
            ..presence(1, opted, ReasonRule::Milestone)
        }),
        EventKind::ZoneDwell {
            presence: presence(1, opted, ReasonRule::Milestone),
            milestone_s: 30,
        },
        EventKind::Engagement {
            person: opted,
            zone: Some(ZoneIdx(1)),
            level: EngagementLevel::High,
            heart_rate_bpm: None,
        },
        EventKind::Engagement {
            person: opted,
            zone: None,
            level: EngagementLevel::Calm,
            heart_rate_bpm: Some(71),
        },
        EventKind::Occupancy {
            zone: ZoneIdx(0),
            count: Some(17),
            period_ms: 60_000,
        },
        EventKind::Occupancy {
            zone: ZoneIdx(1),
            count: None,
            period_ms: 60_000,
        },
        EventKind::Occupancy {
            zone: ZoneIdx(1),
            count: Some(0),
            period_ms: 60_000,
        },
        EventKind::CampaignTrigger {
            campaign: CampaignIdx(0),
            person: opted,
            zone: ZoneIdx(1),
            device_kind: DeviceKind::Wearable,
            reason: trigger_reason(Some(EngagementLevel::Elevated)),
        },
        EventKind::CampaignTrigger {
            campaign: CampaignIdx(1),
            person: pseudo,
            zone: ZoneIdx(0),
            device_kind: DeviceKind::Tag,
            reason: trigger_reason(None),
        },
        EventKind::NodeStatus {
            node: 0,
            online: true,
        },
        EventKind::NodeStatus {
            node: 65_535,
            online: false,
        },
    ];
    for (rule, pass_by) in [
        (ReasonRule::Moved, false),
        (ReasonRule::Grace, true),
        (ReasonRule::Evicted, false),
        (ReasonRule::SaltRotated, false),
    ] {
        kinds.push(EventKind::ZoneExit {
            presence: presence(1, pseudo, rule),
            dwell_ms: 29_800,
            pass_by,
        });
    }
    kinds
}

fn rendered() -> Vec<OutMessage> {
    let c = ctx();
    let mut out: Vec<OutMessage> = corpus()
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            id[8] = 0xa5;
            let e = Event {
                id: EventId(id),
                seq: i as u64 + 1,
                time: Timestamp(T0 + i as u64),
                kind,
            };
            render(&e, &c).expect("renders")
        })
        .collect();
    out.push(render_gateway_status(&c, true, Timestamp(T0)));
    out.push(render_gateway_status(&c, false, Timestamp(T0)));
    let health = NodeHealth {
        uptime_s: 86_400,
        dropped_sightings: 3,
        dropped_frames: 0,
        queue_depth: 2,
        battery_mv: None,
    };
    out.push(render_node_report(&c, 7, &health, Timestamp(T0)));
    let health = NodeHealth {
        battery_mv: Some(3010),
        ..health
    };
    out.push(render_node_report(&c, 8, &health, Timestamp(T0)));
    out
}

fn parse(m: &OutMessage) -> Value {
    serde_json::from_slice(&m.payload)
        .unwrap_or_else(|e| panic!("{}: payload is not JSON: {e}", m.topic))
}

// ------------------------------------------------------------------------------------------

#[test]
fn every_schema_is_valid_draft_2020_12() {
    let schemas = load_schemas();
    assert!(
        schemas.by_file.contains_key("cloudevent.json"),
        "the common envelope schema exists"
    );
    for (file, schema) in &schemas.by_file {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file} declares draft 2020-12"
        );
        assert!(
            jsonschema::meta::is_valid(schema),
            "{file} is not a valid JSON Schema"
        );
        validator(&schemas, file);
    }
}

#[test]
fn one_schema_per_message_class_and_type_names_match() {
    let schemas = load_schemas();
    let mut expected: BTreeSet<String> = MessageClass::ALL
        .iter()
        .map(|c| c.schema_file().to_owned())
        .collect();
    expected.insert("cloudevent.json".to_owned());
    let present: BTreeSet<String> = schemas.by_file.keys().cloned().collect();
    assert_eq!(
        present, expected,
        "docs/schemas holds exactly one file per message class + the envelope"
    );
    let envelope_types = &schemas.by_file["cloudevent.json"]["properties"]["type"]["enum"];
    for class in MessageClass::ALL {
        let s = &schemas.by_file[class.schema_file()];
        assert_eq!(
            s["properties"]["type"]["const"],
            class.cloudevents_type(),
            "{}",
            class.schema_file()
        );
        assert!(
            envelope_types
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t == class.cloudevents_type())),
            "the envelope's type enum lists {}",
            class.cloudevents_type()
        );
        assert_eq!(
            s["allOf"][0]["$ref"],
            "cloudevent.json",
            "{} builds on the envelope",
            class.schema_file()
        );
        assert_eq!(
            s["properties"]["data"]["additionalProperties"],
            false,
            "{}: data is strict",
            class.schema_file()
        );
    }
}

#[test]
fn every_rendered_message_validates_against_its_schema() {
    let schemas = load_schemas();
    let envelope = validator(&schemas, "cloudevent.json");
    let validators: HashMap<MessageClass, jsonschema::Validator> = MessageClass::ALL
        .iter()
        .map(|c| (*c, validator(&schemas, c.schema_file())))
        .collect();
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for m in rendered() {
        let v = parse(&m);
        let errs = errors(&validators[&m.class], &v);
        assert!(
            errs.is_empty(),
            "{} ({}) does not validate:\n{}\n{v:#}",
            m.topic,
            m.class.schema_file(),
            errs.join("\n")
        );
        assert!(errors(&envelope, &v).is_empty(), "{}: envelope", m.topic);
        // No message validates against another class's schema: the `type` const tells them apart.
        for (class, other) in &validators {
            if *class != m.class {
                assert!(
                    !other.is_valid(&v),
                    "{} also validates as {}",
                    m.topic,
                    class.schema_file()
                );
            }
        }
        assert!(
            ids.insert(m.event_id.clone()),
            "duplicate id {}",
            m.event_id
        );
        seen.insert(m.class.label());
    }
    let all: BTreeSet<&str> = MessageClass::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(seen, all, "the corpus covers every message class");
}

/// The schemas must reject what the contract rules out; otherwise validating real traffic
/// proves nothing.
#[test]
fn schemas_reject_contract_violations() {
    let schemas = load_schemas();
    let enter = rendered()
        .into_iter()
        .find(|m| m.class == MessageClass::ZoneEnter)
        .expect("an enter");
    let trigger = rendered()
        .into_iter()
        .find(|m| m.class == MessageClass::CampaignTrigger)
        .expect("a trigger");
    let occupancy = rendered()
        .into_iter()
        .find(|m| m.class == MessageClass::Occupancy)
        .expect("occupancy");
    let ve = validator(&schemas, MessageClass::ZoneEnter.schema_file());
    let vt = validator(&schemas, MessageClass::CampaignTrigger.schema_file());
    let vo = validator(&schemas, MessageClass::Occupancy.schema_file());
    let base_e = parse(&enter);
    let base_t = parse(&trigger);
    let base_o = parse(&occupancy);
    assert!(ve.is_valid(&base_e) && vt.is_valid(&base_t) && vo.is_valid(&base_o));

    type Mutation = (&'static str, fn(&mut Value));
    let enter_mutations: &[Mutation] = &[
        ("extra data field", |v| {
            v["data"]["mac"] = json!("AA:BB:CC:DD:EE:FF")
        }),
        ("raw address as person", |v| {
            v["data"]["person"] = json!("aa:bb:cc:dd:ee:ff")
        }),
        ("uppercase id", |v| {
            v["id"] = json!("5E000000000000000000000000000001")
        }),
        ("time without ms", |v| {
            v["time"] = json!("2026-11-18T11:06:40Z")
        }),
        ("time not UTC", |v| {
            v["time"] = json!("2026-11-18T12:06:40.000+01:00")
        }),
        ("wrong specversion", |v| v["specversion"] = json!("0.3")),
        ("extension attribute", |v| v["mac"] = json!("x")),
        ("missing subject", |v| {
            drop(v.as_object_mut().map(|o| o.remove("subject")))
        }),
        ("confidence above 1", |v| {
            v["data"]["confidence"] = json!(1.5)
        }),
        ("unknown device kind", |v| {
            v["data"]["device_kind"] = json!("toaster")
        }),
        ("five reason nodes", |v| {
            v["data"]["reason"]["nodes"] = json!([1, 2, 3, 4, 5])
        }),
        ("n without m", |v| {
            drop(v["data"]["reason"].as_object_mut().map(|o| o.remove("m")))
        }),
        ("wrong type", |v| v["type"] = json!("footfall.zone.exit")),
        ("source of another shape", |v| {
            v["source"] = json!("urn:footfall:gw-1")
        }),
    ];
    for (what, mutate) in enter_mutations {
        let mut v = base_e.clone();
        mutate(&mut v);
        assert!(!ve.is_valid(&v), "zone-enter schema accepted: {what}");
    }
    let trigger_mutations: &[Mutation] = &[
        ("non-string payload value", |v| {
            v["data"]["payload"]["n"] = json!(1)
        }),
        ("missing seq", |v| {
            drop(v["data"].as_object_mut().map(|o| o.remove("seq")))
        }),
        ("bad expires_at", |v| {
            v["data"]["expires_at"] = json!("soon")
        }),
        ("pseudonym of the wrong length", |v| {
            v["data"]["person"] = json!("p-abc")
        }),
    ];
    for (what, mutate) in trigger_mutations {
        let mut v = base_t.clone();
        mutate(&mut v);
        assert!(!vt.is_valid(&v), "campaign-trigger schema accepted: {what}");
    }
    let mut v = base_o.clone();
    v["data"]["suppressed"] = json!(true);
    assert!(
        !vo.is_valid(&v),
        "occupancy schema accepted a count marked suppressed"
    );
    let mut v = base_o;
    v["data"]["count"] = Value::Null;
    assert!(
        !vo.is_valid(&v),
        "occupancy schema accepted a null count not marked suppressed"
    );
}

#[test]
fn topics_follow_the_documented_layout() {
    for m in rendered() {
        let v = parse(&m);
        let parts: Vec<&str> = m.topic.split('/').collect();
        assert_eq!(&parts[..3], ["footfall", "v1", "store-042"], "{}", m.topic);
        let rest = &parts[3..];
        match m.class {
            MessageClass::ZoneEnter | MessageClass::ZoneDwell | MessageClass::ZoneExit => {
                let leaf = m
                    .class
                    .cloudevents_type()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default();
                assert_eq!(
                    rest,
                    [
                        "zones",
                        v["data"]["zone"].as_str().unwrap_or_default(),
                        leaf
                    ]
                );
            }
            MessageClass::Engagement => match v["data"]["zone"].as_str() {
                Some(z) => assert_eq!(rest, ["zones", z, "engagement"]),
                None => assert_eq!(rest, ["engagement"]),
            },
            MessageClass::Occupancy => assert_eq!(
                rest,
                ["occupancy", v["data"]["zone"].as_str().unwrap_or_default()]
            ),
            MessageClass::CampaignTrigger => {
                assert_eq!(
                    rest,
                    [
                        "campaigns",
                        v["data"]["campaign"].as_str().unwrap_or_default()
                    ]
                );
                assert!(m.expiry_s.is_some() == v["data"].get("expires_at").is_some());
            }
            MessageClass::NodeStatus => {
                assert_eq!(rest, ["nodes", &v["data"]["node"].to_string(), "status"]);
            }
            MessageClass::GatewayStatus => assert_eq!(rest, ["gateway", "gw-1", "status"]),
            other => panic!("unexpected class {other:?}"),
        }
        assert_eq!(
            m.retain,
            matches!(rest[0], "occupancy" | "nodes" | "gateway"),
            "{}",
            m.topic
        );
        assert_eq!(m.qos, 1);
    }
}

// ------------------------------------------------------------------------------------------
// AsyncAPI
// ------------------------------------------------------------------------------------------

fn asyncapi() -> Value {
    let text =
        std::fs::read_to_string(docs().join("asyncapi.yaml")).expect("docs/asyncapi.yaml exists");
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).expect("docs/asyncapi.yaml is YAML");
    serde_json::to_value(yaml).expect("YAML maps to JSON")
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_owned());
                    }
                }
                collect_refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// Follows a local `#/a/b` pointer.
fn resolve_local<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

#[test]
fn asyncapi_describes_every_channel_and_references_every_schema() {
    let doc = asyncapi();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let schemas = load_schemas();

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    let mut files_referenced = BTreeSet::new();
    for r in &refs {
        if r.starts_with('#') {
            assert!(
                resolve_local(&doc, r).is_some(),
                "asyncapi.yaml: dangling $ref {r}"
            );
        } else {
            let file = r.split('#').next().unwrap_or_default();
            let name = file
                .strip_prefix("./schemas/")
                .unwrap_or_else(|| panic!("external $ref {r} must point into ./schemas/"));
            assert!(
                schemas.by_file.contains_key(name),
                "asyncapi.yaml references missing docs/schemas/{name}"
            );
            files_referenced.insert(name.to_owned());
        }
    }
    for class in MessageClass::ALL {
        assert!(
            files_referenced.contains(class.schema_file()),
            "asyncapi.yaml does not reference {}",
            class.schema_file()
        );
    }

    // Every rendered topic matches exactly one channel address, whose messages include one
    // with the right schema; every operation refers to a channel.
    let channels = doc["channels"].as_object().expect("channels");
    let addresses: Vec<(&String, Vec<&str>)> = channels
        .iter()
        .map(|(name, ch)| {
            let addr = ch["address"]
                .as_str()
                .unwrap_or_else(|| panic!("channel {name} has an address"));
            (name, addr.split('/').collect())
        })
        .collect();
    for m in rendered() {
        let topic: Vec<&str> = m.topic.split('/').collect();
        let matching: Vec<&String> = addresses
            .iter()
            .filter(|(_, a)| {
                a.len() == topic.len()
                    && a.iter()
                        .zip(&topic)
                        .all(|(p, t)| (p.starts_with('{') && p.ends_with('}')) || p == t)
            })
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{} matches channels {matching:?}",
            m.topic
        );
        let ch = &channels[matching[0].as_str()];
        let messages = ch["messages"].as_object().expect("channel messages");
        let has_schema = messages.values().any(|msg| {
            let msg = msg
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| resolve_local(&doc, r))
                .unwrap_or(msg);
            let mut rs = Vec::new();
            collect_refs(&msg["payload"], &mut rs);
            rs.iter().any(|r| r.ends_with(m.class.schema_file()))
        });
        assert!(
            has_schema,
            "channel {} has no message with schema {}",
            matching[0],
            m.class.schema_file()
        );
    }
    let uplink = channels.values().any(|c| {
        c["address"]
            .as_str()
            .is_some_and(|a| a.ends_with("/nodes/{node}/uplink"))
    });
    assert!(uplink, "asyncapi.yaml describes the inbound uplink channel");
    for (name, op) in doc["operations"].as_object().expect("operations") {
        let r = op["channel"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("operation {name} names a channel"));
        assert!(resolve_local(&doc, r).is_some(), "operation {name}: {r}");
        assert!(
            matches!(op["action"].as_str(), Some("send" | "receive")),
            "operation {name} action"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Events from the real engine
// ------------------------------------------------------------------------------------------

const STORE_TOML: &str = r#"
[store]
store_id = "store-042"
width_m = 30.0
depth_m = 20.0
nodes = [
  { id = 1, position = { x = 0.0, y = 0.0 } },
  { id = 2, position = { x = 20.0, y = 0.0 } },
  { id = 3, position = { x = 10.0, y = 15.0 } },
]
zones = [
  { id = "entrance", kind = "entrance", shape = { type = "node_radius", node = 1, radius_m = 3.0 } },
  { id = "wine", kind = "display", shape = { type = "node_radius", node = 2, radius_m = 3.0 } },
]

[engine.privacy]
secret = "4f6f4d2a9b1c0e7d3a5b8c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
opted_in_beacons = ["f7826da64fa24e988024bc5b71e0893e00010002"]
min_occupancy_count = 2

[engine.occupancy]
period_s = 5

[engine.node_timeout]
offline_after_s = 10.0

[[engine.campaigns]]
id = "wine-promo"
zone = "wine"
min_dwell_s = 10
expiry_s = 120
payload = { offer = "wine-10" }
"#;

#[derive(serde::Deserialize)]
struct StoreFile {
    store: footfall_engine::config::StoreLayout,
    engine: footfall_engine::config::EngineConfig,
}

const OPTED_IN_UUID: [u8; 16] = [
    0xf7, 0x82, 0x6d, 0xa6, 0x4f, 0xa2, 0x4e, 0x98, 0x80, 0x24, 0xbc, 0x5b, 0x71, 0xe0, 0x89, 0x3e,
];
const RAW_ADDR: [u8; 6] = [0x5a, 0x13, 0xc4, 0x9e, 0x27, 0xb1];

/// Drives the engine through one shopper's visit (an opted-in app phone with a wearable, in the
/// wine zone long enough to trigger the campaign), a passer-by with a rotating address at the
/// entrance, and a node that goes silent. Returns every event, rendered.
fn engine_messages() -> (Vec<OutMessage>, Vec<Event>) {
    use footfall_engine::input::{
        AddressType, DeviceEvidence, Input, RssiObservation, Sighting, WearableSample,
    };
    use footfall_engine::Engine;

    let file: StoreFile = toml::from_str(STORE_TOML).expect("store TOML");
    let ctx =
        RenderCtx::from_config(&file.store, &file.engine, "gw-1", "footfall/v1").expect("ctx");
    let mut engine = Engine::new(file.store, file.engine).expect("valid config");

    let app = DeviceEvidence::IBeacon {
        uuid: OPTED_IN_UUID,
        major: 1,
        minor: 2,
    };
    let passer = DeviceEvidence::Address {
        addr: RAW_ADDR,
        kind: AddressType::RandomResolvable,
    };
    let sighting = |node, device, kind, dbm| {
        Input::Sighting(Sighting {
            node,
            device,
            kind,
            rssi: RssiObservation::single(dbm),
            tx_power_dbm: None,
        })
    };

    let mut events = Vec::new();
    let step_ms = 250;
    for i in 0..(70_000 / step_ms) {
        let t_ms = i * step_ms;
        let now = Timestamp(T0 + t_ms);
        let mut inputs = Vec::new();
        if t_ms % 1000 == 0 {
            for node in [1u16, 2] {
                if t_ms < 60_000 {
                    inputs.push(Input::NodeAlive { node });
                }
            }
            if t_ms < 3_000 {
                inputs.push(Input::NodeAlive { node: 3 });
            }
            if t_ms < 40_000 {
                let hr = if t_ms < 15_000 { 70 } else { 104 };
                inputs.push(Input::Wearable(WearableSample {
                    node: 2,
                    device: app,
                    heart_rate_bpm: Some(hr),
                    rr_interval: None,
                    motion_mg: None,
                }));
            }
        }
        if t_ms < 40_000 {
            inputs.push(sighting(2, app, DeviceKind::Phone, -52));
        }
        if t_ms < 12_000 {
            inputs.push(sighting(1, passer, DeviceKind::Unknown, -54));
        }
        for input in inputs {
            engine.handle(now, input);
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        while let Some(e) = engine.poll_event() {
            events.push(e);
        }
    }
    let messages = events
        .iter()
        .map(|e| render(e, &ctx).expect("engine events render"))
        .collect();
    (messages, events)
}

#[test]
fn real_engine_events_validate_and_cover_every_kind() {
    let schemas = load_schemas();
    let validators: HashMap<MessageClass, jsonschema::Validator> = MessageClass::ALL
        .iter()
        .map(|c| (*c, validator(&schemas, c.schema_file())))
        .collect();
    let (messages, events) = engine_messages();
    let mut seen = BTreeSet::new();
    for m in &messages {
        let v = parse(m);
        let errs = errors(&validators[&m.class], &v);
        assert!(errs.is_empty(), "{}: {}\n{v:#}", m.topic, errs.join("\n"));
        seen.insert(m.class);
    }
    for class in [
        MessageClass::ZoneEnter,
        MessageClass::ZoneDwell,
        MessageClass::ZoneExit,
        MessageClass::Engagement,
        MessageClass::Occupancy,
        MessageClass::CampaignTrigger,
        MessageClass::NodeStatus,
    ] {
        assert!(
            seen.contains(&class),
            "the engine scenario produced no {} (events: {:?})",
            class.cloudevents_type(),
            events.iter().map(|e| e.kind.name()).collect::<Vec<_>>()
        );
    }
    let trigger = messages
        .iter()
        .find(|m| m.class == MessageClass::CampaignTrigger)
        .expect("a trigger");
    assert_eq!(trigger.topic, "footfall/v1/store-042/campaigns/wine-promo");
    assert_eq!(trigger.expiry_s, Some(120));
    let v = parse(trigger);
    assert!(
        v["data"]["person"]
            .as_str()
            .is_some_and(|p| p.starts_with("c-")),
        "opted-in audience"
    );
    assert_eq!(v["data"]["payload"]["offer"], "wine-10");
    // Ids are unique; seq increases.
    let ids: BTreeSet<&str> = messages.iter().map(|m| m.event_id.as_str()).collect();
    assert_eq!(ids.len(), messages.len());
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// Nothing that identifies a device on the air — its address, its beacon UUID — nor the
/// gateway secret appears in any published byte, in any spelling.
#[test]
fn no_raw_identifier_in_any_payload_or_topic() {
    let (messages, _) = engine_messages();
    assert!(!messages.is_empty());
    let hex = |b: &[u8], sep: &str| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let needles = [
        hex(&RAW_ADDR, ""),
        hex(&RAW_ADDR, ":"),
        hex(&RAW_ADDR, "-"),
        hex(&OPTED_IN_UUID, ""),
        "f7826da6-4fa2-4e98-8024-bc5b71e0893e".to_owned(),
        "4f6f4d2a9b1c0e7d".to_owned(),
    ];
    for m in &messages {
        let text = format!("{} {}", m.topic, m.payload_str()).to_ascii_lowercase();
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{} contains {n}", m.topic);
        }
        let raw = &m.payload;
        assert!(
            !raw.windows(RAW_ADDR.len()).any(|w| w == RAW_ADDR),
            "raw address bytes in {}",
            m.topic
        );
    }
}

/// The examples embedded in the schemas (what a reader copies first) are valid themselves.
#[test]
fn schema_examples_are_valid() {
    let schemas = load_schemas();
    for class in MessageClass::ALL {
        let file = class.schema_file();
        let v = validator(&schemas, file);
        let examples = schemas.by_file[file]["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("{file} has examples"));
        assert!(!examples.is_empty(), "{file} has examples");
        for ex in examples {
            let errs = errors(&v, ex);
            assert!(
                errs.is_empty(),
                "{file} example:\n{}\n{ex:#}",
                errs.join("\n")
            );
        }
    }
}
