//! The outbox writer: stores accepted events and their notifications, committing many
//! concurrent webhooks in one transaction (a group commit), and answers each only once
//! its event is durable. One transaction per webhook would bound ingestion to what the
//! database commits per second; one per batch costs the same and carries hundreds.

use crate::{ServiceError, now_ms};
use junction_store::{NewEvent, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

/// Events waiting to be written, at most; further webhooks wait for room (back
/// pressure on providers rather than memory without bound).
const QUEUE: usize = 4096;
/// Events committed in one transaction, at most.
const BATCH: usize = 256;

type Reply = oneshot::Sender<Result<i64, StoreError>>;

#[derive(Clone)]
pub(crate) struct OutboxWriter {
    queue: mpsc::Sender<(NewEvent, Reply)>,
}

impl OutboxWriter {
    /// Starts the writing task; it ends when the last clone of the writer is dropped.
    pub(crate) fn start(store: Store, wake: Arc<Notify>) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(NewEvent, Reply)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while incoming.recv_many(&mut batch, BATCH).await > 0 {
                let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
                match store.insert_events(&events, now_ms()).await {
                    Ok(ids) => {
                        // One worker, not all: on SQLite every claim is a write on the one
                        // writer connection, and the ones that find nothing left would hold
                        // up the one that found the batch. A worker that claims a full
                        // batch wakes the next (`Services::deliver_due`).
                        wake.notify_one();
                        for (reply, id) in replies.into_iter().zip(ids) {
                            let _ = reply.send(Ok(id));
                        }
                    }
                    Err(e) => {
                        tracing::error!(events = events.len(), error = %e, "events could not be stored");
                        // Each webhook gets the failure as it is: a database that is away
                        // or full is a 503 its sender may retry, not an internal error.
                        for reply in replies {
                            let _ = reply.send(Err(e.for_another_waiter()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Stores one event; returns its id once it is committed.
    pub(crate) async fn write(&self, event: NewEvent) -> Result<i64, ServiceError> {
        let stopped = || ServiceError::Internal("the event writer has stopped".to_owned());
        let (reply, done) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| stopped())?;
        Ok(done.await.map_err(|_| stopped())??)
    }
}
