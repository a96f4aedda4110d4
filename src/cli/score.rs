//! `stepup score`: the offline edge. Reads JSONL events from a file or stdin, runs
//! the same hot path as the Kafka worker, writes one decision per line in input
//! order; bad lines get one `{"line":N,"error":"..."}` record on stderr.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::baseline::file as state_file;
use crate::config::Settings;
use crate::decision::DecisionKind;
use crate::enrich::GeoDatabases;
use crate::event::DecodeError;
use crate::pipeline::{Output, Pipeline, Shared};

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// City database(s), comma-separated (GeoIP2/GeoLite2-City or DB-IP Lite layout; DB-IP ships IPv4 and IPv6 files).
    #[arg(long, env = "STEPUP_GEOIP")]
    pub geoip: PathBuf,
    /// Optional ASN database (GeoLite2-ASN layout).
    #[arg(long, env = "STEPUP_ASN_DB")]
    pub asn_db: Option<PathBuf>,
    /// Configuration merged over the embedded defaults.
    #[arg(long, env = "STEPUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Contractor registry, JSONL (contractor.v1 schema).
    #[arg(long, env = "STEPUP_CONTRACTORS")]
    pub contractors: Option<PathBuf>,
    /// Events, JSONL; `-` for stdin.
    #[arg(long, default_value = "-")]
    pub input: String,
    /// Decisions, JSONL; `-` for stdout.
    #[arg(long, default_value = "-")]
    pub output: String,
    /// Baseline state file: loaded if it exists, saved at the end.
    #[arg(long, env = "STEPUP_STATE")]
    pub state: Option<PathBuf>,
    /// Print a summary to stderr at the end.
    #[arg(long)]
    pub summary: bool,
}

/// Load settings, geo databases and the registry: fatal problems end here.
pub fn load_shared(
    config: Option<&std::path::Path>,
    geoip: &std::path::Path,
    asn: Option<&std::path::Path>,
) -> anyhow::Result<Shared> {
    let settings = Settings::load(config)?;
    let geo = GeoDatabases::open(geoip, asn)?;
    tracing::info!(geo = %geo.description, "geo databases open");
    Ok(Shared {
        settings: Arc::new(settings),
        geo: Arc::new(geo),
    })
}

pub fn run(a: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let shared = load_shared(a.config.as_deref(), &a.geoip, a.asn_db.as_deref())?;
    let mut p = Pipeline::new(shared);
    if let Some(path) = &a.contractors {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading contractors {}", path.display()))?;
        let errors = p.registry_mut().load_jsonl(&text);
        for (line, e) in &errors {
            eprintln!(
                "{}",
                serde_json::json!({"file": path.display().to_string(), "line": line, "error": e.to_string()})
            );
        }
        tracing::info!(
            contractors = p.registry_mut().len(),
            rejected = errors.len(),
            "registry loaded"
        );
    }
    if let Some(path) = &a.state {
        if path.exists() {
            let bytes = std::fs::read(path).with_context(|| format!("reading state {}", path.display()))?;
            let n = state_file::decode_into(&bytes, p.state_mut())
                .with_context(|| format!("state file {}", path.display()))?;
            tracing::info!(users = n, "baselines restored");
        }
    }
    let input: Box<dyn Read> = if a.input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input))?)
    };
    let output: Box<dyn Write> = if a.output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&a.output).with_context(|| format!("creating {}", a.output))?)
    };
    let stats = score_stream(
        &mut p,
        BufReader::with_capacity(1 << 16, input),
        BufWriter::with_capacity(1 << 16, output),
    )?;
    if let Some(path) = &a.state {
        let bytes = state_file::encode(p.state());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        tracing::info!(users = p.state().len(), bytes = bytes.len(), "baselines saved");
    }
    if a.summary {
        eprintln!(
            "{} events: {} allow, {} step_up, {} deny, {} rejected",
            stats.lines, stats.allow, stats.step_up, stats.deny, stats.rejected
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct StreamStats {
    pub lines: u64,
    pub allow: u64,
    pub step_up: u64,
    pub deny: u64,
    pub rejected: u64,
}

/// Score every line of `input` into `output`; errors go to stderr as JSON records.
pub fn score_stream(p: &mut Pipeline, mut input: impl BufRead, mut output: impl Write) -> anyhow::Result<StreamStats> {
    let mut line = Vec::with_capacity(1024);
    let mut out = Output::default();
    let mut st = StreamStats::default();
    let mut n = 0u64;
    let stderr = std::io::stderr();
    let mut expired = Vec::new();
    let limit = p.shared().settings.limits.max_event_bytes;
    loop {
        if n.is_multiple_of(4096) {
            p.set_clock(crate::timefmt::now_ms());
            expired.clear();
            p.expire_idle(&mut expired);
        }
        let (read, kept) = read_line_capped(&mut input, &mut line, limit).context("reading input")?;
        if read == 0 {
            break;
        }
        n += 1;
        let rec = trim_line(&line);
        if rec.is_empty() {
            continue;
        }
        st.lines += 1;
        let res = if kept {
            p.process(rec, &mut out)
        } else {
            // never buffered whole: a line with no end must not exhaust memory
            Err(DecodeError::TooLarge { size: read, limit }.into())
        };
        match res {
            Ok(()) => {
                output.write_all(&out.json).context("writing output")?;
                output.write_all(b"\n").context("writing output")?;
                match out.kind {
                    Some(DecisionKind::Allow) => st.allow += 1,
                    Some(DecisionKind::StepUp) => st.step_up += 1,
                    Some(DecisionKind::Deny) => st.deny += 1,
                    None => {}
                }
            }
            Err(e) => {
                st.rejected += 1;
                let rec = serde_json::json!({"line": n, "error": e.to_string()});
                let _ = writeln!(stderr.lock(), "{rec}");
            }
        }
    }
    output.flush().context("writing output")?;
    Ok(st)
}

/// Read one line into `line` (cleared first), keeping at most `limit` bytes of it
/// plus its line ending. Returns the bytes the line had (0 at the end of input) and
/// whether it was kept whole; an over-long line is consumed to its end regardless.
fn read_line_capped(input: &mut impl BufRead, line: &mut Vec<u8>, limit: usize) -> std::io::Result<(usize, bool)> {
    line.clear();
    let keep = limit.saturating_add(2); // room for "\r\n"
    let mut total = 0usize;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let (chunk, done) = match memchr_nl(buf) {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = keep.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total = total.saturating_add(used);
        input.consume(used);
        if done {
            break;
        }
    }
    Ok((total, line.len() == total))
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn trim_line(l: &[u8]) -> &[u8] {
    let mut e = l.len();
    while e > 0 && (l[e - 1] == b'\n' || l[e - 1] == b'\r') {
        e -= 1;
    }
    &l[..e]
}

#[cfg(test)]
mod tests {
    use super::read_line_capped;
    use std::io::BufReader;

    #[test]
    fn long_lines_are_consumed_but_not_kept() {
        let long = "x".repeat(100_000);
        let text = format!("short\r\n{long}\nnext\nlast");
        // a small buffer so that the long line spans many fills
        let mut r = BufReader::with_capacity(64, text.as_bytes());
        let mut line = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut line, 10).unwrap(), (7, true));
        assert_eq!(line, b"short\r\n");
        assert_eq!(read_line_capped(&mut r, &mut line, 10).unwrap(), (100_001, false));
        assert!(line.len() <= 12, "kept {} bytes", line.len());
        assert_eq!(read_line_capped(&mut r, &mut line, 10).unwrap(), (5, true));
        assert_eq!(line, b"next\n");
        assert_eq!(read_line_capped(&mut r, &mut line, 10).unwrap(), (4, true));
        assert_eq!(line, b"last");
        assert_eq!(read_line_capped(&mut r, &mut line, 10).unwrap(), (0, true));
    }
}
