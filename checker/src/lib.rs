//! Checker: history in, verdict out. Pure: no async runtime, no clock.
