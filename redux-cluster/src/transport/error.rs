//! What can go wrong on a network link, sorted by when it happens, and the
//! certificate fingerprints those errors name. Not behind a feature: the
//! server and client name these types whichever transports are built.

use sha2::{Digest, Sha256};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Name of the certificate file kept by `ServerIdentity::load_or_generate`.
pub const CERT_FILE: &str = "cert.pem";
/// Name of the private key file kept by `ServerIdentity::load_or_generate`.
pub const KEY_FILE: &str = "key.pem";

/// Anything that can go wrong setting up TLS or a network link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// PEM input is malformed or holds no item of the expected kind.
    #[error("bad pem in {what}: {reason}")]
    BadPem {
        /// Where the PEM came from (a path, or "pem bytes").
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key is of an unsupported kind or does not belong to its
    /// certificate.
    #[error("unusable private key in {what}: {reason}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Only one of the certificate and key files exists in an identity
    /// folder; nothing is overwritten.
    #[error(
        "{dir} holds only one of {CERT_FILE} and {KEY_FILE}; \
         supply both, or remove the one left to generate a new identity"
    )]
    IncompleteIdentity {
        /// The identity folder.
        dir: PathBuf,
    },
    /// rcgen could not generate a certificate.
    #[error("cannot generate a certificate: {0}")]
    CertGeneration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fingerprint string is not 32 bytes of hex.
    #[error(
        "invalid sha-256 fingerprint {0:?}: expected 64 hex digits, optionally separated by ':'"
    )]
    InvalidFingerprint(String),
    /// The server's certificate is not the pinned one.
    #[error(
        "certificate fingerprint mismatch: expected {expected}, the server presented {actual}"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        actual: Fingerprint,
    },
    /// The server's certificate does not chain to a trusted root, or is
    /// otherwise invalid (expired, badly signed, wrong purpose).
    #[error("untrusted certificate: {0}")]
    UntrustedCert(String),
    /// The server's certificate is trusted but not valid for the name the
    /// client dialed.
    #[error("certificate is not valid for {name:?}")]
    NameMismatch {
        /// The name the client dialed.
        name: String,
    },
    /// A trust source yielded no usable certificate.
    #[error("no trusted certificates in {0}")]
    NoTrustAnchors(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The peer aborted the handshake or closed the link while it was
    /// being opened (it did not trust our certificate, required one we did
    /// not present, or is not a redux-cluster peer).
    #[error("refused by peer: {0}")]
    PeerRefused(String),
    /// The peer completed TLS without agreeing on our ALPN: it is not a
    /// redux-cluster peer (or speaks another version).
    #[error("peer does not speak redux-cluster/1 (alpn: {0})")]
    WrongAlpn(String),
    /// The peer spoke TLS with our ALPN but did not open the link properly.
    #[error("peer did not open the link (got byte {0:#04x})")]
    BadPreamble(u8),
    /// The TLS handshake and link opening did not finish in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// Options or certificates that cannot make a working configuration.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// A TLS error not covered above (rustls's message).
    #[error("tls: {0}")]
    Tls(String),
    /// An I/O error on the socket.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// A QUIC connection could not be started (before any packet was sent;
    /// quinn's message).
    #[error("quic connect: {0}")]
    QuicConnect(String),
    /// A QUIC connection failed or was lost after it started (quinn's
    /// message).
    #[error("quic connection: {0}")]
    QuicConnection(String),
}

/// When a [`TransportError`] happens, and so what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Before any connection: files, PEM, keys, names, options. Fix the
    /// configuration; retrying gives the same error.
    Configuration,
    /// The other side's certificate was refused (pin, chain, name): the
    /// same server is refused again until one side is changed.
    Certificate,
    /// The connection: nothing listens yet, a lost or reset link, a
    /// timeout, a peer that refused us or does not speak our protocol.
    /// Worth retrying.
    Connection,
}

impl TransportError {
    /// When this error happens: configuration, certificate or connection.
    pub fn kind(&self) -> TransportErrorKind {
        use TransportError as E;
        match self {
            E::ReadFile { .. }
            | E::WriteFile { .. }
            | E::BadPem { .. }
            | E::BadKey { .. }
            | E::IncompleteIdentity { .. }
            | E::CertGeneration(_)
            | E::InvalidFingerprint(_)
            | E::NoTrustAnchors(_)
            | E::InvalidServerName(_)
            | E::Config(_)
            | E::QuicConnect(_) => TransportErrorKind::Configuration,
            E::FingerprintMismatch { .. } | E::UntrustedCert(_) | E::NameMismatch { .. } => {
                TransportErrorKind::Certificate
            }
            E::PeerRefused(_)
            | E::WrongAlpn(_)
            | E::BadPreamble(_)
            | E::HandshakeTimeout(_)
            | E::Tls(_)
            | E::Io(_)
            | E::QuicConnection(_) => TransportErrorKind::Connection,
        }
    }

    /// Whether trying again may succeed (a [connection](TransportErrorKind::Connection)
    /// error); a client keeps reconnecting only after these.
    pub fn is_retryable(&self) -> bool {
        self.kind() == TransportErrorKind::Connection
    }
}

/// The SHA-256 digest of a DER certificate. Displays as 64 lowercase hex
/// digits; parses from hex with or without ':' separators (the form
/// `openssl x509 -noout -fingerprint -sha256` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        Self(Sha256::digest(cert_der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || TransportError::InvalidFingerprint(s.to_owned());
        let mut digits = s.trim().bytes().filter(|&c| c != b':');
        let mut out = [0u8; 32];
        for byte in &mut out {
            let hi = digits.next().and_then(hex_value).ok_or_else(bad)?;
            let lo = digits.next().and_then(hex_value).ok_or_else(bad)?;
            *byte = hi << 4 | lo;
        }
        if digits.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted_by_when_they_happen() {
        let config = TransportError::InvalidServerName("not a name!".into());
        assert_eq!(config.kind(), TransportErrorKind::Configuration);
        assert!(!config.is_retryable());
        let cert = TransportError::NameMismatch {
            name: "example.com".into(),
        };
        assert_eq!(cert.kind(), TransportErrorKind::Certificate);
        assert!(!cert.is_retryable());
        for conn in [
            TransportError::Io(io::ErrorKind::ConnectionRefused.into()),
            TransportError::HandshakeTimeout(Duration::from_secs(1)),
            TransportError::PeerRefused("reset".into()),
        ] {
            assert_eq!(conn.kind(), TransportErrorKind::Connection);
            assert!(conn.is_retryable());
        }
    }
}
