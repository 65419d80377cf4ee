//! Is it answering? A real request, not just an open port: Kafka's
//! ApiVersions for the broker (no Kafka CLI needed; Debian's kcat cannot
//! talk to tansu), an HTTP GET for ClickHouse and the chdb fixture,
//! `stat` for ZooKeeper.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::settings::HOST;

fn connect(port: u16, timeout: Duration) -> Option<TcpStream> {
    connect_to(HOST, port, timeout)
}

fn connect_to(host: &str, port: u16, timeout: Duration) -> Option<TcpStream> {
    let address: SocketAddr = (host, port).to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    Some(stream)
}

/// Something listens on `port`.
pub fn port_open(port: u16) -> bool {
    connect(port, Duration::from_secs(2)).is_some()
}

/// ApiVersions v0 with correlation id 7: the broker is ready once it
/// answers with that id and error code 0.
pub fn kafka_answers(port: u16) -> bool {
    let Some(mut stream) = connect(port, Duration::from_secs(3)) else {
        return false;
    };
    // size 16 | api_key 18 | api_version 0 | correlation_id 7 | client_id "sluice"
    let request = b"\x00\x00\x00\x10\x00\x12\x00\x00\x00\x00\x00\x07\x00\x06sluice";
    let mut reply = [0u8; 10];
    stream.write_all(request).is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply[4..10] == [0, 0, 0, 7, 0, 0]
}

/// ZooKeeper serves clients: its four-letter word `stat` names the server's
/// mode (zoo.cfg must whitelist it: `4lw.commands.whitelist`). Not `ruok`:
/// that says `imok` while the server still refuses sessions, and a
/// ClickHouse 18.16 started then has a broken `ON CLUSTER` worker (its next
/// distributed DDL crashes the server).
pub fn zookeeper_answers(port: u16) -> bool {
    let Some(mut stream) = connect(port, Duration::from_secs(3)) else {
        return false;
    };
    let mut reply = String::new();
    stream.write_all(b"stat").is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.contains("\nMode: ")
}

/// GET `path` over HTTP/1.0: the status and the body, or `None` when
/// nothing answers in time.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    http_request(port, "GET", path, &[], "", timeout)
}

/// One HTTP/1.0 request with `headers` and `body`: the status and the
/// body of the answer, or `None` when nothing answers in time.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let request = HttpRequest {
        host: HOST,
        port,
        method,
        path,
        headers,
        body,
    };
    request.answer(timeout)
}

/// One HTTP/1.0 request to any host (HTTP/1.0, so the answer is never
/// chunked and ends when the connection closes).
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    pub host: &'a str,
    pub port: u16,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a str,
}

impl HttpRequest<'_> {
    /// Sends the request; the stream then reads the answer.
    pub fn send(&self, timeout: Duration) -> Option<TcpStream> {
        let (host, port, method, path) = (self.host, self.port, self.method, self.path);
        let mut stream = connect_to(host, port, timeout)?;
        let mut request =
            format!("{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n");
        for (name, value) in self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        request.push_str(self.body);
        stream.write_all(request.as_bytes()).ok()?;
        Some(stream)
    }

    /// The status and the body.
    pub fn answer(&self, timeout: Duration) -> Option<(u16, String)> {
        let mut answer = Vec::new();
        self.send(timeout)?.read_to_end(&mut answer).ok()?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    /// The status and the number of lines of the body, read as it streams
    /// (an export of millions of rows is never held in memory).
    pub fn count_lines(&self, timeout: Duration) -> Option<(u16, u64)> {
        let mut reader = std::io::BufReader::with_capacity(1 << 20, self.send(timeout)?);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).ok()?;
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut header = String::new();
        loop {
            header.clear();
            if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
                break;
            }
        }
        let mut lines = 0;
        loop {
            let buffer = reader.fill_buf().ok()?;
            if buffer.is_empty() {
                return Some((status, lines));
            }
            lines += buffer.iter().filter(|byte| **byte == b'\n').count() as u64;
            let consumed = buffer.len();
            reader.consume(consumed);
        }
    }
}

/// POSTs a key (JSON `body`) to the admin API of the gateway on `port`:
/// the answer's body, `None` when nothing answers.
pub fn post_admin_key(port: u16, admin_token: &str, body: &str) -> Option<String> {
    post_as_admin(port, "/v1/admin/keys", admin_token, body)
}

/// POSTs JSON `body` to `path` on `port` with the admin token: the
/// answer's body, `None` when nothing answers.
pub fn post_as_admin(port: u16, path: &str, admin_token: &str, body: &str) -> Option<String> {
    let authorization = format!("Bearer {admin_token}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    http_request(port, "POST", path, &headers, body, Duration::from_secs(15))
        .map(|(_, answer)| answer)
}

/// ClickHouse's (and the fixture's) `/ping` says `Ok.`.
pub fn http_ping(port: u16) -> bool {
    http_get(port, "/ping", Duration::from_secs(2))
        .is_some_and(|(status, body)| status == 200 && body.trim() == "Ok.")
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn reads_an_http_answer_and_refuses_what_is_not_kafka() {
        let listener = TcpListener::bind((HOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = [0u8; 512];
                let _ = stream.read(&mut request).unwrap();
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nOk.\n")
                    .unwrap();
            }
        });
        assert!(http_ping(port));
        assert!(!kafka_answers(port), "an HTTP answer is not ApiVersions");
        server.join().unwrap();
        assert!(!port_open(port));
    }
}
