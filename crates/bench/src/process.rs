//! Running a child process and collecting its stdout, exit status and peak
//! RSS; and [`ScratchTresor`], the one way a bench runs the `tresor` binary
//! against a throw-away data dir (`bench serve`, `bench widget`, `bench
//! traffic`): a clean environment, the scratch dir and models, a passphrase
//! only this run knows, and `serve` on a loopback port that stops on drop.
//!
//! Owns: spawning and reaping bench children. Never: decides what a bench
//! measures or keeps a scratch dir after the run.
//!
//! Peak RSS: The peak is the child's own `VmHWM` (/proc/PID/status), sampled
//! while it runs: `wait4`'s `ru_maxrss` also counts the parent's memory the
//! child was spawned from (Linux carries the pre-exec high-water mark into
//! it), so a bench that had just written a 1B synthetic model reported
//! 1.4 GB for every child. `ru_maxrss` is the fallback where /proc is absent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{BenchError, Result};

pub struct ChildRun {
    pub stdout: String,
    pub peak_rss_mb: Option<f64>,
}

pub fn run(what: &str, cmd: &mut Command) -> Result<ChildRun> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BenchError::Spawn { what: what.to_string(), source })?;
    let pid = child.id() as libc::pid_t;
    // Read the pipes on threads so a chatty child never blocks.
    let mut child = child;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let sampler = std::thread::spawn(move || sample_peak_rss(pid));
    let (status, rusage_rss) = wait_with_rusage(pid);
    let rss = sampler.join().ok().flatten().or(rusage_rss);
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    // The child is reaped; tell std not to wait again.
    std::mem::forget(child);
    if status != 0 {
        let tail: String = stderr.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(BenchError::Failed { what: what.to_string(), status: format!("exit status {status}"), stderr: tail });
    }
    Ok(ChildRun { stdout, peak_rss_mb: rss })
}

/// Environment variables a parent shell may set that would point a scratch
/// child at the user's own data, workspace, token or passphrase.
const USER_ENV: &[&str] = &["TRESOR_HOME", "TRESOR_WORKSPACE", "TRESOR_API_TOKEN", "TRESOR_PASSPHRASE_FILE", "TRESOR_POLICY", "TRESOR_MODELS"];

/// The `tresor` binary run against a scratch data dir (see the module doc).
#[derive(Debug, Clone)]
pub struct ScratchTresor {
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    /// Wraps the scratch workspace key; random per run unless a bench pins it.
    pub passphrase: String,
    /// `--device` (None: the binary's default).
    pub device: Option<String>,
    /// `--threads`.
    pub threads: Option<usize>,
    /// Further variables for every child (e.g. `TRESOR_NOW`).
    pub env: Vec<(String, String)>,
}

/// 128 random bits as hex (std's per-process random hash keys; enough for a throw-away secret).
pub fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..2)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

impl ScratchTresor {
    /// `exe` on `data_dir` with `models_dir`, a random passphrase, default device and threads.
    pub fn new(exe: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, models_dir: impl Into<PathBuf>) -> ScratchTresor {
        ScratchTresor { exe: exe.into(), data_dir: data_dir.into(), models_dir: models_dir.into(), passphrase: random_hex(), device: None, threads: None, env: Vec::new() }
    }

    /// A command for `tresor ARGS...` on the scratch dir (add the subcommand's arguments).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.arg("--data-dir").arg(&self.data_dir).arg("--models-dir").arg(&self.models_dir);
        if let Some(d) = &self.device {
            c.arg("--device").arg(d);
        }
        if let Some(t) = self.threads {
            c.arg("--threads").arg(t.to_string());
        }
        for v in USER_ENV {
            c.env_remove(v);
        }
        c.env("TRESOR_PASSPHRASE", &self.passphrase);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `tresor ARGS` to the end; its stdout (an error with the stderr tail when it fails).
    pub fn run(&self, what: &str, args: &[&str]) -> Result<String> {
        Ok(run(what, self.command().args(args))?.stdout)
    }

    /// Starts `tresor serve --addr 127.0.0.1:0 EXTRA...` and waits for its address.
    pub fn serve(&self, extra: &[&str]) -> Result<Served> {
        let what = "tresor serve";
        let mut child = self
            .command()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BenchError::Spawn { what: what.into(), source })?;
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        let addr = line.trim().strip_prefix("listening on http://").and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let _ = child.wait();
            let tail: String = err.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(BenchError::Failed { what: what.into(), status: format!("did not start (it said {:?})", line.trim()), stderr: tail });
        };
        // drain stderr so a chatty server never blocks on a full pipe
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
        }
        Ok(Served { child, addr })
    }
}

/// A running scratch `tresor serve`; killed and reaped on drop.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The 1-minute load average (Linux), to say how busy the machine was.
pub fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(str::to_string))
}

/// The CPU a timing ran on: model name, logical CPUs and the SIMD flags the kernels use.
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())).unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags: Vec<&str> = info.lines().find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')).map(|(_, v)| v)).unwrap_or("").split_whitespace().collect();
    let simd: Vec<&str> = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile"].into_iter().filter(|f| flags.contains(f)).collect();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{model}; {cpus} logical CPUs; flags {}", if simd.is_empty() { "-".to_string() } else { simd.join(" ") })
}

/// The largest `VmHWM` of `pid` seen until it exits (every 5 ms), in MB.
fn sample_peak_rss(pid: libc::pid_t) -> Option<f64> {
    let path = format!("/proc/{pid}/status");
    let mut peak: Option<f64> = None;
    loop {
        let Ok(status) = std::fs::read_to_string(&path) else { break };
        // a zombie's status has no VmHWM: the child has exited
        let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()) else {
            break;
        };
        peak = Some(peak.map_or(kb / 1024.0, |p: f64| p.max(kb / 1024.0)));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peak
}

fn wait_with_rusage(pid: libc::pid_t) -> (i32, Option<f64>) {
    let mut status: libc::c_int = 0;
    // Safety: plain syscall on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        return (-1, None);
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    // ru_maxrss is in KiB on Linux.
    (code, Some(usage.ru_maxrss as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child's peak is its own: not the memory of the parent that
    /// spawned it (what `wait4` alone reported), and not missed when the
    /// child itself grows.
    #[test]
    fn peak_rss_is_the_childs_own() {
        // the parent holds 300 MB, touched
        let big = vec![1u8; 300 << 20];
        let small = run("sleep", Command::new("sh").args(["-c", "sleep 0.3"])).unwrap();
        let small_mb = small.peak_rss_mb.unwrap();
        assert!(small_mb < 100.0, "a shell's peak RSS reported as {small_mb} MB (the parent holds {} MB)", big.len() >> 20);
        if std::process::Command::new("python3").arg("-c").arg("1").status().is_ok_and(|s| s.success()) {
            let grown = run("python3", Command::new("python3").args(["-c", "import time; x = bytearray(200 << 20); time.sleep(0.3)"])).unwrap();
            let grown_mb = grown.peak_rss_mb.unwrap();
            assert!((190.0..400.0).contains(&grown_mb), "a child holding 200 MB reported {grown_mb} MB");
        }
        drop(big);
    }
}
