//! Which packets of a node `loss` and `delay` act on: those it sends
//! (`out`, the default), those it receives (`in`), or both — on every link
//! of the node, or on the one link to or from a `peer`.
//!
//! Why separate: loss and delay share it, and outbound alone cannot make a
//! replica lag behind its sequencer (the replica would receive at full
//! speed, only its replies being slow); inbound can.
//!
//! Must never: match traffic of another namespace (every match names the
//! node's own interface).

/// The `direction` parameter's values.
pub const DIRECTIONS: &[&str] = &["out", "in", "both"];

/// Default direction: what the node sends.
pub const DIRECTION_DEFAULT: &str = "out";

/// One side of a node's traffic, as iptables sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Packets the node sends (the OUTPUT hook, by destination).
    Outbound,
    /// Packets the node receives (the INPUT hook, by source).
    Inbound,
}

impl Side {
    /// The sides a `direction` value names.
    pub fn of(direction: &str) -> Vec<Side> {
        match direction {
            "in" => vec![Side::Inbound],
            "both" => vec![Side::Outbound, Side::Inbound],
            _ => vec![Side::Outbound],
        }
    }

    /// The built-in hook the side's chain is jumped to from.
    pub fn hook(self) -> &'static str {
        match self {
            Side::Outbound => "OUTPUT",
            Side::Inbound => "INPUT",
        }
    }

    /// Suffix of the fault's chain tag, so the two sides get two chains.
    pub fn tag_suffix(self) -> &'static str {
        match self {
            Side::Outbound => "",
            Side::Inbound => "i",
        }
    }

    /// The iptables match of this side on `interface`, limited to the
    /// link with `peer_address` when given.
    pub fn matches(self, interface: &str, peer_address: Option<&str>) -> String {
        let (interface_flag, peer_flag) = match self {
            Side::Outbound => ("-o", "-d"),
            Side::Inbound => ("-i", "-s"),
        };
        let mut matches = format!("{interface_flag} {interface}");
        if let Some(address) = peer_address {
            matches.push_str(&format!(" {peer_flag} {address}/32"));
        }
        matches
    }

    /// The side's name in records.
    pub fn name(self) -> &'static str {
        match self {
            Side::Outbound => "outbound",
            Side::Inbound => "inbound",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: outbound matches by output interface and destination, inbound
    /// by input interface and source; `both` is the two.
    #[test]
    fn sides_match_their_own_hook_and_address() {
        assert_eq!(Side::of("both"), vec![Side::Outbound, Side::Inbound]);
        assert_eq!(Side::of("out"), vec![Side::Outbound]);
        assert_eq!(Side::Outbound.matches("v1", Some("10.1.0.3")), "-o v1 -d 10.1.0.3/32");
        assert_eq!(Side::Inbound.matches("v1", Some("10.1.0.3")), "-i v1 -s 10.1.0.3/32");
        assert_eq!(Side::Inbound.matches("v1", None), "-i v1");
        assert_eq!((Side::Inbound.hook(), Side::Outbound.hook()), ("INPUT", "OUTPUT"));
    }
}
