//! The browser harness itself ([`chaos_tests::browser`]), on a page served by this test: a
//! hand-written HTTP/1.1 responder on loopback serves a form whose GET submit to `/hello`
//! answers `<p id="greeting">hello NAME</p>`. A headless Chromium opens it in a phone-sized
//! window, fills the name, clicks, waits for the greeting and takes a screenshot; closing the
//! browser leaves no chromedriver and no Chromium behind.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`, or
//! `CHROMIUM` / `CHROMEDRIVER`); without them the test fails, it does not skip.

use chaos_tests::browser::{self, Browser};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Bound on each wait for the page.
const WAIT: Duration = Duration::from_secs(15);
const NAME: &str = "Ada Lovelace";

const FORM: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>t81 form</title></head>
<body><form action="/hello" method="get">
<label for="name">Name</label> <input id="name" name="name" value="placeholder">
<button id="go" type="submit">Say hello</button>
</form></body></html>
"#;

#[tokio::test]
async fn browser_fills_a_form_clicks_and_screenshots() -> anyhow::Result<()> {
    chaos_tests::init_tracing();
    assert!(
        Browser::available(),
        "no browser: install the Debian packages chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`), or point CHROMIUM and CHROMEDRIVER \
         at the executables (looked for {} and {})",
        browser::chromium_path().display(),
        browser::chromedriver_path().display()
    );
    let addr = serve().await?;

    let browser = Browser::start().await?;
    let pid = browser.driver_pid();
    let profile = browser.profile_dir();
    assert!(alive(pid), "chromedriver {pid} is not running after start");

    browser.goto(&format!("http://{addr}/")).await?;
    browser.wait_for("#name", WAIT).await?;
    let width = browser
        .client()
        .execute("return window.innerWidth", vec![])
        .await?;
    let width = width.as_u64().unwrap_or(0);
    assert!(
        (300..=browser::WINDOW.0 as u64).contains(&width),
        "window.innerWidth is {width}, not phone-sized"
    );
    browser.fill("#name", NAME).await?;
    browser.click("#go").await?;
    let greeting = browser
        .wait_for_text("#greeting", &format!("hello {NAME}"), WAIT)
        .await?;
    assert_eq!(greeting, format!("hello {NAME}"));
    assert_eq!(browser.text("#greeting").await?, greeting);

    // The errors name the selector and carry the page.
    let missing = browser
        .wait_for("#nowhere", Duration::from_millis(300))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(missing.contains("#nowhere"), "{missing}");
    assert!(missing.contains("greeting"), "{missing}");

    let shot = browser.screenshot("t81_browser_hello").await?;
    let png = std::fs::read(&shot)?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );
    assert!(shot.ends_with("console-screenshots/t81_browser_hello.png"));
    // IHDR: width and height, big-endian, at bytes 16..24.
    let size = |at: usize| {
        png.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    assert_eq!(size(16), Some(browser::WINDOW.0), "screenshot width");

    browser.close().await?;
    assert!(!alive(pid), "chromedriver {pid} survived close()");
    wait_gone(&profile, Duration::from_secs(5));
    Ok(())
}

/// Dropping the browser without `close` kills everything too.
#[tokio::test]
async fn dropping_the_browser_kills_its_processes() -> anyhow::Result<()> {
    assert!(
        Browser::available(),
        "no browser: install the Debian packages chromium and chromium-driver"
    );
    let browser = Browser::start().await?;
    let pid = browser.driver_pid();
    let profile = browser.profile_dir();
    browser.goto("about:blank").await?;
    drop(browser);
    assert!(!alive(pid), "chromedriver {pid} survived drop");
    wait_gone(&profile, Duration::from_secs(5));
    Ok(())
}

/// `kill -0 PID` succeeds.
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Wait until no live process has `profile` on its command line (Chromium and its helpers
/// all do: `--user-data-dir`), and panic if one still does after `timeout`.
fn wait_gone(profile: &Path, timeout: Duration) {
    let needle = profile.to_string_lossy().into_owned();
    let deadline = Instant::now() + timeout;
    loop {
        let left = survivors(&needle);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("processes survived the browser: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids whose command line contains `needle` (zombies have none).
fn survivors(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Serve `/` (the form) and `/hello?name=...` on 127.0.0.1; the address.
async fn serve() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = respond(stream).await;
            });
        }
    });
    Ok(addr)
}

/// One request, one answer, then close.
async fn respond(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request);
    let target = request
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = match path {
        "/" => ("200 OK", FORM.to_string()),
        "/hello" => {
            let name = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "name")
                .map(|(_, v)| url_decode(v))
                .unwrap_or_default();
            let body = format!(
                "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
                 content=\"width=device-width\"><title>hello</title></head><body><p id=\"greeting\">hello {}</p></body></html>\n",
                html_escape(&name)
            );
            ("200 OK", body)
        }
        _ => ("404 Not Found", "<p>not found</p>\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a byte.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
