//! Lines on standard output that never panic. `println!` panics when the
//! reader has gone (`pulse ping … | head -2`, a log shipper restarted),
//! and in `serve` that panic would kill the executor thread that drives
//! every peer's heartbeats.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit;

/// Whether a closed standard output ends the run.
static END_WHEN_CLOSED: AtomicBool = AtomicBool::new(false);

/// `ping` and `watch` print for a reader: once it has gone there is no
/// one to tell, and the run ends with exit 0, as `head` expects of the
/// command before it. `serve` and `announce` never call this: their work
/// is for their peers, and their output is only a log.
pub fn end_when_closed() {
    END_WHEN_CLOSED.store(true, Ordering::Relaxed);
}

/// Writes one line; a failed write is dropped (or ends the run, see
/// [`end_when_closed`]).
pub fn line(args: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
    if written.and_then(|()| stdout.flush()).is_err() && END_WHEN_CLOSED.load(Ordering::Relaxed) {
        std::process::exit(exit::OK);
    }
}

/// `println!` that never panics (see [`line()`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
pub(crate) use say;
