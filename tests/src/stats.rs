//! The little statistics the rate properties need: a confidence interval
//! for a measured rate, and whether a count is too high for a bound.

/// A rate measured as `events` in `trials`, with its 95 % Wilson score
/// interval (sound at zero events, unlike the normal approximation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Events counted.
    pub events: u64,
    /// Trials they were counted in.
    pub trials: f64,
}

impl Rate {
    /// The measured rate.
    pub fn value(&self) -> f64 {
        self.events as f64 / self.trials.max(1.0)
    }

    /// The 95 % confidence interval, `(low, high)`.
    pub fn interval(&self) -> (f64, f64) {
        let n = self.trials.max(1.0);
        let p = self.value();
        let z = 1.96f64;
        let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }

    /// The chance of counting at least this many events if the true rate
    /// were `bound` (a Poisson tail: the events are rare and independent
    /// enough). Below 10⁻³, the rate exceeds the bound.
    pub fn chance_under(&self, bound: f64) -> f64 {
        let lambda = bound * self.trials;
        if self.events == 0 {
            return 1.0;
        }
        // P(X ≥ k) = 1 − Σ_{i<k} e^{−λ} λ^i / i!
        let mut term = (-lambda).exp();
        let mut below = 0.0;
        for i in 0..self.events {
            below += term;
            term *= lambda / (i + 1) as f64;
        }
        (1.0 - below).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_holds_the_rate_and_zero_events_still_bound_it() {
        let rate = Rate {
            events: 50,
            trials: 1000.0,
        };
        let (low, high) = rate.interval();
        assert!(low < 0.05 && 0.05 < high && low > 0.03 && high < 0.07, "{low} {high}");
        let none = Rate {
            events: 0,
            trials: 1000.0,
        };
        let (low, high) = none.interval();
        assert_eq!(low, 0.0);
        assert!(high > 0.003 && high < 0.005, "{high}");
    }

    #[test]
    fn a_count_far_above_the_bound_is_improbable_and_one_near_it_is_not() {
        let rate = Rate {
            events: 30,
            trials: 1000.0,
        };
        assert!(rate.chance_under(0.01) < 1e-6);
        assert!(rate.chance_under(0.03) > 0.3);
        assert!(rate.chance_under(0.1) > 0.999);
    }
}
