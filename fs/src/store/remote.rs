//! The remote object store behind a blocking API.
//!
//! `object_store` is async; the rest of this crate is not (FUSE callbacks
//! and persist run on plain threads), so the remote owns a small tokio
//! runtime and blocks on it. This is the only module that touches async code.
//!
//! Every write is durable when it returns, as on S3: a `file://` remote
//! syncs a written file before its name appears and the directories whose
//! entries changed after (`LocalFileSystem::with_fsync`), and the directory
//! of a deleted file, so that a power loss neither reverts a write whose
//! record was written after it nor brings back a deleted record.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use crate::error::StoreError;
use crate::metrics::{RemoteMetrics, RemoteOp};

/// A handle on the remote: an `object_store` URL (`file://`, `s3://`, `gs://`,
/// `az://`, `http(s)://`, `memory:`); cloud credentials come from the
/// provider's usual environment variables.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    url: String,
    health: Arc<Mutex<Health>>,
    metrics: Arc<RemoteMetrics>,
    /// The directory of a `file://` remote.
    local_dir: Option<PathBuf>,
}

/// Whether the remote answered its last request.
#[derive(Clone, Debug, Default)]
pub struct Health {
    /// Since when requests fail (after their retries); `None` while it answers.
    pub down_since: Option<SystemTime>,
    /// The last failure, without credentials.
    pub last_error: String,
}

/// Records a request's outcome: a failure other than "not found" (which is an
/// answer) marks the remote down, anything else marks it up.
fn observe<T>(health: &Mutex<Health>, result: Result<T, StoreError>) -> Result<T, StoreError> {
    let mut health = health.lock().unwrap();
    match &result {
        Err(e) if failed(e) => {
            health.down_since.get_or_insert_with(SystemTime::now);
            health.last_error = e.to_string();
        }
        _ => health.down_since = None,
    }
    result
}

/// Whether `e` is the remote failing (after its retries), not an answer
/// such as "not found".
fn failed(e: &StoreError) -> bool {
    matches!(e, StoreError::Remote { not_found: false, .. })
}

/// Counts one request of `op` started at `started` in `metrics`, with the
/// object bytes `size` says a success moved, then [`observe`]s it.
fn settle<T>(
    health: &Mutex<Health>,
    metrics: &RemoteMetrics,
    (op, started): (RemoteOp, Instant),
    result: Result<T, StoreError>,
    size: impl FnOnce(&T) -> u64,
) -> Result<T, StoreError> {
    match &result {
        Ok(done) => metrics.record(op, started, false, size(done)),
        Err(e) => metrics.record(op, started, failed(e), 0),
    }
    observe(health, result)
}

/// An object listed under a prefix.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Key relative to the remote's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, by the remote's clock.
    pub last_modified: SystemTime,
}

impl Remote {
    /// Opens the remote at `url`. `timeout` bounds how long one request keeps
    /// retrying before it fails; each request is counted in `metrics`.
    pub fn open(url: &str, timeout: Duration, metrics: Arc<RemoteMetrics>) -> Result<Remote, StoreError> {
        let bad = |why: String| StoreError::RemoteUrl {
            url: redact(url),
            why,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let retry = RetryConfig {
            max_retries: 10,
            retry_timeout: timeout,
            ..RetryConfig::default()
        };
        // The bucket or container of a cloud URL, and the key prefix after it.
        let bucket = || {
            parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad(format!("missing bucket: use {}://BUCKET/PREFIX", parsed.scheme())))
        };
        let prefix = parsed.path().trim_matches('/');
        let mut local_dir = None;
        let cloud = |store: Result<Arc<dyn ObjectStore>, object_store::Error>| {
            let store = store.map_err(|e| bad(e.to_string()))?;
            Ok::<_, StoreError>(if prefix.is_empty() {
                store
            } else {
                Arc::new(PrefixStore::new(store, prefix)) as Arc<dyn ObjectStore>
            })
        };
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| bad("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
                let local = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
                local_dir = Some(dir);
                Arc::new(local.with_fsync(true))
            }
            "memory" => Arc::new(InMemory::new()),
            "s3" | "s3a" => cloud(
                AmazonS3Builder::from_env()
                    .with_bucket_name(bucket()?)
                    .with_retry(retry)
                    .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
                    .with_config(
                        AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                        format!("{}s", timeout.as_secs().max(1)),
                    )
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            )?,
            "gs" => cloud(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket()?)
                    .with_retry(retry)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            )?,
            "az" | "azure" => cloud(
                MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket()?)
                    .with_retry(retry)
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            )?,
            // A WebDAV-style HTTP server: the URL's path is its root.
            "http" | "https" => HttpBuilder::new()
                .with_url(url)
                .with_retry(retry)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| bad(e.to_string()))?,
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other:?}: use file:///DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, \
                     az://CONTAINER/PREFIX, https://HOST/PATH or memory:"
                )))
            }
        };
        let mut remote =
            Remote::on(store, url, metrics).map_err(|e| bad(format!("cannot start I/O runtime: {e}")))?;
        remote.local_dir = local_dir;
        Ok(remote)
    }

    /// The remote `store`, named `url` in messages.
    fn on(store: Arc<dyn ObjectStore>, url: &str, metrics: Arc<RemoteMetrics>) -> std::io::Result<Remote> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wsfs-remote")
            .enable_all()
            .build()?;
        Ok(Remote {
            store,
            runtime,
            url: redact(url),
            health: Arc::default(),
            metrics,
            local_dir: None,
        })
    }

    /// The URL, without credentials, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the remote answered its last request, and its last failure.
    pub fn health(&self) -> Health {
        self.health.lock().unwrap().clone()
    }

    /// Counts and [`observe`]s one request (see [`settle`]).
    fn settle<T>(
        &self,
        request: (RemoteOp, Instant),
        result: Result<T, StoreError>,
        size: impl FnOnce(&T) -> u64,
    ) -> Result<T, StoreError> {
        settle(&self.health, &self.metrics, request, result, size)
    }

    fn err(&self, op: &'static str, key: &str, source: object_store::Error) -> StoreError {
        StoreError::Remote {
            remote: self.url.clone(),
            op,
            key: key.to_string(),
            message: source.to_string(),
            not_found: matches!(source, object_store::Error::NotFound { .. }),
        }
    }

    /// The whole object at `key`; `None` when it does not exist. An object
    /// over `max` bytes is refused when its size is known, before its body
    /// is read: no object from the remote makes the daemon allocate more
    /// than its kind justifies.
    pub fn get(&self, key: &str, max: u64) -> Result<Option<Bytes>, StoreError> {
        let path = Path::from(key);
        let request = (RemoteOp::Get, Instant::now());
        let fetched = self.runtime.block_on(async {
            match self.store.get(&path).await {
                Ok(got) if got.meta.size > max => Ok(Err(got.meta.size)),
                Ok(got) => got.bytes().await.map(|b| Ok(Some(b))),
                Err(object_store::Error::NotFound { .. }) => Ok(Ok(None)),
                Err(e) => Err(e),
            }
        });
        let size = |got: &Result<Option<Bytes>, u64>| {
            got.as_ref()
                .map_or(0, |b| b.as_ref().map_or(0, |b| b.len() as u64))
        };
        match self.settle(request, fetched.map_err(|e| self.err("GET", key, e)), size)? {
            Ok(bytes) => Ok(bytes),
            Err(size) => Err(StoreError::TooLarge {
                key: key.to_string(),
                size,
                max,
            }),
        }
    }

    /// Whether the remote answers: a GET of a key no object ever has
    /// (answered "not found" by a reachable remote).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.get("wsfs-probe/reachable", 1 << 20).map(drop)
    }

    /// Bytes `range` of the object at `key`.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = Path::from(key);
        let request = (RemoteOp::Get, Instant::now());
        let fetched = self.runtime.block_on(self.store.get_range(&path, range));
        self.settle(request, fetched.map_err(|e| self.err("GET", key, e)), |b| {
            b.len() as u64
        })
    }

    /// Writes `bytes` at `key` atomically (readers see all or nothing).
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.spawn_put(key.to_string(), bytes).wait()
    }

    /// Writes `bytes` at `key`; when the PUT fails, reads the key back, since
    /// a request that timed out may have landed all the same: succeeds when
    /// the remote holds `bytes` there. When neither the PUT nor the read
    /// tells, the error says that whether it landed is unknown.
    pub fn put_resolved(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let Err(failed) = self.put(key, bytes.clone()) else {
            return Ok(());
        };
        // Anything larger than what was written is not it.
        match self.get(key, bytes.len() as u64) {
            Ok(Some(held)) if held == bytes => {
                tracing::warn!(key, error = %failed, "the PUT failed, but reading it back shows it landed");
                Ok(())
            }
            Ok(_) | Err(StoreError::TooLarge { .. }) => Err(failed),
            Err(read) => Err(StoreError::Remote {
                remote: self.url.clone(),
                op: "PUT",
                key: key.to_string(),
                message: format!(
                    "{failed}; reading it back failed too ({read}), so whether it landed is unknown"
                ),
                not_found: false,
            }),
        }
    }

    /// Starts writing `bytes` at `key` in the background; join the handle for the outcome.
    pub fn spawn_put(&self, key: String, bytes: Bytes) -> PendingPut {
        let store = self.store.clone();
        let url = self.url.clone();
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        let len = bytes.len() as u64;
        let handle = self.runtime.spawn(async move {
            let request = (RemoteOp::Put, Instant::now());
            let put = store
                .put(&Path::from(key.as_str()), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| StoreError::Remote {
                    remote: url,
                    op: "PUT",
                    key,
                    message: e.to_string(),
                    not_found: false,
                });
            settle(&health, &metrics, request, put, |_| len)
        });
        PendingPut {
            handle,
            runtime: self.runtime.handle().clone(),
        }
    }

    /// Deletes the object at `key` (done when it does not exist).
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let request = (RemoteOp::Delete, Instant::now());
        let deleted = match self.runtime.block_on(self.store.delete(&Path::from(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => self.sync_dir_of(key),
            Err(e) => Err(self.err("DELETE", key, e)),
        };
        self.settle(request, deleted, |_| 0)
    }

    /// On a `file://` remote, makes the removal of `key`'s file durable:
    /// syncs the directory that held it (if it is still there).
    fn sync_dir_of(&self, key: &str) -> Result<(), StoreError> {
        let Some(dir) = self
            .local_dir
            .as_ref()
            .and_then(|d| d.join(key).parent().map(|p| p.to_path_buf()))
        else {
            return Ok(());
        };
        match std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(dir, e)),
            _ => Ok(()),
        }
    }

    /// Which of `keys` name no object, asking about up to 16 at once.
    pub fn missing(&self, keys: &[String]) -> Result<Vec<String>, StoreError> {
        let heads = futures::stream::iter(keys.iter().map(|key| async move {
            let started = Instant::now();
            let head = match self.store.head(&Path::from(key.as_str())).await {
                Ok(_) => Ok(None),
                Err(object_store::Error::NotFound { .. }) => Ok(Some(key.clone())),
                Err(e) => Err(self.err("HEAD", key, e)),
            };
            let failed = head.as_ref().is_err_and(failed);
            self.metrics.record(RemoteOp::Head, started, failed, 0);
            head
        }))
        .buffer_unordered(16)
        .try_filter_map(|gone| async move { Ok(gone) })
        .try_collect();
        let mut gone: Vec<String> = observe(&self.health, self.runtime.block_on(heads))?;
        gone.sort();
        Ok(gone)
    }

    /// Every object under `prefix` (a `/`-separated key prefix), sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let path = Path::from(prefix);
        let request = (RemoteOp::List, Instant::now());
        let listed: Result<Vec<Listed>, _> = self
            .runtime
            .block_on(
                self.store
                    .list(Some(&path))
                    .map_ok(|meta| Listed {
                        key: meta.location.to_string(),
                        size: meta.size,
                        last_modified: meta.last_modified.into(),
                    })
                    .try_collect(),
            )
            .map_err(|e| self.err("LIST", prefix, e));
        let mut listed = self.settle(request, listed, |_| 0)?;
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }
}

/// A write started by [`Remote::spawn_put`].
pub struct PendingPut {
    handle: tokio::task::JoinHandle<Result<(), StoreError>>,
    runtime: tokio::runtime::Handle,
}

impl PendingPut {
    /// Waits for the write to finish.
    pub fn wait(self) -> Result<(), StoreError> {
        self.runtime
            .block_on(self.handle)
            .unwrap_or_else(|e| Err(StoreError::Internal(format!("upload task failed: {e}"))))
    }
}

/// Drops user info and query (where credentials could hide) from a URL
/// (an unparsable text is shown as given: it has no parts to hide).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_remote_round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let remote = Remote::open(&url, Duration::from_secs(5), Arc::default()).unwrap();
        remote.put("a/2", Bytes::from_static(b"two")).unwrap();
        remote
            .spawn_put("a/1".into(), Bytes::from_static(b"one"))
            .wait()
            .unwrap();
        assert_eq!(remote.get("a/1", 3).unwrap().unwrap(), &b"one"[..]);
        assert!(matches!(
            remote.get("a/1", 2),
            Err(StoreError::TooLarge { size: 3, max: 2, .. })
        ));
        assert_eq!(remote.get_range("a/2", 1..3).unwrap(), &b"wo"[..]);
        assert!(remote.get("missing", 1).unwrap().is_none());
        let keys: Vec<_> = remote.list("a").unwrap().into_iter().map(|l| l.key).collect();
        assert_eq!(keys, ["a/1", "a/2"]);
        let asked = ["a/1".to_string(), "b".to_string(), "a/3".to_string()];
        assert_eq!(remote.missing(&asked).unwrap(), ["a/3", "b"]);
    }

    #[test]
    fn each_request_is_counted_by_operation() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(RemoteMetrics::default());
        let url = format!("file://{}", dir.path().display());
        let remote = Remote::open(&url, Duration::from_secs(5), metrics.clone()).unwrap();
        remote.put("a/1", Bytes::from_static(b"four")).unwrap();
        remote.get("a/1", 4).unwrap();
        remote.get_range("a/1", 1..3).unwrap();
        assert!(remote.get("missing", 1).unwrap().is_none());
        remote.missing(&["a/1".to_string(), "b".to_string()]).unwrap();
        remote.list("a").unwrap();
        remote.delete("a/1").unwrap();
        let counted = |op| (metrics.requests(op), metrics.bytes(op));
        assert_eq!(counted(RemoteOp::Put), (1, 4));
        assert_eq!(
            counted(RemoteOp::Get),
            (3, 6),
            "a \"not found\" is an answer, of no bytes"
        );
        assert_eq!(counted(RemoteOp::Head), (2, 0));
        assert_eq!(counted(RemoteOp::List), (1, 0));
        assert_eq!(counted(RemoteOp::Delete), (1, 0));
    }

    #[test]
    fn bad_urls_are_named() {
        for url in ["ftp://x/y", "s3:///nobucket", "not a url"] {
            let err = Remote::open(url, Duration::from_secs(1), Arc::default())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(url), "{err}");
        }
    }

    /// An in-memory remote whose PUTs fail, after landing or not, and whose
    /// GETs fail when told: a request that timed out.
    #[derive(Debug)]
    struct Flaky {
        inner: InMemory,
        put_lands: bool,
        get_fails: bool,
    }

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("flaky")
        }
    }

    fn timed_out() -> object_store::Error {
        object_store::Error::Generic {
            store: "flaky",
            source: "request timed out".into(),
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Flaky {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            if self.put_lands {
                self.inner.put_opts(location, payload, opts).await?;
            }
            Err(timed_out())
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            if self.get_fails {
                return Err(timed_out());
            }
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn flaky(put_lands: bool, get_fails: bool) -> Remote {
        let store = Flaky {
            inner: InMemory::new(),
            put_lands,
            get_fails,
        };
        Remote::on(Arc::new(store), "memory:", Arc::default()).unwrap()
    }

    #[test]
    fn a_put_that_timed_out_is_resolved_by_reading_it_back() {
        let record = Bytes::from_static(b"wsfs-layer-record 1\n");
        // It landed: the outcome is success, and the object is there.
        let landed = flaky(true, false);
        landed.put_resolved("workspaces/a/b/1", record.clone()).unwrap();
        assert_eq!(
            landed.get("workspaces/a/b/1", 1 << 10).unwrap(),
            Some(record.clone())
        );
        // It did not land: the PUT's failure.
        let lost = flaky(false, false).put_resolved("workspaces/a/b/1", record.clone());
        let lost = lost.unwrap_err().to_string();
        assert!(
            lost.contains("request timed out") && !lost.contains("unknown"),
            "{lost}"
        );
        // Nothing tells: the error says so.
        let unknown = flaky(true, true).put_resolved("workspaces/a/b/1", record);
        let unknown = unknown.unwrap_err().to_string();
        assert!(unknown.contains("whether it landed is unknown"), "{unknown}");
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact("s3://KEY:SECRET@bucket/p?token=T"), "s3://bucket/p");
    }
}
