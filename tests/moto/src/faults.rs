//! A fault-injecting HTTP proxy in front of moto_server, driven by each test: for chosen AWS
//! actions it answers with throttling errors, 500s and 503s, answers late, cuts answers short or
//! drops connections, the first N times or with a probability (seeded, so a run can be
//! repeated). Everything else goes to moto unchanged. Loopback only.
//!
//! ```no_run
//! # use cgcloud_moto::{Moto, faults::{FaultProxy, Fault, Rule}};
//! let moto = Moto::start().unwrap();
//! let proxy = FaultProxy::start(moto.port(), 7).unwrap();
//! proxy.add(Rule::first(2, "DescribeInstances", Fault::Throttle));
//! // point the program under test at proxy.endpoint() instead of moto.endpoint()
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's throttling error: EC2 `RequestLimitExceeded` (HTTP 503), IAM, STS and SNS
    /// `Throttling` (400), SQS `RequestThrottled` (400). Nothing reaches moto.
    Throttle,
    /// An HTTP status (500, 503…) with the service's internal-error body. Nothing reaches moto.
    Status(u16),
    /// The service's clock runs this far ahead of the client's: a request signed more than
    /// 5 minutes off the service's time is refused as AWS refuses it (EC2 `AuthFailure`, query
    /// services `SignatureDoesNotMatch`, JSON services `InvalidSignatureException`, HTTP 403),
    /// and every answer's `Date` header gives the service's time. [`FaultProxy::skew_refused`]
    /// counts the refusals.
    ClockAhead(Duration),
    /// Permission denied, as after a revoked instance profile or policy: EC2
    /// `UnauthorizedOperation`, the others `AccessDenied` (HTTP 403). Nothing reaches moto.
    Denied,
    /// moto's answer, this much later: the request takes effect at once, its answer comes late
    /// (a client that gives up first and retries repeats a call that already took effect).
    Delay(Duration),
    /// The request reaches moto; the client gets the head of its answer and half its body, then
    /// the connection closes.
    Truncate,
    /// The connection closes once the request is read, with no answer; nothing reaches moto.
    Drop,
    /// The request reaches moto and takes effect; its answer is held until the client goes away
    /// or the proxy is dropped. [`FaultProxy::stalled`] counts the requests held so far: a test
    /// kills the program under test once the call it chose has taken effect.
    Stall,
}

/// When a fault applies: to requests for `action` (`*`: every action; `Create*`: every action
/// whose name starts with `Create`), the first `first` of
/// them (then never again), or each with `probability`; with `attempt`, only to that attempt
/// of each call (the AWS SDKs number them in the `amz-sdk-request` header), so that
/// `attempt: Some(1)` fails every call once and lets its retry through.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub action: String,
    pub fault: Fault,
    pub first: Option<u32>,
    pub probability: f64,
    pub attempt: Option<u32>,
    /// The rule starts with the request for `action` after this many (`Rule::nth`).
    pub after: u32,
}

impl Rule {
    /// The first `n` requests for `action`.
    pub fn first(n: u32, action: &str, fault: Fault) -> Rule {
        Rule {
            action: action.to_string(),
            fault,
            first: Some(n),
            probability: 1.0,
            attempt: None,
            after: 0,
        }
    }

    /// The `n`th request for `action` (counting from 1), and only that one.
    pub fn nth(n: u32, action: &str, fault: Fault) -> Rule {
        Rule {
            after: n.saturating_sub(1),
            ..Rule::first(1, action, fault)
        }
    }

    /// Every request for `action`.
    pub fn always(action: &str, fault: Fault) -> Rule {
        Rule {
            action: action.to_string(),
            fault,
            first: None,
            probability: 1.0,
            attempt: None,
            after: 0,
        }
    }

    /// The first attempt of every call of `action`: each call fails once, its retry goes
    /// through.
    pub fn first_attempts(action: &str, fault: Fault) -> Rule {
        Rule {
            attempt: Some(1),
            ..Rule::always(action, fault)
        }
    }

    /// Each request for `action` with probability `p`.
    pub fn sometimes(p: f64, action: &str, fault: Fault) -> Rule {
        Rule {
            action: action.to_string(),
            fault,
            first: None,
            probability: p,
            attempt: None,
            after: 0,
        }
    }
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, u32)>,
    /// Requests seen, by action.
    seen: HashMap<String, u32>,
    /// The actions of the requests seen, in the order they arrived.
    history: Vec<String>,
    /// Faults injected, by action.
    injected: HashMap<String, u32>,
    /// Requests that took effect and whose answers are held ([`Fault::Stall`]), by action.
    stalled: HashMap<String, u32>,
    /// Requests refused for a signing time off the service's clock ([`Fault::ClockAhead`]).
    skew_refused: HashMap<String, u32>,
    rng: u64,
}

impl State {
    fn next_random(&mut self) -> f64 {
        // xorshift64*: enough for choosing faults, and the same for the same seed.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Counts the request and picks the fault for it, if any.
    fn decide(&mut self, action: &str, attempt: Option<u32>) -> Option<Fault> {
        self.history.push(action.to_string());
        let seen = self.seen.entry(action.to_string()).or_default();
        *seen += 1;
        let seen = *seen;
        let mut chosen = None;
        for i in 0..self.rules.len() {
            let (rule, used) = &self.rules[i];
            let matches = match rule.action.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => rule.action == action,
            };
            if !matches {
                continue;
            }
            if rule.attempt.is_some() && rule.attempt != attempt {
                continue;
            }
            if seen <= rule.after {
                continue;
            }
            if rule.first.is_some_and(|n| *used >= n) {
                continue;
            }
            let p = rule.probability;
            if p < 1.0 && self.next_random() >= p {
                continue;
            }
            self.rules[i].1 += 1;
            chosen = Some(self.rules[i].0.fault.clone());
            break;
        }
        if chosen.is_some() {
            *self.injected.entry(action.to_string()).or_default() += 1;
        }
        chosen
    }
}

/// The proxy: a listener on a free loopback port, a thread per connection.
pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy to moto at `127.0.0.1:upstream`, its random choices seeded with `seed`.
    pub fn start(upstream: u16, seed: u64) -> Result<FaultProxy, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("fault proxy: bind: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("fault proxy: {e}"))?
            .port();
        let state = Arc::new(Mutex::new(State {
            rng: seed.max(1),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, st) = (s.clone(), st.clone());
                std::thread::spawn(move || serve(conn, upstream, &s, &st));
            }
        });
        Ok(FaultProxy { port, state, stop })
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL` should say.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; rules are tried in the order they were added, the first that applies wins.
    pub fn add(&self, rule: Rule) {
        lock(&self.state).rules.push((rule, 0));
    }

    /// Removes every rule (counts stay).
    pub fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    /// How many requests for `action` arrived (`*`: all of them).
    pub fn seen(&self, action: &str) -> u32 {
        count(&lock(&self.state).seen, action)
    }

    /// How many faults were injected into requests for `action` (`*`: all of them).
    pub fn injected(&self, action: &str) -> u32 {
        count(&lock(&self.state).injected, action)
    }

    /// How many requests for `action` (`*`: all of them) were refused for a signing time off the
    /// service's clock ([`Fault::ClockAhead`]).
    pub fn skew_refused(&self, action: &str) -> u32 {
        count(&lock(&self.state).skew_refused, action)
    }

    /// The actions of all requests so far, in the order they arrived.
    pub fn history(&self) -> Vec<String> {
        lock(&self.state).history.clone()
    }

    /// How many requests for `action` (`*`: all of them) took effect and are being held
    /// ([`Fault::Stall`]).
    pub fn stalled(&self, action: &str) -> u32 {
        count(&lock(&self.state).stalled, action)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn count(map: &HashMap<String, u32>, action: &str) -> u32 {
    if action == "*" {
        map.values().sum()
    } else {
        map.get(action).copied().unwrap_or(0)
    }
}

/// One request as read from the client.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The AWS action: the query protocol's `Action=`, or the JSON protocols' `X-Amz-Target`.
    fn action(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        let body = String::from_utf8_lossy(&self.body);
        let query = self
            .head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        body.split('&')
            .chain(query.split('&'))
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("other")
            .to_string()
    }

    /// Which attempt of its call this is (`amz-sdk-request: attempt=N; max=M`).
    fn attempt(&self) -> Option<u32> {
        self.header("amz-sdk-request")?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("attempt="))?
            .parse()
            .ok()
    }

    /// The signing service: `ec2`, `iam`, `sts`, `sns`, `sqs`… from the credential scope.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("ec2")
            .to_string()
    }
}

/// Reads one request (head and Content-Length body); `None` at end of connection.
fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut byte).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end..].to_vec();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while body.len() < len {
        let n = conn.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some(Request { head, body })
}

/// The request as sent to moto: one request per connection.
fn upstream_bytes(req: &Request) -> Vec<u8> {
    let mut head = String::new();
    for (i, line) in req.head.trim_end().lines().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&req.body);
    out
}

/// moto's answer with `Connection: close` in its head, and where its body starts.
fn forward(req: &Request, upstream: u16) -> Option<(Vec<u8>, usize)> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(&upstream_bytes(req)).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let mut rewritten = String::new();
    for (i, line) in head.trim_end().lines().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let body_at = rewritten.len();
    let mut out = rewritten.into_bytes();
    out.extend_from_slice(&answer[head_end..]);
    Some((out, body_at))
}

/// Holds a connection open, answering nothing, until the client closes it or the proxy stops
/// (at most ten minutes).
fn hold(conn: &mut TcpStream, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The service's error answer for a fault that never reaches moto.
fn error_answer(service: &str, status: u16, throttle: bool) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let (ctype, extra, body) = match (service, throttle) {
        ("ec2", true) => (
            "text/xml",
            String::new(),
            ec2_error("RequestLimitExceeded", "Request limit exceeded."),
        ),
        ("ec2", false) => (
            "text/xml",
            String::new(),
            ec2_error("InternalError", "An internal error has occurred"),
        ),
        ("sqs", _) => {
            let code = if throttle {
                "RequestThrottled"
            } else {
                "InternalFailure"
            };
            (
                "application/x-amz-json-1.0",
                format!("x-amzn-query-error: {code};{}\r\n", if throttle { "Sender" } else { "Receiver" }),
                format!("{{\"__type\":\"com.amazonaws.sqs#{code}\",\"message\":\"injected by the fault proxy\"}}"),
            )
        }
        (_, true) => (
            "text/xml",
            String::new(),
            query_error("Sender", "Throttling", "Rate exceeded"),
        ),
        (_, false) => (
            "text/xml",
            String::new(),
            query_error("Receiver", "InternalFailure", "An internal error occurred"),
        ),
    };
    http_answer(&format!("{status} {reason}"), ctype, &extra, &body)
}

/// An HTTP answer that closes the connection; `extra` holds more header lines.
fn http_answer(status: &str, ctype: &str, extra: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the epoch of a SigV4 `X-Amz-Date` (`20261205T010203Z`).
fn parse_amz_date(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| v.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(4..6)?, n(6..8)?);
    Some(days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?)
}

/// An HTTP `Date` header value (`Sat, 05 Dec 2026 01:02:03 GMT`).
fn http_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// moto's answer `a` (its body at `body_at`) with its `Date` header set to `t`.
fn with_date(a: &[u8], body_at: usize, t: i64) -> Vec<u8> {
    let head = String::from_utf8_lossy(&a[..body_at]);
    let mut out = String::new();
    for (i, line) in head.trim_end().lines().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("date:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
        if i == 0 {
            out.push_str(&format!("Date: {}\r\n", http_date(t)));
        }
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&a[body_at..]);
    out
}

/// The service's refusal of a request signed too far from its time `server`.
fn skew_answer(service: &str, server: i64) -> Vec<u8> {
    let message = "Signature expired: the request time is too far from the server time.";
    let date = format!("Date: {}\r\n", http_date(server));
    let (ctype, extra, body) = match service {
        "ec2" => ("text/xml", date, ec2_error("AuthFailure", message)),
        "sqs" => (
            "application/x-amz-json-1.0",
            format!("{date}x-amzn-query-error: InvalidSignatureException;Sender\r\n"),
            format!("{{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\",\"message\":\"{message}\"}}"),
        ),
        _ => ("text/xml", date, query_error("Sender", "SignatureDoesNotMatch", message)),
    };
    http_answer("403 Forbidden", ctype, &extra, &body)
}

/// The service's answer to a call its caller may not make.
fn denied_answer(service: &str) -> Vec<u8> {
    let message = "You are not authorized to perform this operation.";
    let (ctype, extra, body) = match service {
        "ec2" => (
            "text/xml",
            String::new(),
            ec2_error("UnauthorizedOperation", message),
        ),
        "sqs" => (
            "application/x-amz-json-1.0",
            "x-amzn-query-error: AccessDenied;Sender\r\n".to_string(),
            format!("{{\"__type\":\"com.amazonaws.sqs#AccessDenied\",\"message\":\"{message}\"}}"),
        ),
        _ => (
            "text/xml",
            String::new(),
            query_error("Sender", "AccessDenied", message),
        ),
    };
    http_answer("403 Forbidden", ctype, &extra, &body)
}

fn ec2_error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
    )
}

fn query_error(kind: &str, code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    )
}

/// Serves one client connection: one request, one answer (or a fault), then it closes.
fn serve(mut conn: TcpStream, upstream: u16, state: &Mutex<State>, stop: &AtomicBool) {
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let action = req.action();
    let fault = lock(state).decide(&action, req.attempt());
    let answer = match fault {
        None => forward(&req, upstream).map(|(a, _)| a),
        Some(Fault::Throttle) => {
            let service = req.service();
            let status = if service == "ec2" { 503 } else { 400 };
            Some(error_answer(&service, status, true))
        }
        Some(Fault::Status(code)) => Some(error_answer(&req.service(), code, false)),
        Some(Fault::Denied) => Some(denied_answer(&req.service())),
        Some(Fault::ClockAhead(ahead)) => {
            let server = unix_now() + ahead.as_secs() as i64;
            let signed = req.header("x-amz-date").and_then(parse_amz_date);
            if signed.is_none_or(|t| (t - server).abs() > 300) {
                *lock(state).skew_refused.entry(action).or_default() += 1;
                Some(skew_answer(&req.service(), server))
            } else {
                forward(&req, upstream).map(|(a, body_at)| with_date(&a, body_at, server))
            }
        }
        Some(Fault::Delay(d)) => {
            let answer = forward(&req, upstream).map(|(a, _)| a);
            std::thread::sleep(d);
            answer
        }
        Some(Fault::Truncate) => forward(&req, upstream).map(|(a, body_at)| {
            let cut = body_at + (a.len() - body_at) / 2;
            a[..cut].to_vec()
        }),
        Some(Fault::Drop) => None,
        Some(Fault::Stall) => {
            if forward(&req, upstream).is_some() {
                *lock(state).stalled.entry(action).or_default() += 1;
            }
            hold(&mut conn, stop);
            None
        }
    };
    if let Some(answer) = answer {
        let _ = conn.write_all(&answer);
    }
    let _ = conn.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_n_then_never_and_probabilities_repeat_with_the_seed() {
        let mut s = State {
            rng: 42,
            ..State::default()
        };
        s.rules.push((Rule::first(2, "A", Fault::Throttle), 0));
        s.rules
            .push((Rule::sometimes(0.5, "*", Fault::Status(503)), 0));
        assert_eq!(s.decide("A", None), Some(Fault::Throttle));
        assert_eq!(s.decide("A", None), Some(Fault::Throttle));
        let picks: Vec<bool> = (0..200).map(|_| s.decide("B", None).is_some()).collect();
        let hits = picks.iter().filter(|&&b| b).count();
        assert!((60..140).contains(&hits), "{hits} of 200 at p=0.5");
        let mut again = State {
            rng: 42,
            ..State::default()
        };
        again.rules.push((Rule::first(2, "A", Fault::Throttle), 0));
        again
            .rules
            .push((Rule::sometimes(0.5, "*", Fault::Status(503)), 0));
        again.decide("A", None);
        again.decide("A", None);
        let repeat: Vec<bool> = (0..200)
            .map(|_| again.decide("B", None).is_some())
            .collect();
        assert_eq!(picks, repeat, "the same seed makes the same choices");
        assert_eq!(count(&s.seen, "*"), 202);
        assert_eq!(count(&s.injected, "A"), 2);
        let mut once = State::default();
        once.rules
            .push((Rule::first_attempts("*", Fault::Status(500)), 0));
        assert_eq!(once.decide("X", Some(1)), Some(Fault::Status(500)));
        assert_eq!(once.decide("X", Some(2)), None);
        assert_eq!(once.decide("Y", Some(1)), Some(Fault::Status(500)));
        let mut third = State::default();
        third.rules.push((Rule::nth(3, "T", Fault::Stall), 0));
        let picks: Vec<Option<Fault>> = (0..5).map(|_| third.decide("T", None)).collect();
        assert_eq!(picks, [None, None, Some(Fault::Stall), None, None]);
        assert_eq!(third.decide("U", None), None);
        assert_eq!(third.history, ["T", "T", "T", "T", "T", "U"]);
        let mut prefixed = State::default();
        prefixed
            .rules
            .push((Rule::always("Create*", Fault::Status(500)), 0));
        assert_eq!(
            prefixed.decide("CreateTags", None),
            Some(Fault::Status(500))
        );
        assert_eq!(prefixed.decide("DescribeTags", None), None);
    }

    #[test]
    fn dates_are_read_and_written_as_aws_and_http_write_them() {
        let t = parse_amz_date("20261205T010203Z").unwrap();
        assert_eq!(t, 1_796_432_523);
        assert_eq!(http_date(t), "Sat, 05 Dec 2026 01:02:03 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for bad in [
            "",
            "20261205T010203",
            "2026-12-05T01:02:03Z",
            "2026120XT010203Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn actions_and_services_are_read_from_both_protocols() {
        let query = Request {
            head: "POST / HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20261204/us-west-2/iam/aws4_request, SignedHeaders=x\r\n\r\n".into(),
            body: b"Action=GetUser&Version=2010-05-08".to_vec(),
        };
        assert_eq!(query.action(), "GetUser");
        assert_eq!(query.service(), "iam");
        let json = Request {
            head: "POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ReceiveMessage\r\namz-sdk-request: attempt=2; max=3\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AK/20261204/us-west-2/sqs/aws4_request\r\n\r\n".into(),
            body: b"{}".to_vec(),
        };
        assert_eq!(json.action(), "ReceiveMessage");
        assert_eq!(json.service(), "sqs");
        assert_eq!(json.attempt(), Some(2));
        assert_eq!(query.attempt(), None);
    }
}
