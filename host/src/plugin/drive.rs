//! Running one call into a plugin to its end, its deadline or its cancellation, whichever
//! comes first, including while the plugin waits in a host call.
//!
//! WASI is linked asynchronously, so a plugin waiting in a host call (sleeping, reading a
//! slow file, polling a stream) is a pending future rather than a blocked thread, and the
//! wait can be given up. Compute is stopped by epoch interruption as before
//! (`Plugin::arm`); this module stops the waiting: once the call's future is pending, it
//! checks the cancel flag every [`EPOCH_TICK`] and the deadline when it passes, and drops
//! the call's future, which unwinds the plugin with a trap.
//!
//! The call is polled on the caller's thread, as a synchronous call would run. What the
//! host calls wait on (timers, blocking file operations) runs on [`RUNTIME`], Kiln's own
//! runtime, never the caller's: a server's runtime shutting down cannot strand a plugin
//! mid-call, and any thread (a plain one, a runtime's blocking pool, a CLI) can call.

use std::{
    pin::Pin,
    sync::{
        LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use crate::engine::EPOCH_TICK;

/// The runtime that drives what plugins' host calls wait on. One worker: it only runs
/// timers and hands file operations to its blocking pool.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kiln-wasi")
        .enable_all()
        .build()
        .expect("starting the runtime for plugins' host calls")
});

/// Why a call was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// Its deadline passed while it waited in a host call.
    Deadline,
    /// Its cancel flag was raised while it waited in a host call.
    Cancelled,
}

/// When a call is given up.
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    pub deadline: Instant,
    pub cancel: Option<&'a AtomicBool>,
}

/// Runs `call` on this thread until it completes, or until `watch` says to give it up while
/// it is waiting. A call that never waits costs no timer.
pub(crate) fn run<F: Future>(call: F, watch: Watch<'_>) -> Result<F::Output, Halt> {
    let _runtime = RUNTIME.enter();
    pollster::block_on(Watched {
        call: std::pin::pin!(call),
        watch,
        tick: None,
    })
}

struct Watched<'a, 'w, F> {
    call: Pin<&'a mut F>,
    watch: Watch<'w>,
    /// Created the first time the call waits.
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future> Future for Watched<'_, '_, F> {
    type Output = Result<F::Output, Halt>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(out) = this.call.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        loop {
            if this.watch.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Poll::Ready(Err(Halt::Cancelled));
            }
            let now = Instant::now();
            if now >= this.watch.deadline {
                return Poll::Ready(Err(Halt::Deadline));
            }
            let next = match this.watch.cancel {
                Some(_) => (now + EPOCH_TICK).min(this.watch.deadline),
                None => this.watch.deadline,
            };
            let tick = this
                .tick
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next.into())));
            if tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            tick.as_mut().reset(next.into());
            if tick.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_call_that_does_not_wait_completes() {
        let watch = Watch {
            deadline: Instant::now(),
            cancel: None,
        };
        assert_eq!(run(async { 7 }, watch), Ok(7));
    }

    #[test]
    fn a_waiting_call_is_given_up_at_its_deadline() {
        let start = Instant::now();
        let watch = Watch {
            deadline: start + Duration::from_millis(50),
            cancel: None,
        };
        let slept = run(
            async { tokio::time::sleep(Duration::from_secs(3600)).await },
            watch,
        );
        assert_eq!(slept, Err(Halt::Deadline));
        let took = start.elapsed();
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn a_waiting_call_is_given_up_within_a_tick_of_its_cancel() {
        let flag = std::sync::Arc::new(AtomicBool::new(false));
        let raise = flag.clone();
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            raise.store(true, Ordering::Relaxed);
            Instant::now()
        });
        let watch = Watch {
            deadline: Instant::now() + Duration::from_secs(3600),
            cancel: Some(&flag),
        };
        let slept = run(
            async { tokio::time::sleep(Duration::from_secs(3600)).await },
            watch,
        );
        let raised = raiser.join().unwrap();
        assert_eq!(slept, Err(Halt::Cancelled));
        let late = raised.elapsed();
        assert!(late < EPOCH_TICK * 20, "{late:?}");
    }

    #[test]
    fn a_call_that_waits_and_finishes_in_time_completes() {
        let watch = Watch {
            deadline: Instant::now() + Duration::from_secs(60),
            cancel: None,
        };
        let slept = run(
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "woke"
            },
            watch,
        );
        assert_eq!(slept, Ok("woke"));
    }
}
