//! The daemon's stop signal: set once, awaited by the server.

use tokio::sync::watch;

/// A one-shot stop signal that any number of tasks can trigger or await.
/// A stop for a restart leaves the mounts to the next daemon.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Shutdown {
            tx: watch::channel(false).0,
            restart: Default::default(),
        }
    }

    /// Asks the daemon to stop without unmounting anything, for the next
    /// daemon to take its mounts over.
    pub fn trigger_restart(&self) {
        self.restart.store(true, std::sync::atomic::Ordering::SeqCst);
        self.trigger();
    }

    /// Whether the stop is for a restart.
    pub fn restarting(&self) -> bool {
        self.restart.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Asks the daemon to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once [`Shutdown::trigger`] was called.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
