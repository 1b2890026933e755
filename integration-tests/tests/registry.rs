//! The registry of key spaces finds, before any request, the mistakes that otherwise show up as
//! entries shared by two functions or invalidations that delete nothing. This binary makes each
//! mistake once, on purpose, and checks that `registry::verify` reports exactly those.

use cache_core::registry::{self, Finding};
use cache_core::{cached, invalidate_cache};

fn user_key(id: &u64) -> String {
    format!("user-{id}")
}

// Two functions, one prefix, the same key builder: each reads the other's entries.
#[cached(ttl = 60, key_prefix = "reg_profile", key_builder = user_key)]
async fn profile(id: u64) -> String {
    format!("profile {id}")
}

#[cached(ttl = 60, key_prefix = "reg_profile", key_builder = user_key)]
async fn avatar(id: u64) -> String {
    format!("avatar {id}")
}

// The same, opted into on purpose: not reported.
#[cached(ttl = 60, key_prefix = "reg_both", key_builder = user_key, shared_keys)]
async fn both_a(id: u64) -> String {
    format!("a {id}")
}

#[cached(ttl = 60, key_prefix = "reg_both", key_builder = user_key, shared_keys = true)]
async fn both_b(id: u64) -> String {
    format!("b {id}")
}

// A `version` bump moves the keys to `reg_user:get_user:v2:...`; the literal pattern still
// names the old layout and would delete nothing.
#[cached(ttl = 60, key_prefix = "reg_user", version = 2)]
async fn get_user(id: u64) -> String {
    format!("user {id}")
}

#[invalidate_cache("reg_user:get_user:{id}")]
async fn update_user(id: u64) {
    let _ = id;
}

// A typo in a pattern.
#[invalidate_cache("reg_user:get_users:*")]
async fn typo(id: u64) {
    let _ = id;
}

// A pattern over two functions' keys, without and with `allow_all`.
#[cached(ttl = 60, key_prefix = "reg_post")]
async fn get_post(id: u64) -> String {
    format!("post {id}")
}

#[cached(ttl = 60, key_prefix = "reg_post")]
async fn list_posts(page: u32) -> Vec<String> {
    vec![format!("page {page}")]
}

#[invalidate_cache("reg_post:*")]
async fn wipe_posts() {}

#[invalidate_cache("reg_post:*", allow_all = true)]
async fn wipe_posts_on_purpose() {}

// Keys written by hand, declared: the pattern over them is fine.
cache_core::key_space!("reg_trending");

#[invalidate_cache("reg_trending:*")]
async fn refresh_trending() {}

#[test]
fn verify_reports_each_mistake_and_nothing_else() {
    let report = registry::verify().expect_err("this binary has mistakes on purpose");
    let text = report.to_string();
    let mut shared = Vec::new();
    let mut unmatched = Vec::new();
    let mut spans = Vec::new();
    for finding in &report.findings {
        match finding {
            Finding::SharedKeySpace { heads, sites } => {
                shared.push((heads.clone(), sites.clone()));
            }
            Finding::UnmatchedPattern { glob, .. } => unmatched.push(glob.clone()),
            Finding::SpansKeySpaces { glob, heads, .. } => {
                spans.push((glob.clone(), heads.clone()))
            }
        }
    }
    assert_eq!(shared.len(), 1, "{text}");
    assert_eq!(
        shared[0].0,
        ("reg_profile".into(), "reg_profile".into()),
        "{text}"
    );
    assert!(
        shared[0].1 .0.contains("registry::") && shared[0].1 .1.contains("registry::"),
        "sites name the functions: {text}"
    );
    unmatched.sort();
    assert_eq!(
        unmatched,
        ["reg_user:get_user:{id}", "reg_user:get_users:*"],
        "{text}"
    );
    assert_eq!(
        spans,
        [(
            "reg_post:*".to_owned(),
            vec![
                "reg_post:get_post".to_owned(),
                "reg_post:list_posts".to_owned()
            ]
        )],
        "{text}"
    );
    assert!(
        text.contains("version"),
        "the message says what to check: {text}"
    );
}

#[test]
fn the_registry_lists_every_key_space() {
    let heads: Vec<&str> = registry::key_spaces().iter().map(|s| s.head()).collect();
    for head in [
        "reg_profile",
        "reg_both",
        "reg_user:get_user:v2",
        "reg_post:get_post",
        "reg_post:list_posts",
        "reg_trending",
    ] {
        assert!(heads.contains(&head), "{head} missing from {heads:?}");
    }
}

/// `CACHE_VERIFY_KEYS=error` makes `init` fail with the findings, before connecting; `off` and
/// the default `warn` let it start.
#[tokio::test]
async fn init_fails_on_findings_when_asked() {
    let strict = cache_core::CacheConfig::builder()
        .memory(1 << 20)
        .verify_keys(registry::KeyCheck::Error)
        .build()
        .unwrap();
    match cache_core::init(strict).await {
        Err(cache_core::CacheError::KeySpaces(report)) => {
            assert_eq!(report, registry::verify().unwrap_err());
        }
        other => panic!("expected the key-space findings, got {other:?}"),
    }
    let lenient = cache_core::CacheConfig::builder()
        .memory(1 << 20)
        .build()
        .unwrap();
    assert_eq!(lenient.verify_keys(), registry::KeyCheck::Warn);
    cache_core::init(lenient).await.expect("warnings only");
}
