//! `pulse watch`: pulse-monitor over the targets of a file, driven by
//! pulse-mio's `Watcher` (probes, announcements) and `Endpoint` (pulse
//! peers) in one `mio::Poll` on this thread; the terminal table, JSON
//! lines, and with `--http` the console and `/metrics` on a thread of
//! their own. Every state shown is the monitor's.

mod board;
mod http;
mod metrics;
mod peers;
mod targets;
mod term;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use pulse_mio::monitor::{WatchConfig, Watcher};
use pulse_mio::{Endpoint, LoopConfig};
use pulse_monitor::{Check, Config, Event, HttpCheck, Monitor, PoolId, TargetId, TargetSpec};

use crate::cli::WatchArgs;
use crate::{announce, exit, service_id};
use board::{Board, PoolView, State, TargetView};
use targets::{File, Preset, Way};

/// Token ranges of the one `Poll`: the watcher's probes and sockets, then
/// the pulse peers' connections.
const WATCHER_TOKENS: std::ops::Range<usize> = 0..100_000;
const PEER_TOKENS: std::ops::Range<usize> = 100_000..200_000;
/// How often the board is refreshed from the monitor's snapshots (and the
/// RTT chart gets a sample), transitions aside.
const REFRESH: Duration = Duration::from_secs(1);

/// The monitor's targets as the command knows them.
struct Watched {
    ids: Vec<TargetId>,
    by_id: HashMap<TargetId, usize>,
    pools: Vec<(PoolId, String)>,
}

pub fn run(args: WatchArgs) -> i32 {
    crate::out::end_when_closed();
    match setup(&args) {
        Ok(setup) => drive(&args, setup),
        Err(e) => {
            eprintln!("pulse watch: {e}");
            exit::USAGE
        }
    }
}

struct Setup {
    poll: Poll,
    watcher: Watcher,
    endpoint: Endpoint<peers::Collect>,
    peers: Vec<peers::Peer>,
    watched: Watched,
    board: Arc<Board>,
    announce: Option<std::net::SocketAddr>,
}

fn setup(args: &WatchArgs) -> Result<Setup, String> {
    let file = File::load(&args.targets)?;
    let mut config = match file.preset {
        Preset::Lan => Config::lan(),
        Preset::Wan => Config::wan(),
    };
    if let Some(d) = File::knob(&file.interval, "interval")? {
        config.interval = d;
    }
    if let Some(d) = File::knob(&file.fast_interval, "fast_interval")? {
        config.fast_interval = d;
    }
    if let Some(d) = File::knob(&file.down_interval, "down_interval")? {
        config.down_interval = d;
    }
    if let Some(d) = File::knob(&file.timeout, "timeout")? {
        config.timeout = d;
    }
    config.rise = file.rise.unwrap_or(config.rise);
    config.fall = file.fall.unwrap_or(config.fall);
    let peer_interval = File::knob(&file.peer_interval, "peer_interval")?.unwrap_or(Duration::from_secs(1));

    let monitor = Monitor::new(config, pulse_driver::clock::now(), pulse_driver::clock::seed())
        .map_err(|e| format!("{}: {e}", args.targets.display()))?;
    let poll = Poll::new().map_err(|e| e.to_string())?;
    let mut watcher =
        Watcher::new(WatchConfig::default(), monitor, poll.registry(), WATCHER_TOKENS).map_err(|e| e.to_string())?;
    let session = pulse_proto::Config::default().with_timing(peer_interval, peer_interval * 3);
    session
        .validate()
        .map_err(|e| format!("{}: peer_interval: {e}", args.targets.display()))?;
    let endpoint = Endpoint::new(
        LoopConfig::new(session),
        peers::Collect::default(),
        poll.registry(),
        PEER_TOKENS,
    )
    .map_err(|e| e.to_string())?;
    for key in &file.keys {
        watcher.monitor_mut().add_announce_key(announce::read_key(key)?);
    }

    let mut watched = Watched {
        ids: Vec::new(),
        by_id: HashMap::new(),
        pools: Vec::new(),
    };
    let mut views = Vec::new();
    let mut peers = Vec::new();
    let tcp = watcher.monitor_mut().add_check(Check::Tcp);
    let mut http_checks: HashMap<String, pulse_monitor::CheckId> = HashMap::new();
    let mut names = std::collections::HashSet::new();
    for target in &file.targets {
        if !names.insert(target.name.clone()) {
            return Err(format!("two targets are named {}", target.name));
        }
        let way = target.way()?;
        let pool = match watched.pools.iter().find(|(_, name)| *name == target.pool) {
            Some((pool, _)) => *pool,
            None => {
                let pool = watcher.monitor_mut().add_pool();
                watched.pools.push((pool, target.pool.clone()));
                pool
            }
        };
        let (spec, addr) = match &way {
            Way::Http { addr, path } => {
                let check = match http_checks.get(path) {
                    Some(check) => *check,
                    None => {
                        let http = HttpCheck::get(path).map_err(|e| format!("target {}: {e}", target.name))?;
                        let check = watcher.monitor_mut().add_check(Check::Http(http));
                        http_checks.insert(path.clone(), check);
                        check
                    }
                };
                (TargetSpec::checked(pool, check), Some(*addr))
            }
            Way::Tcp(addr) => (TargetSpec::checked(pool, tcp), Some(*addr)),
            Way::Pulse(_) => (TargetSpec::peer(pool), None),
            Way::Announce(id) => (TargetSpec::announced(pool, service_id::of(id)), None),
        };
        let spec = match target.weight {
            Some(weight) => spec.weight(weight),
            None => spec,
        };
        let id = watcher
            .add_target(spec, addr)
            .map_err(|e| format!("target {}: {e:?}", target.name))?;
        if let Way::Pulse(addr) = way {
            peers.push(peers::Peer::new(
                id,
                addr,
                pulse_driver::clock::seed() ^ peers.len() as u64,
            ));
        }
        watched.by_id.insert(id, watched.ids.len());
        watched.ids.push(id);
        views.push(TargetView::new(
            target.name.clone(),
            target.pool.clone(),
            way.kind(),
            way.address(),
        ));
    }
    if file.targets.iter().any(|t| t.announce.is_some()) && file.announce.is_none() {
        return Err("targets that announce need `announce = \"HOST:PORT\"` to listen on".into());
    }
    let announce = match &file.announce {
        Some(addr) => {
            let addr = addr
                .parse()
                .map_err(|_| format!("announce: `{addr}` is not an IP:PORT address"))?;
            Some(
                watcher
                    .listen_announcements(addr)
                    .map_err(|e| format!("cannot listen for announcements on {addr}: {e}"))?,
            )
        }
        None => None,
    };
    Ok(Setup {
        poll,
        watcher,
        endpoint,
        peers,
        watched,
        board: Arc::new(Board::new(State::new(views))),
        announce,
    })
}

fn drive(args: &WatchArgs, setup: Setup) -> i32 {
    let Setup {
        mut poll,
        mut watcher,
        mut endpoint,
        mut peers,
        watched,
        board,
        announce,
    } = setup;
    let mut out = term::Output::new(args.json, !args.json && std::io::stdout().is_terminal());
    if let Some(addr) = announce {
        out.note(&format!("announcements on udp {addr}"));
    }
    if let Some(addr) = args.http {
        let limits = http::Limits {
            connections: args.http_max_connections as usize,
            event_streams: args.http_max_event_streams as usize,
            write_timeout: args.http_write_timeout,
            header_timeout: args.http_header_timeout,
        };
        if limits.event_streams >= limits.connections {
            eprintln!("pulse watch: --http-max-event-streams must be below --http-max-connections");
            return exit::USAGE;
        }
        match http::spawn(addr, board.clone(), limits) {
            Ok(bound) => out.note(&format!("console on http://{bound}/")),
            Err(e) => {
                eprintln!("pulse watch: cannot serve http on {addr}: {e}");
                return exit::USAGE;
            }
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut next_refresh = Instant::now();
    loop {
        let now = Instant::now();
        let peer_retry = peers.iter().filter_map(|p| p.retry_at).min();
        let timeout = [
            watcher.poll_timeout(),
            endpoint.poll_timeout(),
            Some(next_refresh.saturating_duration_since(now)),
            peer_retry.map(|at| at.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        let sockets = watcher.probes() + endpoint.connections() + 2;
        let polled = pulse_mio::poll_all(&mut poll, &mut events, timeout, sockets, |event| {
            if !watcher.handle_event(event) {
                endpoint.handle_event(event);
            }
        });
        if let Err(e) = polled {
            eprintln!("pulse watch: poll failed: {e}");
            return exit::DEAD;
        }
        if let Err(e) = endpoint.process() {
            eprintln!("pulse watch: {e}");
        }
        let now = Instant::now();
        for (index, event) in std::mem::take(&mut endpoint.handler().events) {
            if let Some(peer) = peers.get_mut(index) {
                watcher.handle_peer_event(peer.target, &event);
                peers::after_event(peer, &event, now);
            }
        }
        for (index, peer) in peers.iter_mut().enumerate() {
            if peer.retry_at.is_some_and(|at| at <= now) {
                peer.retry_at = None;
                board.lock().monitor.peer_connects += 1;
                if endpoint.connect(peer.addr, index).is_err() {
                    peers::connect_failed(peer, now);
                }
            }
        }
        watcher.process();

        let mut changed = false;
        while let Some(event) = watcher.poll_event() {
            match event {
                Event::Transition(t) => {
                    let Some(&index) = watched.by_id.get(&t.target) else {
                        continue;
                    };
                    let mut state = board.lock();
                    let line = state.record(index, &t);
                    drop(state);
                    out.transition(&line);
                    changed = true;
                }
                Event::StatusChanged { target, from, to } => {
                    if let Some(&index) = watched.by_id.get(&target) {
                        let name = board.lock().targets[index].name.clone();
                        out.status(&name, &from.to_string(), &to.to_string());
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        let sample = now >= next_refresh;
        if changed || sample {
            if sample {
                next_refresh = now + REFRESH;
            }
            refresh(&board, &watcher, &watched, sample);
            out.table(&board);
        }
    }
}

/// Copies the monitor's snapshots, pools and counters to the board.
fn refresh(board: &Board, watcher: &Watcher, watched: &Watched, sample: bool) {
    let monitor = watcher.monitor();
    board.update(|state| {
        state.now_ms = board::unix_ms();
        for (index, id) in watched.ids.iter().enumerate() {
            if let Some(snapshot) = monitor.snapshot(*id) {
                state.targets[index].refresh(&snapshot, sample);
            }
        }
        state.pools = watched
            .pools
            .iter()
            .map(|(pool, name)| {
                let summary = monitor.pool(*pool);
                PoolView {
                    name: name.clone(),
                    members: summary.map_or(0, |s| s.members),
                    up: summary.map_or(0, |s| s.up),
                    down: summary.map_or(0, |s| s.down),
                    panic: summary.and_then(|s| s.panic).map(|p| format!("{p:?}")),
                    healthy: monitor
                        .healthy(*pool)
                        .filter_map(|(id, weight)| {
                            watched.by_id.get(&id).map(|&i| (state.targets[i].name.clone(), weight))
                        })
                        .collect(),
                }
            })
            .collect();
        let stats = monitor.stats();
        let watch = watcher.stats();
        let health = &mut state.monitor;
        health.local_score = monitor.local_score();
        health.announcements = stats.announcements;
        health.announcements_refused = [
            ("not_announcement", stats.not_announcements),
            ("unsupported_version", stats.unsupported_version),
            ("malformed", stats.malformed),
            ("unauthenticated", stats.unauthenticated),
            ("bad_tag", stats.bad_tag),
            ("unknown_service", stats.unknown_service),
            ("stale", stats.stale),
        ]
        .into_iter()
        .collect();
        health.probes = stats.probes;
        health.probe_timeouts = stats.timeouts;
        health.stalls = stats.stalls;
        health.datagrams = watch.datagrams;
        health.probes_deferred = watch.deferred;
    });
}
