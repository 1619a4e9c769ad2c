//! The example frames of docs/PROTOCOL.md §4.4, encoded by the codec and
//! laid out as the document shows them: the `wire_dump` example prints
//! [`examples`], and a test holds the document to it byte for byte, so the
//! document's bytes are the implementation's bytes.

use std::fmt::Write;

use bytes::Bytes;
use pulse_proto::frame::{Cookie, Frame, Hello, Welcome, WelcomeExt, MAGIC};
use pulse_proto::{CloseCode, ServiceState, Status};

/// Where a line's note starts, after the name and the bytes.
const NOTE_COLUMN: usize = 62;

/// The frames the document shows.
pub fn frames() -> Vec<Frame> {
    vec![
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
        Frame::Retime {
            id: 1,
            interval_ms: 240_000,
            dead_timeout_ms: 720_000,
        },
    ]
}

/// The magic and each of [`frames`] as encoded, one line each: the frame's
/// name, its bytes in hex, and what they say. Ends with a newline.
pub fn examples() -> String {
    let mut out = String::new();
    line(&mut out, "magic", &MAGIC, "");
    for frame in frames() {
        let mut wire = Vec::new();
        frame.encode(&mut wire);
        let (name, note) = describe(&frame);
        line(&mut out, name, &wire, &note);
    }
    out
}

fn line(out: &mut String, name: &str, bytes: &[u8], note: &str) {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    let mut text = format!("{name:<8} {}", hex.join(" "));
    if !note.is_empty() {
        let width = NOTE_COLUMN.max(text.len() + 2);
        text = format!("{text:<width$}{note}");
    }
    let _ = writeln!(out, "{text}");
}

/// A frame's name on the wire and a short reading of its fields.
fn describe(frame: &Frame) -> (&'static str, String) {
    match frame {
        Frame::Hello(h) => (
            "HELLO",
            format!(
                "v{}..={}, {} s, {} s, {} KiB, attempt {}",
                h.version_min,
                h.version_max,
                h.interval_ms / 1000,
                h.dead_timeout_ms / 1000,
                h.max_frame_len / 1024,
                h.attempt,
            ),
        ),
        // Its bytes fill the line.
        Frame::Welcome(_) => ("WELCOME", String::new()),
        Frame::Ping { id } => ("PING", format!("id {id}")),
        Frame::Pong { id, hold_us } => ("PONG", format!("id {id}, held {hold_us} µs")),
        Frame::Data { tag, payload } => ("DATA", format!("tag {tag}, {:?}", String::from_utf8_lossy(payload))),
        Frame::Close { code, reason } => {
            // "normal (0x0000)": the name is enough here.
            let code = code.to_string();
            let name = code.split(" (").next().unwrap_or_default().to_string();
            ("CLOSE", format!("{name}, {reason:?}"))
        }
        Frame::Retry { attempt, cookie } => (
            "RETRY",
            format!("attempt {attempt}, {}-byte cookie", cookie.as_slice().len()),
        ),
        Frame::Status(status) => ("STATUS", status.to_string()),
        Frame::Retime {
            id,
            interval_ms,
            dead_timeout_ms,
        } => (
            "RETIME",
            format!("#{id}, {} s, {} s", interval_ms / 1000, dead_timeout_ms / 1000),
        ),
        Frame::Extension { frame_type } => ("EXT", format!("type 0x{frame_type:02X}")),
        other => ("FRAME", format!("type 0x{:02X}", other.frame_type())),
    }
}
