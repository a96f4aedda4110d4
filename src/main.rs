use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = stepup::cli::Cli::parse();
    match stepup::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stepup: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
