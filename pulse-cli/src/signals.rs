//! Ctrl-C and friends as a channel, so an async loop can wait for them
//! beside its sockets.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

/// The signals a command reacts to, delivered on a channel by a thread of
/// their own.
pub fn channel(wanted: &[i32]) -> std::io::Result<async_channel::Receiver<i32>> {
    let mut signals = Signals::new(wanted)?;
    let (tx, rx) = async_channel::bounded(16);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if tx.send_blocking(signal).is_err() {
                break;
            }
        }
    })?;
    Ok(rx)
}

/// Stop: Ctrl-C or `kill`.
pub const STOP: [i32; 2] = [SIGINT, SIGTERM];
/// `serve`'s status signals: USR1 drains, USR2 serves again, HUP re-reads
/// the status file.
pub const STATUS: [i32; 3] = [SIGUSR1, SIGUSR2, SIGHUP];
