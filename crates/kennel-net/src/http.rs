//! The little of HTTP the proxy speaks: a request head, `CONNECT host:port` and
//! absolute-form requests (`GET http://host/path`), and its own short responses.

use std::io::{self, Read};

/// The largest request head the proxy reads.
pub const MAX_HEAD: usize = 64 * 1024;

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CONNECT host:port`: a tunnel.
    Connect { host: String, port: u16 },
    /// A plain HTTP request for `host:port`; `head` is the request rewritten to origin form,
    /// ready to send upstream.
    Plain {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

/// Reads up to the end of the head (`\r\n\r\n`); returns the head and what was read after.
pub fn read_head(stream: &mut impl Read) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the request head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits `host:port` (`[v6]:port`), with `default` when the port is absent.
pub fn split_authority(auth: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (auth.to_string(), None),
        }
    };
    let port = port.or(default)?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

/// Parses a request head. `Err` is the reason for a `400`.
pub fn parse(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    // A bare CR or LF ends a line for some servers and not for others: a header hidden
    // from the proxy's reading would reach the upstream server.
    let body = text.strip_suffix("\r\n\r\n").unwrap_or(text);
    if body.split("\r\n").any(|l| l.contains(['\r', '\n', '\0'])) {
        return Err("a bare CR, LF or NUL in the request head".into());
    }
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line `{first}`"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported HTTP version `{version}`"));
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_authority(target, None)
            .ok_or_else(|| format!("`CONNECT {target}`: expected host:port"))?;
        return Ok(Request::Connect { host, port });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "`{method} {target}`: a proxy request names its URL in full (http://host/path); for https use CONNECT"
        ));
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let (host, port) =
        split_authority(auth, Some(80)).ok_or_else(|| format!("`{target}`: bad host"))?;
    // The Host the proxy decided for, whatever the client wrote: a `Host:` of another
    // name would reach another site behind the same address (domain fronting).
    let mut out = format!("{method} {path} {version}\r\nHost: {auth}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("proxy-connection")
            || name.eq_ignore_ascii_case("proxy-authorization")
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("host")
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // One request per connection: the proxy decided for this request's host only, so a
    // second request (for another host) must not follow on the same upstream connection.
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request::Plain {
        host,
        port,
        head: out.into_bytes(),
    })
}

/// A complete response with a plain-text body, closing the connection.
pub fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-Kennel: network policy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub const CONNECTED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// The status code of a response head.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_form() {
        assert_eq!(
            parse(b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Request::Connect {
                host: "api.example.org".into(),
                port: 443
            })
        );
        assert_eq!(
            parse(b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n"),
            Ok(Request::Connect {
                host: "::1".into(),
                port: 22
            })
        );
        let Ok(Request::Plain { host, port, head }) = parse(
            b"GET http://example.org:8080/a?b HTTP/1.1\r\nHost: example.org\r\nProxy-Connection: keep-alive\r\n\r\n",
        ) else {
            panic!("not plain");
        };
        assert_eq!((host.as_str(), port), ("example.org", 8080));
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET /a?b HTTP/1.1\r\nHost: example.org:8080\r\nConnection: close\r\n\r\n"
        );
        assert!(parse(b"GET /relative HTTP/1.1\r\n\r\n").is_err());
        let Ok(Request::Plain { head, .. }) =
            parse(b"GET http://user@allowed.test/ HTTP/1.1\r\nHost: other.test\r\nhOsT:x\r\n\r\n")
        else {
            panic!("not plain");
        };
        assert_eq!(
            String::from_utf8_lossy(&head),
            "GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
        );
        for smuggled in [
            &b"GET http://a.test/ HTTP/1.1\r\nX: y\nHost: b.test\r\n\r\n"[..],
            b"GET http://a.test/ HTTP/1.1\r\nX: y\rHost: b.test\r\n\r\n",
            b"CONNECT a.test:443 HTTP/1.1\nHost: b\r\n\r\n",
        ] {
            assert!(parse(smuggled).is_err(), "{smuggled:?}");
        }
        assert!(parse(b"CONNECT nohost HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn head_ends_at_blank_line() {
        let mut input: &[u8] = b"CONNECT a:1 HTTP/1.1\r\n\r\nEXTRA";
        let (head, rest) = read_head(&mut input).unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(rest, b"EXTRA");
    }
}
