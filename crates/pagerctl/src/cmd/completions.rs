//! `pagerctl completions SHELL`: print a shell completion script for the
//! whole command line. Needs no server.

use clap::CommandFactory;

use crate::cli::Cli;

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<()> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "pagerctl",
        &mut std::io::stdout(),
    );
    Ok(())
}
