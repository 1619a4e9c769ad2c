//! TLS for tests: a certificate for `localhost` made at run time (no
//! files, no network), and the rustls configs of both ends.

use std::sync::Arc;

use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use futures_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::{TlsAcceptor, TlsConnector};

/// A server's certificate and key.
#[derive(Debug)]
pub struct Identity {
    /// The self-signed certificate, which clients trust.
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// A fresh self-signed certificate for `localhost`.
    pub fn localhost() -> Identity {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        Identity {
            cert: made.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
        }
    }

    /// Accepts TLS with this identity (futures-rustls, for pulse-smol).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config())
    }

    /// Accepts TLS with this identity (tokio-rustls, for pulse-tokio).
    pub fn tokio_acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config())
    }

    /// The rustls server config with this identity.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .expect("server config");
        Arc::new(config)
    }
}

/// Connects with TLS, trusting only `cert` (futures-rustls).
pub fn connector(cert: &CertificateDer<'static>) -> TlsConnector {
    TlsConnector::from(client_config(cert))
}

/// Connects with TLS, trusting only `cert` (tokio-rustls).
pub fn tokio_connector(cert: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(client_config(cert))
}

/// The rustls client config that trusts only `cert`.
pub fn client_config(cert: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("trust the certificate");
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The name the certificate is for.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a DNS name")
}

/// A certificate as one line of hex, to pass between processes.
pub fn to_hex(cert: &CertificateDer<'_>) -> String {
    cert.iter().map(|b| format!("{b:02x}")).collect()
}

/// The certificate from [`to_hex`]'s line.
pub fn from_hex(hex: &str) -> CertificateDer<'static> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    CertificateDer::from(bytes)
}
