//! Scripted, fault-injecting HTTP upstreams for testing resilient clients.

mod body;
mod fault;
mod plan;
mod reply;
mod server;
mod upstream;

pub use body::TestBody;
pub use fault::{Fault, FaultFuture, FaultLayer, InjectedError};
pub use plan::{PhasedPlan, Plan, RandomPlan};
pub use reply::{IntoStatusCode, Reply};
pub use server::{TestServer, refused_addr};
pub use upstream::{Received, ResponseFuture, Upstream, UpstreamService};

/// The error type of the services in this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
