//! `rampart`: the command line of the Rampart security gateway.

mod control;
mod crs;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

// glibc malloc showed up at ~8% of the proxy's CPU profile; mimalloc is faster for the
// many small, short-lived allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Rampart: a security gateway for HTTP APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config, runs the embedded demo (config + echo backend).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file: exit 0 if valid, else print every error and exit 1.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Report a config's weaknesses (severity, file:line, OWASP API Top 10 item, fix). Exit
    /// 0 without findings above info, 11/12/13/14 when the worst is low/medium/high/critical,
    /// 1 when the config does not load.
    Audit {
        #[arg(long, short)]
        config: PathBuf,
        /// `text` (one finding per line, then its fix) or `json`.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List, add or lift bans shared by every node through Redis (`bans.backend: redis`).
    Bans {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        op: BansOp,
    },
    /// Print a new API key (or admin token) and the SHA-256 hash to put in the config (the
    /// key is shown once).
    Keygen,
    /// Print a running gateway's config as YAML (secrets redacted) through its admin API.
    Export {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Show what applying FILE to a running gateway would change (resources, never values).
    Diff {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Apply FILE to a running gateway: validated there, all or nothing.
    Apply {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Read a password from stdin and print its argon2id hash for `basic.password_hash`.
    HashPassword,
    /// Print a shell completion script (e.g. `rampart completions bash > /etc/bash_completion.d/rampart`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `rampart man > /usr/share/man/man1/rampart.1`.
    Man,
    /// Install or list the OWASP Core Rule Set (`waf: {crs: {version: ...}}` loads it).
    Crs {
        #[command(subcommand)]
        op: CrsOp,
    },
}

#[derive(Subcommand)]
enum CrsOp {
    /// Download a CRS release archive, check its SHA-256 and unpack it into DIR/VERSION.
    Install {
        /// The CRS release.
        #[arg(long, default_value = rampart_crs::DEFAULT_VERSION)]
        version: String,
        /// Where versions are installed (default: the data directory's `crs`, i.e.
        /// $RAMPART_DATA_DIR/crs, else $XDG_DATA_HOME/rampart/crs, else ~/.local/share/rampart/crs).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The archive's SHA-256; required for a version Rampart knows no checksum for.
        #[arg(long)]
        sha256: Option<String>,
        /// Fetch from this mirror (same layout as the release page; also RAMPART_CRS_MIRROR).
        #[arg(long, conflicts_with = "url")]
        mirror: Option<String>,
        /// Fetch exactly this URL (or read this file).
        #[arg(long)]
        url: Option<String>,
    },
    /// The installed versions, newest first.
    List {
        /// Where versions are installed (as for install).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The admin API to talk to; the token comes from RAMPART_ADMIN_TOKEN or --token-file.
#[derive(Args)]
struct AdminTarget {
    /// The admin listener, e.g. http://127.0.0.1:9901.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// A file holding the admin token (instead of RAMPART_ADMIN_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The CA of an https admin listener's certificate (default: the system's roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A client certificate (PEM) for an admin listener that verifies clients; with
    /// --client-key, it stands for the token.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

impl AdminTarget {
    fn target(self) -> control::Target {
        control::Target {
            admin: self.admin,
            token_file: self.token_file,
            ca: self.ca,
            client_cert: self.client_cert.zip(self.client_key),
        }
    }
}

fn print_lines(r: Result<Vec<String>, String>) -> ExitCode {
    match r {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rampart: {e}");
            ExitCode::from(1)
        }
    }
}

/// How `audit` prints its report.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum BansOp {
    /// Every ban in force: key, time left, reason.
    List,
    /// Ban an address, network or consumer: `ip:192.0.2.1`, `net:10.0.0.0/8`, `consumer:ID`.
    Add {
        key: String,
        /// How long, e.g. `30m`, `1h`, `7d`.
        #[arg(long = "for", default_value = "1h")]
        duration: humantime::Duration,
        /// Why (shown to operators, never to the client).
        #[arg(long, default_value = "banned by an operator")]
        reason: String,
    },
    /// Lift a ban.
    Remove { key: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen => {
            let key = rampart_auth::secrets::generate_api_key();
            println!("key:    {key}");
            println!(
                "sha256: {}",
                rampart_auth::secrets::sha256_hex(key.as_bytes())
            );
            ExitCode::SUCCESS
        }
        Command::HashPassword => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("rampart: cannot read the password from stdin");
                return ExitCode::from(1);
            }
            let pw = line.trim_end_matches(['\r', '\n']);
            if pw.is_empty() {
                eprintln!("rampart: empty password");
                return ExitCode::from(1);
            }
            match rampart_auth::secrets::hash_password(pw) {
                Ok(h) => {
                    println!("{h}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rampart: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Bans { config, op } => {
            let cmd = match op {
                BansOp::List => rampart_gateway::BansCommand::List,
                BansOp::Add {
                    key,
                    duration,
                    reason,
                } => rampart_gateway::BansCommand::Add {
                    key,
                    duration: duration.into(),
                    reason,
                },
                BansOp::Remove { key } => rampart_gateway::BansCommand::Remove { key },
            };
            print_lines(rampart_gateway::bans_command(&config, cmd).map_err(|e| e.to_string()))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            let mut cmd = Cli::command();
            // Into memory first: the generator panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rampart", &mut script);
            match std::io::stdout().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rampart: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Man => {
            use clap::CommandFactory;
            let page = clap_mangen::Man::new(Cli::command());
            match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rampart: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Crs { op } => print_lines(match op {
            CrsOp::Install {
                version,
                dir,
                sha256,
                mirror,
                url,
            } => crs::install(crs::InstallArgs {
                version,
                dir,
                sha256,
                url,
                mirror,
            }),
            CrsOp::List { dir } => crs::list(dir),
        }),
        Command::Export { target } => {
            print_lines(control::export(&target.target()).map(|t| vec![t.trim_end().to_string()]))
        }
        Command::Diff { config, target } => {
            let r = control::diff(&target.target(), &config);
            if let Ok(lines) = &r {
                if lines.is_empty() {
                    println!("no changes");
                }
            }
            print_lines(r)
        }
        Command::Apply { config, target } => print_lines(control::apply(&target.target(), &config)),
        Command::Validate { config } => match rampart_gateway::validate_file(&config) {
            Ok(()) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", config.display(), errors.0.len());
                ExitCode::from(1)
            }
        },
        Command::Audit { config, format } => audit(&config, format),
        Command::Serve { config } => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
                .init();
            let source = match config {
                Some(path) => rampart_gateway::ConfigSource::File(path),
                None => rampart_gateway::ConfigSource::Demo,
            };
            match rampart_gateway::serve(source) {
                Ok(()) => ExitCode::SUCCESS,
                Err(rampart_gateway::ServeError::Config(errors)) => {
                    eprintln!("{errors}");
                    eprintln!("rampart: refusing to start with an invalid config");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("rampart: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn audit(config: &std::path::Path, format: Format) -> ExitCode {
    let loaded = match rampart_config::load_file(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error(s); fix them before auditing",
                config.display(),
                errors.0.len()
            );
            return ExitCode::from(1);
        }
    };
    let mut findings = rampart_audit::audit(&loaded);
    // The file was just read; should it vanish meanwhile, findings keep line 0.
    if let Ok(text) = std::fs::read_to_string(config) {
        rampart_audit::locate(&mut findings, &text);
    }
    let file = config.display().to_string();
    match format {
        Format::Text => print!("{}", rampart_audit::render_text(&findings, &file)),
        Format::Json => println!("{}", rampart_audit::render_json(&findings, &file)),
    }
    ExitCode::from(rampart_audit::exit_code(&findings))
}
