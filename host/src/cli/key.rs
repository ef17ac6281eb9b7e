//! `kiln key`: publisher keys.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::{Ctx, emit, emit_json};
use crate::registry::sign;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make an ed25519 signing key, kept in the data directory, and trust it here.
    Generate {
        /// The key's name (its file is keys/NAME.key in the data directory).
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Trust another publisher's public key (hex).
    Trust {
        public: String,
        #[arg(long)]
        name: String,
    },
    /// List the keys this registry trusts.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: KeyCommand) -> Result<ExitCode> {
    let registry = ctx.registry()?;
    match cmd {
        KeyCommand::Generate { name } => {
            anyhow::ensure!(
                crate::registry::manifest::valid_name(&name),
                "key name `{name}` must be lowercase letters, digits and dashes"
            );
            let path = ctx.key_path(&name);
            let key = sign::generate()?;
            sign::save(&key, &path)?;
            let public = hex::encode(key.verifying_key().as_bytes());
            let record = registry.trust_key(&name, &public)?;
            emit(&format!(
                "generated key `{name}` ({})\n  secret  {}\n  public  {public}\n  trusted by this registry\n",
                record.id,
                path.display()
            ))?;
        }
        KeyCommand::Trust { public, name } => {
            let record = registry.trust_key(&name, &public)?;
            emit(&format!("trusting key `{}` ({})\n", record.name, record.id))?;
        }
        KeyCommand::List { json } => {
            let keys = registry.keys()?;
            if json {
                emit_json(&json!(keys))?;
            } else {
                let lines: String = keys
                    .iter()
                    .map(|k| format!("{}  {}  {}\n", k.id, k.name, k.public))
                    .collect();
                emit(&lines)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
