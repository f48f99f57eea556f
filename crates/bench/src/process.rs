//! Running a child process and collecting its stdout, exit status and peak
//! RSS. The peak is the child's own `VmHWM` (/proc/PID/status), sampled
//! while it runs: `wait4`'s `ru_maxrss` also counts the parent's memory the
//! child was spawned from (Linux carries the pre-exec high-water mark into
//! it), so a bench that had just written a 1B synthetic model reported
//! 1.4 GB for every child. `ru_maxrss` is the fallback where /proc is absent.

use std::process::{Command, Stdio};

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
