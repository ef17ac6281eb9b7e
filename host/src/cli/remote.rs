//! A Kiln server's /v1 API, for the commands that act on a server (`--server URL`):
//! JSON calls, a workflow sent as YAML, and a run's Server-Sent Events.

use std::io::{BufRead, BufReader};

use anyhow::{Context as _, Result, bail};
use serde::de::DeserializeOwned;
use serde_json::Value as J;

/// A Kiln server's /v1 API.
#[derive(Clone)]
pub(super) struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// One path segment, percent-encoded.
pub(super) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Remote {
    pub(super) fn new(base: String, token: Option<String>) -> Remote {
        Remote {
            agent: agent(Some(std::time::Duration::from_secs(60))),
            base,
            token,
        }
    }

    /// A request to `path`, with the token and, if given, a body of a content type.
    fn request(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let sent = match body {
            Some((kind, bytes)) => agent.run(request.header("Content-Type", kind).body(bytes)?),
            None => agent.run(request.body(())?),
        };
        sent.with_context(|| format!("{method} {url}"))
    }

    /// Sends a request; the answer's status and its JSON, whatever the status.
    pub(super) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, J)> {
        let mut answer = self.request(&self.agent, method, path, body)?;
        let status = answer.status().as_u16();
        let doc: J = answer.body_mut().read_json().with_context(|| {
            format!(
                "{method} {}{path}: the answer ({status}) is not JSON",
                self.base
            )
        })?;
        Ok((status, doc))
    }

    /// Sends a request and decodes the answer, or turns the server's error into ours.
    pub(super) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<J>,
    ) -> Result<T> {
        let body = body
            .map(|b| serde_json::to_vec(&b).map(|b| ("application/json", b)))
            .transpose()?;
        let (status, doc) = self.send(method, path, body)?;
        accepted(status, &doc)?;
        serde_json::from_value(doc)
            .with_context(|| format!("{method} {}{path}: unexpected answer", self.base))
    }

    /// Follows a stream of Server-Sent Events, calling `each` with every event's name and
    /// data (JSON) until the stream ends or `each` returns `false`. The stream has no
    /// deadline: the server's keep-alives hold it open while nothing happens.
    pub(super) fn events(&self, path: &str, mut each: impl FnMut(&str, J) -> bool) -> Result<()> {
        let mut answer = self.request(&agent(None), "GET", path, None)?;
        let status = answer.status().as_u16();
        if status != 200 {
            let doc: J = answer.body_mut().read_json().unwrap_or(J::Null);
            accepted(status, &doc)?;
        }
        let reader = BufReader::new(answer.into_body().into_reader());
        let (mut name, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.with_context(|| format!("reading the events of {path}"))?;
            if line.is_empty() {
                if !data.is_empty() {
                    let doc = serde_json::from_str(&data)
                        .with_context(|| format!("an event of {path} is not JSON: {data}"))?;
                    if !each(&name, doc) {
                        return Ok(());
                    }
                }
                name.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        Ok(())
    }
}

/// An agent that answers with any status, giving up after `timeout` (none: never).
fn agent(timeout: Option<std::time::Duration>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .into()
}

/// The server's error, when `status` is one.
pub(super) fn accepted(status: u16, doc: &J) -> Result<()> {
    if !(200..300).contains(&status) {
        let message = doc["error"]["message"].as_str().unwrap_or("no detail");
        let status = ureq::http::StatusCode::from_u16(status)
            .map_or_else(|_| status.to_string(), |s| s.to_string());
        bail!("the server refused ({status}): {message}");
    }
    Ok(())
}
