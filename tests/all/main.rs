//! Integration tests: the real `kiln` binary and library, on real components built from
//! `plugins/` and `tests/guests/` for wasm32-wasip2 by `kiln-test-artifacts`.

mod cache;
mod cli;
mod conformance;
mod edge;
mod faults;
mod fuzz;
mod guests;
mod hostile;
mod http;
mod library;
mod mlflow;
mod onnx;
mod pipelines;
mod plugins;
mod polyglot;
mod registry;
mod routes;
mod runs;
mod sandbox;
mod schemathesis;
mod seed;
mod serve;
mod serving;
mod tracking;
mod workflows;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
};

use serde_json::Value as J;

/// A `kiln` with its own data directory.
pub struct Kiln {
    home: tempfile::TempDir,
    /// Import the shipped seed of standard plugins (`registry-data/`) on first use.
    seeded: bool,
    /// Share this test process's compiled code ([`shared_code`]).
    shares_code: bool,
}

impl Default for Kiln {
    fn default() -> Self {
        Self::new()
    }
}

impl Kiln {
    pub fn new() -> Kiln {
        Kiln {
            home: tempfile::tempdir().expect("temp dir"),
            seeded: false,
            shares_code: false,
        }
    }

    /// A `kiln` whose registry starts with the shipped standard plugins (and which shares
    /// compiled code, see [`shared_code`]).
    pub fn seeded() -> Kiln {
        Kiln {
            seeded: true,
            shares_code: true,
            ..Kiln::new()
        }
    }

    /// An empty `kiln` that shares compiled code ([`shared_code`]): for tests of what
    /// plugins do, not of when they are compiled.
    pub fn sharing_code() -> Kiln {
        Kiln {
            shares_code: true,
            ..Kiln::new()
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        // Tests start from an empty registry; the seed's own tests opt in.
        c.env("KILN_HOME", self.home.path())
            .env_remove("KILN_BACKTRACE");
        if self.seeded {
            c.env(
                "KILN_SEED",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-data"),
            );
        } else {
            c.env("KILN_SEED", "off");
        }
        if self.shares_code {
            c.env("KILN_CODE_CACHE", shared_code());
        } else {
            c.env_remove("KILN_CODE_CACHE");
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running kiln")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with `--json` and expects success; returns the parsed document.
    pub fn json(&self, args: &[&str]) -> J {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).expect("kiln printed JSON")
    }

    /// Runs a command made from [`Kiln::cmd`] (with its own environment, say), expects
    /// success and returns its stdout parsed as JSON.
    pub fn json_of(mut cmd: Command) -> J {
        let out = cmd.output().expect("running kiln");
        assert!(
            out.status.success(),
            "{:?} failed:\n{}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kiln printed JSON")
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kiln {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The directory of compiled code that this test process's seeded data directories share
/// (`KILN_CODE_CACHE`), with the plugin builds and the in-process hosts of the polyglot
/// tests: a component is compiled once per test run, not once per test that uses it (the
/// ONNX runner alone takes half a minute, a Python plugin ten seconds). Those tests are
/// about what the plugins do; the compiled-code cache's own tests start from empty data
/// directories. Made anew by each test process, which removes the ones earlier processes
/// left.
pub fn shared_code() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-code");
        let _ = std::fs::remove_dir_all(&parent);
        let dir = parent.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("creating the shared compiled-code directory");
        dir
    })
}

/// The shipped example datasets.
pub fn data(file: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "examples", "data", file]
        .iter()
        .collect();
    p.to_str().expect("UTF-8 path").to_string()
}

/// The directory holding the example datasets.
pub fn data_dir() -> String {
    data("")
}

/// An output of a `plugin run --json` document, by name.
pub fn output<'a>(doc: &'a J, name: &str) -> &'a J {
    doc["outputs"]
        .as_array()
        .and_then(|outs| outs.iter().find(|o| o["name"] == name))
        .map(|o| &o["value"])
        .unwrap_or_else(|| panic!("no output `{name}` in {doc}"))
}

/// A column of a table value document, by name.
pub fn column<'a>(table: &'a J, name: &str) -> &'a J {
    table["columns"]
        .as_array()
        .and_then(|cols| cols.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no column `{name}`"))
}

/// A tracked metric of a `plugin run --json` document.
pub fn metric(doc: &J, key: &str) -> f64 {
    doc["tracking"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["type"] == "metric" && e["key"] == key))
        .and_then(|e| e["value"].as_f64())
        .unwrap_or_else(|| panic!("no metric `{key}` in {}", doc["tracking"]))
}

/// Asserts `got` is within `tol` of `want`.
#[track_caller]
pub fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{got} is not within {tol} of {want}"
    );
}

/// Writes `doc` as a file and returns its path as a string.
pub fn write_json(dir: &Path, name: &str, doc: &J) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(doc).expect("serialise")).expect("write");
    p.to_str().expect("UTF-8").to_string()
}

/// A running `kiln serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `kiln serve` on a free port, with `config` as its kiln-server.toml.
    pub fn start(k: &Kiln, config: Option<&str>) -> Server {
        Server::start_at(k, config, "127.0.0.1:0")
    }

    /// Starts `kiln serve` on `addr` (to come back on the port a stopped server had).
    pub fn start_at(k: &Kiln, config: Option<&str>, addr: &str) -> Server {
        let mut cmd = k.cmd();
        cmd.args(["serve", "--addr", addr]);
        if let Some(text) = config {
            let path = k.home().join("kiln-server.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        Server::spawn(cmd)
    }

    /// Starts a server command (`kiln serve`, `kiln bundle serve`) and reads the address
    /// it prints.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_string();
        Server { child, url }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Vec<u8>) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        // GET and DELETE go without a body; anything else sends one, as JSON.
        let body = match method {
            "GET" | "DELETE" => None,
            _ => {
                headers.push(("Content-Type", "application/json"));
                Some(body.unwrap_or_default())
            }
        };
        let (status, _, bytes) = self.send(method, path, &headers, body);
        (status, bytes)
    }

    /// Any request, with these headers; the answer's status, headers and body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = match body {
            None => agent.run(request.body(()).unwrap()),
            Some(bytes) => agent.run(request.body(bytes).unwrap()),
        };
        let mut response = response.unwrap();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        (
            response.status().as_u16(),
            response.headers().clone(),
            bytes,
        )
    }

    /// A request with a JSON document as its body; the answer as JSON.
    pub fn send_json(&self, method: &str, path: &str, token: Option<&str>, body: &J) -> (u16, J) {
        self.json(method, path, token, Some(body.to_string().into_bytes()))
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, J) {
        let (status, bytes) = self.call(method, path, token, body);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("{path}: not JSON: {}", String::from_utf8_lossy(&bytes))
            }),
        )
    }
}

impl Server {
    /// Sends only the head of a POST that announces `length` bytes; returns what comes back.
    pub fn head_only(&self, path: &str, length: usize) -> String {
        use std::io::{Read as _, Write as _};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }
}

impl Server {
    /// Sends SIGTERM, as a service manager stops a server.
    pub fn terminate(&self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
