//! What the cache reports through the `metrics` facade (feature `metrics`), labelled by key
//! space, beside the per-cache [`CacheStats`](crate::CacheStats).
//!
//! The `space` label of a key is the head of the registered key space it belongs to
//! (`server:get_server_details`): the `#[cached]` functions and the [`key_space!`](crate::key_space)
//! declarations of the program. A key outside all of them is `(other)`. A pattern is labelled with
//! the one space it reaches, `(several)` when it reaches more, `(other)` when none. So the label
//! only ever takes values the program itself declares: never a key, never an argument, and the
//! number of series stays bounded however many keys there are.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cache_hits_total`, `cache_misses_total`, `cache_corrupt_total`, `cache_schema_mismatches_total`, `cache_sets_total`, `cache_deletes_total`, `cache_short_circuited_total` | counter | `space` |
//! | `cache_errors_total` | counter | `space`, `kind` (`connection`, `timeout`, `redis`, ...) |
//! | `cache_invalidations_total`, `cache_invalidations_replayed_total`, `cache_invalidations_dropped_total` | counter | `space` |
//! | `cache_body_runs_total` (the function's body ran), `cache_flight_joins_total` (a caller waited for another's computation), `cache_waits_given_up_total` (a caller stopped waiting for one: past its bound, or a cycle) | counter | `space` |
//! | `cache_read_seconds`, `cache_store_seconds`, `cache_body_seconds` | histogram | `space` |
//! | `cache_invalidations_pending` | gauge | |
//! | `cache_breaker_state` (0 closed, 1 half-open, 2 open) | gauge | |

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use cache_keys::space::Space;

use crate::registry;
use crate::stats::Event;

/// The label of keys and patterns outside every registered key space.
pub(crate) const OTHER: &str = "(other)";
/// The label of a pattern that reaches several key spaces.
pub(crate) const SEVERAL: &str = "(several)";

/// A key space as the metrics see it: its head, its `space` label, and the key of each of its
/// metrics, each made once. The `metrics` macros build a `Vec` of labels and hash the key on every
/// call: two allocations and ~400 instructions per hit (callgrind), recorder or not.
#[derive(Debug)]
pub(crate) struct SpaceLabel {
    head: &'static str,
    #[cfg(feature = "metrics")]
    labels: [metrics::Label; 1],
    #[cfg(feature = "metrics")]
    keys: [OnceLock<metrics::Key>; Metric::COUNT],
}

impl SpaceLabel {
    const fn new(head: &'static str) -> Self {
        SpaceLabel {
            head,
            #[cfg(feature = "metrics")]
            labels: [metrics::Label::from_static_parts("space", head)],
            #[cfg(feature = "metrics")]
            keys: [const { OnceLock::new() }; Metric::COUNT],
        }
    }

    /// The key of `metric` in this key space.
    #[cfg(feature = "metrics")]
    fn key(&'static self, metric: Metric) -> &'static metrics::Key {
        self.keys[metric.index()]
            .get_or_init(|| metrics::Key::from_static_parts(metric.name(), &self.labels))
    }
}

/// The metrics labelled by key space alone.
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy)]
enum Metric {
    Count(Event),
    Timed(Timed),
    BodyRuns,
    Invalidations,
    Joins,
    GaveUp,
}

#[cfg(feature = "metrics")]
impl Metric {
    const EVENTS: usize = Event::Dropped as usize + 1;
    const COUNT: usize = Self::EVENTS + 7;

    fn index(self) -> usize {
        match self {
            Metric::Count(event) => event as usize,
            Metric::Timed(Timed::Read) => Self::EVENTS,
            Metric::Timed(Timed::Store) => Self::EVENTS + 1,
            Metric::Timed(Timed::Body) => Self::EVENTS + 2,
            Metric::BodyRuns => Self::EVENTS + 3,
            Metric::Invalidations => Self::EVENTS + 4,
            Metric::Joins => Self::EVENTS + 5,
            Metric::GaveUp => Self::EVENTS + 6,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Count(event) => event.metric(),
            Metric::Timed(Timed::Read) => "cache_read_seconds",
            Metric::Timed(Timed::Store) => "cache_store_seconds",
            Metric::Timed(Timed::Body) => "cache_body_seconds",
            Metric::BodyRuns => "cache_body_runs_total",
            Metric::Invalidations => "cache_invalidations_total",
            Metric::Joins => "cache_flight_joins_total",
            Metric::GaveUp => "cache_waits_given_up_total",
        }
    }
}

static OTHER_SPACE: SpaceLabel = SpaceLabel::new(OTHER);
static SEVERAL_SPACE: SpaceLabel = SpaceLabel::new(SEVERAL);

/// What a count or a duration is about: the label is worked out only when it is reported.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    /// A key.
    Key(&'a str),
    /// A Redis glob pattern.
    Pattern(&'a str),
    /// Several keys at once (`get_many`, `set_many`).
    Keys,
    /// A key or pattern whose label was already worked out ([`At::resolved`]).
    Space(&'static SpaceLabel),
}

impl<'a> At<'a> {
    /// One key, or several.
    pub(crate) fn of_keys(keys: &[&'a str]) -> Self {
        match keys {
            [key] => At::Key(key),
            _ => At::Keys,
        }
    }

    /// The `space` label.
    pub(crate) fn space(self) -> &'static str {
        self.label().head
    }

    fn label(self) -> &'static SpaceLabel {
        match self {
            At::Key(key) => space_of_key(key),
            At::Pattern(pattern) => space_of_pattern(pattern),
            At::Keys => &SEVERAL_SPACE,
            At::Space(space) => space,
        }
    }

    /// The same, with its label worked out now, for a call that reports it several times (a
    /// read and its hit): one look-up instead of one per report. Without the `metrics` feature
    /// nothing reads the label, and it is left alone.
    pub(crate) fn resolved(self) -> Self {
        if cfg!(feature = "metrics") {
            At::Space(self.label())
        } else {
            self
        }
    }
}

/// The registered heads, read once: the registry is complete at link time.
fn heads() -> &'static Heads {
    static HEADS: OnceLock<Heads> = OnceLock::new();
    HEADS.get_or_init(|| {
        registry::key_spaces()
            .iter()
            .map(|s| (s.head(), SpaceLabel::new(s.head())))
            .collect()
    })
}

/// The heads and their labels, hashed with FNV-1a: every hit looks up its key's prefixes here.
/// With std's SipHash (built to resist crafted keys), and two look-ups per hit, this cost 1,267
/// of the 7,843 instructions of an in-process `#[cached]` hit; one look-up with FNV-1a costs 447
/// (callgrind). The map never grows after it is built, so keys crafted to collide can only cost
/// a look-up a few more comparisons.
type Heads = HashMap<&'static str, SpaceLabel, std::hash::BuildHasherDefault<Fnv1a>>;

/// FNV-1a, 64 bits.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The registered key space `key` belongs to: the key itself, or its longest prefix that ends
/// before a `:` and is a registered head.
fn space_of_key(key: &str) -> &'static SpaceLabel {
    let heads = heads();
    if let Some(space) = heads.get(key) {
        return space;
    }
    key.rmatch_indices(':')
        .find_map(|(at, _)| heads.get(&key[..at]))
        .unwrap_or(&OTHER_SPACE)
}

/// The one registered key space `pattern` reaches, `(several)` or `(other)`.
fn space_of_pattern(pattern: &str) -> &'static SpaceLabel {
    let mut reached = registry::key_spaces().into_iter().filter(|s| {
        Space {
            head: s.head(),
            exact: s.exact(),
        }
        .reached_by(pattern)
    });
    match (reached.next(), reached.next()) {
        (Some(only), None) => heads().get(only.head()).unwrap_or(&OTHER_SPACE),
        (Some(_), Some(_)) => &SEVERAL_SPACE,
        (None, _) => &OTHER_SPACE,
    }
}

/// Where the metrics are registered from, as the `metrics` macros would say it.
#[cfg(feature = "metrics")]
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The counter `metric` of the key space `at`, from the current recorder.
#[cfg(feature = "metrics")]
fn counter(metric: Metric, at: At<'_>) -> metrics::Counter {
    let key = at.label().key(metric);
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

/// Counts `n` occurrences of `event`.
pub(crate) fn count(event: Event, at: At<'_>, n: u64) {
    #[cfg(feature = "metrics")]
    counter(Metric::Count(event), at).increment(n);
    #[cfg(not(feature = "metrics"))]
    let _ = (event, at, n);
}

/// Counts a failed backend call, by the kind of error.
pub(crate) fn error(kind: &'static str, at: At<'_>) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cache_errors_total", "space" => at.space(), "kind" => kind).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (kind, at);
}

/// What a duration measures.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timed {
    /// One read of a key from the backend (a hit or not).
    Read,
    /// One store of a computed value.
    Store,
    /// One run of a cached function's body; also counted as `cache_body_runs_total`.
    Body,
}

/// Records how long `what` took.
pub(crate) fn duration(what: Timed, at: At<'_>, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let at = at.resolved();
        if let Timed::Body = what {
            counter(Metric::BodyRuns, at).increment(1);
        }
        let key = at.label().key(Metric::Timed(what));
        metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (what, at, took);
}

/// Counts one pattern (or key) an `#[invalidate_cache]` function invalidated.
pub(crate) fn invalidation(at: At<'_>) {
    #[cfg(feature = "metrics")]
    counter(Metric::Invalidations, at).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = at;
}

/// Counts a caller that waited for another caller's computation of the same key.
pub(crate) fn joined(at: At<'_>) {
    #[cfg(feature = "metrics")]
    counter(Metric::Joins, at).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = at;
}

/// Counts a caller that stopped waiting for another caller's computation of the same key (past
/// the wait's bound, or because waiting would close a cycle) and ran the body itself.
pub(crate) fn gave_up(at: At<'_>) {
    #[cfg(feature = "metrics")]
    counter(Metric::GaveUp, at).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = at;
}

/// Sets the `cache_invalidations_pending` gauge.
pub(crate) fn pending(n: usize) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("cache_invalidations_pending").set(n as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = n;
}

/// Sets the `cache_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
pub(crate) fn breaker(state: u8) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("cache_breaker_state").set(f64::from(state));
    #[cfg(not(feature = "metrics"))]
    let _ = state;
}
