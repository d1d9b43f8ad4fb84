//! Login by challenge-response, with no I/O.
//!
//! The scheme is SCRAM-SHA-256 (RFC 5802, RFC 7677) in this protocol's own
//! framing, carried by [`Hello`](crate::protocol::Hello),
//! [`Challenge`], [`Proof`] and [`Welcome`]:
//!
//! ```text
//! SaltedPassword  = PBKDF2-HMAC-SHA256(password, salt, iterations)
//! ClientKey       = HMAC(SaltedPassword, "Client Key")
//! StoredKey       = SHA256(ClientKey)
//! ServerKey       = HMAC(SaltedPassword, "Server Key")
//! AuthMessage     = domain || login || client nonce || server nonce || salt || iterations
//! ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//! ServerSignature = HMAC(ServerKey, AuthMessage)
//! ```
//!
//! The server keeps only `salt`, `iterations`, `StoredKey` and `ServerKey`
//! ([`Logins`]): never the password, and nothing a thief could send as a
//! proof. The proof binds both nonces, so a recorded one is useless against
//! a new challenge. The server's signature proves to the client that the
//! server holds the key as well (mutual authentication).
//!
//! This authenticates the handshake, not the bytes after it: without TLS an
//! active man in the middle can relay a whole login and then the session.
//! Use it inside TLS (QUIC) or on links that cannot be tampered with.
//!
//! ```
//! use redux_cluster::auth::{nonce, Credentials, Logins, ServerAuth};
//!
//! // Server: built once from configuration.
//! let logins = Logins::new().add("alice", "correct horse");
//!
//! // Client sends Hello { login: Some("alice"), nonce: client_nonce }.
//! let credentials = Credentials::new("alice", "correct horse");
//! let client_nonce = nonce();
//!
//! // Server answers with a challenge and keeps `pending`.
//! let (challenge, pending) = ServerAuth::challenge(&logins, credentials.login(), &client_nonce);
//!
//! // Client proves it knows the password.
//! let (proof, expected) = credentials.prove(&client_nonce, &challenge)?;
//!
//! // Server checks the proof and signs the exchange.
//! let admitted = pending.verify(&proof.proof)?;
//! assert_eq!(admitted.login, "alice");
//!
//! // Client checks the server's signature.
//! assert!(expected.check(&admitted.welcome()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::protocol::{Challenge, Proof, Welcome};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

/// PBKDF2 iterations used when none are configured: the floor RFC 7677 asks
/// for.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Fewest iterations a server may set or a client will accept. A client
/// refuses a weaker challenge, so a rogue server cannot collect proofs that
/// are cheap to attack offline.
pub const MIN_ITERATIONS: u32 = 4096;

/// Most iterations a server may set or a client will accept (a few seconds
/// of CPU), so a rogue server cannot pin a client's CPU.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Separates this protocol's messages from any other use of the same keys.
const DOMAIN: &[u8] = b"redux-cluster auth v1";
const CLIENT_KEY: &[u8] = b"Client Key";
const SERVER_KEY: &[u8] = b"Server Key";
const DECOY_SALT: &[u8] = b"redux-cluster decoy salt v1";

type HmacSha256 = Hmac<Sha256>;

/// A fresh random 32-byte nonce, for [`Hello`](crate::protocol::Hello) and
/// [`Challenge`].
pub fn nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

/// The server refused a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The login is unknown or the proof does not match its password. The
    /// two are one variant on purpose: a peer must not learn which logins
    /// exist.
    #[error("unknown login or wrong password")]
    BadCredentials,
}

/// The client will not answer a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadChallenge {
    /// The iteration count is outside
    /// [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
    #[error(
        "server asked for {iterations} key-derivation iterations; accepted range is {min}..={max}"
    )]
    Iterations {
        /// What the server asked for.
        iterations: u32,
        /// [`MIN_ITERATIONS`].
        min: u32,
        /// [`MAX_ITERATIONS`].
        max: u32,
    },
}

/// What the server keeps for one login: nothing that reveals the password
/// or could be sent as a proof.
#[derive(Clone)]
struct Entry {
    salt: [u8; 16],
    iterations: u32,
    stored_key: Zeroizing<[u8; 32]>,
    server_key: Zeroizing<[u8; 32]>,
    read_only: bool,
}

/// The server's logins: per login a salt, an iteration count and two derived
/// keys, never the password.
///
/// Building it runs PBKDF2 once per login (a few milliseconds each at
/// [`DEFAULT_ITERATIONS`]); do it at start-up, not per connection.
#[derive(Clone)]
pub struct Logins {
    entries: HashMap<String, Entry>,
    iterations: u32,
}

impl Default for Logins {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Logins {
    // Logins and permissions only: salts and keys are nobody's business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut logins: Vec<_> = self
            .entries
            .iter()
            .map(|(login, entry)| {
                let access = if entry.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                (login.as_str(), access)
            })
            .collect();
        logins.sort_unstable();
        f.debug_struct("Logins")
            .field("iterations", &self.iterations)
            .field("logins", &logins)
            .finish()
    }
}

impl Logins {
    /// No logins, [`DEFAULT_ITERATIONS`].
    pub fn new() -> Self {
        Self::with_iterations(DEFAULT_ITERATIONS)
    }

    /// No logins, with this PBKDF2 iteration count for every login and for
    /// the decoy challenges of unknown logins.
    ///
    /// The count is fixed at construction so that all logins, real or
    /// decoy, show the same one. It is clamped into
    /// [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`]: clients refuse anything
    /// outside, so a value outside would only lock everyone out.
    pub fn with_iterations(iterations: u32) -> Self {
        Self {
            entries: HashMap::new(),
            iterations: iterations.clamp(MIN_ITERATIONS, MAX_ITERATIONS),
        }
    }

    /// Adds a login that may dispatch, replacing any login of that name.
    pub fn add(mut self, login: impl Into<String>, password: impl Into<String>) -> Self {
        self.insert(login, password, false);
        self
    }

    /// Adds a login that may follow but not dispatch, replacing any login of
    /// that name.
    pub fn add_read_only(mut self, login: impl Into<String>, password: impl Into<String>) -> Self {
        self.insert(login, password, true);
        self
    }

    /// Adds or replaces a login in place (for logins read in a loop).
    ///
    /// The password is wiped from memory once the keys are derived. A `&str`
    /// passed in is copied first and only the copy is wiped; pass a `String`
    /// to have the caller's buffer wiped too.
    pub fn insert(
        &mut self,
        login: impl Into<String>,
        password: impl Into<String>,
        read_only: bool,
    ) {
        let password = Zeroizing::new(password.into());
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let keys = Keys::derive(password.as_bytes(), &salt, self.iterations);
        self.entries.insert(
            login.into(),
            Entry {
                salt,
                iterations: self.iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
                read_only,
            },
        );
    }

    /// Removes a login; true when it existed.
    pub fn remove(&mut self, login: &str) -> bool {
        self.entries.remove(login).is_some()
    }

    /// Number of logins.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no login is configured (the server then asks for none).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The iteration count of every login and decoy challenge.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

/// The server side of the handshake. It holds no state of its own: what a
/// challenge needs until the proof arrives is in its [`Pending`].
#[derive(Debug, Clone, Copy)]
pub struct ServerAuth;

impl ServerAuth {
    /// Answers a [`Hello`](crate::protocol::Hello) carrying `login` and
    /// `client_nonce` with a challenge, and what is needed to check the proof.
    ///
    /// An unknown login gets a decoy that looks like a real challenge: the
    /// configured iteration count and a salt derived from a per-process
    /// secret and the login, so the same login always sees the same salt, as
    /// a real one does. Its [`Pending::verify`] does the same work and
    /// always fails. A peer thus cannot tell which logins exist.
    pub fn challenge(
        logins: &Logins,
        login: &str,
        client_nonce: &[u8; 32],
    ) -> (Challenge, Pending) {
        Self::challenge_with_nonce(logins, login, client_nonce, nonce())
    }

    fn challenge_with_nonce(
        logins: &Logins,
        login: &str,
        client_nonce: &[u8; 32],
        server_nonce: [u8; 32],
    ) -> (Challenge, Pending) {
        // Decoy material is made for every login, so a known login takes the
        // same path as an unknown one.
        let decoy_salt = decoy_salt(login);
        let decoy_stored = Zeroizing::new(nonce());
        let decoy_server = Zeroizing::new(nonce());
        let (salt, iterations, stored_key, server_key, read_only, known) =
            match logins.entries.get(login) {
                Some(entry) => (
                    entry.salt,
                    entry.iterations,
                    entry.stored_key.clone(),
                    entry.server_key.clone(),
                    entry.read_only,
                    true,
                ),
                None => (
                    decoy_salt,
                    logins.iterations,
                    decoy_stored,
                    decoy_server,
                    false,
                    false,
                ),
            };
        let challenge = Challenge {
            salt,
            iterations,
            nonce: server_nonce,
        };
        let pending = Pending {
            login: login.to_owned(),
            auth_message: auth_message(login, client_nonce, &server_nonce, &salt, iterations),
            stored_key,
            server_key,
            read_only,
            known,
        };
        (challenge, pending)
    }
}

/// A challenge sent, waiting for its proof. One challenge allows one
/// attempt: [`verify`](Self::verify) consumes it.
pub struct Pending {
    login: String,
    auth_message: Vec<u8>,
    stored_key: Zeroizing<[u8; 32]>,
    server_key: Zeroizing<[u8; 32]>,
    read_only: bool,
    known: bool,
}

impl fmt::Debug for Pending {
    // Whether the login exists stays out of logs too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// The login the challenge was made for.
    pub fn login(&self) -> &str {
        &self.login
    }

    /// Checks the client's proof.
    ///
    /// # Errors
    /// [`AuthFailure::BadCredentials`] when the login is unknown or the proof
    /// was not made from its password and this exchange's nonces.
    pub fn verify(self, proof: &[u8; 32]) -> Result<Admitted, AuthFailure> {
        let client_signature = hmac(&self.stored_key[..], &[&self.auth_message]);
        let client_key = Zeroizing::new(xor(proof, &client_signature));
        let candidate: [u8; 32] = Sha256::digest(&client_key[..]).into();
        // `subtle` rather than `==` or a hand-written loop: its comparison
        // goes through an optimisation barrier, so the compiler cannot turn
        // it back into an early-exit `memcmp` that leaks how many leading
        // bytes matched. The "known" flag joins in without a branch, so an
        // unknown login costs the same as a wrong password.
        let admitted =
            candidate[..].ct_eq(&self.stored_key[..]) & Choice::from(u8::from(self.known));
        if bool::from(admitted) {
            Ok(Admitted {
                signature: hmac(&self.server_key[..], &[&self.auth_message]),
                read_only: self.read_only,
                login: self.login,
            })
        } else {
            Err(AuthFailure::BadCredentials)
        }
    }
}

/// A login that passed the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Server signature over the exchange, for [`Welcome::signature`].
    pub signature: [u8; 32],
    /// Whether this login may only follow, not dispatch.
    pub read_only: bool,
    /// Who logged in.
    pub login: String,
}

impl Admitted {
    /// The [`Welcome`] to send back.
    pub fn welcome(&self) -> Welcome {
        Welcome {
            signature: self.signature,
            read_only: self.read_only,
        }
    }
}

/// A client's login and password. The password is wiped from memory when
/// this is dropped and never shown by `Debug`.
#[derive(Clone)]
pub struct Credentials {
    login: String,
    password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials for `login`. A `&str` password is copied and only the copy
    /// is wiped on drop; pass a `String` to have the buffer itself wiped.
    pub fn new(login: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            login: login.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The login, for [`Hello::login`](crate::protocol::Hello::login).
    pub fn login(&self) -> &str {
        &self.login
    }

    /// Answers `challenge` for the [`Hello`](crate::protocol::Hello) that
    /// carried this login and `client_nonce`; also returns the signature the
    /// server must send back.
    ///
    /// Runs PBKDF2 with the challenge's iteration count (milliseconds at the
    /// default, up to seconds at [`MAX_ITERATIONS`]): from async code, call it
    /// through `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// [`BadChallenge::Iterations`] when the iteration count is outside
    /// [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
    pub fn prove(
        &self,
        client_nonce: &[u8; 32],
        challenge: &Challenge,
    ) -> Result<(Proof, ExpectedServerSignature), BadChallenge> {
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&challenge.iterations) {
            return Err(BadChallenge::Iterations {
                iterations: challenge.iterations,
                min: MIN_ITERATIONS,
                max: MAX_ITERATIONS,
            });
        }
        let keys = Keys::derive(
            self.password.as_bytes(),
            &challenge.salt,
            challenge.iterations,
        );
        let message = auth_message(
            &self.login,
            client_nonce,
            &challenge.nonce,
            &challenge.salt,
            challenge.iterations,
        );
        let (proof, signature) = keys.sign(&message);
        Ok((Proof { proof }, ExpectedServerSignature(signature)))
    }
}

/// The signature a genuine server sends in its [`Welcome`] for one exchange.
pub struct ExpectedServerSignature(Zeroizing<[u8; 32]>);

impl fmt::Debug for ExpectedServerSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExpectedServerSignature(..)")
    }
}

impl ExpectedServerSignature {
    /// True when `welcome` carries the server signature for this exchange,
    /// proving the server holds this login's key. Compared in constant time.
    pub fn check(&self, welcome: &Welcome) -> bool {
        // `subtle` rather than a hand-written loop: its comparison goes
        // through an optimisation barrier, so the compiler cannot turn it
        // back into an early-exit `memcmp`.
        bool::from(self.0[..].ct_eq(&welcome.signature[..]))
    }
}

/// The keys derived from a password for one salt and iteration count.
struct Keys {
    client_key: Zeroizing<[u8; 32]>,
    stored_key: Zeroizing<[u8; 32]>,
    server_key: Zeroizing<[u8; 32]>,
}

impl Keys {
    fn derive(password: &[u8], salt: &[u8; 16], iterations: u32) -> Self {
        let mut salted = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted[..]);
        Self::from_salted_password(&salted)
    }

    fn from_salted_password(salted: &[u8; 32]) -> Self {
        let client_key = Zeroizing::new(hmac(salted, &[CLIENT_KEY]));
        let stored_key = Zeroizing::new(Sha256::digest(&client_key[..]).into());
        let server_key = Zeroizing::new(hmac(salted, &[SERVER_KEY]));
        Self {
            client_key,
            stored_key,
            server_key,
        }
    }

    /// The client proof and the expected server signature for `message`.
    fn sign(&self, message: &[u8]) -> ([u8; 32], Zeroizing<[u8; 32]>) {
        let client_signature = hmac(&self.stored_key[..], &[message]);
        let proof = xor(&self.client_key, &client_signature);
        let server_signature = Zeroizing::new(hmac(&self.server_key[..], &[message]));
        (proof, server_signature)
    }
}

/// The bytes both sides sign. Every field has a fixed length except the
/// login, which is length-prefixed, so no two exchanges share an encoding.
fn auth_message(
    login: &str,
    client_nonce: &[u8; 32],
    server_nonce: &[u8; 32],
    salt: &[u8; 16],
    iterations: u32,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + 8 + login.len() + 32 + 32 + 16 + 4);
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(&(login.len() as u64).to_be_bytes());
    message.extend_from_slice(login.as_bytes());
    message.extend_from_slice(client_nonce);
    message.extend_from_slice(server_nonce);
    message.extend_from_slice(salt);
    message.extend_from_slice(&iterations.to_be_bytes());
    message
}

/// The decoy salt of an unknown login: stable for the process's life, as a
/// real login's salt is, and unpredictable without the process's secret.
fn decoy_salt(login: &str) -> [u8; 16] {
    static SECRET: OnceLock<Zeroizing<[u8; 32]>> = OnceLock::new();
    let secret = SECRET.get_or_init(|| Zeroizing::new(nonce()));
    let mut full = hmac(&secret[..], &[DECOY_SALT, login.as_bytes()]);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&full[..16]);
    full.zeroize();
    salt
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // invariant: HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length"); // invariant
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One full exchange; returns the server's verdict and the client's
    /// check of the welcome when admitted.
    fn exchange(
        logins: &Logins,
        credentials: &Credentials,
    ) -> (Result<Admitted, AuthFailure>, Option<bool>) {
        let client_nonce = nonce();
        let (challenge, pending) =
            ServerAuth::challenge(logins, credentials.login(), &client_nonce);
        let (proof, expected) = credentials
            .prove(&client_nonce, &challenge)
            .expect("the server's challenge is in range");
        let verdict = pending.verify(&proof.proof);
        let checked = verdict
            .as_ref()
            .ok()
            .map(|admitted| expected.check(&admitted.welcome()));
        (verdict, checked)
    }

    fn logins() -> Logins {
        Logins::new()
            .add("alice", "correct horse")
            .add_read_only("bob", "battery staple")
    }

    #[test]
    fn right_password_is_admitted_and_server_signature_checks() {
        let logins = logins();
        let (verdict, checked) = exchange(&logins, &Credentials::new("alice", "correct horse"));
        let admitted = verdict.expect("right password");
        assert_eq!(admitted.login, "alice");
        assert!(!admitted.read_only);
        assert_eq!(checked, Some(true));
    }

    #[test]
    fn read_only_flag_is_carried() {
        let logins = logins();
        let (verdict, checked) = exchange(&logins, &Credentials::new("bob", "battery staple"));
        let admitted = verdict.expect("right password");
        assert_eq!(admitted.login, "bob");
        assert!(admitted.read_only);
        assert!(admitted.welcome().read_only);
        assert_eq!(checked, Some(true));
    }

    #[test]
    fn wrong_password_is_refused() {
        let logins = logins();
        let (verdict, _) = exchange(&logins, &Credentials::new("alice", "correct horse!"));
        assert_eq!(verdict, Err(AuthFailure::BadCredentials));
        // Another login's password does not open this one either.
        let (verdict, _) = exchange(&logins, &Credentials::new("alice", "battery staple"));
        assert_eq!(verdict, Err(AuthFailure::BadCredentials));
    }

    #[test]
    fn unknown_login_is_refused() {
        let logins = logins();
        let (verdict, _) = exchange(&logins, &Credentials::new("mallory", "correct horse"));
        assert_eq!(verdict, Err(AuthFailure::BadCredentials));
        // Not even by a proof of all zeros, or one made with the decoy's
        // salt and an empty password.
        let (_, pending) = ServerAuth::challenge(&logins, "mallory", &[0; 32]);
        assert_eq!(pending.verify(&[0; 32]), Err(AuthFailure::BadCredentials));
        let (verdict, _) = exchange(&logins, &Credentials::new("mallory", ""));
        assert_eq!(verdict, Err(AuthFailure::BadCredentials));
    }

    #[test]
    fn unknown_login_challenge_looks_real() {
        let logins = Logins::with_iterations(5000)
            .add("alice", "correct horse")
            .add_read_only("bob", "battery staple");
        let (real, _) = ServerAuth::challenge(&logins, "alice", &nonce());
        let (real_again, _) = ServerAuth::challenge(&logins, "alice", &nonce());
        let (decoy, _) = ServerAuth::challenge(&logins, "mallory", &nonce());
        let (decoy_again, _) = ServerAuth::challenge(&logins, "mallory", &nonce());
        let (other_decoy, _) = ServerAuth::challenge(&logins, "trudy", &nonce());

        // Same iteration count as real logins.
        assert_eq!(real.iterations, 5000);
        assert_eq!(decoy.iterations, real.iterations);
        assert_eq!(other_decoy.iterations, real.iterations);

        // Stable salt per login, as a real one is; different per login.
        assert_eq!(real.salt, real_again.salt);
        assert_eq!(decoy.salt, decoy_again.salt);
        assert_ne!(decoy.salt, other_decoy.salt);
        assert_ne!(decoy.salt, real.salt);
        assert_ne!(decoy.salt, [0; 16]);

        // Fresh server nonce each time, as for a real login.
        assert_ne!(real.nonce, real_again.nonce);
        assert_ne!(decoy.nonce, decoy_again.nonce);

        // A client answers a decoy like any challenge; the server refuses.
        let client_nonce = nonce();
        let (decoy, pending) = ServerAuth::challenge(&logins, "mallory", &client_nonce);
        let (proof, _) = Credentials::new("mallory", "x")
            .prove(&client_nonce, &decoy)
            .expect("a decoy is in range");
        assert_eq!(
            pending.verify(&proof.proof),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn replayed_proof_fails_against_a_new_server_nonce() {
        let logins = logins();
        let credentials = Credentials::new("alice", "correct horse");
        let client_nonce = nonce();
        let (challenge, pending) =
            ServerAuth::challenge_with_nonce(&logins, "alice", &client_nonce, [1; 32]);
        let (recorded, _) = credentials
            .prove(&client_nonce, &challenge)
            .expect("in range");
        pending
            .verify(&recorded.proof)
            .expect("the original exchange passes");

        // The eavesdropper replays Hello (same client nonce) and the recorded
        // proof; the server picks a new nonce.
        let (_, pending) =
            ServerAuth::challenge_with_nonce(&logins, "alice", &client_nonce, [2; 32]);
        assert_eq!(
            pending.verify(&recorded.proof),
            Err(AuthFailure::BadCredentials)
        );
        // With a random server nonce too.
        let (_, pending) = ServerAuth::challenge(&logins, "alice", &client_nonce);
        assert_eq!(
            pending.verify(&recorded.proof),
            Err(AuthFailure::BadCredentials)
        );
    }

    #[test]
    fn proof_is_bound_to_the_challenge_fields() {
        let logins = logins();
        let credentials = Credentials::new("alice", "correct horse");
        let client_nonce = nonce();
        let (challenge, _) =
            ServerAuth::challenge_with_nonce(&logins, "alice", &client_nonce, [3; 32]);
        let (proof, _) = credentials
            .prove(&client_nonce, &challenge)
            .expect("in range");

        // Another client nonce.
        let (_, pending) = ServerAuth::challenge_with_nonce(&logins, "alice", &[9; 32], [3; 32]);
        assert!(pending.verify(&proof.proof).is_err());
        // The right proof for the right exchange still passes.
        let (_, pending) =
            ServerAuth::challenge_with_nonce(&logins, "alice", &client_nonce, [3; 32]);
        assert!(pending.verify(&proof.proof).is_ok());
        // A proof answering a tampered challenge (other iterations) fails.
        let tampered = Challenge {
            iterations: challenge.iterations + 1,
            ..challenge
        };
        let (proof, _) = credentials
            .prove(&client_nonce, &tampered)
            .expect("in range");
        let (_, pending) =
            ServerAuth::challenge_with_nonce(&logins, "alice", &client_nonce, [3; 32]);
        assert!(pending.verify(&proof.proof).is_err());
    }

    #[test]
    fn tampered_server_signature_is_detected() {
        let logins = logins();
        let credentials = Credentials::new("alice", "correct horse");
        let client_nonce = nonce();
        let (challenge, pending) = ServerAuth::challenge(&logins, "alice", &client_nonce);
        let (proof, expected) = credentials
            .prove(&client_nonce, &challenge)
            .expect("in range");
        let welcome = pending.verify(&proof.proof).expect("admitted").welcome();
        assert!(expected.check(&welcome));

        for byte in [0, 17, 31] {
            let mut tampered = welcome.clone();
            tampered.signature[byte] ^= 0x01;
            assert!(!expected.check(&tampered), "flipped bit in byte {byte}");
        }
        // The "no login asked" all-zero signature is not a proof either.
        let zero = Welcome {
            signature: [0; 32],
            read_only: false,
        };
        assert!(!expected.check(&zero));
    }

    #[test]
    fn impostor_server_without_the_key_is_detected() {
        // A server that holds another password for alice signs with the
        // wrong ServerKey (and refuses the proof); a client checking a
        // signature from it would reject it.
        let genuine = Credentials::new("alice", "correct horse");
        let impostor = Logins::new().add("alice", "guess");
        let client_nonce = nonce();
        let (challenge, _) = ServerAuth::challenge(&impostor, "alice", &client_nonce);
        let (_, expected) = genuine.prove(&client_nonce, &challenge).expect("in range");
        let own = Credentials::new("alice", "guess");
        let (proof, _) = own.prove(&client_nonce, &challenge).expect("in range");
        let (_, pending) =
            ServerAuth::challenge_with_nonce(&impostor, "alice", &client_nonce, challenge.nonce);
        let impostor_welcome = pending
            .verify(&proof.proof)
            .expect("its own password")
            .welcome();
        assert!(!expected.check(&impostor_welcome));
    }

    #[test]
    fn client_refuses_weak_or_huge_iteration_counts() {
        let credentials = Credentials::new("alice", "correct horse");
        for iterations in [0, 1, MIN_ITERATIONS - 1, MAX_ITERATIONS + 1] {
            let challenge = Challenge {
                salt: [0; 16],
                iterations,
                nonce: [0; 32],
            };
            assert_eq!(
                credentials.prove(&[0; 32], &challenge).map(|_| ()),
                Err(BadChallenge::Iterations {
                    iterations,
                    min: MIN_ITERATIONS,
                    max: MAX_ITERATIONS
                })
            );
        }
        assert_eq!(Logins::with_iterations(1).iterations(), MIN_ITERATIONS);
        assert_eq!(
            Logins::with_iterations(u32::MAX).iterations(),
            MAX_ITERATIONS
        );
    }

    #[test]
    fn logins_never_hold_or_show_the_password() {
        let password = "s3cret-Password-XYZ";
        let logins = Logins::new()
            .add("alice", password)
            .add_read_only("bob", String::from(password));
        let debug = format!("{logins:?}");
        assert!(!debug.contains(password), "{debug}");
        assert!(debug.contains("alice") && debug.contains("bob"), "{debug}");

        // What is stored is salt, iterations and keys; none of it holds the
        // password's bytes.
        let mut stored = Vec::new();
        for entry in logins.entries.values() {
            stored.extend_from_slice(&entry.salt);
            stored.extend_from_slice(&entry.iterations.to_be_bytes());
            stored.extend_from_slice(&entry.stored_key[..]);
            stored.extend_from_slice(&entry.server_key[..]);
        }
        for piece in password.as_bytes().windows(4) {
            assert!(!stored.windows(4).any(|w| w == piece));
        }
        assert_eq!(logins.len(), 2);
        assert!(!logins.is_empty());
        assert!(Logins::new().is_empty());
    }

    #[test]
    fn credentials_and_secrets_never_show_in_debug() {
        let password = "s3cret-Password-XYZ";
        let credentials = Credentials::new("alice", password);
        let debug = format!("{credentials:?}");
        assert!(!debug.contains(password), "{debug}");
        assert!(debug.contains("alice"), "{debug}");

        let logins = Logins::new().add("alice", password);
        let client_nonce = nonce();
        let (challenge, pending) = ServerAuth::challenge(&logins, "alice", &client_nonce);
        let (_, expected) = credentials
            .prove(&client_nonce, &challenge)
            .expect("in range");
        assert_eq!(format!("{expected:?}"), "ExpectedServerSignature(..)");
        let pending_debug = format!("{pending:?}");
        assert!(pending_debug.contains("alice"), "{pending_debug}");
        assert!(!pending_debug.contains("known"), "{pending_debug}");
    }

    #[test]
    fn one_challenge_one_attempt_and_relogin_works() {
        let logins = logins();
        let credentials = Credentials::new("alice", "correct horse");
        for _ in 0..2 {
            let (verdict, checked) = exchange(&logins, &credentials);
            assert!(verdict.is_ok());
            assert_eq!(checked, Some(true));
        }
    }

    #[test]
    fn replacing_and_removing_logins() {
        let mut logins = logins();
        logins.insert("alice", "new password", true);
        let (verdict, _) = exchange(&logins, &Credentials::new("alice", "correct horse"));
        assert!(verdict.is_err());
        let (verdict, _) = exchange(&logins, &Credentials::new("alice", "new password"));
        assert!(verdict.expect("new password").read_only);
        assert!(logins.remove("alice"));
        assert!(!logins.remove("alice"));
        let (verdict, _) = exchange(&logins, &Credentials::new("alice", "new password"));
        assert!(verdict.is_err());
    }

    #[test]
    fn auth_message_is_unambiguous() {
        let n = [0; 32];
        let s = [0; 16];
        // A login's bytes cannot slide into the nonce fields.
        assert_ne!(
            auth_message("ab", &n, &n, &s, 4096),
            auth_message("a", &n, &n, &s, 4096)
        );
        assert_ne!(
            auth_message("a", &n, &n, &s, 4096),
            auth_message("a", &n, &n, &s, 4097)
        );
        assert_ne!(
            auth_message("a", &[1; 32], &n, &s, 4096),
            auth_message("a", &n, &[1; 32], &s, 4096)
        );
    }

    /// The key schedule matches SCRAM-SHA-256: RFC 7677 section 3, with the
    /// RFC's own AuthMessage in place of ours.
    #[test]
    fn key_schedule_matches_rfc_7677() {
        let salt: [u8; 16] = [
            91, 109, 153, 104, 157, 18, 53, 142, 236, 160, 75, 20, 18, 54, 250, 129,
        ];
        let message = b"n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let (proof, signature) = Keys::derive(b"pencil", &salt, 4096).sign(message);
        // base64 "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        let expected_proof: [u8; 32] = [
            0x74, 0x7c, 0xdb, 0x65, 0xaa, 0x56, 0x22, 0x4e, 0x23, 0x52, 0x13, 0x7e, 0x52, 0xd7,
            0xbd, 0xca, 0xd6, 0xa0, 0xf7, 0x38, 0xdf, 0x30, 0x78, 0x2c, 0xaa, 0x69, 0xa2, 0xcf,
            0xb0, 0x27, 0x75, 0x54,
        ];
        // base64 "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        let expected_signature: [u8; 32] = [
            0xea, 0xba, 0xe2, 0x4d, 0x10, 0x62, 0xdb, 0x75, 0xa9, 0x45, 0x1f, 0xf0, 0xb6, 0xea,
            0x7e, 0x98, 0xc8, 0x54, 0x65, 0x49, 0xff, 0x74, 0x1e, 0x67, 0x2d, 0x32, 0x51, 0xb2,
            0x39, 0x7d, 0xe4, 0x6e,
        ];
        assert_eq!(proof, expected_proof);
        assert_eq!(*signature, expected_signature);
    }
}
