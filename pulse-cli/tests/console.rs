//! The console in a real browser: Debian's headless Chromium loads the
//! page from a running `pulse watch --http`; its DOM shows every target
//! and its state, and a target frozen during the test changes state on the
//! page it already shows, without a reload. Needs `chromium` (`.ci/run`
//! installs it); skipped, saying so, where it is absent.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{scratch, signal, write, Pulse};

const VERDICT: Duration = Duration::from_secs(15);

/// A headless Chromium, killed when dropped.
struct Browser(Child);

impl Drop for Browser {
    /// TERM first: Chromium then ends its helper processes itself, where
    /// a KILL would leave them behind.
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal(self.0.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium(profile: &Path) -> Command {
    let mut command = Command::new("chromium");
    command
        .arg("--headless")
        // Root in a container has no user namespaces to sandbox with.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-first-run")
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null());
    command
}

/// The longest a one-shot Chromium run (a DOM dump, a screenshot) may take.
const ONE_SHOT: Duration = Duration::from_secs(30);

/// `chromium --dump-dom` of `url`: the DOM after the page's scripts ran.
fn dump_dom(profile: &Path, url: &str) -> String {
    let mut child = chromium(profile)
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let _browser = Browser(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut dom);
        let _ = tx.send(dom);
    });
    rx.recv_timeout(ONE_SHOT).expect("chromium dumps the DOM in time")
}

/// Runs a one-shot Chromium to its end, at most `ONE_SHOT`.
fn finish(command: &mut Command) -> bool {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut browser = Browser(child);
    let deadline = Instant::now() + ONE_SHOT;
    loop {
        if let Some(status) = browser.0.try_wait().expect("try_wait") {
            return status.success();
        }
        assert!(Instant::now() < deadline, "chromium did not finish within {ONE_SHOT:?}");
        // A child's exit has no event to wait on here.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `data-state` of the row of `name` in a dumped DOM.
fn row_state<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let row = dom.find(&format!("<tr class=\"target\" id=\"target-{name}\""))?;
    let rest = &dom[row..];
    let end = rest.find('>')?;
    let state = rest[..end].split("data-state=\"").nth(1)?;
    state.split('"').next()
}

#[test]
fn the_console_shows_every_target_and_follows_a_frozen_one_live() {
    if Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium; .ci/run installs it)");
        return;
    }
    let dir = scratch("console");
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tcp-only"]);
    let peer = serve.wait_addr("listening (tcp) on");
    let silent = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!(
            "interval = \"200ms\"\nfast_interval = \"100ms\"\ndown_interval = \"200ms\"\ntimeout = \"150ms\"\n\
             peer_interval = \"200ms\"\n\
             [[target]]\nname = \"api\"\npool = \"core\"\npulse = \"{peer}\"\n\
             [[target]]\nname = \"api-port\"\npool = \"core\"\ntcp = \"{peer}\"\n\
             [[target]]\nname = \"closed\"\npool = \"spare\"\ntcp = \"{silent}\"\n"
        ),
    );
    // `silent` was only reserved: nothing listens there now.
    let mut watch = Pulse::start(&["watch", "--json", "--http", "127.0.0.1:0", targets.to_str().unwrap()]);
    let console = watch.wait_json(VERDICT, "the console address", |v| {
        v["event"] == "note" && v["text"].as_str().unwrap().starts_with("console on")
    });
    let console: SocketAddr = console["text"].as_str().unwrap()["console on http://".len()..]
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let url = format!("http://{console}/");
    let mut verdicts = 0;
    while verdicts < 3 {
        watch.wait_json(VERDICT, "first verdicts", |v| v["event"] == "transition");
        verdicts += 1;
    }

    // Every target's row, with the state the monitor gives it.
    let dom = dump_dom(&dir.join("profile-dump"), &url);
    assert_eq!(row_state(&dom, "api"), Some("up"), "{dom}");
    assert_eq!(row_state(&dom, "api-port"), Some("up"), "{dom}");
    assert_eq!(row_state(&dom, "closed"), Some("down"), "{dom}");
    assert!(dom.contains("<h2>core<"), "the pools are shown");

    // One page load, watched through the browser's console log: the page
    // reads each row's state back from its DOM and logs every change.
    let mut child = chromium(&dir.join("profile-live"))
        .arg("--enable-logging=stderr")
        .arg("--v=0")
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let stderr = child.stderr.take().unwrap();
    let _browser = Browser(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("pulse-console ") {
                let text = line[at + "pulse-console ".len()..]
                    .trim_end_matches(|c| c != '"')
                    .trim_end_matches('"');
                if tx.send(text.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait = |want: &str| {
        let deadline = Instant::now() + VERDICT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line: String = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the page never showed {want}; it logged {seen:?}"));
            seen.push(line.clone());
            if line.ends_with(want) {
                return line.split(' ').next().unwrap().to_string();
            }
        }
    };
    let page = wait("\"api\" up");
    assert!(signal(serve.pid(), "STOP"));
    let frozen = wait("\"api\" down");
    assert_eq!(frozen, page, "the same page load shows the change");
    assert!(signal(serve.pid(), "CONT"));
    let thawed = wait("\"api\" up");
    assert_eq!(thawed, page);
    let loads = seen.iter().filter(|l| l.ends_with(" loaded")).count();
    assert_eq!(loads, 1, "no reload: {seen:?}");

    // A screenshot of the console, as docs/console.png was taken.
    let shot = dir.join("console.png");
    let taken = finish(
        chromium(&dir.join("profile-shot"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,720")
            .arg(&url),
    );
    assert!(taken);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let _ = std::fs::remove_dir_all(dir);
}
