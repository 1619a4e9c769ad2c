//! Prints example ANNOUNCE datagrams: the block of `docs/PROTOCOL.md`
//! §12.5, which a test keeps equal to this output.

use std::fmt::Write as _;
use std::time::Duration;

use pulse_monitor::{AnnounceKey, Announcement, ExitStatus, Report};
use pulse_proto::{ServiceState, Status};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

/// The examples, as §12.5 shows them: a header line, then the fixed
/// part, its extension (if any) and its tag (if any) on lines of their own.
pub fn examples() -> String {
    let serving = Announcement {
        service: 42,
        incarnation: 1_700_000_000,
        sequence: 1,
        interval: Duration::from_secs(1),
        report: Report::Running(Status::new(ServiceState::Serving, 100)),
    };
    let draining = Announcement {
        sequence: 2,
        report: Report::Running(Status::new(ServiceState::Draining, 100)),
        ..serving
    };
    let stopped = Announcement {
        sequence: 3,
        report: Report::Stopped(ExitStatus::exited(3)),
        ..serving
    };
    let killed = Announcement {
        sequence: 3,
        report: Report::Stopped(ExitStatus::killed(9)),
        ..serving
    };
    let key = AnnounceKey::new(b"example key");
    let mut out = String::new();
    for (title, announcement, key) in [
        ("plain, serving at 100 %, sequence 1", serving, None),
        (
            "authenticated with the key \"example key\", draining, sequence 2",
            draining,
            Some(&key),
        ),
        ("plain, stopped: exited with status 3, sequence 3", stopped, None),
        (
            "authenticated, stopped: killed by signal 9 (status 137), sequence 3",
            killed,
            Some(&key),
        ),
    ] {
        let datagram = announcement.encode(key);
        let _ = writeln!(out, "{title} ({} bytes)", datagram.len());
        let signed = datagram.len() - if key.is_some() { 32 } else { 0 };
        let _ = writeln!(out, "{}", hex(&datagram[..28]));
        if signed > 28 {
            let _ = writeln!(out, "{}", hex(&datagram[28..signed]));
        }
        if key.is_some() {
            let _ = writeln!(out, "{}", hex(&datagram[signed..]));
        }
        out.push('\n');
    }
    out.pop();
    out
}

#[allow(dead_code)] // a test includes this file for `examples` alone
fn main() {
    print!("{}", examples());
}
