//! Load test of `vpc-emulator`: starts the release binary, then sends V1-signed
//! `DescribeVpnGateway` requests over keep-alive loopback connections for a bounded time and
//! prints requests per second.
//!
//! `cargo bench --bench emulator` (env: `EMULATOR_BENCH_SECS`, default 5;
//! `EMULATOR_BENCH_CONNS`, default 8).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alicloud_signature::{percent_encode, sign_v1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
access_keys: [{id: bench-key, secret: bench-secret}]
regions: [cn-hangzhou]
vpn_gateways: [{id: vpn-bench, region: cn-hangzhou, vpc_id: vpc-bench}]
settings: {nonce_cache_max: 2000000}
"#;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let secs = env_u64("EMULATOR_BENCH_SECS", 5);
    let conns = env_u64("EMULATOR_BENCH_CONNS", 8);
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vpc-emulator"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let addr = line
        .trim()
        .trim_start_matches("listening on http://")
        .to_owned();
    // The load generator gets one core; the emulator the other.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(load(&addr, conns, Duration::from_secs(secs)));
    let _ = child.kill();
    let _ = child.wait();
    let (ok, errors, elapsed) = result?;
    println!(
        "vpc-emulator: {ok} signed DescribeVpnGateway requests in {:.2}s over {conns} connections = {:.0} requests/s ({errors} errors)",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}

async fn load(addr: &str, conns: u64, dur: Duration) -> anyhow::Result<(u64, u64, Duration)> {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (ok, errors, stop, addr) = (ok.clone(), errors.clone(), stop.clone(), addr.to_owned());
        tasks.push(tokio::spawn(async move {
            let r = connection(&addr, c, &ok, &stop).await;
            if let Err(e) = r {
                eprintln!("connection {c}: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    Ok((
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
    ))
}

async fn connection(
    addr: &str,
    conn: u64,
    ok: &AtomicU64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let timestamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut params: BTreeMap<String, String> = [
            ("Action", "DescribeVpnGateway"),
            ("Version", "2016-04-28"),
            ("Format", "JSON"),
            ("RegionId", "cn-hangzhou"),
            ("VpnGatewayId", "vpn-bench"),
            ("AccessKeyId", "bench-key"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        params.insert("Timestamp".into(), timestamp);
        params.insert(
            "SignatureNonce".into(),
            format!("bench-{conn}-{seq}-{}", std::process::id()),
        );
        let signature = sign_v1("bench-secret", "GET", &params);
        params.insert("Signature".into(), signature);
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let request = format!("GET /?{} HTTP/1.1\r\nHost: {addr}\r\n\r\n", query.join("&"));
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream, &mut buf).await?;
        ok.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads one HTTP/1.1 response with Content-Length; fails unless the status is 200.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> anyhow::Result<()> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        anyhow::ensure!(n > 0, "connection closed");
        filled += n;
        let data = &buf[..filled];
        let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&data[..head_end])?;
        anyhow::ensure!(
            head.starts_with("HTTP/1.1 200"),
            "bad response: {}",
            String::from_utf8_lossy(data)
        );
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| anyhow::anyhow!("no content-length"))?;
        if filled >= head_end + 4 + len {
            return Ok(());
        }
    }
}
