//! The command line: subcommands, their arguments and their `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration;

/// pulse: heartbeats from the shell — check a peer, serve one, announce a
/// service while it runs, watch a fleet.
///
/// Exit codes: 0 alive or done, 1 dead or unreachable, 2 usage or
/// configuration error.
#[derive(Debug, Parser)]
#[command(
    name = "pulse",
    version,
    after_help = "Examples:
  pulse serve 127.0.0.1:7000 --status-file /run/app.status --haproxy-agent 127.0.0.1:7001
  pulse ping --count 1 --timeout 2s 127.0.0.1:7000
  pulse announce 127.0.0.1:7400 --id nightly-backup -- /usr/local/bin/backup
  pulse watch targets.toml --http 127.0.0.1:9090"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Ping(PingArgs),
    Serve(ServeArgs),
    Announce(AnnounceArgs),
    Watch(WatchArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// Check a pulse peer, like ping(8): one line per heartbeat with its
/// round-trip time and the peer's hold time, then a summary.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pulse ping 127.0.0.1:7000
  pulse ping --udp --interval 200ms 127.0.0.1:7000
  pulse ping --count 1 --timeout 2s 127.0.0.1:7000   # an exec probe: exit 0 alive, 1 dead
  pulse ping --tls --ca ca.pem --server-name pulse.example 10.0.0.5:7000")]
pub struct PingArgs {
    /// The peer, HOST:PORT.
    pub addr: String,
    /// Over UDP instead of TCP.
    #[arg(long, conflicts_with = "tls")]
    pub udp: bool,
    /// Over TLS (on TCP), verifying the server with --ca.
    #[arg(long)]
    pub tls: bool,
    /// Trust the CA certificates of this PEM file (with --tls).
    #[arg(long, requires = "tls", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must be for (default: the host
    /// of HOST:PORT).
    #[arg(long, requires = "tls")]
    pub server_name: Option<String>,
    /// FOR TESTING ONLY: accept any server certificate. The connection is
    /// encrypted, but anyone on the path can pose as the server.
    #[arg(long, requires = "tls")]
    pub insecure: bool,
    /// Stop after this many answered heartbeats.
    #[arg(short, long)]
    pub count: Option<u64>,
    /// The heartbeat interval to ask for.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Silence after which the peer is dead (default: three intervals).
    #[arg(long, value_parser = parse_duration)]
    pub dead_after: Option<Duration>,
    /// Give up (exit 1) when this much time passes before --count answers.
    #[arg(short = 'w', long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Serve pulse heartbeats (TCP and UDP on one port) and echo messages,
/// reporting the status an operator sets to peers and to HAProxy.
///
/// The status file holds one line: `serving`, `draining`, `maintenance`,
/// `degraded` or `down`, optionally followed by a weight (`serving 75%`)
/// and, for `down`, a reason (`down disk full`). It is re-read when it
/// changes; a missing file means serving at full weight. Signals: USR1
/// drains, USR2 serves again, HUP re-reads the file.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pulse serve 127.0.0.1:7000
  echo draining > /run/app.status
  pulse serve 0.0.0.0:7000 --status-file /run/app.status --haproxy-agent 0.0.0.0:7001
  pulse serve 0.0.0.0:7000 --tls --cert server.pem --key server.key
  pulse serve 127.0.0.1:7000 --tls    # a self-signed certificate, its fingerprint printed")]
pub struct ServeArgs {
    /// The address to serve on (TCP and UDP).
    pub addr: SocketAddr,
    /// Serve only TCP.
    #[arg(long, conflicts_with = "udp_only")]
    pub tcp_only: bool,
    /// Serve only UDP.
    #[arg(long, conflicts_with = "tls")]
    pub udp_only: bool,
    /// Serve pulse over TLS on TCP (and no UDP: pulse has no DTLS). Without
    /// --cert and --key, a self-signed certificate for localhost and the
    /// address is made at start and its SHA-256 fingerprint printed.
    #[arg(long)]
    pub tls: bool,
    /// The certificate chain, PEM (with --tls and --key).
    #[arg(long, requires = "tls", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The certificate's private key, PEM (with --tls and --cert).
    #[arg(long, requires = "tls", requires = "cert")]
    pub key: Option<PathBuf>,
    /// The file holding the service's status, watched for changes.
    #[arg(long)]
    pub status_file: Option<PathBuf>,
    /// How often to look at the status file's modification time.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub status_poll: Duration,
    /// How long one read of the status file may take before it is given
    /// up (a FIFO, a hung network file system) and the status is kept.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub status_timeout: Duration,
    /// Answer HAProxy's agent-check on this TCP address.
    #[arg(long)]
    pub haproxy_agent: Option<SocketAddr>,
    /// The fastest heartbeat interval a client may ask for.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub min_interval: Duration,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Announce a service to a monitor (`pulse watch`) with one-way UDP
/// heartbeats, optionally only while a command runs.
///
/// With `-- COMMAND ARGS…`, announces while the command lives; when it
/// exits, a last announcement says the service stopped, with the command's
/// exit status (the monitor takes it down at once), and pulse exits with
/// that status. Ctrl-C or TERM is passed on to the command as TERM (KILL
/// after --kill-after) and also ends with a `stopped` announcement.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pulse announce 127.0.0.1:7400 --id backup-job -- /usr/local/bin/backup --full
  pulse announce 127.0.0.1:7400 --id worker-3 --interval 2s --key /etc/pulse/announce.key")]
pub struct AnnounceArgs {
    /// The monitor's announcement address, HOST:PORT (UDP).
    pub collector: String,
    /// The service's id: a number, or a name (hashed to the same number
    /// `pulse watch` uses for `announce = "NAME"`).
    #[arg(long)]
    pub id: String,
    /// How often to announce.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Authenticate with the pre-shared key in this file (HMAC-SHA256).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The state to announce: serving, draining, degraded, maintenance.
    #[arg(long, default_value = "serving")]
    pub status: String,
    /// The weight to announce, in percent.
    #[arg(long, default_value_t = 100)]
    pub weight: u8,
    /// On Ctrl-C or TERM, how long the command has to exit after it is
    /// sent TERM, before it is killed (KILL).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub kill_after: Duration,
    /// Print each announcement sent (and the last, `stopped` ones) as a
    /// JSON line.
    #[arg(long)]
    pub json: bool,
    /// The command to run; announcing stops when it exits.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Watch a fleet: pulse-monitor over the targets of a TOML file (pulse
/// peers, TCP, HTTP, announcements), as a live table in the terminal, JSON
/// lines, and with --http a live web console, /metrics, /status.json and
/// /healthz.
#[derive(Debug, Args)]
#[command(after_help = "The targets file:
  announce = \"127.0.0.1:7400\"     # receive announcements here (UDP)
  [[target]]
  name = \"web-1\"
  pool = \"web\"
  http = \"127.0.0.1:8080\"
  path = \"/health\"
  [[target]]
  name = \"api\"
  pulse = \"127.0.0.1:7000\"        # or tcp = \"HOST:PORT\", announce = \"NAME\"

Examples:
  pulse watch targets.toml
  pulse watch targets.toml --json | jq .
  pulse watch targets.toml --http 127.0.0.1:9090   # then open http://127.0.0.1:9090/")]
pub struct WatchArgs {
    /// The targets file (TOML).
    pub targets: PathBuf,
    /// Serve the console, /metrics, /status.json and /healthz here.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Console connections served at once; more wait in the listen queue
    /// until one ends.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(2..))]
    pub http_max_connections: u32,
    /// Of those, how many may be open /events streams (a browser tab
    /// each); more are answered 503, so /metrics and /healthz always have
    /// room. Must be below --http-max-connections.
    #[arg(long, default_value_t = 64)]
    pub http_max_event_streams: u32,
    /// How long the console waits for a client to take what it is sent;
    /// one that reads nothing for this long is disconnected.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub http_write_timeout: Duration,
    /// How long a console client has to send a request's headers; an idle
    /// connection is closed after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,
    /// Print transitions as JSON lines instead of the table.
    #[arg(long)]
    pub json: bool,
}
