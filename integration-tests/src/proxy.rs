//! A fault-injecting TCP proxy between a client under test and a `redis-server`, so a test can
//! make Redis hung, slow or partitioned while its process keeps running, not only killed.
//!
//! ```no_run
//! use integration_tests::{proxy::{Fault, FaultProxy}, RedisServer};
//! use std::time::Duration;
//!
//! let server = RedisServer::start();
//! let proxy = FaultProxy::start(server.port());
//! // Point the client under test at `proxy.url()`, then:
//! proxy.set(Fault::Latency(Duration::from_millis(200)));
//! proxy.set(Fault::Blackhole);
//! proxy.set(Fault::None); // the stalled bytes now flow on, in order
//! ```
//!
//! # Threads, not tasks
//!
//! The proxy uses std threads and blocking std sockets only: it does not need, and never touches,
//! the caller's tokio runtime. It behaves the same from a plain `#[test]`, a current-thread
//! `#[tokio::test]` (whose single thread may be blocked in the test while the proxy forwards) and
//! a multi-thread runtime, and it keeps working after the test's runtime is dropped.
//!
//! One accept thread, plus two pump threads per connection: client→server and server→client.
//! Every pump polls with short socket timeouts (50 ms) and waits on a shared condition variable,
//! so [`FaultProxy::set`], [`FaultProxy::reset_connections`] and `Drop` reach it at once.
//!
//! # Stall, not discard
//!
//! A stalled direction ([`Fault::Blackhole`], [`Fault::DropClientToServer`],
//! [`Fault::DropServerToClient`]) stops *reading* its source socket and stops writing what it
//! already holds. No byte is thrown away: the sender's bytes wait in the kernel's socket buffers
//! (and in the proxy's own per-direction queue, for bytes read just before the fault was set), so
//! a sender that keeps writing fills those buffers and blocks, as over a real partition. When the
//! fault is lifted, the held bytes flow on in their original order, as after a healed TCP
//! partition. Nothing is ever injected or reordered. The proxy closes a connection only when
//! both ends have closed (an end-of-file is passed on as a half-close), when one of its sockets
//! fails, on [`FaultProxy::reset_connections`], or when the proxy is dropped.
//!
//! A stalled pump does not read, so it does not notice a peer that closes its socket either: a
//! connection abandoned by the client under a stall stays open (and counted by
//! [`FaultProxy::connections`]) until the stall is lifted and the close is forwarded, again as a
//! FIN lost in a partition would be.
//!
//! # Memory
//!
//! Each direction reads at most 32 KiB at a time and holds at most 1 MiB that it has read but not
//! yet forwarded (under [`Fault::Latency`]); beyond that it stops reading until the queue drains.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a pump blocks in one socket call or wait before it looks at the fault again.
const POLL: Duration = Duration::from_millis(50);
/// The most a pump reads from its source at once.
const CHUNK: usize = 32 * 1024;
/// The most a pump holds read but not forwarded (the latency queue) before it stops reading.
const QUEUE_CAP: usize = 1024 * 1024;
/// How long the accept thread tries to reach the upstream server for a new connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `Drop` waits for the proxy's threads to end before it leaves them detached.
const DROP_JOIN_LIMIT: Duration = Duration::from_secs(2);

/// What the proxy does to the traffic it forwards. Set with [`FaultProxy::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways, as fast as the sockets allow.
    None,
    /// Hold each chunk for this long after it was read before forwarding it, in both directions,
    /// so a request/reply round trip costs at least twice this. Chunks keep their order, and a
    /// chunk that arrives while others wait is not delayed further by them (latency, not a
    /// bandwidth limit).
    Latency(Duration),
    /// Accept connections (and open their upstream connections) but forward nothing in either
    /// direction. A stall, not a discard: the bytes wait in socket buffers and flow on, in order,
    /// once the fault is lifted, as after a healed partition.
    Blackhole,
    /// Stall client→server (as [`Fault::Blackhole`] does); server→client flows.
    DropClientToServer,
    /// Stall server→client (as [`Fault::Blackhole`] does); client→server flows, so commands still
    /// run on the server, but their replies wait until the fault is lifted.
    DropServerToClient,
    /// Throttle server→client to about this many bytes per second (client→server flows freely).
    /// The proxy reads the server only as fast as this, so the backpressure reaches the server.
    /// A rate of 0 stalls server→client, as [`Fault::DropServerToClient`] does.
    SlowReads {
        /// The rate, in bytes per second.
        bytes_per_sec: u64,
    },
    /// New connections are accepted and at once closed (the client reads end-of-file). Existing
    /// connections keep the behaviour they had before: after `set(Fault::Blackhole)` then
    /// `set(Fault::Refuse)` they stay stalled, after `set(Fault::None)` then `set(Fault::Refuse)`
    /// they keep forwarding.
    Refuse,
}

impl Fault {
    /// Whether this fault stalls `direction` (neither reads nor forwards).
    fn stalls(&self, direction: Direction) -> bool {
        match self {
            Fault::Blackhole => true,
            Fault::DropClientToServer => direction == Direction::ClientToServer,
            Fault::DropServerToClient | Fault::SlowReads { bytes_per_sec: 0 } => {
                direction == Direction::ServerToClient
            }
            Fault::None | Fault::Latency(_) | Fault::SlowReads { .. } | Fault::Refuse => false,
        }
    }

    /// How long each chunk waits before it is forwarded.
    fn latency(&self) -> Duration {
        match self {
            Fault::Latency(delay) => *delay,
            _ => Duration::ZERO,
        }
    }

    /// The throttle on `direction`, in bytes per second, if any.
    fn rate(&self, direction: Direction) -> Option<u64> {
        match self {
            Fault::SlowReads { bytes_per_sec } if direction == Direction::ServerToClient => {
                Some(*bytes_per_sec)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

/// What the pumps and the accept thread share with the [`FaultProxy`] handle.
struct Shared {
    state: Mutex<State>,
    /// Notified whenever `state` changes.
    changed: Condvar,
    /// Bumped (under `state`'s lock) on every change, so a pump can notice one without locking.
    generation: AtomicU64,
    /// Open connections by id.
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Every pump thread started and not yet joined.
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

struct State {
    /// The fault as last set, `Refuse` included.
    fault: Fault,
    /// The fault the existing connections follow: the last one set other than `Refuse`.
    forwarding: Fault,
    stopping: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Changes the state and wakes every waiting pump.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = lock(&self.state);
        change(&mut state);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// The fault existing connections follow, the generation it belongs to, and whether the
    /// proxy is stopping.
    fn snapshot(&self) -> (Fault, u64, bool) {
        let state = lock(&self.state);
        (
            state.forwarding.clone(),
            self.generation.load(Ordering::SeqCst),
            state.stopping,
        )
    }

    /// Waits up to `limit`, or less if the state changes after `generation`.
    fn wait(&self, generation: u64, limit: Duration) {
        let state = lock(&self.state);
        if self.generation.load(Ordering::SeqCst) == generation && !state.stopping {
            let _ = self.changed.wait_timeout(state, limit);
        }
    }

    fn changed_since(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) != generation
    }

    /// Closes `connection` (if not yet closed) and forgets it.
    fn close(&self, connection: &Connection) {
        connection.close();
        lock(&self.connections).remove(&connection.id);
    }

    /// Closes and forgets every open connection, then wakes the pumps so they end.
    fn close_all(&self) {
        let open: Vec<Arc<Connection>> = lock(&self.connections).drain().map(|(_, c)| c).collect();
        for connection in &open {
            connection.close();
        }
        self.update(|_| {});
    }
}

/// One proxied connection: the accepted client socket and the proxy's socket to the server.
struct Connection {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    /// Pumps still running; the last one out closes the connection.
    pumps: AtomicUsize,
}

impl Connection {
    /// Shuts both sockets down both ways (at most once). Blocked pumps wake up with end-of-file
    /// or an error; the file descriptors close when the last pump drops its handle.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A fault-injecting TCP proxy on a free `127.0.0.1` port, forwarding to a server on
/// `127.0.0.1:{upstream_port}`. See the [module documentation](self) for the semantics.
///
/// Dropping it stops accepting (the port is released), closes every connection (as
/// [`FaultProxy::reset_connections`] does) and joins its threads (waiting at most 2 s).
pub struct FaultProxy {
    port: u16,
    upstream_port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .field("upstream_port", &self.upstream_port)
            .field("fault", &self.fault())
            .field("connections", &self.connections())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to the server on `127.0.0.1:{upstream_port}`, listening on a free loopback
    /// port (never 6379), forwarding with [`Fault::None`].
    ///
    /// Connections are accepted as soon as this returns. For each, the proxy connects to the
    /// upstream server (waiting at most 1 s); if it cannot, it closes the client's connection.
    ///
    /// # Panics
    ///
    /// If `upstream_port` is 6379 (the shared Redis must never be used), or if no loopback port
    /// can be bound or no thread started.
    pub fn start(upstream_port: u16) -> FaultProxy {
        assert_ne!(
            upstream_port, 6379,
            "the shared Redis port must never be used"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
        let port = listener.local_addr().expect("local address").port();
        assert_ne!(port, 6379, "the shared Redis port must never be used");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                fault: Fault::None,
                forwarding: Fault::None,
                stopping: false,
            }),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            pumps: Mutex::new(Vec::new()),
        });
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("fpx-acc-{port}"))
                .spawn(move || accept_loop(&listener, upstream, &shared, port))
                .expect("start the proxy's accept thread")
        };
        FaultProxy {
            port,
            upstream_port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port the proxy listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0`: the URL to give the client under test instead of the
    /// server's.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Sets the fault. It applies at once to existing connections (a stalled pump resumes, a
    /// running one stalls before it forwards its next chunk) and to new ones. Only
    /// [`Fault::Refuse`] leaves existing connections as they were.
    pub fn set(&self, fault: Fault) {
        self.shared.update(|state| {
            if fault != Fault::Refuse {
                state.forwarding = fault.clone();
            }
            state.fault = fault;
        });
    }

    /// The fault as last set.
    pub fn fault(&self) -> Fault {
        lock(&self.shared.state).fault.clone()
    }

    /// Closes every open connection at once, both the client's side and the server's side.
    ///
    /// std has no `SO_LINGER`, so this is not a TCP RST: both sockets are shut down both ways
    /// (`shutdown(Both)`), so the client reads end-of-file (a FIN) at once, its writes fail once the
    /// proxy has closed the socket (a reset, since the proxy never reads them), and the server
    /// sees its client disconnect. Bytes held by a stall or a latency queue are dropped. On return
    /// [`FaultProxy::connections`] is 0; new connections are accepted as before.
    pub fn reset_connections(&self) {
        self.shared.close_all();
    }

    /// How many client connections are open through the proxy: accepted, connected upstream,
    /// and not yet closed by either side, a socket error or [`FaultProxy::reset_connections`].
    pub fn connections(&self) -> usize {
        lock(&self.shared.connections).len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.update(|state| state.stopping = true);
        // The accept thread blocks in accept(): a connection wakes it to see `stopping`.
        let woke = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(1),
        );
        let deadline = Instant::now() + DROP_JOIN_LIMIT;
        if let Some(acceptor) = self.acceptor.take() {
            join_until(acceptor, deadline);
        }
        drop(woke);
        // The accept thread started every pump: none can start after it has ended.
        self.shared.close_all();
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        for pump in pumps {
            join_until(pump, deadline);
        }
    }
}

/// Joins `thread` if it ends before `deadline`; otherwise leaves it detached.
fn join_until(thread: JoinHandle<()>, deadline: Instant) {
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>, port: u16) {
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        let (fault, stopping) = {
            let state = lock(&shared.state);
            (state.fault.clone(), state.stopping)
        };
        if stopping {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors or an aborted handshake: try again shortly.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if fault == Fault::Refuse {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        // Small writes go out at once, so latency is the proxy's and not Nagle's.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        next_id += 1;
        let connection = Arc::new(Connection {
            id: next_id,
            client,
            server,
            closed: AtomicBool::new(false),
            pumps: AtomicUsize::new(2),
        });
        lock(&shared.connections).insert(next_id, Arc::clone(&connection));
        for (direction, name) in [
            (Direction::ClientToServer, format!("fpx-c2s-{port}")),
            (Direction::ServerToClient, format!("fpx-s2c-{port}")),
        ] {
            let pump_shared = Arc::clone(shared);
            let pump_connection = Arc::clone(&connection);
            let started = std::thread::Builder::new()
                .name(name)
                .spawn(move || pump(&pump_shared, &pump_connection, direction));
            match started {
                Ok(handle) => {
                    let mut pumps = lock(&shared.pumps);
                    pumps.retain(|p| !p.is_finished());
                    pumps.push(handle);
                }
                Err(_) => {
                    // The other pump (if started) sees the close and ends.
                    shared.close(&connection);
                    break;
                }
            }
        }
    }
}

/// How a pump ended.
enum End {
    /// Its source sent end-of-file and everything before it was forwarded.
    Eof,
    /// The connection is closed: a socket failed, or it was reset, or the proxy is stopping.
    Closed,
}

/// A chunk read from the source and not yet (fully) forwarded.
struct Chunk {
    read_at: Instant,
    data: Vec<u8>,
    sent: usize,
}

fn pump(shared: &Shared, connection: &Connection, direction: Direction) {
    let (source, dest) = match direction {
        Direction::ClientToServer => (&connection.client, &connection.server),
        Direction::ServerToClient => (&connection.server, &connection.client),
    };
    match forward(shared, connection, direction, source, dest) {
        // Half-close: pass the end-of-file on; the other direction may still have bytes to carry.
        End::Eof => {
            let _ = dest.shutdown(Shutdown::Write);
        }
        End::Closed => shared.close(connection),
    }
    if connection.pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.close(connection);
    }
}

fn transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Copies `source` to `dest` under the current fault until end-of-file or the connection closes.
fn forward(
    shared: &Shared,
    connection: &Connection,
    direction: Direction,
    mut source: &TcpStream,
    mut dest: &TcpStream,
) -> End {
    // Writes give up after POLL, so a pump blocked on a full destination still sees faults.
    if dest.set_write_timeout(Some(POLL)).is_err() {
        return End::Closed;
    }
    let mut queue: VecDeque<Chunk> = VecDeque::new();
    let mut queued = 0usize;
    let mut source_ended = false;
    let mut next_read = Instant::now();
    let mut read_timeout = None;
    let mut buffer = vec![0u8; CHUNK];
    'pump: loop {
        let (fault, generation, stopping) = shared.snapshot();
        if stopping || connection.is_closed() {
            return End::Closed;
        }
        if fault.stalls(direction) {
            shared.wait(generation, POLL);
            continue;
        }
        // Forward every chunk that is due, oldest first.
        let delay = fault.latency();
        while let Some(head) = queue.front_mut() {
            if head.read_at + delay > Instant::now() {
                break;
            }
            if shared.changed_since(generation) {
                continue 'pump;
            }
            match dest.write(&head.data[head.sent..]) {
                Ok(0) => return End::Closed,
                Ok(n) => {
                    head.sent += n;
                    if head.sent == head.data.len() {
                        queued -= head.data.len();
                        queue.pop_front();
                    }
                }
                // The destination is full: look at the fault again before retrying.
                Err(e) if transient(&e) => continue 'pump,
                Err(_) => return End::Closed,
            }
        }
        let now = Instant::now();
        // Time until the oldest held chunk is due (all held chunks are in the future now).
        let until_due = queue
            .front()
            .map(|head| (head.read_at + delay).saturating_duration_since(now));
        let idle = until_due.map_or(POLL, |d| d.min(POLL));
        if source_ended {
            if queue.is_empty() {
                return End::Eof;
            }
            shared.wait(generation, idle);
            continue;
        }
        let mut limit = CHUNK;
        if let Some(rate) = fault.rate(direction) {
            if now < next_read {
                shared.wait(generation, (next_read - now).min(idle));
                continue;
            }
            // About ten reads a second, each as large as the rate allows.
            limit = usize::try_from(rate / 10).unwrap_or(CHUNK).clamp(1, CHUNK);
        }
        if queued >= QUEUE_CAP {
            shared.wait(generation, idle);
            continue;
        }
        let timeout = idle.max(Duration::from_millis(1));
        if read_timeout != Some(timeout) {
            if source.set_read_timeout(Some(timeout)).is_err() {
                return End::Closed;
            }
            read_timeout = Some(timeout);
        }
        match source.read(&mut buffer[..limit]) {
            Ok(0) => source_ended = true,
            Ok(n) => {
                let read_at = Instant::now();
                queue.push_back(Chunk {
                    read_at,
                    data: buffer[..n].to_vec(),
                    sent: 0,
                });
                queued += n;
                if let Some(rate) = fault.rate(direction) {
                    next_read = read_at + Duration::from_secs_f64(n as f64 / rate as f64);
                }
            }
            Err(e) if transient(&e) => {}
            Err(_) => return End::Closed,
        }
    }
}
