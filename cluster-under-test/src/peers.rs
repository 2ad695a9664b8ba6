//! Clients for talking to other hserver nodes (replication, recovery, reads).
//!
//! Channels are created lazily and cached per address, with explicit connect
//! and request timeouts: a dead or paused peer must cost a bounded wait, never
//! a hang. Addresses come from the last ZooKeeper view the node saw, so
//! replication keeps working while ZooKeeper is away. With TLS on, peers
//! are reached over `https` with the node's TLS material
//! ([`crate::tls::TlsMaterial::peer_config`]): the same port serves clients
//! and peers, so there is no plaintext path between nodes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hstream_proto::internal::replica_client::ReplicaClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::tls::TlsMaterial;

/// How long to wait for a TCP connection to a peer.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// How long one replication or read call to a peer may take.
pub const PEER_REQUEST_TIMEOUT_MS: u64 = 2_000;

/// A cache of channels to peers, by `host:port`.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    tls: Option<ClientTlsConfig>,
}

impl Peers {
    /// Peers reached in plaintext, or over TLS with `tls`'s certificates.
    pub fn new(tls: Option<&TlsMaterial>) -> Peers {
        let handshake_timeout = Duration::from_millis(PEER_CONNECT_TIMEOUT_MS);
        Peers { channels: Mutex::default(), tls: tls.map(|material| material.peer_config(handshake_timeout)) }
    }

    /// A client for the peer at `address` (`host:port`).
    pub fn replica(&self, address: &str) -> Result<ReplicaClient<Channel>, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(address) {
            return Ok(ReplicaClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES));
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| tonic::Status::internal(format!("bad peer address {address}: {e}")))?
            .connect_timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS))
            .timeout(Duration::from_millis(PEER_REQUEST_TIMEOUT_MS))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| tonic::Status::internal(format!("TLS configuration for peer {address}: {e}")))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_string(), channel.clone());
        Ok(ReplicaClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Largest message peers exchange (recovery can move many batches).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
