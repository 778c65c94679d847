//! How a layer plugs into the pipeline: each layer implements [`EgressLayer`] (its logic only),
//! and [`stage`] turns it into a tower `Layer` over the rest of the pipeline.

use std::fmt;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::Service;
use tower::layer::{Layer, layer_fn};
use tower::util::BoxCloneSyncService;

use super::{EgressError, EgressRequest, EgressResponse};

/// The pipeline below a layer, type-erased so that layers compose in any order.
pub type EgressService = BoxCloneSyncService<EgressRequest, EgressResponse, EgressError>;
/// What a layer returns.
pub type EgressFuture = BoxFuture<'static, Result<EgressResponse, EgressError>>;

/// One layer of the egress pipeline: it sees each request and passes it on to `next` (the
/// rest of the pipeline), or answers it itself.
///
/// ```
/// use apiary_host::{EgressFuture, EgressLayer, EgressRequest, EgressService};
/// use tower::ServiceExt;
///
/// /// Adds a header to every request.
/// #[derive(Debug, Clone)]
/// struct Tag;
///
/// impl EgressLayer for Tag {
///     fn call(self, mut request: EgressRequest, next: EgressService) -> EgressFuture {
///         request.headers_mut().insert("x-tag", http::HeaderValue::from_static("1"));
///         Box::pin(next.oneshot(request))
///     }
/// }
/// ```
pub trait EgressLayer: fmt::Debug + Clone + Send + Sync + 'static {
    /// Handles `request`; `self` is a clone of the layer, so the future may own it.
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture;
}

/// A layer in front of the rest of the pipeline, as a tower `Service`.
#[derive(Debug, Clone)]
struct Stage<L> {
    layer: L,
    next: EgressService,
}

impl<L: EgressLayer> Service<EgressRequest> for Stage<L> {
    type Response = EgressResponse;
    type Error = EgressError;
    type Future = EgressFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        // Readiness is checked where each layer calls `next` (with `oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EgressRequest) -> EgressFuture {
        self.layer.clone().call(request, self.next.clone())
    }
}

/// `layer` as a tower `Layer`, for `ServiceBuilder`.
pub fn stage<L: EgressLayer>(layer: L) -> impl Layer<EgressService, Service = EgressService> {
    layer_fn(move |next| {
        EgressService::new(Stage {
            layer: layer.clone(),
            next,
        })
    })
}
