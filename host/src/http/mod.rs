//! Outbound HTTP: the egress pipeline every request goes through, and the plugin's `http`
//! interface that feeds it.
//!
//! - [`egress`](EgressRequest): the shared request, context, error and counter types.
//! - [`allowlist`](HostPattern): which destinations a plugin may reach (fails closed).
//! - `bounds`: caps on what one request may carry, and the headers the host owns.
//! - [`netpolicy`](NetPolicy): which IP addresses a connection may go to (pure).
//! - [`connect`](Resolve): the resolver and connector that enforce it on the resolved address.
//! - [`client`](PooledClient): the pooled hyper-util client, per tenant and network policy.
//! - [`stage`](EgressLayer): how a layer plugs into the pipeline.
//! - [`timeout`](TimeoutLayer): the per-attempt timeout.
//! - [`pipeline`](Egress): the layer stack, built once per process.
//! - `glue`: the WIT glue, converting between the plugin's records and `http` types.
//! - `wasi`: the standard `wasi:http` outgoing handler, a second entry to the same pipeline.

mod allowlist;
mod bounds;
mod client;
mod connect;
mod egress;
mod glue;
mod netpolicy;
mod pipeline;
mod stage;
mod timeout;
mod wasi;

pub use allowlist::{AllowlistLayer, HostPattern, HostPatternError, destination};
pub(crate) use bounds::is_host_owned;
pub use bounds::{
    MAX_ATTACHMENTS, MAX_BATCH_REQUESTS, MAX_REQUEST_BODY_BYTES, MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_HEADERS,
    MAX_URL_BYTES,
};
pub use client::{POOL_IDLE_TIMEOUT, POOL_MAX_IDLE_PER_HOST, PooledClient};
pub use connect::{Resolve, StaticResolver, SystemResolver};
pub use egress::{
    BucketCounters, CallStats, EgressContext, EgressError, EgressPolicy, EgressRequest, EgressResponse, RequestOptions,
    RunStats,
};
pub use glue::StreamingBatch;
pub(crate) use glue::{HttpCtx, add_to_linker};
pub use netpolicy::{AddressKind, Cidr, CidrError, ForbiddenAddress, NetPolicy};
pub use pipeline::{Egress, EgressParts};
pub use stage::{EgressFuture, EgressLayer, EgressService, stage};
pub use timeout::TimeoutLayer;
