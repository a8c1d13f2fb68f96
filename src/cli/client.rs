//! A small typed client of the node's REST API, and the `--api`/`--token` arguments.

use crate::api::dto::GroupList;
use crate::config::DEFAULT_DATA_DIR;
use anyhow::{bail, Context};
use clap::Args;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the node's API.
    #[arg(long, env = "RUMGATE_API", default_value = "http://127.0.0.1:8002")]
    pub api: String,
    /// API token [default: read from <data-dir>/api.token].
    #[arg(long, env = "RUMGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data dir holding api.token.
    #[arg(long, env = "RUMGATE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// A small typed client of the node's REST API.
pub struct ApiClient {
    http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl ApiClient {
    pub fn new(base: &str, token: String) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn from_args(a: &ApiArgs) -> anyhow::Result<Self> {
        let token = match &a.token {
            Some(t) => t.clone(),
            None => {
                let path = a.data_dir.join("api.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: set RUMGATE_TOKEN or --token, or point --data-dir at the node's data dir ({} is not readable)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Self::new(&a.api, token)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the node at {} (is `rumgate run` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    Some(format!(
                        "{} ({})",
                        e.get("message")?.as_str()?,
                        e.get("code")?.as_str()?
                    ))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{status}: {msg}");
        }
        serde_json::from_slice(&body).context("unexpected response from the node")
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Accepts a group id or a unique group name.
    pub async fn resolve_group(&self, group: &str) -> anyhow::Result<String> {
        if group.len() == 64 && group.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(group.to_ascii_lowercase());
        }
        let list: GroupList = self.get("/api/v1/groups").await?;
        let matches: Vec<_> = list.groups.iter().filter(|g| g.name == group).collect();
        match matches.as_slice() {
            [one] => Ok(one.group_id.clone()),
            [] => bail!("no joined group is named {group:?} (use `rumgate group list`)"),
            _ => bail!("several groups are named {group:?}; use the group id"),
        }
    }
}
