//! The layer and the service it wraps around an application.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request};

use super::Session;
use crate::Engine;

/// A tower layer that gives every request a [`Session`] handle.
#[derive(Clone)]
pub struct SessionLayer {
    engine: Arc<Engine>,
}

impl SessionLayer {
    /// A layer over `engine` (an [`Engine`], or an `Arc` of one shared with other users),
    /// reading "now" from the engine's clock once per request.
    pub fn new(engine: impl Into<Arc<Engine>>) -> Self {
        Self {
            engine: engine.into(),
        }
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer").finish_non_exhaustive()
    }
}

impl<S> tower::Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an application.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, R> tower::Service<Request<B>> for SessionService<S>
where
    S: tower::Service<Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // HTTP/2 may split cookies over several header lines; they mean one `Cookie` header.
        let cookie = req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let now = self.engine.now();
        let session = Session::new(self.engine.clone(), cookie, now);
        req.extensions_mut().insert(session.clone());
        // The service that was polled ready is the one to call (tower's clone pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            if !res.status().is_server_error() {
                for c in session.take_set_cookies().await {
                    match HeaderValue::from_str(&c) {
                        Ok(v) => {
                            res.headers_mut().append(SET_COOKIE, v);
                        }
                        Err(_) => tracing::error!("a Set-Cookie value is not a valid header"),
                    }
                }
            }
            Ok(res)
        })
    }
}
