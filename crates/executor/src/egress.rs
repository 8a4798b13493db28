//! The host-side egress proxy: the only way out of a sandbox that was granted network access.
//!
//! One proxy serves one task, on a Unix socket that is mounted into the task's sandbox (the
//! sandbox has no network of its own). It speaks just enough HTTP/1.x for the standard proxy
//! variables (`HTTPS_PROXY`, `HTTP_PROXY`) to work:
//!
//! - `CONNECT host:port` — after `200 Connection established` the connection becomes a raw
//!   tunnel (TLS runs end to end; the proxy never sees plaintext);
//! - absolute-form requests such as `GET http://host[:port]/path HTTP/1.1` — forwarded to the
//!   host as an origin-form request with `Connection: close` (one request per connection).
//!
//! **Allowlist.** Each entry is `host`, `host:port`, `IPv4[:port]` or `[IPv6][:port]` (a bare
//! IPv6 address also works). A host matches exactly, case-insensitively, ignoring one trailing
//! dot; there are no wildcards. An entry without a port allows ports 80 and 443 only. Anything
//! else is answered `403` with a short body naming the host, and recorded (see
//! [`EgressProxy::denied`]) so the caller can audit it.
//!
//! **Resolution.** The proxy connects to the allowlisted name as given, resolving it on the host.
//! It does not pin or filter the addresses a name resolves to, so an allowlisted name whose DNS
//! points at an internal address reaches that address: allowlist names you trust.
//!
//! **Limits.** Request heads over [`MAX_HEAD_BYTES`] get `431`; a head must arrive within
//! [`HEAD_TIMEOUT`]; connecting upstream times out after [`CONNECT_TIMEOUT`] (`504`; other
//! connection failures are `502`); a tunnel or forwarded request with no traffic either way for
//! [`IDLE_TIMEOUT`] is closed; at most [`MAX_CONNECTIONS`] connections at once (more are closed
//! with `503`). Malformed requests get `400` and never affect other connections.
//!
//! **The socket.** The caller chooses its path and should put it in a directory only the task's
//! user can enter (mode 0700); the socket itself is made mode 0600. The proxy serves until it is
//! dropped, which stops every connection and removes the socket file.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines in a request head.
pub const MAX_HEADERS: usize = 100;
/// Longest wait for a complete request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a connection to the upstream host.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A tunnel with no traffic in either direction for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Most simultaneous connections per proxy.
pub const MAX_CONNECTIONS: usize = 128;
/// Most denied destinations remembered (the count goes on).
const MAX_DENIED_KEPT: usize = 1000;

/// A host in an allowlist entry or a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    fn parse(s: &str) -> Option<Host> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        ok.then_some(Host::Name(name))
    }

    /// The host as it goes into a `Host` header or a log line.
    fn display(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; port required when asked.
fn parse_authority(s: &str, default_port: Option<u16>) -> Option<(Host, u16)> {
    let port_of = |p: &str| -> Option<u16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u16>().ok().filter(|&p| p > 0)
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        let port = match after {
            "" => default_port?,
            _ => port_of(after.strip_prefix(':')?)?,
        };
        return Some((Host::Ip(IpAddr::V6(ip)), port));
    }
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Some((Host::Ip(IpAddr::V6(ip)), default_port?));
    }
    match s.split_once(':') {
        Some((h, p)) => Some((Host::parse(h)?, port_of(p)?)),
        None => Some((Host::parse(s)?, default_port?)),
    }
}

/// One allowlist entry.
#[derive(Debug, Clone)]
struct Rule {
    host: Host,
    /// `None`: 80 and 443.
    port: Option<u16>,
}

impl Rule {
    fn parse(entry: &str) -> Option<Rule> {
        let entry = entry.trim();
        // Parse with a sentinel default port to learn whether one was given.
        let with_port = parse_authority(entry, None);
        if let Some((host, port)) = with_port {
            return Some(Rule {
                host,
                port: Some(port),
            });
        }
        parse_authority(entry, Some(1)).map(|(host, _)| Rule { host, port: None })
    }

    fn allows(&self, host: &Host, port: u16) -> bool {
        self.host == *host
            && match self.port {
                Some(p) => p == port,
                None => port == 80 || port == 443,
            }
    }
}

struct State {
    rules: Vec<Rule>,
    denied: Mutex<Vec<String>>,
    denied_total: AtomicU64,
}

impl State {
    fn allows(&self, host: &Host, port: u16) -> bool {
        self.rules.iter().any(|r| r.allows(host, port))
    }

    fn deny(&self, what: String) {
        tracing::info!(destination = %what, "egress denied");
        self.denied_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut denied) = self.denied.lock()
            && denied.len() < MAX_DENIED_KEPT
        {
            denied.push(what);
        }
    }
}

/// A running egress proxy (see the module docs). Serves until dropped.
pub struct EgressProxy {
    path: PathBuf,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("path", &self.path)
            .field("rules", &self.state.rules.len())
            .finish()
    }
}

impl EgressProxy {
    /// Listens on a new Unix socket at `socket_path` (mode 0600) and serves the allowlist
    /// `allow` on the current Tokio runtime. Fails with `InvalidInput` for a malformed entry, and
    /// when the path exists or there is no runtime.
    pub fn bind(socket_path: &Path, allow: Vec<String>) -> io::Result<EgressProxy> {
        let rules = allow
            .iter()
            .map(|entry| {
                Rule::parse(entry).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("malformed egress allowlist entry {entry:?}"),
                    )
                })
            })
            .collect::<io::Result<Vec<Rule>>>()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!("the egress proxy needs a Tokio runtime: {e}"))
        })?;
        let listener = {
            let _entered = runtime.enter();
            UnixListener::bind(socket_path)?
        };
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o600))?;
        }
        let state = Arc::new(State {
            rules,
            denied: Mutex::new(Vec::new()),
            denied_total: AtomicU64::new(0),
        });
        let accept = runtime.spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(EgressProxy {
            path: socket_path.to_owned(),
            state,
            accept,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The destinations refused so far (`host:port`, in order; at most 1000 are kept).
    pub fn denied(&self) -> Vec<String> {
        self.state
            .denied
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// How many requests were refused so far (including those beyond what [`Self::denied`]
    /// keeps).
    pub fn denied_count(&self) -> u64 {
        self.state.denied_total.load(Ordering::Relaxed)
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop(listener: UnixListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        let _ = stream.try_write(&response_bytes(503, "too many connections through this proxy"));
                        continue;
                    }
                    connections.spawn(handle(Arc::clone(&state), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

fn response_bytes(status: u16, body: &str) -> Vec<u8> {
    let body = format!("{body}\n");
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

async fn respond(client: &mut UnixStream, status: u16, body: &str) {
    let _ = client.write_all(&response_bytes(status, body)).await;
    let _ = client.shutdown().await;
}

/// Why a request head could not be read.
enum HeadError {
    Closed,
    TooLarge,
    Io,
}

/// Reads up to the end of the request head; returns (head, bytes after it).
async fn read_head(client: &mut UnixStream) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let searched_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = find(&buf[searched_from..], b"\r\n\r\n") {
            let end = searched_from + pos + 4;
            if end > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parsed request head.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text
        .strip_suffix("\r\n\r\n")
        .ok_or("the request head does not end with an empty line")?
        .split("\r\n");
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if !is_token(method) {
        return Err("malformed method");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("only HTTP/1.0 and HTTP/1.1 are supported");
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("malformed request target");
    }
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err("too many headers");
        }
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        if !is_token(name) {
            return Err("malformed header name");
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err("malformed header value");
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    })
}

/// Where an absolute-form `http://` request goes: (host, port, authority text, origin-form path).
fn parse_http_url(target: &str) -> Option<(Host, u16, String)> {
    let scheme_end = target.find("://")?;
    if !target[..scheme_end].eq_ignore_ascii_case("http") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') || path.contains('#') {
        return None;
    }
    let (host, port) = parse_authority(authority, Some(80))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Some((host, port, path))
}

/// Headers that concern only the hop between client and proxy.
fn hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    ];
    let lower = name.to_ascii_lowercase();
    HOP.contains(&lower.as_str()) || connection_tokens.contains(&lower)
}

async fn connect(host: &Host, port: u16) -> Result<TcpStream, (u16, String)> {
    let what = format!("{}:{port}", host.display());
    let attempt = match host {
        Host::Ip(ip) => {
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((*ip, port))).await
        }
        Host::Name(name) => {
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((name.as_str(), port))).await
        }
    };
    match attempt {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err((502, format!("cannot connect to {what}: {e}"))),
        Err(_) => Err((504, format!("connecting to {what} timed out"))),
    }
}

async fn handle(state: Arc<State>, mut client: UnixStream) {
    let (head, extra) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        Ok(Err(HeadError::TooLarge)) => {
            return respond(&mut client, 431, "the request head is too large").await;
        }
        Ok(Err(HeadError::Closed | HeadError::Io)) => return,
        Err(_) => {
            return respond(&mut client, 400, "the request head did not arrive in time").await;
        }
    };
    let request = match parse_head(&head) {
        Ok(r) => r,
        Err(why) => return respond(&mut client, 400, why).await,
    };
    if request.method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = parse_authority(&request.target, None) else {
            return respond(&mut client, 400, "CONNECT needs host:port").await;
        };
        let destination = format!("{}:{port}", host.display());
        if !state.allows(&host, port) {
            state.deny(destination.clone());
            let body = format!("egress to {destination} is not allowed for this task");
            return respond(&mut client, 403, &body).await;
        }
        let mut upstream = match connect(&host, port).await {
            Ok(s) => s,
            Err((status, why)) => return respond(&mut client, status, &why).await,
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        if !extra.is_empty() && upstream.write_all(&extra).await.is_err() {
            return;
        }
        tunnel(client, upstream).await;
        return;
    }
    if request.target.starts_with('/') {
        return respond(
            &mut client,
            400,
            "this is a proxy: send an absolute http:// URL, or CONNECT host:port for https",
        )
        .await;
    }
    let Some((host, port, path)) = parse_http_url(&request.target) else {
        return respond(
            &mut client,
            400,
            "malformed URL: only http://host[:port]/path is forwarded (use CONNECT for https)",
        )
        .await;
    };
    let destination = format!("{}:{port}", host.display());
    if !state.allows(&host, port) {
        state.deny(destination.clone());
        let body = format!("egress to {destination} is not allowed for this task");
        return respond(&mut client, 403, &body).await;
    }
    let has = |name: &str| {
        request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if has("transfer-encoding") && has("content-length") {
        return respond(
            &mut client,
            400,
            "both Transfer-Encoding and Content-Length: ambiguous body",
        )
        .await;
    }
    let connection_tokens: Vec<String> = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let host_header = if port == 80 {
        host.display()
    } else {
        destination.clone()
    };
    let mut forwarded = format!(
        "{} {path} HTTP/1.1\r\nHost: {host_header}\r\n",
        request.method
    );
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") || hop_by_hop(name, &connection_tokens) {
            continue;
        }
        forwarded.push_str(name);
        forwarded.push_str(": ");
        forwarded.push_str(value);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut upstream = match connect(&host, port).await {
        Ok(s) => s,
        Err((status, why)) => return respond(&mut client, status, &why).await,
    };
    if upstream.write_all(forwarded.as_bytes()).await.is_err()
        || (!extra.is_empty() && upstream.write_all(&extra).await.is_err())
    {
        return respond(&mut client, 502, "the upstream host closed the connection").await;
    }
    tunnel(client, upstream).await;
}

/// Copies bytes both ways until both sides are done, or nothing moved for [`IDLE_TIMEOUT`].
async fn tunnel(client: UnixStream, upstream: TcpStream) {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let both = async {
        tokio::join!(
            pump(&mut cr, &mut uw, &last, start),
            pump(&mut ur, &mut cw, &last, start)
        )
    };
    let watchdog = async {
        loop {
            let idle_since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = start + idle_since + IDLE_TIMEOUT;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    tokio::select! {
        _ = both => {}
        _ = watchdog => {}
    }
}

/// Copies `from` to `to` until end of file, then shuts `to` down for writing.
async fn pump<R, W>(from: &mut R, to: &mut W, last: &AtomicU64, start: Instant)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        last.store(now, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], host: &str, port: u16) -> bool {
        let rules: Vec<Rule> = entries.iter().map(|e| Rule::parse(e).unwrap()).collect();
        let host = Host::parse(host).unwrap();
        rules.iter().any(|r| r.allows(&host, port))
    }

    #[test]
    fn allowlist_matching() {
        assert!(allows(&["api.github.com"], "API.GitHub.com", 443));
        assert!(allows(&["api.github.com"], "api.github.com.", 80));
        assert!(!allows(&["api.github.com"], "api.github.com", 8080));
        assert!(!allows(&["api.github.com"], "evil.api.github.com", 443));
        assert!(!allows(&["api.github.com"], "github.com", 443));
        assert!(allows(&["localhost:8080"], "localhost", 8080));
        assert!(!allows(&["localhost:8080"], "localhost", 443));
        assert!(allows(&["[::1]:9000"], "::1", 9000));
        assert!(allows(&["::1"], "0:0::1", 443));
        assert!(allows(&["10.0.0.1"], "10.0.0.1", 80));
        assert!(Rule::parse("https://x").is_none());
        assert!(Rule::parse("x/y").is_none());
        assert!(Rule::parse("x:0").is_none());
        assert!(Rule::parse("*.x.com").is_none());
    }

    #[test]
    fn urls_and_heads() {
        let (host, port, path) = parse_http_url("http://Example.com:8080/a?b=1").unwrap();
        assert_eq!(
            (host, port, path.as_str()),
            (Host::Name("example.com".into()), 8080, "/a?b=1")
        );
        let (_, port, path) = parse_http_url("HTTP://example.com").unwrap();
        assert_eq!((port, path.as_str()), (80, "/"));
        assert!(parse_http_url("https://example.com/").is_none());
        assert!(parse_http_url("http://user@example.com/").is_none());
        assert!(parse_http_url("http:///x").is_none());
        assert!(parse_head(b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n").is_ok());
        assert!(parse_head(b"GET  http://x/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET http://x/ HTTP/2\r\n\r\n").is_err());
        assert!(parse_head(b"GET http://x/ HTTP/1.1\r\nno colon\r\n\r\n").is_err());
        assert!(parse_head(b"GET http://x/ HTTP/1.1\r\n folded: x\r\n\r\n").is_err());
        assert!(parse_head(b"\xff\xfe HTTP/1.1\r\n\r\n").is_err());
    }
}
