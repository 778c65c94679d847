//! Admission control: a bounded number of live runs, a queue with a timeout in front of it, and
//! a cap per tenant so one tenant can neither take every slot nor fill the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;
use crate::tenant::TenantId;

/// How long a run waits for a slot before it is refused as busy.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Runs one tenant may wait for at once; more are refused at once, so one tenant's backlog
/// cannot grow without bound.
pub const MAX_QUEUED_PER_TENANT: usize = 256;

/// The admission limits of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Runs live at once, across tenants (the engine's instance pool is sized from it).
    pub max_runs: u32,
    /// Runs live at once for one tenant.
    pub max_runs_per_tenant: u32,
    /// How long a run may wait for a slot.
    pub queue_timeout: Duration,
}

/// Why a run was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the host is busy: {limit} are taken, and no slot freed up within {}", humantime::format_duration(*.waited))]
pub struct Busy {
    /// Which limit was full, e.g. `all 64 run slots` or `tenant acme's 16 run slots`.
    pub limit: String,
    /// How long the run waited.
    pub waited: Duration,
}

/// A run's slot: the run may go on while this is held.
#[derive(Debug)]
pub(crate) struct Admitted {
    _tenant: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct TenantSlots {
    running: Arc<Semaphore>,
    queued: AtomicUsize,
}

/// Hands out run slots.
#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    global: Arc<Semaphore>,
    tenants: Mutex<HashMap<TenantId, Arc<TenantSlots>>>,
    clock: Arc<dyn Clock>,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            global: Arc::new(Semaphore::new(config.max_runs as usize)),
            tenants: Mutex::default(),
            config,
            clock,
        }
    }

    /// Waits for a slot for `tenant`: first one of the tenant's own, then one of the host's,
    /// within the queue timeout (measured on the injected clock).
    ///
    /// # Errors
    /// [`Busy`] naming the limit that stayed full.
    pub(crate) async fn admit(&self, tenant: &TenantId) -> Result<Admitted, Busy> {
        let slots = self.tenant_slots(tenant);
        let timeout = self.config.queue_timeout;
        if slots.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_PER_TENANT {
            slots.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy {
                limit: format!("tenant {tenant}'s queue of {MAX_QUEUED_PER_TENANT} runs"),
                waited: Duration::ZERO,
            });
        }
        let started = self.clock.monotonic();
        let tenant_limit = || format!("tenant {tenant}'s {} run slots", self.config.max_runs_per_tenant);
        let global_limit = || format!("all {} run slots", self.config.max_runs);
        // The fast path takes no timer: a free slot is taken at once.
        let free = (
            slots.running.clone().try_acquire_owned(),
            self.global.clone().try_acquire_owned(),
        );
        let outcome = if let (Ok(tenant_permit), Ok(global_permit)) = free {
            Ok(Admitted {
                _tenant: tenant_permit,
                _global: global_permit,
            })
        } else {
            drop(free);
            let deadline = self.clock.sleep(timeout);
            tokio::pin!(deadline);
            async {
                let tenant_permit = tokio::select! {
                    biased;
                    permit = slots.running.clone().acquire_owned() => permit.expect("never closed"),
                    () = &mut deadline => return Err(tenant_limit()),
                };
                let global_permit = tokio::select! {
                    biased;
                    permit = self.global.clone().acquire_owned() => permit.expect("never closed"),
                    () = &mut deadline => return Err(global_limit()),
                };
                Ok(Admitted {
                    _tenant: tenant_permit,
                    _global: global_permit,
                })
            }
            .await
        };
        slots.queued.fetch_sub(1, Ordering::AcqRel);
        outcome.map_err(|limit| Busy {
            limit,
            waited: self.clock.monotonic().saturating_sub(started),
        })
    }

    fn tenant_slots(&self, tenant: &TenantId) -> Arc<TenantSlots> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants
            .entry(tenant.clone())
            .or_insert_with(|| {
                Arc::new(TenantSlots {
                    running: Arc::new(Semaphore::new(self.config.max_runs_per_tenant as usize)),
                    queued: AtomicUsize::new(0),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    fn admission(max_runs: u32, per_tenant: u32, clock: Arc<dyn Clock>) -> Admission {
        Admission::new(
            AdmissionConfig {
                max_runs,
                max_runs_per_tenant: per_tenant,
                queue_timeout: Duration::from_secs(5),
            },
            clock,
        )
    }

    #[tokio::test]
    async fn a_full_host_says_busy_after_the_queue_timeout() {
        let clock = ManualClock::new();
        let admission = admission(2, 2, Arc::new(clock.clone()));
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let _one = admission.admit(&a).await.unwrap();
        let _two = admission.admit(&b).await.unwrap();
        // The manual clock lets the queue timeout pass at once.
        let busy = admission.admit(&b).await.unwrap_err();
        assert_eq!(busy.limit, "all 2 run slots");
        assert_eq!(busy.waited, Duration::from_secs(5));
        assert_eq!(
            busy.to_string(),
            "the host is busy: all 2 run slots are taken, and no slot freed up within 5s"
        );
    }

    #[tokio::test]
    async fn one_tenant_cannot_take_every_slot() {
        let admission = admission(3, 2, Arc::new(ManualClock::new()));
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let _a1 = admission.admit(&a).await.unwrap();
        let _a2 = admission.admit(&a).await.unwrap();
        let busy = admission.admit(&a).await.unwrap_err();
        assert_eq!(busy.limit, "tenant a's 2 run slots");
        admission.admit(&b).await.expect("b still gets the third slot");
    }

    #[tokio::test]
    async fn a_waiting_run_gets_the_slot_a_finished_run_frees() {
        let admission = Arc::new(admission(1, 1, Arc::new(SystemClock::new())));
        let tenant = TenantId::default();
        let first = admission.admit(&tenant).await.unwrap();
        let waiting = tokio::spawn({
            let (admission, tenant) = (admission.clone(), tenant.clone());
            async move { admission.admit(&tenant).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        drop(first);
        waiting.await.unwrap().expect("admitted once the first run ended");
    }
}
