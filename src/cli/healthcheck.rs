//! `tessera healthcheck`: ask this host's management listener whether the
//! running tessera is ready (`/readyz`, or `--path /healthz` for liveness),
//! exiting 0 on 200 and 1 otherwise — the container `HEALTHCHECK` for an
//! image that has no curl. A wildcard `management.listen` (`0.0.0.0:9090`)
//! is asked on loopback.

use crate::config::Config;
use anyhow::Context;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

pub(super) fn run(config: &Config, path: &str) -> anyhow::Result<ExitCode> {
    let mut address = config.management_listen;
    if address.ip().is_unspecified() {
        address = match address {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], address.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port())),
        };
    }
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).with_context(|| format!("connecting to {address} (management.listen)"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    let _ = stream.take(64 * 1024).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    println!("{address}{path}: {status_line}");
    Ok(if status_line.split_whitespace().nth(1) == Some("200") { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
