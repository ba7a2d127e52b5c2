//! Text for people, from the browser's result types. Message content and error texts are shown with
//! control characters replaced, so a stored message cannot drive the terminal.

use std::fmt::Write;

use junction_store::{AttemptOutcome, Event, Status, Step};

use super::time::format as at;
use super::{MessageList, MessageView, ReprocessReport, View};

/// Longest error summary on a list line.
const ERROR_WIDTH: usize = 200;

fn status(s: Status) -> &'static str {
    match s {
        Status::Received => "received",
        Status::Filtered => "filtered",
        Status::Transformed => "transformed",
        Status::Queued => "queued",
        Status::Sent => "sent",
        Status::Errored => "errored",
    }
}

/// One line of text with every control character replaced.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A multi-line body (HL7 segments end in CR) as indented lines.
fn block(out: &mut String, body: &str, indent: &str) {
    for line in body.split(['\r', '\n']).filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "{indent}{}", clean(line));
    }
}

fn first_line(s: &str, width: usize) -> String {
    let line = clean(s.split(['\r', '\n']).next().unwrap_or_default());
    if line.chars().count() > width {
        let cut: String = line.chars().take(width.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        line
    }
}

/// Rows as columns padded to their widest cell (the last column unpadded).
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn links(of: Option<u64>, as_: &[u64]) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(of) = of {
        notes.push(format!("reprocess of {of}"));
    }
    if !as_.is_empty() {
        let copies: Vec<String> = as_.iter().map(u64::to_string).collect();
        notes.push(format!("reprocessed as {}", copies.join(", ")));
    }
    notes
}

impl MessageList {
    /// One line per message: sequence, time, type, control id, status per destination, error summary.
    pub fn render(&self) -> String {
        if self.messages.is_empty() {
            return format!("no messages in channel {} match\n", clean(&self.channel));
        }
        let mut rows = vec![[
            "SEQ",
            "RECEIVED",
            "TYPE",
            "CONTROL ID",
            "STATUS",
            "DESTINATIONS",
            "ERROR / LINKS",
        ]
        .map(String::from)
        .to_vec()];
        for m in &self.messages {
            let destinations: Vec<String> = m
                .destinations
                .iter()
                .map(|(d, s)| format!("{}={}", clean(d), status(*s)))
                .collect();
            let mut notes: Vec<String> =
                m.error.iter().map(|e| first_line(e, ERROR_WIDTH)).collect();
            notes.extend(links(m.reprocess_of, &m.reprocessed_as));
            rows.push(vec![
                m.seq.to_string(),
                at(m.received_at),
                clean(m.message_type.as_deref().unwrap_or("-")),
                clean(m.control_id.as_deref().unwrap_or("-")),
                status(m.status).into(),
                if destinations.is_empty() {
                    "-".into()
                } else {
                    destinations.join(" ")
                },
                notes.join("; "),
            ]);
        }
        table(&rows)
    }
}

/// One history event as `time  what[: detail]`, with a multi-line detail (an ACK) indented below.
fn event(out: &mut String, e: &Event, only: Option<&str>) {
    let what = match &e.step {
        Step::Received => "received".to_owned(),
        Step::Stage { stage, status: s } => format!("stage {}: {}", clean(stage), status(*s)),
        Step::Finished { status: s } => format!("finished: {}", status(*s)),
        Step::Queued { destination } => format!("queued for {}", clean(destination)),
        Step::Reprocessed { seq } => format!("reprocessed as {seq}"),
        Step::Attempt {
            destination,
            number,
            outcome,
        } => {
            let outcome = match outcome {
                AttemptOutcome::Sent => "sent".to_owned(),
                AttemptOutcome::Retry { next_attempt_at } => {
                    format!("failed, next attempt {}", at(*next_attempt_at))
                }
                AttemptOutcome::Failed => "failed for good".to_owned(),
            };
            format!("attempt {number} to {}: {outcome}", clean(destination))
        }
    };
    let about = match &e.step {
        Step::Queued { destination } | Step::Attempt { destination, .. } => Some(destination),
        _ => None,
    };
    if only.is_some_and(|d| about.is_none_or(|a| a != d)) {
        return;
    }
    let _ = write!(out, "  {}  {what}", at(e.at));
    match e.detail.as_deref() {
        Some(d) if d.contains(['\r', '\n']) => {
            let _ = writeln!(out);
            block(out, d, "      ");
        }
        Some(d) => {
            let _ = writeln!(out, ": {}", clean(d));
        }
        None => {
            let _ = writeln!(out);
        }
    }
}

impl MessageView {
    /// The message's story: summary, every step and attempt (with errors and responses), raw message and
    /// outputs; or only the part the view asks for.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.view {
            View::Raw => {
                block(&mut out, self.raw.as_deref().unwrap_or_default(), "");
                return out;
            }
            View::Transformed => {
                self.outputs_section(&mut out);
                return out;
            }
            View::All | View::Destination(_) => {}
        }
        let r = &self.record;
        let only = match &self.view {
            View::Destination(d) => Some(d.as_str()),
            _ => None,
        };
        let mut rows = vec![
            vec![
                "message".into(),
                format!("{} in channel {}", r.seq, clean(&r.channel)),
            ],
            vec!["received".into(), at(r.meta.received_at)],
            vec![
                "type".into(),
                clean(r.meta.message_type.as_deref().unwrap_or("-")),
            ],
            vec![
                "control id".into(),
                clean(r.meta.control_id.as_deref().unwrap_or("-")),
            ],
            vec!["status".into(), status(r.status).into()],
        ];
        if let Some(of) = &r.meta.reprocess_of {
            let mut note = format!("{}", of.seq);
            if let Some(d) = &of.destination {
                let _ = write!(note, " (only destination {})", clean(d));
            }
            rows.push(vec!["reprocess of".into(), note]);
        }
        let copies = r.reprocessed_as();
        if !copies.is_empty() {
            let copies: Vec<String> = copies.iter().map(u64::to_string).collect();
            rows.push(vec!["reprocessed as".into(), copies.join(", ")]);
        }
        for (name, d) in &r.destinations {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let mut state = format!("{}, {} attempt(s)", status(d.status), d.attempts);
            if let Some(e) = &d.last_error {
                let _ = write!(state, ", last error: {}", first_line(e, ERROR_WIDTH));
            }
            rows.push(vec![format!("-> {}", clean(name)), state]);
        }
        out.push_str(&table(&rows));
        let _ = writeln!(out, "\nhistory");
        // The store keeps only the first and latest of many attempts: say where the others were.
        let mut last_attempt: std::collections::HashMap<&str, u32> =
            std::collections::HashMap::new();
        for e in &r.history {
            if let Step::Attempt {
                destination,
                number,
                ..
            } = &e.step
            {
                let before = last_attempt.insert(destination, *number).unwrap_or(0);
                if *number > before.saturating_add(1) && only.is_none_or(|o| o == destination) {
                    let _ = writeln!(
                        out,
                        "  ...  attempts {} to {} to {}: not kept (the count above is exact)",
                        before + 1,
                        number - 1,
                        clean(destination)
                    );
                }
            }
            event(&mut out, e, only);
        }
        if let Some(raw) = &self.raw {
            let _ = writeln!(out, "\nraw message");
            block(&mut out, raw, "  ");
        }
        if !self.outputs.is_empty() {
            let _ = writeln!(out);
            self.outputs_section(&mut out);
        }
        out
    }

    fn outputs_section(&self, out: &mut String) {
        if self.outputs.is_empty() {
            let _ = writeln!(
                out,
                "no outputs (the message was not routed to any destination)"
            );
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(out);
            }
            let _ = writeln!(
                out,
                "output for {} ({})",
                clean(&o.destination),
                clean(&o.content_type)
            );
            block(out, &o.body, "  ");
        }
    }
}

impl ReprocessReport {
    /// One line per message: its copy, or why none was made.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in &self.messages {
            let _ = match (&m.copy, &m.error) {
                (Some(copy), _) => writeln!(
                    out,
                    "message {} reprocessed as {copy} (waiting in the inbox of {})",
                    m.seq,
                    clean(&self.channel)
                ),
                (None, Some(e)) => writeln!(out, "message {} not reprocessed: {}", m.seq, clean(e)),
                (None, None) => writeln!(out, "message {} not reprocessed", m.seq),
            };
        }
        out
    }
}
