//! The egress proxy, driven over its Unix socket by a real client against a loopback HTTP
//! server: allowed destinations work through CONNECT and absolute-form requests; everything else
//! is refused (403, recorded), malformed requests get 400, and none of it harms the proxy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use executor::egress::EgressProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

/// A loopback HTTP server that answers every request with its own request head as the body.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&head).into_owned();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Upstream { port, connections }
}

struct Fixture {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    proxy: EgressProxy,
}

fn proxy(allow: &[String]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("egress.sock");
    let proxy = EgressProxy::bind(&socket, allow.to_vec()).unwrap();
    Fixture {
        _dir: dir,
        socket,
        proxy,
    }
}

/// Sends `request` and reads the whole answer (until the proxy closes the connection).
async fn exchange(socket: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy answered in time")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads until the end of a response head.
async fn read_head(stream: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("a response head in time")
            .unwrap();
        assert_ne!(
            n,
            0,
            "closed before a full head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn connect_to_an_allowed_host_tunnels() {
    let up = upstream().await;
    let f = proxy(&[format!("127.0.0.1:{}", up.port)]);
    let mut stream = UnixStream::connect(&f.socket).await.unwrap();
    stream
        .write_all(
            format!(
                "CONNECT 127.0.0.1:{0} HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\n\r\n",
                up.port
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
        .write_all(b"GET /through-the-tunnel HTTP/1.1\r\nHost: inner\r\n\r\n")
        .await
        .unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.starts_with("HTTP/1.1 200 OK"), "{rest}");
    assert!(rest.contains("GET /through-the-tunnel HTTP/1.1"), "{rest}");
    assert!(f.proxy.denied().is_empty());
}

#[tokio::test]
async fn bytes_sent_right_after_connect_are_not_lost() {
    let up = upstream().await;
    let f = proxy(&[format!("127.0.0.1:{}", up.port)]);
    let request = format!(
        "CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\nGET /eager HTTP/1.1\r\nHost: x\r\n\r\n",
        up.port
    );
    let answer = exchange(&f.socket, request.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 Connection established"),
        "{answer}"
    );
    assert!(answer.contains("GET /eager HTTP/1.1"), "{answer}");
}

#[tokio::test]
async fn absolute_form_requests_are_forwarded_in_origin_form() {
    let up = upstream().await;
    let f = proxy(&[format!("127.0.0.1:{}", up.port)]);
    let request = format!(
        "GET http://127.0.0.1:{}/path?q=1 HTTP/1.1\r\nHost: spoofed.example\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nX-Test: kept\r\n\r\n",
        up.port
    );
    let answer = exchange(&f.socket, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let (_, forwarded) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        forwarded.starts_with("GET /path?q=1 HTTP/1.1\r\n"),
        "{forwarded}"
    );
    assert!(
        forwarded.contains(&format!("Host: 127.0.0.1:{}\r\n", up.port)),
        "{forwarded}"
    );
    assert!(!forwarded.contains("spoofed"), "{forwarded}");
    assert!(
        !forwarded.to_ascii_lowercase().contains("proxy-"),
        "{forwarded}"
    );
    assert!(forwarded.contains("X-Test: kept\r\n"), "{forwarded}");
    assert!(forwarded.contains("Connection: close\r\n"), "{forwarded}");
}

#[tokio::test]
async fn other_hosts_and_ports_are_refused_and_recorded() {
    let up = upstream().await;
    let f = proxy(&[format!("127.0.0.1:{}", up.port), "localhost".to_owned()]);
    let cases = [
        "CONNECT example.com:443 HTTP/1.1\r\n\r\n".to_owned(),
        format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n\r\n", up.port + 1),
        "GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n".to_owned(),
        // An entry without a port allows 80 and 443 only.
        format!("CONNECT localhost:{} HTTP/1.1\r\n\r\n", up.port),
        // Exact match: a subdomain of an allowed name is another host.
        "CONNECT evil.localhost:443 HTTP/1.1\r\n\r\n".to_owned(),
    ];
    for request in &cases {
        let answer = exchange(&f.socket, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 403"),
            "{request:?} -> {answer}"
        );
    }
    let answer = exchange(&f.socket, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n").await;
    assert!(
        answer.contains("example.com:443"),
        "the body names the host: {answer}"
    );
    assert_eq!(
        f.proxy.denied(),
        [
            "example.com:443".to_owned(),
            format!("127.0.0.1:{}", up.port + 1),
            "example.org:80".to_owned(),
            format!("localhost:{}", up.port),
            "evil.localhost:443".to_owned(),
            "example.com:443".to_owned(),
        ]
    );
    assert_eq!(f.proxy.denied_count(), 6);
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let up = upstream().await;
    let f = proxy(&[format!("127.0.0.1:{}", up.port)]);
    let bad: Vec<Vec<u8>> = vec![
        b"garbage\r\n\r\n".to_vec(),
        b"GET /relative HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"CONNECT no-port HTTP/1.1\r\n\r\n".to_vec(),
        b"CONNECT http://x:1 HTTP/1.1\r\n\r\n".to_vec(),
        b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n".to_vec(),
        b"GET http://user@127.0.0.1/ HTTP/1.1\r\n\r\n".to_vec(),
        b"GET http://127.0.0.1/ HTTP/9.9\r\n\r\n".to_vec(),
        b"GET http://127.0.0.1/ HTTP/1.1\r\nbad header\r\n\r\n".to_vec(),
        b"\xff\xfe\x00\x01 \x02 \x03\r\n\r\n".to_vec(),
        format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            up.port
        )
        .into_bytes(),
    ];
    for request in &bad {
        let answer = exchange(&f.socket, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} -> {answer}",
            String::from_utf8_lossy(request)
        );
    }
    let huge = format!(
        "GET http://127.0.0.1/ HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = exchange(&f.socket, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A client that disconnects half-way does not matter either.
    let mut half = UnixStream::connect(&f.socket).await.unwrap();
    half.write_all(b"CONNECT 127.0.0.1:1").await.unwrap();
    drop(half);

    let request = format!(
        "GET http://127.0.0.1:{}/still-alive HTTP/1.1\r\n\r\n",
        up.port
    );
    let answer = exchange(&f.socket, request.as_bytes()).await;
    assert!(answer.contains("GET /still-alive HTTP/1.1"), "{answer}");
    assert!(f.proxy.denied().is_empty(), "{:?}", f.proxy.denied());
}

#[tokio::test]
async fn an_unreachable_allowed_host_is_a_bad_gateway() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = proxy(&[format!("127.0.0.1:{port}")]);
    let answer = exchange(
        &f.socket,
        format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}

#[tokio::test]
async fn the_socket_is_private_and_goes_away_with_the_proxy() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = proxy(&[]);
    let mode = std::fs::metadata(&f.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let socket = f.socket.clone();
    let dir = f._dir;
    drop(f.proxy);
    assert!(!socket.exists(), "the socket file is removed");
    assert!(UnixStream::connect(&socket).await.is_err());
    drop(dir);
}

#[tokio::test]
async fn malformed_allowlist_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for entry in [
        "https://x.example.com",
        "x.example.com/path",
        "*.example.com",
        "x:0",
        "",
    ] {
        let err = EgressProxy::bind(&dir.path().join("s"), vec![entry.to_owned()]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{entry:?}");
    }
}
