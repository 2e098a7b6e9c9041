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
pub(crate) struct CatchUnwind<F: ?Sized>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future + ?Sized> CatchUnwind<F> {
    /// Catches the panics of a future already boxed.
    pub(crate) fn boxed(future: Pin<Box<F>>) -> Self {
        Self(future)
    }

    /// The future, to be polled without catching.
    pub(crate) fn into_inner(self) -> Pin<Box<F>> {
        self.0
    }
}

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
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
struct Count<C: Codec>(Arc<Inner<C>>);

impl<C: Codec> Drop for Count<C> {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A task's future, counted while it lives. A struct rather than an
    /// `async` block: the block would hold the future twice (as the value
    /// it captured and as the future it awaits), doubling every miss's
    /// task allocation.
    struct Counted<C: Codec, F> {
        #[pin]
        work: F,
        count: Count<C>,
    }
}

impl<C: Codec, F: Future> Future for Counted<C, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().work.poll(cx)
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
        let task = Counted {
            work,
            count: Count(Arc::clone(&self.inner)),
        };
        runtime.spawn(task.instrument(tracing::Span::current()))
    }
}
