//! Clock faults: `clock-skew`, `clock-jump` and `clock-strobe` move one
//! node's clock away from the true time; healing puts it back.
//!
//! Why: retention (a stream's backlog duration) and ack timeouts are judged
//! against clocks, and a server that trusts its wall clock trims or
//! redelivers on a node whose clock is wrong. The machine's clock is shared
//! by every node, so each node's clock is moved through a [`ClockDial`] the
//! runtime hands out (a libfaketime control file); this module never learns
//! how the dial works.
//!
//! - `clock-skew`: a constant offset, `offset_s` seconds (default 5). With
//!   several targets the sign alternates (the first gets `+offset_s`, the
//!   second `-offset_s`, ...), so the nodes disagree both ways.
//! - `clock-jump`: every target jumps by `offset_s` (default 3600: an hour
//!   ahead; negative jumps back).
//! - `clock-strobe`: every target flips between `+offset_s` (default 10)
//!   and the true time, each for half of `period_ms` (default 2000), from a
//!   thread of this nemesis until healed.
//!
//! Must never: leave a clock off the true time after `stop` or `teardown`,
//! or leave a strobe thread running (each one stops when told, and by itself
//! after [`STROBE_LIMIT`]).

use crate::apply::require_targets;
use crate::error::NemesisError;
use crate::params::Params;
use crate::target::{ClockDial, ClusterTarget};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Fault names handled by [`ClockNemesis`].
pub const CLOCK_FAULTS: &[&str] = &["clock-skew", "clock-jump", "clock-strobe"];

/// Parameters every clock fault takes (`period_ms` only means something to
/// `clock-strobe`).
pub const CLOCK_PARAMS: &[&str] = &["offset_s", "period_ms"];

/// The largest offset, either way: a day.
pub const MAX_OFFSET_S: f64 = 86_400.0;

/// The shortest strobe period: libfaketime rereads its control file at most
/// once a second, so each half must last at least that long to be seen.
pub const MIN_STROBE_PERIOD_MS: u64 = 2_000;

/// A strobe thread ends by itself after this long even if never healed.
pub const STROBE_LIMIT: Duration = Duration::from_secs(3_600);

/// A strobe in progress: the thread and the channel that stops it.
struct Strobe {
    stop: Sender<()>,
    thread: JoinHandle<Result<(), String>>,
}

/// Moves node clocks and remembers every dial it turned, to heal them.
#[derive(Default)]
pub struct ClockNemesis {
    /// Every dial turned away from the true time and not healed yet.
    dials: BTreeMap<String, ClockDial>,
    strobes: Vec<Strobe>,
}

impl std::fmt::Debug for ClockNemesis {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<&String> = self.dials.keys().collect();
        formatter.debug_struct("ClockNemesis").field("off", &nodes).field("strobes", &self.strobes.len()).finish()
    }
}

/// What a clock fault does, read from its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    /// Offsets of alternating sign.
    Skew(f64),
    /// The same offset everywhere.
    Jump(f64),
    /// Flip between the offset and the true time.
    Strobe { offset_s: f64, period: Duration },
}

impl Motion {
    fn read(fault: &FaultSpec) -> Result<Motion, NemesisError> {
        let params = Params::new(&fault.name, &fault.params, CLOCK_PARAMS)?;
        let strobe = fault.name == "clock-strobe";
        if params.has("period_ms") && !strobe {
            return Err(params.error("period_ms", "given", "no period: only clock-strobe takes one"));
        }
        let default = match fault.name.as_str() {
            "clock-skew" => 5.0,
            "clock-jump" => 3_600.0,
            _ => 10.0,
        };
        let offset_s = params.number("offset_s", -MAX_OFFSET_S, MAX_OFFSET_S, default)?;
        Ok(match fault.name.as_str() {
            "clock-skew" => Motion::Skew(offset_s),
            "clock-jump" => Motion::Jump(offset_s),
            _ => {
                let period_ms = params.whole("period_ms", MIN_STROBE_PERIOD_MS, 600_000, MIN_STROBE_PERIOD_MS)?;
                Motion::Strobe { offset_s, period: Duration::from_millis(period_ms) }
            }
        })
    }

    /// The offset the `index`-th target is set to first.
    fn offset(self, index: usize) -> f64 {
        match self {
            Motion::Skew(offset_s) if index % 2 == 1 => -offset_s,
            Motion::Skew(offset_s) | Motion::Jump(offset_s) | Motion::Strobe { offset_s, .. } => offset_s,
        }
    }
}

impl ClockNemesis {
    /// A nemesis that has moved no clock yet.
    pub fn new() -> ClockNemesis {
        ClockNemesis::default()
    }

    /// Stop every strobe, then put every dial back to the true time.
    fn restore_all(&mut self, fault: &str) -> Result<Value, NemesisError> {
        let mut failures = Vec::new();
        for strobe in self.strobes.drain(..) {
            // A send error means the thread already ended; join says how.
            let _ = strobe.stop.send(());
            match strobe.thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => failures.push(format!("strobe: {reason}")),
                Err(_) => failures.push("strobe thread panicked".to_string()),
            }
        }
        let mut restored = Vec::new();
        let dials = std::mem::take(&mut self.dials);
        for (node, dial) in dials {
            match dial.set(0.0) {
                Ok(()) => restored.push(node),
                Err(error) => {
                    failures.push(error.to_string());
                    self.dials.insert(node, dial);
                }
            }
        }
        if failures.is_empty() {
            Ok(json!({ "fault": fault, "restored": restored }))
        } else {
            Err(NemesisError::Unsupported {
                fault: fault.to_string(),
                reason: format!("could not restore the true time: {}", failures.join("; ")),
            })
        }
    }
}

impl Nemesis for ClockNemesis {
    fn handled(&self) -> &'static [&'static str] {
        CLOCK_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(CLOCK_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        require_targets(&fault.name, targets)?;
        let motion = Motion::read(fault)?;
        let mut clocks = Vec::new();
        let mut dials = Vec::new();
        for (index, node) in targets.iter().enumerate() {
            let failed = |source| NemesisError::Target {
                fault: fault.name.clone(),
                node: node.clone(),
                applied: json!({ "fault": fault.name, "clocks": clocks.clone() }),
                source: Box::new(source),
            };
            let dial = target.clock(node).map_err(failed)?;
            let offset_s = motion.offset(index);
            // Remembered before it is turned, so a half-applied fault heals too.
            self.dials.insert(node.clone(), dial.clone());
            dial.set(offset_s).map_err(failed)?;
            clocks.push(json!({ "node": node, "offset_s": offset_s }));
            dials.push(dial);
        }
        let mut record = json!({ "fault": fault.name, "clocks": clocks });
        if let Motion::Strobe { offset_s, period } = motion {
            let (stop, stopped) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("{}-strobe", fault.name))
                .spawn(move || strobe(&dials, offset_s, period / 2, &stopped))
                .map_err(|error| NemesisError::Unsupported {
                    fault: fault.name.clone(),
                    reason: format!("could not start the strobe thread: {error}"),
                })?;
            self.strobes.push(Strobe { stop, thread });
            record["period_ms"] = json!(period.as_millis() as u64);
        }
        Ok(record)
    }

    fn stop(&mut self, fault: &FaultSpec, _target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(CLOCK_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.restore_all(&fault.name)
    }

    fn teardown(&mut self, _target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.restore_all(CLOCK_FAULTS[0])
    }
}

/// Flip `dials` between the true time and `offset_s` every `half` until
/// told to stop (or [`STROBE_LIMIT`] passes); starts at the offset, which
/// the caller has already set.
fn strobe(dials: &[ClockDial], offset_s: f64, half: Duration, stopped: &mpsc::Receiver<()>) -> Result<(), String> {
    let began = Instant::now();
    let mut at_offset = true;
    while began.elapsed() < STROBE_LIMIT {
        match stopped.recv_timeout(half) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        at_offset = !at_offset;
        let now = if at_offset { offset_s } else { 0.0 };
        for dial in dials {
            dial.set(now).map_err(|error| error.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{names, FakeTarget};

    /// Goal: skew gives the targets offsets of alternating sign, jump the
    /// same offset, and healing puts every clock back to the true time.
    #[test]
    fn skew_alternates_jump_agrees_and_heal_restores() {
        let target = FakeTarget::new(&["n1", "n2", "n3"]);
        let mut nemesis = ClockNemesis::new();
        let skew = FaultSpec { name: "clock-skew".into(), params: json!({"offset_s": 30}) };
        let record = nemesis.start(&skew, &names(&["n1", "n2"]), &target).expect("skew");
        assert_eq!(record["clocks"][1], json!({"node": "n2", "offset_s": -30.0}));
        let healed = nemesis.stop(&skew, &target).expect("heal");
        assert_eq!(healed["restored"], json!(["n1", "n2"]));
        assert_eq!(target.clock_offsets("n1"), [30.0, 0.0]);
        assert_eq!(target.clock_offsets("n2"), [-30.0, 0.0]);

        let jump = FaultSpec::named("clock-jump");
        nemesis.start(&jump, &names(&["n2", "n3"]), &target).expect("jump");
        nemesis.teardown(&target).expect("teardown");
        assert_eq!(target.clock_offsets("n3"), [3_600.0, 0.0]);
        assert!(nemesis.dials.is_empty());
    }

    /// Goal: a strobe flips the clock between the offset and the true time
    /// until healed, and ends on the true time with its thread joined.
    #[test]
    fn strobe_flips_until_healed_and_ends_on_the_true_time() {
        let target = FakeTarget::new(&["n1"]);
        let mut nemesis = ClockNemesis::new();
        let fault = FaultSpec { name: "clock-strobe".into(), params: json!({"offset_s": -8}) };
        nemesis.start(&fault, &names(&["n1"]), &target).expect("strobe");
        std::thread::sleep(Duration::from_millis(MIN_STROBE_PERIOD_MS + 300));
        nemesis.stop(&fault, &target).expect("heal");
        let offsets = target.clock_offsets("n1");
        assert_eq!(&offsets[..3], [-8.0, 0.0, -8.0], "{offsets:?}");
        assert_eq!(offsets.last(), Some(&0.0));
        assert!(nemesis.strobes.is_empty());
    }

    /// Goal: bad parameters are refused before any clock moves, naming the
    /// parameter and what it allows.
    #[test]
    fn bad_parameters_move_no_clock() {
        let target = FakeTarget::new(&["n1"]);
        let mut nemesis = ClockNemesis::new();
        let cases = [
            ("clock-jump", json!({"offset_s": 1e9}), "offset_s"),
            ("clock-skew", json!({"period_ms": 5000}), "only clock-strobe"),
            ("clock-strobe", json!({"period_ms": 100}), "2000"),
        ];
        for (name, params, expected) in cases {
            let fault = FaultSpec { name: name.into(), params };
            let error = nemesis.start(&fault, &names(&["n1"]), &target).expect_err(name).to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
        assert!(target.clock_offsets("n1").is_empty());
    }

    /// Goal: a runtime without clock control refuses with the node named,
    /// and nothing is left to heal.
    #[test]
    fn a_target_without_clock_control_refuses() {
        struct NoClock;
        impl ClusterTarget for NoClock {
            fn nodes(&self, _: crate::Role) -> Vec<String> {
                vec!["n1".into()]
            }
            fn kill(&self, _: &str) -> Result<Value, crate::TargetError> {
                unreachable!()
            }
            fn start(&self, _: &str) -> Result<Value, crate::TargetError> {
                unreachable!()
            }
            fn pause(&self, _: &str) -> Result<Value, crate::TargetError> {
                unreachable!()
            }
            fn resume(&self, _: &str) -> Result<Value, crate::TargetError> {
                unreachable!()
            }
            fn is_running(&self, _: &str) -> bool {
                true
            }
        }
        let mut nemesis = ClockNemesis::new();
        let error = nemesis.start(&FaultSpec::named("clock-skew"), &names(&["n1"]), &NoClock).expect_err("refused");
        assert!(error.to_string().contains("without clock control"), "{error}");
        assert!(nemesis.dials.is_empty());
    }
}
