//! The serving side of admission: hello, ban check, challenge, proof,
//! welcome or refusal. No I/O: a driver feeds it what the peer said and
//! sends what it answers.

use super::{Access, PeerKey};
use crate::auth::{Pending, ServerAuth};
use crate::protocol::{Challenge, PROTOCOL_VERSION};
use tokio::time::Instant;

/// What a peer's hello says, on any transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hello<'a> {
    /// The binary protocol's version; `None` where the transport has none
    /// of its own (the browser protocol).
    pub protocol: Option<u16>,
    /// The login the peer asks for, if any.
    pub login: Option<&'a str>,
    /// The client's nonce; `None` when missing or malformed.
    pub nonce: Option<[u8; 32]>,
}

/// Why a peer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The binary protocol versions differ.
    Version,
    /// Too many failed logins from this peer.
    Banned,
    /// The server has logins and the peer gave none.
    LoginRequired,
    /// Unknown login or wrong password.
    BadCredentials,
    /// The peer broke the handshake (wrong message, malformed field).
    Protocol,
}

/// A refusal, with what to tell the peer and what to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub reason: Reason,
    /// For the peer and the logs.
    pub detail: String,
    /// Set when a proof failed: the login tried, and the ban it caused.
    pub failed: Option<FailedLogin>,
}

/// A failed login, for the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedLogin {
    pub login: String,
    /// Seconds of the ban this failure started, if it started one.
    pub banned_for: Option<u64>,
}

impl FailedLogin {
    /// The events a failed login of `peer` makes: the failure, then the
    /// ban it started, if any.
    pub fn events(&self, peer: &str) -> Vec<crate::Event> {
        let mut out = vec![crate::Event::LoginFailed {
            peer: peer.to_owned(),
            login: self.login.clone(),
        }];
        if let Some(seconds) = self.banned_for {
            out.push(crate::Event::Banned {
                peer: peer.to_owned(),
                seconds,
            });
        }
        out
    }
}

/// An admitted peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Welcome {
    /// Whether the peer may only follow.
    pub read_only: bool,
    /// The server's proof that it holds the login's key; `None` when no
    /// login was asked.
    pub signature: Option<[u8; 32]>,
    /// Who logged in (or the name an open server was told).
    pub login: Option<String>,
}

/// What to send next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send the challenge, then feed the peer's answer to
    /// [`Admission::proof`].
    Challenge(Challenge),
    /// Send a welcome: the peer is in.
    Welcome(Welcome),
    /// Send the refusal and close.
    Refuse(Refusal),
}

enum Stage {
    Hello,
    Proof(Pending),
    Done,
}

/// One peer's way in.
pub(crate) struct Admission<'a> {
    /// `None` admits everyone (a forked worker's private channel).
    access: Option<&'a Access>,
    key: PeerKey,
    stage: Stage,
}

impl<'a> Admission<'a> {
    /// Admission for the peer `key` under `access`.
    pub fn new(access: Option<&'a Access>, key: PeerKey) -> Self {
        Self {
            access,
            key,
            stage: Stage::Hello,
        }
    }

    /// The peer's first message.
    pub fn hello(&mut self, hello: Hello<'_>, now: Instant) -> Step {
        if !matches!(self.stage, Stage::Hello) {
            return self.unexpected("a second hello");
        }
        self.stage = Stage::Done;
        if let Some(version) = hello.protocol.filter(|v| *v != PROTOCOL_VERSION) {
            return refuse(
                Reason::Version,
                format!("protocol {version} is not supported; this side speaks {PROTOCOL_VERSION}"),
            );
        }
        let open = Step::Welcome(Welcome {
            read_only: false,
            signature: None,
            login: hello.login.map(str::to_owned),
        });
        let Some(access) = self.access else {
            return open;
        };
        if let Err(b) = access.bans.lock().check(&self.key, now) {
            let detail = format!(
                "too many failed logins; refused for {} more seconds",
                b.until_secs_left
            );
            return refuse(Reason::Banned, detail);
        }
        if access.logins.is_empty() {
            return open;
        }
        let Some(login) = hello.login else {
            return refuse(Reason::LoginRequired, "this server needs a login".into());
        };
        let Some(nonce) = hello.nonce else {
            return refuse(
                Reason::Protocol,
                "hello needs a nonce of 32 bytes with a login".into(),
            );
        };
        let (challenge, pending) = ServerAuth::challenge(&access.logins, login, &nonce);
        self.stage = Stage::Proof(pending);
        Step::Challenge(challenge)
    }

    /// The peer's answer to the challenge; `None` when it was malformed,
    /// which counts as a wrong one: it is a guess all the same.
    pub fn proof(&mut self, proof: Option<&[u8; 32]>, now: Instant) -> Step {
        let Stage::Proof(pending) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return self.unexpected("a proof");
        };
        // Only reached with access: a challenge needs logins.
        let Some(access) = self.access else {
            return self.unexpected("a proof");
        };
        let login = pending.login().to_owned();
        match proof.map(|p| pending.verify(p)) {
            Some(Ok(admitted)) => {
                access.bans.lock().record_success(&self.key);
                Step::Welcome(Welcome {
                    read_only: admitted.read_only,
                    signature: Some(admitted.signature),
                    login: Some(admitted.login),
                })
            }
            _ => {
                let banned = self
                    .key
                    .bannable()
                    .then(|| access.bans.lock().record_failure(&self.key, now))
                    .flatten();
                let (reason, detail) = match &banned {
                    Some(b) => (
                        Reason::Banned,
                        format!(
                            "too many failed logins; refused for {} seconds",
                            b.until_secs_left
                        ),
                    ),
                    None => (Reason::BadCredentials, "wrong login or password".into()),
                };
                Step::Refuse(Refusal {
                    reason,
                    detail,
                    failed: Some(FailedLogin {
                        login,
                        banned_for: banned.map(|b| b.until_secs_left),
                    }),
                })
            }
        }
    }

    /// The peer sent `what` where the handshake expected something else.
    pub fn unexpected(&mut self, what: &str) -> Step {
        let expected = match self.stage {
            Stage::Hello => "hello",
            Stage::Proof(_) => "proof",
            Stage::Done => "nothing more before the welcome",
        };
        self.stage = Stage::Done;
        refuse(Reason::Protocol, format!("expected {expected}, got {what}"))
    }
}

fn refuse(reason: Reason, detail: String) -> Step {
    Step::Refuse(Refusal {
        reason,
        detail,
        failed: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credentials, Logins};
    use crate::ban::BanPolicy;
    use std::time::Duration;

    fn access() -> Access {
        Access::new(
            Logins::new().add("ann", "pw").add_read_only("bob", "pw2"),
            BanPolicy {
                max_failures: 2,
                ..BanPolicy::default()
            },
        )
    }

    fn hello(login: Option<&str>, nonce: [u8; 32]) -> Hello<'_> {
        Hello {
            protocol: Some(PROTOCOL_VERSION),
            login,
            nonce: Some(nonce),
        }
    }

    /// Runs a whole login with `password`; returns the last step.
    fn login(a: &Access, key: PeerKey, who: &str, password: &str) -> Step {
        let now = Instant::now();
        let creds = Credentials::new(who, password);
        let nonce = [7; 32];
        let mut adm = Admission::new(Some(a), key);
        let Step::Challenge(c) = adm.hello(hello(Some(who), nonce), now) else {
            panic!("expected a challenge");
        };
        let (proof, _) = creds.prove(&nonce, &c).unwrap();
        adm.proof(Some(&proof.proof), now)
    }

    fn reason(step: &Step) -> Option<Reason> {
        match step {
            Step::Refuse(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn right_password_is_welcomed_with_a_signature_and_its_access() {
        let a = access();
        let key = PeerKey::Ip("10.0.0.1".parse().unwrap());
        match login(&a, key, "bob", "pw2") {
            Step::Welcome(w) => {
                assert!(w.read_only);
                assert!(w.signature.is_some());
                assert_eq!(w.login.as_deref(), Some("bob"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_passwords_are_refused_then_banned_and_the_ban_holds() {
        let a = access();
        let key = PeerKey::Ip("10.0.0.2".parse().unwrap());
        let first = login(&a, key, "ann", "nope");
        assert_eq!(reason(&first), Some(Reason::BadCredentials));
        let Step::Refuse(r) = login(&a, key, "ann", "nope") else {
            panic!("expected a refusal")
        };
        assert_eq!(r.reason, Reason::Banned);
        let failed = r.failed.expect("a failed login");
        assert_eq!(failed.login, "ann");
        assert!(failed.banned_for.is_some());
        // Now even the right password is refused at the hello.
        let mut adm = Admission::new(Some(&a), key);
        let step = adm.hello(hello(Some("ann"), [1; 32]), Instant::now());
        assert_eq!(reason(&step), Some(Reason::Banned));
        // Another address is not.
        let other = PeerKey::Ip("10.0.0.3".parse().unwrap());
        assert!(matches!(login(&a, other, "ann", "pw"), Step::Welcome(_)));
    }

    #[test]
    fn the_servers_own_user_and_workers_are_never_banned() {
        let a = access();
        for key in [PeerKey::Owner, PeerKey::Worker] {
            for _ in 0..5 {
                let step = login(&a, key, "ann", "nope");
                assert_eq!(reason(&step), Some(Reason::BadCredentials));
            }
            assert!(matches!(login(&a, key, "ann", "pw"), Step::Welcome(_)));
        }
        assert!(a.bans.lock().is_empty());
    }

    #[test]
    fn a_malformed_proof_counts_as_a_wrong_one() {
        let a = access();
        let key = PeerKey::Uid(4242);
        let now = Instant::now();
        let mut adm = Admission::new(Some(&a), key);
        assert!(matches!(
            adm.hello(hello(Some("ann"), [0; 32]), now),
            Step::Challenge(_)
        ));
        let step = adm.proof(None, now);
        assert_eq!(reason(&step), Some(Reason::BadCredentials));
        // One challenge, one attempt.
        let again = adm.proof(Some(&[0; 32]), now);
        assert_eq!(reason(&again), Some(Reason::Protocol));
    }

    #[test]
    fn hello_rules_version_login_nonce_and_order() {
        let a = access();
        let key = PeerKey::Uid(1);
        let now = Instant::now();
        let mut adm = Admission::new(Some(&a), key);
        let old = Hello {
            protocol: Some(PROTOCOL_VERSION.wrapping_add(1)),
            ..hello(None, [0; 32])
        };
        assert_eq!(reason(&adm.hello(old, now)), Some(Reason::Version));
        let mut adm = Admission::new(Some(&a), key);
        assert_eq!(
            reason(&adm.hello(hello(None, [0; 32]), now)),
            Some(Reason::LoginRequired)
        );
        let mut adm = Admission::new(Some(&a), key);
        let no_nonce = Hello {
            nonce: None,
            ..hello(Some("ann"), [0; 32])
        };
        assert_eq!(reason(&adm.hello(no_nonce, now)), Some(Reason::Protocol));
        let mut adm = Admission::new(Some(&a), key);
        assert_eq!(
            reason(&adm.proof(Some(&[0; 32]), now)),
            Some(Reason::Protocol)
        );
        let mut adm = Admission::new(Some(&a), key);
        let Step::Refuse(r) = adm.unexpected("dispatch") else {
            panic!()
        };
        assert_eq!(r.detail, "expected hello, got dispatch");
    }

    #[test]
    fn open_servers_and_workers_are_welcomed_without_a_signature() {
        let open = Access::new(Logins::new(), BanPolicy::default());
        let now = Instant::now();
        for access in [Some(&open), None] {
            let mut adm = Admission::new(access, PeerKey::Worker);
            match adm.hello(hello(Some("w1"), [0; 32]), now) {
                Step::Welcome(w) => {
                    assert!(!w.read_only && w.signature.is_none());
                    assert_eq!(w.login.as_deref(), Some("w1"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bans_expire() {
        let a = access();
        let key = PeerKey::Ip("10.9.9.9".parse().unwrap());
        login(&a, key, "ann", "x");
        login(&a, key, "ann", "x");
        let later = Instant::now() + BanPolicy::default().ban_for + Duration::from_secs(1);
        let mut adm = Admission::new(Some(&a), key);
        assert!(matches!(
            adm.hello(hello(Some("ann"), [0; 32]), later),
            Step::Challenge(_)
        ));
    }
}
