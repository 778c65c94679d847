//! Which CPUs the server and the clients run on: the server alone on the first, the clients on
//! the rest, so a client's work never competes with the server's for a core.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use core_affinity::CoreId;

/// The split of the machine's CPUs between the loopback server and the clients.
#[derive(Debug, Clone)]
pub struct CpuPlan {
    /// The server's CPU; `None` when pinning is not possible or there is only one CPU.
    pub server: Option<CoreId>,
    /// The clients' CPUs; empty when the clients are not pinned.
    pub clients: Vec<CoreId>,
}

impl CpuPlan {
    /// The first CPU for the server and the others for the clients, when this process may set
    /// affinities and has at least two CPUs.
    pub fn detect() -> Self {
        match core_affinity::get_core_ids() {
            Some(cores) if cores.len() >= 2 => Self {
                server: Some(cores[0]),
                clients: cores[1..].to_vec(),
            },
            _ => Self {
                server: None,
                clients: Vec::new(),
            },
        }
    }

    /// One line for the report, e.g. `server on CPU 0, clients on CPUs 1-3`.
    pub fn describe(&self) -> String {
        match (&self.server, self.clients.as_slice()) {
            (Some(server), [first, .., last]) => {
                format!("server on CPU {}, clients on CPUs {}-{}", server.id, first.id, last.id)
            }
            (Some(server), [only]) => format!("server on CPU {}, clients on CPU {}", server.id, only.id),
            _ => "not pinned (one CPU, or affinities cannot be set): server and clients share the CPUs".into(),
        }
    }

    /// The client CPUs as a `taskset -c` list, e.g. `1,2,3`.
    pub fn client_cpu_list(&self) -> Option<String> {
        (!self.clients.is_empty()).then(|| {
            self.clients
                .iter()
                .map(|core| core.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// Worker threads for the client runtime: one per client CPU (or per CPU when unpinned).
    pub fn client_threads(&self) -> usize {
        if self.clients.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.clients.len()
        }
    }

    /// A hook for each new client thread that pins it to the next client CPU in turn.
    pub fn client_thread_pinner(&self) -> impl Fn() + Send + Sync + 'static {
        let cores = self.clients.clone();
        let next = Arc::new(AtomicUsize::new(0));
        move || {
            if !cores.is_empty() {
                let core = cores[next.fetch_add(1, Ordering::Relaxed) % cores.len()];
                core_affinity::set_for_current(core);
            }
        }
    }
}
