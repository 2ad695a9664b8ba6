//! The node-to-node `Replica` gRPC service: store, seal, fetch, and reads of
//! committed batches from the shard's sequencer.
//!
//! A replica never decides what is committed; it stores what sequencers send
//! (refusing epochs it has sealed past) and reports what it holds. Only the
//! sequencer answers committed reads.

use std::sync::Arc;
use std::time::Duration;

use hstream_proto::internal::replica_server::Replica;
use hstream_proto::internal::{
    FetchRequest, FetchResponse, ReadCommittedRequest, ReadCommittedResponse, SealRequest, SealResponse, StoreRequest,
    StoreResponse,
};
use tonic::{Request, Response, Status};

use super::ids::epoch_of;
use super::sequencer::{from_wire, store_local, to_wire, StoreFailure};
use super::Logs;

/// Longest a committed read waits for new batches.
pub const MAX_READ_WAIT_MS: u32 = 2_000;
/// Most batches one committed read returns.
pub const MAX_READ_BATCHES: u32 = 512;

/// The replica service of one node.
pub struct ReplicaService {
    logs: Arc<Logs>,
}

impl ReplicaService {
    /// A service over this node's logs.
    pub fn new(logs: Arc<Logs>) -> Self {
        ReplicaService { logs }
    }
}

#[tonic::async_trait]
impl Replica for ReplicaService {
    async fn store(&self, request: Request<StoreRequest>) -> Result<Response<StoreResponse>, Status> {
        let request = request.into_inner();
        let batch = request.batch.ok_or_else(|| Status::invalid_argument("store without a batch"))?;
        match store_local(&self.logs.ctx, request.shard_id, request.epoch, from_wire(batch)).await {
            Ok(()) => Ok(Response::new(StoreResponse {})),
            Err(StoreFailure::Fenced(why)) => Err(Status::failed_precondition(why)),
            Err(StoreFailure::Gave(why)) => Err(Status::unavailable(why)),
        }
    }

    async fn seal(&self, request: Request<SealRequest>) -> Result<Response<SealResponse>, Status> {
        let request = request.into_inner();
        let ctx = &self.logs.ctx;
        let fence = ctx.fence(request.shard_id);
        let _exclusive = fence.write().await;
        let sealed = if request.epoch > 0 {
            ctx.store.seal(request.shard_id, request.epoch).await.map_err(|e| Status::unavailable(e.to_string()))?
        } else {
            ctx.store.sealed_epoch(request.shard_id)
        };
        if sealed > request.epoch && request.epoch > 0 {
            return Err(Status::failed_precondition(format!(
                "shard {} already sealed at epoch {sealed}",
                request.shard_id
            )));
        }
        if request.epoch > 0 {
            // Our own sequencer of an older epoch is fenced now too.
            if let Some(sequencer) = self.logs.sequencer(request.shard_id) {
                if sequencer.epoch < request.epoch {
                    self.logs.step_down(request.shard_id, "sealed by a newer epoch");
                }
            }
        }
        let limit = if request.epoch > 0 { request.epoch } else { u64::MAX };
        let batch_ids = ctx
            .store
            .ids_from(request.shard_id, request.from_batch_id)
            .into_iter()
            .filter(|id| epoch_of(*id) < limit)
            .collect();
        Ok(Response::new(SealResponse { batch_ids }))
    }

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<FetchResponse>, Status> {
        let request = request.into_inner();
        let mut batches = Vec::new();
        for id in request.batch_ids {
            let found = self.logs.ctx.store.get(request.shard_id, id).map_err(|e| Status::internal(e.to_string()))?;
            if let Some(batch) = found {
                batches.push(to_wire(&batch));
            }
        }
        Ok(Response::new(FetchResponse { batches }))
    }

    async fn read_committed(
        &self,
        request: Request<ReadCommittedRequest>,
    ) -> Result<Response<ReadCommittedResponse>, Status> {
        let request = request.into_inner();
        let max = request.max_batches.clamp(1, MAX_READ_BATCHES) as usize;
        let wait = Duration::from_millis(u64::from(request.wait_ms.min(MAX_READ_WAIT_MS)));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let sequencer = self.logs.sequencer(request.shard_id).ok_or_else(|| {
                Status::failed_precondition(format!("node does not sequence shard {}", request.shard_id))
            })?;
            let batches = sequencer.read_committed(request.from_batch_id, max).await?;
            let shape = sequencer.shape();
            let (tail_batch_id, epoch) = (shape.tail(), shape.current_epoch);
            if !batches.is_empty() || tokio::time::Instant::now() >= deadline {
                let batches = batches.iter().map(to_wire).collect();
                return Ok(Response::new(ReadCommittedResponse { batches, tail_batch_id, epoch }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
