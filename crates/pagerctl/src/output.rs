//! What the user sees: aligned text for humans, or the response message as
//! JSON for scripts. [`Printer`] writes either to stdout; the helpers below
//! build the human text. Each command's own builders (a `human` and a `json`
//! module) live with the command in `cmd/`.
//!
//! JSON keeps the proto field names (`snake_case`), numbers as numbers,
//! timestamps as the raw `*_ms` values, and enums as their short lowercase
//! name (`"triggered"`), so `jq '.incidents[].status'` reads naturally. prost
//! types are not serde, hence one small builder per message.
//!
//! Human output: `key  value` blocks and tables with two-space gutters,
//! numbers right-aligned, timestamps in RFC 3339 UTC, `-` for "none", and
//! control characters from the server escaped so a summary cannot break a
//! table or the terminal.

use std::io::{self, Write};

use anyhow::Context;
use serde_json::Value;

use crate::cli::OutputFormat;

/// Writes one response to stdout in the chosen format.
pub struct Printer {
    format: OutputFormat,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    /// Print `human()` or `json()`; only the chosen one is built. A closed
    /// stdout (`pagerctl incident list | head`) is not an error.
    pub fn emit(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> anyhow::Result<()> {
        self.print(human, json, serde_json::to_string_pretty)
    }

    /// Like [`Printer::emit`], for a command that also speaks CSV.
    pub fn emit_with_csv(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
        csv: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match self.format {
            OutputFormat::Csv => self.write(csv()),
            _ => self.emit(human, json),
        }
    }

    /// One line per item, for streams: the human line, or compact JSON (JSON lines).
    pub fn line(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> anyhow::Result<()> {
        self.print(human, json, serde_json::to_string)
    }

    fn print(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
        encode: fn(&Value) -> serde_json::Result<String>,
    ) -> anyhow::Result<()> {
        let text = match self.format {
            OutputFormat::Human => human(),
            OutputFormat::Json => encode(&json()).context("encode the response as JSON")?,
            OutputFormat::Csv => {
                anyhow::bail!("--output csv is for `pagerctl report`; use human or json here")
            }
        };
        self.write(text)
    }

    fn write(&self, mut text: String) -> anyhow::Result<()> {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut stdout = io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("write to stdout"),
        }
    }
}

/// RFC 3339 UTC, or `-` for 0 (not set).
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        "-".to_owned()
    } else {
        rfc3339(ms)
    }
}

/// A server string for display: `-` when empty, control characters escaped.
pub fn text(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        clean(s)
    }
}

/// `s` with control characters escaped (a newline as `\n`), so a server
/// string cannot break a table or the terminal.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `key  value` lines, values aligned.
pub fn kv(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// How a [`Table`] column lines up: text left, numbers right.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// A table with a header row and two-space gutters, each column as wide as
/// its widest cell (counted in chars); trailing spaces are trimmed.
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (c, cell) in line.iter().enumerate() {
                let w = widths[c];
                if c > 0 {
                    text.push_str("  ");
                }
                match self.columns[c].1 {
                    Align::Left => text.push_str(&format!("{cell:<w$}")),
                    Align::Right => text.push_str(&format!("{cell:>w$}")),
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC to the second
/// (`2023-11-14T22:13:20Z`): the daemon's own printer.
pub use pager_core::time::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(999), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799_000), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        // Does not overflow or panic at the far end.
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn every_day_for_a_millennium_prints_its_date() {
        let mut expected = (1970, 1, 1);
        for day in 0..366_000 {
            let (y, m, d) = expected;
            let date = format!("{y:04}-{m:02}-{d:02}T00:00:00Z");
            assert_eq!(rfc3339(day * 86_400_000), date, "day {day}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = match (d == len, m == 12) {
                (false, _) => (y, m, d + 1),
                (true, false) => (y, m + 1, 1),
                (true, true) => (y + 1, 1, 1),
            };
        }
    }
}
