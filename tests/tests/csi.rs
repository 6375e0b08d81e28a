//! The CSI node plugin, driven over its socket as kubelet drives it: what
//! csi-sanity's node tests check (identity, node id, InvalidArgument cases,
//! the publish/unpublish lifecycle, idempotency, the target removed after
//! unpublish), and what a pod using a wsfs inline volume relies on: the
//! workspace byte for byte at the target, read-only views refusing writes,
//! an isolated view persisted at unpublish, Workspace Files checked.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tonic::Code;
use wsfs_api::csi::node_service_capability::{rpc::Type as RpcType, Type as CapabilityType};
use wsfs_api::csi::volume_capability::access_mode::Mode;
use wsfs_api::csi::volume_usage::Unit;
use wsfs_api::csi::NodePublishVolumeRequest;
use wsfs_tests::compare::{assert_same_tree, CompareOptions};
use wsfs_tests::csi::{block_capability, mount_capability, publish_request, CsiClient};
use wsfs_tests::json::{array_of, u64_of};
use wsfs_tests::tree::{generate, write_file, TreeSpec};
use wsfs_tests::{mounts, process, Host, HostConfig};

/// A node: a host whose daemon serves CSI, with a "kubelet" directory for targets.
fn node() -> (Host, CsiClient) {
    let host = Host::with_config(HostConfig::named("node1").csi());
    let csi = host.csi();
    (host, csi)
}

/// Where kubelet would ask for volume `name` of a pod (the parent exists, the target not).
fn target(host: &Host, name: &str) -> PathBuf {
    let dir = host.path(format!("kubelet/pods/uid-1/volumes/kubernetes.io~csi/{name}"));
    fs::create_dir_all(&dir).unwrap();
    dir.join("mount")
}

/// Persists a small tree as `ws` and returns its source directory.
fn workspace(host: &Host, ws: &str, seed: u64) -> PathBuf {
    let src = host.path(format!("src-{seed}"));
    let tree = generate(&src, &TreeSpec::plain(seed, 60)).unwrap();
    host.persist(ws, &src, &tree.top_level());
    src
}

/// Asserts a call failed with `code` and a message holding every needle.
fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needles: &[&str]) {
    let status = match result {
        Ok(v) => panic!("expected {code:?}, got OK: {v:?}"),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{needle:?} not in {:?}",
            status.message()
        );
    }
}

/// A change to a good publish request.
type Change = dyn Fn(&mut NodePublishVolumeRequest);

/// kubelet asks who the plugin is and what it can do before it registers it:
/// the driver name of the manifests, a version, no controller service, ready
/// (the store answers), a non-empty node id, and volume stats as the only node
/// capability (no staging).
#[test]
fn the_plugin_identifies_itself_and_its_node() {
    let (_host, csi) = node();
    let info = csi.plugin_info().unwrap();
    assert_eq!(info.name, "csi.wsfs.dev");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    assert!(csi.plugin_capabilities().unwrap().capabilities.is_empty());
    assert_eq!(csi.probe().unwrap().ready, Some(true));
    assert_eq!(csi.node_info().unwrap().node_id, "node-node1");
    let capabilities: Vec<CapabilityType> = csi
        .node_capabilities()
        .unwrap()
        .capabilities
        .into_iter()
        .filter_map(|c| c.r#type)
        .collect();
    let rpcs: Vec<i32> = capabilities
        .iter()
        .map(|CapabilityType::Rpc(rpc)| rpc.r#type)
        .collect();
    assert_eq!(rpcs, [RpcType::GetVolumeStats as i32]);
}

/// A pod's read-only inline volume: kubelet publishes it at the target (which
/// the plugin creates), the pod sees the workspace byte for byte and cannot
/// change it, volume stats answer, a second identical publish is OK and a
/// different one for the same target is ALREADY_EXISTS; unpublish unmounts and
/// removes the target, and unpublishing again is OK.
#[test]
fn a_read_only_volume_shows_the_workspace_and_its_lifecycle_is_idempotent() {
    let (host, csi) = node();
    let src = workspace(&host, "run-42/src", 1);
    let t = target(&host, "src");
    let request = publish_request("csi-vol-1", &t, &[("workspace", "run-42/src")]);
    csi.publish(request.clone()).unwrap();
    assert!(mounts::is_mounted(&t), "{t:?} is not mounted");
    assert_same_tree(&src, &t, &CompareOptions::ignoring_root());
    let err = fs::write(t.join("new-file"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    csi.publish(request.clone()).unwrap();
    let mut other = request.clone();
    other.volume_context.insert("view".into(), "isolated".into());
    assert_status(csi.publish(other), Code::AlreadyExists, &["already published"]);

    let stats = csi.volume_stats("csi-vol-1", &t).unwrap();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == Unit::Bytes as i32)
        .expect("bytes usage");
    assert!(bytes.total > 0 && bytes.used > 0, "{stats:?}");
    assert!(
        stats
            .usage
            .iter()
            .any(|u| u.unit == Unit::Inodes as i32 && u.total > 60),
        "{stats:?}"
    );
    assert_status(csi.volume_stats("csi-vol-2", &t), Code::NotFound, &["csi-vol-2"]);

    csi.unpublish("csi-vol-1", &t).unwrap();
    assert!(!mounts::is_mounted(&t), "{t:?} still mounted after unpublish");
    assert!(!t.exists(), "{t:?} left after unpublish");
    csi.unpublish("csi-vol-1", &t).unwrap();
    assert_status(csi.volume_stats("csi-vol-1", &t), Code::NotFound, &[]);
    assert!(array_of(&host.status(), "mounts").is_empty());
}

/// A build pod writes to an isolated volume with `persist: on-success`: at
/// unpublish its changes become the next layer, and the next pod's volume
/// (publish of the same workspace) shows them; an isolated volume without
/// persist leaves the workspace unchanged; a read-only publish of an isolated
/// volume (the pod's `readOnly: true`) refuses writes.
#[test]
fn an_isolated_volume_with_persist_on_success_yields_the_next_layer() {
    let (host, csi) = node();
    let src = workspace(&host, "run-7/build", 2);
    let attrs = [
        ("workspace", "run-7/build"),
        ("view", "isolated"),
        ("persist", "on-success"),
    ];
    let t = target(&host, "build");
    csi.publish(publish_request("vol-a", &t, &attrs)).unwrap();
    write_file(&t.join("out/report.txt"), b"all green\n").unwrap();
    fs::remove_file(t.join("README.md")).unwrap();
    csi.unpublish("vol-a", &t).unwrap();
    assert!(!t.exists());
    assert_eq!(host.layer_count("run-7/build"), 2);

    let next = target(&host, "next");
    csi.publish(publish_request("vol-b", &next, &[("workspace", "run-7/build")]))
        .unwrap();
    assert_eq!(fs::read(next.join("out/report.txt")).unwrap(), b"all green\n");
    assert!(!next.join("README.md").exists());
    assert_eq!(
        fs::read(next.join("dir-000/file-0000")).ok(),
        fs::read(src.join("dir-000/file-0000")).ok()
    );
    csi.unpublish("vol-b", &next).unwrap();

    let scratch = target(&host, "scratch");
    csi.publish(publish_request(
        "vol-c",
        &scratch,
        &[("workspace", "run-7/build"), ("view", "isolated")],
    ))
    .unwrap();
    fs::write(scratch.join("tmp.txt"), b"thrown away").unwrap();
    csi.unpublish("vol-c", &scratch).unwrap();
    assert_eq!(
        host.layer_count("run-7/build"),
        2,
        "a volume without persist changed the workspace"
    );

    let ro = target(&host, "ro");
    let mut request = publish_request("vol-d", &ro, &attrs);
    request.readonly = true;
    request.volume_capability = Some(mount_capability(Mode::MultiNodeReaderOnly));
    csi.publish(request).unwrap();
    let err = fs::write(ro.join("x"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    csi.unpublish("vol-d", &ro).unwrap();
    assert_eq!(
        host.layer_count("run-7/build"),
        2,
        "a read-only publish persisted"
    );
}

/// A build pod writes to an isolated `persist: on-success` volume, then the
/// daemon is killed (SIGKILL) and comes back on its own: kubelet's
/// unpublish, to the new daemon, persists the changes as the next layer;
/// the publication was not forgotten, so it is never OK without the layer.
#[test]
fn an_unpublish_after_the_daemon_was_killed_still_persists_the_changes() {
    let (host, csi) = node();
    workspace(&host, "run-8/build", 3);
    let attrs = [
        ("workspace", "run-8/build"),
        ("view", "isolated"),
        ("persist", "on-success"),
    ];
    let t = target(&host, "build");
    csi.publish(publish_request("vol-a", &t, &attrs)).unwrap();
    write_file(&t.join("out/report.txt"), b"written before the crash\n").unwrap();
    let daemon = u64_of(&host.status(), "pid") as i32;
    assert!(
        process::kill_and_wait(daemon, std::time::Duration::from_secs(30)),
        "the daemon did not die"
    );
    assert_ne!(u64_of(&host.status(), "pid") as i32, daemon, "no new daemon");

    let csi = host.csi();
    csi.publish(publish_request("vol-a", &t, &attrs))
        .expect("a repeated publish of the taken-over volume is OK");
    csi.unpublish("vol-a", &t).unwrap();
    assert!(!t.exists());
    assert_eq!(
        host.layer_count("run-8/build"),
        2,
        "the unpublish did not persist"
    );
    let next = target(&host, "next");
    csi.publish(publish_request("vol-b", &next, &[("workspace", "run-8/build")]))
        .unwrap();
    assert_eq!(
        fs::read(next.join("out/report.txt")).unwrap(),
        b"written before the crash\n"
    );
    csi.unpublish("vol-b", &next).unwrap();
}

/// A deploy pod declares the files it needs from its credentials workspace:
/// present ones (a file, a directory, a symlink, under a sub-path) let the
/// pod start; a missing one fails the publish with FAILED_PRECONDITION and
/// Tekton's message, and leaves nothing mounted or created at the target.
#[test]
fn a_missing_workspace_file_fails_the_publish_with_the_tekton_message() {
    let (host, csi) = node();
    let src = host.path("creds");
    write_file(&src.join("ssh/id_ecdsa"), b"key").unwrap();
    fs::create_dir_all(src.join("ssh/config.d")).unwrap();
    symlink("id_ecdsa", src.join("ssh/default")).unwrap();
    host.persist("run-9/config", &src, &["ssh"]);

    let t = target(&host, "config");
    let files = [
        ("workspace", "run-9/config"),
        ("subPath", "ssh"),
        ("files", "private-key=/id_ecdsa,config.d,default"),
    ];
    csi.publish(publish_request("v1", &t, &files)).unwrap();
    assert_eq!(fs::read(t.join("id_ecdsa")).unwrap(), b"key");
    csi.unpublish("v1", &t).unwrap();

    let missing = [
        ("workspace", "run-9/config"),
        ("files", "private-key=/id_ecdsa,known_hosts"),
        ("mountPath", "/workspace/config"),
    ];
    assert_status(
        csi.publish(publish_request("v2", &t, &missing)),
        Code::FailedPrecondition,
        &[
            "Workspace file missing: workspace \"run-9/config\" does not provide file \"private-key\": \
           expected path \"/workspace/config/id_ecdsa\".",
        ],
    );
    assert!(!t.exists(), "a failed publish left {t:?}");
    assert!(array_of(&host.status(), "mounts").is_empty());
    let bare = [
        ("workspace", "run-9/config"),
        ("subPath", "ssh"),
        ("files", "known_hosts"),
    ];
    let status = csi.publish(publish_request("v3", &t, &bare)).unwrap_err();
    assert_eq!(
        status.message(),
        "Workspace file missing: workspace \"run-9/config\" does not provide file \"known_hosts\": \
         expected path \"/known_hosts\"."
    );
}

/// kubelet (or a broken manifest) sends incomplete or wrong requests: each is
/// refused with the code the CSI spec names and a message naming what is
/// wrong, before anything is mounted or created.
#[test]
fn bad_requests_get_the_codes_the_csi_spec_names() {
    let (host, csi) = node();
    workspace(&host, "run-1/src", 3);
    let t = target(&host, "bad");
    let good = publish_request("vol", &t, &[("workspace", "run-1/src")]);
    let with = |change: &Change| {
        let mut request = good.clone();
        change(&mut request);
        csi.publish(request)
    };
    let invalid: [(&Change, &str); 9] = [
        (&|r| r.volume_id.clear(), "volume_id"),
        (&|r| r.target_path.clear(), "target_path"),
        (&|r| r.target_path = "relative/mount".into(), "target_path"),
        (&|r| r.volume_capability = None, "volume_capability"),
        (&|r| r.volume_capability = Some(block_capability()), "block"),
        (
            &|r| {
                r.volume_context.remove("workspace");
            },
            "\"workspace\" is required",
        ),
        (
            &|r| {
                r.volume_context.insert("colour".into(), "blue".into());
            },
            "\"colour\"",
        ),
        (
            &|r| {
                r.volume_context.insert("view".into(), "rw".into());
            },
            "\"view\"",
        ),
        (
            &|r| {
                r.volume_context.insert("subPath".into(), "no/such/dir".into());
            },
            "\"subPath\"",
        ),
    ];
    for (change, needle) in invalid {
        assert_status(with(change), Code::InvalidArgument, &[needle]);
        assert!(!t.exists(), "a refused publish ({needle}) left {t:?}");
    }
    let unknown = |r: &mut NodePublishVolumeRequest| {
        r.volume_context
            .insert("workspace".into(), "run-1/nothing".into());
    };
    assert_status(with(&unknown), Code::NotFound, &["run-1/nothing"]);
    assert!(!t.exists());

    assert_status(csi.unpublish("", &t), Code::InvalidArgument, &["volume_id"]);
    assert_status(
        csi.unpublish("vol", Path::new("")),
        Code::InvalidArgument,
        &["target_path"],
    );
    assert_status(
        csi.volume_stats("vol", Path::new("")),
        Code::InvalidArgument,
        &["volume_path"],
    );
    // Unpublishing what was never published is fine (kubelet retries after crashes).
    csi.unpublish("vol", &t).unwrap();
    assert!(array_of(&host.status(), "mounts").is_empty());
    match fs::metadata(&t) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => panic!("{t:?}: {other:?}"),
    }
}

/// A node whose object store cannot be reached is not ready: kubelet's
/// liveness probe sees `ready: false` (not an error, not a hang).
#[test]
fn the_plugin_is_not_ready_while_the_store_is_unreachable() {
    let config = HostConfig::named("cut-off")
        .csi()
        .remote("http://127.0.0.1:9/workspaces")
        .env("WSFS_REMOTE_TIMEOUT", "1");
    let host = Host::with_config(config);
    assert_eq!(host.csi().probe().unwrap().ready, Some(false));
}

/// The remote fails while a build pod's isolated volume is unpublished: the
/// unpublish fails (kubelet retries it), the view stays mounted with the pod's
/// changes, and the workspace is unchanged; once the remote is back, the
/// retried unpublish persists them and removes the target.
#[test]
fn a_failed_persist_at_unpublish_keeps_the_changes_for_kubelets_retry() {
    // The file:// remote: the test breaks its packs directory.
    let host = Host::with_config(HostConfig::named("node1").csi().file_remote());
    let csi = host.csi();
    workspace(&host, "run-3/build", 4);
    let t = target(&host, "build");
    let attrs = [
        ("workspace", "run-3/build"),
        ("view", "isolated"),
        ("persist", "on-success"),
    ];
    csi.publish(publish_request("vol", &t, &attrs)).unwrap();
    write_file(&t.join("out/artifact.bin"), b"built").unwrap();

    let packs = host.remote_dir().join("packs");
    let away = host.remote_dir().join("packs.away");
    fs::rename(&packs, &away).unwrap();
    fs::write(&packs, b"not a directory\n").unwrap();
    let failed = csi.unpublish("vol", &t).unwrap_err();
    assert!(failed.message().contains("persisting the changes"), "{failed:?}");
    assert!(mounts::is_mounted(&t), "a failed unpublish must keep the view");
    assert_eq!(fs::read(t.join("out/artifact.bin")).unwrap(), b"built");
    assert_eq!(host.layer_count("run-3/build"), 1);

    fs::remove_file(&packs).unwrap();
    fs::rename(&away, &packs).unwrap();
    csi.unpublish("vol", &t).unwrap();
    assert!(!t.exists());
    assert_eq!(host.layer_count("run-3/build"), 2);
    let next = target(&host, "next");
    csi.publish(publish_request("vol2", &next, &[("workspace", "run-3/build")]))
        .unwrap();
    assert_eq!(fs::read(next.join("out/artifact.bin")).unwrap(), b"built");
}

/// A test pod's volume asks for prefetch: the node fetches the whole
/// workspace in the background under the pod's trace key, and reading all
/// of it afterwards fetches nothing more.
#[test]
fn a_volume_with_prefetch_fetches_the_whole_workspace_in_the_background() {
    let (host, csi) = node();
    let src = workspace(&host, "run-5/out", 5);
    let t = target(&host, "out");
    let attrs = [
        ("workspace", "run-5/out"),
        ("prefetch", "true"),
        ("prefetchKey", "tests/unit"),
    ];
    csi.publish(publish_request("vol", &t, &attrs)).unwrap();
    assert_eq!(host.view_status(&t)["prefetch_key"], "tests/unit");
    let done = host.wait_prefetched(&t);
    assert_eq!(done["state"], "done", "{done}");
    assert!(
        done["files_total"].as_u64() > Some(0) && done["files_done"] == done["files_total"],
        "{done}"
    );
    let before = u64_of(&host.status(), "remote_get_requests");
    assert_same_tree(&src, &t, &CompareOptions::ignoring_root());
    assert_eq!(
        u64_of(&host.status(), "remote_get_requests"),
        before,
        "reading after the prefetch fetched more"
    );
    csi.unpublish("vol", &t).unwrap();
}
