//! Wires a node to its listening socket and to SIGTERM/SIGINT. With TLS
//! on, every accepted connection must complete a TLS handshake (with a
//! client certificate signed by the CA when one is configured) before any
//! request is read; a failed handshake drops only that connection.

use std::sync::Arc;

use hstream_proto::internal::replica_server::ReplicaServer;
use hstream_proto::server::h_stream_api_server::HStreamApiServer;
use tokio::signal::unix::{signal, SignalKind};

use crate::api::Api;
use crate::log::replica::ReplicaService;
use crate::node::Node;
use crate::peers::MAX_MESSAGE_BYTES;

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is unusable.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// Address.
        address: String,
        /// Reason.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(String),
    /// The TLS configuration was refused by the gRPC server.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Serves until SIGTERM or SIGINT, then stops accepting and returns.
pub async fn serve(node: Arc<Node>) -> Result<(), ServeError> {
    let address = node.config.bind.clone();
    let bind_error = |reason: String| ServeError::Bind { address: address.clone(), reason };
    let socket: std::net::SocketAddr =
        address.parse().map_err(|e: std::net::AddrParseError| bind_error(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(socket).await.map_err(|e| bind_error(e.to_string()))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(node.clone().run_session());
    tokio::spawn(node.clone().run_reconcile());
    tokio::spawn(node.clone().run_trim());
    let api = HStreamApiServer::new(Api::new(node.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let replica = ReplicaServer::new(ReplicaService::new(node.logs.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let tls = node.tls.as_ref().map(|material| if material.is_mutual() { "mutual" } else { "server" });
    tracing::info!(node = node.info.id, %address, bugs = ?node.bugs().names(), tls = tls.unwrap_or("off"), "hserver serving");
    let mut builder = tonic::transport::Server::builder();
    if let Some(material) = &node.tls {
        builder = builder.tls_config(material.server_config()).map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    builder
        .tcp_nodelay(true)
        .add_service(api)
        .add_service(replica)
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await
        .map_err(|e| ServeError::Transport(e.to_string()))
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
