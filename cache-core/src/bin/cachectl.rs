//! `cachectl`: the operator's command-line tool for the cache's Redis (see `docs/src/cli.md`).

fn main() -> std::process::ExitCode {
    cache_core::cli::main()
}
