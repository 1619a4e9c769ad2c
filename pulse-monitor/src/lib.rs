//! # pulse-monitor
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(doc)]
extern crate std;

mod accrual;
mod announce;
mod config;
mod damping;
mod decide;
mod event;
mod http;
mod index;
mod local;
mod monitor;
mod pool;
mod rng;
mod schedule;
mod snapshot;
mod target;

pub use announce::{AnnounceError, AnnounceKey, Announcement, Datagram};
pub use config::{Config, ConfigError};
pub use damping::Damping;
pub use event::{
    CheckId, CheckResult, Event, Health, PanicReason, PeerSignal, PoolId, Probe, ProbeId, ProbeKind, ProbeOutcome,
    Progress, Reason, TargetId, Transition,
};
pub use http::{HttpCheck, HttpCheckError};
pub use monitor::{Check, Monitor};
pub use pool::PoolSummary;
pub use snapshot::{Snapshot, Stats};
pub use target::{Source, TargetError, TargetSpec};

/// The ANNOUNCE datagram's constants (`docs/PROTOCOL.md` §12).
pub mod wire {
    pub use crate::announce::{HEADER_LEN, MAGIC, MAX_LEN, TAG_LEN, VERSION};
}
