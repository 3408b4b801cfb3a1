//! Resident memory with many idle keep-alive client connections (issue 4's memory target: under
//! 30 MB with 1,000), for ficus beside the bare Pingora proxy and, when installed, nginx.
//!
//! For each proxy it starts the proxy against an upstream served from this process, sends one
//! request so pools and lazy state exist, reads the proxy's resident memory (VmRSS, summed over
//! its processes), then opens N client connections that each send one request, read the whole
//! answer and stay open, waits 3 s with all of them idle, and reads it again.
//!
//!     benches/memory.sh            (builds what it needs and runs this)
//!     idle_memory --ficus BIN --pingora BIN [--connections N]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

/// The upstream's answer: 200 with a 1 KiB body, keep-alive.
fn serve_upstream(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            });
            let mut out = stream;
            let body = [b'x'; 1024];
            loop {
                // The request head ends with an empty line; bodies are not sent here.
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 1024\r\nx-upstream: a\r\n\r\n";
                if out
                    .write_all(head.as_bytes())
                    .and_then(|()| out.write_all(&body))
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// One request on `stream`, and its whole answer read (the head, then content-length bytes).
fn request(stream: &mut TcpStream) -> Result<(), Error> {
    stream.write_all(b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err("the proxy closed the connection".into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")).into());
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(())
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resident KiB (VmRSS) of `pid` and its children (nginx: the master and its worker).
fn rss_kb(pid: u32) -> u64 {
    let mut pids = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

struct Proxy {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Proxy {
    /// SIGINT: the fast shutdown of Pingora and of nginx (whose master then stops its worker).
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_accepting(proxy: &mut Proxy) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.port));
    loop {
        if let Some(status) = proxy.child.try_wait()? {
            return Err(format!("{} exited: {status}", proxy.name).into());
        }
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not listen within 20 s", proxy.name).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(name: &'static str, port: u16, cmd: &mut Command) -> Result<Proxy, Error> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut proxy = Proxy { name, child, port };
    wait_accepting(&mut proxy)?;
    Ok(proxy)
}

/// (idle kB, kB with `n` idle keep-alive connections)
/// How long the connections stay idle before the measurement.
const IDLE_BEFORE_MEASURING: Duration = Duration::from_secs(3);

fn measure(proxy: &Proxy, n: usize) -> Result<(u64, u64), Error> {
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.port));
    let mut warm = TcpStream::connect(addr)?;
    request(&mut warm)?;
    drop(warm);
    let idle = rss_kb(proxy.child.id());
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        request(&mut s).map_err(|e| format!("{}: connection {i}: {e}", proxy.name))?;
        open.push(s);
    }
    // Measured once the connections are idle, not just served: a proxy may keep a buffer ready
    // for a connection's next request for a moment (ficus's h1 engine, for one second).
    std::thread::sleep(IDLE_BEFORE_MEASURING);
    let loaded = rss_kb(proxy.child.id());
    drop(open);
    Ok((idle, loaded))
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: idle_memory --ficus BIN --pingora BIN [--connections N]";
    let ficus = PathBuf::from(arg(&args, "--ficus").ok_or(usage)?);
    let pingora = PathBuf::from(arg(&args, "--pingora").ok_or(usage)?);
    let n: usize = arg(&args, "--connections").map_or(Ok(1000), |v| v.parse())?;
    raise_fd_limit();

    let upstream = TcpListener::bind("127.0.0.1:0")?;
    let up = upstream.local_addr()?;
    std::thread::spawn(move || serve_upstream(upstream));
    let dir = std::env::temp_dir().join(format!("ficus-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let mut rows = Vec::new();
    // ficus once per engine: Pingora's generic proxy path and ficus's own HTTP/1 loop.
    for (name, engine) in [("ficus-pingora", "pingora"), ("ficus-h1", "h1")] {
        let port = free_port()?;
        let table = dir.join(format!("{name}.toml"));
        std::fs::write(
            &table,
            format!(
                "[proxy]\nlisten = \"127.0.0.1:{port}\"\ndefault = \"legacy\"\nengine = \"{engine}\"\nthreads = 1\ndata_dir = '{}'\n\n[upstreams.legacy]\nurl = \"http://{up}\"\n",
                dir.join("data").display()
            ),
        )?;
        let proxy = start(
            name,
            port,
            Command::new(&ficus)
                .args(["run", "--config"])
                .arg(&table)
                .env("RUST_LOG", "info"),
        )?;
        rows.push((proxy.name, measure(&proxy, n)?));
        drop(proxy);
    }

    let port = free_port()?;
    let proxy = start(
        "pingora",
        port,
        Command::new(&pingora)
            .arg(format!("127.0.0.1:{port}"))
            .arg(up.to_string())
            .arg(dir.join("pingora-access.log")),
    )?;
    rows.push((proxy.name, measure(&proxy, n)?));
    drop(proxy);

    match nginx(&dir, up) {
        Ok(Some(proxy)) => {
            rows.push((proxy.name, measure(&proxy, n)?));
        }
        Ok(None) => eprintln!("idle_memory: nginx is not installed; measured without it"),
        Err(e) => eprintln!("idle_memory: nginx: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("resident memory with {n} idle keep-alive client connections (one request each)");
    println!(
        "   {:<14} {:>9} {:>12} {:>15}",
        "proxy", "idle MiB", "loaded MiB", "KiB/connection"
    );
    for (name, (idle, loaded)) in rows {
        println!(
            "   {:<14} {:>9.1} {:>12.1} {:>15.1}",
            name,
            idle as f64 / 1024.0,
            loaded as f64 / 1024.0,
            loaded.saturating_sub(idle) as f64 / n as f64
        );
    }
    Ok(())
}

/// nginx with one worker proxying to the upstream with keep-alive, as in benches/compare.sh.
fn nginx(dir: &Path, up: SocketAddr) -> Result<Option<Proxy>, Error> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(bin) = found else { return Ok(None) };
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log {d}/nginx-access.log;\n  upstream up {{ server {up}; keepalive 64; }}\n\
               server {{ listen 127.0.0.1:{port}; keepalive_requests 100000;\n\
                 location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n",
            d = dir.display()
        ),
    )?;
    let proxy = start(
        "nginx",
        port,
        Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("nginx-error.log")),
    )?;
    Ok(Some(proxy))
}
