//! docs/PROTOCOL.md shows the implementation's own bytes: its §4.4 block is
//! what `cargo run --example wire_dump` prints, byte for byte, and its §12.5
//! block what `cargo run -p pulse-monitor --example announce_dump` prints.

#[path = "../../pulse-monitor/examples/announce_dump.rs"]
mod announce_dump;

const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");

/// The first fenced block after the heading that starts with `heading`.
fn block_after(document: &str, heading: &str) -> Option<String> {
    let mut lines = document.lines().skip_while(|l| !l.starts_with(heading));
    lines.next()?;
    let mut lines = lines.skip_while(|l| !l.starts_with("```"));
    lines.next()?;
    let mut block = String::new();
    for line in lines {
        if line.starts_with("```") {
            return Some(block);
        }
        block.push_str(line);
        block.push('\n');
    }
    None
}

#[test]
fn the_protocol_s_example_frames_are_what_the_codec_encodes() {
    let documented = block_after(PROTOCOL, "### 4.4").expect("docs/PROTOCOL.md has a §4.4 with a code block");
    let encoded = pulse_tests::wire_dump::examples();
    assert!(
        documented == encoded,
        "docs/PROTOCOL.md §4.4 differs from the codec: replace its block with \
         the output of `cargo run --example wire_dump`:\n{encoded}\ndocumented:\n{documented}"
    );
}

#[test]
fn the_protocol_s_example_announcements_are_what_the_codec_encodes() {
    let documented = block_after(PROTOCOL, "### 12.5").expect("docs/PROTOCOL.md has a §12.5 with a code block");
    let encoded = announce_dump::examples();
    assert!(
        documented == encoded,
        "docs/PROTOCOL.md §12.5 differs from the codec: replace its block with the output of \
         `cargo run -p pulse-monitor --example announce_dump`:\n{encoded}\ndocumented:\n{documented}"
    );
}
