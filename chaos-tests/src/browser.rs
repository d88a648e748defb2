//! A headless Chromium driven over WebDriver, for end-to-end tests of the console.
//!
//! [`Browser::start`] runs `chromedriver` on a free loopback port, in a process group of its
//! own with its output in a log file of a fresh temporary directory, waits for its `/status` to
//! say `"ready": true`, and opens a WebDriver session ([`fantoccini`]) on a headless Chromium
//! with a fresh profile and a phone's viewport ([`WINDOW`]: the console must work at 360-390 px
//! wide; Chromium will not make a window narrower than 500 px, so the viewport is chromedriver's
//! `mobileEmulation`, which also honours `<meta name="viewport">` as a phone does). The helpers ([`Browser::fill`], [`Browser::click`],
//! [`Browser::wait_for_text`], ...) take CSS selectors, and their errors name the selector and
//! carry the start of the page source. [`Browser::screenshot`] writes
//! `<target>/console-screenshots/<name>.png` (`<target>` as in [`crate::binary::target_dir`]).
//!
//! [`Browser::close`], or dropping the [`Browser`], ends the session when chromedriver still
//! answers, then SIGKILLs chromedriver's whole process group (Chromium and its helpers with it,
//! sent with `kill(1)`, which keeps this crate free of `libc`) and reaps chromedriver, so no
//! browser outlives its test.
//!
//! Environment: `CHROMEDRIVER` (default `/usr/bin/chromedriver`) and `CHROMIUM` (default
//! `/usr/bin/chromium`); Debian's packages are `chromium-driver` and `chromium`
//! ([`available`] says whether both are there).

use anyhow::{anyhow, bail, Context as _};
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The viewport: a large phone, portrait, in CSS pixels at a device pixel ratio of 1 (so a
/// screenshot is this many pixels too).
pub const WINDOW: (u32, u32) = (390, 844);

const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on chromedriver coming up, all ports tried.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often `/status` is asked, and [`Browser::wait_for`] looks again.
const POLL: Duration = Duration::from_millis(50);
/// Ports tried when chromedriver exits right away (another process took the port).
const PORT_ATTEMPTS: usize = 5;
/// Bound on creating the session (Chromium starting) and on ending it.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// WebDriver's page-load timeout (its default is five minutes).
const PAGE_LOAD_MS: u64 = 30_000;
/// How much of the page source an error carries.
const SOURCE_PREFIX: usize = 2048;
/// How much of chromedriver's log an error carries.
const LOG_TAIL_LINES: usize = 40;

/// The chromedriver executable: `CHROMEDRIVER`, else `/usr/bin/chromedriver`.
pub fn chromedriver_path() -> PathBuf {
    env_path("CHROMEDRIVER", DEFAULT_CHROMEDRIVER)
}

/// The Chromium executable: `CHROMIUM`, else `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    env_path("CHROMIUM", DEFAULT_CHROMIUM)
}

/// Whether both chromedriver and Chromium are there.
pub fn available() -> bool {
    chromedriver_path().is_file() && chromium_path().is_file()
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// A headless Chromium behind its own chromedriver. See the module docs.
pub struct Browser {
    client: Client,
    /// The WebDriver session, while it should be open (ended by `Drop` when still set).
    session: Option<String>,
    /// Dropped after the session ended: kills the process group.
    driver: Driver,
    /// The log and the Chromium profile; removed last, once every process is gone.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Whether both chromedriver and Chromium are there (same as [`available`]).
    pub fn available() -> bool {
        available()
    }

    /// Start chromedriver and open a session on a headless Chromium.
    pub async fn start() -> anyhow::Result<Browser> {
        let chromedriver = chromedriver_path();
        let chromium = chromium_path();
        for bin in [&chromedriver, &chromium] {
            if !bin.is_file() {
                bail!(
                    "{} is missing: install the Debian packages chromium and chromium-driver \
                     (or set CHROMIUM and CHROMEDRIVER)",
                    bin.display()
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("chaos-browser-")
            .tempdir()
            .context("create the browser's temporary directory")?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).with_context(|| format!("create {}", profile.display()))?;
        let log = dir.path().join("chromedriver.log");
        let driver = Driver::start(&chromedriver, &log).await?;
        let url = format!("http://127.0.0.1:{}", driver.port);

        let mut caps = Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("timeouts".into(), json!({ "pageLoad": PAGE_LOAD_MS }));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.to_string_lossy(),
                "args": chromium_args(&profile),
                // Chromium keeps windows at least 500 px wide, headless too: the phone's
                // viewport comes from device emulation (which also honours `<meta viewport>`).
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": WINDOW.0,
                        "height": WINDOW.1,
                        "pixelRatio": 1.0,
                        "mobile": true,
                        "touch": true,
                    },
                },
            }),
        );
        let connect = async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&url)
                .await
        };
        let client = match tokio::time::timeout(SESSION_TIMEOUT, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => bail!(
                "open a WebDriver session at {url} on {}: {e}\nchromedriver log:\n{}",
                chromium.display(),
                driver.log_tail()
            ),
            Err(_) => bail!(
                "open a WebDriver session at {url}: no answer in {SESSION_TIMEOUT:?}\n\
                 chromedriver log:\n{}",
                driver.log_tail()
            ),
        };
        let session = client.session_id().await.ok().flatten();
        Ok(Browser {
            client,
            session,
            driver,
            dir,
        })
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// chromedriver's process id, which is also its process group's.
    pub fn driver_pid(&self) -> u32 {
        self.driver.pid
    }

    /// chromedriver's base URL (`http://127.0.0.1:PORT`).
    pub fn driver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.driver.port)
    }

    /// Chromium's profile (`--user-data-dir`), fresh for this browser.
    pub fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// chromedriver's log so far.
    pub fn driver_log(&self) -> String {
        read_lossy(&self.driver.log)
    }

    /// Open `url` and wait for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))
    }

    /// The element `css` now, or an error naming it, with the page source.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => Ok(el),
            Err(e) => Err(self.page_error(format!("find {css:?}: {e}")).await),
        }
    }

    /// Clear the field `css`, then type `text` into it.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        el.clear().await.with_context(|| format!("clear {css:?}"))?;
        el.send_keys(text)
            .await
            .with_context(|| format!("type into {css:?}"))
    }

    /// Click the element `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        el.click().await.with_context(|| format!("click {css:?}"))
    }

    /// The rendered text of the element `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let el = self.find(css).await?;
        el.text().await.with_context(|| format!("text of {css:?}"))
    }

    /// Wait up to `timeout` for an element `css` to exist.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        let waited = self
            .client
            .wait()
            .at_most(timeout)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        match waited {
            Ok(el) => Ok(el),
            Err(CmdError::WaitTimeout) => Err(self
                .page_error(format!("no element {css:?} after {timeout:?}"))
                .await),
            Err(e) => Err(self.page_error(format!("wait for {css:?}: {e}")).await),
        }
    }

    /// Wait up to `timeout` for an element `css` whose text contains `needle`; its text.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<String> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let found = self
                .client
                .wait()
                .at_most(left)
                .every(POLL)
                .for_element(Locator::Css(css))
                .await;
            match found {
                Ok(el) => match el.text().await {
                    Ok(text) if text.contains(needle) => return Ok(text),
                    Ok(text) => last = Some(text),
                    // Replaced between finding and reading (the page changed): look again.
                    Err(CmdError::Standard(w))
                        if matches!(
                            w.error,
                            ErrorStatus::StaleElementReference | ErrorStatus::NoSuchElement
                        ) => {}
                    Err(e) => return Err(self.page_error(format!("text of {css:?}: {e}")).await),
                },
                Err(CmdError::WaitTimeout) => {}
                Err(e) => return Err(self.page_error(format!("wait for {css:?}: {e}")).await),
            }
            if Instant::now() >= deadline {
                let seen = match last {
                    Some(text) => format!("its text was {text:?}"),
                    None => "there was no such element".to_string(),
                };
                return Err(self
                    .page_error(format!(
                        "no {css:?} containing {needle:?} after {timeout:?}: {seen}"
                    ))
                    .await);
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// A PNG of the window in `<target>/console-screenshots/<name>.png`; its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = crate::binary::target_dir().join("console-screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file}.png"));
        let png = self
            .client
            .screenshot()
            .await
            .with_context(|| format!("screenshot {name:?}"))?;
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// End the session, then kill chromedriver's process group and reap chromedriver. The
    /// processes are gone even when ending the session failed (that error is returned).
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.session = None;
        let ended = tokio::time::timeout(SESSION_TIMEOUT, self.client.clone().close()).await;
        let killed = self.driver.kill();
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("end the WebDriver session: {e}"),
            Err(_) => bail!("end the WebDriver session: no answer in {SESSION_TIMEOUT:?}"),
        }
        killed
    }

    /// `message`, then the first [`SOURCE_PREFIX`] bytes of the current page's source.
    async fn page_error(&self, message: String) -> anyhow::Error {
        let source = match self.client.source().await {
            Ok(source) => prefix(&source, SOURCE_PREFIX).to_string(),
            Err(e) => format!("(cannot read the page source: {e})"),
        };
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown: {e})"),
        };
        anyhow!("{message}\npage {url}, source (first {SOURCE_PREFIX} bytes):\n{source}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Dropping the client would ask for the same from a task, which the kill below would
        // race: end the session here, blocking, while chromedriver is still there.
        if let Some(id) = self.session.take() {
            delete_session(self.driver.port, &id);
        }
        // `driver` drops next (SIGKILL to the group), then `dir`.
    }
}

/// Chromium's command line: headless, quiet, phone-sized, profile in `profile`.
fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// A running chromedriver, leader of its process group; killed with the group when dropped.
struct Driver {
    child: Option<Child>,
    pid: u32,
    port: u16,
    log: PathBuf,
}

/// How one chromedriver start ended.
enum Startup {
    Ready,
    /// It exited (most likely another process took the port between our probe and its bind).
    Exited(String),
    TimedOut,
}

impl Driver {
    /// Start chromedriver on a free port, trying another when it exits early.
    async fn start(bin: &Path, log: &Path) -> anyhow::Result<Driver> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .context("build the HTTP client for chromedriver's /status")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut exits = Vec::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port()?;
            let mut out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("open {}", log.display()))?;
            let _ = writeln!(out, "--- chaos-tests: attempt {attempt}, --port={port}");
            let err = out.try_clone().context("clone the log file handle")?;
            let child = Command::new(bin)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .with_context(|| format!("start {}", bin.display()))?;
            let mut driver = Driver {
                pid: child.id(),
                child: Some(child),
                port,
                log: log.to_path_buf(),
            };
            match driver.wait_ready(&http, deadline).await {
                Startup::Ready => return Ok(driver),
                Startup::Exited(status) => {
                    exits.push(format!("port {port}: {status}"));
                    let _ = driver.kill();
                }
                Startup::TimedOut => {
                    let _ = driver.kill();
                    bail!(
                        "{} on port {port} was not ready in {READY_TIMEOUT:?}\nlog:\n{}",
                        bin.display(),
                        driver.log_tail()
                    );
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        bail!(
            "{} did not come up ({})\nlog:\n{}",
            bin.display(),
            exits.join("; "),
            tail(&read_lossy(log), LOG_TAIL_LINES)
        )
    }

    /// Poll `/status` until it says ready, the process exits, or `deadline`.
    async fn wait_ready(&mut self, http: &reqwest::Client, deadline: Instant) -> Startup {
        let url = format!("http://127.0.0.1:{}/status", self.port);
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => return Startup::Exited(status.to_string()),
                    Ok(None) => {}
                    Err(e) => return Startup::Exited(format!("cannot wait for it: {e}")),
                }
            }
            if let Ok(resp) = http.get(&url).send().await {
                if let Ok(status) = resp.json::<Value>().await {
                    if status["value"]["ready"] == Value::Bool(true) {
                        return Startup::Ready;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Startup::TimedOut;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL the process group, then reap chromedriver. Idempotent.
    fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let group = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.pid)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let group_killed = matches!(&group, Ok(status) if status.success());
        if !group_killed {
            // No such group any more, or no kill(1): at least chromedriver itself.
            let _ = child.kill();
        }
        child
            .wait()
            .with_context(|| format!("reap chromedriver (pid {})", self.pid))?;
        match group {
            Ok(_) => Ok(()),
            Err(e) => Err(anyhow!(e).context(format!("run kill(1) on group {}", self.pid))),
        }
    }

    fn log_tail(&self) -> String {
        tail(&read_lossy(&self.log), LOG_TAIL_LINES)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A port nobody listens on now. chromedriver cannot be told port 0 and report the one it
/// got, so probe one here and give it up; [`Driver::start`] retries when it is taken meanwhile.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0 for a port")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// `DELETE /session/{id}` on chromedriver, blocking, best effort (from `Drop`).
fn delete_session(port: u16, id: &str) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let request = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    match File::open(path).and_then(|mut f| f.read_to_end(&mut buf)) {
        Ok(_) => String::from_utf8_lossy(&buf).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_stops_on_a_char_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("abc", 10), "abc");
    }

    #[test]
    fn args_are_phone_sized_with_the_profile() {
        let args = chromium_args(Path::new("/tmp/p"));
        assert!(args.contains(&"--window-size=390,844".to_string()));
        assert!(args.contains(&"--user-data-dir=/tmp/p".to_string()));
        assert!(args.contains(&"--headless=new".to_string()));
    }
}
