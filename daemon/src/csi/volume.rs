//! What a pod asks for in `csi.volumeAttributes`, checked.

use std::collections::HashMap;

use wsfs_fs::workspace::WorkspaceName;
use wsfs_pipeline::workspace_files::{parse_list, WorkspaceFile};

use crate::views::{parse_sub_path, ViewKind};

/// The attributes a volume may carry; anything else is refused.
pub const ATTRIBUTES: [&str; 8] = [
    "workspace",
    "view",
    "subPath",
    "files",
    "persist",
    "mountPath",
    "prefetch",
    "prefetchKey",
];
/// Keys kubelet adds itself (pod name, namespace, uid, service account, ephemeral).
const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

/// When an isolated view's changes become a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersistPolicy {
    /// Never: the changes are discarded at unpublish.
    Never,
    /// At unpublish, when the pod is done.
    OnSuccess,
}

/// A volume as its attributes describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeSpec {
    /// `workspace`.
    pub workspace: WorkspaceName,
    /// `view`.
    pub kind: ViewKind,
    /// `subPath`, normalized.
    pub sub_path: Vec<u8>,
    /// `files`.
    pub files: Vec<WorkspaceFile>,
    /// `persist`.
    pub persist: PersistPolicy,
    /// `mountPath`: where the pod sees the volume, for messages.
    pub mount_path: String,
    /// `prefetch`: fetch the whole workspace in the background (else only
    /// the files its last readers read, when a trace is kept).
    pub prefetch: bool,
    /// `prefetchKey`: where the access trace is kept (default: the workspace name).
    pub prefetch_key: Option<String>,
    /// `namespace/name` of the pod, when kubelet tells (for logs).
    pub pod: Option<String>,
}

/// Reads and checks the attributes; an error names the attribute and what to change.
pub fn parse(attributes: &HashMap<String, String>) -> Result<VolumeSpec, String> {
    if let Some(unknown) = attributes
        .keys()
        .find(|k| !ATTRIBUTES.contains(&k.as_str()) && !k.starts_with(KUBELET_PREFIX))
    {
        return Err(format!(
            "unknown volume attribute {unknown:?}: wsfs volumes take {}",
            ATTRIBUTES.join(", ")
        ));
    }
    let get = |key: &str| attributes.get(key).map(String::as_str).unwrap_or("");
    let workspace = match get("workspace") {
        "" => return Err("volume attribute \"workspace\" is required (e.g. workspace: run-42/src)".into()),
        text => text
            .parse::<WorkspaceName>()
            .map_err(|e| format!("volume attribute \"workspace\": {e}"))?,
    };
    let kind = match get("view") {
        "" | "read-only" => ViewKind::ReadOnly,
        "isolated" => ViewKind::Isolated,
        other => {
            return Err(format!(
                "volume attribute \"view\" is {other:?}: use read-only or isolated"
            ))
        }
    };
    let sub_path =
        parse_sub_path(get("subPath")).map_err(|e| format!("volume attribute \"subPath\": {e}"))?;
    let files = parse_list(get("files")).map_err(|e| format!("volume attribute \"files\": {e}"))?;
    let persist =
        match get("persist") {
            "" | "never" => PersistPolicy::Never,
            "on-success" if kind == ViewKind::Isolated => PersistPolicy::OnSuccess,
            "on-success" => return Err(
                "volume attribute \"persist\" is on-success but the view is read-only: add view: isolated, \
                 or drop persist"
                    .into(),
            ),
            other => {
                return Err(format!(
                    "volume attribute \"persist\" is {other:?}: use never or on-success"
                ))
            }
        };
    let mount_path = get("mountPath").to_string();
    if !mount_path.is_empty() && !mount_path.starts_with('/') {
        return Err(format!(
            "volume attribute \"mountPath\" is {mount_path:?}: give the absolute path where the pod mounts the volume"
        ));
    }
    let prefetch = match get("prefetch") {
        "" | "false" => false,
        "true" => true,
        other => {
            return Err(format!(
                "volume attribute \"prefetch\" is {other:?}: use true or false"
            ))
        }
    };
    let prefetch_key = match get("prefetchKey") {
        "" => None,
        key => Some(
            crate::requests::prefetch_key(key)
                .map_err(|e| format!("volume attribute \"prefetchKey\": {}", e.message()))?
                .to_string(),
        ),
    };
    let pod = attributes.get("csi.storage.k8s.io/pod.name").map(|name| {
        match attributes.get("csi.storage.k8s.io/pod.namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name.clone(),
        }
    });
    Ok(VolumeSpec {
        workspace,
        kind,
        sub_path,
        files,
        persist,
        mount_path,
        prefetch,
        prefetch_key,
        pod,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_attribute() {
        let spec = parse(&attrs(&[
            ("workspace", "run-42/src"),
            ("view", "isolated"),
            ("subPath", "services/./api/"),
            ("files", "private-key=/id_ecdsa,known_hosts"),
            ("persist", "on-success"),
            ("mountPath", "/workspace/src"),
            ("prefetch", "true"),
            ("prefetchKey", "tests/unit"),
            ("csi.storage.k8s.io/pod.name", "build-1"),
            ("csi.storage.k8s.io/pod.namespace", "ci"),
        ]))
        .unwrap();
        assert_eq!(spec.workspace.to_string(), "run-42/src");
        assert_eq!(spec.kind, ViewKind::Isolated);
        assert_eq!(spec.sub_path, b"services/api");
        assert_eq!(spec.files.len(), 2);
        assert_eq!(spec.persist, PersistPolicy::OnSuccess);
        assert_eq!(spec.pod.as_deref(), Some("ci/build-1"));
        assert!(spec.prefetch);
        assert_eq!(spec.prefetch_key.as_deref(), Some("tests/unit"));
        let plain = parse(&attrs(&[("workspace", "a/b")])).unwrap();
        assert_eq!(
            (plain.kind, plain.persist),
            (ViewKind::ReadOnly, PersistPolicy::Never)
        );
    }

    #[test]
    fn names_the_bad_attribute() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (&[("workspace", "a/b"), ("prefetch", "yes")], "\"prefetch\""),
            (
                &[("workspace", "a/b"), ("prefetchKey", "../x")],
                "\"prefetchKey\"",
            ),
            (&[], "\"workspace\" is required"),
            (&[("workspace", "nonamespace")], "\"workspace\""),
            (&[("workspace", "a/b"), ("view", "rw")], "\"view\""),
            (&[("workspace", "a/b"), ("subPath", "../x")], "\"subPath\""),
            (&[("workspace", "a/b"), ("files", "k=../x")], "\"files\""),
            (&[("workspace", "a/b"), ("persist", "on-success")], "\"persist\""),
            (&[("workspace", "a/b"), ("sub_path", "x")], "\"sub_path\""),
        ];
        for (pairs, needle) in cases {
            let error = parse(&attrs(pairs)).unwrap_err();
            assert!(error.contains(needle), "{pairs:?}: {error}");
        }
    }
}
