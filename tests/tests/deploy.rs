//! The Kubernetes deployment: the manifests under `deploy/` agree with each
//! other (sockets, paths, volumes, names), with the CSI driver's contract
//! (driver name, volume attributes), with `docs/kubernetes.md` and with the
//! flags of the `wsfsd` binary. No cluster and no root needed; only the last
//! check runs a binary (`wsfsd --help`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use wsfs_tests::host::wsfs_bin;

/// The CSI driver's name.
const DRIVER: &str = "csi.wsfs.dev";
/// Every volume attribute a pod may give.
const ATTRIBUTES: [&str; 8] = [
    "workspace",
    "view",
    "subPath",
    "files",
    "persist",
    "mountPath",
    "prefetch",
    "prefetchKey",
];
/// Values of `view`.
const VIEWS: [&str; 2] = ["read-only", "isolated"];
/// Values of `persist`.
const PERSIST: [&str; 2] = ["never", "on-success"];
/// Where every container of the node plugin sees the plugin directory.
const PLUGIN_MOUNT: &str = "/csi";
/// kubelet's directory, mounted into wsfsd so that views reach the pods.
const KUBELET_DIR: &str = "/var/lib/kubelet";
/// Where kubelet looks for registration sockets.
const REGISTRY_DIR: &str = "/var/lib/kubelet/plugins_registry";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// `path` relative to the repository root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------
// Loading

/// One YAML document of a file under `deploy/`.
struct Doc {
    /// The file, relative to the repository root.
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    fn name(&self) -> &str {
        lookup(&self.value, "metadata.name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `deploy/daemonset.yaml: DaemonSet wsfs-node`, to start messages with.
    fn label(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
            .trim_end()
            .to_string()
    }

    /// The value at a dotted path (`spec.template.spec`); a panic names the
    /// file, the object and the path.
    fn at(&self, path: &str) -> &Value {
        lookup(&self.value, path).unwrap_or_else(|| panic!("{}: {path} is missing", self.label()))
    }
}

/// The value at a dotted path of mapping keys.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// The string at `path` of `value`; a panic says whose field is missing.
fn text<'a>(value: &'a Value, path: &str, whose: &str) -> &'a str {
    lookup(value, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{whose}: {path} is missing or not a string"))
}

/// The items of the sequence at `path`, none when it is absent.
fn items<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    lookup(value, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Every `.yaml`/`.yml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", shown(dir)));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The documents of a YAML file, empty ones (only comments) left out; a
/// parse error panics naming the file and the document.
fn documents(path: &Path) -> Vec<Value> {
    let yaml = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", shown(path)));
    let mut values = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(&yaml).enumerate() {
        // This crate has no direct serde dependency to name `Deserialize` with;
        // `singleton_map::deserialize` is `Value::deserialize` for a `Value`
        // (it only changes how enums are read, and a `Value` reads none).
        let value: Value = serde_norway::with::singleton_map::deserialize(document)
            .unwrap_or_else(|e| panic!("{}: document {} is not valid YAML: {e}", shown(path), index + 1));
        if !value.is_null() {
            values.push(value);
        }
    }
    values
}

/// The documents of `files`.
fn load(files: &[PathBuf]) -> Vec<Doc> {
    files
        .iter()
        .flat_map(|path| {
            documents(path).into_iter().map(|value| Doc {
                file: shown(path),
                value,
            })
        })
        .collect()
}

/// Every document under `deploy/`, examples included.
fn all_docs() -> Vec<Doc> {
    load(&yaml_files(&deploy_dir()))
}

/// `deploy/kustomization.yaml`.
fn kustomization() -> Doc {
    let docs = load(&[deploy_dir().join("kustomization.yaml")]);
    docs.into_iter()
        .next()
        .expect("deploy/kustomization.yaml holds a document")
}

/// The files `deploy/kustomization.yaml` lists under `resources`.
fn kustomize_resources() -> Vec<PathBuf> {
    let kustomization = kustomization();
    items(&kustomization.value, "resources")
        .iter()
        .map(|r| {
            let r = r
                .as_str()
                .unwrap_or_else(|| panic!("{}: resources holds a non-string: {r:?}", kustomization.file));
            deploy_dir().join(r)
        })
        .collect()
}

/// What `kubectl apply -k deploy/` installs.
fn installed() -> Vec<Doc> {
    load(&kustomize_resources())
}

/// The one document of `kind` named `name` (any name when `None`) in `docs`.
fn only<'a>(docs: &'a [Doc], kind: &str, name: Option<&str>) -> &'a Doc {
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == kind && name.is_none_or(|n| d.name() == n))
        .collect();
    match found.as_slice() {
        [doc] => doc,
        _ => panic!(
            "expected one {kind} {} among the installed manifests, found {}: {:?}",
            name.unwrap_or(""),
            found.len(),
            found.iter().map(|d| d.label()).collect::<Vec<_>>()
        ),
    }
}

// ---------------------------------------------------------------------------
// Pods, containers, volumes

/// A pod spec: a Pod's `spec`, or the pod template of a workload.
struct PodSpec<'a> {
    label: String,
    spec: &'a Value,
}

/// Every pod spec in `docs`.
fn pod_specs(docs: &[Doc]) -> Vec<PodSpec<'_>> {
    docs.iter()
        .filter_map(|doc| {
            let spec = if doc.kind() == "Pod" {
                doc.value.get("spec")
            } else {
                lookup(&doc.value, "spec.template.spec")
            };
            spec.map(|spec| PodSpec {
                label: doc.label(),
                spec,
            })
        })
        .collect()
}

impl<'a> PodSpec<'a> {
    /// Init containers and containers.
    fn containers(&self) -> impl Iterator<Item = &'a Value> {
        items(self.spec, "initContainers")
            .iter()
            .chain(items(self.spec, "containers"))
    }

    fn container(&self, name: &str) -> &'a Value {
        self.containers()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{}: no container named {name}", self.label))
    }

    /// The volumes by name.
    fn volumes(&self) -> BTreeMap<&'a str, &'a Value> {
        items(self.spec, "volumes")
            .iter()
            .map(|v| (text(v, "name", &format!("{}: a volume", self.label)), v))
            .collect()
    }

    /// The mount of `container` at `mount_path`.
    fn mount(&self, container: &str, mount_path: &str) -> &'a Value {
        items(self.container(container), "volumeMounts")
            .iter()
            .find(|m| m.get("mountPath").and_then(Value::as_str) == Some(mount_path))
            .unwrap_or_else(|| {
                panic!(
                    "{}: container {container} mounts nothing at {mount_path}",
                    self.label
                )
            })
    }

    /// The name of the volume `container` mounts at `mount_path`.
    fn volume_at(&self, container: &str, mount_path: &str) -> &'a str {
        let whose = format!("{}: container {container}, mount {mount_path}", self.label);
        text(self.mount(container, mount_path), "name", &whose)
    }

    /// The hostPath volume named `volume`: its path and type.
    fn host_path(&self, volume: &str) -> (&'a str, &'a str) {
        let whose = format!("{}: volume {volume}", self.label);
        let declared = self
            .volumes()
            .get(volume)
            .copied()
            .unwrap_or_else(|| panic!("{whose} is not declared"));
        let path = text(declared, "hostPath.path", &whose);
        let kind = lookup(declared, "hostPath.type")
            .and_then(Value::as_str)
            .unwrap_or("");
        (path, kind)
    }

    /// The host path behind `container`'s mount at `mount_path`.
    fn host_path_at(&self, container: &str, mount_path: &str) -> (&'a str, &'a str) {
        self.host_path(self.volume_at(container, mount_path))
    }

    /// The value of `container`'s argument `--flag=VALUE`.
    fn flag(&self, container: &str, flag: &str) -> &'a str {
        let prefix = format!("{flag}=");
        items(self.container(container), "args")
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix(&prefix))
            .unwrap_or_else(|| {
                panic!(
                    "{}: container {container} has no argument {flag}=VALUE",
                    self.label
                )
            })
    }
}

/// The name of a container, for messages.
fn container_name(container: &Value) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or("?")
}

/// The pod spec of the node plugin's DaemonSet.
fn node_plugin(docs: &[Doc]) -> PodSpec<'_> {
    let daemonset = only(docs, "DaemonSet", Some("wsfs-node"));
    PodSpec {
        label: daemonset.label(),
        spec: daemonset.at("spec.template.spec"),
    }
}

/// The port of an `--http-endpoint=[HOST]:PORT` argument.
fn endpoint_port(endpoint: &str, whose: &str) -> u64 {
    endpoint
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{whose}: {endpoint:?} is not [HOST]:PORT"))
}

/// An image reference without its tag or digest.
fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    }
}

/// Panics listing `problems` unless there are none.
fn assert_none(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------
// The manifests

#[test]
fn every_manifest_parses_and_names_its_kind() {
    let files = yaml_files(&deploy_dir());
    for expected in [
        "csidriver.yaml",
        "daemonset.yaml",
        "kustomization.yaml",
        "examples/pod.yaml",
    ] {
        assert!(
            files.contains(&deploy_dir().join(expected)),
            "deploy/{expected} is missing (found {:?})",
            files.iter().map(|f| shown(f)).collect::<Vec<_>>()
        );
    }
    let mut problems = Vec::new();
    for doc in all_docs() {
        if doc.value.get("apiVersion").and_then(Value::as_str).is_none() || doc.kind().is_empty() {
            problems.push(format!("{}: a document without apiVersion or kind", doc.file));
        } else if doc.kind() != "Kustomization" && doc.name().is_empty() {
            problems.push(format!("{}: metadata.name is missing", doc.label()));
        }
    }
    assert_none(&problems, "manifests that are not Kubernetes objects");
}

#[test]
fn csidriver_serves_ephemeral_volumes_without_attach() {
    let docs = installed();
    let driver = only(&docs, "CSIDriver", None);
    let label = driver.label();
    assert_eq!(
        driver.name(),
        DRIVER,
        "{label}: metadata.name is the driver's name"
    );
    assert_eq!(
        driver.at("spec.attachRequired").as_bool(),
        Some(false),
        "{label}: spec.attachRequired must be false (there is no controller service)"
    );
    assert_eq!(
        driver.at("spec.podInfoOnMount").as_bool(),
        Some(true),
        "{label}: spec.podInfoOnMount must be true"
    );
    let modes: Vec<&str> = items(&driver.value, "spec.volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        modes,
        ["Ephemeral"],
        "{label}: spec.volumeLifecycleModes must be [Ephemeral]"
    );
    assert_eq!(
        text(&driver.value, "spec.fsGroupPolicy", &label),
        "None",
        "{label}: spec.fsGroupPolicy must be None (views keep the workspace's owners)"
    );
}

#[test]
fn kubelet_and_the_sidecars_find_the_csi_socket() {
    let docs = installed();
    let pod = node_plugin(&docs);
    let label = &pod.label;

    // Every container sees the plugin directory at /csi, from one volume.
    let plugin_volume = pod.volume_at("wsfsd", PLUGIN_MOUNT);
    for container in pod.containers() {
        let name = container_name(container);
        assert_eq!(
            pod.volume_at(name, PLUGIN_MOUNT),
            plugin_volume,
            "{label}: container {name} mounts another volume than wsfsd at {PLUGIN_MOUNT}"
        );
    }
    let (plugin_dir, _) = pod.host_path(plugin_volume);
    assert!(
        plugin_dir.contains(DRIVER),
        "{label}: the plugin directory {plugin_dir} (volume {plugin_volume}) does not name the driver {DRIVER}"
    );

    // wsfsd listens where the sidecars connect, inside the plugin directory.
    let endpoint = pod.flag("wsfsd", "--csi-endpoint");
    let socket = endpoint
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("{label}: wsfsd --csi-endpoint={endpoint} is not unix:///PATH"));
    let in_plugin_dir = socket
        .strip_prefix(&format!("{PLUGIN_MOUNT}/"))
        .unwrap_or_else(|| panic!("{label}: wsfsd's socket {socket} is not in the {PLUGIN_MOUNT} mount"));
    for sidecar in ["node-driver-registrar", "liveness-probe"] {
        assert_eq!(
            pod.flag(sidecar, "--csi-address"),
            socket,
            "{label}: {sidecar} --csi-address is not wsfsd's --csi-endpoint socket"
        );
    }

    // kubelet connects on the node to the same socket.
    assert_eq!(
        pod.flag("node-driver-registrar", "--kubelet-registration-path"),
        format!("{plugin_dir}/{in_plugin_dir}"),
        "{label}: node-driver-registrar --kubelet-registration-path is not the node's path of \
         wsfsd's socket (hostPath of volume {plugin_volume} + /{in_plugin_dir})"
    );
    assert_eq!(
        pod.host_path_at("node-driver-registrar", "/registration").0,
        REGISTRY_DIR,
        "{label}: node-driver-registrar must mount kubelet's plugin registry at /registration"
    );
}

#[test]
fn wsfsd_can_mount_views_for_pods() {
    let docs = installed();
    let pod = node_plugin(&docs);
    let label = &pod.label;
    let wsfsd = pod.container("wsfsd");
    assert_eq!(
        lookup(wsfsd, "securityContext.privileged").and_then(Value::as_bool),
        Some(true),
        "{label}: container wsfsd must be privileged (FUSE, overlayfs, propagated mounts)"
    );

    let kubelet = pod.mount("wsfsd", KUBELET_DIR);
    assert_eq!(
        kubelet.get("mountPropagation").and_then(Value::as_str),
        Some("Bidirectional"),
        "{label}: wsfsd's mount of {KUBELET_DIR} must be Bidirectional, or views never reach the pods"
    );
    assert_eq!(
        pod.host_path_at("wsfsd", KUBELET_DIR).0,
        KUBELET_DIR,
        "{label}: wsfsd's {KUBELET_DIR} must be the node's {KUBELET_DIR}"
    );
    assert_eq!(
        pod.host_path_at("wsfsd", "/dev/fuse"),
        ("/dev/fuse", "CharDevice"),
        "{label}: wsfsd must mount the node's /dev/fuse (hostPath, type CharDevice)"
    );

    let env: BTreeMap<&str, &Value> = items(wsfsd, "env")
        .iter()
        .map(|e| (text(e, "name", &format!("{label}: wsfsd env")), e))
        .collect();
    let state_dir = env
        .get("WSFS_STATE_DIR")
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{label}: wsfsd env WSFS_STATE_DIR has no value"));
    let (host_state_dir, state_type) = pod.host_path_at("wsfsd", state_dir);
    assert!(
        host_state_dir.starts_with('/') && state_type == "DirectoryOrCreate",
        "{label}: WSFS_STATE_DIR {state_dir} must be a hostPath (DirectoryOrCreate) on the node's disk, \
         not the container's file system"
    );
    assert_eq!(
        env.get("WSFS_NODE_ID")
            .and_then(|e| lookup(e, "valueFrom.fieldRef.fieldPath"))
            .and_then(Value::as_str),
        Some("spec.nodeName"),
        "{label}: wsfsd env WSFS_NODE_ID must come from the fieldRef spec.nodeName"
    );

    // Kubernetes refuses Bidirectional mounts in unprivileged containers.
    let mut problems = Vec::new();
    for container in pod.containers() {
        let privileged =
            lookup(container, "securityContext.privileged").and_then(Value::as_bool) == Some(true);
        for mount in items(container, "volumeMounts") {
            if mount.get("mountPropagation").and_then(Value::as_str) == Some("Bidirectional") && !privileged {
                problems.push(format!(
                    "{label}: container {} is not privileged but mounts {:?} Bidirectional",
                    container_name(container),
                    mount.get("mountPath")
                ));
            }
        }
    }
    assert_none(&problems, "Bidirectional mounts in unprivileged containers");
}

#[test]
fn wsfsd_liveness_probe_reaches_the_liveness_sidecar() {
    let docs = installed();
    let pod = node_plugin(&docs);
    let label = &pod.label;
    let wsfsd = pod.container("wsfsd");
    let port = lookup(wsfsd, "livenessProbe.httpGet.port")
        .unwrap_or_else(|| panic!("{label}: wsfsd has no livenessProbe.httpGet.port"));
    let number = match port.as_str() {
        Some(name) => items(wsfsd, "ports")
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{label}: wsfsd's livenessProbe port {name} is not one of its ports")),
        None => port
            .as_u64()
            .unwrap_or_else(|| panic!("{label}: wsfsd's livenessProbe port {port:?}")),
    };
    let whose = format!("{label}: liveness-probe --http-endpoint");
    assert_eq!(
        endpoint_port(pod.flag("liveness-probe", "--http-endpoint"), &whose),
        number,
        "{whose} is not the port wsfsd's livenessProbe asks"
    );
}

#[test]
fn volume_mounts_name_declared_volumes() {
    let docs = all_docs();
    let mut problems = Vec::new();
    for pod in pod_specs(&docs) {
        let declared = pod.volumes();
        if declared.len() != items(pod.spec, "volumes").len() {
            problems.push(format!("{}: two volumes share a name", pod.label));
        }
        for container in pod.containers() {
            for mount in items(container, "volumeMounts") {
                let name = mount.get("name").and_then(Value::as_str).unwrap_or("");
                if !declared.contains_key(name) {
                    problems.push(format!(
                        "{}: container {} mounts volume {name:?}, which the pod does not declare",
                        pod.label,
                        container_name(container)
                    ));
                }
            }
        }
    }
    assert_none(&problems, "mounts of undeclared volumes");
}

#[test]
fn env_sources_are_installed() {
    let docs = installed();
    let mut problems = Vec::new();
    for doc in &docs {
        let Some(spec) = lookup(&doc.value, "spec.template.spec") else {
            continue;
        };
        let namespace = lookup(&doc.value, "metadata.namespace").and_then(Value::as_str);
        let pod = PodSpec {
            label: doc.label(),
            spec,
        };
        for container in pod.containers() {
            let whose = format!("{}: container {}", pod.label, container_name(container));
            let from_keys = items(container, "env")
                .iter()
                .filter_map(|e| lookup(e, "valueFrom"))
                .flat_map(|f| {
                    [
                        ("ConfigMap", f.get("configMapKeyRef")),
                        ("Secret", f.get("secretKeyRef")),
                    ]
                });
            let from_all = items(container, "envFrom").iter().flat_map(|f| {
                [
                    ("ConfigMap", f.get("configMapRef")),
                    ("Secret", f.get("secretRef")),
                ]
            });
            for (kind, reference) in from_keys.chain(from_all) {
                let Some(reference) = reference else {
                    continue;
                };
                let name = text(reference, "name", &whose);
                let optional = reference.get("optional").and_then(Value::as_bool) == Some(true);
                let shipped = docs.iter().any(|d| {
                    d.kind() == kind
                        && d.name() == name
                        && lookup(&d.value, "metadata.namespace").and_then(Value::as_str) == namespace
                });
                if !shipped && !optional {
                    problems.push(format!(
                        "{whose} reads the {kind} {name}, which kustomization.yaml does not install \
                         in namespace {namespace:?} (or mark it optional: true)"
                    ));
                }
                if kind == "Secret" && shipped {
                    problems.push(format!("{whose}: the Secret {name} must not ship in deploy/"));
                }
            }
        }
    }
    assert_none(&problems, "environment from objects that do not exist");
}

#[test]
fn kustomization_installs_every_manifest_and_sets_the_wsfsd_image() {
    let kustomization = kustomization();
    let label = kustomization.label();
    let resources = kustomize_resources();
    let mut problems = Vec::new();
    for resource in &resources {
        if !resource.is_file() {
            problems.push(format!("{label}: resource {} does not exist", shown(resource)));
        } else if resource.starts_with(deploy_dir().join("examples")) {
            problems.push(format!("{label}: resource {} is an example", shown(resource)));
        }
    }
    // A manifest next to kustomization.yaml that it does not list is never installed.
    let listed: BTreeSet<&PathBuf> = resources.iter().collect();
    for file in yaml_files(&deploy_dir()) {
        let top_level = file.parent() == Some(deploy_dir().as_path());
        let is_kustomization = file.file_name().is_some_and(|n| n == "kustomization.yaml");
        if top_level && !is_kustomization && !listed.contains(&file) && !documents(&file).is_empty() {
            problems.push(format!("{label}: resources does not list {}", shown(&file)));
        }
    }
    assert_none(&problems, "kustomization.yaml and the files in deploy/ disagree");

    let images: Vec<&str> = items(&kustomization.value, "images")
        .iter()
        .map(|i| text(i, "name", &format!("{label}: images")))
        .collect();
    let docs = installed();
    let pod = node_plugin(&docs);
    let wsfsd_image = text(
        pod.container("wsfsd"),
        "image",
        &format!("{}: container wsfsd", pod.label),
    );
    assert!(
        images.contains(&image_name(wsfsd_image)),
        "{label}: images has no entry named {:?} (the image of container wsfsd in {}), so setting the \
         image there would not change it; images: {images:?}",
        image_name(wsfsd_image),
        pod.label
    );
}

// ---------------------------------------------------------------------------
// The examples

/// Every CSI volume source (`csi:` with a `driver`) anywhere in `value`.
fn csi_sources<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("csi") && child.get("driver").is_some() {
                    found.push(child);
                }
                csi_sources(child, found);
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|child| csi_sources(child, found)),
        _ => {}
    }
}

/// What is wrong with one CSI volume source of the wsfs driver.
fn csi_source_problems(file: &str, source: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let driver = source.get("driver").and_then(Value::as_str).unwrap_or("");
    if driver != DRIVER {
        problems.push(format!("{file}: csi.driver is {driver:?}, not {DRIVER:?}"));
        return problems;
    }
    let empty = serde_norway::Mapping::new();
    let attributes = source
        .get("volumeAttributes")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    let mut values = BTreeMap::new();
    for (key, value) in attributes {
        let key = key.as_str().unwrap_or("");
        if !ATTRIBUTES.contains(&key) {
            problems.push(format!(
                "{file}: volumeAttributes has {key:?}, which is none of {ATTRIBUTES:?}"
            ));
        }
        match value.as_str() {
            Some(text) => {
                values.insert(key, text);
            }
            None => problems.push(format!(
                "{file}: volumeAttributes.{key} is {value:?}: Kubernetes takes strings only (quote it)"
            )),
        }
    }
    let workspace = values.get("workspace").copied().unwrap_or("");
    if workspace.split('/').filter(|part| !part.is_empty()).count() != 2 {
        problems.push(format!(
            "{file}: volumeAttributes.workspace is {workspace:?}, not NAMESPACE/NAME"
        ));
    }
    let view = values.get("view").copied().unwrap_or("read-only");
    if !VIEWS.contains(&view) {
        problems.push(format!(
            "{file}: volumeAttributes.view is {view:?}, none of {VIEWS:?}"
        ));
    }
    let persist = values.get("persist").copied().unwrap_or("never");
    if !PERSIST.contains(&persist) {
        problems.push(format!(
            "{file}: volumeAttributes.persist is {persist:?}, none of {PERSIST:?}"
        ));
    } else if persist == "on-success" && view != "isolated" {
        problems.push(format!(
            "{file}: volumeAttributes.persist is on-success but view is {view:?}: only isolated views persist"
        ));
    }
    if values
        .get("prefetch")
        .is_some_and(|p| !["true", "false"].contains(p))
    {
        problems.push(format!(
            "{file}: volumeAttributes.prefetch must be \"true\" or \"false\""
        ));
    }
    if values.get("mountPath").is_some_and(|p| !p.starts_with('/')) {
        problems.push(format!(
            "{file}: volumeAttributes.mountPath must be an absolute path"
        ));
    }
    problems
}

#[test]
fn examples_use_the_driver_with_documented_attributes() {
    let examples = yaml_files(&deploy_dir().join("examples"));
    assert!(!examples.is_empty(), "deploy/examples/ holds no YAML file");
    let mut problems = Vec::new();
    for file in &examples {
        let values = documents(file);
        let mut sources = Vec::new();
        for value in &values {
            csi_sources(value, &mut sources);
        }
        if sources.is_empty() {
            problems.push(format!("{}: no csi volume at all", shown(file)));
        }
        for source in sources {
            problems.extend(csi_source_problems(&shown(file), source));
        }
    }
    assert_none(
        &problems,
        "csi volumes in deploy/examples/ that wsfsd would refuse",
    );
}

// ---------------------------------------------------------------------------
// The documentation and the binary

#[test]
fn docs_name_the_driver_and_every_attribute() {
    let path = repo_root().join("docs/kubernetes.md");
    let docs = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", shown(&path)));
    let mut expected = vec![
        DRIVER.to_string(),
        "Workspace file missing: workspace \"".to_string(),
    ];
    expected.extend(
        ATTRIBUTES
            .iter()
            .chain(&VIEWS)
            .chain(&PERSIST)
            .map(|word| format!("`{word}`")),
    );
    let problems: Vec<String> = expected
        .iter()
        .filter(|word| !docs.contains(word.as_str()))
        .map(|word| format!("docs/kubernetes.md does not mention {word}"))
        .collect();
    assert_none(
        &problems,
        "docs/kubernetes.md misses parts of the driver's contract",
    );
}

/// `wsfsd --help`, from the `wsfsd` next to the `wsfs` the tests use.
fn wsfsd_help() -> (PathBuf, String) {
    let wsfsd = wsfs_bin().with_file_name("wsfsd");
    let output = Command::new(&wsfsd)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --help: {e}", wsfsd.display()));
    assert!(
        output.status.success(),
        "{} --help failed ({}): {}",
        wsfsd.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    (wsfsd, String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn daemonset_passes_wsfsd_only_flags_and_variables_it_knows() {
    let docs = installed();
    let pod = node_plugin(&docs);
    let wsfsd = pod.container("wsfsd");
    let whose = format!("{}: container wsfsd", pod.label);
    let flags = items(wsfsd, "args")
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string());
    // Variables named in env and in the ConfigMaps it reads in full.
    let env = items(wsfsd, "env")
        .iter()
        .map(|e| text(e, "name", &whose).to_string());
    let config_maps: Vec<&str> = items(wsfsd, "envFrom")
        .iter()
        .filter_map(|f| lookup(f, "configMapRef.name"))
        .filter_map(Value::as_str)
        .collect();
    let from_config_maps = docs
        .iter()
        .filter(|d| d.kind() == "ConfigMap" && config_maps.contains(&d.name()))
        .filter_map(|d| d.value.get("data").and_then(Value::as_mapping))
        .flat_map(|data| data.keys().filter_map(Value::as_str).map(str::to_string));
    let variables = env.chain(from_config_maps).filter(|v| v.starts_with("WSFS_"));

    let (binary, help) = wsfsd_help();
    let problems: Vec<String> = flags
        .chain(variables)
        .filter(|word| !help.contains(word.as_str()))
        .map(|word| {
            format!(
                "{whose} uses {word}, which `{} --help` does not mention (a typo, or a binary older \
                 than the flag: rebuild with `cargo build --release --workspace`)",
                binary.display()
            )
        })
        .collect();
    assert_none(
        &problems,
        "deploy/daemonset.yaml configures wsfsd with what it does not know",
    );
}
