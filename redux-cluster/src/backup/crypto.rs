//! Keys: Argon2id from a password and a per-file salt, then AES-256-GCM.
//!
//! Deriving a key is deliberately slow (~60-80 ms with the default
//! parameters, see [`KdfParams::DEFAULT`]), so a [`Key`] remembers the keys it
//! derived: a store that loads its backup and then rewrites it every few
//! seconds pays for one derivation per process, not one per write. The salt
//! stays with the file across rewrites; the nonce is fresh on every write.

use super::BackupError;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Bytes of the per-file KDF salt.
pub(crate) const SALT_LEN: usize = 16;
/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of the key check value stored in a header.
pub(crate) const KCV_LEN: usize = 16;

// Limits on parameters read from a file, so that a crafted header cannot make
// a reader allocate gigabytes or spin for minutes before it is refused.
const MAX_MEMORY_KIB: u32 = 1 << 20; // 1 GiB
const MAX_ITERATIONS: u32 = 64;
const MAX_LANES: u32 = 16;

/// Argon2id cost parameters. Written into each file's header, so a file is
/// always read with the parameters it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory per derivation, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Degree of parallelism (lanes). The `argon2` crate runs them one after
    /// the other, so more lanes cost time, not speed.
    pub lanes: u32,
}

impl KdfParams {
    /// 46 MiB, 2 passes, 1 lane: about 60-80 ms per derivation on one core
    /// of a 2020s x86-64 server in a release build (measured by
    /// `cargo bench -p redux-cluster --bench backup`), and twice the passes of
    /// the OWASP recommendation for Argon2id at this memory (46 MiB, 1 pass).
    pub const DEFAULT: Self = Self {
        memory_kib: 46 * 1024,
        iterations: 2,
        lanes: 1,
    };

    /// 64 KiB, 1 pass: well under a millisecond. **For tests only**: it makes
    /// a password cheap to guess.
    pub const fn fast_for_tests() -> Self {
        Self {
            memory_kib: 64,
            iterations: 1,
            lanes: 1,
        }
    }

    fn argon2(self) -> Result<argon2::Argon2<'static>, String> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))
            .map_err(|e| {
                format!(
                    "{e} (memory {} KiB, {} passes, {} lanes)",
                    self.memory_kib, self.iterations, self.lanes
                )
            })?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// Whether parameters read from a file are within what a reader accepts.
    pub(crate) fn check_read(self) -> Result<(), String> {
        if self.memory_kib > MAX_MEMORY_KIB
            || self.iterations > MAX_ITERATIONS
            || self.lanes > MAX_LANES
        {
            return Err(format!(
                "key derivation parameters out of range (memory {} KiB, {} passes, {} lanes)",
                self.memory_kib, self.iterations, self.lanes
            ));
        }
        self.argon2().map(drop)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A password to encrypt backups with, and the keys derived from it so far.
///
/// Cheap to clone; clones share the derived keys.
#[derive(Clone)]
pub struct Key {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    password: Zeroizing<Vec<u8>>,
    params: KdfParams,
    derived: Mutex<Vec<Derived>>,
}

/// A derived AES-256 key, with the salt and parameters that made it.
#[derive(Clone)]
pub(crate) struct Derived {
    pub salt: [u8; SALT_LEN],
    pub params: KdfParams,
    key: Zeroizing<[u8; 32]>,
}

// A handful is plenty: a store derives for its backup and its journal.
const CACHE: usize = 4;

impl Key {
    /// A key from `password`, derived with [`KdfParams::DEFAULT`].
    pub fn new(password: impl AsRef<[u8]>) -> Self {
        Self::with_params(password, KdfParams::DEFAULT)
    }

    /// A key from `password`, derived with `params` for the files it writes.
    /// Files are always read with the parameters in their header.
    pub fn with_params(password: impl AsRef<[u8]>, params: KdfParams) -> Self {
        Self {
            inner: Arc::new(KeyInner {
                password: Zeroizing::new(password.as_ref().to_vec()),
                params,
                derived: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The parameters used for files this key writes.
    pub fn params(&self) -> KdfParams {
        self.inner.params
    }

    /// The key for `salt` and `params`, derived once and then remembered.
    pub(crate) fn derive(
        &self,
        salt: [u8; SALT_LEN],
        params: KdfParams,
    ) -> Result<Derived, BackupError> {
        if let Some(d) = self
            .inner
            .derived
            .lock()
            .iter()
            .find(|d| d.salt == salt && d.params == params)
        {
            return Ok(d.clone());
        }
        // Derive outside the lock: it takes tens of milliseconds.
        let mut key = Zeroizing::new([0u8; 32]);
        params
            .argon2()
            .map_err(BackupError::Kdf)?
            .hash_password_into(&self.inner.password, &salt, key.as_mut())
            .map_err(|e| BackupError::Kdf(e.to_string()))?;
        let d = Derived { salt, params, key };
        let mut cache = self.inner.derived.lock();
        if cache.len() >= CACHE {
            cache.remove(0);
        }
        cache.push(d.clone());
        Ok(d)
    }

    /// The key to write a new file with: one derived earlier with this key's
    /// parameters (reusing that file's salt), or a new one under a fresh salt.
    pub(crate) fn for_writing(&self) -> Result<Derived, BackupError> {
        let params = self.inner.params;
        if let Some(d) = self
            .inner
            .derived
            .lock()
            .iter()
            .rev()
            .find(|d| d.params == params)
        {
            return Ok(d.clone());
        }
        let mut salt = [0u8; SALT_LEN];
        random(&mut salt)?;
        self.derive(salt, params)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("password", &"<redacted>")
            .field("params", &self.inner.params)
            .finish()
    }
}

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Derived(<redacted>)")
    }
}

impl Derived {
    /// A value that tells whether a key is the right one without decrypting
    /// anything, so that a wrong password and a damaged file get different
    /// errors. It reveals no more than the GCM tag already does: both let a
    /// guesser test a password, at the cost of one Argon2 derivation.
    pub fn check_value(&self) -> [u8; KCV_LEN] {
        let mut h = Sha256::new();
        h.update(b"redux-cluster key check v1\0");
        h.update(self.key.as_ref());
        let mut out = [0u8; KCV_LEN];
        out.copy_from_slice(&h.finalize()[..KCV_LEN]);
        out
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.as_ref().into())
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], String> {
        self.cipher()
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .map(Into::into)
            .map_err(|_| {
                format!(
                    "{} bytes is more than AES-GCM can encrypt under one nonce",
                    buf.len()
                )
            })
    }

    /// Decrypts `buf` in place; `Err` if the tag does not match.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        self.cipher()
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .map_err(drop)
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), BackupError> {
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| BackupError::io("the system random source", "read", std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_salt_same_key_other_salt_other_key() {
        let k = Key::with_params("pw", KdfParams::fast_for_tests());
        let p = KdfParams::fast_for_tests();
        let a = k.derive([1; SALT_LEN], p).unwrap();
        let b = Key::with_params("pw", p).derive([1; SALT_LEN], p).unwrap();
        let c = k.derive([2; SALT_LEN], p).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        assert_ne!(a.check_value(), c.check_value());
        let other = Key::with_params("pw2", p).derive([1; SALT_LEN], p).unwrap();
        assert_ne!(a.check_value(), other.check_value());
    }

    #[test]
    fn writing_reuses_a_derived_salt() {
        let k = Key::with_params("pw", KdfParams::fast_for_tests());
        let first = k.for_writing().unwrap();
        let again = k.for_writing().unwrap();
        assert_eq!(first.salt, again.salt);
        let fresh = Key::with_params("pw", KdfParams::fast_for_tests())
            .for_writing()
            .unwrap();
        assert_ne!(first.salt, fresh.salt, "a new key gets a random salt");
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let d = Key::with_params("pw", KdfParams::fast_for_tests())
            .for_writing()
            .unwrap();
        let nonce = [9; NONCE_LEN];
        let mut buf = b"hello state".to_vec();
        let tag = d.seal(&nonce, b"aad", &mut buf).unwrap();
        assert_ne!(buf, b"hello state");
        let mut copy = buf.clone();
        d.open(&nonce, b"aad", &mut copy, &tag).unwrap();
        assert_eq!(copy, b"hello state");
        let mut copy = buf.clone();
        assert!(d.open(&nonce, b"other aad", &mut copy, &tag).is_err());
        buf[0] ^= 1;
        assert!(d.open(&nonce, b"aad", &mut buf, &tag).is_err());
    }

    #[test]
    fn bad_params_are_refused() {
        let k = Key::with_params(
            "pw",
            KdfParams {
                memory_kib: 1,
                iterations: 1,
                lanes: 1,
            },
        );
        assert!(matches!(k.for_writing(), Err(BackupError::Kdf(_))));
        let huge = KdfParams {
            memory_kib: u32::MAX,
            iterations: 1,
            lanes: 1,
        };
        assert!(huge.check_read().is_err());
        assert!(KdfParams::DEFAULT.check_read().is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let k = Key::new("secret-password");
        assert!(!format!("{k:?}").contains("secret"));
    }
}
