//! The daemon's stop signal: set once, awaited by the server.

use tokio::sync::watch;

/// A one-shot stop signal that any number of tasks can trigger or await.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Shutdown {
            tx: watch::channel(false).0,
        }
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
