//! The console phase (`--only console`): what the web console's pages cost with many open
//! incidents, and what browsers holding the live list cost the write path. Figures only; the
//! run fails only when an accepted event is missing from a node afterwards.
//!
//! One three-node cluster of its own ([`Rig`]: pagerd's defaults, fsync on every commit, the
//! bench's `[dispatch]` knobs, the bench's on-call document). Then:
//!
//! 1. Preload: `--console-incidents` (default 10,000) open incidents of the `bulk` service
//!    (its policy notifies an hour later: nothing is sent) through `Events.SendBatch` to the
//!    leader, as the resources phase loads ([`resources::load`]); every node caught up, 1 s.
//! 2. Sign in once: `Users.SetPassword` for the document's user `later` (responder), then on a
//!    follower `GET /login` (the form's hidden `csrf` and the `pagerd_login` nonce cookie) and
//!    `POST /login`, which answers 303 with `pagerd_session`. Sign-in is rate limited (5 a
//!    minute per user, 30 per address), so every request of the phase, on every node, presents
//!    that one cookie (a session is signed with a key every node derives from the replicated
//!    link key). No client follows redirects, so a session that stops working shows as a 303,
//!    counted as an error.
//! 3. List latency: `GET /incidents` (the first page: 50 open incidents, newest first) on the
//!    follower, then on the leader, then a deep page `GET /incidents?before=ID` on the follower,
//!    with ID the newest incident's id less 5,000 (the preload's ids are consecutive; the page's
//!    rows are checked: 50 of them, below ID). Each for `--console-list-seconds` (default 20) at
//!    `--console-list-rate` requests a second (default 50), open loop: request `i` is due at
//!    `start + i / rate` and is sent then whether or not earlier ones have answered (each on its
//!    own task; the pool opens connections as needed), and its latency is taken from that due
//!    time, so a stall counts for every request it delayed (no coordinated omission); the
//!    latency from the actual send is recorded beside it. An answer counts when it is 200 with
//!    50 rows; anything else is an error (first few printed). Then, as the figure of a standard
//!    external load generator, `wrk -t2 -c16 -d15s --latency` with the session cookie against
//!    `GET /incidents` on the follower: its requests/s and latency percentiles (closed loop:
//!    16 connections, each sends when its last answer arrived). wrk is Debian's package `wrk`
//!    (`apt-get install wrk`); without it the phase says so and goes on.
//! 4. Ingest with and without live lists: the ingest phase's 64-client gRPC `Events.Send` run
//!    ([`api::run`], every request to the leader, one HTTP/2 connection per client, distinct
//!    dedup keys, `--console-events` events a run, default 20,000: 4-5 s at the 4,000-5,000
//!    events/s measured here, short enough that no snapshot falls inside the three runs; with
//!    80,000 every node snapshotted during the second and third, whose p99.9 then grew to
//!    0.3-0.7 s, issue 13's defect, not the streams'), three times: without streams; with
//!    `--console-streams` (default 500) server-sent-event streams open; without streams again
//!    (the control for drift: the state grows by `--console-events` incidents a run). Like
//!    every ingest run of the bench, it is closed loop (each client times its own calls), so a
//!    slowdown shows in the rate as much as in the percentiles. The streams:
//!    `GET /incidents/stream?status=open&from=REV` with REV the `data-revision` of the leader's
//!    list page read once just before, spread round robin over the three nodes, opened before
//!    the run (each answered 200 `text/event-stream`), each read continuously on a task of its
//!    own, counting `event:` lines and discarding the rest; the first stream on each node (a
//!    probe) also keeps the incident id of every row it received, checked afterwards against
//!    the incidents the run opened (each should arrive once on every stream, as it did in the
//!    list: every run's events are distinct triggers). After the run, the streams are
//!    given until their counts stop growing for a second (at most [`DRAIN`]) to deliver what
//!    they are behind on, then closed. Reported: the three runs' rate, p50/p99/p99.9/max, the
//!    CPU the leader and the nodes spent per event, and the p99 change of the run with streams
//!    against the one before it (and the one after); the events the streams received (during
//!    the run and in all), per second during the run, and how many streams were still open at
//!    the end (a stream the server closed, or that failed, is counted and its first reasons
//!    printed). The leader is read after each run; a change is reported with the end of every
//!    node's log.
//! 5. The no-lost-event check over every event the runs were told was accepted, on every node.
//!
//! Everything shares the machine's cores: the bench reading 500 streams competes with the
//! nodes writing them. 500 streams need about 600 file descriptors in the bench and up to
//! about 200 in each node; the phase prints the soft limit it has (`ulimit -n`; raise it with
//! `ulimit -n 65536` in the shell that starts the bench where the default is 1,024).

use super::api::{self, Call, Run, Target};
use super::ingest::{report_json, Layout, Rig};
use super::{fmt_us, histogram, oncall, resources, us, WAIT};
use anyhow::{anyhow, bail, Context as _};
use chaos_tests::history::History;
use chaos_tests::report::ScenarioReport;
use hdrhistogram::Histogram;
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The document's user who signs in (a responder).
const USER: &str = "later";
const PASSWORD: &str = "console-bench-password";
/// Concurrent clients of the ingest runs (as the ingest table's 64-client row).
const INGEST_CLIENTS: usize = 64;
/// How deep the deep page starts: this many incidents below the newest.
const DEEP: u64 = 5_000;
/// Rows of a full list page (the console's `PAGE`).
const ROWS: usize = 50;
/// Fewest preloaded incidents the deep page needs (a full page below [`DEEP`]).
pub const MIN_INCIDENTS: usize = DEEP as usize + ROWS + 1;
/// Bound on one list request.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// wrk's settings: threads, connections, seconds.
const WRK_THREADS: usize = 2;
const WRK_CONNECTIONS: usize = 16;
const WRK_SECONDS: u64 = 15;
/// Bound on opening every stream.
const OPEN_STREAMS: Duration = Duration::from_secs(60);
/// Longest wait after the run with streams for them to deliver what they are behind on.
pub const DRAIN: Duration = Duration::from_secs(60);
/// Pause once the cluster is caught up, before each ingest run.
const SETTLE: Duration = Duration::from_secs(1);
/// Errors of one list run (and stream failures) printed as they happen (all are counted).
const ERRORS_SHOWN: usize = 3;
/// Bound on the preload and catching up.
const LONG: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Open incidents preloaded.
    pub incidents: usize,
    /// List requests per second of each list run.
    pub rate: u32,
    /// Seconds of each list run.
    pub seconds: u64,
    /// Server-sent-event streams open during the second ingest run.
    pub streams: usize,
    /// Events of each ingest run.
    pub events: usize,
}

/// One list URL at a fixed rate.
pub struct ListRun {
    what: String,
    key: &'static str,
    node: u64,
    path: String,
    /// Requests scheduled (and sent).
    n: usize,
    errors: usize,
    /// Successful answers: from the due time, and from the actual send.
    from_due: Histogram<u64>,
    from_sent: Histogram<u64>,
    /// Bytes of the last good answer.
    bytes: usize,
    /// Rows of the last good answer, and its first and last incident ids.
    rows: usize,
    ids: (u64, u64),
    /// Latest a request was sent after its due time, µs.
    worst_start_us: u64,
}

impl ListRun {
    fn json(&self) -> Value {
        let h = |h: &Histogram<u64>| {
            json!({
                "p50": h.value_at_quantile(0.5),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
            })
        };
        json!({
            "target": self.key,
            "node": self.node,
            "path": self.path,
            "n": self.n,
            "ok": self.from_due.len(),
            "errors": self.errors,
            "bytes": self.bytes,
            "rows": self.rows,
            "first_id": self.ids.0,
            "last_id": self.ids.1,
            "latency_us_from_due": h(&self.from_due),
            "latency_us_from_sent": h(&self.from_sent),
            "worst_send_delay_us": self.worst_start_us,
        })
    }
}

/// wrk's figures, or why there are none.
pub enum Wrk {
    Ran {
        node: u64,
        requests: u64,
        per_s: f64,
        /// Latency percentiles (50, 75, 90, 99) in µs, as wrk prints them.
        p50_us: u64,
        p90_us: u64,
        p99_us: u64,
        non_2xx_3xx: u64,
        socket_errors: String,
    },
    Missing(String),
}

impl Wrk {
    fn json(&self) -> Value {
        match self {
            Wrk::Ran {
                node,
                requests,
                per_s,
                p50_us,
                p90_us,
                p99_us,
                non_2xx_3xx,
                socket_errors,
            } => json!({
                "command": format!("wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s --latency -H 'Cookie: pagerd_session=...' http://<follower>/incidents"),
                "node": node,
                "requests": requests,
                "requests_per_s": per_s,
                "latency_us": { "p50": p50_us, "p90": p90_us, "p99": p99_us },
                "non_2xx_3xx": non_2xx_3xx,
                "socket_errors": socket_errors,
            }),
            Wrk::Missing(why) => json!({ "missing": why }),
        }
    }
}

/// How a stream ended, when it ended before the phase closed it.
struct Ended {
    node: u64,
    after: Duration,
    why: String,
}

/// The streams of the second ingest run.
pub struct Streams {
    asked: usize,
    per_node: Vec<(u64, usize)>,
    from_revision: u64,
    opened: usize,
    /// Answered with something other than 200 `text/event-stream`, or not at all.
    refused: Vec<String>,
    /// Still open when the phase closed them.
    open_at_end: usize,
    ended_early: Vec<Ended>,
    /// `event:` lines received: while the run lasted, and in all.
    during_run: u64,
    total: u64,
    removes: u64,
    /// From the run's end to the counts' standing still (at most [`DRAIN`]).
    drain: Duration,
    drained: bool,
    run_seconds: f64,
    /// Incidents the run opened: each stream should see each once.
    run_events: usize,
    /// Log entries the leader applied during the run (events are batched into entries).
    run_entries: u64,
    /// One probe stream per node: of the incidents the run opened, how many it received a
    /// row of.
    probes: Vec<(u64, usize, usize)>,
}

pub struct ConsolePhase {
    settings: Settings,
    leader: u64,
    follower: u64,
    term: u64,
    preload: Duration,
    preload_refused: usize,
    open_files: Option<u64>,
    lists: Vec<ListRun>,
    wrk: Wrk,
    /// Without streams, with them, without again.
    runs: Vec<Run>,
    streams: Streams,
    report: ScenarioReport,
    seconds: f64,
}

/// The soft limit on open files of this process (`/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The console's HTTP client: no redirects followed (a lost session shows as 303), no overall
/// timeout (streams stay open; list requests set their own).
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .context("build the HTTP client")
}

/// The value of cookie `name` in a response's `Set-Cookie` headers.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The value of attribute `attr` right after the first `marker` in `html`.
fn attribute<'a>(html: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let at = html.find(marker)? + marker.len();
    let rest = &html[at..];
    let end = rest.find('>').unwrap_or(rest.len());
    let tag = &rest[..end];
    let start = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Set the user's password, wait for every node to have it, and sign in on `node`: the
/// session cookie's value.
async fn sign_in(
    c: &chaos_tests::cluster::Cluster,
    leader: u64,
    node: u64,
) -> anyhow::Result<String> {
    let set = pb::users_client::UsersClient::new(c.channel(leader)?)
        .set_password(pb::SetPasswordRequest {
            user: USER.into(),
            password: PASSWORD.into(),
            role: "responder".into(),
        })
        .await
        .map_err(|s| anyhow!("Users.SetPassword {USER}: {s}"))?
        .into_inner();
    for id in c.ids() {
        c.wait_applied(id, set.commit_index, WAIT).await?;
    }
    let http = http_client()?;
    let base = format!("http://{}", c.ports(node)?.http);
    let form = http
        .get(format!("{base}/login"))
        .send()
        .await
        .context("GET /login")?;
    let nonce = set_cookie(&form, "pagerd_login")
        .ok_or_else(|| anyhow!("GET /login set no pagerd_login cookie"))?;
    let page = form.text().await.context("GET /login: the page")?;
    let csrf = attribute(&page, "name=\"csrf\"", "value")
        .ok_or_else(|| anyhow!("GET /login: no csrf field in the form"))?
        .to_string();
    let res = http
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, format!("pagerd_login={nonce}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("user", USER),
            ("password", PASSWORD),
            ("next", "/incidents"),
        ])
        .send()
        .await
        .context("POST /login")?;
    let status = res.status();
    match set_cookie(&res, "pagerd_session") {
        Some(session) if status == reqwest::StatusCode::SEE_OTHER => Ok(session),
        _ => bail!(
            "POST /login answered {status}: {}",
            res.text().await.unwrap_or_default()
        ),
    }
}

/// A list page's rows: how many, and the first and last incident ids.
fn rows_of(html: &str) -> (usize, u64, u64) {
    let marker = "<li id=\"incident-";
    let ids: Vec<u64> = html
        .match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect();
    (
        ids.len(),
        ids.first().copied().unwrap_or(0),
        ids.last().copied().unwrap_or(0),
    )
}

/// One list request: the page's bytes, rows and first and last ids, or why it failed.
async fn get_list(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
) -> Result<(usize, usize, (u64, u64)), String> {
    let res = http
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .timeout(LIST_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = res.status();
    let body = res
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading the page: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: {status}"));
    }
    let (rows, first, last) = rows_of(&body);
    if rows != ROWS {
        return Err(format!("GET {url}: {rows} rows, not {ROWS}"));
    }
    Ok((body.len(), rows, (first, last)))
}

/// `GET path` on `node` at `rate` a second for `seconds`, open loop (see the module docs).
async fn list_run(
    c: &chaos_tests::cluster::Cluster,
    node: u64,
    what: String,
    key: &'static str,
    path: String,
    cookie: Arc<str>,
    s: &Settings,
) -> anyhow::Result<ListRun> {
    let http = http_client()?;
    let url: Arc<str> = format!("http://{}{path}", c.ports(node)?.http).into();
    // One request first, so the pool has a connection open before the clock starts.
    get_list(&http, &url, &cookie)
        .await
        .map_err(|e| anyhow!("{what}: {e}"))?;
    let n = (s.rate as u64 * s.seconds) as usize;
    let period = Duration::from_secs_f64(1.0 / s.rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (http, url, cookie) = (http.clone(), url.clone(), cookie.clone());
        tasks.spawn(async move {
            let sent = tokio::time::Instant::now();
            let r = get_list(&http, &url, &cookie).await;
            let done = tokio::time::Instant::now();
            (done - due, done - sent, sent - due, r)
        });
    }
    let mut out = ListRun {
        what,
        key,
        node,
        path,
        n,
        errors: 0,
        from_due: histogram(),
        from_sent: histogram(),
        bytes: 0,
        rows: 0,
        ids: (0, 0),
        worst_start_us: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (from_due, from_sent, late, r) = done.context("list request task")?;
        out.worst_start_us = out.worst_start_us.max(late.as_micros() as u64);
        match r {
            Ok((bytes, rows, ids)) => {
                let _ = out.from_due.record(us(from_due));
                let _ = out.from_sent.record(us(from_sent));
                (out.bytes, out.rows, out.ids) = (bytes, rows, ids);
            }
            Err(e) => {
                out.errors += 1;
                if out.errors <= ERRORS_SHOWN {
                    eprintln!("bench: console: {e}");
                }
            }
        }
    }
    Ok(out)
}

/// A wrk latency figure ("1.23ms", "456.78us", "1.02s") in µs.
fn wrk_duration_us(text: &str) -> Option<u64> {
    let (num, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1_000.0)
    } else if let Some(v) = text.strip_suffix("m") {
        (v, 60_000_000.0)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1_000_000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| (v * scale) as u64)
}

/// wrk's output (with `--latency`): requests/s, the requests, the 50/90/99th percentiles.
fn parse_wrk(node: u64, out: &str) -> anyhow::Result<Wrk> {
    let percentile = |p: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| wrk_duration_us(v.trim()))
            .ok_or_else(|| anyhow!("no {p} line in wrk's output:\n{out}"))
    };
    let per_s = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no Requests/sec in wrk's output:\n{out}"))?;
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let non_2xx_3xx = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let socket_errors = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    Ok(Wrk::Ran {
        node,
        requests,
        per_s,
        p50_us: percentile("50%")?,
        p90_us: percentile("90%")?,
        p99_us: percentile("99%")?,
        non_2xx_3xx,
        socket_errors,
    })
}

async fn wrk(addr: SocketAddr, node: u64, cookie: &str) -> anyhow::Result<Wrk> {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{WRK_SECONDS}s"))
        .arg("-H")
        .arg(format!("Cookie: {cookie}"))
        .arg("--latency")
        .arg(format!("http://{addr}/incidents"))
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Wrk::Missing(
                "wrk is not installed (apt-get install wrk): no external load generator figure"
                    .into(),
            ))
        }
        Err(e) => return Err(e).context("run wrk"),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Ok(Wrk::Missing(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    eprintln!("bench: console: wrk said:\n{text}");
    parse_wrk(node, &text)
}

/// Counts `event:` lines of a server-sent-event body fed in arbitrary chunks; a probe also
/// keeps the incident id of every row (`data: <li id="incident-N"`) it received.
#[derive(Default)]
struct SseCount {
    /// The start of the line the last chunk ended in (enough of it to classify).
    line: Vec<u8>,
    events: u64,
    removes: u64,
    ids: Option<HashSet<u64>>,
}

impl SseCount {
    const KEEP: usize = 48;
    const ROW: &'static [u8] = b"data: <li id=\"incident-";

    fn line_done(&mut self, l: &[u8]) {
        if l.starts_with(b"event:") {
            self.events += 1;
            if l.trim_ascii_end().ends_with(b"remove") {
                self.removes += 1;
            }
        } else if let Some(ids) = self.ids.as_mut() {
            if let Some(rest) = l.strip_prefix(Self::ROW) {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if let Some(id) = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|d| d.parse().ok())
                {
                    ids.insert(id);
                }
            }
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let head = &rest[..nl];
            if self.line.is_empty() {
                self.line_done(head);
            } else {
                let keep = head.len().min(Self::KEEP);
                self.line.extend_from_slice(&head[..keep]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            }
            rest = &rest[nl + 1..];
        }
        let room = Self::KEEP.saturating_sub(self.line.len());
        self.line.extend_from_slice(&rest[..rest.len().min(room)]);
    }
}

/// What the stream tasks share.
struct Shared {
    events: AtomicU64,
    removes: AtomicU64,
    /// Streams answered 200 (or refused): the opener waits for all.
    opened: AtomicUsize,
    refused: AtomicUsize,
}

/// How one stream task ended.
enum StreamEnd {
    Refused(String),
    /// Still open when told to stop.
    Stopped,
    Ended(Ended),
}

/// One stream, read until `stop`; a `probe` also returns the incident ids of its rows.
async fn one_stream(
    http: reqwest::Client,
    url: String,
    node: u64,
    cookie: Arc<str>,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Receiver<bool>,
    probe: bool,
) -> (u64, StreamEnd, Option<HashSet<u64>>) {
    let mut count = SseCount {
        ids: probe.then(HashSet::new),
        ..SseCount::default()
    };
    let end = read_stream(&http, &url, node, &cookie, &shared, stop, &mut count).await;
    (node, end, count.ids)
}

async fn read_stream(
    http: &reqwest::Client,
    url: &str,
    node: u64,
    cookie: &str,
    shared: &Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
    count: &mut SseCount,
) -> StreamEnd {
    let res = http
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await;
    let mut res = match res {
        Ok(r)
            if r.status() == reqwest::StatusCode::OK
                && r.headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream")) =>
        {
            r
        }
        Ok(r) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return StreamEnd::Refused(format!("GET {url}: {}", r.status()));
        }
        Err(e) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return StreamEnd::Refused(format!("GET {url}: {e}"));
        }
    };
    shared.opened.fetch_add(1, Ordering::Relaxed);
    let opened = Instant::now();
    loop {
        let chunk = tokio::select! {
            c = res.chunk() => c,
            _ = stop.changed() => return StreamEnd::Stopped,
        };
        let (events, removes) = (count.events, count.removes);
        match chunk {
            Ok(Some(bytes)) => {
                count.feed(&bytes);
                shared
                    .events
                    .fetch_add(count.events - events, Ordering::Relaxed);
                shared
                    .removes
                    .fetch_add(count.removes - removes, Ordering::Relaxed);
            }
            Ok(None) => {
                return StreamEnd::Ended(Ended {
                    node,
                    after: opened.elapsed(),
                    why: "the server ended the stream".into(),
                })
            }
            Err(e) => {
                return StreamEnd::Ended(Ended {
                    node,
                    after: opened.elapsed(),
                    why: format!("{e}"),
                })
            }
        }
    }
}

/// The first list page's `data-revision`, read on `node`.
async fn list_revision(
    c: &chaos_tests::cluster::Cluster,
    node: u64,
    cookie: &str,
) -> anyhow::Result<u64> {
    let url = format!("http://{}/incidents", c.ports(node)?.http);
    let page = http_client()?
        .get(&url)
        .header(reqwest::header::COOKIE, cookie)
        .timeout(LIST_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    attribute(&page, "<ul id=\"incidents\"", "data-revision")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| anyhow!("GET {url}: no data-revision on the list"))
}

/// The newest open incident's id, from the first list page on `node`.
async fn newest_id(
    c: &chaos_tests::cluster::Cluster,
    node: u64,
    cookie: &str,
) -> anyhow::Result<u64> {
    let url = format!("http://{}/incidents", c.ports(node)?.http);
    let (_, _, (first, _)) = get_list(&http_client()?, &url, cookie)
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(first)
}

async fn ingest_run(
    c: &chaos_tests::cluster::Cluster,
    leader: u64,
    pass: usize,
    events: usize,
    history: &mut History,
) -> anyhow::Result<Run> {
    c.wait_all_caught_up(leader, LONG).await?;
    tokio::time::sleep(SETTLE).await;
    let target = Target::new(c, pass, "console", leader, None)?;
    let none = Arc::new(Vec::new());
    ingest_checked(c, leader, &target, events, none, history).await
}

/// One ingest run, then the leader: a change is reported with the nodes' log tails.
async fn ingest_checked(
    c: &chaos_tests::cluster::Cluster,
    leader: u64,
    target: &Target,
    events: usize,
    ids: Arc<Vec<u64>>,
    history: &mut History,
) -> anyhow::Result<Run> {
    let r = api::run(c, target, Call::Send, INGEST_CLIENTS, events, ids, history).await?;
    let after = c.wait_for_leader(WAIT).await?;
    if after.id != leader {
        eprintln!(
            "bench: console: LEADER CHANGED during an ingest run: node {leader} -> node {} (term {})",
            after.id, after.term
        );
        c.print_log_tails(30);
    }
    Ok(r)
}

fn say_run(label: &str, r: &Run) {
    eprintln!(
        "bench: console: ingest {label}: {:.0}/s, p50 {}, p99 {}, p99.9 {}, {} errors",
        r.rate(),
        fmt_us(r.latency.value_at_quantile(0.5)),
        fmt_us(r.latency.value_at_quantile(0.99)),
        fmt_us(r.latency.value_at_quantile(0.999)),
        r.errors
    );
}

pub async fn run_phase(s: Settings) -> anyhow::Result<ConsolePhase> {
    let began = Instant::now();
    let say = |msg: String| {
        eprintln!(
            "bench: console [{:6.1} s] {msg}",
            began.elapsed().as_secs_f64()
        )
    };
    let open_files = open_files_limit();
    if let Some(n) = open_files {
        if (n as usize) < s.streams + 1_000 {
            eprintln!(
                "bench: console: the open-file limit is {n}; {} streams may need more (ulimit -n 65536)",
                s.streams
            );
        }
    }
    let rig = Rig::start(Layout::Three, None, &oncall()).await?;
    let c = &rig.cluster;
    let leader = c.wait_for_leader(WAIT).await?;
    let follower = c.follower_of(leader.id)?;
    c.wait_all_caught_up(leader.id, WAIT).await?;
    say(format!(
        "3 nodes up under {}, node {} leads (term {}); the list runs on node {follower} too",
        c.root().display(),
        leader.id,
        leader.term
    ));

    let t = Instant::now();
    let preload_refused = resources::load(c, leader.id, 0, s.incidents).await?;
    c.wait_all_caught_up(leader.id, LONG).await?;
    let preload = t.elapsed();
    tokio::time::sleep(SETTLE).await;
    say(format!(
        "{} incidents preloaded in {:.1} s ({preload_refused} refused)",
        s.incidents,
        preload.as_secs_f64()
    ));

    let session = sign_in(c, leader.id, follower).await?;
    let cookie: Arc<str> = format!("pagerd_session={session}").into();
    say(format!("signed in as {USER} on node {follower}"));

    let newest = newest_id(c, follower, &cookie).await?;
    let before = newest.saturating_sub(DEEP);
    let plan = [
        (
            follower,
            format!("GET /incidents, follower (node {follower})"),
            "first_page_follower",
            "/incidents".to_string(),
        ),
        (
            leader.id,
            format!("GET /incidents, leader (node {})", leader.id),
            "first_page_leader",
            "/incidents".to_string(),
        ),
        (
            follower,
            format!("GET /incidents?before={before}, follower"),
            "deep_page_follower",
            format!("/incidents?before={before}"),
        ),
    ];
    let mut lists = Vec::new();
    for (node, what, key, path) in plan {
        say(format!("{what}: {} a second for {} s", s.rate, s.seconds));
        let r = list_run(c, node, what, key, path, cookie.clone(), &s).await?;
        say(format!(
            "{}: p50 {}, p99 {}, max {}, {} errors",
            r.what,
            fmt_us(r.from_due.value_at_quantile(0.5)),
            fmt_us(r.from_due.value_at_quantile(0.99)),
            fmt_us(r.from_due.max()),
            r.errors
        ));
        lists.push(r);
    }
    say(format!("wrk against GET /incidents on node {follower}"));
    let wrk = wrk(c.ports(follower)?.http, follower, &cookie).await?;

    let mut history = History::default();
    let mut runs = Vec::new();
    say(format!(
        "ingest without streams: {} events from {INGEST_CLIENTS} clients",
        s.events
    ));
    let r = ingest_run(c, leader.id, 0, s.events, &mut history).await?;
    say_run("without streams (before)", &r);
    runs.push(r);

    // The streams: from the list's revision, round robin over the nodes.
    let from_revision = list_revision(c, leader.id, &cookie).await?;
    let ids = c.ids();
    let shared = Arc::new(Shared {
        events: AtomicU64::new(0),
        removes: AtomicU64::new(0),
        opened: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = http_client()?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut per_node: Vec<(u64, usize)> = ids.iter().map(|&id| (id, 0)).collect();
    for i in 0..s.streams {
        let node = ids[i % ids.len()];
        per_node[i % ids.len()].1 += 1;
        let url = format!(
            "http://{}/incidents/stream?status=open&from={from_revision}",
            c.ports(node)?.http
        );
        tasks.spawn(one_stream(
            http.clone(),
            url,
            node,
            cookie.clone(),
            shared.clone(),
            stop_rx.clone(),
            i < ids.len(),
        ));
    }
    let opening = Instant::now();
    while shared.opened.load(Ordering::Relaxed) + shared.refused.load(Ordering::Relaxed) < s.streams
    {
        if opening.elapsed() > OPEN_STREAMS {
            eprintln!(
                "bench: console: only {} of {} streams answered within {OPEN_STREAMS:?}",
                shared.opened.load(Ordering::Relaxed),
                s.streams
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = shared.opened.load(Ordering::Relaxed);
    say(format!(
        "{opened} of {} streams open from revision {from_revision} in {} ms ({} refused)",
        s.streams,
        opening.elapsed().as_millis(),
        shared.refused.load(Ordering::Relaxed)
    ));
    tokio::time::sleep(SETTLE).await;
    let before_run = shared.events.load(Ordering::Relaxed);
    let index_before = c.status(leader.id).await?.applied_index;
    let accepted_before = history.accepted.len();
    say(format!(
        "ingest with {opened} streams: {} events from {INGEST_CLIENTS} clients",
        s.events
    ));
    let target = Target::new(c, 1, "console", leader.id, None)?;
    let r = ingest_checked(
        c,
        leader.id,
        &target,
        s.events,
        Arc::new(Vec::new()),
        &mut history,
    )
    .await?;
    let during_run = shared.events.load(Ordering::Relaxed) - before_run;
    let run_entries = c
        .status(leader.id)
        .await?
        .applied_index
        .saturating_sub(index_before);
    let run_incidents: HashSet<u64> = history.accepted[accepted_before..]
        .iter()
        .filter(|a| !a.folded)
        .map(|a| a.incident)
        .collect();
    say_run(&format!("with {opened} streams"), &r);
    let run_seconds = r.elapsed.as_secs_f64();
    runs.push(r);
    // Let the streams deliver what they are behind on.
    let drain_began = Instant::now();
    let mut last = shared.events.load(Ordering::Relaxed);
    let mut still = Instant::now();
    let drained = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = shared.events.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() >= Duration::from_secs(1) {
            break true;
        }
        if drain_began.elapsed() > DRAIN {
            break false;
        }
    };
    // Up to the last event that arrived.
    let drain = still.duration_since(drain_began);
    let total = shared.events.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut streams = Streams {
        asked: s.streams,
        per_node,
        from_revision,
        opened,
        refused: Vec::new(),
        open_at_end: 0,
        ended_early: Vec::new(),
        during_run,
        total,
        removes: shared.removes.load(Ordering::Relaxed),
        drain,
        drained,
        run_seconds,
        run_events: run_incidents.len(),
        run_entries,
        probes: Vec::new(),
    };
    while let Some(end) = tasks.join_next().await {
        let (node, end, seen) = end.context("stream task")?;
        if let Some(seen) = seen {
            let got = run_incidents.iter().filter(|i| seen.contains(i)).count();
            streams.probes.push((node, got, run_incidents.len()));
        }
        match end {
            StreamEnd::Stopped => streams.open_at_end += 1,
            StreamEnd::Refused(why) => streams.refused.push(why),
            StreamEnd::Ended(e) => streams.ended_early.push(e),
        }
    }
    streams.probes.sort_unstable();
    drop(http);
    for why in streams.refused.iter().take(ERRORS_SHOWN) {
        eprintln!("bench: console: stream refused: {why}");
    }
    for e in streams.ended_early.iter().take(ERRORS_SHOWN) {
        eprintln!(
            "bench: console: stream to node {} ended after {:.1} s: {}",
            e.node,
            e.after.as_secs_f64(),
            e.why
        );
    }
    say(format!(
        "streams: {total} events ({during_run} during the run), open at the end {} of {opened}, drained in {} ms{}",
        streams.open_at_end,
        drain.as_millis(),
        if drained { "" } else { " (still growing: gave up)" }
    ));

    say("ingest without streams again (control)".into());
    let r = ingest_run(c, leader.id, 2, s.events, &mut history).await?;
    say_run("without streams (after)", &r);
    runs.push(r);
    api::mark_snapshots(c, &mut runs);

    say(format!(
        "checking that the {} accepted events are on every node",
        history.accepted.len()
    ));
    let report = rig.check("bench-console", &history).await?;
    let leader_after = c.wait_for_leader(WAIT).await?;
    if leader_after != leader {
        eprintln!(
            "bench: console: the leader changed during the phase (node {} term {} -> node {} term {})",
            leader.id, leader.term, leader_after.id, leader_after.term
        );
    }
    Ok(ConsolePhase {
        settings: s,
        leader: leader.id,
        follower,
        term: leader.term,
        preload,
        preload_refused,
        open_files,
        lists,
        wrk,
        runs,
        streams,
        report,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Relative change of `b` against `a`, in percent.
fn change_pct(a: u64, b: u64) -> f64 {
    if a == 0 {
        0.0
    } else {
        100.0 * (b as f64 - a as f64) / a as f64
    }
}

const RUN_LABELS: [&str; 3] = [
    "without streams (before)",
    "with streams",
    "without streams (after)",
];
const RUN_KEYS: [&str; 3] = ["without_streams", "with_streams", "without_streams_after"];

impl ConsolePhase {
    pub fn is_clean(&self) -> bool {
        self.report.is_clean()
    }

    pub fn lost(&self) -> usize {
        self.report.lost
    }

    fn p99(&self, i: usize) -> u64 {
        self.runs
            .get(i)
            .map_or(0, |r| r.latency.value_at_quantile(0.99))
    }

    pub fn print(&self) {
        let s = &self.settings;
        println!();
        println!(
            "console: 3 nodes, node {} leads (term {}), follower node {}; {} open incidents preloaded in {:.1} s ({} refused); one signed-in session (user {USER}) for every request; open-file limit {}",
            self.leader,
            self.term,
            self.follower,
            s.incidents,
            self.preload.as_secs_f64(),
            self.preload_refused,
            self.open_files.map_or("unknown".to_string(), |n| n.to_string()),
        );
        println!(
            "console: list pages, open loop at {} requests/s for {} s each; latency from each request's due time (from its actual send in the last column); ok = 200 with {ROWS} rows",
            s.rate, s.seconds
        );
        println!(
            "{:<40} {:>6} {:>6} {:>6} {:>7} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "page", "n", "ok", "errors", "KiB", "p50", "p99", "p99.9", "max", "sent->p99"
        );
        for l in &self.lists {
            println!(
                "{:<40} {:>6} {:>6} {:>6} {:>7.1} {:>9} {:>9} {:>9} {:>9} {:>12}",
                l.what,
                l.n,
                l.from_due.len(),
                l.errors,
                l.bytes as f64 / 1024.0,
                api::fmt_lat(l.from_due.value_at_quantile(0.5)),
                api::fmt_lat(l.from_due.value_at_quantile(0.99)),
                api::fmt_lat(l.from_due.value_at_quantile(0.999)),
                api::fmt_lat(l.from_due.max()),
                api::fmt_lat(l.from_sent.value_at_quantile(0.99)),
            );
        }
        if let Some(deep) = self.lists.iter().find(|l| l.key == "deep_page_follower") {
            println!(
                "(the deep page's rows: incidents #{} to #{})",
                deep.ids.0, deep.ids.1
            );
        }
        match &self.wrk {
            Wrk::Ran {
                node,
                requests,
                per_s,
                p50_us,
                p90_us,
                p99_us,
                non_2xx_3xx,
                socket_errors,
            } => println!(
                "wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s --latency, GET /incidents on node {node} (closed loop): {per_s:.0} requests/s ({requests} in all), p50 {}, p90 {}, p99 {}; non-2xx/3xx {non_2xx_3xx}{}",
                api::fmt_lat(*p50_us),
                api::fmt_lat(*p90_us),
                api::fmt_lat(*p99_us),
                if socket_errors.is_empty() {
                    String::new()
                } else {
                    format!("; socket errors: {socket_errors}")
                }
            ),
            Wrk::Missing(why) => println!("wrk: {why}"),
        }
        println!();
        println!(
            "console: ingest, gRPC Events.Send from {INGEST_CLIENTS} clients to the leader, {} events a run (closed loop, as the ingest table); the middle run with {} live streams open",
            s.events, self.streams.opened
        );
        println!(
            "{:<28} {} {:>9} {}",
            "run",
            Run::rate_header("events/s"),
            "max",
            Run::cost_header()
        );
        for (i, r) in self.runs.iter().enumerate() {
            println!(
                "{:<28} {} {:>9} {}",
                RUN_LABELS[i],
                r.rate_cells(),
                api::fmt_lat(r.latency.max()),
                r.cost_cells()
            );
        }
        println!("(leader µs, nodes µs: CPU time the leader, and all the nodes, spent per event; others: CPU of both cores used by processes other than the bench and the nodes; snapshot: nodes that finished one during the run)");
        if self.runs.len() == 3 {
            println!(
                "ingest p99 with streams: {:+.1}% against the run before, {:+.1}% against the run after; events/s {:+.1}% / {:+.1}%",
                change_pct(self.p99(0), self.p99(1)),
                change_pct(self.p99(2), self.p99(1)),
                100.0 * (self.runs[1].rate() / self.runs[0].rate() - 1.0),
                100.0 * (self.runs[1].rate() / self.runs[2].rate() - 1.0),
            );
        }
        let st = &self.streams;
        let nodes: Vec<String> = st
            .per_node
            .iter()
            .map(|(id, n)| format!("{n} on node {id}"))
            .collect();
        println!(
            "streams: {} asked ({}), from revision {}; {} opened, {} refused; open at the end: {} of {}; ended early: {}",
            st.asked,
            nodes.join(", "),
            st.from_revision,
            st.opened,
            st.refused.len(),
            st.open_at_end,
            st.opened,
            st.ended_early.len()
        );
        println!(
            "streams: {} events received during the run ({:.0}/s over its {:.1} s), {} in all ({} removes); {} expected ({} incidents x {} streams); the last arrived {:.1} s after the run{}",
            st.during_run,
            st.during_run as f64 / st.run_seconds.max(1e-9),
            st.run_seconds,
            st.total,
            st.removes,
            st.run_events as u64 * st.opened as u64,
            st.run_events,
            st.opened,
            st.drain.as_secs_f64(),
            if st.drained {
                String::new()
            } else {
                format!(" (still arriving after {} s: gave up)", DRAIN.as_secs())
            }
        );
        println!(
            "streams: the leader applied {} log entries during the run ({:.1} events each); {}",
            st.run_entries,
            st.run_events as f64 / st.run_entries.max(1) as f64,
            st.probes
                .iter()
                .map(|(node, got, of)| format!(
                    "the probe stream on node {node} received a row for {got} of the {of} incidents the run opened"
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        println!("{}", self.report.with_violations());
    }

    pub fn json(&self) -> Value {
        let s = &self.settings;
        let st = &self.streams;
        let runs: Vec<Value> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut v = r.json();
                v["run"] = json!(RUN_KEYS[i]);
                v["streams_open"] = json!(if i == 1 { st.opened } else { 0 });
                v
            })
            .collect();
        json!({
            "seconds": self.seconds,
            "leader": self.leader,
            "term": self.term,
            "follower": self.follower,
            "incidents": s.incidents,
            "preload_seconds": self.preload.as_secs_f64(),
            "preload_refused": self.preload_refused,
            "open_files_limit": self.open_files,
            "list": {
                "rate_per_s": s.rate,
                "seconds": s.seconds,
                "open_loop": true,
                "runs": self.lists.iter().map(ListRun::json).collect::<Vec<_>>(),
            },
            "wrk": self.wrk.json(),
            "ingest": {
                "clients": INGEST_CLIENTS,
                "events": s.events,
                "runs": runs,
                "p99_change_pct": change_pct(self.p99(0), self.p99(1)),
                "p99_change_pct_vs_after": change_pct(self.p99(2), self.p99(1)),
            },
            "streams": {
                "asked": st.asked,
                "per_node": st.per_node.iter().map(|(id, n)| json!({"node": id, "streams": n})).collect::<Vec<_>>(),
                "from_revision": st.from_revision,
                "opened": st.opened,
                "refused": st.refused.len(),
                "open_at_end": st.open_at_end,
                "ended_early": st.ended_early.iter().map(|e| json!({
                    "node": e.node,
                    "after_s": e.after.as_secs_f64(),
                    "why": e.why,
                })).collect::<Vec<_>>(),
                "events_during_run": st.during_run,
                "events_per_s_during_run": st.during_run as f64 / st.run_seconds.max(1e-9),
                "events_total": st.total,
                "removes": st.removes,
                "events_expected": st.run_events as u64 * st.opened as u64,
                "run_log_entries": st.run_entries,
                "probes": st.probes.iter().map(|(node, got, of)| json!({
                    "node": node,
                    "incidents_received": got,
                    "incidents_opened": of,
                })).collect::<Vec<_>>(),
                "drain_s": st.drain.as_secs_f64(),
                "drained": st.drained,
            },
            "report": report_json(&self.report),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_event_lines_across_chunks() {
        let body =
            b"id: 7\nevent: upsert\ndata: <li>a</li>\n\n:\n\nid: 8\nevent: remove\ndata: 3\n\n";
        for split in 0..body.len() {
            let mut c = SseCount::default();
            c.feed(&body[..split]);
            c.feed(&body[split..]);
            assert_eq!((c.events, c.removes), (2, 1), "split at {split}");
        }
        let mut c = SseCount {
            ids: Some(HashSet::new()),
            ..SseCount::default()
        };
        let body = b"id: 7\nevent: upsert\ndata: <li id=\"incident-12\" class=\"x\">\n\nid: 8\nevent: remove\ndata: 3\n\n";
        for b in body.iter() {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!((c.events, c.removes), (2, 1));
        assert_eq!(c.ids, Some(HashSet::from([12])));
    }

    #[test]
    fn reads_wrk() {
        let out = "Running 15s test @ http://127.0.0.1:1/incidents
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    2.01ms  40.00ms   80.00%
    Req/Sec     1.50k   100.00    1.70k    70.00%
  Latency Distribution
     50%    4.80ms
     75%    6.00ms
     90%    7.50ms
     99%   12.34ms
  45000 requests in 15.00s, 900.00MB read
Requests/sec:   3000.12
Transfer/sec:     60.00MB
";
        match parse_wrk(2, out).unwrap() {
            Wrk::Ran {
                requests,
                per_s,
                p50_us,
                p99_us,
                ..
            } => {
                assert_eq!(requests, 45_000);
                assert!((per_s - 3000.12).abs() < 1e-6);
                assert_eq!((p50_us, p99_us), (4_800, 12_340));
            }
            Wrk::Missing(w) => panic!("{w}"),
        }
        assert_eq!(wrk_duration_us("812.00us"), Some(812));
        assert_eq!(wrk_duration_us("1.02s"), Some(1_020_000));
    }

    #[test]
    fn reads_list_pages() {
        let html = r#"<ul id="incidents" class="incidents" data-revision="1234" data-query="x"><li id="incident-9" class="incident"></li><li id="incident-8" class="incident"></li></ul>"#;
        assert_eq!(
            attribute(html, "<ul id=\"incidents\"", "data-revision"),
            Some("1234")
        );
        assert_eq!(rows_of(html), (2, 9, 8));
        let form = r#"<input type="hidden" name="csrf" value="abc-_1">"#;
        assert_eq!(attribute(form, "name=\"csrf\"", "value"), Some("abc-_1"));
    }
}
