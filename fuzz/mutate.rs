//! The shared mutation fuzzer of the stable harnesses (included by path into
//! each crate's `tests/fuzz_*.rs`). Not coverage-guided: seeded random byte
//! edits (flip, set to 0x00/0xFF/'<'/'"'/'{'/'\n', insert, delete, duplicate
//! a slice, splice two corpus files, truncate) over the corpus in
//! `fuzz/corpus/<target>/`.
//!
//! Each harness has a quick pass (every seed and a few mutations: a normal
//! test) and a long run (`#[ignore]`, driven by `scripts/fuzz`): mutations
//! until `TRESOR_FUZZ_SECONDS`, each input written to
//! `fuzz/crashes/.last-<target>` first, so an input that kills the process
//! (stack overflow, abort) is kept; a caught panic is saved to
//! `fuzz/crashes/<target>-<hash>` and fails the run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The seeds of `target`; fails when the corpus is missing.
pub fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = root().join("corpus").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out.sort();
    out
}

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let n = b.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b[i] = [0x00, 0xFF, b'<', b'"', b'{', b'\n', b'[', b'/'][rng.below(8)];
            }
            2 => {
                let i = rng.below(n + 1);
                b.insert(i, rng.next() as u8);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                let len = rng.below(n - i).min(64);
                b.drain(i..i + len);
            }
            4 if n > 0 => {
                // duplicate a slice many times (deep nesting, long runs)
                let i = rng.below(n);
                let len = 1 + rng.below((n - i).min(16));
                let piece = b[i..i + len].to_vec();
                let times = 1 + rng.below(2000);
                let at = rng.below(b.len() + 1);
                let rep: Vec<u8> = piece.iter().copied().cycle().take(len * times).collect();
                b.splice(at..at, rep);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(b.len() + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            6 if n > 0 => b.truncate(rng.below(n)),
            7 if n >= 8 => {
                // an integer field set to an extreme
                let i = rng.below(n - 7);
                let v: u64 = [u64::MAX, 0, 1 << 32, 1 << 62, u32::MAX as u64][rng.below(5)];
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    b
}

/// Runs `check` on every seed and `quick` mutations; with `long` (the
/// ignored test), on mutations until `TRESOR_FUZZ_SECONDS` (default 60).
/// `check` returns normally for any outcome but a bug; a panic is a bug.
pub fn run(target: &str, quick: usize, long: bool, check: &dyn Fn(&[u8])) {
    let seeds = corpus(target);
    let secs: u64 = std::env::var("TRESOR_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let seed = std::env::var("TRESOR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_u64);
    let mut rng = Rng::new(seed ^ target.len() as u64);
    let crashes = root().join("crashes");
    let last = crashes.join(format!(".last-{target}"));
    if long {
        std::fs::create_dir_all(&crashes).unwrap();
    }
    let mut i = 0usize;
    loop {
        let input = if i < seeds.len() { seeds[i].clone() } else { mutate(&mut rng, &seeds) };
        i += 1;
        if long {
            std::fs::write(&last, &input).unwrap();
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        if r.is_err() {
            let h = input.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
            let p = crashes.join(format!("{target}-{h:016x}"));
            std::fs::create_dir_all(&crashes).unwrap();
            std::fs::write(&p, &input).unwrap();
            panic!("{target}: input {} panicked; saved to {}", i, p.display());
        }
        let done = if long { Instant::now() >= deadline } else { i >= seeds.len() + quick };
        if done {
            break;
        }
    }
    if long {
        let _ = std::fs::remove_file(&last);
        eprintln!("{target}: {i} inputs, no crash");
    }
}
