//! What the load benches share: start the release binary on 127.0.0.1 in a
//! temporary directory, and read its CPU time and memory from /proc.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(dead_code)] // not every bench uses every part of it
pub mod load;

#[allow(unused_imports)] // not every bench reads CPU time
pub use load::cpu_seconds;

/// Resident memory of `pid`, in MiB.
#[allow(dead_code)] // not every bench reads it
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The `tessera` binary to measure: this build, or the one
/// `TESSERA_BENCH_BINARY` names.
pub fn binary() -> String {
    std::env::var("TESSERA_BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tessera").to_string())
}

/// What a server `child` prints after each of `prefixes` (up to the next
/// space), in that order, waiting at most `timeout` for each; its stdout
/// keeps being drained afterwards, as a closed pipe would fail its next
/// print.
pub fn announced<const N: usize>(child: &mut Child, prefixes: [&'static str; N], timeout: Duration) -> [String; N] {
    let stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut next = 0;
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = prefixes.get(next).and_then(|prefix| line.strip_prefix(prefix)) {
                let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
                next += 1;
            }
        }
    });
    prefixes.map(|prefix| rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("the server never printed {prefix:?}")))
}

/// `perf record` (with call graphs) of one CPU core for as long as it lives, when
/// `BENCH_PERF` is part of the phase's name: the profile of exactly the
/// server on that core during that phase, in
/// `target/perf/<phase>-<n>.data` (read it with `perf report -i`).
pub struct Profile(Option<Child>);

impl Profile {
    #[allow(dead_code)] // not every bench profiles
    pub fn start(phase: &str, core: usize) -> Self {
        let wanted = std::env::var("BENCH_PERF").ok().filter(|wanted| phase.contains(wanted.as_str()));
        if wanted.is_none() {
            return Self(None);
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/perf");
        std::fs::create_dir_all(&dir).unwrap();
        let stem: String = phase.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let n = (1..).find(|n| !dir.join(format!("{stem}-{n}.data")).exists()).unwrap();
        let output = dir.join(format!("{stem}-{n}.data"));
        // BENCH_PERF_CALLGRAPH=dwarf for call chains through code built
        // without frame pointers (larger files).
        let callgraph = std::env::var("BENCH_PERF_CALLGRAPH").unwrap_or_else(|_| "fp".into());
        let child = Command::new("perf")
            .args(["record", "-q", "--call-graph", &callgraph, "-C", &core.to_string(), "-o"])
            .arg(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf (BENCH_PERF needs linux perf installed)");
        // perf needs a moment to open its events before the phase starts.
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("  profiling {phase} into {}", output.display());
        Self(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let _ = child.wait();
        }
    }
}

/// A running `tessera serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// `http://host:port` of the management listener (/metrics).
    #[allow(dead_code)] // not every bench reads it
    pub management: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start the binary with `config` as its tessera.toml and extra `env`.
    #[allow(dead_code)] // not every bench uses it
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(config, env, None)
    }

    /// [`Server::start`], confined to one CPU core when `core` is given
    /// (with `taskset`, so the runtime sizes itself to that one core).
    /// `TESSERA_BENCH_BINARY` names another build to measure (an earlier
    /// release, for a before-and-after in one run).
    pub fn start_on(config: &str, env: &[(&str, &str)], core: Option<usize>) -> Self {
        Self::start_binary(&binary(), config, env, core)
    }

    /// [`Server::start_on`] with the given `tessera` binary.
    pub fn start_binary(binary: &str, config: &str, env: &[(&str, &str)], core: Option<usize>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tessera.toml"), config).unwrap();
        let mut command = match core {
            Some(core) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &core.to_string(), binary]);
                taskset
            }
            None => Command::new(binary),
        };
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::piped())
            // BENCH_SERVER_LOG=1 shows what the servers log (warnings and up).
            .stderr(if std::env::var_os("BENCH_SERVER_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let [base, management] = announced(&mut child, ["tessera listening on ", "management on "], Duration::from_secs(20));
        Self { child, base, management, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server for the run on a free port, keeping nothing on disk;
/// `None` (said on stdout) when redis-server is not installed.
#[allow(dead_code)] // not every bench uses it
pub struct Redis {
    child: Child,
    pub port: u16,
}

#[allow(dead_code)]
impl Redis {
    pub fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                std::thread::sleep(Duration::from_millis(300));
                Some(Self { child, port })
            }
            Err(_) => {
                println!("redis-server not installed: the Redis phase is skipped");
                None
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
