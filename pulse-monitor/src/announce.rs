//! The ANNOUNCE datagram (`docs/PROTOCOL.md` §12): a one-way heartbeat a
//! service pushes to its monitor, optionally authenticated with an
//! HMAC-SHA256 over the whole datagram.

use core::fmt;
use core::time::Duration;

use hmac::{Hmac, Mac};
use pulse_proto::{ServiceState, Status};
use sha2::Sha256;

/// The first four bytes of every ANNOUNCE datagram. A pulse session
/// datagram starts with the session magic `9C 50 4C 53` or with a frame
/// type, never `9C 50 41 4E`: a socket that receives both tells them apart
/// at the third byte.
pub const MAGIC: [u8; 4] = [0x9C, 0x50, 0x41, 0x4E];
/// The version this crate sends and accepts.
pub const VERSION: u8 = 1;
/// Length of the fixed part, before extensions and the tag.
pub const HEADER_LEN: usize = 28;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Length of the extension a `stopped` announcement carries after the
/// fixed part: `exit_status` (i32), `exit_signal` (u8), 3 reserved bytes.
pub const STOPPED_LEN: usize = 8;
/// The `state` byte of a service's last announcement.
pub const STATE_STOPPED: u8 = 4;
/// The largest datagram a receiver reads; longer ones are malformed.
pub const MAX_LEN: usize = 512;

const FLAG_AUTHENTICATED: u8 = 0x01;

/// What a service says in one announcement.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_monitor::{Announcement, AnnounceKey, ExitStatus, Report};
/// use pulse_proto::{ServiceState, Status};
///
/// let key = AnnounceKey::new(b"a shared secret of the fleet");
/// let announcement = Announcement {
///     service: 42,
///     incarnation: 7,
///     sequence: 1,
///     interval: Duration::from_secs(1),
///     report: Report::Running(Status::new(ServiceState::Serving, 100)),
/// };
/// let datagram = announcement.encode(Some(&key));
/// assert_eq!(datagram.len(), 60);
/// assert_eq!(Announcement::decode(&datagram, &[key.clone()]), Ok(announcement));
///
/// // Its last one: the command it ran exited with status 3.
/// let last = Announcement {
///     sequence: 2,
///     report: Report::Stopped(ExitStatus::exited(3)),
///     ..announcement
/// };
/// let datagram = last.encode(Some(&key));
/// assert_eq!(datagram.len(), 68);
/// assert_eq!(Announcement::decode(&datagram, &[key]), Ok(last));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The service's id, as configured at the monitor.
    pub service: u64,
    /// Grows each time the service restarts (a boot counter, or its start
    /// time in seconds): sequences restart at each incarnation.
    pub incarnation: u32,
    /// Grows by one per announcement within an incarnation.
    pub sequence: u32,
    /// How often the service announces: whole milliseconds on the wire,
    /// at least one (a shorter interval is sent as 1 ms; `interval_ms` 0 is
    /// malformed, PROTOCOL.md §12.2).
    pub interval: Duration,
    /// The service's own report of itself: running with a status, or
    /// ended.
    pub report: Report,
}

/// What an announcement says of its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Running, in this state and at this weight.
    Running(Status),
    /// Ended (state `stopped` on the wire): this is its last announcement
    /// in this incarnation, and this is how it ended.
    Stopped(ExitStatus),
}

impl Report {
    /// The status it reports while running; `None` once stopped.
    pub fn status(self) -> Option<Status> {
        match self {
            Report::Running(status) => Some(status),
            Report::Stopped(_) => None,
        }
    }
}

/// How a service's process ended, as its last announcement tells it
/// (`docs/PROTOCOL.md` §12.2: `exit_status` and `exit_signal`).
///
/// # Examples
///
/// ```
/// use pulse_monitor::ExitStatus;
///
/// assert_eq!(ExitStatus::exited(3).to_string(), "exited with status 3");
/// let killed = ExitStatus::killed(9);
/// assert_eq!((killed.status, killed.signal), (137, 9));
/// assert_eq!(killed.to_string(), "killed by signal 9 (status 137)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// As a shell reports it: the exit code, or 128 + the signal number
    /// when a signal ended the process.
    pub status: i32,
    /// The signal that ended the process; 0 if it exited by itself.
    pub signal: u8,
}

impl ExitStatus {
    /// A process that exited by itself with `code`.
    pub fn exited(code: i32) -> ExitStatus {
        ExitStatus {
            status: code,
            signal: 0,
        }
    }

    /// A process ended by signal `signal` (its status is 128 + `signal`,
    /// as shells say).
    pub fn killed(signal: u8) -> ExitStatus {
        ExitStatus {
            status: 128 + i32::from(signal),
            signal,
        }
    }

    /// Whether it exited by itself with status 0.
    pub fn success(self) -> bool {
        self.status == 0 && self.signal == 0
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.signal == 0 {
            write!(f, "exited with status {}", self.status)
        } else {
            write!(f, "killed by signal {} (status {})", self.signal, self.status)
        }
    }
}

/// A pre-shared key for authenticated announcements, with its HMAC key
/// schedule computed once.
#[derive(Clone)]
pub struct AnnounceKey(Hmac<Sha256>);

impl AnnounceKey {
    /// A key from its bytes (any length; 32 random bytes are plenty).
    pub fn new(secret: &[u8]) -> AnnounceKey {
        AnnounceKey(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(bytes);
        // Constant time, so a forger learns nothing from how fast we say no.
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for AnnounceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnnounceKey(..)")
    }
}

/// An encoded announcement, ready to send: no allocation.
#[derive(Clone, Copy)]
pub struct Datagram {
    bytes: [u8; HEADER_LEN + STOPPED_LEN + TAG_LEN],
    len: u8,
}

impl core::ops::Deref for Datagram {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Datagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.iter() {
            write!(f, "{byte:02X} ")?;
        }
        Ok(())
    }
}

/// Why a datagram was not taken as an announcement. Each is counted in
/// [`crate::Stats`]; none of them disturbs any target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnounceError {
    /// It does not start with [`MAGIC`]: not an announcement (perhaps a
    /// pulse session datagram).
    NotAnnouncement,
    /// A version this monitor does not speak.
    UnsupportedVersion(u8),
    /// Too short for its header, its tag and (when stopped) its exit
    /// status, longer than [`MAX_LEN`], or with an interval of 0.
    Malformed,
    /// The monitor requires authentication and the datagram has no tag.
    Unauthenticated,
    /// The tag does not match any of the monitor's keys: forged, or sent
    /// with another key.
    BadTag,
    /// No target is registered for this service id.
    UnknownService(u64),
    /// Not newer than the last announcement accepted from this service (a
    /// replay, a duplicate or a reordered datagram).
    Stale,
}

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnounceError::NotAnnouncement => f.write_str("not an announcement"),
            AnnounceError::UnsupportedVersion(v) => write!(f, "unsupported announcement version {v}"),
            AnnounceError::Malformed => f.write_str("malformed announcement"),
            AnnounceError::Unauthenticated => f.write_str("announcement without the required authentication"),
            AnnounceError::BadTag => f.write_str("announcement with a tag that matches no key"),
            AnnounceError::UnknownService(id) => write!(f, "announcement from unknown service {id}"),
            AnnounceError::Stale => f.write_str("announcement not newer than the last one accepted"),
        }
    }
}

impl Announcement {
    /// Encodes the announcement, authenticated if a key is given.
    pub fn encode(&self, key: Option<&AnnounceKey>) -> Datagram {
        let mut bytes = [0u8; HEADER_LEN + STOPPED_LEN + TAG_LEN];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4] = VERSION;
        bytes[5] = if key.is_some() { FLAG_AUTHENTICATED } else { 0 };
        let mut signed = HEADER_LEN;
        match self.report {
            Report::Running(status) => {
                bytes[6] = status.state().to_wire();
                bytes[7] = status.weight();
            }
            Report::Stopped(exit) => {
                // Weight 0: a receiver that predates `stopped` reads it as
                // degraded at weight 0, which takes no work, until the
                // silence makes it down.
                bytes[6] = STATE_STOPPED;
                bytes[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&exit.status.to_be_bytes());
                bytes[HEADER_LEN + 4] = exit.signal;
                signed += STOPPED_LEN;
            }
        }
        bytes[8..16].copy_from_slice(&self.service.to_be_bytes());
        bytes[16..20].copy_from_slice(&self.incarnation.to_be_bytes());
        bytes[20..24].copy_from_slice(&self.sequence.to_be_bytes());
        // §12.2: at least 1 ms; 0 is malformed.
        let ms = u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX).max(1);
        bytes[24..28].copy_from_slice(&ms.to_be_bytes());
        let len = match key {
            Some(key) => {
                let tag = key.tag(&bytes[..signed]);
                bytes[signed..signed + TAG_LEN].copy_from_slice(&tag);
                signed + TAG_LEN
            }
            None => signed,
        };
        Datagram { bytes, len: len as u8 }
    }

    /// Decodes a datagram. With `keys` empty, any announcement is taken
    /// (its tag, if any, unchecked); otherwise it must carry a tag that one
    /// of the keys verifies.
    pub fn decode(datagram: &[u8], keys: &[AnnounceKey]) -> Result<Announcement, AnnounceError> {
        if datagram.len() < 4 || datagram[..4] != MAGIC {
            return Err(AnnounceError::NotAnnouncement);
        }
        if datagram.len() < 5 {
            return Err(AnnounceError::Malformed);
        }
        if datagram[4] != VERSION {
            return Err(AnnounceError::UnsupportedVersion(datagram[4]));
        }
        if datagram.len() < HEADER_LEN || datagram.len() > MAX_LEN {
            return Err(AnnounceError::Malformed);
        }
        let authenticated = datagram[5] & FLAG_AUTHENTICATED != 0;
        if authenticated && datagram.len() < HEADER_LEN + TAG_LEN {
            return Err(AnnounceError::Malformed);
        }
        if !keys.is_empty() {
            if !authenticated {
                return Err(AnnounceError::Unauthenticated);
            }
            let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
            if !keys.iter().any(|key| key.verify(signed, tag)) {
                return Err(AnnounceError::BadTag);
            }
        }
        let u32_at =
            |at: usize| u32::from_be_bytes([datagram[at], datagram[at + 1], datagram[at + 2], datagram[at + 3]]);
        let report = if datagram[6] == STATE_STOPPED {
            let signed = datagram.len() - if authenticated { TAG_LEN } else { 0 };
            if signed < HEADER_LEN + STOPPED_LEN {
                return Err(AnnounceError::Malformed);
            }
            Report::Stopped(ExitStatus {
                status: u32_at(HEADER_LEN) as i32,
                signal: datagram[HEADER_LEN + 4],
            })
        } else {
            Report::Running(Status::new(ServiceState::from_wire(datagram[6]), datagram[7]))
        };
        // §12.2: a sender that promises its next announcement in no time
        // promises nothing a receiver could judge a silence by.
        let interval_ms = u32_at(24);
        if interval_ms == 0 {
            return Err(AnnounceError::Malformed);
        }
        let mut service = [0u8; 8];
        service.copy_from_slice(&datagram[8..16]);
        Ok(Announcement {
            service: u64::from_be_bytes(service),
            incarnation: u32_at(16),
            sequence: u32_at(20),
            interval: Duration::from_millis(u64::from(interval_ms)),
            report,
        })
    }

    /// Whether this announcement comes after `(incarnation, sequence)`.
    pub(crate) fn is_newer_than(&self, incarnation: u32, sequence: u32) -> bool {
        (self.incarnation, self.sequence) > (incarnation, sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Announcement {
        Announcement {
            service: 0x0102_0304_0506_0708,
            incarnation: 3,
            sequence: 9,
            interval: Duration::from_millis(1500),
            report: Report::Running(Status::new(ServiceState::Degraded, 40)),
        }
    }

    fn stopped(exit: ExitStatus) -> Announcement {
        Announcement {
            report: Report::Stopped(exit),
            ..sample()
        }
    }

    #[test]
    fn the_wire_layout_is_the_one_the_spec_shows() {
        let datagram = sample().encode(None);
        let expected = [
            0x9C, 0x50, 0x41, 0x4E, 0x01, 0x00, 0x02, 0x28, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0x05,
            0xDC,
        ];
        assert_eq!(&datagram[..], &expected[..]);
        assert_eq!(Announcement::decode(&datagram, &[]), Ok(sample()));
    }

    #[test]
    fn a_stopped_announcement_carries_its_exit_status_after_the_fixed_part() {
        let datagram = stopped(ExitStatus::exited(3)).encode(None);
        assert_eq!(datagram.len(), HEADER_LEN + STOPPED_LEN);
        assert_eq!(datagram[6], STATE_STOPPED);
        assert_eq!(datagram[7], 0, "weight 0, for receivers that read it as degraded");
        assert_eq!(&datagram[HEADER_LEN..], &[0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(Announcement::decode(&datagram, &[]), Ok(stopped(ExitStatus::exited(3))));
        for exit in [ExitStatus::killed(9), ExitStatus::exited(-1), ExitStatus::exited(0)] {
            let key = AnnounceKey::new(b"k");
            let datagram = stopped(exit).encode(Some(&key));
            assert_eq!(datagram.len(), HEADER_LEN + STOPPED_LEN + TAG_LEN);
            assert_eq!(Announcement::decode(&datagram, &[key]), Ok(stopped(exit)));
        }
    }

    #[test]
    fn a_stopped_announcement_without_its_exit_status_is_malformed() {
        let mut bytes = sample().encode(None).to_vec();
        bytes[6] = STATE_STOPPED;
        assert_eq!(Announcement::decode(&bytes, &[]), Err(AnnounceError::Malformed));
        bytes.extend_from_slice(&[0; STOPPED_LEN - 1]);
        assert_eq!(Announcement::decode(&bytes, &[]), Err(AnnounceError::Malformed));
        // With a tag, the exit status is before it, not in it.
        let key = AnnounceKey::new(b"k");
        let mut signed = sample().encode(None).to_vec();
        signed[5] = FLAG_AUTHENTICATED;
        signed[6] = STATE_STOPPED;
        let tag = key.tag(&signed);
        signed.extend_from_slice(&tag);
        assert_eq!(Announcement::decode(&signed, &[key]), Err(AnnounceError::Malformed));
    }

    #[test]
    fn a_tag_made_with_another_key_or_a_flipped_bit_is_rejected() {
        let key = AnnounceKey::new(b"right");
        let datagram = sample().encode(Some(&AnnounceKey::new(b"wrong")));
        assert_eq!(
            Announcement::decode(&datagram, core::slice::from_ref(&key)),
            Err(AnnounceError::BadTag)
        );
        for good in [
            sample().encode(Some(&key)),
            stopped(ExitStatus::exited(3)).encode(Some(&key)),
        ] {
            for at in 0..good.len() {
                let mut bad = good.to_vec();
                bad[at] ^= 0x10;
                assert!(
                    Announcement::decode(&bad, core::slice::from_ref(&key)).is_err(),
                    "bit flip at {at} accepted"
                );
            }
        }
        assert_eq!(
            Announcement::decode(&sample().encode(None), core::slice::from_ref(&key)),
            Err(AnnounceError::Unauthenticated)
        );
        // During a key rotation, either key verifies.
        assert!(Announcement::decode(&sample().encode(Some(&key)), &[AnnounceKey::new(b"next"), key]).is_ok());
    }

    #[test]
    fn every_truncation_and_foreign_prefix_is_an_error_never_a_panic() {
        let key = AnnounceKey::new(b"k");
        let good = sample().encode(Some(&key));
        for len in 0..good.len() {
            assert!(Announcement::decode(&good[..len], core::slice::from_ref(&key)).is_err());
            assert!(Announcement::decode(&good[..len], &[]).is_err() || len >= HEADER_LEN);
        }
        let session = [0x9C, 0x50, 0x4C, 0x53, 0x01, 0x0E];
        assert_eq!(Announcement::decode(&session, &[]), Err(AnnounceError::NotAnnouncement));
        let mut v2 = good.to_vec();
        v2[4] = 2;
        assert_eq!(
            Announcement::decode(&v2, &[]),
            Err(AnnounceError::UnsupportedVersion(2))
        );
        assert_eq!(
            Announcement::decode(&[0u8; 600], &[]),
            Err(AnnounceError::NotAnnouncement)
        );
        let mut long = MAGIC.to_vec();
        long.resize(MAX_LEN + 1, 1);
        assert_eq!(Announcement::decode(&long, &[]), Err(AnnounceError::Malformed));
    }

    #[test]
    fn extensions_before_the_tag_are_covered_by_it_and_ignored() {
        let key = AnnounceKey::new(b"k");
        let mut bytes = sample().encode(None).to_vec();
        bytes[5] = FLAG_AUTHENTICATED;
        bytes.extend_from_slice(b"ext");
        let tag = key.tag(&bytes);
        bytes.extend_from_slice(&tag);
        assert_eq!(Announcement::decode(&bytes, &[key]), Ok(sample()));
    }

    #[test]
    fn an_interval_of_zero_is_malformed_and_one_under_a_millisecond_is_sent_as_one() {
        for report in [sample().report, stopped(ExitStatus::exited(0)).report] {
            let mut bytes = Announcement { report, ..sample() }.encode(None).to_vec();
            bytes[24..28].copy_from_slice(&[0; 4]);
            assert_eq!(Announcement::decode(&bytes, &[]), Err(AnnounceError::Malformed));
        }
        let fast = Announcement {
            interval: Duration::from_micros(300),
            ..sample()
        };
        let datagram = fast.encode(None);
        assert_eq!(&datagram[24..28], &[0, 0, 0, 1]);
        let decoded = Announcement::decode(&datagram, &[]).unwrap();
        assert_eq!(decoded.interval, Duration::from_millis(1));
    }

    #[test]
    fn newer_means_a_later_incarnation_or_a_later_sequence_in_the_same_one() {
        let a = sample();
        assert!(a.is_newer_than(3, 8));
        assert!(!a.is_newer_than(3, 9));
        assert!(a.is_newer_than(2, u32::MAX));
        assert!(!a.is_newer_than(4, 0));
    }
}
