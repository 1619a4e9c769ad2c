//! HTTP checks: the request the monitor wants sent, and the verdict on the
//! response, parsed with httparse. The driver moves bytes; it never reads
//! a status code.

use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

/// An HTTP/1.1 health check: one request, and the status codes that pass.
///
/// The request asks the server to close the connection after answering,
/// so each check is one short connection, as HAProxy's are. Interim
/// answers before the final one (`100 Continue`, `103 Early Hints`) are
/// skipped and the final status judged — within the monitor's
/// `max_response_bytes` and its probe timeout, so a server that only ever
/// sends interim answers fails the check.
///
/// # Examples
///
/// ```
/// use pulse_monitor::HttpCheck;
///
/// let check = HttpCheck::get("/healthz").unwrap().host("api.internal").unwrap().expect(200..=204);
/// assert_eq!(
///     check.request(),
///     b"GET /healthz HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: pulse-monitor\r\nConnection: close\r\n\r\n"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    method: &'static str,
    path: Vec<u8>,
    host: Option<Vec<u8>>,
    expect: RangeInclusive<u16>,
    request: Vec<u8>,
}

/// A request that cannot be written as HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpCheckError {
    /// The path must start with `/` and hold no space or control character.
    InvalidPath,
    /// The host must hold no space or control character.
    InvalidHost,
}

impl fmt::Display for HttpCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpCheckError::InvalidPath => "an HTTP check path must start with '/' and hold no space or control byte",
            HttpCheckError::InvalidHost => "an HTTP check host must hold no space or control byte",
        })
    }
}

/// What a (possibly partial) response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// The status line and headers are not all here yet.
    Incomplete,
    /// An expected status.
    Passed(u16),
    /// A status outside the expected range.
    UnexpectedStatus(u16),
    /// Not an HTTP/1.x response.
    Invalid,
}

/// An interim answer (RFC 9110 §15.2), to skip: `100 Continue`, `102
/// Processing`, `103 Early Hints`… — not `101 Switching Protocols`, which
/// ends HTTP on the connection (and answers an upgrade this check never
/// asks for).
fn is_interim(code: u16) -> bool {
    (100..200).contains(&code) && code != 101
}

/// The length of a head whose headers httparse could not all hold: up to
/// its empty line (CRLF or a bare LF, as httparse accepts).
fn head_end(response: &[u8]) -> Option<usize> {
    let at = response.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = response.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
    match (at, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| b > b' ' && b != 0x7F)
}

impl HttpCheck {
    /// A `GET` of `path`, passing on 2xx and 3xx (HAProxy's rule).
    pub fn get(path: &str) -> Result<HttpCheck, HttpCheckError> {
        Self::new("GET", path)
    }

    /// A `HEAD` of `path`, for servers whose health page has a body.
    pub fn head(path: &str) -> Result<HttpCheck, HttpCheckError> {
        Self::new("HEAD", path)
    }

    fn new(method: &'static str, path: &str) -> Result<HttpCheck, HttpCheckError> {
        if !path.starts_with('/') || !is_token(path.as_bytes()) {
            return Err(HttpCheckError::InvalidPath);
        }
        let mut check = HttpCheck {
            method,
            path: path.as_bytes().to_vec(),
            host: None,
            expect: 200..=399,
            request: Vec::new(),
        };
        check.build();
        Ok(check)
    }

    /// Sends `Host: host` (without it, HTTP/1.1 servers may answer 400).
    pub fn host(mut self, host: &str) -> Result<HttpCheck, HttpCheckError> {
        if !is_token(host.as_bytes()) {
            return Err(HttpCheckError::InvalidHost);
        }
        self.host = Some(host.as_bytes().to_vec());
        self.build();
        Ok(self)
    }

    /// The status codes that pass the check.
    pub fn expect(mut self, codes: RangeInclusive<u16>) -> HttpCheck {
        self.expect = codes;
        self
    }

    /// The request bytes, the same for every check.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    fn build(&mut self) {
        let mut r = Vec::with_capacity(96 + self.path.len());
        r.extend_from_slice(self.method.as_bytes());
        r.push(b' ');
        r.extend_from_slice(&self.path);
        r.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(host) = &self.host {
            r.extend_from_slice(b"Host: ");
            r.extend_from_slice(host);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"User-Agent: pulse-monitor\r\nConnection: close\r\n\r\n");
        self.request = r;
    }

    /// Judges the response bytes received so far: interim (1xx) answers
    /// are skipped, the final one decides.
    pub(crate) fn judge(&self, response: &[u8]) -> Judgement {
        let mut rest = response;
        // Each interim answer skipped is at least one byte, so this ends;
        // `max_response_bytes` bounds the whole, so a server that answers
        // only ever 1xx fails the check (and the probe's timeout bounds its
        // time).
        for _ in 0..=response.len() {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            let head_len = match parsed.parse(rest) {
                Ok(httparse::Status::Partial) => return Judgement::Incomplete,
                Ok(httparse::Status::Complete(len)) => Some(len),
                // The status is known; the end of the head is found below
                // if it is needed.
                Err(httparse::Error::TooManyHeaders) => None,
                Err(_) => return Judgement::Invalid,
            };
            match parsed.code {
                Some(code) if is_interim(code) => match head_len.or_else(|| head_end(rest)) {
                    Some(len) => rest = &rest[len..],
                    None => return Judgement::Incomplete,
                },
                code => return self.status(code),
            }
        }
        Judgement::Invalid
    }

    fn status(&self, code: Option<u16>) -> Judgement {
        match code {
            Some(code) if self.expect.contains(&code) => Judgement::Passed(code),
            Some(code) => Judgement::UnexpectedStatus(code),
            None => Judgement::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn a_response_is_judged_whole_or_in_any_chunks() {
        let check = HttpCheck::get("/health").unwrap();
        for cut in 0..OK.len() {
            let j = check.judge(&OK[..cut]);
            let header_end = OK.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            if cut < header_end {
                assert_eq!(j, Judgement::Incomplete, "cut at {cut}");
            } else {
                assert_eq!(j, Judgement::Passed(200), "cut at {cut}");
            }
        }
    }

    #[test]
    fn an_unexpected_status_or_garbage_fails() {
        let check = HttpCheck::get("/health").unwrap().expect(200..=200);
        assert_eq!(
            check.judge(b"HTTP/1.1 503 Busy\r\n\r\n"),
            Judgement::UnexpectedStatus(503)
        );
        assert_eq!(
            check.judge(b"HTTP/1.1 302 Found\r\n\r\n"),
            Judgement::UnexpectedStatus(302)
        );
        assert_eq!(check.judge(b"SSH-2.0-OpenSSH_9\r\n"), Judgement::Invalid);
        assert_eq!(check.judge(b"\x16\x03\x01\x02\x00"), Judgement::Invalid);
    }

    #[test]
    fn many_headers_still_give_the_status() {
        let mut response = b"HTTP/1.1 204 No Content\r\n".to_vec();
        for _ in 0..100 {
            response.extend_from_slice(b"X-A: b\r\n");
        }
        response.extend_from_slice(b"\r\n");
        assert_eq!(HttpCheck::get("/").unwrap().judge(&response), Judgement::Passed(204));
    }

    #[test]
    fn interim_responses_are_skipped_and_the_final_one_judged_in_any_chunks() {
        let check = HttpCheck::get("/health").unwrap();
        let response: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let final_end = response.len();
        for cut in 0..=final_end {
            let expected = if cut < final_end {
                Judgement::Incomplete
            } else {
                Judgement::Passed(204)
            };
            assert_eq!(check.judge(&response[..cut]), expected, "cut at {cut}");
        }
        let hints_then_503 = b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 503 Busy\r\n\r\n";
        assert_eq!(check.judge(hints_then_503), Judgement::UnexpectedStatus(503));
        // Bare line feeds end a head too.
        assert_eq!(
            check.judge(b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\n\n"),
            Judgement::Passed(200)
        );
        // A 101 is no interim answer here (the check asks for no upgrade).
        let upgrade = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(check.judge(upgrade), Judgement::UnexpectedStatus(101));
        // Garbage after an interim answer is still garbage.
        assert_eq!(
            check.judge(b"HTTP/1.1 100 Continue\r\n\r\nSSH-2.0-x\r\n"),
            Judgement::Invalid
        );
    }

    #[test]
    fn an_interim_response_with_many_headers_is_skipped_too() {
        let mut response = b"HTTP/1.1 103 Early Hints\r\n".to_vec();
        for k in 0..100 {
            response.extend_from_slice(format!("Link: </{k}.js>; rel=preload\r\n").as_bytes());
        }
        response.extend_from_slice(b"\r\n");
        let check = HttpCheck::get("/").unwrap();
        assert_eq!(check.judge(&response), Judgement::Incomplete);
        response.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(check.judge(&response), Judgement::Passed(200));
    }

    #[test]
    fn paths_and_hosts_that_would_smuggle_headers_are_refused() {
        assert_eq!(HttpCheck::get("health"), Err(HttpCheckError::InvalidPath));
        assert_eq!(HttpCheck::get("/a b"), Err(HttpCheckError::InvalidPath));
        assert_eq!(HttpCheck::get("/a\r\nX: y"), Err(HttpCheckError::InvalidPath));
        let check = HttpCheck::get("/").unwrap();
        assert_eq!(check.host("a\r\nb").unwrap_err(), HttpCheckError::InvalidHost);
    }
}
