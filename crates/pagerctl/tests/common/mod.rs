//! What several pagerctl test binaries share.

use std::process::Output;
use tokio::io::AsyncWriteExt;

/// `pagerctl ARGS` with `stdin` as its standard input, outside any
/// `PAGERCTL_*` environment of the test run.
pub async fn pagerctl_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pagerctl"))
        .args(args)
        .env_remove("PAGERCTL_ENDPOINT")
        .env_remove("PAGERCTL_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run pagerctl");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    child.wait_with_output().await.expect("pagerctl exits")
}
