//! Text output: times, durations, colors and tables.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use replayflow::{ExecutionStatus, StepStatus};

/// Whether stdout is a terminal that takes colors (and `NO_COLOR` is unset).
pub(crate) fn colors() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `2025-11-25 18:48:03` (UTC).
pub(crate) fn time(t: SystemTime) -> String {
    let text = replayflow::http::format_time(t);
    format!("{} {}", &text[..10], &text[11..19])
}

/// `702ms`, `3.1s`, `2m 05s`, `1h 02m`, `3d 04h`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}d {:02}h", s / 86_400, s / 3600 % 24)
    }
}

/// The time from `from` to `to`, 0 if `to` is earlier.
pub(crate) fn between(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or_default()
}

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls and
/// DEL (escape sequences, bells, carriage returns that rewrite a line) and
/// the Unicode bidirectional controls, which reorder what follows them so a
/// line reads differently from what it holds.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` made safe to print on one line: every control character and
/// bidirectional control is escaped (`\n`, `\r`, `\t`, otherwise
/// `\u{1b}`), everything else is kept. Every string that comes from the
/// database or the command line goes through this (or [`escape_lines`])
/// before it reaches stdout or stderr; JSON output does not, it is exact.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// `text` escaped as [`escape`] does, except that its line breaks stay
/// line breaks, each following line indented by `indent`: for messages
/// that stand on their own lines (the `error:` line, `show`'s reason), so
/// that a multi-line error chain stays readable. Inside a table cell or a
/// `watch` line, where one line is the format, [`escape`] shows them as `\n`.
pub(crate) fn escape_lines(text: &str, indent: &str) -> String {
    let text = text.trim_end_matches(['\n', '\r']);
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| escape(line.strip_suffix('\r').unwrap_or(line)))
        .collect();
    lines.join(&format!("\n{indent}"))
}

/// At most `max` characters of `text` escaped as [`escape`] does, with `…`
/// when cut; one line.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let one_line = escape(text);
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The ANSI color of an execution status.
pub(crate) fn execution_color(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Completed => "32",
        ExecutionStatus::Failed | ExecutionStatus::Panicked => "31",
        ExecutionStatus::Running | ExecutionStatus::Restarting => "34",
        ExecutionStatus::Sleeping | ExecutionStatus::Waiting => "35",
        ExecutionStatus::Paused => "33",
        ExecutionStatus::Cancelled => "90",
    }
}

/// The ANSI color of a step status.
pub(crate) fn step_color(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "32",
        StepStatus::Failed => "31",
        StepStatus::Running => "34",
        StepStatus::Retrying => "33",
        StepStatus::Sleeping | StepStatus::Waiting => "35",
        StepStatus::Pending => "90",
    }
}

/// `text` in `color` when `on`.
pub(crate) fn paint(text: &str, color: &str, on: bool) -> String {
    if on {
        format!("\x1b[{color}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A table of text cells; a cell may carry an ANSI color applied after
/// padding, so widths stay right.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, Option<&'static str>)>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Option<&'static str>)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, colors: bool) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (text, _)) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| pad(h, widths[i], i + 1 == columns))
            .collect();
        out.push_str(&paint(header.join("  ").trim_end(), "1", colors));
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .take(columns)
                .map(|(i, (text, color))| {
                    let padded = pad(text, widths[i], i + 1 == columns);
                    match color {
                        Some(c) => paint(&padded, c, colors),
                        None => padded,
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn pad(text: &str, width: usize, last: bool) -> String {
    if last {
        return text.to_owned();
    }
    let fill = width.saturating_sub(text.chars().count());
    format!("{text}{}", " ".repeat(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_millis(702)), "702ms");
        assert_eq!(duration(Duration::from_millis(3140)), "3.1s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h 02m");
        assert_eq!(duration(Duration::from_secs(2 * 86_400 + 3600)), "2d 01h");
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("a\nb", 5), "a\\nb");
        assert_eq!(truncate("\x1b[2J", 4), "\\u{…");
    }

    #[test]
    fn escapes_what_drives_a_terminal() {
        assert_eq!(escape("evil\x1b[2J\x07id"), "evil\\u{1b}[2J\\u{7}id");
        assert_eq!(escape("a\rb\tc\nd"), "a\\rb\\tc\\nd");
        assert_eq!(escape("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        for bidi in ['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200f}'] {
            let escaped = escape(&format!("x{bidi}y"));
            assert!(
                escaped.starts_with("x\\u{") && escaped.ends_with("}y"),
                "{escaped}"
            );
        }
        // Printable text, accents and emoji included, stays as it is.
        assert_eq!(escape("héllo wörld ✓ C:\\tmp"), "héllo wörld ✓ C:\\tmp");
    }

    #[test]
    fn keeps_line_breaks_as_indented_lines() {
        assert_eq!(
            escape_lines("outer failed\ncaused by: \x1b[31minner\r\n", "  "),
            "outer failed\n  caused by: \\u{1b}[31minner"
        );
        assert_eq!(escape_lines("one line", "  "), "one line");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(vec!["ID", "STATUS"]);
        t.row(vec![("a-long-id".into(), None), ("ok".into(), Some("32"))]);
        t.row(vec![("b".into(), None), ("failed".into(), Some("31"))]);
        assert_eq!(
            t.render(false),
            "ID         STATUS\na-long-id  ok\nb          failed\n"
        );
    }
}
