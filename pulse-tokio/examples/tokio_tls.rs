//! pulse over TLS with tokio-rustls: a server and a client in one
//! process, with a certificate for `localhost` made at start (no files, no
//! network). The client sends three messages, prints their echoes and two
//! heartbeat RTTs measured through TLS, then closes.
//!
//! Run: `cargo run -p pulse-tokio --example tokio_tls`

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{CloseCode, Config};
use pulse_tokio::{Connection, Event};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `localhost`, made now: the server's
/// acceptor, and a connector that trusts that certificate alone.
fn tls_pair() -> Result<(TlsAcceptor, TlsConnector), Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(["localhost".to_string()])?;
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let mut trusted = RootCertStore::empty();
    trusted.add(cert.clone())?;
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key))?;
    let client = ClientConfig::builder()
        .with_root_certificates(trusted)
        .with_no_client_auth();
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (acceptor, connector) = tls_pair()?;
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("TLS pulse server on {addr}");
    let server = tokio::spawn(serve_one(listener, acceptor, config.clone()));

    let tls = connector
        .connect(ServerName::try_from("localhost")?, TcpStream::connect(addr).await?)
        .await?;
    let conn = Connection::client(tls, config).await?;
    println!("client: connected over TLS, {:?}", conn.negotiated());
    for i in 0..3u16 {
        conn.send(i, format!("secret {i}")).await?;
    }
    // Three echoes and two heartbeats to wait for.
    let (mut echoes, mut heartbeats) = (3, 2);
    while echoes + heartbeats > 0 {
        let event = conn.recv().await;
        if let Event::Message { payload, .. } = &event {
            echoes -= 1;
            println!("client: echo: {}", String::from_utf8_lossy(payload));
        } else if let Event::Rtt(sample) = &event {
            heartbeats -= usize::from(heartbeats > 0);
            println!("client: heartbeat through TLS, rtt {:?}", sample.rtt);
        } else if let Event::Closed(closed) = event {
            return Err(closed.into());
        }
    }
    println!("client: {}", conn.close(CloseCode::NORMAL, "done").await?);
    server.await??;
    Ok(())
}

/// Accepts one TLS connection and echoes pulse messages over it until the
/// client closes. A client that does not speak TLS fails the accept,
/// alone.
async fn serve_one(listener: TcpListener, acceptor: TlsAcceptor, config: Config) -> Result<(), std::io::Error> {
    let (tcp, peer) = listener.accept().await?;
    let conn = Connection::server(acceptor.accept(tcp).await?, config).map_err(std::io::Error::other)?;
    loop {
        match conn.recv().await {
            Event::Message { tag, payload } => drop(conn.send(tag, payload).await),
            Event::Closed(closed) => {
                println!("server: {peer}: {closed}");
                return Ok(());
            }
            _ => {}
        }
    }
}
