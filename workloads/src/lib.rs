//! Workloads: gRPC clients that drive the cluster and record a history.
