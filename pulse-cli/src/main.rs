//! `pulse`: the command-line face of the pulse libraries. It parses
//! arguments and files, prints and serves; every heartbeat and verdict is
//! pulse-proto's (through pulse-smol and pulse-mio), every target state
//! pulse-monitor's.

#![forbid(unsafe_code)]

mod announce;
mod cli;
mod duration;
mod exit;
mod out;
mod ping;
mod serve;
mod service_id;
mod signals;
mod status_file;
mod tls;
mod watch;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; the rest is a usage error.
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        cli::Command::Ping(args) => ping::run(args),
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Announce(args) => announce::run(args),
        cli::Command::Watch(args) => watch::run(args),
    };
    std::process::exit(code);
}
