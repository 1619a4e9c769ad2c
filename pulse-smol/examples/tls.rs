//! pulse over TLS: a server and a client in one process, with a
//! certificate for `localhost` made at start (no files, no network). The
//! client sends three messages, prints their echoes and two heartbeat
//! RTTs measured through TLS, then closes.
//!
//! Run: `cargo run -p pulse-smol --example tls`

use std::sync::Arc;
use std::time::Duration;

use futures_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use futures_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::{TlsAcceptor, TlsConnector};
use pulse_proto::{CloseCode, Config};
use pulse_smol::{Connection, Event};
use smol::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A self-signed certificate, trusted by the client alone.
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let server_tls = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let client_tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));

    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("TLS pulse server on {addr}");
        let acceptor = TlsAcceptor::from(Arc::new(server_tls));
        let server_config = config.clone();
        smol::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                let (acceptor, config) = (acceptor.clone(), server_config.clone());
                smol::spawn(async move {
                    // A client that does not speak TLS fails here, alone.
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => return println!("{peer}: TLS refused: {e}"),
                    };
                    let (conn, driver) = Connection::server(tls, config).expect("a valid config");
                    smol::spawn(driver).detach();
                    loop {
                        match conn.recv().await {
                            Event::Message { tag, payload } => {
                                let _ = conn.send(tag, payload).await;
                            }
                            Event::Closed(closed) => break println!("server: {peer}: {closed}"),
                            _ => {}
                        }
                    }
                })
                .detach();
            }
        })
        .detach();

        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost")?;
        let tls = TlsConnector::from(Arc::new(client_tls)).connect(name, tcp).await?;
        let (conn, driver) = Connection::client(tls, config).await?;
        smol::spawn(driver).detach();
        println!("client: connected over TLS, {:?}", conn.negotiated());
        for i in 0..3u16 {
            conn.send(i, format!("secret {i}")).await?;
        }
        let (mut echoes, mut rtts) = (0, 0);
        while echoes < 3 || rtts < 2 {
            match conn.recv().await {
                Event::Message { tag, payload } => {
                    echoes += 1;
                    println!("client: echo {tag}: {}", String::from_utf8_lossy(&payload));
                }
                Event::Rtt(sample) => {
                    rtts += 1;
                    println!("client: heartbeat through TLS, rtt {:?}", sample.rtt);
                }
                Event::Closed(closed) => return Err(closed.into()),
                _ => {}
            }
        }
        let closed = conn.close(CloseCode::NORMAL, "done").await?;
        println!("client: {closed}");
        // Let the server print its side.
        async_io::Timer::after(Duration::from_millis(100)).await;
        Ok(())
    })
}
