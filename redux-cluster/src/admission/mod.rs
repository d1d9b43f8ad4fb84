//! Who gets in: the login, ban and challenge rules of every transport,
//! written once and without I/O.
//!
//! - [`server::Admission`]: the serving side. The binary links
//!   (`link/serve.rs`) and the browser sessions (`ws/session.rs`) feed it
//!   what the peer said and send what it answers.
//! - [`client::ClientLogin`]: the following side (`link/follow.rs`). It
//!   refuses a server that admits a client with a password without proving
//!   it holds the key.
//!
//! The async drivers only move messages; every decision is here, tested
//! without sockets.

pub(crate) mod client;
pub(crate) mod server;

use crate::auth::Logins;
use crate::ban::{BanKey, BanPolicy, Bans};
use parking_lot::Mutex;

/// Logins and the ban list of one server.
pub(crate) struct Access {
    pub logins: Logins,
    pub bans: Mutex<Bans<PeerKey>>,
    /// When expired bans were last dropped.
    last_collect: Mutex<tokio::time::Instant>,
}

impl Access {
    pub fn new(logins: Logins, policy: BanPolicy) -> Self {
        Self {
            logins,
            bans: Mutex::new(Bans::new(policy)),
            last_collect: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Drops expired bans, at most once a minute: a server calls it for
    /// each new connection.
    pub fn collect_expired(&self, now: tokio::time::Instant) {
        let mut last = self.last_collect.lock();
        if now - *last > std::time::Duration::from_secs(60) {
            self.bans.lock().collect(now);
            *last = now;
        }
    }
}

/// Who a peer is, for bans: a Unix socket peer by its user id, a network
/// peer by its IP address (never by anything the peer says about itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    /// A process on this machine, by uid (SO_PEERCRED).
    Uid(u32),
    /// A remote host by IP address (an IPv6 address by its /64 prefix, which
    /// one host usually owns whole).
    Ip(std::net::IpAddr),
    /// A forked worker: never banned.
    Worker,
    /// A process of the server's own user (Unix sockets): never banned. It
    /// could read the server's memory anyway (ptrace, /proc), so a ban
    /// protects nothing, and a ban by uid would lock out every correctly
    /// configured process of that user along with the faulty one.
    Owner,
}

impl PeerKey {
    /// The ban key for a remote address.
    pub fn ip(addr: std::net::IpAddr) -> Self {
        match addr {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => PeerKey::Ip(std::net::IpAddr::V4(v4)),
                None => {
                    let mut o = v6.octets();
                    o[8..].fill(0);
                    PeerKey::Ip(std::net::IpAddr::V6(o.into()))
                }
            },
            v4 => PeerKey::Ip(v4),
        }
    }

    /// Whether failed logins count against this peer.
    pub fn bannable(&self) -> bool {
        self.ban_key().is_some()
    }

    /// The public form of a bannable key.
    pub fn ban_key(&self) -> Option<BanKey> {
        match *self {
            PeerKey::Uid(uid) => Some(BanKey::Uid(uid)),
            PeerKey::Ip(ip) => Some(BanKey::Ip(ip)),
            PeerKey::Worker | PeerKey::Owner => None,
        }
    }

    /// The key of a public ban key (an IPv6 address by its /64).
    pub fn from_ban_key(key: BanKey) -> Self {
        match key {
            BanKey::Uid(uid) => PeerKey::Uid(uid),
            BanKey::Ip(ip) => PeerKey::ip(ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn ipv6_peers_are_keyed_by_their_64_and_mapped_v4_by_the_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(PeerKey::ip(a), PeerKey::ip(b));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(
            PeerKey::ip(mapped),
            PeerKey::Ip("10.0.0.7".parse().unwrap())
        );
        assert!(!PeerKey::Owner.bannable() && !PeerKey::Worker.bannable());
        assert!(PeerKey::Uid(1000).bannable());
    }
}
