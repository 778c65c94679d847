//! Retry budgets: retries may add only a share of the traffic that first attempts make, so
//! an outage of one API does not turn every plugin's calls into a retry storm against it.
//!
//! [`RetryBudget`] is a pure sliding-window count (first attempts deposit, retries withdraw)
//! driven by the caller's clock; [`RetryBudgets`] holds one per tenant and destination, shared
//! by every run of the tenant. As in Finagle and tower's `TpsBudget`, a floor of retries per
//! window is always allowed, so a plugin making a handful of calls can still retry them.

use std::time::Duration;

use serde::Deserialize;

use crate::tenant::{PerDestination, TenantId};

/// The window over which first attempts and retries are counted.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Slots the window is counted in (the window slides by a tenth).
const SLOTS: usize = 10;
/// Default share of first attempts that retries may add.
pub const DEFAULT_BUDGET_RATIO: f64 = 0.2;
/// Default retries allowed in any window whatever the traffic.
pub const DEFAULT_BUDGET_MIN_RETRIES: u32 = 10;

/// The budget part of the manifest's `[retry]` table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Retries may add at most this share over first attempts in a 10 s window (0.2 = 20 %).
    /// Example: `ratio = 0.2`
    pub ratio: f64,
    /// Retries allowed in any 10 s window, whatever the share.
    /// Example: `min_retries = 10`
    pub min_retries: u32,
}

impl Eq for BudgetConfig {}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: DEFAULT_BUDGET_RATIO,
            min_retries: DEFAULT_BUDGET_MIN_RETRIES,
        }
    }
}

/// One destination's counts of first attempts and retries over the last [`BUDGET_WINDOW`].
///
/// ```
/// use apiary_host::{BudgetConfig, RetryBudget};
/// use std::time::Duration;
///
/// let config = BudgetConfig { ratio: 0.2, min_retries: 0 };
/// let mut budget = RetryBudget::default();
/// let now = Duration::from_secs(1);
/// for _ in 0..10 {
///     budget.deposit(now);
/// }
/// assert!(budget.withdraw(now, &config));
/// assert!(budget.withdraw(now, &config));
/// assert!(!budget.withdraw(now, &config), "20 % of 10 first attempts is 2 retries");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryBudget {
    /// (slot number, first attempts, retries), newest last; slot number = time / slot length.
    slots: Vec<(u64, u32, u32)>,
}

impl RetryBudget {
    fn slot_of(now: Duration) -> u64 {
        (now.as_nanos() / (BUDGET_WINDOW / SLOTS as u32).as_nanos()) as u64
    }

    /// Drops slots older than the window and returns the current slot's counts.
    fn current(&mut self, now: Duration) -> &mut (u64, u32, u32) {
        let slot = Self::slot_of(now);
        self.slots.retain(|(s, _, _)| s + (SLOTS as u64) > slot);
        if self.slots.last().is_none_or(|(s, _, _)| *s != slot) {
            self.slots.push((slot, 0, 0));
        }
        self.slots.last_mut().expect("just pushed")
    }

    /// Counts a first attempt at `now`.
    pub fn deposit(&mut self, now: Duration) {
        self.current(now).1 += 1;
    }

    /// Takes one retry at `now` if the budget allows it: retries in the window stay within
    /// `min_retries` plus `ratio` of first attempts.
    pub fn withdraw(&mut self, now: Duration, config: &BudgetConfig) -> bool {
        self.current(now);
        let (firsts, retries) = self.slots.iter().fold((0u64, 0u64), |(f, r), (_, first, retry)| {
            (f + u64::from(*first), r + u64::from(*retry))
        });
        let allowed = u64::from(config.min_retries) + (firsts as f64 * config.ratio.max(0.0)) as u64;
        if retries >= allowed {
            return false;
        }
        self.current(now).2 += 1;
        true
    }
}

/// Every retry budget of the process, by tenant and destination host.
#[derive(Debug, Default)]
pub struct RetryBudgets {
    budgets: PerDestination<RetryBudget>,
}

impl RetryBudgets {
    /// No budgets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a first attempt to `destination`.
    pub fn deposit(&self, tenant: &TenantId, destination: &str, now: Duration) {
        self.with(tenant, destination, now, |b| b.deposit(now));
    }

    /// Takes one retry to `destination` if its budget allows.
    pub fn withdraw(&self, tenant: &TenantId, destination: &str, now: Duration, config: &BudgetConfig) -> bool {
        self.with(tenant, destination, now, |b| b.withdraw(now, config))
    }

    /// A budget whose window holds nothing is as good as none (see [`PerDestination`]).
    fn with<R>(&self, tenant: &TenantId, destination: &str, now: Duration, f: impl FnOnce(&mut RetryBudget) -> R) -> R {
        let empty = |budget: &mut RetryBudget| {
            budget.current(now);
            budget.slots.iter().all(|(_, first, retry)| first + retry == 0)
        };
        self.budgets.with(tenant, destination, empty, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::MAX_TRACKED;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn retries_add_at_most_the_share_over_first_attempts_plus_the_floor() {
        let config = BudgetConfig {
            ratio: 0.2,
            min_retries: 3,
        };
        let mut budget = RetryBudget::default();
        for _ in 0..50 {
            budget.deposit(SECOND);
        }
        let granted = (0..100).filter(|_| budget.withdraw(SECOND, &config)).count();
        assert_eq!(granted, 3 + 10);
    }

    #[test]
    fn the_window_slides_and_old_traffic_stops_counting() {
        let config = BudgetConfig {
            ratio: 0.5,
            min_retries: 0,
        };
        let mut budget = RetryBudget::default();
        for _ in 0..10 {
            budget.deposit(SECOND);
        }
        assert_eq!((0..10).filter(|_| budget.withdraw(SECOND, &config)).count(), 5);
        // 9.5 s later the deposits still count (same window), and the retries too.
        assert!(!budget.withdraw(SECOND * 10, &config));
        // Once the window has passed, both are forgotten: nothing deposited, nothing allowed.
        assert!(!budget.withdraw(SECOND * 12, &config));
        for _ in 0..4 {
            budget.deposit(SECOND * 12);
        }
        assert_eq!((0..10).filter(|_| budget.withdraw(SECOND * 12, &config)).count(), 2);
    }

    #[test]
    fn the_floor_lets_a_quiet_plugin_retry() {
        let config = BudgetConfig::default();
        let mut budget = RetryBudget::default();
        budget.deposit(SECOND);
        let granted = (0..20).filter(|_| budget.withdraw(SECOND, &config)).count();
        assert_eq!(granted, DEFAULT_BUDGET_MIN_RETRIES as usize);
    }

    #[test]
    fn the_budgets_are_bounded_and_empty_windows_make_room() {
        let budgets = RetryBudgets::new();
        let tenant = TenantId::new("t");
        for i in 0..=MAX_TRACKED {
            budgets.deposit(&tenant, &format!("h{i}"), SECOND);
        }
        let count = || budgets.budgets.len(&tenant);
        assert_eq!(
            count(),
            MAX_TRACKED,
            "a new destination goes untracked when all are busy"
        );
        budgets.deposit(&tenant, "late", SECOND * 30);
        assert_eq!(count(), 1, "windows that hold nothing made room");
    }

    #[test]
    fn tenants_and_destinations_have_budgets_of_their_own() {
        let config = BudgetConfig {
            ratio: 0.0,
            min_retries: 1,
        };
        let budgets = RetryBudgets::new();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        assert!(budgets.withdraw(&a, "api.x.example", SECOND, &config));
        assert!(!budgets.withdraw(&a, "api.x.example", SECOND, &config));
        assert!(budgets.withdraw(&b, "api.x.example", SECOND, &config));
        assert!(budgets.withdraw(&a, "api.y.example", SECOND, &config));
    }
}
