//! The loader end to end: Tekton files (written to a temp dir) → plans or errors.

use std::path::Path;

use super::*;
use crate::plan::{Action, Binding, PipelineWorkspace, RunAs, Step, StepWorkspace, TaskWorkspace};
use crate::workspace_files::WorkspaceFile;

fn options() -> RunOptions {
    RunOptions {
        run_name: "run-1".into(),
        ..RunOptions::default()
    }
}

/// Loads `yaml` as `<temp dir>/p.yaml`.
fn load_yaml(yaml: &str, options: &RunOptions) -> Result<Plan, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    load(&path, options)
}

/// The error of loading `yaml`, with the file shown as `p.yaml`.
fn error_with(yaml: &str, options: &RunOptions) -> String {
    let error = load_yaml(yaml, options).expect_err("the file must be refused");
    let file = error.file.display().to_string();
    error.to_string().replacen(&file, "p.yaml", 1)
}

fn error(yaml: &str) -> String {
    error_with(yaml, &options())
}

fn assert_contains(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} is not in:\n{message}");
    }
}

fn file(name: &str, path: &str) -> WorkspaceFile {
    WorkspaceFile::new(name, Some(path)).unwrap()
}

fn binding(source: Source, sub_path: &str, files: Vec<WorkspaceFile>) -> Option<Binding> {
    Some(Binding {
        source,
        sub_path: sub_path.into(),
        files,
    })
}

fn script(step: &Step) -> &str {
    match &step.action {
        Action::Script(script) => script,
        other => panic!("not a script: {other:?}"),
    }
}

const PIPELINE: &str = r#"apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: build-test
  labels: {team: ci}
spec:
  description: builds and tests
  params:
    - name: target
      type: string
      default: release
    - name: greeting
      description: no default
  workspaces:
    - name: source
    - name: cache
      optional: true
    - name: out
  tasks:
    - name: build
      displayName: Build it
      params:
        - name: profile
          value: "--$(params.target)"
      workspaces:
        - name: src
          workspace: source
          subPath: app/
        - name: cache
          workspace: cache
      taskSpec:
        metadata:
          labels: {a: b}
        params:
          - name: profile
          - name: jobs
            default: 4
        workspaces:
          - name: src
            files:
              - name: manifest
                path: Cargo.toml
          - name: cache
            optional: true
            mountPath: /cache
        steps:
          - name: compile
            image: rust:1
            workingDir: $(workspaces.src.path)
            env:
              - name: JOBS
                value: $(params.jobs)
            script: |
              cargo build $(params.profile) -j $JOBS --manifest-path $(workspaces.src.files.manifest.path)
              echo "cache: [$(workspaces.cache.path)] bound=$(workspaces.cache.bound)" $(date)
              echo $(params.greeting) $(context.pipelineRun.name) $(context.pipeline.name) $(context.task.name)
          - command: [make]
            args: ["-C", "$(workspaces.src.path)", "install"]
          - name: save
            workingDir: /workspace/src
            persist:
              workspace: src
              paths: [target/release, ./README.md]
    - name: test
      runAfter: [build, build]
      workspaces:
        - name: source
          workspace: source
        - name: out
          workspace: out
      taskSpec:
        workspaces:
          - name: source
            readOnly: true
          - name: out
        steps:
          - name: run
            workspaces:
              - name: out
                mountPath: /results
            script: ls $(workspaces.source.path) > $(workspaces.out.path)/list
          - name: other
            script: echo $(workspaces.source.path) $(params["greeting"])
          - name: get
            attach: {workspace: source}
"#;

#[test]
fn loads_a_pipeline() {
    let options = RunOptions {
        workspaces: vec![("source".into(), Source::Workspace("run-0/src".into()))],
        params: vec![("greeting".into(), "hi".into())],
        ..options()
    };
    let plan = load_yaml(PIPELINE, &options).unwrap();
    assert_eq!(plan.name, "build-test");
    assert_eq!(
        plan.workspaces,
        [
            PipelineWorkspace {
                name: "source".into(),
                optional: false,
                binding: binding(Source::Workspace("run-0/src".into()), "", vec![]),
            },
            PipelineWorkspace {
                name: "cache".into(),
                optional: true,
                binding: None,
            },
            PipelineWorkspace {
                name: "out".into(),
                optional: false,
                binding: binding(Source::Empty, "", vec![]),
            },
        ]
    );

    let build = &plan.tasks[0];
    assert!(build.run_after.is_empty());
    assert_eq!(
        build.workspaces,
        [
            TaskWorkspace {
                name: "src".into(),
                pipeline_workspace: Some("source".into()),
                sub_path: "app".into(),
                read_only: false,
                optional: false,
                mount_path: "/workspace/src".into(),
                files: vec![file("manifest", "/Cargo.toml")],
                step_isolated: false,
            },
            TaskWorkspace {
                name: "cache".into(),
                pipeline_workspace: None,
                sub_path: String::new(),
                read_only: false,
                optional: true,
                mount_path: "/cache".into(),
                files: vec![],
                step_isolated: false,
            },
        ]
    );
    let compile = &build.steps[0];
    assert_eq!(compile.name, "compile");
    assert_eq!(compile.image.as_deref(), Some("rust:1"));
    assert_eq!(compile.working_dir, "/workspace/src");
    assert_eq!(compile.env, [("JOBS".to_string(), "4".to_string())]);
    assert_eq!(
        script(compile),
        "cargo build --release -j $JOBS --manifest-path /workspace/src/Cargo.toml\n\
         echo \"cache: [] bound=false\" $(date)\n\
         echo hi run-1 build-test run-1-build\n"
    );
    let make = &build.steps[1];
    assert_eq!(make.name, "unnamed-1");
    assert_eq!(make.working_dir, "/workspace");
    assert_eq!(
        make.action,
        Action::Command(vec![
            "make".into(),
            "-C".into(),
            "/workspace/src".into(),
            "install".into()
        ])
    );
    assert_eq!(
        build.steps[2].action,
        Action::Persist {
            workspace: "src".into(),
            paths: vec!["target/release".into(), "README.md".into()],
        }
    );

    let test = &plan.tasks[1];
    assert_eq!(test.run_after, ["build"]);
    let source = test.workspace("source").unwrap();
    let out = test.workspace("out").unwrap();
    assert!(source.read_only && !source.step_isolated);
    assert!(out.step_isolated && !out.read_only);
    let [run, other, get] = &test.steps[..] else {
        panic!("three steps")
    };
    assert_eq!(
        run.workspaces,
        [StepWorkspace {
            name: "out".into(),
            mount_path: "/results".into(),
        }]
    );
    assert_eq!(script(run), "ls /workspace/source > /results/list");
    assert_eq!(run.sees(out), Some("/results"));
    assert_eq!(other.sees(out), None);
    assert_eq!(script(other), "echo /workspace/source hi");
    assert_eq!(
        get.action,
        Action::Attach {
            workspace: "source".into()
        }
    );
}

const PIPELINE_RUN: &str = r#"apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: ci-
spec:
  params:
    - name: version
      value: 1.20
  workspaces:
    - name: source
      subPath: checkout
      files:
        - name: key
          path: /keys//id_ecdsa
        - name: unused
          path: x
      persistentVolumeClaim:
        claimName: replaced-by-the-flag
    - name: cache
      subPath: $(context.pipelineRun.name)
      csi:
        driver: csi.wsfs.dev
        volumeAttributes:
          workspace: team/cache
          subPath: /v1
          mountPath: /workspace/cache
    - name: scratch
      volumeClaimTemplate:
        spec:
          accessModes: [ReadWriteOnce]
    - name: tmp
      emptyDir: {}
  pipelineSpec:
    params:
      - name: version
      - name: channel
        default: stable
    workspaces:
      - name: source
      - name: cache
      - name: scratch
      - name: tmp
      - name: extra
        optional: true
    tasks:
      - name: fetch
        workspaces:
          - name: source
            subPath: src
          - name: cache
            workspace: cache
            subPath: deps-$(params.channel)
          - name: extra
        taskSpec:
          workspaces:
            - name: source
              files:
                - name: key
            - name: cache
            - name: extra
              optional: true
          steps:
            - name: show
              image: alpine
              script: cat $(workspaces.source.files.key.path) - v$(params.version) [$(workspaces.extra.path)]
"#;

#[test]
fn loads_a_pipeline_run() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().to_path_buf();
    let options = RunOptions {
        workspaces: vec![("source".into(), Source::Directory(source.clone()))],
        ..options()
    };
    let plan = load_yaml(PIPELINE_RUN, &options).unwrap();
    assert_eq!(plan.name, "p");
    let bindings: Vec<Option<Binding>> = plan.workspaces.iter().map(|w| w.binding.clone()).collect();
    assert_eq!(
        bindings,
        [
            binding(
                Source::Directory(source),
                "checkout",
                vec![file("key", "/keys/id_ecdsa"), file("unused", "/x")]
            ),
            binding(Source::Workspace("team/cache".into()), "v1/run-1", vec![]),
            binding(Source::Empty, "", vec![]),
            binding(Source::Empty, "", vec![]),
            None,
        ]
    );
    let fetch = &plan.tasks[0];
    let source = fetch.workspace("source").unwrap();
    assert_eq!(source.pipeline_workspace.as_deref(), Some("source"));
    assert_eq!(source.sub_path, "checkout/src");
    assert_eq!(source.files, [file("key", "/keys/id_ecdsa")]);
    assert_eq!(fetch.workspace("cache").unwrap().sub_path, "v1/run-1/deps-stable");
    assert_eq!(fetch.workspace("extra").unwrap().pipeline_workspace, None);
    assert_eq!(
        script(&fetch.steps[0]),
        "cat /workspace/source/keys/id_ecdsa - v1.20 []"
    );
}

/// `PIPELINE_RUN` made to run without a flag (the PVC becomes an emptyDir).
fn run_without_flags(old: &str, new: &str) -> String {
    with(
        &PIPELINE_RUN.replace(
            "persistentVolumeClaim:\n        claimName: replaced-by-the-flag",
            "emptyDir: {}",
        ),
        old,
        new,
    )
}

#[test]
fn pipeline_run_params_yield_to_flags() {
    let options = RunOptions {
        params: vec![("version".into(), "2".into())],
        ..options()
    };
    let plan = load_yaml(&run_without_flags("", ""), &options).unwrap();
    assert!(script(&plan.tasks[0].steps[0]).contains("- v2 []"));
}

const BASE: &str = r#"apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  workspaces:
    - name: src
  tasks:
    - name: a
      workspaces:
        - name: src
          workspace: src
      taskSpec:
        workspaces:
          - name: src
        steps:
          - name: one
            script: echo one
"#;

/// `text` with `old` replaced by `new` (`old` must be there).
fn with(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "{old:?} is not in the text");
    text.replacen(old, new, 1)
}

fn base(old: &str, new: &str) -> String {
    with(BASE, old, new)
}

const STEP: &str = "          - name: one\n            script: echo one\n";

/// `BASE` with its step replaced by `step` (indented as a step).
fn step(step: &str) -> String {
    base(STEP, step)
}

#[test]
fn the_base_loads() {
    let plan = load_yaml(BASE, &options()).unwrap();
    assert_eq!(script(&plan.tasks[0].steps[0]), "echo one");
}

#[test]
fn refuses_invalid_yaml_with_its_line() {
    let message = error(&base("    - name: a\n", "    - name: a\n   bad: [\n"));
    assert!(message.starts_with("p.yaml:10:4: "), "{message}");
    assert!(
        message.ends_with("not valid YAML here: check the indentation and quoting"),
        "{message}"
    );
}

#[test]
fn refuses_unknown_fields_with_their_line() {
    let message = error(&step("          - name: one\n            scirpt: echo one\n"));
    assert!(
        message.starts_with(
            "p.yaml:18:13: spec.tasks[0].taskSpec.steps[0]: unknown field `scirpt`: check its spelling and \
             indentation; the fields known here are `name`, `image`"
        ),
        "{message}"
    );
    let message = error(&base("    - name: a\n", "    - displayName: a\n"));
    assert!(
        message.starts_with("p.yaml:9:7: spec.tasks[0]: missing field `name`: add it"),
        "{message}"
    );
}

#[test]
fn steps_run_as_their_security_context_over_the_step_template() {
    let yaml = base(
        "        steps:\n",
        "        stepTemplate:\n          securityContext: {runAsUser: 1000, runAsGroup: 100, runAsNonRoot: true}\n        steps:\n",
    );
    let yaml = with(
        &yaml,
        STEP,
        "          - name: one\n            script: echo one\n            securityContext:\n              runAsUser: 1234\n          - name: two\n            script: echo two\n",
    );
    let plan = load_yaml(&yaml, &options()).unwrap();
    let steps = &plan.tasks[0].steps;
    let run_as = |user, group| RunAs {
        user: Some(user),
        group: Some(group),
        non_root: true,
    };
    assert_eq!(steps[0].run_as, run_as(1234, 100));
    assert_eq!(steps[1].run_as, run_as(1000, 100));
    let plan = load_yaml(BASE, &options()).unwrap();
    assert_eq!(plan.tasks[0].steps[0].run_as, RunAs::default());
    let only_group = step(
        "          - name: one\n            script: echo one\n            securityContext: {runAsGroup: 0}\n",
    );
    let plan = load_yaml(&only_group, &options()).unwrap();
    let expected = RunAs {
        group: Some(0),
        ..RunAs::default()
    };
    assert_eq!(plan.tasks[0].steps[0].run_as, expected);
}

#[test]
fn refuses_ids_that_are_not_ids_and_root_with_run_as_non_root() {
    let step_text = |fields: &str| {
        format!("          - name: one\n            script: echo one\n            securityContext: {{{fields}}}\n")
    };
    let context = |fields: &str| step(&step_text(fields));
    assert_eq!(
        error(&context("runAsUser: -1")),
        "p.yaml:19:42: spec.tasks[0] (a).taskSpec.steps[0] (one).securityContext.runAsUser: runAsUser -1 \
         is not an id: give a number from 0 to 4294967294"
    );
    assert_contains(
        &error(&context("runAsGroup: 4294967295")),
        &["securityContext.runAsGroup: runAsGroup 4294967295 is not an id"],
    );
    assert_contains(
        &error(&context("runAsUser: abc")),
        &["p.yaml:19:", "expected i64"],
    );
    assert_contains(
        &error(&context("runAsUser: 0, runAsNonRoot: true")),
        &["securityContext.runAsNonRoot: runAsNonRoot is true and runAsUser is 0 (root)"],
    );
    let template = base(
        "        steps:\n",
        "        stepTemplate:\n          securityContext: {runAsUser: 0}\n        steps:\n",
    );
    let template = with(&template, STEP, &step_text("runAsNonRoot: true"));
    assert_contains(&error(&template), &["runAsNonRoot is true and runAsUser is 0"]);
    assert_contains(
        &error(&context("runAsUser: 1, fsGroup: 2")),
        &["p.yaml:19:", "unknown field `fsGroup`", "`runAsUser`"],
    );
}

#[test]
fn an_ordinary_users_run_refuses_other_users_and_groups_where_the_file_gives_them() {
    let caller = RunOptions {
        caller: Some(Caller { uid: 1000, gid: 100 }),
        ..options()
    };
    let context = |fields: &str| {
        step(&format!(
            "          - name: one\n            script: echo one\n            securityContext: {{{fields}}}\n"
        ))
    };
    assert_eq!(
        error_with(&context("runAsUser: 1001"), &caller),
        "p.yaml:19:42: spec.tasks[0] (a).taskSpec.steps[0] (one).securityContext.runAsUser: runAsUser 1001 \
         is not the uid running wsfs run (1000): without root, steps run as the user of wsfs run only \
         (another uid would need subordinate ids and allow_other): remove runAsUser, or run wsfs run as root"
    );
    let template = base(
        "        steps:\n",
        "        stepTemplate:\n          securityContext: {runAsGroup: 0}\n        steps:\n",
    );
    assert_contains(
        &error_with(&template, &caller),
        &[
            "p.yaml:17:",
            "stepTemplate.securityContext.runAsGroup: runAsGroup 0 is not the gid running wsfs run (100)",
        ],
    );
    let own = load_yaml(
        &context("runAsUser: 1000, runAsGroup: 100, runAsNonRoot: true"),
        &caller,
    )
    .unwrap();
    let expected = RunAs {
        user: Some(1000),
        group: Some(100),
        non_root: true,
    };
    assert_eq!(own.tasks[0].steps[0].run_as, expected);
    load_yaml(&context("runAsUser: 1001"), &options()).expect("root's run takes any user");
}

#[test]
fn refuses_unsupported_tekton_fields_naming_them() {
    let cases: [(&str, &str, &str, &str); 16] = [
        ("  tasks:\n", "  finally: []\n  tasks:\n", "finally", "p.yaml:8:12:"),
        ("  tasks:\n", "  results:\n    - name: r\n      value: x\n  tasks:\n", "results", "p.yaml:9:"),
        ("    - name: a\n", "    - name: a\n      when: []\n", "when", "p.yaml:10:"),
        ("    - name: a\n", "    - name: a\n      retries: 2\n", "retries", "p.yaml:10:16:"),
        ("    - name: a\n", "    - name: a\n      timeout: 1h\n", "timeout", "p.yaml:10:"),
        ("    - name: a\n", "    - name: a\n      matrix: {}\n", "matrix", "p.yaml:10:"),
        ("        steps:\n", "        sidecars: []\n        steps:\n", "sidecars", "p.yaml:16:"),
        ("        steps:\n", "        stepTemplate: {image: a}\n        steps:\n", "image", "p.yaml:16:"),
        ("        steps:\n", "        volumes: []\n        steps:\n", "volumes", "p.yaml:16:"),
        ("            script: echo one\n", "            script: echo one\n            volumeMounts: []\n", "volumeMounts", "p.yaml:19:"),
        ("            script: echo one\n", "            script: echo one\n            securityContext: {privileged: true}\n", "privileged", "p.yaml:19:"),
        ("            script: echo one\n", "            script: echo one\n            computeResources: {}\n", "computeResources", "p.yaml:19:"),
        (
            "            script: echo one\n",
            "            script: echo one\n            env:\n              - name: A\n                valueFrom: {}\n",
            "valueFrom",
            "p.yaml:21:",
        ),
        ("            script: echo one\n", "            script: echo one\n            onError: continue\n", "onError", "p.yaml:19:"),
        ("    - name: a\n", "    - name: a\n      taskRef: {name: build}\n", "taskRef", "p.yaml:10:"),
        ("spec:\n", "spec:\n  params:\n    - name: list\n      type: array\n", "param type `array", "p.yaml:8:13:"),
    ];
    for (old, new, field, position) in cases {
        let message = error(&base(old, new));
        assert!(message.starts_with(position), "{field}: {message}");
        assert!(
            message.contains(&format!("{field}` is not supported by wsfs run")),
            "{message}"
        );
    }
    assert_eq!(
        error(&base("    - name: a\n", "    - name: a\n      retries: 2\n")),
        "p.yaml:10:16: spec.tasks[0].retries: Tekton field `retries` is not supported by wsfs run: remove it"
    );
    let message = error(&base(
        "    - name: a\n",
        "    - name: a\n      taskRef: {name: build}\n",
    ));
    assert_contains(&message, &["embed the Task's spec as taskSpec"]);
}

#[test]
fn refuses_unsupported_pipeline_run_fields() {
    let run = run_without_flags("", "");
    for (field, new) in [
        ("timeouts", "spec:\n  timeouts: {pipeline: 1h}\n"),
        (
            "taskRunTemplate",
            "spec:\n  taskRunTemplate: {serviceAccountName: x}\n",
        ),
        ("pipelineRef", "spec:\n  pipelineRef: {name: x}\n"),
    ] {
        let message = error(&with(&run, "spec:\n", new));
        assert!(message.starts_with("p.yaml:6:"), "{message}");
        assert_contains(
            &message,
            &[&format!("Tekton field `{field}` is not supported by wsfs run")],
        );
    }
    let message = error(&with(&run, "spec:\n", "spec:\n  pipelineRef: {name: x}\n"));
    assert_contains(&message, &["embed the Pipeline's spec as spec.pipelineSpec"]);
}

#[test]
fn refuses_other_documents() {
    let message = error(&base(
        "apiVersion: tekton.dev/v1\n",
        "apiVersion: tekton.dev/v1beta1\n",
    ));
    assert!(
        message.starts_with("p.yaml:1:13: apiVersion: tekton.dev/v1beta1 is not supported"),
        "{message}"
    );
    assert_contains(&message, &["set apiVersion: tekton.dev/v1"]);
    let message = error(&base("kind: Pipeline\n", "kind: Task\n"));
    assert!(
        message.starts_with("p.yaml:2:7: kind: Task does not run alone: embed"),
        "{message}"
    );
    let message = error(&format!("{BASE}---\n{BASE}"));
    assert!(
        message.starts_with("p.yaml:20:1: holds 2 YAML documents"),
        "{message}"
    );
    assert_contains(
        &error("# nothing\n"),
        &["p.yaml: holds no Pipeline or PipelineRun"],
    );
    assert_contains(
        &error(&base("kind: Pipeline\n", "")),
        &["p.yaml:1:1: no kind: add kind"],
    );
    let message = error(&run_without_flags("  pipelineSpec:\n", "  pipelineSpecs:\n"));
    assert_contains(&message, &["unknown field `pipelineSpecs`"]);
    let no_spec = with(
        &run_without_flags("", ""),
        &PIPELINE_RUN[PIPELINE_RUN.find("  pipelineSpec:\n").unwrap()..],
        "",
    );
    assert_contains(
        &error(&no_spec),
        &["spec: the PipelineRun has no pipelineSpec: embed"],
    );
    let missing = error_with("x", &options());
    assert_contains(&missing, &["the document is not a mapping"]);
    let unreadable = load(Path::new("/nonexistent/p.yaml"), &options()).unwrap_err();
    assert_contains(
        &unreadable.to_string(),
        &["/nonexistent/p.yaml: cannot read the file"],
    );
}

#[test]
fn refuses_steps_that_do_not_do_one_thing() {
    let cases = [
        (
            "          - name: one\n            args: [x]\n",
            "args without command",
        ),
        (
            "          - name: one\n            script: x\n            command: [y]\n",
            "gives both script and command",
        ),
        (
            "          - name: one\n            script: x\n            args: [y]\n",
            "args go with command, not script",
        ),
        (
            "          - name: one\n            image: alpine\n",
            "the step does nothing",
        ),
        (
            "          - name: one\n            command: []\n",
            "command is empty",
        ),
        (
            "          - name: one\n            persist: {workspace: src}\n",
            "persist lists no paths",
        ),
    ];
    for (text, expected) in cases {
        assert_contains(
            &error(&step(text)),
            &["spec.tasks[0] (a).taskSpec.steps[0] (one)", expected],
        );
    }
}

#[test]
fn refuses_bad_persist_and_attach() {
    let persist = |paths: &str| {
        step(&format!(
            "          - persist: {{workspace: src, paths: [{paths}]}}\n"
        ))
    };
    assert_contains(
        &error(&persist("out/*.o")),
        &["globs are not expanded: list the paths"],
    );
    assert_contains(&error(&persist("/abs")), &["is absolute"]);
    assert_contains(&error(&persist("../up")), &["holds '..'"]);
    let message = error(&step("          - persist: {workspace: nope, paths: [x]}\n"));
    assert_contains(
        &message,
        &[
            "p.yaml:17:",
            "task workspace \"nope\" is not declared (declared: src)",
        ],
    );
    assert_contains(
        &error(&step("          - attach: {workspace: nope}\n")),
        &["\"nope\" is not declared"],
    );
    let read_only = base(
        "          - name: src\n",
        "          - name: src\n            readOnly: true\n",
    );
    let read_only = with(
        &read_only,
        STEP,
        "          - persist: {workspace: src, paths: [x]}\n",
    );
    assert_contains(&error(&read_only), &["declares workspace src readOnly"]);
}

#[test]
fn refuses_steps_listing_undeclared_workspaces() {
    let message = error(&step(
        "          - script: x\n            workspaces: [{name: other}]\n",
    ));
    assert_contains(
        &message,
        &[
            "p.yaml:18:33: spec.tasks[0] (a).taskSpec.steps[0] (unnamed-0).workspaces[0] (other).name: ",
            "task workspace \"other\" is not declared (declared: src)",
        ],
    );
}

const TWO_TASKS: &str = "    - name: b\n      taskSpec:\n        steps:\n          - script: x\n";

#[test]
fn refuses_bad_run_after() {
    let tasks = base(
        "  tasks:\n",
        &format!("  tasks:\n{TWO_TASKS}      runAfter: [a]\n"),
    );
    load_yaml(&tasks, &options()).unwrap();
    let cycle = base("    - name: a\n", "    - name: a\n      runAfter: [b]\n");
    let cycle = with(
        &cycle,
        "  tasks:\n",
        &format!("  tasks:\n{TWO_TASKS}      runAfter: [a]\n"),
    );
    assert_contains(&error(&cycle), &["runAfter forms a cycle: b -> a -> b"]);
    let self_cycle = base("    - name: a\n", "    - name: a\n      runAfter: [a]\n");
    assert_contains(
        &error(&self_cycle),
        &["p.yaml:10:", "runAfter forms a cycle: a -> a"],
    );
    let unknown = base("    - name: a\n", "    - name: a\n      runAfter: [c]\n");
    assert_contains(
        &error(&unknown),
        &["p.yaml:10:18:", "task \"c\" is not declared (declared: a)"],
    );
    let twice = base(
        "  tasks:\n",
        "  tasks:\n    - name: a\n      taskSpec:\n        steps:\n          - script: x\n",
    );
    assert_contains(
        &error(&twice),
        &["spec.tasks[1] (a): task \"a\" is given twice: keep one"],
    );
    assert_contains(
        &error(&base("    - name: a\n", "    - name: A_1\n")),
        &["task name \"A_1\" is not valid"],
    );
}

#[test]
fn refuses_unbound_and_undeclared_workspaces() {
    let undeclared_pipeline = base("          workspace: src\n", "          workspace: nope\n");
    assert_contains(
        &error(&undeclared_pipeline),
        &[
            "p.yaml:12:22: spec.tasks[0] (a).workspaces[0] (src).workspace: pipeline workspace \"nope\" is \
             not declared (declared: src)",
        ],
    );
    let undeclared_task = base(
        "        - name: src\n          workspace: src\n",
        "        - name: x\n          workspace: src\n",
    );
    assert_contains(
        &error(&undeclared_task),
        &["task workspace \"x\" is not declared (declared: src)"],
    );
    let unbound = base("        - name: src\n          workspace: src\n", "        []\n");
    let unbound = unbound.replace("      workspaces:\n        []\n", "");
    assert_contains(
        &error(&unbound),
        &["spec.tasks[0] (a).taskSpec.workspaces[0] (src): task workspace \"src\" is required"],
    );
    let optional = base("    - name: src\n", "    - name: src\n      optional: true\n");
    assert_contains(
        &error(&optional),
        &["pipeline workspace \"src\" bound to it is optional and not bound in this run"],
    );
    let flag = RunOptions {
        workspaces: vec![("nope".into(), Source::Empty)],
        ..options()
    };
    assert_eq!(
        error_with(BASE, &flag),
        "p.yaml: pipeline workspace \"nope\" is not declared (declared: src): --workspace names a workspace \
         of the pipeline"
    );
    let required = run_without_flags("      - name: tmp\n", "      - name: tmp\n      - name: more\n");
    assert_contains(
        &error(&required),
        &["pipelineSpec.workspaces[4] (more): pipeline workspace \"more\" is required and the PipelineRun binds nothing"],
    );
    let name = base("    - name: src\n", "    - name: Src\n");
    assert_contains(&error(&name), &["workspace name \"Src\" is not valid"]);
    let mount = base(
        "          - name: src\n",
        "          - name: src\n            mountPath: rel\n",
    );
    assert_contains(&error(&mount), &["mountPath \"rel\" is not absolute"]);
    let sub = base(
        "          workspace: src\n",
        "          workspace: src\n          subPath: a/../b\n",
    );
    assert_contains(&error(&sub), &["subPath \"a/../b\" holds '..'"]);
}

#[test]
fn refuses_volumes_wsfs_run_cannot_read() {
    let pvc = run_without_flags(
        "      subPath: checkout\n",
        "      subPath: checkout\n      configMap: {name: x}\n",
    );
    assert_contains(&error(&pvc), &["several volumes (emptyDir, configMap)"]);
    let pvc = PIPELINE_RUN.to_string();
    assert_contains(
        &error(&pvc),
        &["spec.workspaces[0] (source).persistentVolumeClaim: a persistentVolumeClaim cannot be read by wsfs run: \
           bind it with --workspace source=DIR or source=NS/WS"],
    );
    let driver = run_without_flags("driver: csi.wsfs.dev", "driver: other.csi");
    assert_contains(
        &error(&driver),
        &["csi driver \"other.csi\" is not wsfs's (csi.wsfs.dev)"],
    );
    let attribute = run_without_flags(
        "          mountPath: /workspace/cache\n",
        "          view: isolated\n",
    );
    assert_contains(
        &error(&attribute),
        &["volume attribute \"view\" is not used by wsfs run"],
    );
    let unknown = run_without_flags(
        "    - name: tmp\n",
        "    - name: nope\n      emptyDir: {}\n    - name: tmp\n",
    );
    assert_contains(
        &error(&unknown),
        &["spec.workspaces[3] (nope).name: pipeline workspace \"nope\" is not declared"],
    );
}

#[test]
fn refuses_missing_and_unknown_params() {
    let plan = |old: &str, new: &str| run_without_flags(old, new);
    let missing = plan("    - name: version\n      value: 1.20\n", "    []\n");
    assert_contains(
        &error(&missing),
        &["pipeline param \"version\" has no default and no value: pass --param version=VALUE"],
    );
    let flag = RunOptions {
        params: vec![("nope".into(), "x".into())],
        ..options()
    };
    assert_contains(
        &error_with(&run_without_flags("", ""), &flag),
        &["param \"nope\" is not declared (declared: version, channel)"],
    );
    let task_param = base(
        "        steps:\n",
        "        params:\n          - name: level\n        steps:\n",
    );
    assert_contains(
        &error(&task_param),
        &["param \"level\" of task a has no default and the pipeline task passes no value"],
    );
    let passed = base(
        "      taskSpec:\n",
        "      params:\n        - name: level\n          value: x\n      taskSpec:\n",
    );
    assert_contains(
        &error(&passed),
        &[
            "p.yaml:14:17:",
            "param \"level\" is not declared (none is declared)",
        ],
    );
    let array = base(
        "      taskSpec:\n",
        "      params:\n        - name: level\n          value: [x]\n      taskSpec:\n",
    );
    assert_contains(
        &error(&array),
        &["array and object values are not supported by wsfs run"],
    );
}

#[test]
fn refuses_unknown_variables_naming_task_and_step() {
    let message = error(&step(
        "          - name: one\n            script: echo $(params.nope)\n",
    ));
    assert_eq!(
        message,
        "p.yaml:18:21: spec.tasks[0] (a).taskSpec.steps[0] (one).script: $(params.nope) in task a, step one: \
         no such param (none is declared)"
    );
    let workspace = error(&step(
        "          - name: one\n            script: echo $(workspaces.out.path)\n",
    ));
    assert_contains(
        &workspace,
        &["$(workspaces.out.path) in task a, step one: the task has no such workspace (declared: src)"],
    );
    let file = error(&step(
        "          - name: one\n            script: cat $(workspaces.src.files.key.path)\n",
    ));
    assert_contains(&file, &["workspace src declares no such file (none is declared)"]);
    let result = error(&step(
        "          - name: one\n            workingDir: $(tasks.b.results.c)\n            script: x\n",
    ));
    assert_contains(
        &result,
        &["steps[0] (one).workingDir: $(tasks.b.results.c) in task a, step one: results"],
    );
    let pipeline_param = base(
        "      taskSpec:\n        workspaces:\n",
        "      params:\n        - name: x\n          value: $(params.y)\n      taskSpec:\n        params: [{name: x}]\n        workspaces:\n",
    );
    assert_contains(
        &error(&pipeline_param),
        &["$(params.y) in task a, param x: no such param"],
    );
}

#[test]
fn errors_keep_the_file_and_a_typed_problem() {
    let error = load_yaml("", &options()).unwrap_err();
    assert!(error.file.ends_with("p.yaml"));
    assert!(matches!(*error.problem, Problem::NoDocument));
    let cycle = load_yaml(
        &base("    - name: a\n", "    - name: a\n      runAfter: [a]\n"),
        &options(),
    )
    .unwrap_err();
    assert!(matches!(*cycle.problem, Problem::Cycle(_)));
    assert_eq!(cycle.position, Some(Position { line: 10, column: 17 }));
    let at = DocPath::root()
        .key("spec")
        .key("tasks")
        .index(0, Some("a"))
        .key("runAfter");
    assert_eq!(cycle.at, Some(at));
}

#[test]
fn refuses_workspaces_sharing_a_mount_path() {
    let two = base("    - name: src\n", "    - name: src\n    - name: out\n");
    let two = with(
        &two,
        "          workspace: src\n",
        "          workspace: src\n        - name: out\n",
    );
    let two = with(
        &two,
        "          - name: src\n",
        "          - name: src\n          - name: out\n            mountPath: /workspace/src/\n",
    );
    assert_contains(
        &error(&two),
        &["steps[0] (one): workspaces src and out are both mounted at /workspace/src in step one: give one"],
    );
}

#[test]
fn null_defaults_are_no_defaults() {
    for default in ["~", "null", ""] {
        let text = base(
            "spec:\n",
            &format!("spec:\n  params:\n    - name: x\n      default: {default}\n"),
        );
        assert_contains(
            &error(&text),
            &["pipeline param \"x\" has no default and no value"],
        );
    }
    let empty = base("spec:\n", "spec:\n  params:\n    - name: x\n      default: ''\n");
    load_yaml(&empty, &options()).unwrap();
}

#[test]
fn refuses_flags_given_twice() {
    let params = RunOptions {
        params: vec![("x".into(), "1".into()), ("x".into(), "2".into())],
        ..options()
    };
    let text = base("spec:\n", "spec:\n  params:\n    - name: x\n");
    assert_eq!(
        error_with(&text, &params),
        "p.yaml: --param \"x\" is given twice: keep one"
    );
    let workspaces = RunOptions {
        workspaces: vec![("src".into(), Source::Empty), ("src".into(), Source::Empty)],
        ..options()
    };
    assert_eq!(
        error_with(BASE, &workspaces),
        "p.yaml: --workspace \"src\" is given twice: keep one"
    );
}

#[test]
fn isolated_workspaces_are_seen_only_by_the_steps_listing_them() {
    let steps = "          - name: one\n            workspaces: [{name: src}]\n            script: ls $(workspaces.src.path)\n\
                 \x20         - name: two\n            script: ls $(workspaces.src.path)\n";
    assert_contains(
        &error(&step(steps)),
        &["steps[1] (two).script: $(workspaces.src.path) in task a, step two: step two does not see workspace src"],
    );
}

#[test]
fn refuses_tasks_without_steps_and_steps_named_twice() {
    let no_steps = base(STEP, "          []\n");
    assert_contains(&error(&no_steps), &["task a has no steps: give taskSpec.steps"]);
    let twice =
        step("          - name: one\n            script: x\n          - name: one\n            script: y\n");
    assert_contains(&error(&twice), &["steps[1] (one): step \"one\" is given twice"]);
    let relative = step("          - name: one\n            workingDir: rel\n            script: x\n");
    assert_contains(&error(&relative), &["workingDir \"rel\" is not absolute"]);
}
