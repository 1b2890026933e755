//! What the Redis backend reads from a cluster about itself: `CLUSTER NODES` (who serves which
//! slots, which slots are migrating) and `CLUSTER INFO` (are all slots served). Pure parsing,
//! so it is tested without a cluster.

use std::collections::BTreeMap;

/// The number of hash slots of every Redis cluster.
pub(crate) const SLOTS: u32 = 16384;

/// The most SCAN passes one `clear_pattern` makes while the cluster's layout keeps changing.
///
/// A key missed by one pass (it moved between nodes during the pass) is found by the next unless
/// it moves again; three passes cover a reshard that starts or ends during the call.
pub(crate) const MAX_CLEAR_PASSES: usize = 3;

/// One node as a `CLUSTER NODES` line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenNode {
    /// `host:port` (the cluster bus port and hostname are dropped).
    pub address: String,
    /// A primary (`master` flag), else a replica.
    pub primary: bool,
    /// Connected and not flagged as failing, in handshake or without an address.
    pub ok: bool,
    /// The flags as written, for messages (`master,fail`).
    pub flags: String,
    /// Slots it serves.
    pub slots: u32,
}

/// Parses the text of `CLUSTER NODES`.
pub(crate) fn parse_nodes(text: &str) -> Vec<SeenNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let address = fields[1].split(['@', ',']).next().unwrap_or_default();
            let flags = fields[2];
            let failing = flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"));
            Some(SeenNode {
                address: address.to_owned(),
                primary: flags.split(',').any(|f| f == "master"),
                ok: !failing && fields[7] == "connected",
                flags: flags.to_owned(),
                slots: fields[8..].iter().map(|s| slot_count(s)).sum(),
            })
        })
        .collect()
}

/// The slots in one slot field: `5`, `0-5460`; migration markers (`[93->-id]`) count none.
fn slot_count(field: &str) -> u32 {
    if field.starts_with('[') {
        return 0;
    }
    match field.split_once('-') {
        Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) if b >= a => b - a + 1,
            _ => 0,
        },
        None => u32::from(field.parse::<u16>().is_ok()),
    }
}

/// The cluster's layout as each primary sees it: node ids, addresses, roles and slots, plus the
/// migrating/importing markers that only the node doing the migration shows. Timestamps, epochs
/// and link states are left out, so two layouts are equal exactly when no slot moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    views: BTreeMap<String, Vec<String>>,
    migrating: bool,
}

impl Layout {
    /// Adds the `CLUSTER NODES` text that the primary at `asked` returned.
    pub(crate) fn add(&mut self, asked: &str, text: &str) {
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 8 {
                    return None;
                }
                let role = if fields[2].split(',').any(|f| f == "master") {
                    "master"
                } else {
                    "replica"
                };
                let slots = fields[8..].join(" ");
                self.migrating |= slots.contains("->-") || slots.contains("-<-");
                Some(format!(
                    "{} {} {role} {} {slots}",
                    fields[0], fields[1], fields[3]
                ))
            })
            .collect();
        lines.sort_unstable();
        self.views.insert(asked.to_owned(), lines);
    }

    /// Whether some primary was migrating or importing a slot.
    pub(crate) fn migrating(&self) -> bool {
        self.migrating
    }
}

/// What `CLUSTER INFO` says about slot coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClusterState {
    /// `ok` or `fail`.
    pub state: String,
    /// Slots assigned to a node that is not failing.
    pub slots_ok: u32,
}

impl ClusterState {
    /// Every slot is served.
    pub(crate) fn ok(&self) -> bool {
        self.state == "ok" && self.slots_ok == SLOTS
    }
}

/// Parses the text of `CLUSTER INFO`.
pub(crate) fn parse_info(text: &str) -> ClusterState {
    let mut state = ClusterState::default();
    for line in text.lines() {
        match line.trim_end().split_once(':') {
            Some(("cluster_state", v)) => state.state = v.to_owned(),
            Some(("cluster_slots_ok", v)) => state.slots_ok = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    state
}

/// The sum of memory figures as Redis writes them (`1.03M`, `912.50K`, `812B`), written the
/// same way; `None` when one does not parse.
pub(crate) fn sum_human_bytes(values: &[&str]) -> Option<String> {
    const UNITS: [(char, f64); 5] = [
        ('B', 1.0),
        ('K', 1024.0),
        ('M', 1024.0 * 1024.0),
        ('G', 1024.0 * 1024.0 * 1024.0),
        ('T', 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ];
    let mut total = 0.0;
    for value in values {
        let unit = value.chars().last()?;
        let (_, factor) = UNITS.iter().find(|(u, _)| *u == unit)?;
        let number: f64 = value[..value.len() - 1].parse().ok()?;
        total += number * factor;
    }
    let (unit, factor) = UNITS
        .iter()
        .rev()
        .find(|(_, f)| total >= *f)
        .copied()
        .unwrap_or(('B', 1.0));
    Some(if unit == 'B' {
        format!("{total:.0}B")
    } else {
        format!("{:.2}{unit}", total / factor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-f2a1]
07c3 127.0.0.1:30004@40004,host4 slave e7d1 0 1426238317239 4 connected
f2a1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922 [5461-<-e7d1]
6ec2 127.0.0.1:30003@40003 master,fail - 1426238312209 1426238311204 3 disconnected 10923-16383
";

    #[test]
    fn nodes_give_roles_health_and_slots() {
        let nodes = parse_nodes(NODES);
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].address, "127.0.0.1:30001");
        assert!(nodes[0].primary && nodes[0].ok);
        assert_eq!(nodes[0].slots, 5461);
        assert_eq!(nodes[1].address, "127.0.0.1:30004");
        assert!(!nodes[1].primary && nodes[1].ok);
        assert_eq!(nodes[1].slots, 0);
        assert!(nodes[3].primary && !nodes[3].ok);
        assert_eq!(nodes.iter().map(|n| n.slots).sum::<u32>(), SLOTS);
    }

    #[test]
    fn layouts_ignore_timestamps_and_see_migrations() {
        let mut a = Layout::default();
        a.add("x", NODES);
        assert!(a.migrating());
        let later = NODES.replace("1426238317239", "1426238399999");
        let mut b = Layout::default();
        b.add("x", &later);
        assert_eq!(a, b);
        let moved = NODES
            .replace("0-5460 [5461->-f2a1]", "0-5461")
            .replace("5461-10922 [5461-<-e7d1]", "5462-10922");
        let mut c = Layout::default();
        c.add("x", &moved);
        assert_ne!(a, c);
        assert!(!c.migrating());
    }

    #[test]
    fn info_says_whether_all_slots_are_served() {
        let ok = parse_info(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n",
        );
        assert!(ok.ok());
        let down = parse_info("cluster_state:fail\r\ncluster_slots_ok:10923\r\n");
        assert!(!down.ok());
        assert_eq!(down.slots_ok, 10923);
    }

    #[test]
    fn memory_figures_add_up() {
        assert_eq!(
            sum_human_bytes(&["1.50M", "512.00K"]).as_deref(),
            Some("2.00M")
        );
        assert_eq!(sum_human_bytes(&["812B", "12B"]).as_deref(), Some("824B"));
        assert_eq!(sum_human_bytes(&["lots"]), None);
    }
}
