//! `redis-server` processes of a test: started on a free loopback port with a scratch
//! directory, paused, restarted (empty or with their data), and stopped by pid; and the watchdog
//! shell that kills them if the test process dies.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, resp, wait_until, Reply};

/// The command that installs what the harness needs, named in every failure about a missing binary.
pub const INSTALL: &str =
    "apt-get install -y redis-server redis-tools redis-sentinel (or run integration-tests/setup.sh)";

/// A `redis-server` process of this test, on its own loopback port and scratch directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
    process: Option<Watched>,
}

impl RedisServer {
    /// Starts a server with the harness' defaults (no persistence) on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts a server for a test binary whose tests reach the process-wide cache through the
    /// environment: `REDIS_URL` points at it and `REDIS_SOCKET_TIMEOUT` is `socket_timeout`
    /// seconds, set before any `get_cache()` reads them.
    pub fn start_for_env(socket_timeout: &str) -> RedisServer {
        let server = RedisServer::start();
        std::env::set_var("REDIS_URL", server.url());
        std::env::set_var("REDIS_SOCKET_TIMEOUT", socket_timeout);
        server
    }

    /// Starts a server with extra `redis-server` arguments, such as `["--maxmemory", "2mb"]`.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("cache-test-redis-{}-{port}", std::process::id()));
            let mut server = RedisServer {
                port,
                args: args.clone(),
                dir,
                process: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// Starts a server on exactly `port` (for tests of a client that was pointed there first).
    pub fn start_on(port: u16) -> RedisServer {
        let mut server = RedisServer {
            port,
            args: Vec::new(),
            dir: std::env::temp_dir()
                .join(format!("cache-test-redis-{}-{port}", std::process::id())),
            process: None,
        };
        server.restart();
        server
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server with SIGKILL (no shutdown, no save), as a crash would.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
        wait_until(Duration::from_secs(5), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }

    /// Stops the process without killing it (SIGSTOP): connections stay open, nothing answers.
    /// It runs again when the returned guard is dropped, so a failed assertion never leaves it
    /// stopped.
    #[must_use = "the server resumes when the guard is dropped"]
    pub fn pause(&self) -> Paused<'_> {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
        }
        Paused(self)
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }

    /// Kills the server if it runs, then starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("could not restart redis-server: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("scratch dir: {e}"))?;
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        require_binary("redis-server");
        let mut args: Vec<String> = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.args.iter().cloned());
        self.process = Some(Watched::spawn("redis-server", &args)?);
        let ready = wait_until(Duration::from_secs(10), || {
            matches!(self.try_command(&[b"PING"]), Ok(Reply::Status(ref s)) if s == "PONG")
                || matches!(self.try_command(&[b"PING"]), Ok(Reply::Error(ref e)) if e.starts_with("NOAUTH"))
        });
        if !ready {
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            self.kill();
            return Err(format!("port {}: not answering; log:\n{log}", self.port));
        }
        Ok(())
    }

    /// Sends one command over a fresh connection and returns the reply; panics if unreachable.
    pub fn command(&self, args: &[&[u8]]) -> Reply {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis-server on port {} did not answer: {e}", self.port))
    }

    /// A command spelled as text, split on spaces: `server.cmd("CONFIG SET maxmemory 2mb")`.
    pub fn cmd(&self, line: &str) -> Reply {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.command(&args)
    }

    /// Sends one command over a fresh connection, with a 5 s timeout.
    pub fn try_command(&self, args: &[&[u8]]) -> std::io::Result<Reply> {
        resp::request(self.port, args)
    }

    /// The value of one field of `INFO {section}`, such as `info_field("stats", "evicted_keys")`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let Reply::Bulk(Some(text)) = self.command(&[b"INFO", section.as_bytes()]) else {
            return None;
        };
        String::from_utf8_lossy(&text).lines().find_map(|line| {
            line.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
    }

    /// The number of keys in database 0.
    pub fn dbsize(&self) -> i64 {
        match self.cmd("DBSIZE") {
            Reply::Integer(n) => n,
            other => panic!("DBSIZE answered {other:?}"),
        }
    }
}

/// A paused server ([`RedisServer::pause`]); dropping it resumes the server.
#[derive(Debug)]
pub struct Paused<'a>(&'a RedisServer);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process of the harness, started by a watchdog shell that kills it when the shell's stdin
/// closes: when this handle is dropped, or when the test process dies in any way.
#[derive(Debug)]
pub struct Watched {
    /// The process id (of the program, not of the shell).
    pub pid: u32,
    shell: Child,
    stdin: ChildStdin,
}

impl Watched {
    /// Starts `program` with `args` behind a watchdog shell.
    pub fn spawn(program: &str, args: &[String]) -> Result<Watched, String> {
        let mut shell = Command::new("sh")
            .arg("-c")
            // Start the program, print its pid, wait for stdin to close, then kill it.
            .arg("\"$0\" \"$@\" & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let stdin = shell.stdin.take().ok_or("no stdin")?;
        let stdout = shell.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the pid: {e}"))?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| format!("no pid in {line:?}"))?;
        Ok(Watched { pid, shell, stdin })
    }

    /// Kills the process (SIGKILL) and reaps its shell.
    pub fn kill(mut self) {
        signal(self.pid, "KILL");
        drop(self.stdin);
        let _ = self.shell.wait();
    }
}

/// Panics with the install command when `binary` cannot be run.
pub fn require_binary(binary: &str) {
    if Command::new(binary).arg("--version").output().is_err() {
        panic!("{binary} is not installed: {INSTALL}");
    }
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`) to `pid`.
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reply;

    #[test]
    fn a_server_starts_answers_and_dies_with_its_handle() {
        let server = RedisServer::start();
        assert_ne!(server.port(), 6379);
        assert_eq!(server.cmd("SET k v"), Reply::Status("OK".into()));
        assert_eq!(server.cmd("GET k"), Reply::Bulk(Some(b"v".to_vec())));
        let pid = server.pid().unwrap();
        let port = server.port();
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
                // A zombie is reaped by its shell's exit; give it a moment.
                wait_until(Duration::from_secs(2), || {
                    !std::path::Path::new(&format!("/proc/{pid}")).exists()
                })
            }
        );
    }

    #[test]
    fn a_missing_binary_fails_with_the_install_command() {
        require_binary("redis-server");
        let panic = std::panic::catch_unwind(|| require_binary("redis-server-that-does-not-exist"))
            .expect_err("a missing binary must fail loudly");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("apt-get install -y redis-server"),
            "{message}"
        );
    }

    #[test]
    fn restart_keeps_the_port_and_loses_the_data() {
        let mut server = RedisServer::start();
        let port = server.port();
        server.cmd("SET k v");
        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(server.cmd("GET k"), Reply::Bulk(None));
    }
}
