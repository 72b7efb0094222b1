//! [`HedgeLayer`]: the hedging settings, and the state its services share.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tower_layer::Layer;

use super::delay::{Delay, Latencies, Mode, WINDOW};
use super::service::Hedge;
use crate::classify::{Classify, ContractClassifier};
use crate::retry::RetryBudget;

/// The budget of a layer that is given none: hedges for 5% of the requests of the last 10 s,
/// plus one per second.
fn own_budget() -> RetryBudget {
    RetryBudget::new(Duration::from_secs(10), 1, 0.05)
}

/// Sends a second copy of a slow idempotent request, within a budget; see the
/// [module docs](super).
///
/// There is no `new`: hedging is off unless asked for, and the two constructors say when a
/// hedge is sent, [`after`](Self::after) a fixed delay or at a [`percentile`](Self::percentile)
/// of recent latencies. Each builder method changes one setting, in any order.
///
/// # Clone
///
/// Every service the layer makes, and every clone of the layer or of those services, shares one
/// budget and one window of recent latencies, made from the final settings when the layer first
/// makes a service. A builder method returns a layer with state of its own.
#[must_use]
pub struct HedgeLayer<C = ContractClassifier> {
    mode: Mode,
    min_delay: Duration,
    max_delay: Duration,
    min_samples: usize,
    budget: Option<Arc<RetryBudget>>,
    classifier: C,
    shared: Arc<OnceLock<Arc<Shared<C>>>>,
}

/// What a layer's services share: the live delay, the budget and the classifier.
pub(crate) struct Shared<C> {
    pub(crate) delay: Delay,
    pub(crate) budget: Arc<RetryBudget>,
    /// Whether the layer deposits into the budget (only into a budget of its own).
    pub(crate) deposit: bool,
    pub(crate) classifier: C,
}

impl<C: fmt::Debug> fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("delay", &self.delay)
            .field("budget", &self.budget)
            .field("deposit", &self.deposit)
            .field("classifier", &self.classifier)
            .finish()
    }
}

impl HedgeLayer {
    fn with_mode(mode: Mode) -> Self {
        HedgeLayer {
            mode,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(5),
            min_samples: 100,
            budget: None,
            classifier: ContractClassifier,
            shared: Arc::new(OnceLock::new()),
        }
    }

    /// Hedges a request still unanswered `delay` after it was sent.
    ///
    /// Pick a delay near the latency of the slowest few percent of requests: shorter, and most
    /// requests ask for a hedge the budget refuses; longer, and the tail is cut later.
    /// A zero delay sends both copies at once, as long as the budget allows.
    pub fn after(delay: Duration) -> Self {
        HedgeLayer::with_mode(Mode::Fixed(delay))
    }

    /// Hedges a request still unanswered at the `quantile` (0.95 for the 95th percentile) of the
    /// latencies of the last 512 primary attempts, clamped between
    /// [`min_delay`](Self::min_delay) (5 ms) and [`max_delay`](Self::max_delay) (5 s).
    ///
    /// Nothing is hedged until [`min_samples`](Self::min_samples) (100) primaries have been
    /// timed. The percentile is recomputed every 16 samples, so following it costs an atomic
    /// load per request.
    ///
    /// # Panics
    ///
    /// When `quantile` is not strictly between 0 and 1.
    pub fn percentile(quantile: f64) -> Self {
        assert!(
            quantile > 0.0 && quantile < 1.0,
            "HedgeLayer::percentile takes a quantile strictly between 0 and 1, got {quantile}"
        );
        HedgeLayer::with_mode(Mode::Percentile(quantile))
    }
}

impl<C> HedgeLayer<C> {
    fn fresh(mut self) -> Self {
        self.shared = Arc::new(OnceLock::new());
        self
    }

    /// The shortest delay a [`percentile`](HedgeLayer::percentile) may set (default 5 ms); no
    /// effect on a fixed delay.
    ///
    /// # Panics
    ///
    /// [`layer`](Layer::layer) panics when it is longer than [`max_delay`](Self::max_delay).
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self.fresh()
    }

    /// The longest delay a [`percentile`](HedgeLayer::percentile) may set (default 5 s): a
    /// request still unanswered then is hedged however slow recent requests were; no effect on
    /// a fixed delay.
    ///
    /// # Panics
    ///
    /// [`layer`](Layer::layer) panics when it is shorter than [`min_delay`](Self::min_delay).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self.fresh()
    }

    /// How many primaries must be timed before a [`percentile`](HedgeLayer::percentile) delay
    /// is known and hedging starts (default 100); no effect on a fixed delay.
    ///
    /// # Panics
    ///
    /// When `samples` is 0 or more than 512 (the window).
    pub fn min_samples(mut self, samples: usize) -> Self {
        assert!(
            (1..=WINDOW).contains(&samples),
            "HedgeLayer::min_samples must be between 1 and {WINDOW}, got {samples}"
        );
        self.min_samples = samples;
        self.fresh()
    }

    /// The budget hedges draw on instead of one of their own; pass the `Arc` given to
    /// [`RetryLayer::budget`](crate::RetryLayer::budget) to bound retries and hedges together.
    ///
    /// The hedge layer does not deposit into a budget it is given: the retry layer inside it
    /// deposits for every request that reaches it, hedges included. A budget nobody deposits
    /// into allows only its floor.
    pub fn budget(mut self, budget: impl Into<Arc<RetryBudget>>) -> Self {
        self.budget = Some(budget.into());
        self.fresh()
    }

    /// The classifier that decides which answers are good (default [`ContractClassifier`]): an
    /// outcome it calls retryable (a 429, 500, 502, 503 or 504, a timeout, a transport error)
    /// does not win the race. A closure `Fn(Outcome<'_>) -> Class` works too.
    pub fn classifier<C2: Classify>(self, classifier: C2) -> HedgeLayer<C2> {
        HedgeLayer {
            mode: self.mode,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            min_samples: self.min_samples,
            budget: self.budget,
            classifier,
            shared: Arc::new(OnceLock::new()),
        }
    }
}

impl<C: Clone> HedgeLayer<C> {
    fn shared(&self) -> Arc<Shared<C>> {
        self.shared
            .get_or_init(|| {
                assert!(
                    self.min_delay <= self.max_delay,
                    "HedgeLayer::min_delay ({:?}) must not be longer than max_delay ({:?})",
                    self.min_delay,
                    self.max_delay
                );
                let delay = match self.mode {
                    Mode::Fixed(delay) => Delay::Fixed(delay),
                    Mode::Percentile(quantile) => Delay::Percentile(Latencies::new(
                        quantile,
                        self.min_delay,
                        self.max_delay,
                        self.min_samples,
                    )),
                };
                let (budget, deposit) = match &self.budget {
                    Some(budget) => (budget.clone(), false),
                    None => (Arc::new(own_budget()), true),
                };
                Arc::new(Shared {
                    delay,
                    budget,
                    deposit,
                    classifier: self.classifier.clone(),
                })
            })
            .clone()
    }
}

impl<C: Clone> Clone for HedgeLayer<C> {
    fn clone(&self) -> Self {
        HedgeLayer {
            mode: self.mode,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            min_samples: self.min_samples,
            budget: self.budget.clone(),
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for HedgeLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("mode", &self.mode)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("min_samples", &self.min_samples)
            .field("budget", &self.budget)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl<S, C: Clone> Layer<S> for HedgeLayer<C> {
    type Service = Hedge<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::from_shared(inner, self.shared())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "strictly between 0 and 1")]
    fn a_quantile_of_one_is_rejected() {
        let _ = HedgeLayer::percentile(1.0);
    }

    #[test]
    #[should_panic(expected = "min_samples must be between 1 and 512")]
    fn more_samples_than_the_window_are_rejected() {
        let _ = HedgeLayer::percentile(0.9).min_samples(513);
    }

    #[test]
    #[should_panic(expected = "must not be longer than max_delay")]
    fn bounds_are_checked_when_a_service_is_made() {
        let layer = HedgeLayer::percentile(0.9)
            .max_delay(Duration::from_millis(1))
            .min_delay(Duration::from_millis(2));
        let _ = layer.layer(());
    }

    #[tokio::test]
    async fn clones_share_state_and_builder_methods_start_afresh() {
        let layer = HedgeLayer::after(Duration::from_millis(10));
        let a = layer.shared();
        assert!(Arc::ptr_eq(&a, &layer.clone().shared()));
        assert!(a.deposit, "a budget of its own is filled by the layer");
        let budget = Arc::new(RetryBudget::default());
        let shared = layer.budget(budget.clone()).shared();
        assert!(!Arc::ptr_eq(&a, &shared));
        assert!(Arc::ptr_eq(&shared.budget, &budget));
        assert!(
            !shared.deposit,
            "a shared budget is filled by its retry layer"
        );
    }
}
