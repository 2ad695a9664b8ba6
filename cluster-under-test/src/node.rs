//! One hserver node: its ZooKeeper session, the reconcile loop that takes
//! and gives up roles, and the state the API handlers share.
//!
//! Roles (shard sequencers, subscription owners) are decided by
//! [`crate::placement`] from the last ZooKeeper snapshot and taken through
//! versioned writes. Losing ZooKeeper for a while changes nothing: the node
//! keeps its roles and serves from its last view. When the session has
//! expired the node registers again and the reconcile loop gives up the
//! roles ZooKeeper has meanwhile given to others (fencing makes the old
//! roles harmless until then).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use crate::bugs::{Bug, Bugs};
use crate::config::Config;
use crate::log::{recovery, LogContext, Logs};
use crate::meta::{Checkpoint, Meta, MetaError, NodeInfo, OwnerMeta, ShardMeta, StreamMeta, SubscriptionMeta};
use crate::peers::Peers;
use crate::placement::{self, NodeId};
use crate::store::{Store, StoreOptions, TrimBound};
use crate::subscription::owner::{self, OwnerSetup};
use crate::subscription::OwnerHandle;
use crate::tls::TlsMaterial;
use crate::view::View;

/// ZooKeeper session timeout hserver asks for.
pub const ZK_SESSION_TIMEOUT_MS: u64 = 6_000;
/// How often the reconcile loop runs.
pub const RECONCILE_INTERVAL_MS: u64 = 300;
/// Pause between ZooKeeper connection attempts.
pub const ZK_RETRY_MS: u64 = 1_000;
/// How often backlog retention runs.
pub const TRIM_INTERVAL_MS: u64 = 5_000;
/// What retention keeps under the `early-trim` bug, whatever the stream's
/// backlog: one second (the trim point only moves to a batch younger than
/// the cutoff, so some must be).
const EARLY_TRIM_BACKLOG_MS: i64 = 1_000;
/// Replicas delete expired batches only this long after the sequencer's
/// trim point passed them, so no reader still needs them.
pub const TRIM_MARGIN_MS: i64 = 60_000;

/// A running node's shared state.
pub struct Node {
    /// Effective configuration.
    pub config: Config,
    /// How others reach this node.
    pub info: NodeInfo,
    /// Metadata store.
    pub meta: Arc<Meta>,
    /// Shard log roles.
    pub logs: Arc<Logs>,
    /// Last metadata snapshot.
    pub view: RwLock<View>,
    /// Subscriptions this node owns.
    pub owners: Mutex<HashMap<String, OwnerHandle>>,
    busy: Mutex<HashSet<String>>,
    next_connection: AtomicU32,
    zk_connected: AtomicBool,
    /// When the node started.
    pub started: Instant,
    /// Checked TLS files when TLS is on (server side in [`crate::server`],
    /// peer side in the log context's [`crate::peers::Peers`]).
    pub tls: Option<TlsMaterial>,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory cannot be used.
    #[error("data directory {path}: {reason}")]
    Store {
        /// Directory.
        path: String,
        /// Store error.
        reason: String,
    },
}

impl Node {
    /// Opens the store and prepares the node; nothing runs yet. `tls` is
    /// the material [`TlsMaterial::load`] checked from `config.tls`.
    pub fn open(config: Config, tls: Option<TlsMaterial>) -> Result<Arc<Node>, NodeError> {
        assert_eq!(config.tls.is_some(), tls.is_some(), "TLS material must come from config.tls");
        let bugs = Bugs::new(config.bugs.iter().copied());
        let defaults = StoreOptions::default();
        let segment_bytes = config.segment_bytes.unwrap_or(defaults.segment_bytes);
        let options = StoreOptions { sync: !bugs.has(Bug::SkipFsync), segment_bytes };
        let store = Store::open(&config.data_dir, options)
            .map_err(|e| NodeError::Store { path: config.data_dir.display().to_string(), reason: e.to_string() })?;
        let ctx = Arc::new(LogContext::new(config.node_id, store, bugs, Peers::new(tls.as_ref())));
        let info = NodeInfo { id: config.node_id, host: config.host.clone(), port: config.port };
        ctx.learn_addresses([(info.id, info.address())]);
        Ok(Arc::new(Node {
            info,
            meta: Arc::new(Meta::new()),
            logs: Logs::new(ctx),
            view: RwLock::new(View::default()),
            owners: Mutex::default(),
            busy: Mutex::default(),
            next_connection: AtomicU32::new(1),
            zk_connected: AtomicBool::new(false),
            started: Instant::now(),
            tls,
            config,
        }))
    }

    /// The switched-on bugs.
    pub fn bugs(&self) -> &Bugs {
        &self.logs.ctx.bugs
    }

    /// A snapshot of the view.
    pub fn view(&self) -> View {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A fresh number for a consumer connection.
    pub fn next_connection(&self) -> u32 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the ZooKeeper session is connected now.
    pub fn zk_connected(&self) -> bool {
        self.zk_connected.load(Ordering::Relaxed)
    }

    /// Keeps a ZooKeeper session alive for the node's whole life: connect,
    /// register, watch; on expiry step down and start over.
    pub async fn run_session(self: Arc<Self>) {
        loop {
            let client = match self.connect_and_register().await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!("ZooKeeper not ready: {e}");
                    tokio::time::sleep(Duration::from_millis(ZK_RETRY_MS)).await;
                    continue;
                }
            };
            self.zk_connected.store(true, Ordering::Relaxed);
            tracing::info!(node = self.info.id, "registered in ZooKeeper");
            self.watch_session(client.state_watcher()).await;
            self.zk_connected.store(false, Ordering::Relaxed);
            self.meta.set_client(None).await;
            // Roles are kept: the client library also declares a session
            // expired when it merely could not reach ZooKeeper in time, and
            // stepping down then would stop every append for the outage.
            // Keeping them is safe: a successor seals the replicas (fencing
            // our sequencers) and bumps the owner epoch (failing our
            // checkpoint writes); once registered again, the reconcile loop
            // gives up exactly the roles ZooKeeper now names someone else for.
            tracing::warn!(node = self.info.id, "ZooKeeper session ended; keeping roles and registering again");
        }
    }

    async fn connect_and_register(&self) -> Result<zk::Client, MetaError> {
        let connect = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(ZK_SESSION_TIMEOUT_MS))
            .with_connection_timeout(Duration::from_millis(ZK_SESSION_TIMEOUT_MS))
            .connect(&self.config.zk);
        let client = tokio::time::timeout(Duration::from_millis(ZK_SESSION_TIMEOUT_MS), connect)
            .await
            .map_err(|_| MetaError::Unavailable("connect timed out".into()))?
            .map_err(|e| MetaError::Unavailable(e.to_string()))?;
        self.meta.set_client(Some(client.clone())).await;
        self.meta.ensure_layout().await?;
        self.meta.register(&self.info).await?;
        Ok(client)
    }

    /// Returns when the session is over (expired or closed).
    async fn watch_session(&self, mut watcher: zk::StateWatcher) {
        let mut disconnected_since: Option<Instant> = None;
        let session_timeout = Duration::from_millis(ZK_SESSION_TIMEOUT_MS);
        loop {
            let state = tokio::time::timeout(Duration::from_millis(500), watcher.changed()).await;
            let state = state.unwrap_or_else(|_| watcher.peek_state());
            match state {
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    disconnected_since = None;
                    self.zk_connected.store(true, Ordering::Relaxed);
                }
                zk::SessionState::Disconnected => {
                    self.zk_connected.store(false, Ordering::Relaxed);
                    let since = *disconnected_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > session_timeout {
                        self.session_lost("disconnected longer than the session timeout");
                    }
                }
                zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => {
                    self.session_lost("session expired");
                    return;
                }
            }
        }
    }

    /// The `exit-on-zk-loss` bug turns a lost session into an exit; the
    /// correct server carries on and re-registers once ZooKeeper is back.
    fn session_lost(&self, why: &str) {
        if self.bugs().has(Bug::ExitOnZkLoss) {
            tracing::error!("FATAL: ZooKeeper session lost ({why}); exiting");
            std::process::exit(1);
        }
    }

    /// Every [`RECONCILE_INTERVAL_MS`]: refresh the view, then take or give
    /// up roles to match placement.
    pub async fn run_reconcile(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(RECONCILE_INTERVAL_MS));
        loop {
            tick.tick().await;
            if !self.zk_connected() {
                continue;
            }
            if let Err(e) = self.reconcile_once().await {
                tracing::debug!("view refresh failed: {e}");
            }
        }
    }

    /// Refreshes the view and takes or gives up roles; also called right
    /// after metadata changes so new shards and subscriptions get a home
    /// without waiting for the next tick.
    pub async fn reconcile_once(self: &Arc<Self>) -> Result<View, MetaError> {
        let view = self.refresh_view().await?;
        self.reconcile_shards(&view);
        self.reconcile_subscriptions(&view);
        Ok(view)
    }

    /// The view, refreshed from ZooKeeper first when `wanted` says the
    /// cached one lacks something (and ZooKeeper answers).
    pub async fn view_with(self: &Arc<Self>, wanted: impl Fn(&View) -> bool) -> View {
        let view = self.view();
        if wanted(&view) {
            return view;
        }
        self.reconcile_once().await.unwrap_or(view)
    }

    async fn refresh_view(&self) -> Result<View, MetaError> {
        let nodes = self.meta.live_nodes().await?;
        let streams: BTreeMap<String, StreamMeta> = self
            .meta
            .read_all::<StreamMeta>("streams")
            .await?
            .into_iter()
            .map(|v| (v.value.name.clone(), v.value))
            .collect();
        let shards =
            self.meta.read_all::<ShardMeta>("shards").await?.into_iter().map(|v| (v.value.shard_id, v.value)).collect();
        let subscriptions = self
            .meta
            .read_all::<SubscriptionMeta>("subscriptions")
            .await?
            .into_iter()
            .map(|v| (v.value.id.clone(), v.value))
            .collect();
        let mut owners = BTreeMap::new();
        for name in self.meta.children("owners").await? {
            if let Some(v) = self.meta.read::<OwnerMeta>("owners", &name).await? {
                owners.insert(name, v.value);
            }
        }
        self.logs.ctx.learn_addresses(nodes.values().map(|n| (n.id, n.address())));
        let view = View { nodes, streams, shards, subscriptions, owners };
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view.clone();
        Ok(view)
    }

    /// Every [`TRIM_INTERVAL_MS`]: enforce each stream's backlog duration.
    /// The sequencer of a shard moves its trim point (recorded in ZooKeeper
    /// so a successor keeps it); every replica deletes batches older than
    /// the backlog plus a margin.
    pub async fn run_trim(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(TRIM_INTERVAL_MS));
        loop {
            tick.tick().await;
            let view = self.view();
            for shard in view.shards.values() {
                let Some(stream) = view.streams.get(&shard.stream) else { continue };
                let backlog_ms = if self.bugs().has(Bug::EarlyTrim) {
                    EARLY_TRIM_BACKLOG_MS
                } else {
                    i64::from(stream.backlog_seconds) * 1_000
                };
                let cutoff_ms = crate::log::sequencer::now_ms() - backlog_ms;
                // `early-trim` was written against the wall-clock rule too: with
                // the monotonic hold on, its one-second backlog would only take
                // effect a trim round (5 s) later.
                let wall_clock_only = self.bugs().has(Bug::WallclockTrim) || self.bugs().has(Bug::EarlyTrim);
                let hold = (!wall_clock_only).then(|| Duration::from_millis(backlog_ms.max(0) as u64));
                if let Some(sequencer) = self.logs.sequencer(shard.shard_id) {
                    let trim_before = sequencer.advance_trim(cutoff_ms, hold);
                    if trim_before > shard.trim_before {
                        self.record_trim(shard.shard_id, trim_before).await;
                    }
                }
                if shard.replicas.contains(&self.info.id) {
                    // A replica removes what the sequencer's trim point (kept in
                    // ZooKeeper) says is expired, not what its own wall clock says.
                    let bound = if wall_clock_only {
                        TrimBound::OlderThan(cutoff_ms - TRIM_MARGIN_MS)
                    } else {
                        TrimBound::Below(shard.trim_before)
                    };
                    let removed = self.logs.ctx.store.trim(shard.shard_id, bound).await;
                    if let Ok(count @ 1..) = removed {
                        tracing::info!(shard = shard.shard_id, count, "trimmed expired batches");
                    }
                }
            }
        }
    }

    async fn record_trim(&self, shard: u64, trim_before: u64) {
        let Ok(Some(mut current)) = self.meta.read::<ShardMeta>("shards", &shard.to_string()).await else { return };
        if current.value.trim_before >= trim_before {
            return;
        }
        current.value.trim_before = trim_before;
        let _ = self.meta.cas("shards", &shard.to_string(), &current.value, current.version).await;
    }

    /// Where each shard's sequencer should be, given the view.
    pub fn shard_placement(&self, view: &View) -> BTreeMap<u64, NodeId> {
        let live: Vec<NodeId> = view.nodes.keys().copied().collect();
        let items: Vec<placement::Item<u64>> = view
            .shards
            .values()
            .map(|s| placement::Item {
                key: s.shard_id,
                current: view.sequencer_of(s.shard_id),
                eligible: s.replicas.clone(),
            })
            .collect();
        placement::place(&items, &live, self.bugs().has(Bug::UnbalancedPlacement))
    }

    /// Where each subscription's owner should be, given the view.
    pub fn subscription_placement(&self, view: &View) -> BTreeMap<String, NodeId> {
        let live: Vec<NodeId> = view.nodes.keys().copied().collect();
        let items: Vec<placement::Item<String>> = view
            .subscriptions
            .keys()
            .map(|id| placement::Item { key: id.clone(), current: view.owner_of(id), eligible: vec![] })
            .collect();
        placement::place(&items, &live, self.bugs().has(Bug::UnbalancedPlacement))
    }

    fn reconcile_shards(self: &Arc<Self>, view: &View) {
        let me = self.info.id;
        for (shard, epoch) in self.logs.held() {
            let current = view.shards.get(&shard);
            if current.is_none_or(|s| s.sequencer != Some(me) || s.epoch != epoch) {
                self.logs.step_down(shard, "ZooKeeper names another sequencer or epoch");
            }
        }
        for (shard, node) in self.shard_placement(view) {
            if node != me || self.logs.sequencer(shard).is_some() {
                continue;
            }
            let key = format!("shard/{shard}");
            if !self.claim(&key) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = recovery::take_over(&this.logs, &this.meta, shard).await {
                    tracing::warn!(shard, "takeover failed: {e}");
                }
                this.release(&key);
            });
        }
    }

    fn reconcile_subscriptions(self: &Arc<Self>, view: &View) {
        let me = self.info.id;
        {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.retain(|id, handle| {
                let keep = !handle.is_stopped()
                    && view.subscriptions.contains_key(id)
                    && view.owners.get(id).is_some_and(|o| o.node == me && o.epoch == handle.epoch);
                if !keep {
                    handle.stop();
                }
                keep
            });
        }
        for (id, node) in self.subscription_placement(view) {
            let owned = self.owners.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id);
            let key = format!("subscription/{id}");
            if node != me || owned || !self.claim(&key) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.take_subscription(&id).await {
                    tracing::warn!(subscription = %id, "ownership takeover failed: {e}");
                }
                this.release(&key);
            });
        }
    }

    async fn take_subscription(self: &Arc<Self>, id: &str) -> Result<(), MetaError> {
        let subscription = self
            .meta
            .read::<SubscriptionMeta>("subscriptions", id)
            .await?
            .ok_or_else(|| MetaError::NotFound(id.to_string()))?
            .value;
        let stream = self
            .meta
            .read::<StreamMeta>("streams", &subscription.stream)
            .await?
            .ok_or_else(|| MetaError::NotFound(subscription.stream.clone()))?
            .value;
        let epoch = match self.meta.read::<OwnerMeta>("owners", id).await? {
            Some(current) => {
                let next = OwnerMeta { node: self.info.id, epoch: current.value.epoch + 1 };
                self.meta.cas("owners", id, &next, current.version).await?;
                next.epoch
            }
            None => {
                self.meta.create("owners", id, &OwnerMeta { node: self.info.id, epoch: 1 }).await?;
                1
            }
        };
        let checkpoint = match self.meta.read::<Checkpoint>("checkpoints", id).await? {
            Some(v) => v,
            None => {
                let first = Checkpoint { positions: subscription.start.clone() };
                self.meta.create("checkpoints", id, &first).await?;
                crate::meta::Versioned { value: first, version: 0 }
            }
        };
        let this = Arc::downgrade(self);
        let handle = owner::start(OwnerSetup {
            ctx: self.logs.ctx.clone(),
            meta: self.meta.clone(),
            subscription,
            epoch,
            shards: stream.shard_ids.clone(),
            checkpoint: checkpoint.value,
            checkpoint_version: checkpoint.version,
            sequencer_of: Arc::new(move |shard| this.upgrade().and_then(|n| n.view().sequencer_of(shard))),
        });
        tracing::info!(subscription = id, epoch, "took ownership of subscription");
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), handle);
        Ok(())
    }

    fn claim(&self, key: &str) -> bool {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string())
    }

    fn release(&self, key: &str) {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}
