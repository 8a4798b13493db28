//! The conversation on stdout. Keeps track of whether live command output left a line
//! unfinished, so the next message starts on a line of its own.

use std::io::Write as _;

/// stdout, and where its cursor is.
pub struct Screen {
    /// Whether the last thing written ended a line (or nothing was written yet).
    at_line_start: bool,
}

impl Screen {
    /// The screen, at the start of a line.
    pub fn new() -> Screen {
        Screen {
            at_line_start: true,
        }
    }

    /// Writes `text` as whole lines (already sanitised), on a line of its own.
    pub fn lines(&mut self, text: &str) -> std::io::Result<()> {
        self.end_line()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()
    }

    /// Writes a piece of live output (already indented and sanitised) that may end mid-line;
    /// `ends_line` says whether it ends at the start of a line.
    pub fn output(&mut self, text: &str, ends_line: bool) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if !text.is_empty() {
            self.at_line_start = ends_line;
        }
        Ok(())
    }

    /// Whether the cursor is at the start of a line.
    pub fn at_line_start(&self) -> bool {
        self.at_line_start
    }

    /// Writes a prompt (no newline) on a line of its own.
    pub fn prompt(&mut self, prompt: &str) -> std::io::Result<()> {
        self.end_line()?;
        let mut out = std::io::stdout().lock();
        out.write_all(prompt.as_bytes())?;
        out.flush()
    }

    /// Ends an unfinished line of output.
    pub fn end_line(&mut self) -> std::io::Result<()> {
        if !self.at_line_start {
            std::io::stdout().lock().write_all(b"\n")?;
            self.at_line_start = true;
        }
        Ok(())
    }
}
