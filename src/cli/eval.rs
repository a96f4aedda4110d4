//! `stepup eval`: detection quality on labelled events (see `crate::eval`).

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::eval::{evaluate, read_labels, Rate, Report};
use crate::pipeline::Pipeline;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Events, JSONL (e.g. from `stepup gen`).
    #[arg(long, env = "STEPUP_EVAL_INPUT")]
    pub input: PathBuf,
    /// Labels, JSONL: {"event_id": ..., "label": "legit" | <attack kind>}.
    #[arg(long, env = "STEPUP_EVAL_LABELS")]
    pub labels: PathBuf,
    /// Configuration merged over the embedded defaults.
    #[arg(long, env = "STEPUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// City database (GeoIP2/GeoLite2-City or DB-IP Lite layout).
    #[arg(long, env = "STEPUP_GEOIP")]
    pub geoip: PathBuf,
    /// Optional ASN database (GeoLite2-ASN layout).
    #[arg(long, env = "STEPUP_ASN_DB")]
    pub asn_db: Option<PathBuf>,
    /// Contractor registry, JSONL.
    #[arg(long, env = "STEPUP_CONTRACTORS")]
    pub contractors: Option<PathBuf>,
    /// Also write every decision (JSONL) to this file, for inspection.
    #[arg(long, env = "STEPUP_EVAL_DECISIONS")]
    pub decisions: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn row(t: &mut Table, name: &str, r: &Rate, what: &str) {
    t.add_row(vec![
        Cell::new(name),
        Cell::new(what),
        Cell::new(r.events).set_alignment(CellAlignment::Right),
        Cell::new(pct(r.stepup_share())).set_alignment(CellAlignment::Right),
        Cell::new(pct(r.rules_share())).set_alignment(CellAlignment::Right),
    ]);
}

/// Render the report as a table.
pub fn table(rep: &Report) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["logins", "measure", "events", "stepup", "rules baseline"]);
    for (k, r) in &rep.attacks {
        row(&mut t, &format!("attack: {k}"), r, "stopped");
    }
    row(&mut t, "attack: all", &rep.all_attacks(), "stopped");
    row(&mut t, "honest", &rep.honest, "stepped up");
    row(&mut t, "honest after 14 days", &rep.honest_after_14d, "stepped up");
    t
}

pub fn run(a: &EvalArgs) -> anyhow::Result<ExitCode> {
    let shared = super::score::load_shared(a.config.as_deref(), &a.geoip, a.asn_db.as_deref())?;
    let mut p = Pipeline::new(shared);
    if let Some(path) = &a.contractors {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let errs = p.registry_mut().load_jsonl(&text);
        anyhow::ensure!(
            errs.is_empty(),
            "contractors {}: line {}: {}",
            path.display(),
            errs[0].0,
            errs[0].1
        );
    }
    let labels = read_labels(BufReader::new(
        std::fs::File::open(&a.labels).with_context(|| format!("opening {}", a.labels.display()))?,
    ))?;
    let file = std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(size / 330 + 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} scoring {pos} events ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut dec_file = match &a.decisions {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let rep = evaluate(
        &mut p,
        BufReader::with_capacity(1 << 16, file),
        &labels,
        dec_file.as_mut().map(|w| w as &mut dyn std::io::Write),
        |n| bar.set_position(n),
    )?;
    if let Some(mut w) = dec_file {
        std::io::Write::flush(&mut w)?;
    }
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!("{}", table(&rep));
        println!(
            "{} events, {} users, {} rejected, {} unlabelled",
            rep.events, rep.users, rep.rejected, rep.unlabelled
        );
    }
    Ok(ExitCode::SUCCESS)
}
