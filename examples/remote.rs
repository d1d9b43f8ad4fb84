//! A server and a client over QUIC on loopback: the server generates a
//! self-signed certificate (kept in `./remote-identity/` so its fingerprint
//! survives restarts) and prints its fingerprint; the client pins it.
//!
//! Run: `cargo run --release --example remote`

use redux_cluster::client::ConnectConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster::transport::tls::{ServerIdentity, Trust};
use redux_cluster_examples::{TaskAction, Tasks};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("remote: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let identity = ServerIdentity::load_or_generate("remote-identity", &["localhost".to_string()])?;
    let fingerprint = identity.fingerprint();
    println!("server certificate SHA-256: {fingerprint}");

    let store = Tasks::start_master()?;
    let server = store
        .serve(ServeConfig::quic("127.0.0.1:0".parse()?, identity).login("test2", "123456"))
        .await?;
    let addr = server.local_addr().ok_or("no address")?;
    println!("serving on quic://{addr}");

    // In real use this is another process on another host; `relay(false)`
    // lets it share this process with the server's store of the same name.
    let client = Tasks::connect(
        ConnectConfig::quic(addr, "localhost", Trust::Fingerprint(fingerprint))
            .login("test2", "123456")
            .relay(false),
    )?;
    client.ready().await?;
    println!("client joined: roles {:?}", client.roles());

    for i in 0..5 {
        let seq = client
            .commit(TaskAction::SetVersion(format!("remote-{i}")))
            .await?;
        println!(
            "client committed seq {seq}: server sees {:?}",
            store.state().version
        );
    }
    let wrong = Tasks::connect(
        ConnectConfig::quic(
            addr,
            "localhost",
            Trust::Fingerprint(ServerIdentity::generate(&["localhost".into()])?.fingerprint()),
        )
        .relay(false),
    )?;
    match wrong.ready().await {
        Ok(()) => println!("unexpected: a wrong pin was accepted"),
        Err(e) => println!("a client pinning another certificate is refused: {e}"),
    }
    Ok(())
}
