//! Test fixture: a `moto_server` (the AWS emulator) on a free loopback port.
//!
//! One server serves a whole test binary; tests isolate themselves by account. moto picks the
//! account of a request from the `x-moto-account-id` header, else from the access key that
//! signed it (keys made by IAM `CreateAccessKey` in account X map to X). So a test calls
//! [`Moto::new_account`], which creates an IAM user with an access key inside a fresh account,
//! and hands that key to the `cgcloud` process it runs: the process uses the standard credential
//! chain, exactly as it would against AWS, and lands in its own empty account.
//!
//! The server is killed when the [`Moto`] value is dropped.
#![allow(clippy::unwrap_used)] // Test support: an unwrap that fails is a failing test.

pub mod faults;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the server may take to answer after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP exchange with the server may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A running moto_server.
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    next_account: AtomicU64,
}

/// An isolated moto account with an IAM user and its access key.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Moto {
    /// Starts moto_server with AMI and key-pair validation switched on, as real EC2 validates.
    pub fn start() -> Result<Moto, String> {
        Moto::start_with(&[
            ("MOTO_ENABLE_KEYPAIR_VALIDATION", "true"),
            ("MOTO_ENABLE_AMI_VALIDATION", "true"),
        ])
    }

    /// Starts moto_server with extra environment variables for the server process.
    pub fn start_with(env: &[(&str, &str)]) -> Result<Moto, String> {
        let port = free_port()?;
        let log =
            std::env::temp_dir().join(format!("cgcloud-moto-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("failed to create `{}`: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("failed to open `{}`: {e}", log.display()))?;
        // The server runs under a watchdog that kills it when this process is gone, so a test
        // binary that exits without dropping its fixture (a static, a crash) leaves nothing behind.
        let mut cmd = Command::new("python3");
        cmd.args(["-c", WATCHDOG, "moto_server"])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(log_file)
            .stderr(log_err)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            format!("failed to run `moto_server`: {e}; install it with `pip install 'moto[server]==5.2.1'`")
        })?;
        let mut moto = Moto {
            child,
            port,
            log,
            next_account: AtomicU64::new(0),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!(
                    "moto_server exited with {status}: {}",
                    moto.log_tail()
                ));
            }
            if let Ok((200, _)) = moto.http("GET", "/moto-api/", &[], "") {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "moto_server did not answer within {START_TIMEOUT:?}: {}",
                    moto.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // NOTE: the first EC2 call loads moto's AMI catalogue (~1 s); do it once here.
        let _ = moto.http(
            "POST",
            "/",
            &[("Authorization", &auth_header("ec2"))],
            "Action=DescribeRegions&Version=2016-11-15",
        );
        Ok(moto)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A fresh, empty account with an IAM user `user` and an access key for it.
    pub fn new_account(&self, user: &str) -> Result<Account, String> {
        let n = self.next_account.fetch_add(1, Ordering::SeqCst);
        // Distinct per process too, so two test binaries sharing a server never collide.
        let id = format!("{:06}{:06}", std::process::id() % 1_000_000, n + 1);
        self.iam(
            &id,
            &format!("Action=CreateUser&UserName={user}&Version=2010-05-08"),
        )?;
        let body = self.iam(
            &id,
            &format!("Action=CreateAccessKey&UserName={user}&Version=2010-05-08"),
        )?;
        let access_key_id =
            xml_field(&body, "AccessKeyId").ok_or("no AccessKeyId in CreateAccessKey")?;
        let secret_access_key =
            xml_field(&body, "SecretAccessKey").ok_or("no SecretAccessKey in CreateAccessKey")?;
        Ok(Account {
            id,
            user: user.to_string(),
            access_key_id,
            secret_access_key,
        })
    }

    /// One IAM query-protocol call inside `account`; returns the response body.
    pub fn iam(&self, account: &str, form: &str) -> Result<String, String> {
        self.call(account, "iam", form)
    }

    /// One query-protocol call (EC2, IAM, STS, ...) inside `account`; returns the response body.
    pub fn call(&self, account: &str, service: &str, form: &str) -> Result<String, String> {
        self.call_in(account, "us-east-1", service, form)
    }

    /// [`Moto::call`] in another region.
    pub fn call_in(
        &self,
        account: &str,
        region: &str,
        service: &str,
        form: &str,
    ) -> Result<String, String> {
        let (status, body) = self.http(
            "POST",
            "/",
            &[
                ("Authorization", &auth_header_in(region, service)),
                ("x-moto-account-id", account),
            ],
            form,
        )?;
        if status != 200 {
            return Err(format!(
                "{service} call `{form}` failed with HTTP {status}: {body}"
            ));
        }
        Ok(body)
    }

    /// A plain HTTP/1.1 exchange with the server.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, String), String> {
        http_exchange(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            method,
            path,
            headers,
            body,
        )
    }
}

/// A plain HTTP/1.1 exchange with the server at `addr` (a form body, `Connection: close`),
/// every step bounded: the status and the body, de-chunked.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String), String> {
    let fail = |e: std::io::Error| format!("failed to talk to moto at `{addr}`: {e}");
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(fail)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(fail)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(fail)?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("malformed HTTP answer from moto: {head:.120}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` answer.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Undoes XML's five character escapes.
pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it kill the server and exit.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs argv[1:] and kills it when its own standard input closes: when the [`Moto`] is dropped,
/// or when the test process ends in any way (a static that is never dropped, a crash, a kill).
/// Exits with the server's status if the server ends first.
const WATCHDOG: &str = r#"
import os, subprocess, sys, threading
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
def reap():
    code = child.wait()
    os._exit(code if code > 0 else 1)
threading.Thread(target=reap, daemon=True).start()
sys.stdin.buffer.read()
child.kill()
child.wait()
"#;

/// `application/x-www-form-urlencoded` body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Form-encodes a value for a query-protocol body.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("failed to bind a loopback port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// moto routes a request to a service by the credential scope of its `Authorization` header; the
/// signature itself is not checked.
fn auth_header(service: &str) -> String {
    auth_header_in("us-east-1", service)
}

fn auth_header_in(region: &str, service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// The text of the first `<name>…</name>` element.
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Every `<name>…</name>` element's text, in order.
pub fn xml_fields(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        match after.find(&close) {
            Some(j) => {
                out.push(after[..j].to_string());
                rest = &after[j + close.len()..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_isolated_and_keys_map_to_their_account() {
        let moto = Moto::start().expect("moto starts");
        let a = moto.new_account("alice").expect("account a");
        let b = moto.new_account("bob").expect("account b");
        assert_ne!(a.id, b.id);
        let users_a = moto
            .iam(&a.id, "Action=ListUsers&Version=2010-05-08")
            .unwrap();
        let users_b = moto
            .iam(&b.id, "Action=ListUsers&Version=2010-05-08")
            .unwrap();
        assert_eq!(xml_fields(&users_a, "UserName"), vec!["alice"]);
        assert_eq!(xml_fields(&users_b, "UserName"), vec!["bob"]);
    }
}
