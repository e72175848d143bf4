//! `WatchMessages`: a server stream of a space's new messages, with every limit explicit.
//!
//! - A cap on open streams per principal ([`GrpcLimits::watch_max_per_principal`]).
//! - A bounded buffer per watcher ([`GrpcLimits::watch_buffer`]): a client that does not
//!   read fills it, and is cut off with `RESOURCE_EXHAUSTED`; so is one that falls behind
//!   the process-wide feed. Memory never grows with a slow consumer.
//! - A message rate per stream ([`GrpcLimits::watch_messages_per_sec`]): deliveries are
//!   paced; a space busier than that for long makes the watcher lag, and it is cut off.
//! - A maximum duration ([`GrpcLimits::watch_max_duration`]): the stream then ends with
//!   `DEADLINE_EXCEEDED` and the client reconnects (and is authorised again).
//! - Permission is re-checked every [`GrpcLimits::watch_recheck`], so a revoked member
//!   stops receiving within that time.
//! - When the server stops (after its drain), the stream ends with `UNAVAILABLE`, which
//!   clients retry, instead of being cut without a status when the process exits.
//!
//! The call's `complete` audit record is queued when the stream ends, with its final code,
//! before the client is sent that code: once a client has seen its stream end, the record
//! is among those the audit writer commits at shutdown.

use super::call::{GrpcState, Op, WatchSlot};
use super::convert;
use super::proto::{Message, WatchMessagesRequest};
use super::status::GrpcError;
use crate::lifecycle::Phase;
use crate::pipeline::Draft;
use natterjack_core::domain::{Permissions, SpaceId};
use natterjack_core::ports::MessageRecord;
use natterjack_core::principal::Principal;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Opens a watch stream after the whole pipeline admitted it.
pub(crate) async fn open(
    state: &GrpcState,
    req: Request<WatchMessagesRequest>,
) -> Result<Response<ReceiverStream<Result<Message, Status>>>, Status> {
    let op = Op {
        method: "WatchMessages",
        target: format!("space_id={}", req.get_ref().space_id),
        space: Some(req.get_ref().space_id),
    };
    let mut draft = state.draft("Spaces", &op);
    let setup = async {
        let admitted = state.open(&req, "Spaces", &op, &mut draft).await?;
        let access = admitted.access()?;
        let feed = state.app.service.watch_messages(&access)?;
        let slot = state.watch_slot(access.principal().id())?;
        Ok::<_, GrpcError>((access.principal().clone(), access.space(), feed, slot))
    }
    .await;
    let (principal, space, feed, slot) = match setup {
        Ok(ready) => ready,
        Err(e) => {
            let status = e.to_status(draft.request_id());
            state.finish(draft, Err(&e)).await;
            return Err(status);
        }
    };
    // One extra slot, always kept free for the status that ends the stream.
    let (tx, rx) = mpsc::channel(state.limits.watch_buffer.max(1) + 1);
    let state = state.clone();
    tokio::spawn(async move {
        let stream = Stream {
            state: &state,
            principal,
            space,
            tx: &tx,
            _slot: slot,
        };
        let end = stream.deliver(feed).await;
        finish(&state, draft, &tx, end).await;
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// How a stream ended.
enum End {
    /// The client went away.
    Gone,
    /// Refused, cut off, or out of time.
    Refused(GrpcError),
}

async fn finish(
    state: &GrpcState,
    draft: Draft,
    tx: &mpsc::Sender<Result<Message, Status>>,
    end: End,
) {
    match end {
        End::Gone => state.finish(draft, Ok(())).await,
        End::Refused(e) => {
            let status = e.to_status(draft.request_id());
            state.finish(draft, Err(&e)).await;
            // One slot of the buffer is always kept free for this verdict.
            let _ = tx.try_send(Err(status));
        }
    }
}

struct Stream<'a> {
    state: &'a GrpcState,
    principal: Principal,
    space: SpaceId,
    tx: &'a mpsc::Sender<Result<Message, Status>>,
    _slot: WatchSlot,
}

impl Stream<'_> {
    async fn deliver(&self, mut feed: broadcast::Receiver<MessageRecord>) -> End {
        let limits = self.state.limits;
        let deadline = Instant::now() + limits.watch_max_duration;
        let spacing = Duration::from_secs(1) / limits.watch_messages_per_sec.max(1);
        let mut next_send = Instant::now();
        let mut next_check = Instant::now() + limits.watch_recheck;
        let stopping = self.state.app.lifecycle.reached(Phase::Stopping);
        tokio::pin!(stopping);
        loop {
            let posted = tokio::select! {
                () = &mut stopping => return End::Refused(GrpcError::ShuttingDown),
                () = sleep_until(deadline) => return End::Refused(GrpcError::StreamExpired),
                () = self.tx.closed() => return End::Gone,
                () = sleep_until(next_check) => {
                    if let Err(e) = self.still_allowed().await {
                        return End::Refused(e);
                    }
                    next_check = Instant::now() + limits.watch_recheck;
                    continue;
                }
                posted = feed.recv() => posted,
            };
            let message = match posted {
                Ok(m) if m.space == self.space => m,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return End::Refused(GrpcError::SlowConsumer);
                }
                Err(broadcast::error::RecvError::Closed) => return End::Gone,
            };
            // Pace the stream; time spent waiting here lets the feed run ahead, which ends
            // in `Lagged` for a space busier than the allowed rate.
            if next_send > Instant::now() {
                tokio::select! {
                    () = sleep_until(next_send.min(deadline)) => {}
                    () = self.tx.closed() => return End::Gone,
                }
            }
            next_send = next_send.max(Instant::now()) + spacing;
            // The last free slot is the verdict's: a buffer that full is a slow consumer.
            if self.tx.capacity() <= 1 {
                return End::Refused(GrpcError::SlowConsumer);
            }
            match self.tx.try_send(Ok(convert::message(message))) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return End::Refused(GrpcError::SlowConsumer);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return End::Gone,
            }
        }
    }

    async fn still_allowed(&self) -> Result<(), GrpcError> {
        self.state
            .app
            .service
            .authorize(&self.principal, self.space, Permissions::READ)
            .await?;
        Ok(())
    }
}
