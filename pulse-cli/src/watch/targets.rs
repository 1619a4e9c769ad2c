//! The targets file (TOML): what to watch, and the monitor's knobs.
//!
//! ```toml
//! preset = "lan"                # or "wan": pulse-monitor's presets
//! announce = "127.0.0.1:7400"   # receive announcements here (UDP)
//! keys = ["/etc/pulse/announce.key"]   # require HMAC with one of these
//!
//! [[target]]
//! name = "web-1"
//! pool = "web"                  # default: "default"
//! http = "127.0.0.1:8080"       # GET path, 2xx/3xx passes
//! path = "/health"
//!
//! [[target]]
//! name = "db"
//! tcp = "127.0.0.1:5432"        # a TCP connect passes
//!
//! [[target]]
//! name = "api"
//! pulse = "127.0.0.1:7000"      # a pulse peer: its heartbeats decide
//!
//! [[target]]
//! name = "backup"
//! announce = "backup-job"       # `pulse announce --id backup-job`
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `lan` (default) or `wan`.
    #[serde(default)]
    pub preset: Preset,
    /// Where announcements are received (UDP).
    pub announce: Option<String>,
    /// Key files; with any, unauthenticated announcements are refused.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Overrides of the preset's check timing.
    pub interval: Option<String>,
    pub fast_interval: Option<String>,
    pub down_interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u8>,
    pub fall: Option<u8>,
    /// The heartbeat interval asked of pulse peers (default 1s).
    pub peer_interval: Option<String>,
    #[serde(default, rename = "target")]
    pub targets: Vec<Target>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    Lan,
    Wan,
}

/// One `[[target]]`: a name, a pool, and exactly one way to watch it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    #[serde(default = "default_pool")]
    pub pool: String,
    pub http: Option<String>,
    pub path: Option<String>,
    pub tcp: Option<String>,
    pub pulse: Option<String>,
    pub announce: Option<String>,
    /// Its share in the pool (default 100).
    pub weight: Option<u16>,
}

fn default_pool() -> String {
    "default".into()
}

/// How a target is watched, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    Http { addr: SocketAddr, path: String },
    Tcp(SocketAddr),
    Pulse(SocketAddr),
    Announce(String),
}

impl Way {
    /// The kind, as the console names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Way::Http { .. } => "http",
            Way::Tcp(_) => "tcp",
            Way::Pulse(_) => "pulse",
            Way::Announce(_) => "announce",
        }
    }

    /// Where it is, as the console shows it.
    pub fn address(&self) -> String {
        match self {
            Way::Http { addr, path } => format!("http://{addr}{path}"),
            Way::Tcp(addr) | Way::Pulse(addr) => addr.to_string(),
            Way::Announce(id) => format!("id {id}"),
        }
    }
}

impl File {
    pub fn load(path: &Path) -> Result<File, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A duration knob, if set.
    pub fn knob(value: &Option<String>, name: &str) -> Result<Option<Duration>, String> {
        value
            .as_deref()
            .map(duration::parse)
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    }
}

impl Target {
    /// The one way it is watched; an error names the target.
    pub fn way(&self) -> Result<Way, String> {
        let resolve = |text: &str| -> Result<SocketAddr, String> {
            text.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("target {}: cannot resolve `{text}` (HOST:PORT)", self.name))
        };
        let ways = [&self.http, &self.tcp, &self.pulse, &self.announce]
            .iter()
            .filter(|w| w.is_some())
            .count();
        if ways != 1 {
            return Err(format!(
                "target {}: give exactly one of http, tcp, pulse, announce",
                self.name
            ));
        }
        if self.path.is_some() && self.http.is_none() {
            return Err(format!("target {}: `path` goes with `http`", self.name));
        }
        Ok(if let Some(http) = &self.http {
            Way::Http {
                addr: resolve(http)?,
                path: self.path.clone().unwrap_or_else(|| "/".into()),
            }
        } else if let Some(tcp) = &self.tcp {
            Way::Tcp(resolve(tcp)?)
        } else if let Some(pulse) = &self.pulse {
            Way::Pulse(resolve(pulse)?)
        } else {
            Way::Announce(self.announce.clone().unwrap_or_default())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_every_kind_parses() {
        let file: File = toml::from_str(
            r#"
            announce = "127.0.0.1:7400"
            [[target]]
            name = "web"
            http = "127.0.0.1:8080"
            path = "/health"
            [[target]]
            name = "db"
            pool = "data"
            tcp = "127.0.0.1:5432"
            [[target]]
            name = "api"
            pulse = "127.0.0.1:7000"
            [[target]]
            name = "job"
            announce = "backup"
            "#,
        )
        .unwrap();
        let ways: Vec<&str> = file.targets.iter().map(|t| t.way().unwrap().kind()).collect();
        assert_eq!(ways, ["http", "tcp", "pulse", "announce"]);
        assert_eq!(file.targets[1].pool, "data");
    }

    #[test]
    fn a_target_with_two_ways_or_a_typo_is_refused() {
        let two: File =
            toml::from_str("[[target]]\nname = \"x\"\ntcp = \"127.0.0.1:1\"\npulse = \"127.0.0.1:2\"").unwrap();
        assert!(two.targets[0].way().is_err());
        assert!(toml::from_str::<File>("[[target]]\nname = \"x\"\ntpc = \"127.0.0.1:1\"").is_err());
    }
}
