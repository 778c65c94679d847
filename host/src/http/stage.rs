//! How a layer plugs into the pipeline: each layer implements [`EgressLayer`] (its logic only),
//! and [`stage`] turns it into a tower `Layer` over the rest of the pipeline.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::layer::{Layer, layer_fn};
use tower::{Service, ServiceExt};

use super::{EgressError, EgressRequest, EgressResponse};

/// What a layer returns.
pub type EgressFuture = BoxFuture<'static, Result<EgressResponse, EgressError>>;

/// The pipeline below a layer, type-erased so that layers compose in any order. Cloning it is
/// a reference-count bump: each request hands every layer the rest of the pipeline without
/// allocating a copy of it.
#[derive(Clone)]
pub struct EgressService(Arc<dyn Fn(EgressRequest) -> EgressFuture + Send + Sync>);

impl fmt::Debug for EgressService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EgressService")
    }
}

impl EgressService {
    /// The pipeline's end: a tower `Service` (the pooled client, or a stub in tests), cloned
    /// for each request it serves.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<EgressRequest, Response = EgressResponse, Error = EgressError> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Self(Arc::new(move |request| {
            let service = service.clone();
            Box::pin(service.oneshot(request))
        }))
    }
}

impl Service<EgressRequest> for EgressService {
    type Response = EgressResponse;
    type Error = EgressError;
    type Future = EgressFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        // Readiness is the pipeline's end's to report, when each request reaches it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EgressRequest) -> EgressFuture {
        (self.0)(request)
    }
}

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

/// `layer` as a tower `Layer`, for `ServiceBuilder`.
pub fn stage<L: EgressLayer>(layer: L) -> impl Layer<EgressService, Service = EgressService> {
    layer_fn(move |next: EgressService| {
        let layer = layer.clone();
        EgressService(Arc::new(move |request| layer.clone().call(request, next.clone())))
    })
}
