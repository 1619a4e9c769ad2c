//! HTTP checks: the request the monitor wants sent, and the verdict on the
//! response, parsed with httparse. The driver moves bytes; it never reads
//! a status code.

use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

/// An HTTP/1.1 health check: one request, and the status codes that pass.
///
/// The request asks the server to close the connection after answering,
/// so each check is one short connection, as HAProxy's are.
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

    /// Judges the response bytes received so far.
    pub(crate) fn judge(&self, response: &[u8]) -> Judgement {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(response) {
            Ok(httparse::Status::Partial) => Judgement::Incomplete,
            Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => self.status(parsed.code),
            Err(_) => Judgement::Invalid,
        }
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
    fn paths_and_hosts_that_would_smuggle_headers_are_refused() {
        assert_eq!(HttpCheck::get("health"), Err(HttpCheckError::InvalidPath));
        assert_eq!(HttpCheck::get("/a b"), Err(HttpCheckError::InvalidPath));
        assert_eq!(HttpCheck::get("/a\r\nX: y"), Err(HttpCheckError::InvalidPath));
        let check = HttpCheck::get("/").unwrap();
        assert_eq!(check.host("a\r\nb").unwrap_err(), HttpCheckError::InvalidHost);
    }
}
