//! The following side of admission: send a hello, answer a challenge,
//! and accept a welcome only from a server that proved it holds the key.
//! No I/O; PBKDF2 (the proof) is left to the driver, which runs it off the
//! runtime's threads.

use crate::auth::{Credentials, ExpectedServerSignature};
use crate::connection::LinkError;
use crate::error::JoinError;
use crate::protocol::{Challenge, Hello, Message, RefuseReason, PROTOCOL_VERSION};

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum ClientStep {
    /// Compute the proof for this challenge (`Credentials::prove`), send
    /// it, and pass the expected signature to [`ClientLogin::proved`].
    Prove(Challenge),
    /// Admitted.
    Admitted,
}

/// One login attempt of a follower.
pub(crate) struct ClientLogin<'a> {
    creds: Option<&'a Credentials>,
    nonce: [u8; 32],
    /// The server's signature to expect, once a proof was sent.
    expected: Option<ExpectedServerSignature>,
    challenged: bool,
}

impl<'a> ClientLogin<'a> {
    /// A login with `creds`, or none.
    pub fn new(creds: Option<&'a Credentials>) -> Self {
        Self {
            creds,
            nonce: rand::random(),
            expected: None,
            challenged: false,
        }
    }

    /// The first message.
    pub fn hello(&self) -> Message<'a> {
        Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            login: self.creds.map(Credentials::login),
            nonce: self.nonce,
        })
    }

    /// This attempt's nonce, which the proof binds.
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }

    /// The proof for the challenge was sent; a genuine server answers with
    /// `expected`.
    pub fn proved(&mut self, expected: ExpectedServerSignature) {
        self.expected = Some(expected);
    }

    /// What the server said; `None` when it closed the link.
    pub fn on_message(&mut self, msg: Option<Message<'_>>) -> Result<ClientStep, LinkError> {
        match msg {
            Some(Message::Welcome(w)) => {
                let authentic = match &self.expected {
                    Some(sig) => sig.check(&w),
                    // With a password, a welcome without a challenge is a
                    // server that never proved it holds the login's key: an
                    // impostor could admit anyone.
                    None => self.creds.is_none(),
                };
                if !authentic {
                    return Err(LinkError::ServerNotAuthentic);
                }
                Ok(ClientStep::Admitted)
            }
            Some(Message::Challenge(c)) if !self.challenged => {
                self.challenged = true;
                if self.creds.is_none() {
                    return Err(LinkError::AuthRefused(Box::new(JoinError::LoginRequired)));
                }
                Ok(ClientStep::Prove(c))
            }
            Some(Message::Refuse(r)) => {
                let detail = r.detail.to_string();
                let typed = match r.reason {
                    RefuseReason::BadCredentials => JoinError::WrongCredentials,
                    RefuseReason::Banned => JoinError::Banned { detail },
                    RefuseReason::LoginRequired => JoinError::LoginRequired,
                    // Refused again next time: it ends the link for good.
                    RefuseReason::Version => JoinError::Refused(detail),
                    RefuseReason::Unavailable => return Err(LinkError::Unavailable(detail)),
                };
                Err(LinkError::AuthRefused(Box::new(typed)))
            }
            Some(m) => Err(LinkError::Protocol(format!(
                "expected welcome, got {}",
                m.kind()
            ))),
            None => Err(LinkError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::server::{self, Admission, Step};
    use crate::admission::{Access, PeerKey};
    use crate::auth::Logins;
    use crate::ban::BanPolicy;
    use crate::protocol::{Proof, Refuse, Welcome};
    use tokio::time::Instant;

    fn access() -> Access {
        Access::new(Logins::new().add("ann", "pw"), BanPolicy::default())
    }

    /// Plays a client against a server admission, both sides without I/O.
    fn exchange(creds: Option<&Credentials>, a: &Access) -> Result<(), LinkError> {
        let now = Instant::now();
        let mut client = ClientLogin::new(creds);
        let mut adm = Admission::new(Some(a), PeerKey::Uid(77));
        let Message::Hello(h) = client.hello() else {
            unreachable!()
        };
        let mut step = adm.hello(
            server::Hello {
                protocol: Some(h.protocol),
                login: h.login,
                nonce: Some(h.nonce),
            },
            now,
        );
        loop {
            let reply = match step {
                Step::Challenge(c) => Message::Challenge(c),
                Step::Welcome(w) => Message::Welcome(Welcome {
                    signature: w.signature.unwrap_or_default(),
                    read_only: w.read_only,
                }),
                Step::Refuse(r) => {
                    let reason = match r.reason {
                        server::Reason::BadCredentials => RefuseReason::BadCredentials,
                        server::Reason::LoginRequired => RefuseReason::LoginRequired,
                        server::Reason::Banned => RefuseReason::Banned,
                        _ => RefuseReason::Version,
                    };
                    return client
                        .on_message(Some(Message::Refuse(Refuse {
                            reason,
                            detail: &r.detail,
                        })))
                        .map(|_| ());
                }
            };
            match client.on_message(Some(reply))? {
                ClientStep::Admitted => return Ok(()),
                ClientStep::Prove(c) => {
                    let (proof, sig) = creds.unwrap().prove(client.nonce(), &c).unwrap();
                    client.proved(sig);
                    step = adm.proof(Some(&proof.proof), now);
                }
            }
        }
    }

    #[test]
    fn right_password_logs_in_and_checks_the_server() {
        let a = access();
        let creds = Credentials::new("ann", "pw");
        assert!(exchange(Some(&creds), &a).is_ok());
    }

    #[test]
    fn refusals_map_to_typed_join_errors() {
        let a = access();
        let wrong = Credentials::new("ann", "nope");
        match exchange(Some(&wrong), &a) {
            Err(LinkError::AuthRefused(e)) => assert!(matches!(*e, JoinError::WrongCredentials)),
            other => panic!("{other:?}"),
        }
        match exchange(None, &a) {
            Err(LinkError::AuthRefused(e)) => assert!(matches!(*e, JoinError::LoginRequired)),
            other => panic!("{other:?}"),
        }
    }

    /// A challenge made up without the stored key.
    fn made_up_challenge() -> Challenge {
        Challenge {
            salt: [3; 16],
            iterations: crate::auth::MIN_ITERATIONS,
            nonce: [4; 32],
        }
    }

    #[test]
    fn an_impostor_that_skips_the_challenge_is_caught() {
        let creds = Credentials::new("ann", "pw");
        let mut client = ClientLogin::new(Some(&creds));
        let welcome = Message::Welcome(Welcome {
            signature: [0; 32],
            read_only: false,
        });
        assert!(matches!(
            client.on_message(Some(welcome)),
            Err(LinkError::ServerNotAuthentic)
        ));
    }

    #[test]
    fn an_impostor_that_challenges_but_cannot_sign_is_caught() {
        let creds = Credentials::new("ann", "pw");
        let mut client = ClientLogin::new(Some(&creds));
        let c = made_up_challenge();
        let ClientStep::Prove(c) = client.on_message(Some(Message::Challenge(c))).unwrap() else {
            panic!("expected to prove")
        };
        let (_proof, sig): (Proof, _) = creds.prove(client.nonce(), &c).unwrap();
        client.proved(sig);
        let forged = Message::Welcome(Welcome {
            signature: [9; 32],
            read_only: false,
        });
        assert!(matches!(
            client.on_message(Some(forged)),
            Err(LinkError::ServerNotAuthentic)
        ));
    }

    #[test]
    fn a_second_challenge_or_a_closed_link_is_an_error() {
        let creds = Credentials::new("ann", "pw");
        let mut client = ClientLogin::new(Some(&creds));
        let c = made_up_challenge();
        assert!(client
            .on_message(Some(Message::Challenge(c.clone())))
            .is_ok());
        assert!(matches!(
            client.on_message(Some(Message::Challenge(c))),
            Err(LinkError::Protocol(_))
        ));
        assert!(matches!(client.on_message(None), Err(LinkError::Closed)));
    }
}
