//! The integration tests that need no process of their own: one test binary, one module per
//! area (as fred's `tests/integration/<area>/`), so that the crate graph is linked once for all
//! of them rather than once per file.
//!
//! A test belongs here when everything it touches is its own: the servers, clusters and proxies
//! it starts, the caches it makes with `Cache::new`, the child processes it runs (with their own
//! environment). A test stays a file of its own under `tests/` when it needs a process of its
//! own: it sets up the process-wide cache (`init`, `get_cache`, `#[cached]`,
//! `#[invalidate_cache]`), sets environment variables or the working directory, installs a
//! global allocator, metrics recorder or tracing subscriber, measures the whole process
//! (resident memory), or runs its own binary again.
//!
//! The harness runs the tests of every module here side by side (as many at once as there are
//! cores, or `--test-threads`); run one area with `cargo test --test shared cluster::`.

mod behaviour;
mod breaker_half_open;
mod cachectl;
mod cancellation;
mod clear_deadline;
mod cluster;
mod faults;
mod glob_differential;
mod kill_fails_fast;
mod large_values;
mod macros_keys;
mod proxy;
mod quickstart;
mod read_batching;
mod redis_backend;
mod security;
mod servers_api;
mod shutdown;
