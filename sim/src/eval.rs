//! The quality harness: replay a recording with ground truth through the engine and score it.
//! [`evaluate_events`] scores events from elsewhere (what a subscriber received from a gateway)
//! against the same recording with the same code.
//!
//! # Definitions
//!
//! - **Identity**: one advertising identity of one simulated device, from its `device` line
//!   until the next `device` line of the same device (address rotation) or until its carrier
//!   leaves. A phone whose address rotates is a new identity: the engine cannot link the two
//!   addresses, so neither can be blamed for the other.
//! - **Engine person of an identity**: the [`PersonId`] the engine gives the identity's
//!   evidence at the identity's start, from `Engine::person_for` (a keyed hash only the engine
//!   can compute; the call changes no device state).
//! - **Visit**: a maximal stretch of one identity's ground truth in one zone (`truth` lines, one
//!   per second plus one at every zone change). It starts when the person enters the zone (or
//!   when the identity appears) and ends when they are elsewhere (or the identity ends). Two
//!   visits of one zone less than `min_visit_s` apart are one visit: a short detour through
//!   another zone is a pass-by there, not a new visit here.
//! - **Session**: an engine `zone.enter` … `zone.exit` pair for one person and zone.
//! - **Matching**: a session belongs to the visit of the same identity and zone during which it
//!   begins (it may begin up to `enter_tolerance_s` early); if several qualify, the one it
//!   overlaps most. A session that begins during no visit of its zone is a **false session**; a
//!   session of a person no identity maps to (e.g. an address flood) is **unattributed**. A
//!   visit of at least `min_visit_s` without a session is a **missed session**. Every session
//!   beyond the first on one visit is a **flap** (the subscriber saw exit and re-enter while the
//!   person stayed).
//! - **Position error**: distance from `Engine::locate`'s estimate to the true position over
//!   the same identity-seconds as zone accuracy, where the engine has an estimate.
//! - **Enter latency**: first matched session's enter time − visit start (visits that began
//!   before the recording or with the identity itself are excluded). **Exit latency**: last
//!   matched session's exit time − visit end (only visits that ended, and sessions that exited).
//! - **Zone accuracy**: over every per-second `truth` line of every identity (after the first
//!   `settle_s` of the recording), the fraction where the engine's zone for the identity (the
//!   zone of its latest open session, or none) equals the true zone (none included).
//! - **Campaigns**: a campaign *should fire* for an identity when the identity qualifies
//!   (audience, device kind) and has a visit of the campaign's zone at least `min_dwell_s +
//!   dwell_tolerance_s` long; it *should not* when every visit of that zone is shorter than
//!   `min_dwell_s − dwell_tolerance_s` or the identity does not qualify. Pairs in between are
//!   not scored, nor are campaigns with hours, days or engagement conditions.

use crate::convert::{evidence, to_inputs};
use crate::record::{DeviceRecord, KindHint, Record, SightingRecord, TruthRecord};
use crate::recording::{ReadError, RecordingReader, SkipCounts};
use footfall_engine::config::{Audience, EngineConfig, StoreLayout};
use footfall_engine::event::{CampaignIdx, Event, EventKind, PersonId, ZoneIdx};
use footfall_engine::input::DeviceEvidence;
use footfall_engine::time::Timestamp;
use footfall_engine::Engine;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

/// Scoring knobs; the defaults are the ones the documented figures use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalOptions {
    /// Visits shorter than this are not expected to be detected (pass-bys), seconds.
    pub min_visit_s: f64,
    /// A session may start this much before its visit and still match it, seconds.
    pub enter_tolerance_s: f64,
    /// A session still open this long after its visit ended counts as an exit missing, seconds.
    pub exit_tolerance_s: f64,
    /// Zone accuracy ignores the first seconds of a recording (the engine starts cold).
    pub settle_s: f64,
    /// Campaign ground truth ignores visits within this many seconds of the campaign's
    /// `min_dwell_s` (either side).
    pub dwell_tolerance_s: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            min_visit_s: 5.0,
            enter_tolerance_s: 3.0,
            exit_tolerance_s: 30.0,
            settle_s: 10.0,
            dwell_tolerance_s: 3.0,
        }
    }
}

/// "Settled" zone accuracy counts samples at least this long after the last true zone change.
const SETTLED_MS: u64 = 10_000;

/// Two independent standard normal draws (Box–Muller).
fn gaussian_pair(rng: &mut rand_chacha::ChaCha8Rng) -> (f32, f32) {
    use rand::Rng;
    let u1: f32 = 1.0 - rng.gen::<f32>();
    let u2: f32 = rng.gen::<f32>();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The engine refused the layout or config.
    #[error("engine config: {0}")]
    Config(String),
    /// The recording is bad.
    #[error("recording: {0}")]
    Read(#[from] ReadError),
}

/// p50 / p95 of a latency, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub n: u64,
    /// Median, ms (nearest rank); `None` without samples.
    pub p50_ms: Option<i64>,
    /// 95th percentile, ms (nearest rank); `None` without samples.
    pub p95_ms: Option<i64>,
}

impl Latency {
    fn of(mut v: Vec<i64>) -> Self {
        v.sort_unstable();
        let rank = |p: f64| -> Option<i64> {
            if v.is_empty() {
                return None;
            }
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v.get(i).copied()
        };
        Self {
            n: v.len() as u64,
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
        }
    }
}

/// Median and 90th percentile of a distance, metres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Samples.
    pub n: u64,
    /// Median, metres; `None` without samples.
    pub p50_m: Option<f64>,
    /// 90th percentile, metres; `None` without samples.
    pub p90_m: Option<f64>,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_unstable_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
            v.get(i).map(|x| (x * 100.0).round() / 100.0)
        };
        Self {
            n: v.len() as u64,
            p50_m: rank(0.5),
            p90_m: rank(0.9),
        }
    }
}

/// How one campaign did against ground truth.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CampaignScore {
    /// Campaign id.
    pub id: String,
    /// Whether the campaign was scored (no hours, days or engagement condition).
    pub scored: bool,
    /// Triggers emitted.
    pub triggers: u64,
    /// Identities for which it should have fired.
    pub should_fire: u64,
    /// …and did.
    pub fired: u64,
    /// …and did not.
    pub missed: u64,
    /// Identities for which it should not have fired but did.
    pub should_not_have_fired: u64,
}

/// What `evaluate` measured. `Display` renders a table; `Serialize` gives `--json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Store id (from the layout).
    pub store: String,
    /// Recording span, seconds.
    pub seconds: f64,
    /// Sighting lines replayed.
    pub sightings: u64,
    /// Identities in the ground truth.
    pub identities: u64,
    /// Identity-hours in the store (the flap-rate denominator).
    pub device_hours: f64,
    /// Scored zone samples (identity-seconds).
    pub zone_samples: u64,
    /// Fraction of zone samples where the engine agreed with the ground truth.
    pub zone_accuracy: f64,
    /// Zone accuracy over the samples at least 10 s after the identity's last true zone change
    /// (or its start): how well the engine places people once they stay somewhere.
    pub zone_accuracy_settled: f64,
    /// The same samples scored for an oracle that knows each true position up to a seeded
    /// Gaussian error of σ = 1 m per axis and takes the zone of that point, no memory: what
    /// the zone geometry allows a locator with 1 m error (BLE RSSI rarely does better).
    pub zone_accuracy_bound_1m: f64,
    /// As `zone_accuracy_bound_1m` with σ = 2 m.
    pub zone_accuracy_bound_2m: f64,
    /// Distance between the engine's position estimate (`Engine::locate`) and the true position,
    /// over the same identity-seconds as zone accuracy (where the engine has an estimate).
    pub position_error: Spread,
    /// Enter latency.
    pub enter_latency: Latency,
    /// Exit latency.
    pub exit_latency: Latency,
    /// Visits long enough to be expected.
    pub visits: u64,
    /// Engine sessions (enters).
    pub sessions: u64,
    /// Expected visits with no session.
    pub missed_sessions: u64,
    /// Sessions of known identities that match no visit.
    pub false_sessions: u64,
    /// Sessions of persons that map to no identity (floods, unknown devices).
    pub unattributed_sessions: u64,
    /// Extra sessions on one visit.
    pub flaps: u64,
    /// Flaps per identity-hour.
    pub flaps_per_device_hour: f64,
    /// Sessions that never exited although their visit ended.
    pub exits_missing: u64,
    /// Per-campaign scores.
    pub campaigns: Vec<CampaignScore>,
    /// Identities whose `device` line carries no usable evidence (not mapped to a person).
    pub unmapped_identities: u64,
    /// Recording lines skipped (lenient reading).
    pub skipped: SkipCounts,
    /// The options used.
    pub options: EvalOptions,
}

impl EvalReport {
    /// Whether the report meets the engine's quality floors (issue targets): zone accuracy ≥
    /// 90 %, enter p95 ≤ 1.5 s, exit p95 ≤ 10 s, flaps ≤ 0.1 per device-hour.
    pub fn meets_targets(&self) -> bool {
        self.zone_accuracy >= 0.90
            && self.enter_latency.p95_ms.is_some_and(|v| v <= 1_500)
            && self.exit_latency.p95_ms.is_some_and(|v| v <= 10_000)
            && self.flaps_per_device_hour <= 0.1
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2} s", v as f64 / 1000.0))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let check = |ok: bool| if ok { "ok" } else { "MISS" };
        writeln!(
            f,
            "store {}: {:.0} s, {} sightings, {} identities, {:.2} device-hours",
            self.store, self.seconds, self.sightings, self.identities, self.device_hours
        )?;
        writeln!(
            f,
            "{:<28} {:>14} {:>10} {:>6}",
            "metric", "value", "target", ""
        )?;
        writeln!(f, "{:-<62}", "")?;
        writeln!(
            f,
            "{:<28} {:>13.1}% {:>10} {:>6}",
            "zone accuracy",
            self.zone_accuracy * 100.0,
            ">= 90%",
            check(self.zone_accuracy >= 0.9)
        )?;
        for (name, v) in [
            ("  settled (>= 10 s)", self.zone_accuracy_settled),
            ("  bound, 1 m error", self.zone_accuracy_bound_1m),
            ("  bound, 2 m error", self.zone_accuracy_bound_2m),
        ] {
            writeln!(f, "{:<28} {:>13.1}%", name, v * 100.0)?;
        }
        let m = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2} m"));
        writeln!(
            f,
            "{:<28} {:>14}",
            "position error p50",
            m(self.position_error.p50_m)
        )?;
        writeln!(
            f,
            "{:<28} {:>14}",
            "position error p90",
            m(self.position_error.p90_m)
        )?;
        writeln!(
            f,
            "{:<28} {:>14} {:>10}",
            "enter latency p50",
            ms(self.enter_latency.p50_ms),
            ""
        )?;
        writeln!(
            f,
            "{:<28} {:>14} {:>10} {:>6}",
            "enter latency p95",
            ms(self.enter_latency.p95_ms),
            "<= 1.5 s",
            check(self.enter_latency.p95_ms.is_some_and(|v| v <= 1500))
        )?;
        writeln!(
            f,
            "{:<28} {:>14} {:>10}",
            "exit latency p50",
            ms(self.exit_latency.p50_ms),
            ""
        )?;
        writeln!(
            f,
            "{:<28} {:>14} {:>10} {:>6}",
            "exit latency p95",
            ms(self.exit_latency.p95_ms),
            "<= 10 s",
            check(self.exit_latency.p95_ms.is_some_and(|v| v <= 10_000))
        )?;
        writeln!(
            f,
            "{:<28} {:>14.3} {:>10} {:>6}",
            "flaps per device-hour",
            self.flaps_per_device_hour,
            "<= 0.1",
            check(self.flaps_per_device_hour <= 0.1)
        )?;
        writeln!(
            f,
            "{:<28} {:>14}",
            "visits (expected sessions)", self.visits
        )?;
        writeln!(f, "{:<28} {:>14}", "engine sessions", self.sessions)?;
        writeln!(f, "{:<28} {:>14}", "missed sessions", self.missed_sessions)?;
        writeln!(f, "{:<28} {:>14}", "false sessions", self.false_sessions)?;
        writeln!(
            f,
            "{:<28} {:>14}",
            "unattributed sessions", self.unattributed_sessions
        )?;
        writeln!(f, "{:<28} {:>14}", "flaps", self.flaps)?;
        writeln!(f, "{:<28} {:>14}", "exits missing", self.exits_missing)?;
        if !self.campaigns.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<24} {:>8} {:>8} {:>6} {:>7} {:>11}",
                "campaign", "triggers", "should", "fired", "missed", "should not"
            )?;
            for c in &self.campaigns {
                if c.scored {
                    writeln!(
                        f,
                        "{:<24} {:>8} {:>8} {:>6} {:>7} {:>11}",
                        c.id, c.triggers, c.should_fire, c.fired, c.missed, c.should_not_have_fired
                    )?;
                } else {
                    writeln!(f, "{:<24} {:>8} {:>8}", c.id, c.triggers, "not scored")?;
                }
            }
        }
        if self.skipped.total() > 0 {
            writeln!(f, "\nlines {}", self.skipped)?;
        }
        if self.unmapped_identities > 0 {
            writeln!(
                f,
                "identities without evidence (unmapped): {}",
                self.unmapped_identities
            )?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------

#[derive(Debug)]
struct IdentityTruth {
    device: Option<DeviceEvidence>,
    kind: KindHint,
    opted_in: bool,
    from: u64,
    to: Option<u64>,
    engine_person: Option<PersonId>,
    /// Current visit: zone (None = no zone) and start.
    current: Option<(Option<ZoneIdx>, u64)>,
    visits: Vec<Visit>,
}

#[derive(Debug, Clone, Copy)]
struct Visit {
    zone: ZoneIdx,
    start: u64,
    end: Option<u64>,
    /// Started when the identity (or the recording) started: no enter latency.
    started_with_identity: bool,
    sessions: u32,
    first_enter: Option<u64>,
    last_exit: Option<Option<u64>>,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    person: PersonId,
    zone: ZoneIdx,
    enter: u64,
    exit: Option<u64>,
}

/// An engine event the scoring uses, as a subscriber sees it: [`evaluate`] takes them from its
/// own engine, [`evaluate_events`] from anywhere else (e.g. the CloudEvents a gateway
/// published).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedEvent {
    /// Engine time of the event, ms since the Unix epoch (the CloudEvents `time`).
    pub time: u64,
    /// Who: the pseudonym or campaign id the event carries.
    pub person: PersonId,
    /// What happened.
    pub kind: ObservedKind,
}

/// The kinds of [`ObservedEvent`]: the ones the definitions score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedKind {
    /// `zone.enter` of a zone (index into the layout's `zones`).
    ZoneEnter(ZoneIdx),
    /// `zone.exit` of a zone.
    ZoneExit(ZoneIdx),
    /// `campaign.trigger` of a campaign (index into the engine config's `campaigns`).
    CampaignTrigger(CampaignIdx),
}

impl ObservedEvent {
    /// The scored part of an engine event; `None` for kinds the scoring ignores (dwell,
    /// occupancy, engagement, node status).
    pub fn from_engine(ev: &Event) -> Option<Self> {
        let (person, kind) = match &ev.kind {
            EventKind::ZoneEnter(p) => (p.person, ObservedKind::ZoneEnter(p.zone)),
            EventKind::ZoneExit { presence: p, .. } => (p.person, ObservedKind::ZoneExit(p.zone)),
            EventKind::CampaignTrigger {
                campaign, person, ..
            } => (*person, ObservedKind::CampaignTrigger(*campaign)),
            _ => return None,
        };
        Some(Self {
            time: ev.time.0,
            person,
            kind,
        })
    }
}

/// Replay `records` (ground truth included) through an engine built from `layout` and
/// `engine_config` and score it with the default [`EvalOptions`].
pub fn evaluate(
    layout: &StoreLayout,
    engine_config: &EngineConfig,
    records: impl IntoIterator<Item = Record>,
) -> Result<EvalReport, EvalError> {
    evaluate_with(
        layout,
        engine_config,
        records.into_iter().map(Ok),
        &EvalOptions::default(),
    )
}

/// [`evaluate`] over a [`RecordingReader`]: read errors stop the evaluation (strict reader) and
/// the reader's skip counts (lenient reader) land in the report.
pub fn evaluate_recording<R: BufRead>(
    layout: &StoreLayout,
    engine_config: &EngineConfig,
    reader: &mut RecordingReader<R>,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let mut report = evaluate_with(layout, engine_config, reader.by_ref(), options)?;
    report.skipped = reader.skipped();
    Ok(report)
}

fn new_engine(layout: &StoreLayout, engine_config: &EngineConfig) -> Result<Engine, EvalError> {
    Engine::new(layout.clone(), engine_config.clone()).map_err(|p| EvalError::Config(problems(&p)))
}

/// [`evaluate`] with explicit options, over fallible records.
pub fn evaluate_with(
    layout: &StoreLayout,
    engine_config: &EngineConfig,
    records: impl IntoIterator<Item = Result<Record, ReadError>>,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let mut engine = new_engine(layout, engine_config)?;
    let mut score = Scorer::new(layout, options);
    for record in records {
        let record = record?;
        let Some(t) = record.time() else { continue };
        score.first_t.get_or_insert(t);
        // Timers due before this record.
        let mut guard = 0;
        while let Some(due) = engine.poll_timeout() {
            if due.0 > t || guard > 10_000 {
                break;
            }
            engine.handle_timeout(Timestamp(due.0.max(score.last_t)));
            score.drain(&mut engine);
            guard += 1;
        }
        score.last_t = score.last_t.max(t);
        if let Record::Sighting(s) = &record {
            replay_sighting(&mut engine, s);
            score.drain(&mut engine);
        }
        score.record(&mut engine, &record, true);
    }
    Ok(score.finish(layout, engine_config))
}

/// Scores events that did not come from an engine of this process — typically what a subscriber
/// received from a gateway that replayed the same recording — against the recording's ground
/// truth, with the same definitions and code as [`evaluate_with`].
///
/// `events` are the events in the order they were emitted (the engine's `seq`); they are
/// stable-sorted by time. The engine built from `layout` and `engine_config` replays nothing:
/// it only maps ground-truth identities to the pseudonyms a gateway with the same config
/// (same secret) publishes ([`Engine::person_for`]). Sightings are not replayed, so
/// [`EvalReport::position_error`] stays empty. Time is the recording's: an event counts for the
/// zone-accuracy samples of later records (an event at exactly a record's time is taken to
/// follow it, as a sighting's events follow the sighting), and events after the recording's last
/// line (e.g. a replay's end-of-input drain) are ignored, as [`evaluate`] stops the clock there.
pub fn evaluate_events(
    layout: &StoreLayout,
    engine_config: &EngineConfig,
    records: impl IntoIterator<Item = Result<Record, ReadError>>,
    events: impl IntoIterator<Item = ObservedEvent>,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let mut engine = new_engine(layout, engine_config)?;
    let mut events: Vec<ObservedEvent> = events.into_iter().collect();
    events.sort_by_key(|e| e.time);
    let mut events = events.into_iter().peekable();
    let mut score = Scorer::new(layout, options);
    for record in records {
        let record = record?;
        let Some(t) = record.time() else { continue };
        score.first_t.get_or_insert(t);
        while let Some(ev) = events.next_if(|e| e.time < t) {
            score.event(&ev);
        }
        score.last_t = score.last_t.max(t);
        score.record(&mut engine, &record, false);
    }
    let last_t = score.last_t;
    for ev in events.take_while(|e| e.time <= last_t) {
        score.event(&ev);
    }
    Ok(score.finish(layout, engine_config))
}

/// The scoring state shared by [`evaluate_with`] and [`evaluate_events`]: ground-truth visits
/// from the records, sessions from the events, zone-accuracy samples from both as they
/// interleave in time.
struct Scorer {
    options: EvalOptions,
    zone_ids: Vec<String>,
    plan: crate::geometry::FloorPlan,
    oracle_rng: rand_chacha::ChaCha8Rng,
    ids: Vec<IdentityTruth>,
    id_by_device: HashMap<u32, usize>,
    ids_by_person: HashMap<u32, Vec<usize>>,
    id_by_engine: HashMap<PersonId, usize>,
    sessions: Vec<Session>,
    open: HashMap<(PersonId, ZoneIdx), usize>,
    latest_open: HashMap<PersonId, Vec<usize>>,
    triggers: Vec<(u16, PersonId)>,
    report: EvalReport,
    first_t: Option<u64>,
    last_t: u64,
    hits: u64,
    samples: u64,
    position_errors: Vec<f64>,
    /// Settled samples, and how many of them the engine got right.
    settled_n: (u64, u64),
    /// Oracle hits at 1 m and 2 m.
    bound: [u64; 2],
}

impl Scorer {
    fn new(layout: &StoreLayout, options: &EvalOptions) -> Self {
        Self {
            options: options.clone(),
            zone_ids: layout.zones.iter().map(|z| z.id.clone()).collect(),
            plan: crate::geometry::FloorPlan::new(layout),
            oracle_rng: <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0x0ac1e),
            ids: Vec::new(),
            id_by_device: HashMap::new(),
            ids_by_person: HashMap::new(),
            id_by_engine: HashMap::new(),
            sessions: Vec::new(),
            open: HashMap::new(),
            latest_open: HashMap::new(),
            triggers: Vec::new(),
            report: EvalReport {
                store: layout.store_id.clone(),
                options: options.clone(),
                ..Default::default()
            },
            first_t: None,
            last_t: 0,
            hits: 0,
            samples: 0,
            position_errors: Vec::new(),
            settled_n: (0, 0),
            bound: [0; 2],
        }
    }

    /// Every event the engine has queued.
    fn drain(&mut self, engine: &mut Engine) {
        while let Some(ev) = engine.poll_event() {
            if let Some(ev) = ObservedEvent::from_engine(&ev) {
                self.event(&ev);
            }
        }
    }

    /// One event: opens or closes a session, or notes a trigger.
    fn event(&mut self, ev: &ObservedEvent) {
        let (t, person) = (ev.time, ev.person);
        match ev.kind {
            ObservedKind::ZoneEnter(zone) => {
                let i = self.sessions.len();
                self.sessions.push(Session {
                    person,
                    zone,
                    enter: t,
                    exit: None,
                });
                self.open.insert((person, zone), i);
                self.latest_open.entry(person).or_default().push(i);
            }
            ObservedKind::ZoneExit(zone) => {
                if let Some(i) = self.open.remove(&(person, zone)) {
                    if let Some(s) = self.sessions.get_mut(i) {
                        s.exit = Some(t);
                    }
                    if let Some(v) = self.latest_open.get_mut(&person) {
                        v.retain(|&j| j != i);
                    }
                }
            }
            ObservedKind::CampaignTrigger(campaign) => self.triggers.push((campaign.0, person)),
        }
    }

    /// One record (its time already in `first_t` / `last_t`): identities from `device` lines,
    /// visits and zone-accuracy samples from `truth` lines. `locate` also measures the position
    /// error (only meaningful when `engine` replayed the sightings).
    fn record(&mut self, engine: &mut Engine, record: &Record, locate: bool) {
        let Some(t) = record.time() else { return };
        match record {
            Record::Sighting(_) => self.report.sightings += 1,
            Record::Device(d) => self.device(engine, d, t),
            Record::Truth(g) => self.truth(engine, g, t, locate),
            Record::Header(_) => {}
        }
    }

    fn device(&mut self, engine: &mut Engine, d: &DeviceRecord, t: u64) {
        let ids = &mut self.ids;
        let idx = ids.len();
        if let Some(&prev) = self.id_by_device.get(&d.device) {
            if let Some(p) = ids.get_mut(prev) {
                close_identity(p, t);
            }
        }
        let device = device_evidence(d);
        let engine_person = device.map(|ev| engine.person_for(&ev, Timestamp(t)));
        if let Some(p) = engine_person {
            self.id_by_engine.insert(p, idx);
        }
        ids.push(IdentityTruth {
            device,
            kind: d.kind,
            opted_in: d.opted_in,
            from: t,
            to: None,
            engine_person,
            current: None,
            visits: Vec::new(),
        });
        self.id_by_device.insert(d.device, idx);
        let v = self.ids_by_person.entry(d.person).or_default();
        v.retain(|&i| ids.get(i).is_some_and(|i| i.to.is_none()));
        v.push(idx);
    }

    fn truth(&mut self, engine: &mut Engine, g: &TruthRecord, t: u64, locate: bool) {
        let zone = g.zone.as_deref().and_then(|id| {
            self.zone_ids
                .iter()
                .position(|z| z == id)
                .map(|i| ZoneIdx(i as u16))
        });
        let Some(list) = self.ids_by_person.get(&g.person) else {
            return;
        };
        let settled = self
            .first_t
            .is_some_and(|f| t >= f + (self.options.settle_s * 1000.0) as u64);
        for &i in list {
            let Some(idt) = self.ids.get_mut(i) else {
                continue;
            };
            if idt.to.is_some() {
                continue;
            }
            if settled && !g.left && !g.change {
                if locate {
                    if let Some(loc) = idt.device.and_then(|ev| engine.locate(&ev, Timestamp(t))) {
                        let (dx, dy) = (loc.position.x - g.x, loc.position.y - g.y);
                        self.position_errors
                            .push(f64::from((dx * dx + dy * dy).sqrt()));
                    }
                }
                self.samples += 1;
                let engine_zone = idt
                    .engine_person
                    .and_then(|p| self.latest_open.get(&p))
                    .and_then(|v| v.last())
                    .and_then(|&s| self.sessions.get(s))
                    .map(|s| s.zone);
                if engine_zone == zone {
                    self.hits += 1;
                }
                let since = idt.current.map_or(0, |(_, start)| t.saturating_sub(start));
                if since >= SETTLED_MS {
                    self.settled_n.0 += 1;
                    self.settled_n.1 += u64::from(engine_zone == zone);
                }
                for (k, sigma) in [1.0f32, 2.0].into_iter().enumerate() {
                    let (dx, dy) = gaussian_pair(&mut self.oracle_rng);
                    let q = footfall_engine::config::Point {
                        x: g.x + sigma * dx,
                        y: g.y + sigma * dy,
                    };
                    let oz = self.plan.zone_at(q).map(|z| ZoneIdx(z as u16));
                    if let Some(b) = self.bound.get_mut(k) {
                        *b += u64::from(oz == zone);
                    }
                }
            }
            if g.left {
                close_identity(idt, t);
                continue;
            }
            match idt.current {
                Some((z, _)) if z == zone => {}
                Some((z, start)) => {
                    if let Some(z) = z {
                        idt.visits
                            .push(Visit::new(z, start, Some(t), start == idt.from));
                    }
                    idt.current = Some((zone, t));
                }
                None => idt.current = Some((zone, if t <= idt.from + 1000 { idt.from } else { t })),
            }
        }
    }

    /// Closes the books at the last record (open visits and sessions stay open-ended) and
    /// matches sessions to visits.
    fn finish(self, layout: &StoreLayout, engine_config: &EngineConfig) -> EvalReport {
        let Scorer {
            options,
            mut ids,
            id_by_engine,
            sessions,
            triggers,
            mut report,
            first_t,
            last_t,
            hits,
            samples,
            position_errors,
            settled_n,
            bound,
            ..
        } = self;
        for idt in &mut ids {
            if let Some((Some(z), start)) = idt.current.take() {
                idt.visits
                    .push(Visit::new(z, start, None, start == idt.from));
            }
        }
        let min_visit = (options.min_visit_s * 1000.0) as u64;
        for idt in &mut ids {
            merge_detours(&mut idt.visits, min_visit);
        }
        let start = first_t.unwrap_or(0);
        report.seconds = last_t.saturating_sub(start) as f64 / 1000.0;
        report.identities = ids.len() as u64;
        report.unmapped_identities =
            ids.iter().filter(|i| i.engine_person.is_none()).count() as u64;
        report.device_hours = ids
            .iter()
            .map(|i| i.to.unwrap_or(last_t).saturating_sub(i.from) as f64)
            .sum::<f64>()
            / 3_600_000.0;
        report.zone_samples = samples;
        report.position_error = Spread::of(position_errors);
        let ratio = |a: u64, n: u64| if n == 0 { 0.0 } else { a as f64 / n as f64 };
        report.zone_accuracy = ratio(hits, samples);
        report.zone_accuracy_settled = ratio(settled_n.1, settled_n.0);
        report.zone_accuracy_bound_1m = ratio(bound[0], samples);
        report.zone_accuracy_bound_2m = ratio(bound[1], samples);
        report.sessions = sessions.len() as u64;

        // Match sessions to visits.
        let enter_tol = (options.enter_tolerance_s * 1000.0) as u64;
        let exit_tol = (options.exit_tolerance_s * 1000.0) as u64;
        for s in &sessions {
            let Some(idt) = id_by_engine.get(&s.person).and_then(|&i| ids.get_mut(i)) else {
                report.unattributed_sessions += 1;
                continue;
            };
            let s_end = s.exit.unwrap_or(last_t);
            let best = idt
                .visits
                .iter()
                .enumerate()
                .filter(|(_, v)| v.zone == s.zone)
                .filter_map(|(k, v)| {
                    let v_end = v.end.unwrap_or(last_t);
                    // The session must begin during the visit (or just before it).
                    let starts_here =
                        s.enter + enter_tol >= v.start && s.enter < v_end.max(v.start + 1);
                    starts_here.then(|| (k, s_end.min(v_end) as i64 - s.enter.max(v.start) as i64))
                })
                .max_by_key(|&(k, overlap)| (overlap, std::cmp::Reverse(k)));
            match best.and_then(|(k, _)| idt.visits.get_mut(k)) {
                None => report.false_sessions += 1,
                Some(v) => {
                    v.sessions += 1;
                    if v.first_enter.is_none_or(|e| s.enter < e) {
                        v.first_enter = Some(s.enter);
                    }
                    v.last_exit = Some(match (v.last_exit, s.exit) {
                        (Some(Some(a)), Some(b)) => Some(a.max(b)),
                        (Some(None), _) | (_, None) => None,
                        (None, e) => e,
                    });
                }
            }
        }
        let (mut enter, mut exit) = (Vec::new(), Vec::new());
        for idt in &ids {
            for v in &idt.visits {
                report.flaps += u64::from(v.sessions.saturating_sub(1));
                let long = v.end.unwrap_or(last_t).saturating_sub(v.start) >= min_visit;
                if long {
                    report.visits += 1;
                    if v.sessions == 0 {
                        report.missed_sessions += 1;
                    }
                }
                if !long || v.sessions == 0 {
                    continue;
                }
                if let (false, Some(e)) = (v.started_with_identity, v.first_enter) {
                    enter.push(e as i64 - v.start as i64);
                }
                if let Some(end) = v.end {
                    match v.last_exit {
                        Some(Some(x)) => exit.push(x as i64 - end as i64),
                        Some(None) if last_t > end + exit_tol => report.exits_missing += 1,
                        _ => {}
                    }
                }
            }
        }
        report.enter_latency = Latency::of(enter);
        report.exit_latency = Latency::of(exit);
        report.flaps_per_device_hour = if report.device_hours > 0.0 {
            report.flaps as f64 / report.device_hours
        } else {
            0.0
        };
        report.campaigns = score_campaigns(
            layout,
            engine_config,
            &ids,
            &id_by_engine,
            &triggers,
            &options,
        );
        report
    }
}

fn problems(p: &[footfall_engine::config::ConfigProblem]) -> String {
    p.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Visit {
    fn new(zone: ZoneIdx, start: u64, end: Option<u64>, started_with_identity: bool) -> Self {
        Self {
            zone,
            start,
            end,
            started_with_identity,
            sessions: 0,
            first_enter: None,
            last_exit: None,
        }
    }
}

/// Merge visits of one zone separated by less than `max_gap` (a short detour through another
/// zone is a pass-by, not a new visit): an engine that exits and re-enters around such a detour
/// flaps.
fn merge_detours(visits: &mut Vec<Visit>, max_gap: u64) {
    let mut out: Vec<Visit> = Vec::with_capacity(visits.len());
    for v in visits.drain(..) {
        let prev = out.iter_mut().rev().find(|u| u.zone == v.zone);
        if let Some(u) = prev {
            if u.end
                .is_some_and(|end| v.start.saturating_sub(end) < max_gap)
            {
                u.end = v.end;
                continue;
            }
        }
        out.push(v);
    }
    *visits = out;
}

fn close_identity(idt: &mut IdentityTruth, t: u64) {
    if idt.to.is_some() {
        return;
    }
    idt.to = Some(t);
    if let Some((Some(z), start)) = idt.current.take() {
        idt.visits
            .push(Visit::new(z, start, Some(t), start == idt.from));
    }
}

fn replay_sighting(engine: &mut Engine, s: &SightingRecord) {
    let (now, inputs) = to_inputs(s);
    for input in inputs {
        engine.handle(now, input);
    }
}

/// The evidence a `device` ground-truth line's identity shows the engine (best first, like
/// [`evidence`] does for sightings).
fn device_evidence(d: &DeviceRecord) -> Option<DeviceEvidence> {
    let s = SightingRecord {
        t: d.t,
        node: 0,
        addr: Some(d.addr),
        addr_type: Some(d.addr_type),
        kind: Some(d.kind),
        rssi: 0,
        stats: None,
        tx_power: None,
        ibeacon: d.ibeacon,
        altbeacon: None,
        eddystone_uid: d.eddystone_uid,
        eid: None,
        short_hash: None,
        hr: None,
        adv: None,
    };
    evidence(&s)
}

fn score_campaigns(
    layout: &StoreLayout,
    config: &EngineConfig,
    ids: &[IdentityTruth],
    id_by_engine: &HashMap<PersonId, usize>,
    triggers: &[(u16, PersonId)],
    options: &EvalOptions,
) -> Vec<CampaignScore> {
    let tol = (options.dwell_tolerance_s * 1000.0) as u64;
    let last_end = ids
        .iter()
        .flat_map(|i| i.visits.iter())
        .filter_map(|v| v.end)
        .max()
        .unwrap_or(0);
    config
        .campaigns
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let mut score = CampaignScore {
                id: c.id.clone(),
                ..Default::default()
            };
            let fired: HashSet<usize> = triggers
                .iter()
                .filter(|(k, _)| usize::from(*k) == ci)
                .filter_map(|(_, p)| id_by_engine.get(p).copied())
                .collect();
            score.triggers = triggers
                .iter()
                .filter(|(k, _)| usize::from(*k) == ci)
                .count() as u64;
            score.scored = c.hours.is_none() && c.days.is_empty() && c.engagement.is_none();
            if !score.scored {
                return score;
            }
            let zone = layout
                .zones
                .iter()
                .position(|z| z.id == c.zone)
                .map(|i| ZoneIdx(i as u16));
            let need = u64::from(c.min_dwell_s) * 1000;
            for (i, idt) in ids.iter().enumerate() {
                let kind = crate::convert::device_kind(Some(idt.kind));
                let qualifies = (c.audience == Audience::Anyone || idt.opted_in)
                    && (c.device_kinds.is_empty() || c.device_kinds.contains(&kind));
                let longest = idt
                    .visits
                    .iter()
                    .filter(|v| Some(v.zone) == zone)
                    .map(|v| {
                        v.end
                            .unwrap_or(last_end.max(v.start))
                            .saturating_sub(v.start)
                    })
                    .max()
                    .unwrap_or(0);
                let should = qualifies && longest >= need + tol;
                let should_not = !qualifies || longest + tol < need;
                let did = fired.contains(&i);
                if should {
                    score.should_fire += 1;
                    if did {
                        score.fired += 1;
                    } else {
                        score.missed += 1;
                    }
                } else if should_not && did {
                    score.should_not_have_fired += 1;
                }
            }
            score
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_detours_merge_into_one_visit() {
        let (a, b) = (ZoneIdx(0), ZoneIdx(1));
        let mut v = vec![
            Visit::new(a, 0, Some(10_000), true),
            Visit::new(b, 10_000, Some(13_000), false),
            Visit::new(a, 13_000, Some(30_000), false),
            Visit::new(b, 30_000, Some(50_000), false),
            Visit::new(a, 50_000, None, false),
        ];
        merge_detours(&mut v, 5_000);
        let spans: Vec<(u16, u64, Option<u64>)> =
            v.iter().map(|v| (v.zone.0, v.start, v.end)).collect();
        assert_eq!(
            spans,
            vec![
                (0, 0, Some(30_000)),
                (1, 10_000, Some(13_000)),
                (1, 30_000, Some(50_000)),
                (0, 50_000, None)
            ]
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::of((1..=100).collect());
        assert_eq!((l.p50_ms, l.p95_ms, l.n), (Some(50), Some(95), 100));
        assert_eq!(Latency::of(vec![]).p95_ms, None);
        assert_eq!(Latency::of(vec![7]).p50_ms, Some(7));
    }
}
