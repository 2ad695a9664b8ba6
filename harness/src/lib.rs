//! The chaos controller.

pub mod runtime;
