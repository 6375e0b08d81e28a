//! The pipeline's workspaces and what the run binds to them: the
//! PipelineRun's `spec.workspaces`, whose source a `--workspace` flag
//! replaces (or supplies, adding the binding).

use super::error::{known, DocPath, Fault, Problem};
use super::model::{FileDeclaration, PipelineWorkspaceDeclaration, RunWorkspace};
use super::names::{check_dns_label, check_unique, is_wsfs_workspace, join_sub_paths, sub_path};
use super::vars::{substitute, Scope};
use crate::plan::{Binding, PipelineWorkspace, Source};
use crate::workspace_files::WorkspaceFile;

/// The CSI driver of wsfs.
const WSFS_DRIVER: &str = "csi.wsfs.dev";

/// The `volumeAttributes` of the wsfs driver that wsfs run reads (`mountPath`
/// only shapes a message of the CSI plugin, so it is accepted and unused).
const CSI_ATTRIBUTES: [&str; 3] = ["workspace", "subPath", "mountPath"];

/// The run's bindings: the PipelineRun's (`None` for a Pipeline) at `at`.
pub(crate) struct RunBindings<'a> {
    pub(crate) bindings: Option<&'a [RunWorkspace]>,
    pub(crate) at: DocPath,
}

/// The pipeline's workspaces (declared at `at`) with their bindings.
/// Sub paths of the run's bindings are substituted with `scope`.
pub(crate) fn pipeline_workspaces(
    declared: &[PipelineWorkspaceDeclaration],
    at: &DocPath,
    run: &RunBindings,
    flags: &[(String, Source)],
    scope: &Scope,
) -> Result<Vec<PipelineWorkspace>, Fault> {
    let place = |i: usize, w: &PipelineWorkspaceDeclaration| at.index(i, Some(&w.name));
    for (i, ws) in declared.iter().enumerate() {
        check_dns_label("workspace", &ws.name, &place(i, ws).key("name"))?;
    }
    check_unique(
        "workspace",
        declared
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), place(i, w))),
    )?;
    let names = || known(declared.iter().map(|w| w.name.as_str()));
    check_flags(flags, declared, &names)?;
    let bindings = run.bindings.unwrap_or_default();
    let bound_at = |i: usize, b: &RunWorkspace| run.at.index(i, Some(&b.name));
    check_unique(
        "workspace binding",
        bindings
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.as_str(), bound_at(i, b))),
    )?;
    for (i, binding) in bindings.iter().enumerate() {
        if !declared.iter().any(|w| w.name == binding.name) {
            let problem = Problem::Undeclared {
                what: "pipeline workspace",
                name: binding.name.clone(),
                known: names(),
                hint: "bind only workspaces the pipeline declares in spec.pipelineSpec.workspaces".into(),
            };
            return Err(Fault::at(&bound_at(i, binding).key("name"), problem));
        }
    }
    let mut workspaces = Vec::with_capacity(declared.len());
    for (i, ws) in declared.iter().enumerate() {
        let flag = flags.iter().find(|(n, _)| *n == ws.name).map(|(_, s)| s.clone());
        let found = bindings.iter().enumerate().find(|(_, b)| b.name == ws.name);
        let binding = match (found, flag) {
            (Some((j, b)), flag) => Some(run_binding(b, &bound_at(j, b), flag, scope)?),
            (None, Some(source)) => Some(Binding {
                source,
                sub_path: String::new(),
                files: Vec::new(),
            }),
            (None, None) if ws.optional => None,
            (None, None) if run.bindings.is_none() => Some(Binding {
                source: Source::Empty,
                sub_path: String::new(),
                files: Vec::new(),
            }),
            (None, None) => {
                return Err(Fault::at(
                    &place(i, ws),
                    Problem::Unbound(format!(
                        "pipeline workspace {:?} is required and the PipelineRun binds nothing to it: add \
                         {{name: {0}, emptyDir: {{}}}} to spec.workspaces, pass --workspace {0}=DIR or \
                         {0}=NS/WS, or declare it optional",
                        ws.name
                    )),
                ))
            }
        };
        workspaces.push(PipelineWorkspace {
            name: ws.name.clone(),
            optional: ws.optional,
            binding,
        });
    }
    Ok(workspaces)
}

/// `--workspace` flags: each once, each naming a declared workspace.
fn check_flags(
    flags: &[(String, Source)],
    declared: &[PipelineWorkspaceDeclaration],
    names: &dyn Fn() -> String,
) -> Result<(), Fault> {
    for (i, (name, _)) in flags.iter().enumerate() {
        if flags[..i].iter().any(|(n, _)| n == name) {
            let name = name.clone();
            return Err(Fault::outside(Problem::Duplicate {
                what: "--workspace",
                name,
            }));
        }
        if !declared.iter().any(|w| &w.name == name) {
            return Err(Fault::outside(Problem::Undeclared {
                what: "pipeline workspace",
                name: name.clone(),
                known: names(),
                hint: "--workspace names a workspace of the pipeline".into(),
            }));
        }
    }
    Ok(())
}

/// One binding of the PipelineRun (at `at`); `flag` replaces its volume.
fn run_binding(
    b: &RunWorkspace,
    at: &DocPath,
    flag: Option<Source>,
    scope: &Scope,
) -> Result<Binding, Fault> {
    let (source, outer) = match flag {
        Some(source) => (source, String::new()),
        None => volume_source(b, at)?,
    };
    let own = match &b.sub_path {
        Some(text) => {
            let at = at.key("subPath");
            let place = format!("the binding of workspace {}", b.name);
            let text = substitute(text, scope).map_err(|e| Fault::variable(&at, place, e))?;
            sub_path(&text).map_err(|why| Fault::invalid(&at, format!("subPath {why}")))?
        }
        None => String::new(),
    };
    Ok(Binding {
        source,
        sub_path: join_sub_paths(&outer, &own),
        files: files(&b.files, &at.key("files"))?,
    })
}

/// Workspace Files declared (or remapped) at `at`: each valid, each once.
pub(crate) fn files(declared: &[FileDeclaration], at: &DocPath) -> Result<Vec<WorkspaceFile>, Fault> {
    let place = |i: usize, f: &FileDeclaration| at.index(i, Some(&f.name));
    check_unique(
        "workspace file",
        declared
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), place(i, f))),
    )?;
    let mut files = Vec::with_capacity(declared.len());
    for (i, file) in declared.iter().enumerate() {
        let file = WorkspaceFile::new(&file.name, file.path.as_deref())
            .map_err(|e| Fault::invalid(&place(i, file), e.to_string()))?;
        files.push(file);
    }
    Ok(files)
}

/// The source of a binding without a flag, and the sub path its volume adds.
fn volume_source(b: &RunWorkspace, at: &DocPath) -> Result<(Source, String), Fault> {
    let given: Vec<&str> = [
        ("emptyDir", b.empty_dir.is_some()),
        ("volumeClaimTemplate", b.volume_claim_template.is_some()),
        ("persistentVolumeClaim", b.persistent_volume_claim.is_some()),
        ("configMap", b.config_map.is_some()),
        ("secret", b.secret.is_some()),
        ("projected", b.projected.is_some()),
        ("csi", b.csi.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    let bind_it = format!("bind it with --workspace {0}=DIR or {0}=NS/WS", b.name);
    match given[..] {
        [] => Err(Fault::invalid(
            at,
            format!(
                "the binding of workspace {} gives no volume: add emptyDir: {{}}, or {bind_it}",
                b.name
            ),
        )),
        ["emptyDir" | "volumeClaimTemplate"] => Ok((Source::Empty, String::new())),
        ["csi"] => csi_source(b, &at.key("csi"), &bind_it),
        [one] => Err(Fault::invalid(
            &at.key(one),
            format!("a {one} cannot be read by wsfs run: {bind_it}"),
        )),
        _ => Err(Fault::invalid(
            at,
            format!(
                "the binding gives several volumes ({}): keep one",
                given.join(", ")
            ),
        )),
    }
}

/// A `csi` volume of the wsfs driver: an existing wsfs workspace.
fn csi_source(b: &RunWorkspace, at: &DocPath, bind_it: &str) -> Result<(Source, String), Fault> {
    let csi = b.csi.as_ref().expect("checked by the caller");
    if csi.driver != WSFS_DRIVER {
        return Err(Fault::invalid(
            &at.key("driver"),
            format!(
                "csi driver {:?} is not wsfs's ({WSFS_DRIVER}): {bind_it}",
                csi.driver
            ),
        ));
    }
    let attributes = at.key("volumeAttributes");
    if let Some(other) = csi
        .volume_attributes
        .keys()
        .find(|k| !CSI_ATTRIBUTES.contains(&k.as_str()))
    {
        return Err(Fault::invalid(
            &attributes.key(other),
            format!(
                "volume attribute {other:?} is not used by wsfs run (it reads {}): wsfs run gives a task \
                 declaring its workspace readOnly a read-only view, others an isolated view persisted when \
                 the task succeeds, and tasks declare Workspace Files: remove it",
                CSI_ATTRIBUTES.join(", ")
            ),
        ));
    }
    let Some(workspace) = csi.volume_attributes.get("workspace") else {
        return Err(Fault::invalid(
            &attributes,
            "volumeAttributes has no workspace: give workspace: NS/NAME (the wsfs workspace to bind)",
        ));
    };
    if !is_wsfs_workspace(workspace) {
        return Err(Fault::invalid(
            &attributes.key("workspace"),
            format!(
                "{workspace:?} is not a wsfs workspace name: give NS/NAME, each part 1-128 letters, digits, \
                 '.', '_' or '-', not starting with '.' or '-'"
            ),
        ));
    }
    let outer = match csi.volume_attributes.get("subPath") {
        Some(text) => sub_path(text)
            .map_err(|why| Fault::invalid(&attributes.key("subPath"), format!("subPath {why}")))?,
        None => String::new(),
    };
    Ok((Source::Workspace(workspace.clone()), outer))
}
