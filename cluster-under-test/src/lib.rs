//! hserver: an HStream-compatible streaming server.
