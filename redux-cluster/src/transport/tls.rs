//! TLS for the network transports ([`quic`](super::quic) and
//! [`tcp_tls`](super::tcp_tls)): the crypto provider, the server's
//! identity, how a client decides to trust a server, optional mutual TLS,
//! and [`TransportError`], shared by both transports.
//!
//! # Which trust to use
//! - [`Trust::Fingerprint`]: the server generated its own certificate
//!   ([`ServerIdentity::load_or_generate`]) and printed its
//!   [`fingerprint`](ServerIdentity::fingerprint); the client pins it, the
//!   way SSH pins a host key. The server name is not checked, only the
//!   exact certificate (and the handshake signatures made with its key).
//! - [`Trust::CaPem`]: the server's certificate is signed by a CA of your
//!   own; the client checks the chain and that the certificate is valid
//!   for the name it dialed.
//! - [`Trust::SystemRoots`]: the server has a publicly issued certificate.
//!
//! # Crypto provider
//! Always *ring*, passed explicitly to every config built here, so the
//! process-wide default provider (which an application may set, or leave
//! ambiguous when both providers are compiled in) never matters. *ring*
//! builds with only a C compiler, where aws-lc-rs compiles a large C
//! library (and wants cmake on some targets); quinn, rustls, rcgen and
//! tokio-rustls all support it. What we give up: the post-quantum hybrid
//! key exchange that rustls offers only with aws-lc-rs.
//!
//! Both transports speak TLS 1.3 only: both ends are this library, and
//! QUIC requires it anyway.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The ALPN protocol id both transports negotiate. A peer that does not
/// agree on it (another service on the port, another version) is refused.
pub const ALPN: &[u8] = b"redux-cluster/1";

/// The one byte each side sends once TLS is up, client first, before the
/// stream is handed to the layers above. For QUIC it is what makes the
/// client's stream exist at the server at all (a stream is announced by
/// its first byte); for both it makes a connect return only once the
/// server has accepted the link, so a refusal (a missing client
/// certificate) surfaces in `connect`, not in the first read above.
pub(crate) const LINK_OPEN: u8 = 0x01;

/// Over TCP, rustls lets a handshake through when the client offers no
/// ALPN at all (QUIC always requires it); refuse such a peer here.
/// Who opened a link over TLS (TCP or QUIC): its address and, when the
/// server asks for client certificates, the subject of the certificate it
/// presented (verified by then), as `CN=…, O=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The peer's address.
    pub addr: std::net::SocketAddr,
    /// The subject of its certificate.
    pub certificate: Option<String>,
}

/// The subject of the first (end-entity) certificate of `chain`.
pub(crate) fn subject_of(chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let der = chain?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

pub(crate) fn check_alpn(negotiated: Option<&[u8]>) -> Result<()> {
    match negotiated {
        Some(p) if p == ALPN => Ok(()),
        Some(p) => Err(TransportError::WrongAlpn(
            String::from_utf8_lossy(p).into_owned(),
        )),
        None => Err(TransportError::WrongAlpn("none".to_owned())),
    }
}

pub use super::error::{Fingerprint, TransportError, TransportErrorKind, CERT_FILE, KEY_FILE};

type Result<T, E = TransportError> = std::result::Result<T, E>;

/// The crypto provider every config here uses: *ring* (see the module
/// docs for why). Exposed so callers building their own rustls configs
/// can match it.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A rustls error while building a config: the configuration is at fault.
fn config_error(e: rustls::Error) -> TransportError {
    TransportError::Config(e.to_string())
}

/// Runs blocking config building (it may read files) off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Io(std::io::Error::other(e)))?
}

/// Where PEM certificates come from: a file (read when a config is
/// built) or bytes already in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A PEM file.
    File(PathBuf),
    /// PEM text in memory.
    Bytes(Vec<u8>),
}

impl PemSource {
    fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Bytes(_) => "pem bytes".to_owned(),
        }
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>> {
        let (pem, what) = match self {
            Self::File(p) => (read_file(p)?, self.describe()),
            Self::Bytes(b) => (b.clone(), self.describe()),
        };
        parse_certs(&pem, &what)
    }
}

impl From<PathBuf> for PemSource {
    fn from(p: PathBuf) -> Self {
        Self::File(p)
    }
}

impl From<&Path> for PemSource {
    fn from(p: &Path) -> Self {
        Self::File(p.to_path_buf())
    }
}

impl From<Vec<u8>> for PemSource {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| TransportError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::BadPem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TransportError::BadPem {
            what: what.to_owned(),
            reason: "no CERTIFICATE section".to_owned(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TransportError::BadPem {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

fn root_store(certs: Vec<CertificateDer<'static>>, what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        tracing::warn!(source = what, ignored, "ignored unparsable trust anchors");
    }
    if added == 0 {
        return Err(TransportError::NoTrustAnchors(what.to_owned()));
    }
    Ok(roots)
}

/// A certificate chain and its private key.
struct KeyedChain {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Of the leaf, `chain[0]`.
    fingerprint: Fingerprint,
}

impl KeyedChain {
    fn from_pem(cert_pem: &[u8], key_pem: &[u8], cert_what: &str, key_what: &str) -> Result<Self> {
        let chain = parse_certs(cert_pem, cert_what)?;
        let key = parse_key(key_pem, key_what)?;
        let bad_key = |reason: String| TransportError::BadKey {
            what: key_what.to_owned(),
            reason,
        };
        // Check now, so a bad pair fails at load, not at the first client.
        let signer = provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| bad_key(e.to_string()))?;
        match rustls::sign::CertifiedKey::new(chain.clone(), signer).keys_match() {
            // Unknown: the key cannot tell its public half; rustls accepts that too.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => {
                return Err(bad_key(format!(
                    "it does not match the certificate in {cert_what}"
                )))
            }
        }
        let fingerprint = match chain.first() {
            Some(leaf) => Fingerprint::of(leaf),
            None => {
                return Err(TransportError::BadPem {
                    what: cert_what.to_owned(),
                    reason: "no CERTIFICATE section".to_owned(),
                })
            }
        };
        Ok(Self {
            chain,
            key,
            fingerprint,
        })
    }

    fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let cert_pem = read_file(cert_path)?;
        let key_pem = read_file(key_path)?;
        Self::from_pem(
            &cert_pem,
            &key_pem,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }
}

impl Clone for KeyedChain {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

/// What a server presents: its certificate chain and private key.
///
/// `Debug` shows the fingerprint, never the key.
#[derive(Clone)]
pub struct ServerIdentity(KeyedChain);

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint())
            .field("chain_len", &self.0.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads a certificate chain (leaf first) and its private key (PKCS#8,
    /// PKCS#1 or SEC1) from PEM files. Blocking file I/O: in async code,
    /// call it from `spawn_blocking`.
    ///
    /// # Errors
    /// [`TransportError::ReadFile`], [`TransportError::BadPem`], or
    /// [`TransportError::BadKey`] when the key is unsupported or is not the
    /// certificate's.
    pub fn from_pem_files(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        KeyedChain::from_pem_files(cert_path.as_ref(), key_path.as_ref()).map(Self)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    /// [`TransportError::BadPem`] or [`TransportError::BadKey`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        KeyedChain::from_pem(cert_pem, key_pem, "certificate pem", "key pem").map(Self)
    }

    /// A fresh self-signed certificate for `names` (DNS names or IP
    /// addresses; `localhost` when empty), kept in memory only.
    ///
    /// # Errors
    /// [`TransportError::CertGeneration`] when a name is not a valid DNS
    /// name or IP address.
    pub fn generate(names: &[String]) -> Result<Self> {
        let (cert_pem, key_pem) = generate_pem(names)?;
        Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
    }

    /// Loads the identity kept in `dir`, or generates a self-signed one
    /// for `names` and keeps it there ([`CERT_FILE`], and [`KEY_FILE`]
    /// with mode 0600; `dir` is created with mode 0700), so that the
    /// fingerprint clients pin survives restarts. `names` are used only
    /// when generating: to change them, remove both files. Blocking file
    /// I/O: in async code, call it from `spawn_blocking`.
    ///
    /// # Errors
    /// [`TransportError::IncompleteIdentity`] when only one of the files
    /// exists; otherwise as [`from_pem_files`](Self::from_pem_files),
    /// [`generate`](Self::generate), or [`TransportError::WriteFile`].
    pub fn load_or_generate(dir: impl AsRef<Path>, names: &[String]) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let exists = |p: &Path| {
            p.try_exists().map_err(|source| TransportError::ReadFile {
                path: p.to_path_buf(),
                source,
            })
        };
        match (exists(&cert_path)?, exists(&key_path)?) {
            (true, true) => {
                warn_if_exposed(&key_path);
                Self::from_pem_files(&cert_path, &key_path)
            }
            (false, false) => {
                let (cert_pem, key_pem) = generate_pem(names)?;
                let identity = Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())?;
                write_identity(dir, cert_pem.as_bytes(), key_pem.as_bytes())?;
                tracing::info!(
                    dir = %dir.display(),
                    fingerprint = %identity.fingerprint(),
                    "generated a self-signed server certificate"
                );
                Ok(identity)
            }
            _ => Err(TransportError::IncompleteIdentity {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// SHA-256 of the leaf certificate (DER): what clients pin with
    /// [`Trust::Fingerprint`]. Servers should log it at start.
    pub fn fingerprint(&self) -> Fingerprint {
        self.0.fingerprint
    }

    /// The certificate chain, leaf first, DER-encoded.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.0.chain
    }
}

/// A certificate a client presents to a server that requires one
/// ([`ClientAuth::RequireCa`]).
///
/// `Debug` shows the fingerprint, never the key.
#[derive(Clone)]
pub struct ClientIdentity(KeyedChain);

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("fingerprint", &self.0.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Loads a certificate chain and its key from PEM files (blocking I/O).
    ///
    /// # Errors
    /// As [`ServerIdentity::from_pem_files`].
    pub fn from_pem_files(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        KeyedChain::from_pem_files(cert_path.as_ref(), key_path.as_ref()).map(Self)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    /// As [`ServerIdentity::from_pem`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        KeyedChain::from_pem(cert_pem, key_pem, "certificate pem", "key pem").map(Self)
    }
}

fn generate_pem(names: &[String]) -> Result<(String, String)> {
    let names = if names.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        names.to_vec()
    };
    let gen_err = |e: rcgen::Error| TransportError::CertGeneration(Box::new(e));
    let mut params = rcgen::CertificateParams::new(names).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "redux-cluster server");
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_identity(dir: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<()> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TransportError::WriteFile { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err(dir))?;
    // Key first: a crash between the renames leaves a key without a
    // certificate, which the next start reports instead of overwriting.
    write_atomic(&dir.join(KEY_FILE), key_pem, 0o600)?;
    write_atomic(&dir.join(CERT_FILE), cert_pem, 0o644)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

/// Writes through a temp file created with `mode` (so the key is never
/// readable by others, not even briefly), fsyncs, renames.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("pem.tmp-{}", std::process::id()));
    let res = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    res.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        TransportError::WriteFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn warn_if_exposed(key_path: &Path) {
    if let Ok(meta) = fs::metadata(key_path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %key_path.display(),
                "private key is readable by group or others; chmod 600 it"
            );
        }
    }
}

/// Whether a server asks clients for certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Any client may complete TLS (logins above still apply).
    #[default]
    None,
    /// Clients must present a certificate signed by one of these CAs.
    RequireCa(PemSource),
}

/// How a client decides to trust the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// The operating system's trust store (via rustls-native-certs), read
    /// when the config is built, and the name dialed must match.
    SystemRoots,
    /// CA certificates in PEM, and the name dialed must match.
    CaPem(PemSource),
    /// Exactly the certificate with this SHA-256 fingerprint, whatever
    /// its name, issuer or dates. Handshake signatures are still checked,
    /// so only the holder of its private key passes.
    Fingerprint(Fingerprint),
}

/// Builds the server side TLS config: TLS 1.3, [`ALPN`], the *ring*
/// provider. Reads files for [`ClientAuth::RequireCa`] with a
/// [`PemSource::File`]: in async code, call it from `spawn_blocking`.
///
/// # Errors
/// Bad or empty CA PEM, or a key rustls refuses.
pub fn server_config(
    identity: &ServerIdentity,
    client_auth: &ClientAuth,
) -> Result<rustls::ServerConfig> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(TLS13_ONLY)
        .map_err(config_error)?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::RequireCa(source) => {
            let roots = root_store(source.certs()?, &source.describe())?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    TransportError::Config(format!("client ca {}: {e}", source.describe()))
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let KeyedChain { chain, key, .. } = identity.0.clone();
    let mut config = builder.with_single_cert(chain, key).map_err(config_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Builds the client side TLS config: TLS 1.3, [`ALPN`], the *ring*
/// provider, the given trust, and optionally a client certificate. Reads
/// files (CA PEM, the system store): in async code, call it from
/// `spawn_blocking`.
///
/// # Errors
/// Bad or empty CA PEM, no system roots, or a key rustls refuses.
pub fn client_config(
    trust: &Trust,
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig> {
    client_config_reporting(trust, identity).map(|(config, _)| config)
}

/// [`client_config`], plus the slot where its verifier records why it
/// refused a server: rustls (and quinn, which flattens TLS errors into a
/// QUIC close reason) lose the type, and callers deserve
/// [`TransportError::FingerprintMismatch`] rather than a string.
pub(crate) fn client_config_reporting(
    trust: &Trust,
    identity: Option<&ClientIdentity>,
) -> Result<(rustls::ClientConfig, Arc<VerifyReport>)> {
    let provider = provider();
    let check = match trust {
        Trust::Fingerprint(pin) => Check::Pin(*pin),
        Trust::CaPem(source) => Check::WebPki(webpki(
            root_store(source.certs()?, &source.describe())?,
            &provider,
        )?),
        Trust::SystemRoots => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "while loading system root certificates");
            }
            Check::WebPki(webpki(
                root_store(found.certs, "the system trust store")?,
                &provider,
            )?)
        }
    };
    let report = Arc::new(VerifyReport::default());
    let verifier = Verifier {
        check,
        algorithms: provider.signature_verification_algorithms,
        report: report.clone(),
    };
    // `dangerous()` only because the verifier is our own type; for CA
    // trust it delegates to rustls' WebPkiServerVerifier unchanged.
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13_ONLY)
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let KeyedChain { chain, key, .. } = id.0.clone();
            builder
                .with_client_auth_cert(chain, key)
                .map_err(config_error)?
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((config, report))
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TransportError::Config(format!("server verifier: {e}")))
}

/// Why the client refused the server's certificate, kept for the caller.
#[derive(Debug, Default)]
pub(crate) struct VerifyReport(Mutex<Option<Refusal>>);

#[derive(Debug, Clone)]
enum Refusal {
    Fingerprint {
        expected: Fingerprint,
        actual: Fingerprint,
    },
    Name(String),
    Untrusted(String),
}

impl VerifyReport {
    fn record(&self, refusal: Refusal) {
        self.0.lock().get_or_insert(refusal);
    }

    /// The typed error for a refusal, if the verifier made one.
    pub(crate) fn take(&self) -> Option<TransportError> {
        self.0.lock().take().map(|r| match r {
            Refusal::Fingerprint { expected, actual } => {
                TransportError::FingerprintMismatch { expected, actual }
            }
            Refusal::Name(name) => TransportError::NameMismatch { name },
            Refusal::Untrusted(why) => TransportError::UntrustedCert(why),
        })
    }
}

/// Why a pinned client refused a certificate, as rustls carries it.
struct NotPinned;

impl fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not the pinned certificate")
    }
}

impl fmt::Display for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for NotPinned {}

#[derive(Debug)]
enum Check {
    Pin(Fingerprint),
    WebPki(Arc<WebPkiServerVerifier>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
    report: Arc<VerifyReport>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Pin(expected) => {
                let actual = Fingerprint::of(end_entity);
                if actual == *expected {
                    return Ok(ServerCertVerified::assertion());
                }
                self.report.record(Refusal::Fingerprint {
                    expected: *expected,
                    actual,
                });
                // The details go to the caller through the report; the
                // peer sees (in its close reason) only that we refused.
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(NotPinned)),
                )))
            }
            Check::WebPki(inner) => inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .inspect_err(|e| {
                    self.report.record(match e {
                        rustls::Error::InvalidCertificate(
                            CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. },
                        ) => Refusal::Name(server_name.to_str().into_owned()),
                        other => Refusal::Untrusted(other.to_string()),
                    })
                }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The pin proves which certificate; this proves the server holds
        // its key. Without it, anyone could replay the public certificate.
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = Fingerprint::of(b"not really a certificate");
        let hex = fp.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<Fingerprint>().ok(), Some(fp));
        let colons: String = hex
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().ok(), Some(fp));
        assert!(hex[..62].parse::<Fingerprint>().is_err());
        assert!(format!("{hex}00").parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn key_that_is_not_the_certificates_is_refused() {
        let a = generate_pem(&["a.test".to_owned()]).ok();
        let b = generate_pem(&["b.test".to_owned()]).ok();
        let (Some((cert_a, _)), Some((_, key_b))) = (a, b) else {
            panic!("generation failed");
        };
        let err = ServerIdentity::from_pem(cert_a.as_bytes(), key_b.as_bytes());
        assert!(matches!(err, Err(TransportError::BadKey { .. })), "{err:?}");
    }

    #[test]
    fn pem_without_certificates_is_bad_pem() {
        let err = parse_certs(b"hello", "test input");
        assert!(matches!(err, Err(TransportError::BadPem { .. })), "{err:?}");
    }
}
