//! The engine's own tasks: counted while they run, and a future's panic
//! caught so the task can clean up (release a lease, back off) before it
//! lets the panic go on.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{Inner, Primitives};
use crate::codec::Codec;

/// A panic payload.
pub(crate) type Panic = Box<dyn Any + Send>;

/// Polls a future, turning a panic inside it into `Err(payload)`.
pub(crate) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Counts a running engine task in [`Primitives::in_flight`].
struct Counted<C: Codec>(Arc<Inner<C>>);

impl<C: Codec> Drop for Counted<C> {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C: Codec> Primitives<C> {
    /// Runs `work` as a task of its own on `runtime`, counted while it
    /// runs and inside the caller's tracing span.
    pub(crate) fn spawn<O: Send + 'static>(
        &self,
        runtime: &Handle,
        work: impl Future<Output = O> + Send + 'static,
    ) -> JoinHandle<O> {
        self.inner.tasks.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(Arc::clone(&self.inner));
        let task = async move {
            let _counted = counted;
            work.await
        };
        runtime.spawn(task.instrument(tracing::Span::current()))
    }
}
