//! Prints the example frames of docs/PROTOCOL.md §4.4 as hex, from the
//! codec itself; `tests/tests/protocol_examples.rs` checks that the
//! document shows exactly this.
//!
//! Run: `cargo run --example wire_dump`

fn main() {
    print!("{}", pulse_tests::wire_dump::examples());
}
