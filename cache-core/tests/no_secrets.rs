//! No password in any output of the configuration.
//!
//! One canary password is threaded through every way a password reaches the configuration: the
//! builder and each of its setters, `REDIS_URL` in every form the URL table accepts (and in
//! malformed ones), query-string passwords, `REDIS_HOST`/`REDIS_PORT`/`REDIS_USERNAME`/
//! `REDIS_PASSWORD`, values that are not UTF-8, a `.env` file, and TLS files whose contents do not
//! parse. No `Debug`, `Display`, error (nor anything in its `source()` chain) or log line may show
//! it, in any encoding.
//!
//! Its own test binary: some tests change the process environment and the working directory (the
//! only place `CacheConfig::from_env` looks for `.env`); they hold [`ProcessEnv`], which
//! serializes them and restores both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::error::Error;
use std::ffi::OsString;
use std::fmt::{self, Write as _};
#[cfg(feature = "tls")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use cache_core::codec::CodecKind;
use cache_core::{Cache, CacheConfig, ConfigError};

/// The password of every test, with the characters that break URLs (`/`, `%`, `@`, `:`).
const CANARY: &str = "Canary-5ecret/%@:x";
/// The canary percent-encoded, as a URL must carry it.
const ENCODED: &str = "Canary-5ecret%2F%25%40%3Ax";

/// True when `text` shows the canary in any form: as given, percent- or form-encoded, lower-cased
/// by a URL parser (all of which keep `5ecret`), or as the bytes of a file in `{:?}` of a
/// `Vec<u8>` or in hex.
fn shows_canary(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let bytes = format!("{:?}", b"5ecret");
    let hex: String = b"5ecret".iter().map(|b| format!("{b:02x}")).collect();
    lower.contains("5ecret")
        || text.contains(bytes.trim_start_matches('[').trim_end_matches(']'))
        || lower.contains(&hex)
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    assert!(!shows_canary(text), "{what} shows the password: {text}");
}

/// Checks `Display`, `Debug` and `{:#?}` of `error` and of every error in its `source()` chain.
#[track_caller]
fn assert_error_clean(what: &str, error: &(dyn Error + 'static)) {
    let mut next = Some(error);
    while let Some(e) = next {
        assert_clean(what, &e.to_string());
        assert_clean(what, &format!("{e:?}"));
        assert_clean(what, &format!("{e:#?}"));
        next = e.source();
    }
}

/// Checks a configuration error, and that it still names a variable and says what is expected.
#[track_caller]
fn assert_config_error_clean(what: &str, error: &ConfigError) {
    assert_error_clean(what, error);
    let text = error.to_string();
    assert!(
        text.starts_with(error.variable) && text.contains("expected"),
        "{what}: {text}"
    );
    let wrapped = cache_core::CacheError::from(error.clone());
    assert_error_clean(what, &wrapped);
}

#[track_caller]
fn assert_config_clean(what: &str, config: &CacheConfig) {
    assert_clean(what, &format!("{config:?}"));
    assert_clean(what, &format!("{config:#?}"));
    assert_clean(what, &format!("{config}"));
    assert_clean(what, &format!("{:?}", config.backend()));
    assert_clean(what, &format!("{:#?}", config.backend()));
    if let cache_core::BackendConfig::Redis(url) = config.backend() {
        assert_clean(what, &url.redacted());
        assert_clean(what, &url.to_string());
    }
}

/// Checks whatever came out of reading a configuration.
#[track_caller]
fn assert_outcome_clean(what: &str, outcome: &Result<CacheConfig, ConfigError>) {
    match outcome {
        Ok(config) => assert_config_clean(what, config),
        Err(e) => assert_config_error_clean(what, e),
    }
}

/// A configuration read from these variables only.
fn from_vars(vars: &[(&str, &str)]) -> Result<CacheConfig, ConfigError> {
    CacheConfig::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

/// A URL with a password, in every form the URL table names (each scheme, with the query of its
/// topology), with passwords in the query, with the canary not encoded (malformed), and in the
/// mistakes people make: a bare password, a password without its colon, a URL for a unix socket.
fn urls() -> Vec<String> {
    let mut urls = Vec::new();
    for family in ["redis", "valkey"] {
        for tls in ["", "s"] {
            let plain = format!("{family}{tls}");
            urls.push(format!("{plain}://:{ENCODED}@cache.internal:6379/2"));
            urls.push(format!("{plain}://app:{ENCODED}@cache.internal:6379"));
            urls.push(format!(
                "{plain}-cluster://:{ENCODED}@node1:7000?node=node2:7001&node=node3:7002"
            ));
            urls.push(format!(
                "{plain}-sentinel://:{ENCODED}@s1:26379/0?sentinelServiceName=m\
                 &sentinelUsername=app&sentinelPassword={ENCODED}&node=s2:26379"
            ));
        }
        urls.push(format!("{family}+unix://:{ENCODED}@/run/redis.sock"));
    }
    urls.extend([
        // A password in the query.
        format!("redis://cache.internal:6379/0?password={ENCODED}"),
        format!("redis://cache.internal:6379/0?Password={CANARY}"),
        // Not encoded: `/` ends the authority, `%` starts nothing, `@` and `:` move the host.
        format!("redis://:{CANARY}@cache.internal:6379/0"),
        format!("redis://app:{CANARY}@cache.internal:6379/0"),
        format!("redis-cluster://:{CANARY}@node1:7000"),
        format!("redis-sentinel://:{CANARY}@s1:26379/0?sentinelServiceName=m"),
        // The password alone, or where the user name goes (no colon before it).
        CANARY.to_owned(),
        ENCODED.to_owned(),
        format!("redis://{ENCODED}@cache.internal:6379"),
        format!("redis://{CANARY}@cache.internal:6379"),
        // Valid credentials with something else wrong.
        format!("redis://:{ENCODED}@cache.internal:notaport"),
        format!("redis://:{ENCODED}@cache.internal:6379/notadb"),
        format!("redis://:{ENCODED}@cache.internal:6379/0/1"),
        format!("redis://:{ENCODED}@:6379/0"),
        format!("http://:{ENCODED}@cache.internal"),
        format!("redis-sentinel://:{ENCODED}@s1:26379/0"),
        format!("redis-cluster://:{ENCODED}@node1:7000?node=app:{ENCODED}@node2:7001"),
        format!("redis-cluster://:{ENCODED}@node1:7000?node={ENCODED}"),
        format!("redis-cluster://:{ENCODED}@node1:7000?readFromReplicas={ENCODED}"),
        format!("redis://:{ENCODED}@cache.internal:6379?readFromReplicas=true"),
    ]);
    urls
}

#[test]
fn the_builder_and_every_setter_hide_the_password() {
    for url in urls() {
        let builder = CacheConfig::builder().url(url.clone());
        assert_clean(&url, &format!("{builder:?}"));
        assert_clean(&url, &format!("{builder:#?}"));
        assert_outcome_clean(&url, &builder.clone().build());

        let every_setter = builder
            .pool_size(3)
            .socket_timeout(Duration::from_millis(1500))
            .enabled(true)
            .default_ttl(Duration::from_secs(60))
            .fail_silently(false)
            .codec(CodecKind::Bincode)
            .breaker_threshold(3)
            .breaker_probe_interval(Duration::from_millis(200))
            .lease_ttl(Duration::from_secs(5))
            .clear_timeout(Duration::from_secs(30))
            .max_value_bytes(1024)
            .compress_min_bytes(0)
            .offload_min_bytes(0)
            .tls_ca("/nonexistent/ca.pem")
            .tls_client_cert("/nonexistent/client.pem", "/nonexistent/client.key");
        assert_clean(&url, &format!("{every_setter:?}"));
        assert_outcome_clean(&url, &every_setter.clone().build());
        // Switching to the memory backend forgets the URL.
        let memory = every_setter.memory(1024);
        assert_clean(&url, &format!("{memory:?}"));
    }
}

#[test]
fn redis_url_errors_and_configs_hide_the_password() {
    for url in urls() {
        let outcome = from_vars(&[("REDIS_URL", &url)]);
        assert_outcome_clean(&url, &outcome);
        if let Err(e) = outcome {
            assert_eq!(e.variable, "REDIS_URL", "{url}: {e}");
        }
    }
    // Accepted forms still work, and say where the password was.
    let config = from_vars(&[(
        "REDIS_URL",
        &format!("redis://:{ENCODED}@cache.internal:6379/2"),
    )])
    .unwrap();
    assert_eq!(
        config.to_string().split(',').next(),
        Some("redis redis://:***@cache.internal:6379/2")
    );
}

#[test]
fn redis_host_port_user_and_password_hide_the_password() {
    const URL: &str = "redis://:Canary-5ecret%2F%25%40%3Ax@h:6379/0";
    /// The variables, and the one an error must name (`None`: they make a configuration).
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case] = &[
        // A URL pasted into REDIS_HOST is refused without echoing it.
        (
            &[("REDIS_HOST", "redis://:Canary-5ecret/%@:x@h:6379")],
            Some("REDIS_HOST"),
        ),
        (
            &[("REDIS_HOST", &*format!("redis://:{ENCODED}@h:6379"))],
            Some("REDIS_HOST"),
        ),
        (&[("REDIS_HOST", CANARY)], Some("REDIS_HOST")),
        (&[("REDIS_HOST", ENCODED)], Some("REDIS_HOST")),
        (&[("REDIS_HOST", "h:Canary-5ecret")], Some("REDIS_HOST")),
        (&[("REDIS_PORT", CANARY)], Some("REDIS_PORT")),
        // A password pasted into another variable: withheld as the password it is.
        (
            &[
                ("REDIS_PASSWORD", "Canary-5ecret"),
                ("REDIS_PORT", "Canary-5ecret"),
            ],
            Some("REDIS_PORT"),
        ),
        (
            &[("REDIS_URL", URL), ("CACHE_TTL_DEFAULT", ENCODED)],
            Some("CACHE_TTL_DEFAULT"),
        ),
        (
            &[("REDIS_URL", URL), ("CACHE_CODEC", CANARY)],
            Some("CACHE_CODEC"),
        ),
        (&[("REDIS_DB", CANARY)], Some("REDIS_DB")),
        // The password itself, with every character that breaks building a URL.
        (&[("REDIS_PASSWORD", CANARY)], None),
        (&[("REDIS_PASSWORD", ENCODED)], None),
        (&[("REDIS_PASSWORD", "Canary-5ecret /%@:?#[]\\x")], None),
        (
            &[("REDIS_USERNAME", "app"), ("REDIS_PASSWORD", CANARY)],
            None,
        ),
        // A password in the user name variable (no password beside it).
        (&[("REDIS_USERNAME", CANARY)], None),
        (
            &[("REDIS_PASSWORD", CANARY), ("REDIS_PORT", "http")],
            Some("REDIS_PORT"),
        ),
        (
            &[("REDIS_PASSWORD", CANARY), ("REDIS_HOST", "a host")],
            Some("REDIS_HOST"),
        ),
        (
            &[("REDIS_PASSWORD", CANARY), ("REDIS_TLS_CA", "/x.pem")],
            Some("REDIS_TLS_CA"),
        ),
        (
            &[("REDIS_PASSWORD", CANARY), ("CACHE_BACKEND", CANARY)],
            Some("CACHE_BACKEND"),
        ),
        (
            &[("REDIS_PASSWORD", CANARY), ("CACHE_TTL_DEFAULT", CANARY)],
            Some("CACHE_TTL_DEFAULT"),
        ),
    ];
    for (vars, failing) in cases {
        let what = format!("{vars:?}");
        let outcome = from_vars(vars);
        assert_outcome_clean(&what, &outcome);
        assert_eq!(
            outcome.as_ref().err().map(|e| e.variable),
            *failing,
            "{what}: {outcome:?}"
        );
    }
}

/// Serializes the tests that change the process environment or working directory, clears every
/// `REDIS_*` and `CACHE_*` variable, and restores the environment and directory when dropped.
struct ProcessEnv {
    vars: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    dir: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

static ENV: Mutex<()> = Mutex::new(());

impl ProcessEnv {
    fn take(name: &str) -> ProcessEnv {
        let lock = ENV.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("no-secrets-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = ProcessEnv {
            vars: std::env::vars_os().collect(),
            cwd: std::env::current_dir().unwrap(),
            dir,
            _lock: lock,
        };
        env.clear();
        env
    }

    /// Removes the configuration variables (also those an earlier `.env` set).
    fn clear(&self) {
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("REDIS_") || text.starts_with("CACHE_") {
                std::env::remove_var(&name);
            }
        }
    }

    /// Writes `.env` in the scratch directory and makes that the working directory.
    fn dot_env(&self, contents: &str) {
        std::fs::write(self.dir.join(".env"), contents).unwrap();
        std::env::set_current_dir(&self.dir).unwrap();
    }
}

impl Drop for ProcessEnv {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.cwd);
        for (name, _) in std::env::vars_os() {
            if !self.vars.iter().any(|(n, _)| *n == name) {
                std::env::remove_var(&name);
            }
        }
        for (name, value) in &self.vars {
            std::env::set_var(name, value);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn dot_env_errors_do_not_echo_the_line() {
    let env = ProcessEnv::take("dotenv");
    // (contents, the line at fault)
    let bad_lines = [
        (format!("REDIS_HOST=h\nREDIS_PASSWORD {CANARY}\n"), 2),
        (
            format!("# cache\n\nREDIS_PASSWORD=\"{CANARY}\nREDIS_PORT=6379\n"),
            3,
        ),
        (format!("REDIS_PASSWORD='{CANARY}\n"), 1),
        (format!("REDIS_PASSWORD={CANARY} '\n"), 1),
        (format!("{CANARY}=x\n"), 1),
    ];
    for (contents, line) in bad_lines {
        env.clear();
        env.dot_env(&contents);
        let e = CacheConfig::from_env().expect_err(&contents);
        assert_config_error_clean(&contents, &e);
        assert_eq!(e.variable, ".env", "{e}");
        assert!(
            e.to_string().contains(&format!("line {line}")),
            "{contents:?}: {e}"
        );
    }
    // Lines that parse, with values that do not.
    let bad_values = [
        (
            format!("REDIS_URL=redis://:{CANARY}@h:6379/0\n"),
            "REDIS_URL",
        ),
        (
            format!("REDIS_URL=\"redis://:{ENCODED}@h:notaport\"\n"),
            "REDIS_URL",
        ),
        (
            format!("REDIS_HOST=redis://:{CANARY}@h:6379\n"),
            "REDIS_HOST",
        ),
        (
            format!("REDIS_PASSWORD={ENCODED}\nREDIS_PORT=x\n"),
            "REDIS_PORT",
        ),
    ];
    for (contents, variable) in bad_values {
        env.clear();
        env.dot_env(&contents);
        let e = CacheConfig::from_env().expect_err(&contents);
        assert_config_error_clean(&contents, &e);
        assert_eq!(e.variable, variable, "{contents:?}: {e}");
    }
    env.clear();
    env.dot_env(&format!("REDIS_PASSWORD='{CANARY}'\n"));
    let config = CacheConfig::from_env().unwrap();
    assert_config_clean(".env", &config);
}

#[cfg(unix)]
#[test]
fn values_that_are_not_utf8_are_refused_without_echo() {
    use std::os::unix::ffi::OsStringExt;
    let env = ProcessEnv::take("utf8");
    for (variable, value) in [
        ("REDIS_PASSWORD", format!("{CANARY}\u{ff}")),
        ("REDIS_USERNAME", format!("{CANARY}\u{ff}")),
        ("REDIS_HOST", format!("{CANARY}\u{ff}")),
        ("REDIS_URL", format!("redis://:{ENCODED}\u{ff}@h:6379/0")),
        ("REDIS_PORT", format!("{CANARY}\u{ff}")),
    ] {
        env.clear();
        // The canary followed by a lone 0xFF byte.
        let mut bytes = value.trim_end_matches('\u{ff}').as_bytes().to_vec();
        bytes.push(0xff);
        std::env::set_var(variable, OsString::from_vec(bytes));
        let e = CacheConfig::from_env().expect_err(variable);
        assert_config_error_clean(variable, &e);
        assert_eq!(e.variable, variable, "{e}");
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}

/// Files whose contents hold the canary and do not make a certificate or key, in each way reading
/// them can fail: a malformed first line (the PEM reader's error holds the line), a section
/// without its end (the error holds the label), bad base64, no PEM at all, and well-formed PEM
/// whose bytes (the canary, in base64) are no certificate or key. Then a path that does not exist
/// and one that opens but cannot be read (a directory: the tests may run as root, for whom no
/// file is unreadable).
#[cfg(feature = "tls")]
fn bad_pem_files(dir: &Path) -> Vec<PathBuf> {
    /// The canary in base64.
    const BASE64: &str = "Q2FuYXJ5LTVlY3JldC8lQDp4";
    let contents = [
        format!("-----BEGIN PRIVATE KEY {CANARY}\n"),
        "-----BEGIN Canary-5ecret-----\nAAAA\n".to_owned(),
        format!("-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN CERTIFICATE-----\n{CANARY}\n-----END CERTIFICATE-----\n"),
        format!("{CANARY}\n"),
        format!("-----BEGIN PRIVATE KEY-----\n{BASE64}\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN CERTIFICATE-----\n{BASE64}\n-----END CERTIFICATE-----\n"),
    ];
    let mut files: Vec<PathBuf> = contents
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("bad-{i}.pem"));
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    files.push(dir.join("missing.pem"));
    let unreadable = dir.join("unreadable.pem");
    std::fs::create_dir_all(&unreadable).unwrap();
    files.push(unreadable);
    files
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_files_never_show_their_contents() {
    capture_logs();
    let scratch = Scratch::new("tls");
    let dir = &scratch.0;
    let url = format!("rediss://:{ENCODED}@127.0.0.1:{}/0", closed_port());
    // Well-formed PEM (not a usable certificate or key), to go with each bad file.
    let [cert, key] = ["CERTIFICATE", "PRIVATE KEY"].map(|label| {
        let path = dir.join(format!("{label}.pem"));
        std::fs::write(
            &path,
            format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"),
        )
        .unwrap();
        path
    });
    for file in bad_pem_files(dir) {
        for (variable, builder) in [
            ("REDIS_TLS_CA", CacheConfig::builder().tls_ca(&file)),
            (
                "REDIS_TLS_CERT",
                CacheConfig::builder().tls_client_cert(&file, &key),
            ),
            (
                "REDIS_TLS_KEY",
                CacheConfig::builder().tls_client_cert(&cert, &file),
            ),
        ] {
            let what = format!("{variable}={}", file.display());
            let builder = builder
                .url(&url)
                .fail_silently(false)
                .socket_timeout(Duration::from_secs(1));
            assert_clean(&what, &format!("{builder:?}"));
            let error = match builder.build() {
                Err(e) => {
                    assert_config_error_clean(&what, &e);
                    e.to_string()
                }
                Ok(config) => {
                    assert_config_clean(&what, &config);
                    let e = Cache::new(config).await.expect_err(&what);
                    assert_error_clean(&what, &e);
                    e.to_string()
                }
            };
            assert!(error.contains(variable), "{what}: {error}");
        }
    }
    assert_clean("logs", &logs());
}

/// A scratch directory of this test process, removed when dropped (also when a test fails).
#[cfg(feature = "tls")]
struct Scratch(PathBuf);

#[cfg(feature = "tls")]
impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("no-secrets-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

#[cfg(feature = "tls")]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn log_lines_never_show_the_password() {
    capture_logs();
    // Redis down: the cache starts anyway (failing silently) and logs why, then each operation
    // fails, is logged and counted.
    for url in [
        format!("redis://:{ENCODED}@127.0.0.1:{}/0", closed_port()),
        format!(
            "redis://app:{ENCODED}@127.0.0.1:{}/0?password={ENCODED}",
            closed_port()
        ),
        // A password without the colon that makes it one.
        format!("redis://{ENCODED}@127.0.0.1:{}/0", closed_port()),
    ] {
        let config = CacheConfig::builder()
            .url(&url)
            .socket_timeout(Duration::from_millis(300))
            .breaker_threshold(0)
            .build()
            .unwrap();
        let cache = Cache::new(config).await.unwrap();
        assert!(cache.get::<String>("k").await.is_ok());
        assert!(cache.set("k", "v", None).await.is_ok());
        let health = cache.health_check().await;
        assert!(!health.healthy);
        assert_clean("health", &format!("{health:?}"));
        assert_clean("stats", &format!("{:?}", cache.stats()));
        assert_config_clean("cache", cache.config());
        assert_clean("cache", &format!("{cache:?}"));

        // Failing loudly, the error is returned instead.
        let config = CacheConfig::builder()
            .url(&url)
            .socket_timeout(Duration::from_millis(300))
            .fail_silently(false)
            .build()
            .unwrap();
        let e = Cache::new(config).await.unwrap_err();
        assert_error_clean(&url, &e);
    }
    let logs = logs();
    assert!(logs.contains("not reachable yet"), "{logs}");
    assert!(logs.contains("cache created"), "{logs}");
    assert_clean("logs", &logs);
}

/// Every event and span field logged in this process, one line each.
static LOGS: Mutex<String> = Mutex::new(String::new());

fn logs() -> String {
    LOGS.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Installs [`Capture`] as the process' subscriber (once): the cache logs from its own threads
/// too, which a thread-local subscriber would miss.
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// A `tracing` subscriber that writes every event and span, at every level, into [`LOGS`].
struct Capture;

static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

impl Capture {
    fn write(&self, line: String) {
        let mut logs = LOGS.lock().unwrap_or_else(PoisonError::into_inner);
        logs.push_str(&line);
        logs.push('\n');
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Fields(&mut line));
        self.write(line);
        tracing::span::Id::from_u64(NEXT_SPAN.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = "record".to_owned();
        values.record(&mut Fields(&mut line));
        self.write(line);
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {}", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        self.write(line);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Writes each field as ` name=value`; errors with their whole `source()` chain.
struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn Error + 'static)) {
        let _ = write!(self.0, " {}={value} ({value:?})", field.name());
        let mut source = value.source();
        while let Some(e) = source {
            let _ = write!(self.0, " caused by {e} ({e:?})");
            source = e.source();
        }
    }
}
