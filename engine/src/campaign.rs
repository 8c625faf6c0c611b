//! Campaign rules: prepared conditions, the per-person frequency-cap ledger, and the global
//! trigger rate limiter. All fixed-size after construction.

use crate::config::{parse_hhmm, Audience, CampaignConfig, Weekday};
use crate::event::EngagementLevel;
use crate::input::DeviceKind;

/// A campaign with its conditions digested.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) zone: u16,
    pub(crate) min_dwell_ms: u64,
    pub(crate) audience: Audience,
    /// Empty = any.
    pub(crate) kinds: Vec<DeviceKind>,
    pub(crate) engagement: Option<EngagementLevel>,
    /// (from, to) minutes of the local day.
    pub(crate) hours: Option<(u16, u16)>,
    /// Bit i = weekday i (Mon = 0); 0 = every day.
    pub(crate) days: u8,
    pub(crate) cap: Option<(u32, u64)>,
    pub(crate) cooldown_ms: u64,
    pub(crate) priority: i32,
}

impl Rule {
    pub(crate) fn new(c: &CampaignConfig, zone: u16) -> Self {
        let days = c.days.iter().fold(0u8, |m, d| {
            m | 1
                << match d {
                    Weekday::Mon => 0,
                    Weekday::Tue => 1,
                    Weekday::Wed => 2,
                    Weekday::Thu => 3,
                    Weekday::Fri => 4,
                    Weekday::Sat => 5,
                    Weekday::Sun => 6,
                }
        });
        Self {
            zone,
            min_dwell_ms: u64::from(c.min_dwell_s) * 1000,
            audience: c.audience,
            kinds: c.device_kinds.clone(),
            engagement: c.engagement,
            hours: c
                .hours
                .as_ref()
                .and_then(|h| Some((parse_hhmm(&h.from)?, parse_hhmm(&h.to)?))),
            days,
            cap: c
                .cap
                .map(|cap| (cap.count, cap.period_s.saturating_mul(1000))),
            cooldown_ms: c.cooldown_s.saturating_mul(1000),
            priority: c.priority,
        }
    }

    /// Whether the static conditions hold (caps and rate are checked separately).
    pub(crate) fn matches(
        &self,
        opted_in: bool,
        kind: DeviceKind,
        level: Option<EngagementLevel>,
        local: LocalTime,
    ) -> bool {
        if self.audience == Audience::OptedIn && !opted_in {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return false;
        }
        if let Some(min) = self.engagement {
            if level.is_none_or(|l| l < min) {
                return false;
            }
        }
        if self.days != 0 && self.days & (1 << local.weekday) == 0 {
            return false;
        }
        if let Some((from, to)) = self.hours {
            let m = local.minute;
            let inside = if from <= to {
                m >= from && m < to
            } else {
                m >= from || m < to
            };
            if !inside {
                return false;
            }
        }
        true
    }
}

/// Store-local time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalTime {
    /// Minute of the day, 0..1440.
    pub(crate) minute: u16,
    /// Monday = 0 … Sunday = 6.
    pub(crate) weekday: u8,
}

impl LocalTime {
    pub(crate) fn at(utc_ms: u64, offset_min: i32) -> Self {
        let local_min = (utc_ms / 60_000) as i64 + i64::from(offset_min);
        let minute = local_min.rem_euclid(1440) as u16;
        let day = local_min.div_euclid(1440);
        // 1970-01-01 was a Thursday (= 3 with Monday = 0).
        let weekday = (day + 3).rem_euclid(7) as u8;
        Self { minute, weekday }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct CapRecord {
    key: u64,
    window_start: u64,
    last_fire: u64,
    count: u32,
    used: bool,
}

const WAYS: usize = 4;

/// Per (person, campaign) cap and cooldown records: a 4-way set-associative table. When a set
/// is full the record that fired longest ago is replaced (and counted).
#[derive(Debug)]
pub(crate) struct Ledger {
    records: Vec<CapRecord>,
    sets: usize,
    pub(crate) evictions: u64,
}

/// A ledger verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    Capped,
    Cooling,
}

impl Ledger {
    pub(crate) fn new(capacity: usize) -> Self {
        let sets = (capacity.max(WAYS) / WAYS).next_power_of_two();
        Self {
            records: vec![CapRecord::default(); sets * WAYS],
            sets,
            evictions: 0,
        }
    }

    fn set(&mut self, key: u64) -> &mut [CapRecord] {
        let base = (key as usize & (self.sets - 1)) * WAYS;
        self.records.get_mut(base..base + WAYS).unwrap_or(&mut [])
    }

    /// Checks and, if allowed, records a trigger for `key` (hash of person ‖ campaign).
    pub(crate) fn check(&self, key: u64, now: u64, rule: &Rule) -> Verdict {
        let base = (key as usize & (self.sets - 1)) * WAYS;
        let Some(set) = self.records.get(base..base + WAYS) else {
            return Verdict::Allowed;
        };
        let Some(r) = set.iter().find(|r| r.used && r.key == key) else {
            return Verdict::Allowed;
        };
        if rule.cooldown_ms > 0 && now.saturating_sub(r.last_fire) < rule.cooldown_ms {
            return Verdict::Cooling;
        }
        if let Some((count, period)) = rule.cap {
            if now.saturating_sub(r.window_start) < period && r.count >= count {
                return Verdict::Capped;
            }
        }
        Verdict::Allowed
    }

    /// Records a trigger (after `check` said `Allowed`).
    pub(crate) fn record(&mut self, key: u64, now: u64, rule: &Rule) {
        let period = rule.cap.map_or(u64::MAX, |(_, p)| p);
        let mut evicted = false;
        let set = self.set(key);
        let idx = set
            .iter()
            .position(|r| r.used && r.key == key)
            .or_else(|| set.iter().position(|r| !r.used))
            .or_else(|| {
                evicted = true;
                set.iter()
                    .enumerate()
                    .min_by_key(|(_, r)| r.last_fire)
                    .map(|(i, _)| i)
            });
        let Some(r) = idx.and_then(|i| set.get_mut(i)) else {
            return;
        };
        if !(r.used && r.key == key) {
            *r = CapRecord {
                key,
                window_start: now,
                last_fire: now,
                count: 0,
                used: true,
            };
        }
        if now.saturating_sub(r.window_start) >= period {
            r.window_start = now;
            r.count = 0;
        }
        r.count = r.count.saturating_add(1);
        r.last_fire = now;
        if evicted {
            self.evictions += 1;
        }
    }
}

/// Global token bucket for campaign triggers.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    last: u64,
}

impl RateLimiter {
    pub(crate) fn new(rate_per_s: f32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate_per_ms: f64::from(rate_per_s) / 1000.0,
            burst,
            tokens: burst,
            last: 0,
        }
    }
    pub(crate) fn try_take(&mut self, now: u64) -> bool {
        if self.rate_per_ms <= 0.0 {
            return true;
        }
        let dt = now.saturating_sub(self.last) as f64;
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate_per_ms).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CapConfig, HoursConfig};

    fn rule(cfg: impl FnOnce(&mut CampaignConfig)) -> Rule {
        let mut c = CampaignConfig {
            id: "c".into(),
            zone: "z".into(),
            min_dwell_s: 0,
            audience: Audience::Anyone,
            device_kinds: vec![],
            engagement: None,
            hours: None,
            days: vec![],
            cap: None,
            cooldown_s: 0,
            priority: 0,
            expiry_s: 300,
            payload: Default::default(),
        };
        cfg(&mut c);
        Rule::new(&c, 0)
    }

    #[test]
    fn local_time_and_weekday() {
        // 2026-11-23 is a Monday; 13:05 UTC.
        let t = 1_795_439_100_000u64;
        let lt = LocalTime::at(t, 0);
        assert_eq!((lt.minute, lt.weekday), (13 * 60 + 5, 0));
        let cet = LocalTime::at(t, 60);
        assert_eq!(cet.minute, 14 * 60 + 5);
        let late = LocalTime::at(t, 11 * 60); // 00:05 Tuesday
        assert_eq!((late.minute, late.weekday), (5, 1));
    }

    #[test]
    fn hours_wrap_past_midnight_and_days_filter() {
        let r = rule(|c| {
            c.hours = Some(HoursConfig {
                from: "22:00".into(),
                to: "02:00".into(),
            });
            c.days = vec![Weekday::Mon];
        });
        let at = |minute, weekday| LocalTime { minute, weekday };
        assert!(r.matches(false, DeviceKind::Phone, None, at(23 * 60, 0)));
        assert!(r.matches(false, DeviceKind::Phone, None, at(60, 0)));
        assert!(!r.matches(false, DeviceKind::Phone, None, at(12 * 60, 0)));
        assert!(!r.matches(false, DeviceKind::Phone, None, at(23 * 60, 1)));
    }

    #[test]
    fn audience_kind_and_engagement_conditions() {
        let r = rule(|c| {
            c.audience = Audience::OptedIn;
            c.device_kinds = vec![DeviceKind::Wearable];
            c.engagement = Some(EngagementLevel::Elevated);
        });
        let lt = LocalTime {
            minute: 0,
            weekday: 0,
        };
        assert!(!r.matches(false, DeviceKind::Wearable, Some(EngagementLevel::High), lt));
        assert!(!r.matches(true, DeviceKind::Phone, Some(EngagementLevel::High), lt));
        assert!(!r.matches(true, DeviceKind::Wearable, Some(EngagementLevel::Calm), lt));
        assert!(!r.matches(true, DeviceKind::Wearable, None, lt));
        assert!(r.matches(
            true,
            DeviceKind::Wearable,
            Some(EngagementLevel::Elevated),
            lt
        ));
    }

    #[test]
    fn cap_and_cooldown() {
        let r = rule(|c| {
            c.cap = Some(CapConfig {
                count: 2,
                period_s: 100,
            });
            c.cooldown_s = 10;
        });
        let mut l = Ledger::new(16);
        assert_eq!(l.check(7, 0, &r), Verdict::Allowed);
        l.record(7, 0, &r);
        assert_eq!(l.check(7, 5_000, &r), Verdict::Cooling);
        assert_eq!(l.check(7, 10_000, &r), Verdict::Allowed);
        l.record(7, 10_000, &r);
        assert_eq!(l.check(7, 50_000, &r), Verdict::Capped);
        assert_eq!(l.check(7, 100_000, &r), Verdict::Allowed);
        assert_eq!(l.check(8, 50_000, &r), Verdict::Allowed);
    }

    #[test]
    fn token_bucket() {
        let mut rl = RateLimiter::new(1.0, 2);
        assert!(rl.try_take(0));
        assert!(rl.try_take(0));
        assert!(!rl.try_take(0));
        assert!(rl.try_take(1000));
        assert!(RateLimiter::new(0.0, 1).try_take(0));
    }
}
