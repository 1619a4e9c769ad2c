//! `pulse ping --tls` against `pulse serve --tls`, with certificates made
//! at run time and written as PEM files, as an operator would pass them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{run, scratch, write, Pulse};

const PROBE: Duration = Duration::from_secs(10);

/// PEM, the base64 of DER between armour lines (written here: the test
/// needs no PEM crate for it).
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A self-signed certificate for `localhost` in `dir`: (cert, key) paths.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    write(&cert, &pem("CERTIFICATE", made.cert.der()));
    write(&key, &pem("PRIVATE KEY", &made.signing_key.serialize_der()));
    (cert.to_str().unwrap().into(), key.to_str().unwrap().into())
}

#[test]
fn ping_over_tls_verifies_the_server_with_the_ca_file() {
    let dir = scratch("tls");
    let (cert, key) = certificate(&dir, "server");
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tls", "--cert", &cert, "--key", &key]);
    let addr = serve.wait_addr("listening (tls) on").to_string();
    let (code, out) = run(
        &[
            "ping",
            "--tls",
            "--ca",
            &cert,
            "--server-name",
            "localhost",
            "--count",
            "2",
            "--interval",
            "100ms",
            "--timeout",
            "5s",
            &addr,
        ],
        PROBE,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(tls)") && out.contains("seq=2 rtt="), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_the_ca_does_not_vouch_for_is_refused_with_a_clear_reason() {
    let dir = scratch("tls-wrong-ca");
    let (cert, key) = certificate(&dir, "server");
    let (other, _) = certificate(&dir, "other");
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tls", "--cert", &cert, "--key", &key]);
    let addr = serve.wait_addr("listening (tls) on").to_string();
    let ping = |ca: &str, name: &str| {
        run(
            &[
                "ping",
                "--tls",
                "--ca",
                ca,
                "--server-name",
                name,
                "--count",
                "1",
                "--timeout",
                "5s",
                &addr,
            ],
            PROBE,
        )
    };
    let (code, out) = ping(&other, "localhost");
    assert_eq!(code, 1, "{out}");
    // (Both certificates carry rcgen's default subject, so webpki takes
    // the CA for the issuer and finds the signature wrong: BadSignature.)
    assert!(out.contains("TLS handshake failed: invalid peer certificate"), "{out}");
    // The right CA, the wrong name: refused too.
    let (code, out) = ping(&cert, "elsewhere.example");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not valid for name \"elsewhere.example\""), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_plain_ping_at_a_tls_server_fails_cleanly_and_the_server_serves_on() {
    // No files: the server makes its certificate and shows its fingerprint.
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tls"]);
    let fingerprint = serve.wait_for(PROBE, "the fingerprint", |line| {
        line.strip_prefix("tls: self-signed certificate for localhost, 127.0.0.1, SHA-256 fingerprint ")
            .map(str::to_string)
    });
    assert_eq!(
        fingerprint.split(':').filter(|b| b.len() == 2).count(),
        32,
        "{fingerprint}"
    );
    let addr = serve.wait_addr("listening (tls) on").to_string();

    let (code, out) = run(&["ping", "--count", "1", "--timeout", "5s", &addr], PROBE);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unreachable"), "{out}");
    serve.wait_for(PROBE, "the refused handshake", |line| {
        line.contains("TLS refused").then_some(())
    });
    // The same server still serves, to a client that speaks TLS.
    let (code, out) = run(
        &["ping", "--tls", "--insecure", "--count", "1", "--timeout", "5s", &addr],
        PROBE,
    );
    assert_eq!(code, 0, "{out}");
    // Unverified, but an operator can compare what the server printed.
    assert!(out.contains(&format!("certificate SHA-256 {fingerprint}\n")), "{out}");
    assert!(serve.child.try_wait().unwrap().is_none());
}

#[test]
fn tls_arguments_that_do_not_fit_are_usage_errors() {
    let addr = "127.0.0.1:9";
    let (code, _) = run(&["ping", "--tls", "--count", "1", addr], PROBE);
    assert_eq!(code, 2, "--tls without --ca or --insecure");
    let (code, _) = run(&["ping", "--tls", "--udp", addr], PROBE);
    assert_eq!(code, 2);
    let (code, _) = run(&["ping", "--ca", "x.pem", addr], PROBE);
    assert_eq!(code, 2, "--ca without --tls");
    let (code, _) = run(&["serve", "127.0.0.1:0", "--tls", "--cert", "x.pem"], PROBE);
    assert_eq!(code, 2, "--cert without --key");
    let (code, _) = run(
        &[
            "serve",
            "127.0.0.1:0",
            "--tls",
            "--cert",
            "/nonexistent.pem",
            "--key",
            "/nonexistent.key",
        ],
        PROBE,
    );
    assert_eq!(code, 2, "unreadable files");
}
