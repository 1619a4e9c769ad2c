//! Prints the example frames of docs/PROTOCOL.md as hex, from the codec
//! itself, so the document's bytes are the implementation's bytes.
//!
//! Run: `cargo run --example wire_dump`

use bytes::Bytes;
use pulse_proto::frame::{Cookie, Frame, Hello, Welcome, WelcomeExt, MAGIC};
use pulse_proto::{CloseCode, ServiceState, Status};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
}

fn main() {
    println!("magic    {}", hex(&MAGIC));
    let frames = [
        Frame::Hello(Hello {
            version_min: 1,
            version_max: 2,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 262_144,
            attempt: 0,
            cookie: None,
        }),
        Frame::Welcome(Welcome {
            version: 2,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 262_144,
            min_ping_spacing_ms: 500,
            ping_strikes: 2,
            ext: Some(WelcomeExt {
                attempt: 0,
                min_interval_ms: 1_000,
                max_interval_ms: 300_000,
                max_dead_timeout_ms: 600_000,
            }),
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
        Frame::Retry {
            attempt: 0,
            cookie: Cookie::new(&[0x00, 0x00, 0x00, 0x2A, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
                .expect("fits"),
        },
        Frame::Status(Status::new(ServiceState::Draining, 50)),
    ];
    for frame in &frames {
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        let name = format!("{frame:?}");
        println!("{:<8} {}", name.split([' ', '(', '{']).next().unwrap_or(""), hex(&wire));
    }
}
