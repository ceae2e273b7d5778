//! One client connection's clock: it closes connections whose request
//! header is slow to arrive (slowloris), that sit idle with no request in
//! flight, or whose writes make no progress (a client that stops reading:
//! on HTTP/1 the socket's writes block; on HTTP/2 flow control stops a
//! stream's body from being polled at all, so its last poll is timed).
//!
//! hyper's own HTTP/1 header timeout starts when it begins waiting for a
//! request, so it would also cut keep-alive connections short, and hyper
//! has no idle timeout at all; so the clock lives in the socket instead:
//! [`TimedIo`] ends reads (EOF) or fails writes when a deadline passes,
//! and [`TrackedService`] tells it when requests start and end. This works
//! the same for HTTP/1, HTTP/2 and the protocol sniffing before either.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::{CloseLabel, CloseReason, Metrics};

/// The connection timeouts from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read: Duration,
    pub idle: Duration,
    pub write_stall: Duration,
}

/// What the clock knows of a connection; the deadlines are pure functions
/// of it.
#[derive(Debug, Clone)]
struct ClockState {
    /// Requests whose response is not finished (or dropped) yet.
    in_flight: usize,
    /// Requests started on this connection so far.
    requests: u64,
    http2: bool,
    /// When the connection was accepted or its last response ended.
    idle_since: Instant,
    /// First byte of the next HTTP/1 request header, while none is in flight.
    head_started: Option<Instant>,
    /// Bytes arrived while a request was in flight: on HTTP/1, the start
    /// of a pipelined next request.
    read_during_request: bool,
    /// When a write first returned `Pending` with no progress since.
    write_blocked_since: Option<Instant>,
    /// Each response body being sent, by id: since when it has been
    /// waiting for hyper to poll it again (it handed out a frame), or
    /// `None` while hyper waits on it (its last poll was `Pending`).
    bodies: std::collections::HashMap<u64, Option<Instant>>,
    next_body: u64,
    /// The reader waiting on the socket, whose timer was armed before a
    /// body started waiting: woken so it arms for the body's deadline.
    reader: Option<std::task::Waker>,
}

impl ClockState {
    fn new(now: Instant) -> ClockState {
        ClockState {
            in_flight: 0,
            requests: 0,
            http2: false,
            idle_since: now,
            head_started: None,
            read_during_request: false,
            write_blocked_since: None,
            bodies: std::collections::HashMap::new(),
            next_body: 0,
            reader: None,
        }
    }

    /// When reads must end, and why, if nothing else happens first.
    fn read_deadline(&self, limits: &ConnLimits) -> Option<(Instant, CloseReason)> {
        if self.in_flight > 0 {
            // An HTTP/2 body hyper has stopped polling waits on the
            // client's flow-control window: a client that is not reading.
            // (A body that is polled but pending is the gateway's own
            // slowness, which `[limits]` bounds.)
            let stalled = self
                .bodies
                .values()
                .flatten()
                .min()
                .filter(|_| self.http2)?;
            return Some((*stalled + limits.write_stall, CloseReason::WriteTimeout));
        }
        if self.requests == 0 {
            // The first request header (and, for HTTP/2, the preface) must
            // arrive within the header timeout of connecting.
            return Some((
                self.idle_since + limits.header_read,
                CloseReason::HeaderTimeout,
            ));
        }
        match self.head_started {
            Some(started) if !self.http2 => {
                Some((started + limits.header_read, CloseReason::HeaderTimeout))
            }
            _ => Some((self.idle_since + limits.idle, CloseReason::IdleTimeout)),
        }
    }

    fn write_deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        self.write_blocked_since.map(|t| t + limits.write_stall)
    }

    /// When to look again: the earliest deadline, or (with a request in
    /// flight, whose end nothing signals to the reader) a periodic check
    /// no later than any deadline that end could start.
    fn next_check(&self, limits: &ConnLimits, now: Instant) -> Instant {
        let read = match self.read_deadline(limits) {
            Some((at, _)) => at,
            None => now + limits.idle.min(limits.header_read),
        };
        match self.write_deadline(limits) {
            Some(write) => read.min(write),
            None => read,
        }
    }

    fn on_read(&mut self, now: Instant) {
        if self.in_flight > 0 {
            self.read_during_request = true;
        } else if self.head_started.is_none() {
            self.head_started = Some(now);
        }
    }

    fn on_request_start(&mut self, http2: bool) {
        self.in_flight += 1;
        self.requests += 1;
        self.http2 |= http2;
        self.head_started = None;
    }

    fn on_body_start(&mut self, now: Instant) -> u64 {
        let id = self.next_body;
        self.next_body += 1;
        self.bodies.insert(id, Some(now));
        self.wake_reader();
        id
    }

    /// A body deadline may now come before the reader's timer: let it
    /// look again.
    fn wake_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }

    fn on_request_end(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.idle_since = now;
            self.head_started = self.read_during_request.then_some(now);
            self.read_during_request = false;
        }
    }
}

/// The clock shared by a connection's socket and its requests.
#[derive(Clone)]
pub struct Clock {
    state: Arc<Mutex<ClockState>>,
    limits: ConnLimits,
}

impl Clock {
    pub fn new(limits: ConnLimits) -> Clock {
        Clock {
            state: Arc::new(Mutex::new(ClockState::new(Instant::now()))),
            limits,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut ClockState) -> R) -> R {
        let mut state = self.state.lock();
        f(&mut state)
    }

    fn request_started(&self, http2: bool) -> RequestInFlight {
        self.with(|s| s.on_request_start(http2));
        RequestInFlight {
            clock: self.clone(),
            body: None,
        }
    }
}

/// Counts a request as in flight until dropped (with the response body,
/// or with the response future if the client went away first), and
/// times the polls of its body once there is one.
struct RequestInFlight {
    clock: Clock,
    body: Option<u64>,
}

impl RequestInFlight {
    fn body_started(&mut self) {
        let now = Instant::now();
        self.body = Some(self.clock.with(|s| s.on_body_start(now)));
    }

    /// After each poll: a body that handed out a frame waits for the next
    /// poll from now on; one that is pending is waited on, not waiting.
    fn body_polled(&self, pending: bool) {
        if let Some(id) = self.body {
            let now = Instant::now();
            self.clock.with(|s| {
                if let Some(waiting) = s.bodies.get_mut(&id) {
                    *waiting = (!pending).then_some(now);
                    if !pending {
                        s.wake_reader();
                    }
                }
            });
        }
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        let body = self.body;
        self.clock.with(|s| {
            if let Some(id) = body {
                s.bodies.remove(&id);
            }
            s.on_request_end(now);
        });
    }
}

pin_project_lite::pin_project! {
    /// A socket that ends reads (EOF) and fails writes once the
    /// connection's [`Clock`] says it has had its time.
    pub struct TimedIo<T> {
        #[pin]
        inner: T,
        clock: Clock,
        timer: Pin<Box<Sleep>>,
        closed: Option<CloseReason>,
    }
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, clock: Clock) -> TimedIo<T> {
        TimedIo {
            inner,
            clock,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            closed: None,
        }
    }
}

/// Marks the connection closed for `reason` (counted and logged once).
fn close(closed: &mut Option<CloseReason>, reason: CloseReason) {
    if closed.is_none() {
        *closed = Some(reason);
        Metrics::global()
            .connections_closed
            .get_or_create(&CloseLabel { reason })
            .inc();
        tracing::debug!(?reason, "closing client connection");
    }
}

/// Arms the timer for the clock's next check, so a pending read or write
/// is woken when a deadline may have passed.
fn arm(timer: &mut Pin<Box<Sleep>>, clock: &Clock, cx: &mut Context<'_>, now: Instant) {
    let at = clock.with(|s| s.next_check(&clock.limits, now));
    timer.as_mut().reset(at);
    if timer.as_mut().poll(cx).is_ready() {
        cx.waker().wake_by_ref();
    }
}

impl<T: AsyncRead> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.closed.is_some() {
            return Poll::Ready(Ok(()));
        }
        let now = Instant::now();
        let clock = this.clock;
        if let Some((at, reason)) = clock.with(|s| s.read_deadline(&clock.limits)) {
            if now >= at {
                close(this.closed, reason);
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        match this.inner.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    clock.with(|s| s.on_read(now));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                arm(this.timer, clock, cx, now);
                clock.with(|s| s.reader = Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

/// The outcome of a write-side poll, with the write clock kept.
fn timed_write<R>(
    polled: Poll<io::Result<R>>,
    clock: &Clock,
    timer: &mut Pin<Box<Sleep>>,
    closed: &mut Option<CloseReason>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    match polled {
        Poll::Ready(result) => {
            clock.with(|s| s.write_blocked_since = None);
            Poll::Ready(result)
        }
        Poll::Pending => {
            let now = Instant::now();
            let deadline = clock.with(|s| {
                let since = *s.write_blocked_since.get_or_insert(now);
                since + clock.limits.write_stall
            });
            if now >= deadline {
                close(closed, CloseReason::WriteTimeout);
                return Poll::Ready(Err(write_timed_out()));
            }
            arm(timer, clock, cx, now);
            Poll::Pending
        }
    }
}

fn write_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "client read nothing for [server] write_timeout_secs",
    )
}

impl<T: AsyncWrite> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if *this.closed == Some(CloseReason::WriteTimeout) {
            return Poll::Ready(Err(write_timed_out()));
        }
        let polled = this.inner.poll_write(cx, buf);
        timed_write(polled, this.clock, this.timer, this.closed, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        if *this.closed == Some(CloseReason::WriteTimeout) {
            return Poll::Ready(Err(write_timed_out()));
        }
        let polled = this.inner.poll_write_vectored(cx, bufs);
        timed_write(polled, this.clock, this.timer, this.closed, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.closed == Some(CloseReason::WriteTimeout) {
            return Poll::Ready(Err(write_timed_out()));
        }
        let polled = this.inner.poll_flush(cx);
        timed_write(polled, this.clock, this.timer, this.closed, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.closed == Some(CloseReason::WriteTimeout) {
            return Poll::Ready(Err(write_timed_out()));
        }
        let polled = this.inner.poll_shutdown(cx);
        timed_write(polled, this.clock, this.timer, this.closed, cx)
    }
}

/// The gateway's router as a hyper service that reports each request's
/// start and end to the connection's clock, and gives each request the
/// connection's peer address (`ConnectInfo`: the client hint limits count by).
#[derive(Clone)]
pub struct TrackedService {
    pub router: axum::Router,
    pub clock: Clock,
    pub peer: std::net::SocketAddr,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for TrackedService {
    type Response = http::Response<TrackedBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, mut request: http::Request<hyper::body::Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let mut in_flight = self
            .clock
            .request_started(request.version() == http::Version::HTTP_2);
        let router = self.router.clone();
        Box::pin(async move {
            let response = tower::ServiceExt::oneshot(router, request).await?;
            in_flight.body_started();
            Ok(response.map(|body| TrackedBody {
                inner: body,
                in_flight,
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight, and
    /// tells the clock each time it is polled.
    pub struct TrackedBody {
        #[pin]
        inner: axum::body::Body,
        in_flight: RequestInFlight,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        this.in_flight.body_polled(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        write_stall: Duration::from_secs(30),
    };

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    struct Flag(std::sync::atomic::AtomicBool);
    impl futures::task::ArcWake for Flag {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_body_starting_to_wait_wakes_the_reader_to_arm_its_deadline() {
        // The reader armed its timer before the body existed (for the
        // periodic check); the body's write deadline can come sooner.
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        s.reader = Some(futures::task::waker(flag.clone()));
        s.on_body_start(t0);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(s.reader.is_none());
    }

    #[test]
    fn first_request_must_arrive_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 10), CloseReason::HeaderTimeout))
        );
        // Trickled bytes do not move it.
        s.on_read(at(t0, 5));
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 10), CloseReason::HeaderTimeout))
        );
    }

    #[test]
    fn no_deadline_while_a_request_is_in_flight() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        s.on_request_start(false);
        assert_eq!(s.read_deadline(&LIMITS), None);
        // The periodic check is no later than the shortest timeout.
        assert_eq!(s.next_check(&LIMITS, at(t0, 1)), at(t0, 11));
        s.on_request_end(at(t0, 100));
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 160), CloseReason::IdleTimeout))
        );
    }

    #[test]
    fn a_later_http1_header_is_timed_from_its_first_byte() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        s.on_request_start(false);
        s.on_request_end(at(t0, 1));
        s.on_read(at(t0, 30));
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 40), CloseReason::HeaderTimeout))
        );
        // A pipelined request read during the last one starts at its end.
        s.on_request_start(false);
        s.on_read(at(t0, 41));
        s.on_request_end(at(t0, 50));
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 60), CloseReason::HeaderTimeout))
        );
    }

    #[test]
    fn http2_frames_between_requests_do_not_start_a_header_timer() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        s.on_request_start(true);
        s.on_request_end(at(t0, 1));
        s.on_read(at(t0, 2)); // a PING or WINDOW_UPDATE
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 61), CloseReason::IdleTimeout))
        );
    }

    #[test]
    fn an_http2_body_not_polled_has_a_deadline() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        s.on_request_start(true);
        // Waiting for the handler: bounded by [limits], not here.
        assert_eq!(s.read_deadline(&LIMITS), None);
        let a = s.on_body_start(at(t0, 1));
        let b = s.on_body_start(at(t0, 2));
        s.bodies.insert(b, Some(at(t0, 20)));
        // The body polled longest ago decides.
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 31), CloseReason::WriteTimeout))
        );
        s.bodies.remove(&a);
        assert_eq!(
            s.read_deadline(&LIMITS),
            Some((at(t0, 50), CloseReason::WriteTimeout))
        );
        // A body waiting for blocks is the gateway's slowness, not the
        // client's: no deadline from it.
        s.bodies.insert(b, None);
        assert_eq!(s.read_deadline(&LIMITS), None);
        // On HTTP/1 a client that stops reading blocks the socket instead.
        let mut h1 = ClockState::new(t0);
        h1.on_request_start(false);
        h1.on_body_start(at(t0, 1));
        assert_eq!(h1.read_deadline(&LIMITS), None);
    }

    #[test]
    fn blocked_writes_have_a_deadline() {
        let t0 = Instant::now();
        let mut s = ClockState::new(t0);
        s.on_request_start(false);
        s.write_blocked_since = Some(at(t0, 3));
        assert_eq!(s.write_deadline(&LIMITS), Some(at(t0, 33)));
        assert_eq!(s.next_check(&LIMITS, at(t0, 3)), at(t0, 13));
    }
}
