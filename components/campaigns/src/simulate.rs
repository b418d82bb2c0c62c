//! A campaign problem with a known optimum, to measure policies by their regret: shoppers of
//! a few segments (their context: the segment, one-hot), arms whose conversion rates depend
//! on the segment, so that each segment has its own best arm. Regret is expected regret:
//! after each decision, the best rate for the shopper's segment minus the rate of the arm
//! shown, summed over decisions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::policy::Policy;

/// Segments, arms and their conversion rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Conversion rate by segment, then arm.
    pub rates: Vec<Vec<f64>>,
    /// Half-way through, the rates rotate by one arm (each segment's best arm moves).
    pub drift: bool,
}

impl Scenario {
    /// Four segments, five arms: every segment has its own best arm (10–13% conversion),
    /// whose other arms convert at 0.5–3%; arm 4 converts at 9% everywhere: the best on average,
    /// and the best of no segment. A per-arm policy can at best settle on arm 4; a contextual
    /// one can learn each segment's arm.
    pub fn context_dependent(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rates = (0..4)
            .map(|segment| {
                (0..5)
                    .map(|arm| match arm {
                        4 => 0.09,
                        a if a == segment => rng.random_range(0.10..0.13),
                        _ => rng.random_range(0.005..0.03),
                    })
                    .collect()
            })
            .collect();
        Self {
            rates,
            drift: false,
        }
    }

    /// How many segments.
    pub fn segments(&self) -> usize {
        self.rates.len()
    }

    /// The arms' conversion rates for `segment` at decision `t` of `decisions`.
    pub fn rates_at(&self, t: usize, decisions: usize, segment: usize) -> Vec<f64> {
        let mut rates = self.rates[segment].clone();
        if self.drift && t >= decisions / 2 {
            rates.rotate_right(1);
        }
        rates
    }
}

/// Runs `policy` for `decisions` decisions (shoppers and conversions drawn from `seed`);
/// returns the cumulative regret after every `every` decisions (and after the last).
pub fn run(
    scenario: &Scenario,
    mut policy: Policy,
    decisions: usize,
    every: usize,
    seed: u64,
) -> Vec<(usize, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let segments = scenario.segments();
    let mut regret = 0.0;
    let mut curve = Vec::new();
    for t in 0..decisions {
        let segment = rng.random_range(0..segments);
        let x: Vec<f64> = (0..segments)
            .map(|s| f64::from(u8::from(s == segment)))
            .collect();
        let rates = scenario.rates_at(t, decisions, segment);
        let arm = policy.choose(&x, &mut rng);
        let reward = f64::from(u8::from(rng.random_bool(rates[arm])));
        policy.update(arm, &x, reward);
        regret += rates.iter().copied().fold(0.0, f64::max) - rates[arm];
        if (t + 1) % every.max(1) == 0 || t + 1 == decisions {
            curve.push((t + 1, regret));
        }
    }
    curve
}

/// The policies compared: name and a fresh policy for `scenario`.
pub fn contenders(scenario: &Scenario) -> Vec<(&'static str, Policy)> {
    let arms = scenario.rates[0].len();
    vec![
        ("random", Policy::uniform(arms)),
        ("thompson", Policy::thompson(arms)),
        ("linucb", Policy::linucb(arms, scenario.segments())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contextual_beats_per_arm_thompson_which_beats_random() {
        let scenario = Scenario::context_dependent(1);
        let last = |policy| run(&scenario, policy, 20_000, 20_000, 2).last().unwrap().1;
        let regrets: Vec<f64> = contenders(&scenario)
            .into_iter()
            .map(|(_, policy)| last(policy))
            .collect();
        let (random, thompson, linucb) = (regrets[0], regrets[1], regrets[2]);
        assert!(
            thompson < 0.5 * random,
            "thompson {thompson}, random {random}"
        );
        assert!(
            linucb < 0.7 * thompson,
            "linucb {linucb}, thompson {thompson}"
        );
    }
}
