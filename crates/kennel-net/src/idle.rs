//! Tunnels that move nothing either way for a while are closed: each holds two threads and
//! four descriptors in kennel, and a sandbox could open them and let them sit (issue 17,
//! item 8). One watcher thread for the whole proxy looks at every tunnel's byte count
//! now and then; counting is an atomic add per chunk the pumps move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long a tunnel may move nothing, either way, before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How often the watcher looks.
const CHECK_EVERY: Duration = Duration::from_secs(10);

type Close = Box<dyn Fn() + Send>;

struct Entry {
    id: u64,
    moved: Arc<AtomicU64>,
    seen: u64,
    quiet_since: Instant,
    close: Close,
}

/// The tunnels being watched.
pub struct Watch {
    entries: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
    idle: Duration,
}

/// A watched tunnel: forgotten (its closing handles released) when dropped.
pub struct Watched<'w> {
    watch: &'w Watch,
    id: u64,
    moved: Arc<AtomicU64>,
}

impl Watched<'_> {
    /// The counter the tunnel's pumps add the bytes they move to.
    pub fn moved(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.moved)
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        self.watch.lock().retain(|e| e.id != self.id);
    }
}

impl Watch {
    pub fn new(idle: Duration) -> Watch {
        Watch {
            entries: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            idle,
        }
    }

    /// Watches a tunnel until the returned handle is dropped: `close` ends it (shuts its
    /// sockets down) once it has been quiet for the timeout.
    pub fn add(&self, close: Close) -> Watched<'_> {
        let moved = Arc::new(AtomicU64::new(0));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Entry {
            id,
            moved: Arc::clone(&moved),
            seen: 0,
            quiet_since: Instant::now(),
            close,
        });
        Watched {
            watch: self,
            id,
            moved,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the tunnels quiet for the whole timeout at `now`; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut closed = 0;
        self.lock().retain_mut(|e| {
            let moved = e.moved.load(Ordering::Relaxed);
            if moved != e.seen {
                e.seen = moved;
                e.quiet_since = now;
                return true;
            }
            if now.saturating_duration_since(e.quiet_since) >= self.idle {
                (e.close)();
                closed += 1;
                return false;
            }
            true
        });
        closed
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The proxy's watch, its thread started on first use.
pub fn watch() -> &'static Watch {
    static WATCH: OnceLock<Watch> = OnceLock::new();
    WATCH.get_or_init(|| {
        let _ = thread::Builder::new()
            .name("kennel-proxy-idle".into())
            .spawn(|| loop {
                thread::sleep(CHECK_EVERY);
                if let Some(w) = WATCH.get() {
                    w.sweep(Instant::now());
                }
            });
        Watch::new(IDLE_TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn quiet_tunnels_are_closed_busy_and_ended_ones_are_not() {
        let w = Watch::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let closed_quiet = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed_quiet);
        let quiet = w.add(Box::new(move || flag.store(true, Ordering::SeqCst)));
        let busy = w.add(Box::new(|| panic!("a busy tunnel was closed")));
        let ended = w.add(Box::new(|| panic!("an ended tunnel was closed")));
        drop(ended);
        assert_eq!(w.len(), 2, "an ended tunnel is forgotten at once");
        assert_eq!(w.sweep(t0), 0);
        busy.moved().fetch_add(10, Ordering::Relaxed);
        assert_eq!(w.sweep(t0 + Duration::from_secs(59)), 0);
        busy.moved().fetch_add(10, Ordering::Relaxed);
        assert_eq!(w.sweep(t0 + Duration::from_secs(61)), 1);
        assert!(closed_quiet.load(Ordering::SeqCst));
        assert_eq!(w.len(), 1);
        drop(quiet);
        drop(busy);
        assert!(w.is_empty());
    }
}
