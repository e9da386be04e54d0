//! `chorus`: parse the command line and configuration, set up logging, run.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use chorus::app::Chorus;
use chorus::cli::{AdminCommand, Cli, Command, ReactionsCommand};
use chorus::config::{Config, LogFormat};
use chorus::services::reactions as reaction_types;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?.merge_overrides(&cli.overrides())?;
    init_tracing(config.log_format);
    tracing::debug!(?config, "configuration");

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Chorus::build(config).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                wait_for_signal().await;
                token.cancel();
            });
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let store = chorus::store::Store::connect(&config.effective_database_url(), 2).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed { users } => chorus::seed::run(config, users).await,
        Command::Admin { action } => {
            let store = chorus::store::Store::connect(&config.effective_database_url(), 2).await?;
            store.migrate().await?;
            let (user, role, grant) = match action {
                AdminCommand::Grant { user, role } => (user, role, true),
                AdminCommand::Revoke { user, role } => (user, role, false),
            };
            let result =
                chorus::services::moderation::cli_role(&store, &user, role, grant).await.map(|l| println!("{l}"));
            store.close().await;
            result
        }
        Command::Reactions { action } => {
            let store = chorus::store::Store::connect(&config.effective_database_url(), 2).await?;
            store.migrate().await?;
            let result = match action {
                ReactionsCommand::List => reaction_types::cli_list(&store).await.map(|lines| {
                    for l in lines {
                        println!("{l}");
                    }
                }),
                ReactionsCommand::Add { key, emoji, label, position } => {
                    reaction_types::cli_add(&store, &key, &emoji, &label, position)
                        .await
                        .map(|()| println!("saved {key}"))
                }
                ReactionsCommand::Disable { key } => {
                    reaction_types::cli_disable(&store, &key).await.map(|()| println!("disabled {key}"))
                }
            };
            store.close().await;
            result
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CHORUS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info,socketioxide=warn,engineioxide=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
