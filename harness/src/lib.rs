//! The chaos controller.
