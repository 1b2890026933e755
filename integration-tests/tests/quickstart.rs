//! The README's first command runs the quickstart: it must show a miss, a hit, an invalidation
//! and a hit again, against Redis when one answers and, as the example's own choice, against the
//! in-process backend when none does.

use std::process::Command;

use integration_tests::{closed_port_url, workspace_binary, RedisServer};

fn quickstart(redis_url: &str) -> String {
    let binary = workspace_binary(
        "examples/quickstart",
        &["-p", "cache-core", "--example", "quickstart"],
    );
    let dir = std::env::temp_dir().join(format!("quickstart-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(binary)
        .current_dir(&dir) // no stray .env
        .env_clear()
        .env("REDIS_URL", redis_url)
        .env("REDIS_SOCKET_TIMEOUT", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn assert_the_story(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let outcome = |prefix: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"))
            .to_string()
    };
    assert!(outcome("get_server_details(123), first call").contains("Some(\"web-123\")"));
    assert!(outcome("after rename_server").contains("Some(\"web-123-renamed\")"));
    assert!(
        text.contains("stats: 2 hits, 2 misses, 0 errors, hit rate 50%"),
        "{text}"
    );
}

#[test]
fn the_quickstart_caches_and_invalidates_against_redis() {
    let server = RedisServer::start();
    let text = quickstart(&server.url());
    assert!(text.contains("backend: Redis"), "{text}");
    assert_the_story(&text);
    // It leaves its key behind, stored by the last call.
    assert_eq!(
        server.cmd("EXISTS quickstart:get_server_details:123"),
        integration_tests::Reply::Integer(1)
    );
}

#[test]
fn without_redis_the_quickstart_says_so_and_uses_the_in_process_backend() {
    let text = quickstart(&closed_port_url());
    assert!(
        text.contains("no Redis answers at") && text.contains("in-process backend"),
        "{text}"
    );
    assert_the_story(&text);
}
