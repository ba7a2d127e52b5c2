//! Rules across channels: unique names, one listener per address, references that resolve.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::error::{ConfigError, Diagnostics, Problem};
use crate::locate::{Target, YamlPath};
use crate::model::{ChannelConfig, DestinationKind, SourceKind};

/// Check a set of loaded channels against each other (pure: no I/O). Every problem is
/// reported, placed in the file of the later channel.
pub fn validate(channels: &[ChannelConfig]) -> Result<(), Diagnostics> {
    check(channels, true).into_result(())
}

/// `check_refs` is off when some files failed to load: their channels' names are unknown, and
/// "no channel named X" would then be noise.
pub(crate) fn check(channels: &[ChannelConfig], check_refs: bool) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let mut report = |c: &ChannelConfig, at: &YamlPath, target: Target, problem: Problem| {
        let loc = c.locate_path(at, target);
        diags.push(ConfigError {
            file: loc.file,
            position: Some((loc.line, loc.column)),
            problem,
        });
    };
    let root = YamlPath::default();

    let mut names: HashMap<&str, &ChannelConfig> = HashMap::new();
    let mut listeners: Vec<(SocketAddr, &ChannelConfig, YamlPath)> = Vec::new();
    for c in channels {
        if let Some(first) = names.get(c.name.as_str()) {
            let problem = Problem::Duplicate {
                what: "channel name",
                name: c.name.clone(),
                first: first.locate(&["name"]),
            };
            report(c, &root.key("name"), Target::Value, problem);
        } else {
            names.insert(&c.name, c);
        }

        let listen = match &c.source.kind {
            SourceKind::Mllp(m) => Some((m.listen, "mllp")),
            SourceKind::Http(h) => Some((h.listen, "http")),
            SourceKind::File(_) => None,
        };
        if let Some((addr, kind)) = listen {
            let at = root.key("source").key(kind).key("listen");
            if let Some((_, other, other_at)) = listeners.iter().find(|(a, ..)| clash(*a, addr)) {
                let problem = Problem::AddressInUse {
                    addr: addr.to_string(),
                    other: other.name.clone(),
                    first: other.locate_path(other_at, Target::Value),
                };
                report(c, &at, Target::Value, problem);
            } else {
                listeners.push((addr, c, at));
            }
        }
    }

    if check_refs {
        let mut known: Vec<&str> = names.keys().copied().collect();
        known.sort_unstable();
        let known = known.join(", ");
        for c in channels {
            let mut refs: Vec<(YamlPath, &str)> = Vec::new();
            for (i, d) in c.destinations.iter().enumerate() {
                if let DestinationKind::Channel(target) = &d.kind {
                    refs.push((root.key("destinations").index(i).key("channel"), target));
                }
            }
            for (i, dep) in c.depends_on.iter().enumerate() {
                refs.push((root.key("depends_on").index(i), dep));
            }
            for (at, target) in refs {
                let problem = if target == c.name {
                    Problem::Rule(format!(
                        "{at}: a channel cannot refer to itself ('{target}')"
                    ))
                } else if names.contains_key(target) {
                    continue;
                } else {
                    Problem::UnknownChannel {
                        field: at.to_string(),
                        name: target.to_string(),
                        known: known.clone(),
                    }
                };
                report(c, &at, Target::Value, problem);
            }
        }
        for cycle in cycles(channels, &names, depends_on_edges) {
            let problem = cycle_problem(
                &cycle,
                "dependency cycle",
                "none of these channels could start first; remove one of these depends_on entries",
            );
            report(cycle.first, &cycle.first_at, Target::Value, problem);
        }
        for cycle in cycles(channels, &names, unfiltered_hand_overs) {
            let problem = cycle_problem(
                &cycle,
                "hand-over cycle",
                "every message would be handed round these channels forever; remove one of these \
                 channel destinations or give one a filter",
            );
            report(cycle.first, &cycle.first_at, Target::Value, problem);
        }
    }
    diags
}

/// The references a cycle is searched along: where each is written, and the channel it names.
type Edges = for<'c> fn(&'c ChannelConfig) -> Vec<(YamlPath, &'c str)>;

/// `depends_on` entries.
fn depends_on_edges(c: &ChannelConfig) -> Vec<(YamlPath, &str)> {
    let at = YamlPath::default().key("depends_on");
    c.depends_on
        .iter()
        .enumerate()
        .map(|(i, dep)| (at.index(i), dep.as_str()))
        .collect()
}

/// `channel` destinations that hand over every message: neither the channel nor the destination has a
/// filter or transform that could stop a loop (a transform may filter too). Rules may still error a
/// message, but not by design.
fn unfiltered_hand_overs(c: &ChannelConfig) -> Vec<(YamlPath, &str)> {
    if c.filter.is_some() || c.transform.is_some() {
        return Vec::new();
    }
    let at = YamlPath::default().key("destinations");
    c.destinations
        .iter()
        .enumerate()
        .filter(|(_, d)| d.filter.is_none() && d.transform.is_none())
        .filter_map(|(i, d)| match &d.kind {
            DestinationKind::Channel(target) => Some((at.index(i).key("channel"), target.as_str())),
            _ => None,
        })
        .collect()
}

/// One step of a cycle: a channel and where its reference to the next one is written.
type Step<'a> = (&'a ChannelConfig, YamlPath);

/// A cycle, reported at the reference of its channel that comes first in file order.
struct Cycle<'a> {
    first: &'a ChannelConfig,
    first_at: YamlPath,
    steps: Vec<Step<'a>>,
}

/// "<what> 'a' (file:line:col) -> 'b' (...) -> 'a': <advice>", placed at the first step's reference.
fn cycle_problem(cycle: &Cycle<'_>, what: &str, advice: &str) -> Problem {
    let steps: Vec<String> = cycle
        .steps
        .iter()
        .map(|(c, at)| format!("'{}' ({})", c.name, c.locate_path(at, Target::Value)))
        .collect();
    Problem::Rule(format!(
        "{}: {what} {} -> '{}': {advice}",
        cycle.first_at,
        steps.join(" -> "),
        cycle.first.name
    ))
}

/// Every cycle along `edges` once, each starting at its channel that comes first in file order.
/// Self-references and unknown names are reported elsewhere and are not edges here.
fn cycles<'a>(
    channels: &'a [ChannelConfig],
    names: &HashMap<&str, &'a ChannelConfig>,
    edges: Edges,
) -> Vec<Cycle<'a>> {
    let mut found: Vec<Cycle<'a>> = Vec::new();
    for start in channels {
        let in_a_cycle = found
            .iter()
            .any(|cycle| cycle.steps.iter().any(|(c, _)| c.name == start.name));
        if in_a_cycle {
            continue;
        }
        let mut path: Vec<Step<'a>> = Vec::new();
        let mut seen: Vec<&str> = vec![start.name.as_str()];
        if path_back(start, start, names, edges, &mut path, &mut seen) {
            if let Some((first, first_at)) = path.first().cloned() {
                found.push(Cycle {
                    first,
                    first_at,
                    steps: path,
                });
            }
        }
    }
    found
}

/// Depth-first search for a way from `at` back to `start`; `path` holds the steps taken.
fn path_back<'a>(
    start: &ChannelConfig,
    at: &'a ChannelConfig,
    names: &HashMap<&str, &'a ChannelConfig>,
    edges: Edges,
    path: &mut Vec<Step<'a>>,
    seen: &mut Vec<&'a str>,
) -> bool {
    for (written, target) in edges(at) {
        if target == at.name {
            continue;
        }
        let Some(&next) = names.get(target) else {
            continue;
        };
        path.push((at, written));
        if next.name == start.name {
            return true;
        }
        if !seen.contains(&next.name.as_str()) {
            seen.push(&next.name);
            if path_back(start, next, names, edges, path, seen) {
                return true;
            }
        }
        path.pop();
    }
    false
}

/// Two listeners clash on the same port when the addresses are equal or either is a wildcard
/// (0.0.0.0 / ::) of the same family, as the operating system would refuse the second bind.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

#[cfg(test)]
mod tests {
    use super::clash;

    #[test]
    fn wildcard_and_exact_addresses_clash_on_the_same_port() {
        let p = |s: &str| s.parse().unwrap_or_else(|_| panic!("{s}"));
        assert!(clash(p("127.0.0.1:2575"), p("127.0.0.1:2575")));
        assert!(clash(p("0.0.0.0:2575"), p("127.0.0.1:2575")));
        assert!(!clash(p("127.0.0.1:2575"), p("127.0.0.2:2575")));
        assert!(!clash(p("127.0.0.1:2575"), p("127.0.0.1:2576")));
        assert!(!clash(p("[::]:2575"), p("127.0.0.1:2575")));
    }
}
