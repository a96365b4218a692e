//! Terminal text: aligned tables that fit 80 columns, wrapping, truncation.

/// The width output aims at.
pub(crate) const WIDTH: usize = 80;

/// Cuts `text` to at most `width` characters, ending with `…` when cut.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Wraps `text` at word boundaries to lines of at most `width` characters
/// (a word longer than a line is cut).
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let word = truncate(word, width);
            let len = line.chars().count();
            if len > 0 && len + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&word);
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table: a header, rows, widths from the content; the first left
/// column shrinks (with `…`) so that the table fits [`WIDTH`].
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[(&str, Align)]) -> Table {
        Table {
            header: header.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let total: usize = widths.iter().sum::<usize>() + 2 * (columns.saturating_sub(1));
        if total > WIDTH
            && let Some(first) = self.header.iter().position(|(_, a)| *a == Align::Left)
        {
            let excess = total - WIDTH;
            widths[first] = widths[first].saturating_sub(excess).max(8);
        }
        let mut out = String::new();
        let mut line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let cell = truncate(cell, widths[i]);
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    text.push_str("  ");
                }
                match self.header[i].1 {
                    Align::Left if i + 1 == columns => text.push_str(&cell),
                    Align::Left => {
                        text.push_str(&cell);
                        text.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        text.push_str(&" ".repeat(pad));
                        text.push_str(&cell);
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(self.header.iter().map(|(h, _)| h.as_str()).collect());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        out
    }
}

/// "3s ago", "5m ago", "2h ago", "4d ago".
pub(crate) fn ago(ns: u64) -> String {
    let s = pymw_store::age_ns(ns) / 1_000_000_000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// A bar of `width` cells filled to `fraction`, with eighth blocks.
pub(crate) fn bar(fraction: f64, width: usize) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
    }
    let filled = out.chars().count();
    out.push_str(&"·".repeat(width - filled));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_and_align() {
        let mut table = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        table.row(vec!["a".repeat(100), "1".into()]);
        table.row(vec!["b".into(), "1,000".into()]);
        let text = table.render();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.lines().nth(2).unwrap().ends_with("1,000"));
    }

    #[test]
    fn wrapping_and_bars() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(bar(0.5, 4), "██··");
        assert_eq!(bar(1.0, 3).chars().count(), 3);
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
