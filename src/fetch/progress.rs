//! When bytes last arrived from each provider, seen at the transport. A
//! provider still sending is working through its queue of wants, not
//! stalled, however long one want has waited; hedging it would mostly get
//! the same block twice.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::AsyncRead;
use parking_lot::Mutex;

use crate::session::ProviderId;

/// Most providers remembered; older entries go first when it fills.
const MAX_PROVIDERS: usize = 10_000;

/// Progress is noted at most this often per reader (each note takes a lock).
const NOTE_EVERY: Duration = Duration::from_millis(5);

#[derive(Clone, Default)]
pub struct LinkProgress(Arc<Mutex<HashMap<ProviderId, Instant>>>);

impl LinkProgress {
    /// Bytes just arrived from `provider`.
    pub fn note(&self, provider: &ProviderId) {
        let now = Instant::now();
        let mut seen = self.0.lock();
        if seen.len() >= MAX_PROVIDERS && !seen.contains_key(provider) {
            let horizon = now - Duration::from_secs(60);
            seen.retain(|_, at| *at > horizon);
            if seen.len() >= MAX_PROVIDERS {
                return;
            }
        }
        seen.insert(provider.clone(), now);
    }

    /// When bytes last arrived from `provider`.
    pub fn last(&self, provider: &ProviderId) -> Option<Instant> {
        self.0.lock().get(provider).copied()
    }

    /// Wraps a reader so that every read from it counts as progress.
    pub fn reader<R>(&self, provider: ProviderId, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            provider,
            progress: self.clone(),
            noted: None,
        }
    }

    /// Notes progress for a chunk read elsewhere, at most every few ms.
    pub fn note_throttled(&self, provider: &ProviderId, noted: &mut Option<Instant>) {
        if noted.is_none_or(|at| at.elapsed() >= NOTE_EVERY) {
            self.note(provider);
            *noted = Some(Instant::now());
        }
    }
}

pub struct ProgressReader<R> {
    inner: R,
    provider: ProviderId,
    progress: LinkProgress,
    noted: Option<Instant>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ProgressReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(n)) if n > 0) {
            this.progress
                .note_throttled(&this.provider, &mut this.noted);
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_count_as_progress() {
        let progress = LinkProgress::default();
        let provider = ProviderId::Http("http://example.test".into());
        assert!(progress.last(&provider).is_none());
        let mut reader = progress.reader(provider.clone(), &b"some bytes"[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"some bytes");
        assert!(progress.last(&provider).is_some());
    }
}
