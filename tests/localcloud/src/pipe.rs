//! Byte pipes between network namespaces. The local cloud's own processes run in the root
//! namespace; boxes live behind a hub namespace. Unix sockets are reachable from both, so every
//! path across is "TCP in the hub <-> unix socket <-> the daemon", plus `connect` (run inside the
//! hub with `nsenter`) that joins ssh's stdio to a box's port.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long a connect to a box may take before it is reported.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies `from` into `to` until EOF, then half-closes `to`'s write side.
fn pump(mut from: impl Read, mut to: impl Write, close: impl FnOnce()) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = to.flush();
            }
        }
    }
    close();
}

/// Joins a TCP stream and a unix stream both ways until both sides are done.
pub fn splice_tcp_unix(tcp: TcpStream, unix: UnixStream) -> Result<()> {
    let (t2, u2) = (tcp.try_clone()?, unix.try_clone()?);
    let (t3, u3) = (tcp.try_clone()?, unix.try_clone()?);
    let a = std::thread::spawn(move || pump(tcp, unix, move || drop(u3.shutdown(Shutdown::Write))));
    pump(u2, t2, move || drop(t3.shutdown(Shutdown::Write)));
    let _ = a.join();
    Ok(())
}

/// `_listen`: accepts TCP connections on `bind` (inside the hub) and hands each to the unix
/// socket `unix`; with `peer`, first writes one line `PEER <ip>` so the daemon knows which box asked.
pub fn listen(bind: SocketAddr, unix: &str, peer: bool) -> Result<()> {
    let l = TcpListener::bind(bind).with_context(|| format!("failed to listen on `{bind}`"))?;
    for conn in l.incoming() {
        let Ok(tcp) = conn else { continue };
        let unix = unix.to_string();
        std::thread::spawn(move || {
            let Ok(mut u) = UnixStream::connect(&unix) else {
                return;
            };
            if peer {
                let ip = tcp
                    .peer_addr()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                if u.write_all(format!("PEER {ip}\n").as_bytes()).is_err() {
                    return;
                }
            }
            let _ = splice_tcp_unix(tcp, u);
        });
    }
    Ok(())
}

/// `_connect`: joins this process's stdin/stdout to `addr` (run inside the hub by the proxy).
pub fn connect_stdio(addr: SocketAddr) -> Result<()> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .with_context(|| format!("failed to connect to the box at `{addr}`"))?;
    let s2 = s.try_clone()?;
    let s3 = s.try_clone()?;
    std::thread::spawn(move || {
        pump(std::io::stdin(), s2, move || {
            drop(s3.shutdown(Shutdown::Write))
        });
    });
    pump(s, std::io::stdout(), || {});
    Ok(())
}

/// `_probe`: true once `addr` answers with an SSH banner, trying until `timeout`.
pub fn probe_ssh(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut b = [0u8; 4];
            if s.read_exact(&mut b).is_ok() && &b == b"SSH-" {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
