//! A rolling upgrade with real processes: a journaling master and three
//! clients on v1 commit; the clients are replaced one by one by v2
//! processes, which follow the v1 master (converting what it sends) while
//! their own commits wait; then the master is killed with SIGKILL and
//! restarted as v2 from its journal (which it converts). Nothing
//! acknowledged is lost or applied twice, the waiting commits go through,
//! and every copy ends equal.

use redux_cluster_tests::Proc;
use serial_test::serial;
use std::time::Duration;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(180);

/// Commits per client process.
const K: u64 = 200;

fn upgrade(args: &[&str]) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_upgrade"), args[0], &args[1..])
}

async fn expect_line(p: &mut Proc, want: &str) {
    let l = p.line().await;
    assert!(l.starts_with(want), "expected `{want}`, got `{l}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn clients_then_the_master_upgrade_one_by_one_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 path").to_owned();
    let sock = format!("{d}/sock");
    let total = 6 * K;
    let (k, t) = (K.to_string(), total.to_string());
    tokio::time::timeout(LIMIT, async {
        let mut master = upgrade(&["master", "v1", &d, "0"]);
        expect_line(&mut master, "serving").await;
        let mut v2_clients = Vec::new();
        for (i, slot) in ["1", "2", "3"].into_iter().enumerate() {
            let before = i as u64 * K;
            // A v1 client commits its share; every commit is acknowledged.
            let mut old = upgrade(&["client", "v1", &sock, slot, &k, &before.to_string(), "0"]);
            expect_line(&mut old, "following").await;
            expect_line(&mut old, &format!("acked {K}")).await;
            let done = old.line().await;
            old.exit().await;
            // Its replacement on v2 follows the v1 master, converting what
            // it is sent: it shows the same state as the v1 client did.
            let now = before + K;
            let mut new = upgrade(&["client", "v2", &sock, slot, &k, &now.to_string(), &t]);
            let following = new.line().await;
            assert_eq!(
                following.strip_prefix("following "),
                done.strip_prefix("final "),
                "the v2 copy of the v1 master's state"
            );
            v2_clients.push(new);
        }
        // The master dies the hard way and comes back as v2 from its
        // journal: the v1 commits (all acknowledged, so on disk) are
        // converted, and the v2 clients' waiting commits now go through.
        master.child.start_kill().expect("kill -9");
        master.child.wait().await.expect("wait");
        let mut master = upgrade(&["master", "v2", &d, &t]);
        expect_line(&mut master, "serving").await;
        let mut finals = Vec::new();
        for c in &mut v2_clients {
            expect_line(c, &format!("acked {K}")).await;
        }
        for c in &mut v2_clients {
            finals.push(c.line().await);
        }
        let master_final = master.line().await;
        let fields: Vec<&str> = master_final.split_whitespace().collect();
        // final total by1 by2 by3 digest seq
        assert_eq!(fields[0], "final", "{master_final}");
        assert_eq!(fields[1], t, "every commit applied once: {master_final}");
        for by in &fields[2..5] {
            assert_eq!(*by, (2 * K).to_string(), "{master_final}");
        }
        for f in finals {
            assert_eq!(f, master_final, "a client's copy differs from the master's");
        }
        for c in v2_clients {
            c.exit().await;
        }
        // A client still on v1 is now told to upgrade.
        let mut late = upgrade(&["client", "v1", &sock, "1", "1", "0", "0"]);
        let l = late.line().await;
        assert!(
            l.starts_with("error: ") && l.contains("earlier version") && l.contains("upgrade"),
            "{l}"
        );
        late.exit().await;
    })
    .await
    .expect("within the limit");
}
