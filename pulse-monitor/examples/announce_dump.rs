//! Prints example ANNOUNCE datagrams, for `docs/PROTOCOL.md` §12.

use std::time::Duration;

use pulse_monitor::{AnnounceKey, Announcement};
use pulse_proto::{ServiceState, Status};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

fn main() {
    let announcement = Announcement {
        service: 42,
        incarnation: 1_700_000_000,
        sequence: 1,
        interval: Duration::from_secs(1),
        status: Status::new(ServiceState::Serving, 100),
    };
    println!("plain (28 bytes):");
    println!("{}", hex(&announcement.encode(None)));
    let key = AnnounceKey::new(b"example key");
    let draining = Announcement {
        sequence: 2,
        status: Status::new(ServiceState::Draining, 100),
        ..announcement
    };
    let datagram = draining.encode(Some(&key));
    println!("authenticated with the key \"example key\" ({} bytes):", datagram.len());
    println!("{}", hex(&datagram[..28]));
    println!("{}", hex(&datagram[28..]));
}
