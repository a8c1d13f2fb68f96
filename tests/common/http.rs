//! A small client of a running node's HTTP API (in-process `Node` or the real binary).

use super::TOKEN;
use rumgate::Node;
use serde_json::{json, Value};

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn of(node: &Node) -> Self {
        Self::at(format!("http://{}", node.api_addr()))
    }

    pub fn at(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// One request with `token`; the status and the JSON body (`null` if none).
    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// One request with the admin test token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.req(method, path, TOKEN, body).await
    }

    /// GET that must answer 200.
    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// POST that must answer 201 or 202.
    pub async fn post_ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body).await;
        assert!(s == 201 || s == 202, "{path}: {s} {v}");
        v
    }

    /// The Prometheus text of `/metrics`, read with the admin token.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("metrics text")
    }

    /// Creates a group; its id.
    pub async fn group(&self, name: &str) -> String {
        let (s, v) = self.post("/api/v1/groups", json!({"name": name})).await;
        assert_eq!(s, 201, "{v}");
        v["group_id"].as_str().expect("group_id").to_string()
    }

    /// Posts a Note; its trx id.
    pub async fn note(&self, gid: &str, text: &str) -> String {
        let (s, v) = self
            .post(
                &format!("/api/v1/groups/{gid}/posts"),
                json!({"content": text}),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        v["trx_id"].as_str().expect("trx_id").to_string()
    }

    /// Posts with `?wait=true`; the answer, which must say `included`.
    pub async fn note_wait(&self, gid: &str, body: Value) -> Value {
        let (s, v) = self
            .post(&format!("/api/v1/groups/{gid}/posts?wait=true"), body)
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["status"], "included");
        v
    }

    /// Creates a gateway account; its id.
    pub async fn gateway(&self, body: Value) -> String {
        self.post_ok("/api/v1/gateways", body).await["id"]
            .as_str()
            .expect("gateway id")
            .to_string()
    }

    pub async fn link(&self, body: Value) -> Value {
        self.post_ok("/api/v1/links", body).await
    }

    /// The `content` of a group's current posts, in chain order.
    pub async fn texts(&self, gid: &str) -> Vec<String> {
        let v = self
            .get(&format!("/api/v1/groups/{gid}/posts?limit=500"))
            .await;
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                i["object"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}
