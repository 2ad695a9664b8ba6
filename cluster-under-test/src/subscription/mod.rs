//! Subscriptions: the read path. One node owns a subscription's state; its
//! consumers form a group over `StreamingFetch`; delivery is at-least-once
//! and, per shard, in id order apart from redeliveries.

pub mod ack_window;
pub mod owner;
mod reader;

pub use owner::{OwnerHandle, SubscriptionEvent};
pub use reader::tail_positions;
