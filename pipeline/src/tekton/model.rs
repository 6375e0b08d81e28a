//! The Tekton v1 fields `wsfs run` reads, as serde types. Unknown fields are
//! errors with their line; Tekton fields wsfs does not implement are declared
//! as [`Unsupported`], whose error names them and says what to do instead.
//! Harmless descriptive fields (`description`, `displayName`, labels, ...)
//! are read and ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use super::yaml::Reject;

/// A Tekton field wsfs run does not implement.
pub(crate) trait Field {
    /// Its name in the file.
    const NAME: &'static str;
    /// What to do instead.
    const HINT: &'static str;
}

/// A field that is an error whenever the file gives it (any value, even null).
pub(crate) struct Unsupported<F>(PhantomData<F>);

impl<F> Default for Unsupported<F> {
    fn default() -> Self {
        Unsupported(PhantomData)
    }
}

impl<'de, F: Field> Deserialize<'de> for Unsupported<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let message = format!(
            "Tekton field `{}` is not supported by wsfs run: {}",
            F::NAME,
            F::HINT
        );
        deserializer.deserialize_any(Reject(message))?;
        Ok(Unsupported::default())
    }
}

/// Declares the unsupported fields: `Type = "name": "what to do instead";`.
macro_rules! unsupported_fields {
    ($($ty:ident = $name:literal: $hint:literal;)*) => {
        $(
            #[doc = concat!("Tekton's `", $name, "`.")]
            pub(crate) enum $ty {}
            impl Field for $ty {
                const NAME: &'static str = $name;
                const HINT: &'static str = $hint;
            }
        )*
    };
}

unsupported_fields! {
    Finally = "finally": "remove it, or make those tasks ordinary tasks with runAfter (they then run only \
        when those succeed)";
    Results = "results": "pass data between tasks and steps through a workspace";
    When = "when": "wsfs run runs every task and step: remove it";
    Retries = "retries": "remove it";
    Timeout = "timeout": "remove it";
    Timeouts = "timeouts": "remove it";
    Matrix = "matrix": "write one task per combination";
    OnError = "onError": "remove it: a failing step fails its task";
    TaskRef = "taskRef": "wsfs run reads one file and fetches nothing: embed the Task's spec as taskSpec";
    PipelineRef = "pipelineRef": "wsfs run reads one file and fetches nothing: embed the Pipeline's spec \
        as spec.pipelineSpec";
    TaskPipelineRef = "pipelineRef": "pipelines in pipelines are not supported: make its tasks tasks of \
        this pipeline";
    TaskPipelineSpec = "pipelineSpec": "pipelines in pipelines are not supported: make its tasks tasks of \
        this pipeline";
    CustomApiVersion = "apiVersion": "custom tasks are not supported: give taskSpec steps";
    CustomKind = "kind": "custom tasks are not supported: give taskSpec steps";
    CustomSpec = "spec": "custom tasks are not supported: give taskSpec steps";
    Sidecars = "sidecars": "steps run on the host: start what they need in a step";
    TemplateImage = "image": "give it in each step";
    TemplateCommand = "command": "give it in each step";
    TemplateArgs = "args": "give them in each step";
    TemplateWorkingDir = "workingDir": "give it in each step";
    TemplateEnv = "env": "give the variables in each step's env";
    Volumes = "volumes": "share files through workspaces";
    VolumeMounts = "volumeMounts": "share files through workspaces";
    VolumeDevices = "volumeDevices": "steps run on the host: remove it";
    Privileged = "privileged": "steps run on the host with the privileges of their user: remove it";
    Capabilities = "capabilities": "a step running as root has root's capabilities, another user none: \
        remove it";
    ReadOnlyRootFilesystem = "readOnlyRootFilesystem": "steps see the host's file system: remove it";
    AllowPrivilegeEscalation = "allowPrivilegeEscalation": "remove it: give runAsUser to run the step \
        as another user than root";
    SeLinuxOptions = "seLinuxOptions": "remove it";
    SeccompProfile = "seccompProfile": "remove it";
    AppArmorProfile = "appArmorProfile": "remove it";
    ProcMount = "procMount": "steps see the host's /proc: remove it";
    WindowsOptions = "windowsOptions": "steps run on this Linux host: remove it";
    ComputeResources = "computeResources": "steps run on the host without limits: remove it";
    EnvFrom = "envFrom": "give each variable in env with a value";
    ValueFrom = "valueFrom": "give the value inline (a param can carry it)";
    StdoutConfig = "stdoutConfig": "remove it: the step's output is shown";
    StderrConfig = "stderrConfig": "remove it: the step's output is shown";
    StepRef = "ref": "StepActions are not fetched: write the step inline";
    StepParams = "params": "step params belong to StepActions, which are not supported: write the step \
        inline, using the task's params";
    Properties = "properties": "object params are not supported: use string params";
    Enum = "enum": "remove it";
    TaskRunTemplate = "taskRunTemplate": "steps run on the host: remove it";
    TaskRunSpecs = "taskRunSpecs": "steps run on the host: remove it";
    RunStatus = "status": "remove it";
    ManagedBy = "managedBy": "remove it";
    CsiReadOnly = "readOnly": "a task declaring its workspace readOnly gets a read-only view: remove it";
    CsiFsType = "fsType": "remove it";
    CsiSecret = "nodePublishSecretRef": "remove it: wsfs run uses the daemon's store";
}

/// The fields the loader reads first: they decide what the rest is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Header {
    pub(crate) api_version: Option<ApiVersion>,
    pub(crate) kind: Option<Kind>,
}

/// `apiVersion: tekton.dev/v1`, checked.
pub(crate) struct ApiVersion;

/// The kinds that run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Pipeline,
    PipelineRun,
}

/// A `kind: Pipeline` document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineDocument {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    pub(crate) metadata: Metadata,
    pub(crate) spec: PipelineSpec,
}

/// A `kind: PipelineRun` document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineRunDocument {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    #[serde(default)]
    pub(crate) metadata: Metadata,
    pub(crate) spec: PipelineRunSpec,
}

/// `metadata`: only the name is used.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub(crate) name: Option<String>,
    #[serde(rename = "generateName")]
    _generate_name: Option<IgnoredAny>,
    #[serde(rename = "namespace")]
    _namespace: Option<IgnoredAny>,
    #[serde(rename = "labels")]
    _labels: Option<IgnoredAny>,
    #[serde(rename = "annotations")]
    _annotations: Option<IgnoredAny>,
}

/// A PipelineRun's `spec`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineRunSpec {
    pub(crate) pipeline_spec: Option<PipelineSpec>,
    #[serde(default)]
    pub(crate) params: Vec<ParamValue>,
    #[serde(default)]
    pub(crate) workspaces: Vec<RunWorkspace>,
    #[serde(default, rename = "pipelineRef")]
    _pipeline_ref: Unsupported<PipelineRef>,
    #[serde(default, rename = "timeouts")]
    _timeouts: Unsupported<Timeouts>,
    #[serde(default, rename = "taskRunTemplate")]
    _task_run_template: Unsupported<TaskRunTemplate>,
    #[serde(default, rename = "taskRunSpecs")]
    _task_run_specs: Unsupported<TaskRunSpecs>,
    #[serde(default, rename = "status")]
    _status: Unsupported<RunStatus>,
    #[serde(default, rename = "managedBy")]
    _managed_by: Unsupported<ManagedBy>,
}

/// A PipelineRun's binding of a pipeline workspace.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RunWorkspace {
    pub(crate) name: String,
    pub(crate) sub_path: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<FileDeclaration>,
    pub(crate) empty_dir: Option<IgnoredAny>,
    pub(crate) volume_claim_template: Option<IgnoredAny>,
    pub(crate) persistent_volume_claim: Option<IgnoredAny>,
    pub(crate) config_map: Option<IgnoredAny>,
    pub(crate) secret: Option<IgnoredAny>,
    pub(crate) projected: Option<IgnoredAny>,
    pub(crate) csi: Option<Csi>,
}

/// A `csi` volume source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Csi {
    pub(crate) driver: String,
    #[serde(default)]
    pub(crate) volume_attributes: BTreeMap<String, String>,
    #[serde(default, rename = "readOnly")]
    _read_only: Unsupported<CsiReadOnly>,
    #[serde(default, rename = "fsType")]
    _fs_type: Unsupported<CsiFsType>,
    #[serde(default, rename = "nodePublishSecretRef")]
    _node_publish_secret_ref: Unsupported<CsiSecret>,
}

/// A Pipeline's `spec` (or a PipelineRun's `spec.pipelineSpec`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineSpec {
    #[serde(rename = "displayName")]
    _display_name: Option<IgnoredAny>,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) params: Vec<ParamSpec>,
    #[serde(default)]
    pub(crate) workspaces: Vec<PipelineWorkspaceDeclaration>,
    #[serde(default)]
    pub(crate) tasks: Vec<PipelineTask>,
    #[serde(default, rename = "results")]
    _results: Unsupported<Results>,
    #[serde(default, rename = "finally")]
    _finally: Unsupported<Finally>,
}

/// A param declaration (pipeline or task).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ParamSpec {
    pub(crate) name: String,
    #[serde(rename = "type")]
    _type: Option<ParamType>,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default, deserialize_with = "optional_string_value")]
    pub(crate) default: Option<String>,
    #[serde(default, rename = "properties")]
    _properties: Unsupported<Properties>,
    #[serde(default, rename = "enum")]
    _enum: Unsupported<Enum>,
}

/// `type: string` (the only type supported), checked.
pub(crate) struct ParamType;

/// A param value given by name (a pipeline task's or a PipelineRun's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamValue {
    pub(crate) name: String,
    #[serde(deserialize_with = "string_value")]
    pub(crate) value: String,
}

/// A workspace a pipeline declares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineWorkspaceDeclaration {
    pub(crate) name: String,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) optional: bool,
}

/// One of a pipeline's tasks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PipelineTask {
    pub(crate) name: String,
    #[serde(rename = "displayName")]
    _display_name: Option<IgnoredAny>,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    pub(crate) task_spec: Option<TaskSpec>,
    #[serde(default)]
    pub(crate) run_after: Vec<String>,
    #[serde(default)]
    pub(crate) params: Vec<ParamValue>,
    #[serde(default)]
    pub(crate) workspaces: Vec<TaskWorkspaceBinding>,
    #[serde(default, rename = "taskRef")]
    _task_ref: Unsupported<TaskRef>,
    #[serde(default, rename = "when")]
    _when: Unsupported<When>,
    #[serde(default, rename = "retries")]
    _retries: Unsupported<Retries>,
    #[serde(default, rename = "timeout")]
    _timeout: Unsupported<Timeout>,
    #[serde(default, rename = "matrix")]
    _matrix: Unsupported<Matrix>,
    #[serde(default, rename = "onError")]
    _on_error: Unsupported<OnError>,
    #[serde(default, rename = "pipelineRef")]
    _pipeline_ref: Unsupported<TaskPipelineRef>,
    #[serde(default, rename = "pipelineSpec")]
    _pipeline_spec: Unsupported<TaskPipelineSpec>,
}

/// A pipeline task's binding of a pipeline workspace to a task workspace.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TaskWorkspaceBinding {
    pub(crate) name: String,
    pub(crate) workspace: Option<String>,
    pub(crate) sub_path: Option<String>,
}

/// An embedded task spec.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TaskSpec {
    #[serde(rename = "metadata")]
    _metadata: Option<TaskMetadata>,
    #[serde(rename = "displayName")]
    _display_name: Option<IgnoredAny>,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) params: Vec<ParamSpec>,
    #[serde(default)]
    pub(crate) workspaces: Vec<TaskWorkspaceDeclaration>,
    #[serde(default)]
    pub(crate) steps: Vec<Step>,
    #[serde(default, rename = "results")]
    _results: Unsupported<Results>,
    #[serde(default, rename = "sidecars")]
    _sidecars: Unsupported<Sidecars>,
    pub(crate) step_template: Option<StepTemplate>,
    #[serde(default, rename = "volumes")]
    _volumes: Unsupported<Volumes>,
    #[serde(default, rename = "apiVersion")]
    _api_version: Unsupported<CustomApiVersion>,
    #[serde(default, rename = "kind")]
    _kind: Unsupported<CustomKind>,
    #[serde(default, rename = "spec")]
    _spec: Unsupported<CustomSpec>,
}

/// An embedded task's `metadata`: ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskMetadata {
    #[serde(rename = "labels")]
    _labels: Option<IgnoredAny>,
    #[serde(rename = "annotations")]
    _annotations: Option<IgnoredAny>,
}

/// A workspace a task declares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TaskWorkspaceDeclaration {
    pub(crate) name: String,
    #[serde(rename = "description")]
    _description: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) read_only: bool,
    #[serde(default)]
    pub(crate) optional: bool,
    pub(crate) mount_path: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<FileDeclaration>,
}

/// A Workspace File: declared by a task, remapped by a run binding.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDeclaration {
    pub(crate) name: String,
    pub(crate) path: Option<String>,
}

/// A step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Step {
    pub(crate) name: Option<String>,
    pub(crate) image: Option<String>,
    #[serde(rename = "imagePullPolicy")]
    _image_pull_policy: Option<IgnoredAny>,
    pub(crate) script: Option<String>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) working_dir: Option<String>,
    #[serde(default)]
    pub(crate) env: Vec<EnvVar>,
    #[serde(default)]
    pub(crate) workspaces: Vec<StepWorkspace>,
    pub(crate) persist: Option<Persist>,
    pub(crate) attach: Option<Attach>,
    #[serde(default, rename = "volumeMounts")]
    _volume_mounts: Unsupported<VolumeMounts>,
    #[serde(default, rename = "volumeDevices")]
    _volume_devices: Unsupported<VolumeDevices>,
    pub(crate) security_context: Option<SecurityContext>,
    #[serde(default, rename = "computeResources")]
    _compute_resources: Unsupported<ComputeResources>,
    #[serde(default, rename = "envFrom")]
    _env_from: Unsupported<EnvFrom>,
    #[serde(default, rename = "timeout")]
    _timeout: Unsupported<Timeout>,
    #[serde(default, rename = "onError")]
    _on_error: Unsupported<OnError>,
    #[serde(default, rename = "stdoutConfig")]
    _stdout_config: Unsupported<StdoutConfig>,
    #[serde(default, rename = "stderrConfig")]
    _stderr_config: Unsupported<StderrConfig>,
    #[serde(default, rename = "results")]
    _results: Unsupported<Results>,
    #[serde(default, rename = "ref")]
    _ref: Unsupported<StepRef>,
    #[serde(default, rename = "params")]
    _params: Unsupported<StepParams>,
    #[serde(default, rename = "when")]
    _when: Unsupported<When>,
}

/// A task's `stepTemplate`: only its `securityContext` is supported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StepTemplate {
    pub(crate) security_context: Option<SecurityContext>,
    #[serde(default, rename = "image")]
    _image: Unsupported<TemplateImage>,
    #[serde(default, rename = "command")]
    _command: Unsupported<TemplateCommand>,
    #[serde(default, rename = "args")]
    _args: Unsupported<TemplateArgs>,
    #[serde(default, rename = "workingDir")]
    _working_dir: Unsupported<TemplateWorkingDir>,
    #[serde(default, rename = "env")]
    _env: Unsupported<TemplateEnv>,
    #[serde(default, rename = "envFrom")]
    _env_from: Unsupported<EnvFrom>,
    #[serde(default, rename = "computeResources")]
    _compute_resources: Unsupported<ComputeResources>,
    #[serde(default, rename = "volumeMounts")]
    _volume_mounts: Unsupported<VolumeMounts>,
    #[serde(default, rename = "volumeDevices")]
    _volume_devices: Unsupported<VolumeDevices>,
}

/// A step's (or a stepTemplate's) `securityContext`: the user and group the
/// step runs as (numeric ids, checked when the step is read).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecurityContext {
    pub(crate) run_as_user: Option<i64>,
    pub(crate) run_as_group: Option<i64>,
    pub(crate) run_as_non_root: Option<bool>,
    #[serde(default, rename = "privileged")]
    _privileged: Unsupported<Privileged>,
    #[serde(default, rename = "capabilities")]
    _capabilities: Unsupported<Capabilities>,
    #[serde(default, rename = "readOnlyRootFilesystem")]
    _read_only_root_filesystem: Unsupported<ReadOnlyRootFilesystem>,
    #[serde(default, rename = "allowPrivilegeEscalation")]
    _allow_privilege_escalation: Unsupported<AllowPrivilegeEscalation>,
    #[serde(default, rename = "seLinuxOptions")]
    _se_linux_options: Unsupported<SeLinuxOptions>,
    #[serde(default, rename = "seccompProfile")]
    _seccomp_profile: Unsupported<SeccompProfile>,
    #[serde(default, rename = "appArmorProfile")]
    _app_armor_profile: Unsupported<AppArmorProfile>,
    #[serde(default, rename = "procMount")]
    _proc_mount: Unsupported<ProcMount>,
    #[serde(default, rename = "windowsOptions")]
    _windows_options: Unsupported<WindowsOptions>,
}

/// An environment variable of a step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EnvVar {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    #[serde(default, rename = "valueFrom")]
    _value_from: Unsupported<ValueFrom>,
}

/// A workspace a step lists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct StepWorkspace {
    pub(crate) name: String,
    pub(crate) mount_path: Option<String>,
}

/// A `persist` step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Persist {
    pub(crate) workspace: String,
    #[serde(default)]
    pub(crate) paths: Vec<String>,
}

/// An `attach` step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Attach {
    pub(crate) workspace: String,
}

/// A visitor of one string, checked (or converted) by a function whose error
/// becomes the deserialization error, at the value's position.
struct CheckedStr<F>(F, &'static str);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for CheckedStr<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.0)(value).map_err(E::custom)
    }
}

const STRING_VALUE: &str = "a string (array and object values are not supported by wsfs run)";

/// A param value: a scalar, taken as its text.
fn string_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(CheckedStr(|v: &str| Ok(v.to_string()), STRING_VALUE))
}

/// A param value inside an `Option`.
#[derive(Deserialize)]
struct StringValue(#[serde(deserialize_with = "string_value")] String);

/// An optional param value: null (`~`, `null`, nothing) is none, as in Tekton.
fn optional_string_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<StringValue>::deserialize(deserializer)?.map(|v| v.0))
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let check = |v: &str| match v {
            "tekton.dev/v1" => Ok(ApiVersion),
            "tekton.dev/v1beta1" | "tekton.dev/v1alpha1" => Err(format!(
                "{v} is not supported: wsfs run reads tekton.dev/v1. Convert the file: set \
                 apiVersion: tekton.dev/v1; the fields wsfs run supports are the same in both, except \
                 that a v1beta1 step's `resources` is `computeResources` in v1 (not supported) and a \
                 PipelineRun's `timeout` and `serviceAccountName` moved to `timeouts` and \
                 `taskRunTemplate` (neither supported)"
            )),
            _ => Err(format!(
                "{v:?} is not Tekton's: wsfs run reads apiVersion: tekton.dev/v1 with kind \
                 Pipeline or PipelineRun"
            )),
        };
        deserializer.deserialize_str(CheckedStr(check, "an apiVersion"))
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let check = |v: &str| match v {
            "Pipeline" => Ok(Kind::Pipeline),
            "PipelineRun" => Ok(Kind::PipelineRun),
            "Task" | "TaskRun" => Err(format!(
                "{v} does not run alone: embed the task as the taskSpec of a task of a Pipeline \
                 (kind: Pipeline, spec.tasks[].taskSpec)"
            )),
            _ => Err(format!(
                "{v:?} is not supported: wsfs run runs a Pipeline or a PipelineRun"
            )),
        };
        deserializer.deserialize_str(CheckedStr(check, "a kind"))
    }
}

impl<'de> Deserialize<'de> for ParamType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let check = |v: &str| match v {
            "string" => Ok(ParamType),
            "array" | "object" => Err(format!(
                "Tekton param type `{v}` is not supported by wsfs run: use type string"
            )),
            _ => Err(format!("param type {v:?} is not a Tekton type: use type string")),
        };
        deserializer.deserialize_str(CheckedStr(check, "a param type"))
    }
}
