//! The `rumgate` binary: parse the command line, then hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rumgate::cli::run(rumgate::cli::Cli::parse()).await
}
