//! The fault-injecting proxy itself, against real `redis-server` processes: what each fault does
//! to a connection, that stalled bytes are delivered (not lost) once a fault is lifted, and that
//! the proxy needs no tokio runtime and leaves no thread or socket behind when dropped.
//!
//! Raw connections speak RESP by hand, so a test sees exactly which bytes came back and when.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration_tests::proxy::{Fault, FaultProxy};
use integration_tests::{command_at, wait_until, RedisServer, Reply};

/// A command in RESP.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect to the proxy")
}

fn send(stream: &mut TcpStream, args: &[&str]) {
    stream.write_all(&resp(args)).expect("write a command");
}

/// Reads exactly `expected.len()` bytes, each read waiting at most `within`, and compares.
fn expect_reply(stream: &mut TcpStream, expected: &[u8], within: Duration) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = vec![0; expected.len()];
    stream
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("expected {:?}: {e}", String::from_utf8_lossy(expected)));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Asserts that nothing arrives on `stream` for `quiet`.
fn expect_silence(stream: &mut TcpStream, quiet: Duration) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected no reply for {quiet:?}, got {other:?}"),
    }
}

/// Asserts that `stream` was closed by the other side within `within`: end-of-file or a reset.
fn expect_closed(stream: &mut TcpStream, within: Duration) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

fn get_direct(server: &RedisServer, key: &str) -> Reply {
    command_at(server.port(), &["GET", key]).unwrap()
}

/// The names of this process' threads that belong to the proxy on `port`.
fn proxy_threads(port: u16) -> Vec<String> {
    let names = [
        format!("fpx-acc-{port}"),
        format!("fpx-c2s-{port}"),
        format!("fpx-s2c-{port}"),
    ];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|comm| comm.trim().to_owned())
        .filter(|comm| names.contains(comm))
        .collect()
}

#[test]
fn commands_pass_through_and_connections_are_counted() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    assert_ne!(proxy.port(), 6379);
    assert_ne!(proxy.port(), server.port());
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/0", proxy.port()));
    assert_eq!(proxy.fault(), Fault::None);

    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
    assert_eq!(
        command_at(proxy.port(), &["SET", "k", "v"]).unwrap(),
        Reply::Status("OK".into())
    );
    assert_eq!(
        command_at(proxy.port(), &["GET", "k"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    assert_eq!(get_direct(&server, "k"), Reply::Bulk(Some(b"v".to_vec())));

    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    send(&mut first, &["PING"]);
    expect_reply(&mut first, b"+PONG\r\n", Duration::from_secs(2));
    send(&mut second, &["GET", "k"]);
    expect_reply(&mut second, b"$1\r\nv\r\n", Duration::from_secs(2));
    assert!(wait_until(Duration::from_secs(1), || proxy.connections() == 2));
    // A client that closes its end closes the proxied connection, both sides.
    drop(first);
    assert!(
        wait_until(Duration::from_secs(1), || proxy.connections() == 1),
        "{proxy:?}"
    );
    drop(second);
    assert!(
        wait_until(Duration::from_secs(1), || proxy.connections() == 0),
        "{proxy:?}"
    );
    assert!(wait_until(Duration::from_secs(1), || {
        server.info_field("clients", "connected_clients").as_deref() == Some("1")
    }));
}

#[test]
fn latency_delays_each_direction_and_keeps_the_order() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let latency = Duration::from_millis(200);
    proxy.set(Fault::Latency(latency));
    assert_eq!(proxy.fault(), Fault::Latency(latency));

    let started = Instant::now();
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
    let round_trip = started.elapsed();
    println!("one round trip at 200 ms latency: {round_trip:?}");
    // 200 ms there, 200 ms back.
    assert!(round_trip >= 2 * latency, "{round_trip:?}");
    assert!(round_trip < Duration::from_secs(1), "{round_trip:?}");

    // Three commands written 50 ms apart: each is delayed by the latency, not by the ones before
    // it (a queue, not a serial sleep), and the replies come back in order.
    let mut stream = connect(&proxy);
    let started = Instant::now();
    send(&mut stream, &["SET", "k", "1"]);
    std::thread::sleep(Duration::from_millis(50));
    send(&mut stream, &["INCR", "k"]);
    std::thread::sleep(Duration::from_millis(50));
    send(&mut stream, &["GET", "k"]);
    expect_reply(
        &mut stream,
        b"+OK\r\n:2\r\n$1\r\n2\r\n",
        Duration::from_secs(2),
    );
    let pipelined = started.elapsed();
    println!("three commands 50 ms apart at 200 ms latency: {pipelined:?}");
    assert!(pipelined >= 2 * latency + Duration::from_millis(100));
    assert!(pipelined < Duration::from_millis(800), "{pipelined:?}");

    // Lifted at once, for the existing connection too.
    proxy.set(Fault::None);
    let started = Instant::now();
    send(&mut stream, &["PING"]);
    expect_reply(&mut stream, b"+PONG\r\n", Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[test]
fn a_blackhole_stalls_both_ways_and_delivers_in_order_once_lifted() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut stream = connect(&proxy);
    send(&mut stream, &["PING"]);
    expect_reply(&mut stream, b"+PONG\r\n", Duration::from_secs(2));

    proxy.set(Fault::Blackhole);
    // Two separate writes on the existing connection, and a connection opened under the fault.
    send(&mut stream, &["SET", "k", "v"]);
    send(&mut stream, &["GET", "k"]);
    let mut opened_during = connect(&proxy);
    send(&mut opened_during, &["PING"]);
    expect_silence(&mut stream, Duration::from_millis(500));
    expect_silence(&mut opened_during, Duration::from_millis(50));
    // Nothing reached the server either.
    assert_eq!(get_direct(&server, "k"), Reply::Bulk(None));
    assert_eq!(proxy.connections(), 2, "accepted under the blackhole");

    // Stalled, not discarded: the commands run and the replies arrive, in order.
    proxy.set(Fault::None);
    expect_reply(&mut stream, b"+OK\r\n$1\r\nv\r\n", Duration::from_secs(2));
    expect_reply(&mut opened_during, b"+PONG\r\n", Duration::from_secs(2));
    assert_eq!(get_direct(&server, "k"), Reply::Bulk(Some(b"v".to_vec())));
}

#[test]
fn dropping_client_to_server_holds_the_command_until_lifted() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut stream = connect(&proxy);
    proxy.set(Fault::DropClientToServer);
    send(&mut stream, &["SET", "k", "v"]);
    expect_silence(&mut stream, Duration::from_millis(500));
    assert_eq!(get_direct(&server, "k"), Reply::Bulk(None));

    proxy.set(Fault::None);
    expect_reply(&mut stream, b"+OK\r\n", Duration::from_secs(2));
    assert_eq!(get_direct(&server, "k"), Reply::Bulk(Some(b"v".to_vec())));
}

#[test]
fn dropping_server_to_client_runs_the_command_but_holds_the_reply() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut stream = connect(&proxy);
    proxy.set(Fault::DropServerToClient);
    send(&mut stream, &["SET", "k", "v"]);
    // The command reaches the server...
    assert!(wait_until(Duration::from_secs(1), || {
        get_direct(&server, "k") == Reply::Bulk(Some(b"v".to_vec()))
    }));
    // ...but its reply does not come back.
    expect_silence(&mut stream, Duration::from_millis(500));

    proxy.set(Fault::None);
    expect_reply(&mut stream, b"+OK\r\n", Duration::from_secs(2));
}

#[test]
fn slow_reads_throttle_a_large_reply() {
    let server = RedisServer::start();
    let value = "x".repeat(200_000);
    assert_eq!(
        command_at(server.port(), &["SET", "big", &value]).unwrap(),
        Reply::Status("OK".into())
    );
    let proxy = FaultProxy::start(server.port());
    proxy.set(Fault::SlowReads {
        bytes_per_sec: 100_000,
    });

    let started = Instant::now();
    let reply = command_at(proxy.port(), &["GET", "big"]).unwrap();
    let took = started.elapsed();
    println!("200 KB at 100 KB/s: {took:?}");
    assert_eq!(reply, Reply::Bulk(Some(value.into_bytes())));
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // Unthrottled, the same reply takes a fraction of that.
    proxy.set(Fault::None);
    let started = Instant::now();
    command_at(proxy.port(), &["GET", "big"]).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn refuse_closes_new_connections_and_leaves_existing_ones_as_they_were() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut existing = connect(&proxy);
    send(&mut existing, &["PING"]);
    expect_reply(&mut existing, b"+PONG\r\n", Duration::from_secs(2));

    proxy.set(Fault::Refuse);
    assert_eq!(proxy.fault(), Fault::Refuse);
    let mut refused = connect(&proxy);
    expect_closed(&mut refused, Duration::from_secs(1));
    assert!(command_at(proxy.port(), &["PING"]).is_err());
    // The connection from before forwards as it did.
    send(&mut existing, &["PING"]);
    expect_reply(&mut existing, b"+PONG\r\n", Duration::from_secs(2));
    assert_eq!(proxy.connections(), 1);

    // A stalled connection stays stalled while new ones are refused.
    proxy.set(Fault::Blackhole);
    proxy.set(Fault::Refuse);
    send(&mut existing, &["PING"]);
    expect_silence(&mut existing, Duration::from_millis(300));

    proxy.set(Fault::None);
    expect_reply(&mut existing, b"+PONG\r\n", Duration::from_secs(2));
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
}

#[test]
fn reset_connections_closes_both_sides_of_every_connection() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    for stream in [&mut first, &mut second] {
        send(stream, &["PING"]);
        expect_reply(stream, b"+PONG\r\n", Duration::from_secs(2));
    }
    // One of them stalled: a reset ends it too.
    proxy.set(Fault::DropServerToClient);
    send(&mut second, &["PING"]);
    assert_eq!(proxy.connections(), 2);

    proxy.reset_connections();
    assert_eq!(proxy.connections(), 0);
    expect_closed(&mut first, Duration::from_secs(1));
    expect_closed(&mut second, Duration::from_secs(1));
    // The server lost its two proxied clients (the one left is INFO's own).
    assert!(wait_until(Duration::from_secs(2), || {
        server.info_field("clients", "connected_clients").as_deref() == Some("1")
    }));

    // The proxy itself goes on.
    proxy.set(Fault::None);
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
}

#[test]
fn a_dropped_proxy_ends_its_threads_and_closes_its_sockets() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let port = proxy.port();
    let mut flowing = connect(&proxy);
    send(&mut flowing, &["PING"]);
    expect_reply(&mut flowing, b"+PONG\r\n", Duration::from_secs(2));
    let mut stalled = connect(&proxy);
    assert!(wait_until(Duration::from_secs(1), || proxy.connections() == 2));
    proxy.set(Fault::Blackhole);
    send(&mut stalled, &["PING"]);
    // The accept thread and two pumps per connection (a connection is counted before its
    // pumps have started, so wait for them).
    assert!(
        wait_until(Duration::from_secs(2), || proxy_threads(port).len() == 5),
        "{:?}",
        proxy_threads(port)
    );

    let started = Instant::now();
    drop(proxy);
    println!("drop took {:?}", started.elapsed());
    assert!(
        wait_until(Duration::from_secs(1), || proxy_threads(port).is_empty()),
        "{:?}",
        proxy_threads(port)
    );
    assert!(wait_until(Duration::from_secs(1), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    }));
    expect_closed(&mut flowing, Duration::from_secs(1));
    expect_closed(&mut stalled, Duration::from_secs(1));
    assert!(wait_until(Duration::from_secs(2), || {
        server.info_field("clients", "connected_clients").as_deref() == Some("1")
    }));
}

/// The proxy forwards while the test's only runtime thread is blocked, or awaits.
#[tokio::test]
async fn works_from_a_current_thread_runtime() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port()))
        .await
        .unwrap();
    let mut reply = [0u8; 7];
    stream.write_all(&resp(&["PING"])).await.unwrap();
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"+PONG\r\n");

    proxy.set(Fault::Blackhole);
    stream.write_all(&resp(&["PING"])).await.unwrap();
    let waited =
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut reply)).await;
    assert!(waited.is_err(), "a reply through the blackhole: {waited:?}");
    proxy.set(Fault::None);
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply, b"+PONG\r\n");

    // Blocking std I/O on the runtime's only thread: the proxy's own threads do the forwarding.
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
}

#[tokio::main(worker_threads = 1)]
async fn start_on_a_runtime_of_its_own(port: u16) -> FaultProxy {
    FaultProxy::start(port)
}

#[test]
fn outlives_the_runtime_it_was_started_from() {
    let server = RedisServer::start();
    // The runtime that started it is gone when this returns.
    let proxy = start_on_a_runtime_of_its_own(server.port());
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
    proxy.set(Fault::Latency(Duration::from_millis(50)));
    assert_eq!(
        command_at(proxy.port(), &["PING"]).unwrap(),
        Reply::Status("PONG".into())
    );
}

#[test]
fn a_stalled_direction_pushes_back_on_the_sender_and_loses_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let mut stream = connect(&proxy);
    proxy.set(Fault::DropClientToServer);
    // One SET of 16 MB, written from a thread that records how far it got.
    const SIZE: usize = 16 * 1024 * 1024;
    let mut request = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${SIZE}\r\n").into_bytes();
    request.resize(request.len() + SIZE, b'x');
    request.extend_from_slice(b"\r\n");
    let total = request.len();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for piece in request.chunks(64 * 1024) {
                stream.write_all(piece).unwrap();
                written.fetch_add(piece.len(), Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let stalled_at = written.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    println!("written before the stall pushed back: {stalled_at} of {total} bytes");
    // The proxy stopped reading: the writer blocked once the socket buffers were full.
    assert!(stalled_at < total, "{stalled_at}");
    assert_eq!(written.load(Ordering::SeqCst), stalled_at);
    assert!(!writer.is_finished());

    proxy.set(Fault::None);
    writer.join().unwrap();
    expect_reply(&mut stream, b"+OK\r\n", Duration::from_secs(5));
    assert_eq!(
        command_at(server.port(), &["STRLEN", "big"]).unwrap(),
        Reply::Integer(SIZE as i64)
    );
}
