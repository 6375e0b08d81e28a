//! wsfs: the command-line client. It parses, asks the daemon, prints; it
//! holds no storage logic.

mod args;
mod client;
mod commands;
mod output;
mod run;
mod step_user;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use wsfs_api::config::{Flags, Settings};

use crate::args::{Cli, Command, DaemonAction};
use crate::client::Daemon;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let outcome = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(status) => eprintln!("error: {}", status.message()),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let settings = Settings::load(&Flags::new(cli.config))?;
    let daemon = Daemon::new(&settings);
    match cli.command {
        Command::Persist {
            workspace,
            root,
            paths,
            expire_after,
            prefetch_key,
            threads,
            output,
        } => {
            let mut client = daemon.connect_or_start().await?;
            let request = commands::persist::Request {
                workspace: &workspace,
                root: &root,
                paths: &paths,
                expire_after: expire_after.map(Into::into),
                prefetch_keys: &prefetch_key,
                threads,
            };
            commands::persist::run(&mut client, &request, output.json).await
        }
        Command::Attach {
            workspace,
            mountpoint,
            view,
            sub_path,
            upper_dir,
            prefetch,
            no_prefetch,
            wait,
            prefetch_key,
            output,
        } => {
            let mut client = daemon.connect_or_start().await?;
            let view = commands::mount::ViewOptions {
                kind: view,
                sub_path: sub_path.unwrap_or_default(),
                upper_dir,
                prefetch,
                no_prefetch,
                prefetch_key,
            };
            commands::mount::attach(&mut client, &workspace, &mountpoint, &view, wait, output.json).await
        }
        Command::Detach {
            mountpoint,
            persist,
            output,
        } => {
            let mut client = daemon.connect_or_start().await?;
            commands::mount::detach(&mut client, &mountpoint, persist, output.json).await
        }
        Command::Log { workspace, output } => {
            let mut client = daemon.connect_or_start().await?;
            commands::workspaces::log(&mut client, &workspace, output.json).await
        }
        Command::Ls { namespace, output } => {
            let mut client = daemon.connect_or_start().await?;
            commands::workspaces::ls(&mut client, namespace.as_deref(), output.json).await
        }
        Command::Rm {
            workspace,
            expired,
            output,
        } => {
            let mut client = daemon.connect_or_start().await?;
            match workspace {
                Some(ws) if !expired => commands::workspaces::rm(&mut client, &ws, output.json).await,
                _ => commands::workspaces::rm_expired(&mut client, output.json).await,
            }
        }
        Command::Gc {
            dry_run,
            grace,
            trace_max_age,
            cache,
            output,
        } => {
            let mut client = daemon.connect_or_start().await?;
            let request = wsfs_api::pb::GcRequest {
                grace_ms: grace.map_or(0, |g| (Duration::from(g).as_millis() as u64).max(1)),
                dry_run,
                cache,
                trace_max_age_ms: trace_max_age.map(|t| Duration::from(t).as_millis() as u64),
            };
            commands::gc::run(&mut client, request, output.json).await
        }
        Command::Check { read_data, output } => {
            let mut client = daemon.connect_or_start().await?;
            commands::check::run(&mut client, read_data, output.json).await
        }
        Command::Run {
            file,
            workspaces,
            params,
            keep,
            prefetch,
            step_user,
            output,
        } => {
            let client = daemon.connect_or_start().await?;
            let args = run::RunArgs {
                file,
                workspaces,
                params,
                keep: keep.into(),
                prefetch,
                step_user,
                json: output.json,
            };
            run::run(client, &daemon, args).await
        }
        Command::Config { key: None, output } => {
            commands::config::show(&settings, output.json);
            Ok(())
        }
        Command::Config {
            key: Some(key),
            output,
        } => commands::config::get(&settings, &key, output.json),
        Command::Status { output } => commands::daemon::status(&daemon, output.json).await,
        Command::Shutdown { output } => commands::daemon::shutdown(&daemon, output.json).await,
        Command::Daemon {
            action: DaemonAction::Restart { output },
        } => commands::daemon::restart(&daemon, output.json).await,
        Command::Generate { what, dir } => commands::generate::run(what, &dir),
    }
}
