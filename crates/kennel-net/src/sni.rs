//! The server name (SNI) of a TLS ClientHello, so that the proxy can check that a tunnel
//! opened for an allowed host carries TLS for that host and not for another one behind the
//! same address (domain fronting).

/// What the first bytes of a tunnel say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Not TLS (ssh, plain protocols): nothing to check.
    NotTls,
    /// More bytes are needed.
    Incomplete,
    /// A ClientHello, with its server name when it has one.
    Tls(Option<String>),
    /// TLS, but not a ClientHello the proxy can read.
    Malformed,
}

/// The largest ClientHello the proxy waits for.
pub const MAX_HELLO: usize = 64 * 1024;

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| (b[0] as usize) << 8 | b[1] as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
}

/// Parses the start of a client's stream.
pub fn parse(buf: &[u8]) -> Hello {
    if buf.is_empty() {
        return Hello::Incomplete;
    }
    if buf[0] != 0x16 {
        return Hello::NotTls;
    }
    // Gather the handshake bytes of the records so far.
    let mut handshake = Vec::new();
    let mut c = Cursor { buf };
    loop {
        let Some(header) = c.take(5) else {
            return Hello::Incomplete;
        };
        if header[0] != 0x16 {
            return Hello::Malformed;
        }
        let len = (header[3] as usize) << 8 | header[4] as usize;
        let Some(body) = c.take(len) else {
            return Hello::Incomplete;
        };
        handshake.extend_from_slice(body);
        if handshake.len() >= 4 {
            let need = ((handshake[1] as usize) << 16 | (handshake[2] as usize) << 8)
                | handshake[3] as usize;
            if handshake.len() >= need + 4 {
                break;
            }
        }
        if c.buf.is_empty() {
            return Hello::Incomplete;
        }
    }
    match client_hello(&handshake) {
        Some(name) => Hello::Tls(name),
        None => Hello::Malformed,
    }
}

fn client_hello(handshake: &[u8]) -> Option<Option<String>> {
    let mut c = Cursor { buf: handshake };
    if c.u8()? != 1 {
        return None;
    }
    let len = c.u24()?;
    let mut c = Cursor { buf: c.take(len)? };
    c.take(2 + 32)?; // version, random
    let n = c.u8()?;
    c.take(n)?; // session id
    let n = c.u16()?;
    c.take(n)?; // cipher suites
    let n = c.u8()?;
    c.take(n)?; // compression methods
    if c.buf.is_empty() {
        return Some(None);
    }
    let n = c.u16()?;
    let mut ext = Cursor { buf: c.take(n)? };
    while !ext.buf.is_empty() {
        let kind = ext.u16()?;
        let n = ext.u16()?;
        let data = ext.take(n)?;
        if kind != 0 {
            continue;
        }
        let mut d = Cursor { buf: data };
        let n = d.u16()?;
        let mut list = Cursor { buf: d.take(n)? };
        while !list.buf.is_empty() {
            let name_type = list.u8()?;
            let n = list.u16()?;
            let name = list.take(n)?;
            if name_type == 0 {
                return Some(Some(String::from_utf8(name.to_vec()).ok()?));
            }
        }
    }
    Some(None)
}

#[cfg(test)]
pub(crate) fn client_hello_for(name: &str) -> Vec<u8> {
    let mut sni = Vec::new();
    let n = name.len() as u16;
    sni.extend_from_slice(&(n + 3).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&n.to_be_bytes());
    sni.extend_from_slice(name.as_bytes());
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_server_name() {
        let hello = client_hello_for("api.example.org");
        assert_eq!(parse(&hello), Hello::Tls(Some("api.example.org".into())));
        assert_eq!(parse(&hello[..10]), Hello::Incomplete);
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n"), Hello::NotTls);
        assert_eq!(parse(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]), Hello::Malformed);
    }
}
