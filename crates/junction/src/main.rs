//! The `junction` command: serve the API, migrate, manage accounts, inspect the catalog.

use anyhow::Context;
use clap::{Parser, Subcommand};
use junction_server::config::{Settings, example};
use junction_server::startup::open_store;
use junction_server::{App, Config};
use junction_service::now_ms;
use junction_store::NewOrganization;
use serde_json::json;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// Junction: a self-hosted integration hub speaking the Cloud Elements API v2.
///
/// Quick start (SQLite, no other setup):
///   junction serve
/// then follow the README's walk-through: GET /elements/api-v2/elements/{key}/oauth/url,
/// send your customer there, and POST /elements/api-v2/instances with the returned code.
///
/// Every setting is an environment variable (`junction config example` lists them) with a
/// --flag twin.
#[derive(Parser)]
#[command(name = "junction", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (migrates the database first).
    ///
    /// On a database without organizations, the first organization and user are created;
    /// their secrets come from JUNCTION_BOOTSTRAP_*_SECRET or are generated and printed
    /// once, as JSON on standard output.
    Serve(Settings),
    /// Apply database migrations and exit.
    Migrate(Settings),
    /// Print configuration help.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage organizations, accounts and users.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Inspect the element catalog compiled into this binary.
    #[command(subcommand)]
    Elements(ElementsCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting with its default and what it does.
    Example,
    /// Print a new random JUNCTION_ENCRYPTION_KEY.
    GenerateKey,
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an organization, its first account and first user; prints their secrets
    /// once, as JSON. Junction stores only keyed hashes, so save them now.
    Create {
        #[command(flatten)]
        settings: Settings,
        /// Organization name.
        #[arg(long, default_value = "Default organization")]
        organization_name: String,
        /// Name of the organization's first account.
        #[arg(long, default_value = "Default account")]
        account_name: String,
        /// The first user's email address.
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
    },
}

#[derive(Subcommand)]
enum ElementsCommand {
    /// List every element: id, key, hub and name.
    List,
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("JUNCTION_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: logs sent to a file or a collector stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("JUNCTION_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => serve(Config::from_settings(settings)?).await,
        Command::Migrate(settings) => {
            let config = Config::from_settings(settings)?;
            let store = open_store(&config).await?;
            store.close().await;
            println!("database at {} is up to date", config.database_url);
            Ok(())
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", example());
            Ok(())
        }
        Command::Config(ConfigCommand::GenerateKey) => {
            let key = junction_crypto::generate_key().map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", key.expose());
            Ok(())
        }
        Command::Accounts(AccountsCommand::Create {
            settings,
            organization_name,
            account_name,
            email,
            first_name,
            last_name,
        }) => {
            let config = Config::from_settings(settings)?;
            let store = open_store(&config).await?;
            let generate =
                || junction_crypto::generate_secret(32).map_err(|e| anyhow::anyhow!("{e}"));
            let (organization_secret, user_secret) = (generate()?, generate()?);
            let ids = store
                .create_organization(NewOrganization {
                    name: &organization_name,
                    account_name: &account_name,
                    email: &email,
                    first_name: &first_name,
                    last_name: &last_name,
                    organization_secret: &organization_secret,
                    user_secret: &user_secret,
                    now: now_ms(),
                })
                .await
                .context("creating the organization")?;
            store.close().await;
            println!(
                "{}",
                json!({
                    "organizationId": ids.organization_id,
                    "accountId": ids.account_id,
                    "userId": ids.user_id,
                    "organizationSecret": organization_secret.expose(),
                    "userSecret": user_secret.expose(),
                    "authorization": format!("User {}, Organization {}", user_secret.expose(), organization_secret.expose()),
                })
            );
            Ok(())
        }
        Command::Elements(ElementsCommand::List) => {
            let catalog = junction_catalog::Catalog::embedded()?;
            println!("{:>5}  {:<20} {:<10} NAME", "ID", "KEY", "HUB");
            for e in catalog.list() {
                println!("{:>5}  {:<20} {:<10} {}", e.id, e.key, e.hub, e.name);
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(&config).await?;
    if let Some(first) = app.bootstrapped.as_ref().filter(|b| b.generated) {
        {
            tracing::warn!(
                "created the first organization with generated secrets; they are printed once on \
                 standard output and cannot be shown again"
            );
            println!(
                "{}",
                json!({
                    "organizationSecret": first.organization_secret.expose(),
                    "userSecret": first.user_secret.expose(),
                    "authorization": format!(
                        "User {}, Organization {}",
                        first.user_secret.expose(),
                        first.organization_secret.expose()
                    ),
                })
            );
        }
    }
    let addr = app.local_addr()?;
    tracing::info!(%addr, database = %config.database_url, "Junction is listening; API at http://{addr}/elements/api-v2");
    app.run(shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C; in-flight requests then finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: draining in-flight requests");
}
