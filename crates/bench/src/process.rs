//! Running a child process and collecting its stdout, exit status and peak
//! RSS (from `wait4`, so each child's own maximum).

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
    let (status, rss) = wait_with_rusage(pid);
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
