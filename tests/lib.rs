//! Helpers shared by the integration tests: test stores and worker
//! processes.

pub mod nats_cluster;

use redux_cluster::transport::tls::{ClientIdentity, PemSource, ServerIdentity, Trust};
use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

/// A counter that also folds every action into a digest, so two stores that
/// applied the same actions in another order end in different states.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Number of increments applied.
    pub total: u64,
    /// Rolling digest of the sequence of actions (order-sensitive).
    pub digest: u64,
    /// Increments per source.
    pub by: [u64; 8],
    /// Set by [`CounterAction::End`].
    pub ended: bool,
}

/// Actions on [`Counter`].
#[reducer(Counter)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CounterAction {
    /// One increment from `source` (0 = master, 1.. = workers).
    Inc(u8),
    /// Several increments at once.
    Add(u8, u64),
    /// Marks the end of a run.
    End,
}

fn reduce(state: &mut Counter, action: &CounterAction) {
    let (src, n) = match action {
        CounterAction::Inc(s) => (*s, 1),
        CounterAction::Add(s, n) => (*s, *n),
        CounterAction::End => {
            state.ended = true;
            return;
        }
    };
    state.total += n;
    state.by[usize::from(src) % 8] += n;
    state.digest = (state.digest ^ (u64::from(src) + 1)).wrapping_mul(0x0000_0100_0000_01b3);
}

/// A second store, to show that stores on one link are isolated.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notes {
    /// Lines appended.
    pub lines: Vec<String>,
}

/// Actions on [`Notes`].
#[reducer(Notes, apply = reduce_notes)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NotesAction {
    /// Appends a line.
    Push(String),
}

fn reduce_notes(state: &mut Notes, action: &NotesAction) {
    let NotesAction::Push(s) = action;
    state.lines.push(s.clone());
}

/// Same name as [`Counter`], another schema: a build that drifted.
pub mod drifted {
    use super::*;

    /// `Counter` with a field renamed.
    #[derive(ClusterStore, Clone, Default, Debug, Serialize, Deserialize)]
    #[cluster_store(name = "Counter")]
    pub struct Counter {
        /// Renamed from `total`.
        pub count: u64,
        /// As before.
        pub digest: u64,
        /// As before.
        pub by: [u64; 8],
    }

    /// Same actions.
    #[reducer(Counter, apply = reduce_drifted)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum CounterAction {
        /// One increment.
        Inc(u8),
        /// Several.
        Add(u8, u64),
    }

    fn reduce_drifted(state: &mut Counter, _action: &CounterAction) {
        state.count += 1;
    }
}

/// A line a worker prints when done: `final <total> <digest> <seq>`.
pub fn parse_final(line: &str) -> Option<(u64, u64, u64)> {
    let mut it = line.strip_prefix("final ")?.split_whitespace();
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// The counter slot a worker with this id increments (slot 0 is the
/// master's).
pub fn slot(worker_id: u32) -> usize {
    (worker_id % 7 + 1) as usize
}

/// Shuts a store down when dropped, so a failed test does not leave its
/// name taken for the next one.
pub struct Scoped<S: redux_cluster::Reducer>(pub redux_cluster::Store<S>);

impl<S: redux_cluster::Reducer> std::ops::Deref for Scoped<S> {
    type Target = redux_cluster::Store<S>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: redux_cluster::Reducer> Drop for Scoped<S> {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// A store whose reducer is not deterministic: it folds in the process id,
/// so every process computes another state from the same actions.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flaky {
    /// Actions applied.
    pub total: u64,
    /// Differs between processes unless repaired.
    pub noise: u64,
}

/// Actions on [`Flaky`].
#[reducer(Flaky, apply = reduce_flaky)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FlakyAction {
    /// One step.
    Step,
}

fn reduce_flaky(state: &mut Flaky, _action: &FlakyAction) {
    state.total += 1;
    state.noise = state.noise.wrapping_add(u64::from(std::process::id()));
}

/// A child process of the tests, its stdout read line by line. Killed when
/// dropped.
pub struct Proc {
    /// The process.
    pub child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Proc {
    /// Starts `exe` with `first` and then `args` as arguments.
    pub fn spawn(exe: &str, first: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(exe)
            .arg(first)
            .args(args)
            .stdout(std::process::Stdio::piped())
            // Held open while the Proc lives: a helper may run until its
            // stdin closes.
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a test process");
        let out = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: tokio::io::BufReader::new(out).lines(),
        }
    }

    /// The next line; panics if the process ended first.
    pub async fn line(&mut self) -> String {
        self.lines
            .next_line()
            .await
            .expect("read the child's stdout")
            .expect("the child ended without a line")
    }

    /// The next line, a `final <total> <digest> <seq>` one.
    pub async fn final_state(&mut self) -> (u64, u64, u64) {
        let l = self.line().await;
        parse_final(&l).unwrap_or_else(|| panic!("not a final line: {l}"))
    }

    /// Waits for the process to exit.
    pub async fn exit(mut self) {
        self.child.wait().await.expect("wait for the child");
    }
}

/// Logs the library's tracing events to stderr when `RC_TEST_LOG` is set
/// (an `EnvFilter` such as `redux_cluster=debug`); does nothing otherwise.
/// The test processes and the helper binaries call it first, so a failure
/// seen once can be rerun with the logs of every process involved.
pub fn log_from_env() {
    let Ok(filter) = std::env::var("RC_TEST_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A CA and PEM certificates it signs.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// `(cert pem, key pem)` for `names`, for a server or a client.
    pub fn sign(
        &self,
        names: &[&str],
        purpose: rcgen::ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).expect("names");
        params.extended_key_usages = vec![purpose];
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    /// Trust in this CA.
    pub fn trust(&self) -> Trust {
        Trust::CaPem(PemSource::Bytes(self.pem.clone().into_bytes()))
    }

    /// A server certificate for `names`.
    pub fn server_identity(&self, names: &[&str]) -> ServerIdentity {
        let (cert, key) = self.sign(names, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        ServerIdentity::from_pem(cert.as_bytes(), key.as_bytes()).expect("server identity")
    }

    /// A client certificate (mutual TLS).
    pub fn client_identity(&self) -> ClientIdentity {
        let (cert, key) = self.sign(&["client.test"], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).expect("client identity")
    }
}

/// A hook that records each event's text, and what it recorded.
pub fn events() -> (
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    impl Fn(&redux_cluster::Event) + Send + Sync + 'static,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = std::sync::Arc::clone(&seen);
    (seen, move |e: &redux_cluster::Event| {
        s.lock().expect("lock").push(e.to_string())
    })
}

/// A field of `/proc/<pid>/status` in KiB (`"VmRSS:"`, `"VmHWM:"` for the
/// peak), 0 when unreadable (Linux).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Lower-case hex, as the browser protocol writes bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` bytes from hex (panics on bad input: for tests).
pub fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// The `main` of a helper binary: logs as [`log_from_env`] says, runs
/// `run`, and on failure prints `error: …` on stdout (where the tests read)
/// and exits with code 2.
pub async fn main_of(
    run: impl std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
) {
    log_from_env();
    if let Err(e) = run.await {
        println!("error: {e}");
        std::process::exit(2);
    }
}

/// Waits until process `pid` (not necessarily our child) has exited.
pub async fn exited(pid: i32) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // ESRCH: it is gone (and reaped) already.
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ESRCH),
            "pidfd_open"
        );
        return;
    }
    // SAFETY: a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open and the
    // same for its whole life.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.to_string())
    .expect("watch the pidfd");
    let _ = fd.readable().await.expect("the pidfd becomes readable");
}
