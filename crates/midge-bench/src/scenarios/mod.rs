//! The scenarios: what each one publishes where (a [`Plan`] for the pub/sub engine), and the
//! idle-connection scenario, which has its own loop.

pub mod connections;
pub mod fanin;
pub mod fanout;
pub mod latency;
pub mod throughput;

use crate::cli::{Options, Scenario};
use crate::engine::{self, Plan};
use crate::error::BenchError;
use crate::procstat;
use crate::report::Report;

/// Descriptors kept free for everything that is not a client socket (stdio, the runtime's
/// epoll and wake-up fds, /proc reads).
pub const RESERVED_FDS: usize = 64;

pub fn plan(o: &Options) -> Option<Plan> {
    match o.scenario {
        Scenario::Throughput => Some(throughput::plan(o)),
        Scenario::Fanout => Some(fanout::plan(o)),
        Scenario::Fanin => Some(fanin::plan(o)),
        Scenario::Latency => Some(latency::plan(o)),
        Scenario::Connections => None,
    }
}

/// Runs the scenario `o` names against the broker it points at.
pub async fn run(o: &Options) -> Result<Report, BenchError> {
    let target = o.target()?;
    let nofile = procstat::raise_nofile_limit()
        .map_err(|e| BenchError::new(format!("cannot raise the open file limit: {e}")))?;
    let clients = match o.scenario {
        Scenario::Connections => o.clients,
        _ => o.publishers + o.subscribers,
    };
    if clients as u64 + RESERVED_FDS as u64 > nofile {
        return Err(BenchError::new(format!(
            "{clients} clients need {} open files, but this process may open at most {nofile} \
             (its hard RLIMIT_NOFILE): ask for at most {} clients, or raise the hard limit",
            clients + RESERVED_FDS,
            nofile.saturating_sub(RESERVED_FDS as u64)
        )));
    }
    match plan(o) {
        Some(plan) => engine::run(o, plan, target).await.map(Report::PubSub),
        None => connections::run(o, target).await.map(Report::Connections),
    }
}
