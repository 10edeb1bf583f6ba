//! The simulator model: every call's outcome and timings are a pure function of
//! (seed, phone, attempt), so a campaign's result can be computed independently and compared.

use std::{fmt, str::FromStr, time::Duration};

use waihu_events::pb;
use waihu_telephony::hangup;

/// How a simulated call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        ring_ms: u64,
        talk_ms: u64,
    },
    /// Rang until our ring timeout: we cancel (NO_ANSWER, SIP 487).
    NoAnswer {
        ring_ms: u64,
    },
    /// 486 Busy Here, before ringing.
    Busy,
    /// Rang, then 603 Decline.
    Rejected {
        ring_ms: u64,
    },
    /// 404 Not Found: the number does not exist.
    Unallocated,
    /// 503 Service Unavailable somewhere on the route.
    TemporaryFailure,
}

impl Outcome {
    /// The normalised hangup cause and whether the callee answered.
    pub fn cause(&self) -> (pb::HangupCause, bool) {
        match self {
            Outcome::Answered { .. } => (hangup::from_sip(200), true),
            Outcome::NoAnswer { .. } => (hangup::cause(19, "sip:487"), false),
            Outcome::Busy => (hangup::from_sip(486), false),
            Outcome::Rejected { .. } => (hangup::from_sip(603), false),
            Outcome::Unallocated => (hangup::from_sip(404), false),
            Outcome::TemporaryFailure => (hangup::from_sip(503), false),
        }
    }

    pub fn ring_ms(&self) -> u64 {
        match self {
            Outcome::Answered { ring_ms, .. }
            | Outcome::NoAnswer { ring_ms }
            | Outcome::Rejected { ring_ms } => *ring_ms,
            _ => 0,
        }
    }

    pub fn talk_ms(&self) -> u64 {
        match self {
            Outcome::Answered { talk_ms, .. } => *talk_ms,
            _ => 0,
        }
    }
}

/// Relative weights of the outcomes (any scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub answered: f64,
    pub no_answer: f64,
    pub busy: f64,
    pub rejected: f64,
    pub unallocated: f64,
    pub temporary_failure: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            answered: 45.0,
            no_answer: 20.0,
            busy: 15.0,
            rejected: 7.0,
            unallocated: 5.0,
            temporary_failure: 8.0,
        }
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `answered=45,no_answer=20,busy=15,rejected=7,unallocated=5,temporary_failure=8`; omitted
    /// outcomes get weight 0.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut m = Mix {
            answered: 0.0,
            no_answer: 0.0,
            busy: 0.0,
            rejected: 0.0,
            unallocated: 0.0,
            temporary_failure: 0.0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not name=weight"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("weight of {k} is not a number"))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("weight of {k} must be 0 or more"));
            }
            match k.trim() {
                "answered" => m.answered = v,
                "no_answer" => m.no_answer = v,
                "busy" => m.busy = v,
                "rejected" => m.rejected = v,
                "unallocated" => m.unallocated = v,
                "temporary_failure" => m.temporary_failure = v,
                other => return Err(format!("unknown outcome {other:?}")),
            }
        }
        if m.total() <= 0.0 {
            return Err("at least one weight must be positive".into());
        }
        Ok(m)
    }
}

impl Mix {
    fn total(&self) -> f64 {
        self.answered
            + self.no_answer
            + self.busy
            + self.rejected
            + self.unallocated
            + self.temporary_failure
    }
}

/// An inclusive range of milliseconds, `min-max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsRange(pub u64, pub u64);

impl FromStr for MsRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u64 = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not min-max milliseconds"))?;
        let b: u64 = b
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not min-max milliseconds"))?;
        if a > b {
            return Err(format!("{s:?}: min is above max"));
        }
        Ok(MsRange(a, b))
    }
}

impl fmt::Display for MsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[derive(Debug, Clone)]
pub struct Simulator {
    pub seed: u64,
    pub mix: Mix,
    /// Ring time before answer or decline.
    pub ring_ms: MsRange,
    pub talk_ms: MsRange,
    /// Our ring timeout: an unanswered call is cancelled after this long.
    pub no_answer_timeout_ms: u64,
    /// Call set-up (INVITE to first provisional response).
    pub setup_ms: MsRange,
    /// Simulated time runs this many times faster than wall time; 0 = no waiting at all.
    pub time_scale: f64,
}

impl Default for Simulator {
    fn default() -> Self {
        Simulator {
            seed: 42,
            mix: Mix::default(),
            ring_ms: MsRange(2_000, 15_000),
            talk_ms: MsRange(5_000, 180_000),
            no_answer_timeout_ms: 30_000,
            setup_ms: MsRange(200, 1_500),
            time_scale: 1.0,
        }
    }
}

/// A small, fast, well-mixed 64-bit hash chain (FNV-1a into SplitMix64): not cryptographic,
/// only reproducible across machines and builds.
struct Draws(u64);

impl Draws {
    fn new(seed: u64, phone: &str, attempt: u32) -> Draws {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed
            .to_le_bytes()
            .iter()
            .chain(phone.as_bytes())
            .chain(&attempt.to_le_bytes())
        {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Draws(h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn within(&mut self, r: MsRange) -> u64 {
        r.0 + self.next() % (r.1 - r.0 + 1)
    }
}

impl Simulator {
    /// A draw for what is said in the `attempt`-th call to `phone` (the dialogue of an
    /// answered call), independent of its outcome's draws.
    pub fn conversation_draw(&self, phone: &str, attempt: u32) -> u64 {
        Draws::new(self.seed ^ 0xd1a1_0600, phone, attempt).next()
    }

    /// The outcome of calling `phone` for the `attempt`-th time (1-based).
    pub fn outcome(&self, phone: &str, attempt: u32) -> Outcome {
        let mut d = Draws::new(self.seed, phone, attempt);
        let m = &self.mix;
        let mut x = d.unit() * m.total();
        let ring = d.within(self.ring_ms);
        let talk = d.within(self.talk_ms);
        for (w, o) in [
            (
                m.answered,
                Outcome::Answered {
                    ring_ms: ring,
                    talk_ms: talk,
                },
            ),
            (
                m.no_answer,
                Outcome::NoAnswer {
                    ring_ms: self.no_answer_timeout_ms,
                },
            ),
            (m.busy, Outcome::Busy),
            (m.rejected, Outcome::Rejected { ring_ms: ring }),
            (m.unallocated, Outcome::Unallocated),
            (m.temporary_failure, Outcome::TemporaryFailure),
        ] {
            if x < w {
                return o;
            }
            x -= w;
        }
        Outcome::TemporaryFailure
    }

    /// Set-up time of a call (also deterministic).
    pub fn setup_ms(&self, phone: &str, attempt: u32) -> u64 {
        let mut d = Draws::new(self.seed ^ 0x5e7u64, phone, attempt);
        d.within(self.setup_ms)
    }

    /// Wall-clock time for `ms` of simulated time.
    pub fn wall(&self, ms: u64) -> Duration {
        if self.time_scale <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(ms as f64 / 1000.0 / self.time_scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_deterministic_and_depend_on_every_input() {
        let s = Simulator::default();
        assert_eq!(
            s.outcome("+8613800000001", 1),
            s.outcome("+8613800000001", 1)
        );
        let other_seed = Simulator {
            seed: 7,
            ..Simulator::default()
        };
        let phones: Vec<String> = (0..200).map(|i| format!("+86138{i:08}")).collect();
        let differs = |f: &dyn Fn(&str) -> bool| phones.iter().any(|p| f(p));
        assert!(differs(&|p| s.outcome(p, 1) != s.outcome(p, 2)));
        assert!(differs(&|p| s.outcome(p, 1) != other_seed.outcome(p, 1)));
    }

    #[test]
    fn the_mix_is_honoured_over_many_calls() {
        let s = Simulator::default();
        let n = 20_000;
        let answered = (0..n)
            .filter(|i| {
                matches!(
                    s.outcome(&format!("+86139{i:08}"), 1),
                    Outcome::Answered { .. }
                )
            })
            .count();
        let share = answered as f64 / n as f64;
        assert!((0.43..0.47).contains(&share), "answered share {share}");
        let only_busy: Mix = "busy=1".parse().expect("mix");
        let s = Simulator {
            mix: only_busy,
            ..Simulator::default()
        };
        assert!((0..100).all(|i| s.outcome(&format!("+1{i}"), 1) == Outcome::Busy));
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        assert!("answered=x".parse::<Mix>().is_err());
        assert!("answered=0".parse::<Mix>().is_err());
        assert!("happy=3".parse::<Mix>().is_err());
        assert!("9-3".parse::<MsRange>().is_err());
        assert_eq!("3-9".parse::<MsRange>(), Ok(MsRange(3, 9)));
    }

    #[test]
    fn causes_follow_the_sip_mapping() {
        assert_eq!(Outcome::Busy.cause().0.q850, 17);
        assert_eq!(Outcome::Unallocated.cause().0.q850, 1);
        assert_eq!(Outcome::Rejected { ring_ms: 1 }.cause().0.q850, 21);
        assert_eq!(Outcome::NoAnswer { ring_ms: 1 }.cause().0.q850, 19);
        assert_eq!(Outcome::TemporaryFailure.cause().0.q850, 41);
        assert!(
            Outcome::Answered {
                ring_ms: 1,
                talk_ms: 1
            }
            .cause()
            .1
        );
    }
}
