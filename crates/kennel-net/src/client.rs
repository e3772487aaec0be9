//! A client of the proxy: `kennel net-connect HOST PORT` (the ProxyCommand of git over
//! ssh) and the listeners inside use it to open a tunnel.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::log::host_port;

/// Opens a tunnel to `host:port`. `Ok(Ok((stream, rest)))`: tunnel open, `rest` already
/// came from the server; `Ok(Err(response))`: the proxy refused, with its whole response.
#[allow(clippy::type_complexity)]
pub fn open_tunnel(
    socket: &Path,
    host: &str,
    port: u16,
) -> io::Result<(Result<UnixStream, Vec<u8>>, Vec<u8>)> {
    let mut up = UnixStream::connect(socket)?;
    let target = host_port(host, port);
    up.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())?;
    let (head, rest) = crate::http::read_head(&mut up)?;
    if crate::http::status_code(&head) == Some(200) {
        return Ok((Ok(up), rest));
    }
    let mut response = head;
    response.extend_from_slice(&rest);
    let _ = up.read_to_end(&mut response);
    Ok((Err(response), Vec::new()))
}

/// `kennel net-connect HOST PORT`: a tunnel on stdin and stdout. The error says why the
/// proxy refused (the body of its response).
pub fn net_connect(socket: &Path, host: &str, port: u16) -> Result<(), String> {
    let (up, rest) = open_tunnel(socket, host, port)
        .map_err(|e| format!("cannot reach kennel's proxy at {}: {e}", socket.display()))?;
    let up = match up {
        Ok(up) => up,
        Err(response) => {
            let text = String::from_utf8_lossy(&response);
            let body = text.split("\r\n\r\n").nth(1).unwrap_or(&text).trim();
            return Err(body.trim_start_matches("kennel: ").to_string());
        }
    };
    let mut stdout = io::stdout();
    stdout.write_all(&rest).map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;
    let mut up_r = up.try_clone().map_err(|e| e.to_string())?;
    let back = std::thread::spawn(move || {
        let mut out = io::stdout();
        let r = io::copy(&mut up_r, &mut out);
        let _ = out.flush();
        r
    });
    let mut up_w = up;
    let _ = io::copy(&mut io::stdin(), &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}
