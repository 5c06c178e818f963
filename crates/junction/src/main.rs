//! The `junction` command: serve the API, migrate, manage accounts, inspect the catalog.

use anyhow::Context;
use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use junction_server::config::{
    DatabaseConfig, DatabaseSettings, Settings, example, secrets_on_the_command_line,
};
use junction_server::startup::open_store;
use junction_server::{App, Config};
use junction_service::now_ms;
use junction_store::{NewOrganization, StoreSettings};
#[cfg(feature = "otlp")]
use junction_telemetry::otlp::Exporter;
/// Nothing to flush without the exporter.
#[cfg(not(feature = "otlp"))]
struct Exporter;
#[cfg(not(feature = "otlp"))]
impl Exporter {
    fn shutdown(self) {}
}
use junction_telemetry::statements::StatementLayer;
use serde_json::json;
use std::io::Write;
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
    #[command(flatten)]
    log: LogSettings,
}

/// Logging, for every command.
#[derive(clap::Args)]
struct LogSettings {
    /// Log filter, e.g. `info` or `junction_service=debug,info`.
    #[arg(
        long,
        env = "JUNCTION_LOG",
        default_value = "info",
        global = true,
        help_heading = "Logging",
        value_parser = parse_log_filter
    )]
    log: String,
    /// Log format.
    #[arg(
        long,
        env = "JUNCTION_LOG_FORMAT",
        default_value = "text",
        global = true,
        help_heading = "Logging",
        ignore_case = true
    )]
    log_format: LogFormat,
    /// OpenTelemetry collector (OTLP/HTTP) to send traces to, e.g. http://127.0.0.1:4318.
    #[arg(
        long,
        env = "JUNCTION_OTLP_ENDPOINT",
        global = true,
        help_heading = "Logging",
        value_parser = parse_otlp_endpoint
    )]
    otlp_endpoint: Option<String>,
}

fn parse_otlp_endpoint(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("expected an http(s) URL such as http://127.0.0.1:4318".into());
    }
    Ok(raw.trim().to_owned())
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_log_filter(raw: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| e.to_string())
}

// One value, parsed once at start: the size of `serve`'s settings costs nothing worth
// a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the API server (migrates the database first).
    ///
    /// On a database without organizations, the first organization and user are created;
    /// their secrets come from JUNCTION_BOOTSTRAP_*_SECRET or are generated and printed
    /// once, as JSON on standard output.
    Serve(Settings),
    /// Apply database migrations and exit.
    Migrate(DatabaseSettings),
    /// Copy a SQLite database to FILE, consistently, even while a server uses it; its key
    /// file is copied to FILE.key. PostgreSQL: use pg_dump (see the README).
    Backup {
        #[command(flatten)]
        database: DatabaseSettings,
        /// Where to write the copy; it must not exist yet.
        file: std::path::PathBuf,
    },
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
        database: DatabaseSettings,
        /// Organization name.
        #[arg(long, default_value = "Default organization")]
        organization_name: String,
        /// Name of the organization's first account.
        #[arg(long, default_value = "Default account")]
        account_name: String,
        /// The first user's email address.
        #[arg(long)]
        email: String,
        /// The first user's first name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// The first user's last name.
        #[arg(long, default_value = "")]
        last_name: String,
    },
}

#[derive(Subcommand)]
enum ElementsCommand {
    /// List every element: id, key, hub and name.
    List,
    /// Check element definition files (YAML or JSON) with the same rules as the built-in
    /// catalog and `POST /elements`; prints each file's verdict, fails if any is invalid.
    Validate {
        /// Element definition files.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a built-in element's JSON, which `POST /elements` takes as it is. Custom
    /// elements live in the database: export them with `GET /elements/{key}/export`.
    Export {
        /// The element's key or id.
        key: String,
    },
}

/// The log on standard error, with `metrics` the layer that times database statements,
/// and with an OTLP endpoint the span exporter. Each has its own filter: the log's level
/// decides neither what is measured nor what is exported.
fn init_logging(settings: &LogSettings, metrics: bool) -> anyhow::Result<Option<Exporter>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // A list rather than `Option`s: an absent `Option` layer before a filtered one
    // disables spans for the filtered one too.
    let mut layers: Vec<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> = Vec::new();
    // The filter was validated when the settings were parsed.
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: logs sent to a file or a collector stay plain text.
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    layers.push(match settings.log_format {
        LogFormat::Json => log.json().with_filter(filter).boxed(),
        LogFormat::Text => log.with_filter(filter).boxed(),
    });
    if metrics {
        layers.push(StatementLayer.with_filter(StatementLayer::filter()).boxed());
    }
    #[cfg(feature = "otlp")]
    let exporter = match settings.otlp_endpoint.as_deref() {
        Some(endpoint) => {
            let (layer, started) = junction_telemetry::otlp::layer(endpoint)
                .context("JUNCTION_OTLP_ENDPOINT (--otlp-endpoint)")?;
            layers.push(layer.boxed());
            Some(started)
        }
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    let exporter: Option<Exporter> = match settings.otlp_endpoint.as_deref() {
        Some(endpoint) => anyhow::bail!(
            "JUNCTION_OTLP_ENDPOINT (--otlp-endpoint) is {endpoint}, but this junction was \
             built without the `otlp` feature"
        ),
        None => None,
    };
    tracing_subscriber::registry().with(layers).init();
    Ok(exporter)
}

/// Parses the command line and environment. A bad value is reported with both of its
/// names, the flag and the environment variable, since either may be the one that was set.
fn parse() -> (Cli, clap::ArgMatches) {
    let command = Cli::command();
    let matches = match command.clone().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => name_both_forms(e, &command).exit(),
    };
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => (cli, matches),
        Err(e) => e.format(&mut Cli::command()).exit(),
    }
}

fn name_both_forms(mut error: clap::Error, command: &clap::Command) -> clap::Error {
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let long = shown
        .split_whitespace()
        .next()
        .and_then(|flag| flag.strip_prefix("--"))
        .map(str::to_owned);
    let env = long.and_then(|long| env_of(command, &long));
    if let Some(env) = env {
        let both = format!("{shown} / {env}");
        error.insert(ContextKind::InvalidArg, ContextValue::String(both));
    }
    error
}

/// The environment variable behind flag `--long` in this command or any subcommand.
fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|c| env_of(c, long)))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, matches) = parse();
    let metrics = matches!(&cli.command, Command::Serve(s)
        if s.metrics_listen.as_deref().is_some_and(|m| !m.trim().is_empty()));
    let exporter = match init_logging(&cli.log, metrics) {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("junction: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut sub = Some(&matches);
    while let Some(m) = sub {
        for name in secrets_on_the_command_line(m) {
            tracing::warn!(
                "{name} was given as a command-line flag, which every user of this machine can \
                 read in the process list; use the environment variable or {name}_FILE instead"
            );
        }
        sub = m.subcommand().map(|(_, m)| m);
    }
    let code = match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Sends the spans still buffered; it blocks, so not on the runtime's threads.
    if let Some(exporter) = exporter {
        let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
    }
    code
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => serve(Config::from_settings(settings)?).await,
        Command::Migrate(settings) => {
            let database = DatabaseConfig::from_settings(settings)?;
            let store = open_store(&database, StoreSettings::default()).await?;
            store.close().await;
            println!("database at {} is up to date", database.url);
            Ok(())
        }
        Command::Backup { database, file } => {
            let database = DatabaseConfig::from_settings(database)?;
            let written = junction_server::backup::backup(&database, &file).await?;
            println!(
                "{}",
                json!({
                    "database": written.database.display().to_string(),
                    "keyFile": written.key_file.as_ref().map(|k| k.display().to_string()),
                })
            );
            if written.key_file.is_none() {
                tracing::warn!(
                    "the key is set in JUNCTION_ENCRYPTION_KEY, not in a key file: keep it with                      the backup, which cannot be read without it"
                );
            }
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
            database,
            organization_name,
            account_name,
            email,
            first_name,
            last_name,
        }) => {
            let database = DatabaseConfig::from_settings(database)?;
            let store = open_store(&database, StoreSettings::default()).await?;
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
        Command::Elements(ElementsCommand::Validate { files }) => {
            let mut invalid = 0;
            for file in &files {
                let verdict = std::fs::read_to_string(file)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        junction_catalog::parse_definition(&text).map_err(|e| e.to_string())
                    });
                match verdict {
                    Ok(e) => println!("{}: ok ({}, id {})", file.display(), e.key, e.id),
                    Err(message) => {
                        invalid += 1;
                        println!("{}: {message}", file.display());
                    }
                }
            }
            if invalid > 0 {
                anyhow::bail!("{invalid} of {} element file(s) are invalid", files.len());
            }
            Ok(())
        }
        Command::Elements(ElementsCommand::Export { key }) => {
            let catalog = junction_catalog::Catalog::embedded()?;
            let element = catalog.get(&key).with_context(|| {
                format!(
                    "no built-in element '{key}'; custom elements live in the database: \
                     export them with GET /elements/api-v2/elements/{key}/export"
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&**element)?);
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(&config).await?;
    if let Some(first) = app.bootstrapped.as_ref().filter(|b| b.generated) {
        let line = json!({
            "organizationSecret": first.organization_secret.expose(),
            "userSecret": first.user_secret.expose(),
            "authorization": format!(
                "User {}, Organization {}",
                first.user_secret.expose(),
                first.organization_secret.expose()
            ),
        });
        // Only secrets that reached standard output count as shown; otherwise the next
        // start replaces them and tries again.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).context(
            "printing the first organization's secrets on standard output failed; they \
                 were not recorded as shown, so the next start replaces them and prints new ones",
        )?;
        drop(out);
        app.first_start_revealed().await?;
        tracing::warn!(
            "created the first organization with generated secrets; they were printed once on \
             standard output and cannot be shown again"
        );
    }
    let addr = app.local_addr()?;
    if let Some(metrics_addr) = app.metrics_addr() {
        tracing::info!(%metrics_addr, "metrics at http://{metrics_addr}/metrics");
    }
    tracing::info!(%addr, database = %config.database.url, "Junction is listening; API at http://{addr}/elements/api-v2");
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
