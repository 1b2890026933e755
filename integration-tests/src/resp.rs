//! The harness' own minimal RESP2 client: one command over a fresh connection, and its reply.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// Sends `args` as one command to `127.0.0.1:{port}` over a fresh connection, with a 5 s read
/// timeout, and reads the reply.
pub fn request(port: u16, args: &[&[u8]]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&encode(args))?;
    let reply = Reply::read(&mut BufReader::new(&stream))?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(reply)
}

/// A command as RESP2: an array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    request
}

/// A RESP2 reply, as read by the harness' own minimal client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc` or `$-1` (nil)
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` or `*-1`
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Reads one reply.
    pub fn read(r: &mut impl BufRead) -> std::io::Result<Reply> {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad reply {line:?}"),
            )
        };
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(rest.parse().map_err(|_| bad())?),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0; len as usize + 2];
                    r.read_exact(&mut buf)?;
                    buf.truncate(len as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            "*" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Reply::Array(None)
                } else {
                    Reply::Array(Some(
                        (0..len).map(|_| Reply::read(r)).collect::<Result<_, _>>()?,
                    ))
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// The text of a bulk reply (`INFO`, `CLUSTER NODES`), or an empty string.
pub fn reply_text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Reply::Status(s) => s.clone(),
        _ => String::new(),
    }
}
