//! Logical model -> priority tiers -> weighted pick among healthy, untried targets
//! (design.md section 2, "Rules"). Pure and allocation-free per pick; the RNG is
//! passed in so tests are deterministic.

use crate::config::TargetConfig;
use crate::limits::quota::{self, Quota};
use crate::params::Params;
use crate::telemetry::ModelSeries;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Target {
    /// Index into `Runtime::upstreams`.
    pub upstream: usize,
    /// Model name sent upstream, and the same pre-encoded as a JSON string for the splice.
    pub model: String,
    pub model_json: Bytes,
    pub weight: u32,
    pub priority: u32,
    /// Request parameter overrides; `None` for most targets (plain splice).
    pub params: Option<Arc<Params>>,
    /// Budget of requests and tokens (`quota`); its state outlives reloads.
    pub quota: Option<Arc<Quota>>,
    /// Identity for session stickiness: a hash of the upstream's name and the
    /// model, so it survives reloads that add or reorder upstreams.
    pub id: u64,
}

#[derive(Debug)]
pub struct ModelRoute {
    /// The logical model name (shared by every request's context, not copied).
    pub name: Arc<str>,
    /// Sorted by priority (stable, so file order breaks ties).
    pub targets: Vec<Target>,
    tiers: Vec<Range<usize>>,
    /// This model's metric series, resolved on first use.
    pub series: ModelSeries,
}

impl ModelRoute {
    pub fn new(name: &str, configs: &[TargetConfig]) -> Self {
        let mut targets: Vec<Target> = configs
            .iter()
            .map(|t| Target {
                upstream: t.upstream,
                model_json: Bytes::from(serde_json::Value::from(t.model.as_str()).to_string()),
                model: t.model.clone(),
                weight: t.weight.max(1),
                priority: t.priority,
                params: Params::new(&t.params).map(Arc::new),
                quota: t
                    .quota
                    .clone()
                    .map(|q| Arc::new(Quota::new(q, quota::now_s()))),
                id: key_hash(format!("{}\0{}", t.upstream, t.model).as_bytes()),
            })
            .collect();
        targets.sort_by_key(|t| t.priority);
        let mut tiers: Vec<Range<usize>> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match tiers.last_mut() {
                Some(r) if targets[r.start].priority == t.priority => r.end = i + 1,
                _ => tiers.push(i..i + 1),
            }
        }
        // Served-by is always one of the targets' upstreams.
        let upstreams = targets.iter().map(|t| t.upstream + 1).max().unwrap_or(0);
        ModelRoute {
            name: Arc::from(name),
            targets,
            tiers,
            series: ModelSeries::new(upstreams),
        }
    }

    /// Give each target its stickiness identity from its upstream's name.
    pub fn name_targets<'a>(&mut self, upstream_name: impl Fn(usize) -> &'a str) {
        for t in &mut self.targets {
            t.id = key_hash(format!("{}\0{}", upstream_name(t.upstream), t.model).as_bytes());
        }
    }

    /// Keep the quota usage of the targets `previous` also had (same
    /// upstream name and model), after a reload.
    pub fn carry_quotas(&mut self, previous: &ModelRoute) {
        let now = quota::now_s();
        for t in &mut self.targets {
            let old = previous.targets.iter().find(|o| o.id == t.id);
            if let (Some(q), Some(old)) = (&t.quota, old.and_then(|o| o.quota.as_ref())) {
                // Unchanged: the same state (requests in flight count into it).
                t.quota = Some(if old.cfg == q.cfg {
                    old.clone()
                } else {
                    Arc::new(old.carried(q.cfg.clone(), now))
                });
            }
        }
    }

    /// [`Self::next`] for a request with a session key (its [`key_hash`]):
    /// inside the tier, weighted rendezvous hashing instead of a random pick,
    /// so a session keeps its target while that target is usable, and adding
    /// or losing a target moves only the sessions that were on it.
    pub fn next_sticky(
        &self,
        tried: TriedSet,
        healthy: impl Fn(&Target) -> bool,
        session: u64,
    ) -> Option<usize> {
        for pass_healthy_only in [true, false] {
            for tier in &self.tiers {
                let best = tier
                    .clone()
                    .filter(|&i| {
                        !tried.contains(i) && (!pass_healthy_only || healthy(&self.targets[i]))
                    })
                    .map(|i| (rendezvous(session, &self.targets[i]), i))
                    .max_by(|a, b| a.0.total_cmp(&b.0));
                if let Some((_, i)) = best {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The next target to try: the first tier with a healthy untried target, weighted
    /// random inside it; when no healthy untried target is left, untried unhealthy
    /// ones in priority order (fail open: trying beats refusing).
    pub fn next(
        &self,
        tried: TriedSet,
        healthy: impl Fn(&Target) -> bool,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        for pass_healthy_only in [true, false] {
            for tier in &self.tiers {
                let ok = |i: usize| {
                    !tried.contains(i) && (!pass_healthy_only || healthy(&self.targets[i]))
                };
                let total: u64 = tier
                    .clone()
                    .filter(|&i| ok(i))
                    .map(|i| u64::from(self.targets[i].weight))
                    .sum();
                if total == 0 {
                    continue;
                }
                let mut r = rng.u64(0..total);
                for i in tier.clone().filter(|&i| ok(i)) {
                    let w = u64::from(self.targets[i].weight);
                    if r < w {
                        return Some(i);
                    }
                    r -= w;
                }
            }
        }
        None
    }
}

/// A stable 64-bit hash of a session key or target identity (FNV-1a, then
/// a finaliser): the same on every instance and run, unlike std's
/// randomly keyed hasher, so gateways behind one balancer agree.
pub fn key_hash(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    mix(h)
}

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Weighted rendezvous score (highest wins): `-w / ln(u)` with `u` uniform
/// in (0, 1) from the pair's hash, which gives each target a share of
/// sessions proportional to its weight.
fn rendezvous(session: u64, t: &Target) -> f64 {
    let h = mix(session ^ t.id);
    // 53 random bits, never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(t.weight) / u.ln()
}

/// Targets already tried by one request (a model has at most 64 targets; validated).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TriedSet(u64);

impl TriedSet {
    pub fn insert(&mut self, i: usize) {
        self.0 |= 1u64 << (i & 63);
    }
    pub fn contains(&self, i: usize) -> bool {
        self.0 & (1u64 << (i & 63)) != 0
    }
    pub fn len(&self) -> u32 {
        self.0.count_ones()
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(spec: &[(usize, u32, u32)]) -> ModelRoute {
        let cfg: Vec<TargetConfig> = spec
            .iter()
            .map(|&(upstream, priority, weight)| TargetConfig {
                upstream,
                model: format!("m{upstream}"),
                priority,
                weight,
                params: Vec::new(),
                quota: None,
            })
            .collect();
        ModelRoute::new("m", &cfg)
    }

    #[test]
    fn lower_priority_number_first_then_next_tier() {
        let r = route(&[(0, 2, 1), (1, 1, 1)]);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut tried = TriedSet::default();
        let first = r.next(tried, |_| true, &mut rng).unwrap();
        assert_eq!(r.targets[first].upstream, 1);
        tried.insert(first);
        let second = r.next(tried, |_| true, &mut rng).unwrap();
        assert_eq!(r.targets[second].upstream, 0);
        tried.insert(second);
        assert_eq!(r.next(tried, |_| true, &mut rng), None);
    }

    #[test]
    fn sticky_picks_are_stable_weighted_and_move_few_sessions() {
        // Three targets in one tier, weights 1, 1, 2; a fourth tier-2 target.
        let mut r = route(&[(0, 1, 1), (1, 1, 1), (2, 1, 2), (3, 2, 1)]);
        r.name_targets(|i| ["a", "b", "c", "d"][i]);
        let all = |_: &Target| true;
        let mut counts = [0usize; 4];
        for s in 0..20_000u32 {
            let key = key_hash(format!("session-{s}").as_bytes());
            let pick = r.next_sticky(TriedSet::default(), all, key).unwrap();
            assert_eq!(r.next_sticky(TriedSet::default(), all, key), Some(pick));
            counts[pick] += 1;
        }
        assert_eq!(counts[3], 0, "tier 2 only when tier 1 is used up");
        // Shares follow weights (1:1:2) within a few percent.
        for (i, want) in [(0, 5_000.0), (1, 5_000.0), (2, 10_000.0)] {
            let got = counts[i] as f64;
            assert!(
                (got - want).abs() < want * 0.05,
                "target {i}: {got} vs {want}"
            );
        }
        // Losing a target moves only its own sessions.
        let mut moved = 0;
        for s in 0..5_000u32 {
            let key = key_hash(format!("session-{s}").as_bytes());
            let before = r.next_sticky(TriedSet::default(), all, key).unwrap();
            let mut without_b = TriedSet::default();
            without_b.insert(1);
            let after = r.next_sticky(without_b, all, key).unwrap();
            if before != 1 {
                assert_eq!(before, after, "a session not on b kept its target");
            } else {
                moved += 1;
                assert_ne!(after, 1);
            }
        }
        assert!(moved > 0);
        // Unhealthy targets are skipped while a healthy one is left.
        let key = key_hash(b"x");
        let pick = r.next_sticky(TriedSet::default(), all, key).unwrap();
        let other = r
            .next_sticky(TriedSet::default(), |t: &Target| t.upstream != pick, key)
            .unwrap();
        assert_ne!(other, pick);
        assert_eq!(key_hash(b"session-1"), key_hash(b"session-1"));
        assert_ne!(key_hash(b"session-1"), key_hash(b"session-2"));
    }

    #[test]
    fn weights_split_traffic() {
        let r = route(&[(0, 1, 3), (1, 1, 1)]);
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 40_000;
        let a = (0..n)
            .filter(|_| {
                r.targets[r.next(TriedSet::default(), |_| true, &mut rng).unwrap()].upstream == 0
            })
            .count();
        let share = a as f64 / n as f64;
        assert!((0.73..0.77).contains(&share), "share {share}");
    }

    #[test]
    fn unhealthy_skipped_but_tried_last_fail_open() {
        let r = route(&[(0, 1, 1), (1, 2, 1)]);
        let mut rng = fastrand::Rng::with_seed(3);
        let healthy = |t: &Target| t.upstream != 0;
        let mut tried = TriedSet::default();
        let a = r.next(tried, healthy, &mut rng).unwrap();
        assert_eq!(
            r.targets[a].upstream, 1,
            "healthy lower tier before unhealthy higher tier"
        );
        tried.insert(a);
        let b = r.next(tried, healthy, &mut rng).unwrap();
        assert_eq!(
            r.targets[b].upstream, 0,
            "unhealthy still tried when nothing else is left"
        );
        tried.insert(b);
        assert_eq!(tried.len(), 2);
        assert_eq!(r.next(tried, |_| false, &mut rng), None);
    }

    #[test]
    fn model_json_is_escaped() {
        let cfg = [TargetConfig {
            upstream: 0,
            model: "a\"b".into(),
            priority: 1,
            weight: 1,
            params: Vec::new(),
            quota: None,
        }];
        assert_eq!(
            &ModelRoute::new("m", &cfg).targets[0].model_json[..],
            br#""a\"b""#
        );
    }
}
