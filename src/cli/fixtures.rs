//! `stepup fixtures`: writes the project's fixture geo databases.
//!
//! Builds the three MaxMind DB files of [`crate::geo_fixture`] (GeoLite2-City
//! layout, DB-IP Lite flat layout, GeoLite2-ASN layout) into a directory and
//! prints their paths, one per line, labelled `city`, `flat_city` and `asn`.

use std::path::PathBuf;

use anyhow::Context;

use crate::geo_fixture;

/// Arguments of `stepup fixtures`.
#[derive(clap::Args, Debug)]
pub struct FixturesArgs {
    /// Directory to write the fixture databases into (created if missing).
    #[arg(long, env = "STEPUP_FIXTURES_DIR", default_value = "data/fixtures")]
    pub out: PathBuf,
}

/// Writes the fixture databases into `args.out` and prints their paths.
pub fn run(args: &FixturesArgs) -> anyhow::Result<()> {
    let paths = geo_fixture::write_all(&args.out)
        .with_context(|| format!("writing fixture geo databases to {}", args.out.display()))?;
    println!("city       {}", paths.city.display());
    println!("flat_city  {}", paths.flat_city.display());
    println!("asn        {}", paths.asn.display());
    Ok(())
}
