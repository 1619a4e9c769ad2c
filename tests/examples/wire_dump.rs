//! Prints the example frames of docs/PROTOCOL.md as hex, from the codec
//! itself, so the document's bytes are the implementation's bytes.
//!
//! Run: `cargo run --example wire_dump`

use bytes::Bytes;
use pulse_proto::frame::{Frame, Hello, Welcome, MAGIC};
use pulse_proto::CloseCode;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

fn main() {
    println!("magic    {}", hex(&MAGIC));
    let frames = [
        Frame::Hello(Hello {
            version_min: 1,
            version_max: 1,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 262_144,
            attempt: 0,
            cookie: None,
        }),
        Frame::Welcome(Welcome {
            version: 1,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 262_144,
            min_ping_spacing_ms: 500,
            ping_strikes: 2,
            ext: None,
        }),
        Frame::Ping { id: 1 },
        Frame::Pong { id: 1, hold_us: 250 },
        Frame::Data {
            tag: 7,
            payload: Bytes::from_static(b"hi"),
        },
        Frame::Close {
            code: CloseCode::NORMAL,
            reason: "bye".into(),
        },
    ];
    for frame in &frames {
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        let name = format!("{frame:?}");
        println!("{:<8} {}", name.split([' ', '(', '{']).next().unwrap_or(""), hex(&wire));
    }
}
