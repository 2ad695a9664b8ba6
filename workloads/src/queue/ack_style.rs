//! How a consumer acknowledges: in order as it receives, or like the
//! clients that find bugs in ack windows, checkpoints and redelivery —
//! out of order, part of each batch, late (near the ack timeout), or with
//! stalls. Each consumer draws one style when it starts (seeded) and keeps
//! it; the style is part of its name (`c3-partial`), so a history says who
//! acked how.
//!
//! Pure decisions, no I/O: the consumer asks what to ack, in which order,
//! with which buffer, and when to stall.

use std::time::Duration;

use hstream_proto::server::RecordId;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::acks::AckBuffer;

/// Share of a delivery a `partial` consumer acks right away; the rest
/// waits for its redelivery (and is then acked with the same chance).
pub const PARTIAL_ACK_PROBABILITY: f64 = 0.7;
/// A `late` consumer acks when its oldest id is this share of the ack
/// timeout old.
pub const LATE_ACK_SHARE: f64 = 0.8;
/// A `late` consumer's buffer never fills before it is due.
const LATE_BUFFER_IDS: usize = 1_000_000;
/// Chance per check (one a second) that a `slow` consumer stalls.
pub const STALL_PROBABILITY_PER_CHECK: f64 = 0.25;
/// Shortest and longest stall of a `slow` consumer.
pub const STALL_MS: (u64, u64) = (500, 2_500);

/// One way of acknowledging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckStyle {
    /// Acks every record, in arrival order, in buffered batches.
    InOrder,
    /// Acks every record, each flush in a shuffled order.
    OutOfOrder,
    /// Acks only part of each delivery; the rest comes back after the ack
    /// timeout.
    Partial,
    /// Holds acks until they are near the ack timeout.
    Late,
    /// Stops reading now and then for up to a few seconds (acks wait too).
    Slow,
}

impl AckStyle {
    /// Every style, in the order of their names.
    pub const ALL: [AckStyle; 5] =
        [AckStyle::InOrder, AckStyle::OutOfOrder, AckStyle::Partial, AckStyle::Late, AckStyle::Slow];

    /// The name in scenario files and consumer names.
    pub fn name(self) -> &'static str {
        match self {
            AckStyle::InOrder => "in-order",
            AckStyle::OutOfOrder => "out-of-order",
            AckStyle::Partial => "partial",
            AckStyle::Late => "late",
            AckStyle::Slow => "slow",
        }
    }

    /// The style called `name`, if any.
    pub fn from_name(name: &str) -> Option<AckStyle> {
        AckStyle::ALL.into_iter().find(|style| style.name() == name)
    }

    /// The ack buffer this style uses.
    pub fn buffer(self, size_limit: usize, age_limit: Duration, ack_timeout: Duration) -> AckBuffer {
        match self {
            AckStyle::Late => AckBuffer::new(LATE_BUFFER_IDS, ack_timeout.mul_f64(LATE_ACK_SHARE)),
            _ => AckBuffer::new(size_limit, age_limit),
        }
    }

    /// The ids of a delivery to buffer for acking now.
    pub fn to_ack(self, ids: Vec<RecordId>, rng: &mut ChaCha8Rng) -> Vec<RecordId> {
        match self {
            AckStyle::Partial => ids.into_iter().filter(|_| rng.random_bool(PARTIAL_ACK_PROBABILITY)).collect(),
            _ => ids,
        }
    }

    /// The order in which buffered ids are sent.
    pub fn order(self, mut ids: Vec<RecordId>, rng: &mut ChaCha8Rng) -> Vec<RecordId> {
        if self == AckStyle::OutOfOrder {
            ids.shuffle(rng);
        }
        ids
    }

    /// At a periodic check: how long to stop reading, if at all.
    pub fn stall(self, rng: &mut ChaCha8Rng) -> Option<Duration> {
        (self == AckStyle::Slow && rng.random_bool(STALL_PROBABILITY_PER_CHECK))
            .then(|| Duration::from_millis(rng.random_range(STALL_MS.0..=STALL_MS.1)))
    }
}

impl std::fmt::Display for AckStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Weights of the styles consumers draw from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckStyles(pub Vec<(AckStyle, u32)>);

impl Default for AckStyles {
    /// Every consumer acks in order, as before styles existed; scenarios
    /// opt into the others (`scenarios/default.yaml` mixes all five).
    fn default() -> AckStyles {
        AckStyles(vec![(AckStyle::InOrder, 1)])
    }
}

impl AckStyles {
    /// Whether some style has weight.
    pub fn is_valid(&self) -> bool {
        self.0.iter().any(|(_, weight)| *weight > 0)
    }

    /// A style drawn by weight.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> AckStyle {
        let total: u32 = self.0.iter().map(|(_, weight)| weight).sum();
        assert!(total > 0, "ack styles need some weight");
        let mut ticket = rng.random_range(0..total);
        for (style, weight) in &self.0 {
            if ticket < *weight {
                return *style;
            }
            ticket -= weight;
        }
        unreachable!("the ticket is below the total weight")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ids(n: u32) -> Vec<RecordId> {
        (0..n).map(|batch_index| RecordId { shard_id: 1, batch_id: 9, batch_index }).collect()
    }

    /// Goal: each style does its one thing — partial acks a part, out of
    /// order shuffles without losing ids, late waits for the ack timeout,
    /// slow stalls within its bounds — and the others change nothing.
    #[test]
    fn each_style_changes_only_its_own_behaviour() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let partial = AckStyle::Partial.to_ack(ids(1_000), &mut rng);
        assert!((600..800).contains(&partial.len()), "about 70 % acked: {}", partial.len());
        assert_eq!(AckStyle::InOrder.to_ack(ids(10), &mut rng), ids(10));
        let mut shuffled = AckStyle::OutOfOrder.order(ids(50), &mut rng);
        assert_ne!(shuffled, ids(50));
        shuffled.sort_by_key(|id| id.batch_index);
        assert_eq!(shuffled, ids(50));
        assert_eq!(AckStyle::Late.order(ids(5), &mut rng), ids(5));
        let late = AckStyle::Late.buffer(50, Duration::from_millis(100), Duration::from_secs(5));
        let normal = AckStyle::InOrder.buffer(50, Duration::from_millis(100), Duration::from_secs(5));
        let now = tokio::time::Instant::now();
        let (mut late, mut normal) = (late, normal);
        late.push(ids(60), now);
        normal.push(ids(60), now);
        assert!(!late.is_full() && normal.is_full());
        assert_eq!(late.deadline(), Some(now + Duration::from_secs(4)));
        let stalls: Vec<Duration> = (0..200).filter_map(|_| AckStyle::Slow.stall(&mut rng)).collect();
        assert!(stalls.len() > 20 && stalls.iter().all(|s| (500..=2_500).contains(&(s.as_millis() as u64))));
        assert!((0..200).all(|_| AckStyle::Late.stall(&mut rng).is_none()));
    }

    /// Goal: draws follow the weights and only weighted styles come up.
    #[test]
    fn styles_are_drawn_by_weight() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let styles = AckStyles(vec![(AckStyle::InOrder, 3), (AckStyle::Late, 1), (AckStyle::Slow, 0)]);
        let draws: Vec<AckStyle> = (0..4_000).map(|_| styles.draw(&mut rng)).collect();
        let late = draws.iter().filter(|s| **s == AckStyle::Late).count();
        assert!((800..1_200).contains(&late), "a quarter late: {late}");
        assert!(!draws.contains(&AckStyle::Slow));
        assert!(!AckStyles(vec![(AckStyle::Slow, 0)]).is_valid());
        assert_eq!(AckStyle::from_name("out-of-order"), Some(AckStyle::OutOfOrder));
    }
}
