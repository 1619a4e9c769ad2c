//! TLS for `ping --tls` and `serve --tls`: rustls configurations from PEM
//! files, a self-signed certificate made at start, and the test-only
//! verifier behind `--insecure`. pulse itself runs unchanged over the TLS
//! stream (pulse-smol takes any futures-io stream).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use futures_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use futures_rustls::rustls::crypto::{self, ring, WebPkiSupportedAlgorithms};
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use futures_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

/// A server's TLS setup, and what to tell the operator about it.
pub struct Server {
    pub config: Arc<ServerConfig>,
    /// For a certificate made at start: the names it is for and its
    /// SHA-256 fingerprint, which clients can compare.
    pub generated: Option<(Vec<String>, String)>,
}

/// The certificate chain and key of PEM files, or (with neither) a
/// self-signed certificate for `localhost` and `addr`'s IP made now.
pub fn server(cert: Option<&Path>, key: Option<&Path>, addr: SocketAddr) -> Result<Server, String> {
    let (chain, key, generated) = match (cert, key) {
        (Some(cert), Some(key)) => (read_chain(cert)?, read_key(key)?, None),
        (None, None) => {
            let mut names = vec!["localhost".to_string()];
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            let made = rcgen::generate_simple_self_signed(names.clone())
                .map_err(|e| format!("cannot make a certificate: {e}"))?;
            let cert = made.cert.der().clone();
            let fingerprint = fingerprint(&cert);
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            (vec![cert], key, Some((names, fingerprint)))
        }
        _ => return Err("--cert and --key go together".into()),
    };
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS server: {e}"))?;
    Ok(Server {
        config: Arc::new(config),
        generated,
    })
}

/// A client that trusts the certificates of the PEM file `ca`, or (with
/// `insecure`) any certificate at all.
pub fn client(ca: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder();
    let config = match (ca, insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Insecure(
                ring::default_provider().signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            for cert in read_chain(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a CA certificate: {e}", ca.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (None, false) => {
            return Err("--tls needs --ca FILE to verify the server (or --insecure, for testing only)".into())
        }
    };
    Ok(Arc::new(config))
}

/// The name to verify the server's certificate against: `--server-name`,
/// or the host of HOST:PORT.
pub fn server_name(given: Option<&str>, addr: &str) -> Result<ServerName<'static>, String> {
    let host = match given {
        Some(name) => name,
        None => match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        },
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|_| format!("`{host}` is not a server name (try --server-name)"))
}

/// SHA-256 of a certificate, as `openssl x509 -fingerprint -sha256` shows
/// it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("{}: no PEM private key in it: {e}", path.display()))
}

/// Accepts any certificate, for `--insecure`: the connection is encrypted
/// but the server unauthenticated. Signatures are still checked, so the
/// handshake proves the server holds the key of the certificate it sent.
#[derive(Debug)]
struct Insecure(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, futures_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, futures_rustls::rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, futures_rustls::rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_unless_given() {
        assert_eq!(
            server_name(None, "example.org:7000").unwrap(),
            ServerName::try_from("example.org").unwrap()
        );
        assert!(matches!(
            server_name(None, "127.0.0.1:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name(None, "[::1]:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name(Some("localhost"), "127.0.0.1:7000").unwrap(),
            ServerName::try_from("localhost").unwrap()
        );
        assert!(server_name(Some("not a name"), "x:1").is_err());
    }

    #[test]
    fn a_client_without_a_ca_or_insecure_is_refused() {
        assert!(client(None, false).unwrap_err().contains("--ca"));
        assert!(client(None, true).is_ok());
    }

    #[test]
    fn a_generated_certificate_s_fingerprint_is_sha256_in_colon_hex() {
        let server = server(None, None, "127.0.0.1:0".parse().unwrap()).unwrap();
        let (names, fingerprint) = server.generated.unwrap();
        assert_eq!(names, ["localhost", "127.0.0.1"]);
        assert_eq!(fingerprint.len(), 32 * 3 - 1);
        assert!(fingerprint.split(':').all(|b| b.len() == 2));
    }
}
