//! The composition root: the `Node` handle starts the store, keys, engine, producer, p2p,
//! gateways and API; owns every task; shuts down in reverse order.

use crate::engine::{producer, Engine, GroupEntry};

use crate::api;
use crate::chain::verify::verify_genesis;
use crate::config::Config;
use crate::crypto::keystore::{self, KeystoreStatus};
use crate::store::Store;
use anyhow::Context;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for tasks before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Where the admin token came from, so `run` can tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Config,
    File(PathBuf),
    Generated(PathBuf),
    Existing(PathBuf),
}

pub struct Node {
    engine: Arc<Engine>,
    gateways: Arc<crate::gateways::Gateways>,
    net: crate::p2p::Client,
    cancel: CancellationToken,
    tasks: TaskTracker,
    api_addr: SocketAddr,
    token_source: TokenSource,
    keystore_status: KeystoreStatus,
}

impl Node {
    /// Opens everything and starts serving; returns once the API socket is bound.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        config.validate()?;
        create_private_dir(&config.data_dir)?;
        let passphrase = read_passphrase(&config)?;
        let key_path = config.key_path();
        let (identity, keystore_status) = keystore::load_or_create(&key_path, passphrase.as_ref())?;
        if keystore_status.is_plaintext() {
            if config.keys.require_encrypted {
                anyhow::bail!(
                    "{} is a plaintext key file and keys.require_encrypted is set; \
                     encrypt it with `RUMGATE_PASSPHRASE=... rumgate key encrypt`",
                    key_path.display()
                );
            }
            tracing::warn!(
                path = %key_path.display(),
                "node key is stored unencrypted (mode 0600, dev mode); to encrypt it, stop the node \
                 and run `RUMGATE_PASSPHRASE=... rumgate key encrypt --data-dir {}`",
                config.data_dir.display()
            );
        }
        let (token, token_source) = resolve_token(&config)?;

        let store = Store::open(&config.db_path())
            .with_context(|| format!("opening {}", config.db_path().display()))?;
        let (produce_tx, produce_rx) = tokio::sync::mpsc::unbounded_channel();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let engine = Arc::new(Engine::new(
            store.clone(),
            identity,
            produce_tx,
            metrics,
            config.api.stream_buffer,
        ));

        for record in store.load_groups().await? {
            let genesis =
                verify_genesis(record.genesis).context("stored genesis no longer verifies")?;
            let entry = Arc::new(GroupEntry::new(
                genesis,
                record.group_key,
                record.bootstrap,
                record.joined_at,
                record.head,
                record.last_cursor,
                &engine.public_key(),
            ));
            engine.load_pending_into(&entry).await?;
            engine.groups.insert(entry);
        }

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.api.listen))?;
        let api_addr = listener.local_addr()?;

        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let net = match crate::p2p::start(engine.clone(), &config.p2p, &tasks, cancel.clone()).await
        {
            Ok(net) => net,
            Err(e) => {
                cancel.cancel();
                tasks.close();
                tasks.wait().await;
                store.close().await;
                return Err(e).context("starting the peer-to-peer network");
            }
        };
        engine.set_network(Arc::new(net.clone()));
        tasks.spawn(producer::run(
            engine.clone(),
            produce_rx,
            config.batch_window(),
            cancel.clone(),
        ));
        tasks.spawn(maintenance(engine.clone(), cancel.clone()));
        let gateways =
            crate::gateways::Gateways::start(engine.clone(), tasks.clone(), cancel.clone()).await?;
        let api_state =
            api::ApiState::new(engine.clone(), token, api_addr, config.api.max_body_bytes)
                .with_limits(api::ApiLimits::from_config(&config.api))
                .with_cancel(cancel.clone())
                .with_gateways(gateways.clone())
                .with_metrics_auth(config.api.metrics_auth)
                .load_tokens()
                .await?;
        let router = api::router(api_state);
        tasks.spawn(api::server::serve(
            listener,
            router,
            api::server::ServerLimits::from_config(&config.api),
            engine.metrics().clone(),
            cancel.clone(),
        ));
        for entry in engine.groups() {
            if entry.pending_len() > 0 {
                engine.schedule(&entry);
            }
        }
        tracing::info!(
            api = %api_addr,
            node = %hex::encode(engine.public_key()),
            peer = %net.peer_id(),
            groups = engine.groups().len(),
            "rumgate node started"
        );
        Ok(Node {
            engine,
            gateways,
            net,
            cancel,
            tasks,
            api_addr,
            token_source,
            keystore_status,
        })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The peer-to-peer network handle (peer id, listen addresses, peers).
    pub fn p2p(&self) -> &crate::p2p::Client {
        &self.net
    }

    pub fn gateways(&self) -> &Arc<crate::gateways::Gateways> {
        &self.gateways
    }

    pub fn token_source(&self) -> &TokenSource {
        &self.token_source
    }

    pub fn keystore_status(&self) -> KeystoreStatus {
        self.keystore_status
    }

    /// A token that resolves when shutdown begins (for callers that wait on signals).
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops accepting work, lets tasks finish within the grace period, then closes the store.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.gateways.shutdown().await;
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within the grace period");
        }
        self.engine.store.close().await;
        tracing::info!("rumgate node stopped");
    }
}

/// Periodic housekeeping: forget idempotency keys older than 24 h.
async fn maintenance(engine: Arc<Engine>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                match engine.store().purge_idempotency(crate::util::now_ms()).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "expired idempotency keys"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "idempotency cleanup failed"),
                }
            }
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    }
    Ok(())
}

fn read_passphrase(config: &Config) -> anyhow::Result<Option<SecretString>> {
    if let Ok(p) = std::env::var("RUMGATE_PASSPHRASE") {
        if !p.is_empty() {
            return Ok(Some(SecretString::from(p)));
        }
    }
    match &config.keys.passphrase_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("keys.passphrase_file {}", path.display()))?;
            let line = text.lines().next().unwrap_or("").to_string();
            anyhow::ensure!(
                !line.is_empty(),
                "keys.passphrase_file {} is empty",
                path.display()
            );
            Ok(Some(SecretString::from(line)))
        }
        None => Ok(None),
    }
}

/// Config token > token file > existing `<data>/api.token` > a new one written there.
fn resolve_token(config: &Config) -> anyhow::Result<(SecretString, TokenSource)> {
    if let Some(t) = &config.api.token {
        return Ok((t.clone(), TokenSource::Config));
    }
    if let Some(path) = &config.api.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("api.token_file {}", path.display()))?;
        let token = text.trim().to_string();
        anyhow::ensure!(
            token.len() >= 16,
            "api.token_file {}: token shorter than 16 characters",
            path.display()
        );
        return Ok((SecretString::from(token), TokenSource::File(path.clone())));
    }
    let path = config.token_path();
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => Ok((
            SecretString::from(text.trim().to_string()),
            TokenSource::Existing(path),
        )),
        Ok(_) => anyhow::bail!(
            "{} is empty or too short; delete it to generate a new token",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("rgt_{}", hex::encode(crate::crypto::random_bytes::<24>()));
            crate::util::write_private_file(&path, format!("{token}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok((SecretString::from(token), TokenSource::Generated(path)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
