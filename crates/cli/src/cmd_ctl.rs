//! `leaseline ctl`: one control-API command (docs/operations.md). On ureq
//! (a small, well-kept blocking HTTP client: one request and exit needs no
//! async runtime).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::{json, Map, Value};

/// Where the control API is and how to authenticate (shared by `ctl` and
/// `history`).
#[derive(Args)]
pub struct ServerArgs {
    /// The server's `[http] listen`, as a URL.
    #[arg(long, default_value = "http://127.0.0.1:8067")]
    server: String,
    /// The bearer token (`[http] token`); without it, LEASELINE_HTTP_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// Read the token from this file (its first line).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct CtlArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the whole answer as JSON.
    #[arg(long)]
    json: bool,
    /// The command (`leaseline ctl list-commands` lists them).
    command: String,
    /// Arguments, NAME=VALUE: a VALUE that reads as JSON (a number, true,
    /// a quoted string, an object) is taken as such, anything else as a
    /// string (ip-address=10.0.0.10).
    #[arg(value_name = "NAME=VALUE")]
    arguments: Vec<String>,
}

/// A connection to one server's control API.
pub struct ControlClient {
    server: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ServerArgs {
    pub fn client(&self) -> anyhow::Result<ControlClient> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("token file {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
            ),
            None => self
                .token
                .clone()
                .or_else(|| std::env::var("LEASELINE_HTTP_TOKEN").ok()),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(ControlClient {
            server: self.server.clone(),
            token,
            agent,
        })
    }
}

impl ControlClient {
    /// Send one command; the answer (`{"result", "text", "arguments"}`).
    pub fn send(&self, body: &Value) -> anyhow::Result<Value> {
        let mut req = self
            .agent
            .post(&self.server)
            .header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req
            .send(body.to_string().as_bytes())
            .map_err(|e| anyhow!("{}: {e}", self.server))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| anyhow!("{}: reading the answer: {e}", self.server))?;
        serde_json::from_str(&text)
            .map_err(|_| anyhow!("{}: HTTP {status}: {}", self.server, text.trim()))
    }
}

/// The answer's result code (1 when it has none).
pub fn result(answer: &Value) -> u8 {
    answer
        .get("result")
        .and_then(Value::as_u64)
        .and_then(|r| u8::try_from(r).ok())
        .unwrap_or(1)
}

/// `{"command": ..., "arguments": {...}}` from the command line.
fn request(command: &str, arguments: &[String]) -> anyhow::Result<Value> {
    let mut args = Map::new();
    for a in arguments {
        let Some((name, value)) = a.split_once('=') else {
            bail!("argument `{a}`: write NAME=VALUE");
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        args.insert(name.to_owned(), value);
    }
    let mut req = json!({ "command": command });
    if !args.is_empty() {
        req["arguments"] = Value::Object(args);
    }
    Ok(req)
}

pub fn run(a: CtlArgs) -> anyhow::Result<ExitCode> {
    let client = a.server.client()?;
    let answer = client.send(&request(&a.command, &a.arguments)?)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!(
            "{}",
            answer.get("text").and_then(Value::as_str).unwrap_or("")
        );
        if let Some(args) = answer.get("arguments") {
            println!("{}", serde_json::to_string_pretty(args)?);
        }
    }
    // The exit status is the result: 0 success, 1 error, 2 unsupported, 3 nothing found.
    Ok(ExitCode::from(result(&answer)))
}

#[cfg(test)]
mod tests {
    use super::request;
    use serde_json::json;

    #[test]
    fn arguments_are_json_where_they_read_as_json_else_strings() {
        let r = request(
            "lease4-get-page",
            &["from=start".into(), "limit=100".into(), "x=\"7\"".into()],
        )
        .expect("valid");
        assert_eq!(
            r,
            json!({"command": "lease4-get-page", "arguments": {"from": "start", "limit": 100, "x": "7"}})
        );
        let r = request("lease4-get", &["ip-address=10.0.0.10".into()]).expect("valid");
        assert_eq!(r["arguments"]["ip-address"], "10.0.0.10");
        assert_eq!(
            request("list-commands", &[]).expect("valid"),
            json!({"command": "list-commands"})
        );
        assert!(request("x", &["novalue".into()]).is_err());
    }
}
