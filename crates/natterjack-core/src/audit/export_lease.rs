//! The export lease port: which one process of a deployment exports a sink.
//!
//! Several `serve` processes can share one database, and each is configured with the same
//! sinks. Were every one of them to export, a collector would receive each record once per
//! process. So each sink has a lease that one process holds at a time: only the holder
//! sends, from the sink's shared cursor, and the others wait and try again. The lease must
//! free itself when its holder dies without a word (`kill -9`, a lost host), or a crash
//! would stop export for good: the backends tie it to something the operating system or the
//! database server releases on the holder's death (a PostgreSQL session, an open file).

use crate::ports::StoreError;
use async_trait::async_trait;

/// Hands out the lease of each sink of one database.
pub trait ExportLeases: Send + Sync + 'static {
    /// The lease of the sink named `sink`, not yet taken: the exporter of that sink keeps it
    /// for as long as it runs.
    fn lease(&self, sink: &str) -> Box<dyn ExportLease>;
}

/// One sink's lease, as seen by one process.
#[async_trait]
pub trait ExportLease: Send + Sync + 'static {
    /// Takes the lease if it is free, or confirms that this process still holds it:
    /// `Ok(true)` while this process holds it, `Ok(false)` while another one does. An `Err`
    /// means that whatever carried the lease is gone (a lease held until then is lost, and
    /// may already be another process's): the exporter must stop sending at once. The
    /// next call starts over. Bounded in time: a call that cannot finish soon fails.
    async fn hold(&mut self) -> Result<bool, StoreError>;

    /// Gives the lease up (if held), so that another process takes over without waiting
    /// for this one's death to be noticed. Called when the exporter stops.
    async fn release(&mut self);
}
