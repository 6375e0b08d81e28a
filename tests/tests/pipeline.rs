//! `wsfs run`: Tekton v1 pipelines run on one host, as a CI user runs them:
//! every example of `examples/` with its outcome asserted, then the
//! semantics one by one (read-only workspaces, failures, sub-paths, params,
//! layer steps) and the files rejected before anything runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use wsfs_tests::host::default_timeout;
use wsfs_tests::json::{array_of, str_of};
use wsfs_tests::tree::write_file;
use wsfs_tests::{process, Host, HostConfig};

/// `examples/<name>` of the repository.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// A finished `wsfs run`: exit status, the step logs (stdout), stderr.
struct Run {
    out: Output,
}

impl Run {
    fn succeeded(&self) -> bool {
        self.out.status.success()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Asserts success and returns the log.
    fn ok(&self) -> String {
        assert!(
            self.succeeded(),
            "the run failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }

    /// Asserts failure and returns stdout + stderr.
    fn failed(&self) -> String {
        assert!(
            !self.succeeded(),
            "the run succeeded but should fail\n{}",
            self.stdout()
        );
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// The JSON summary (runs made with `--json`).
    fn json(&self) -> Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("no JSON summary ({e})\n{}\n{}", self.stdout(), self.stderr()))
    }
}

/// Runs `wsfs run FILE ARGS...` from `cwd`.
fn run(host: &Host, cwd: &Path, file: &Path, args: &[&str]) -> Run {
    let mut all = vec!["run", file.to_str().unwrap()];
    all.extend_from_slice(args);
    Run {
        out: host.wsfs_in(Some(cwd), &all),
    }
}

/// Writes a pipeline file into the host's directory.
fn pipeline_file(host: &Host, name: &str, yaml: &str) -> PathBuf {
    let path = host.path(name);
    fs::write(&path, yaml).unwrap();
    path
}

/// The JSON report of task `name`.
fn task<'a>(summary: &'a Value, name: &str) -> &'a Value {
    array_of(summary, "tasks")
        .iter()
        .find(|t| str_of(t, "name") == name)
        .unwrap_or_else(|| panic!("no task {name} in {summary}"))
}

/// Nothing of a run is left: no views, no run directory, no run workspace.
fn assert_clean(host: &Host) {
    assert!(
        array_of(&host.status(), "mounts").is_empty(),
        "views left: {}",
        host.status()
    );
    let runs = host.state_dir().join("runs");
    let left: Vec<_> = fs::read_dir(&runs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run directories left: {left:?}");
}

/// The hello example: t1 persists hello.txt as a layer, t2 attaches the
/// workspace and reads it; the run's workspace is deleted at the end.
#[test]
fn hello_passes_a_file_from_one_task_to_the_next_as_a_layer() {
    let a = Host::new();
    let log = run(&a, a.test_dir(), &example("hello.yaml"), &[]).ok();
    assert!(log.contains("[t2/read] hello from t1"), "{log}");
    assert!(log.contains("image alpine:3.20 (not pulled"), "{log}");
    for row in ["t1    write", "t1    save", "t2    load", "t2    read"] {
        let line = log
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?}\n{log}"));
        assert!(line.contains("Succeeded"), "{line}");
    }
    assert_eq!(
        a.workspace_names(None),
        Vec::<String>::new(),
        "the run's workspace was not deleted"
    );
    assert_clean(&a);
}

/// The last line of the daemon's log that starts prefetching under `key`.
fn prefetch_line(host: &Host, key: &str) -> String {
    let log = host.daemon_log_tail(400);
    log.lines()
        .rev()
        .find(|l| l.contains("prefetching") && l.contains(&format!("traces/{key}")))
        .unwrap_or_else(|| panic!("no prefetch of {key}:\n{log}"))
        .to_string()
}

/// With no flag, each task's views keep their access trace per pipeline,
/// task and workspace: in the second run of the hello pipeline, t2 fetches
/// ahead the file it read in the first run, and t1's persist lays the files
/// t1 and t2 read last run out first (the workspaces themselves are new
/// each run).
#[test]
fn the_next_run_fetches_ahead_and_lays_out_first_what_each_task_read() {
    let a = Host::new();
    run(&a, a.test_dir(), &example("hello.yaml"), &[]).ok();
    let log = a.daemon_log_tail(400);
    assert!(
        !log.lines()
            .any(|l| l.contains("prefetching") && l.contains("traces/hello/t2/shared")),
        "a prefetch without a trace:\n{log}"
    );
    run(&a, a.test_dir(), &example("hello.yaml"), &[]).ok();
    let second = prefetch_line(&a, "hello/t2/shared");
    assert!(
        second.contains("traced=1") && second.contains("first=hello.txt"),
        "t2's second run did not fetch ahead what it read in the first: {second}"
    );
    let log = a.daemon_log_tail(400);
    assert!(
        log.lines()
            .any(|l| l.contains("laying out traced files first") && l.contains("hello/t2/shared")),
        "the second run's persist did not lay out what t2 read:\n{log}"
    );
    assert_clean(&a);
}

/// `wsfs run --prefetch` attaches each task's workspaces with prefetch, its
/// access trace kept per pipeline, task and workspace: in the second run of
/// the hello pipeline, t2's workspace is prefetched starting with the file t2
/// read in the first run (the workspaces themselves are new each run).
#[test]
fn run_prefetch_follows_what_the_same_task_read_last_run() {
    let a = Host::new();
    let log = run(&a, a.test_dir(), &example("hello.yaml"), &["--prefetch"]).ok();
    assert!(log.contains("[t2/read] hello from t1"), "{log}");
    let first = prefetch_line(&a, "hello/t2/shared");
    assert!(first.contains("traced=0"), "no trace yet, and yet: {first}");
    run(&a, a.test_dir(), &example("hello.yaml"), &["--prefetch"]).ok();
    let second = prefetch_line(&a, "hello/t2/shared");
    assert!(
        second.contains("traced=1") && second.contains("first=hello.txt"),
        "t2's second run did not start from what it read in the first: {second}"
    );
    assert_clean(&a);
}

/// Fan-out, fan-in: three parallel tasks write different directories of one
/// workspace; all three layers land and the last task reads them all.
/// With `--keep`, the workspace is there to inspect afterwards.
#[test]
fn parallel_tasks_writing_one_workspace_all_land() {
    let a = Host::new();
    let done = run(
        &a,
        a.test_dir(),
        &example("fan-out-fan-in.yaml"),
        &["--keep", "1h", "--json"],
    );
    let summary = done.json();
    assert!(done.succeeded(), "{summary}\n{}", done.stderr());
    assert_eq!(str_of(&summary, "status"), "Succeeded");
    for name in ["source", "compile", "docs", "test", "package"] {
        assert_eq!(str_of(task(&summary, name), "status"), "Succeeded", "{summary}");
    }
    let logs = done.stderr();
    assert!(logs.contains("[package/package] size: 29"), "{logs}");
    assert!(logs.contains("[package/package] main.c has 1 main"), "{logs}");
    assert!(logs.contains("[package/package] 1 passed"), "{logs}");
    let ws = array_of(&summary, "workspaces")
        .iter()
        .find(|w| str_of(w, "name") == "build")
        .map(|w| str_of(w, "workspace").to_string())
        .expect("the build workspace in the summary");
    // The seed, the source task, and one layer per parallel task; `package` is read-only.
    assert_eq!(a.layer_count(&ws), 5, "{}", a.log(&ws));
    let mnt = a.path("inspect");
    a.attach(&ws, &mnt);
    for file in [
        "src/main.c",
        "bin/main.size",
        "docs/index.txt",
        "reports/unit.txt",
    ] {
        assert!(mnt.join(file).is_file(), "{file} missing from the kept workspace");
    }
    a.detach(&mnt);
}

/// The credentials workspace is isolated to the step that lists it, and the
/// run binding remaps the task's `private-key` file to `/id_ecdsa`.
#[test]
fn credentials_are_seen_only_by_the_step_that_lists_them() {
    let a = Host::new();
    let creds = a.path("my-ssh-dir");
    write_file(&creds.join("id_ecdsa"), b"-----BEGIN KEY-----\n").unwrap();
    write_file(&creds.join("known_hosts"), b"example.com ssh-ed25519 AAAA\n").unwrap();
    let log = run(
        &a,
        a.test_dir(),
        &example("ssh-credentials.yaml"),
        &["--workspace", "ssh-creds=./my-ssh-dir"],
    )
    .ok();
    assert!(
        log.contains(
            "[fetch-and-build/fetch] fetching with key /workspace/ssh-directory/id_ecdsa (20 bytes)"
        ),
        "{log}"
    );
    assert!(log.contains("[fetch-and-build/build] fetched"), "{log}");
    assert!(
        log.contains("/workspace/ssh-directory/id_ecdsa: No such file or directory"),
        "the build step could read the credentials:\n{log}"
    );
    assert_clean(&a);
}

/// An optional workspace: the task runs without it, and writes to it when bound.
#[test]
fn an_optional_workspace_is_written_only_when_bound() {
    let a = Host::new();
    let log = run(&a, a.test_dir(), &example("optional-messages.yaml"), &[]).ok();
    assert!(
        log.contains("[greet/greet] no messages workspace: nothing written"),
        "{log}"
    );

    let inbox = a.path("inbox");
    write_file(&inbox.join("README"), b"messages\n").unwrap();
    a.persist("team/messages", &inbox, &["README"]);
    let log = run(
        &a,
        a.test_dir(),
        &example("optional-messages.yaml"),
        &["--workspace", "messages=team/messages"],
    )
    .ok();
    assert!(
        log.contains("[greet/greet] wrote a message to /workspace/messages"),
        "{log}"
    );
    assert_eq!(
        a.layer_count("team/messages"),
        2,
        "the bound workspace did not get the task's layer"
    );
    let mnt = a.path("read");
    a.attach("team/messages", &mnt);
    assert_eq!(fs::read(mnt.join("greeting.txt")).unwrap(), b"hello\n");
    a.detach(&mnt);
    assert_clean(&a);
}

/// A declared workspace file that is missing fails the task before its first
/// step, with reason WorkspaceFileMissing and Tekton's message.
#[test]
fn a_missing_workspace_file_fails_the_task_before_its_first_step() {
    let a = Host::new();
    let done = run(
        &a,
        a.test_dir(),
        &example("missing-workspace-file.yaml"),
        &["--json"],
    );
    let all = done.failed();
    let summary = done.json();
    let deploy = task(&summary, "deploy");
    assert_eq!(str_of(deploy, "status"), "Failed");
    assert_eq!(str_of(deploy, "reason"), "WorkspaceFileMissing");
    assert_eq!(
        str_of(deploy, "message"),
        "Workspace file missing: workspace \"config\" does not provide file \"private-key\": \
         expected path \"/workspace/config/id_ecdsa\"."
    );
    assert_eq!(str_of(&array_of(deploy, "steps")[0], "status"), "Skipped");
    assert!(!all.contains("deploying with"), "the step ran:\n{all}");
    assert_clean(&a);
}

/// The README's build-test example over a local source tree: build writes
/// into its isolated view, test and lint (a sub-path) read the result.
#[test]
fn build_test_runs_over_a_local_source_tree() {
    build_test(&Host::new());
}

/// The same as an ordinary user on a laptop, with nothing set.
#[test]
fn build_test_runs_over_a_local_source_tree_as_an_ordinary_user() {
    build_test(&Host::with_config(HostConfig::named("laptop").ordinary_user()));
}

/// Runs `examples/build-test.yaml` on `a` over a local source tree.
fn build_test(a: &Host) {
    let repo = a.path("my-repo");
    for file in ["src/main.rs", "src/lib.rs", "Cargo.toml"] {
        write_file(&repo.join(file), b"// code\n").unwrap();
    }
    let log = run(
        a,
        a.test_dir(),
        &example("build-test.yaml"),
        &["--workspace", "source=./my-repo", "--keep", "0"],
    )
    .ok();
    assert!(log.contains("[build/compile] built 2 files (release)"), "{log}");
    assert!(log.contains("[test/test] tests passed"), "{log}");
    assert!(log.contains("[lint/lint] linted 2 files"), "{log}");
    assert_eq!(a.workspace_names(None), Vec::<String>::new());
    assert!(
        repo.join("src/main.rs").is_file() && !repo.join("out").exists(),
        "the run changed the source directory"
    );
    assert_clean(a);
}

const FAILING: &str = r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: failing
spec:
  params:
    - name: code
      default: "3"
  workspaces:
    - name: data
  tasks:
    - name: breaks
      workspaces: [{name: data, workspace: data}]
      taskSpec:
        params: [{name: code, default: "0"}]
        workspaces: [{name: data}]
        steps:
          - name: write-then-fail
            script: |
              echo partial > $(workspaces.data.path)/partial.txt
              exit $(params.code)
          - name: never
            script: echo never
      params: [{name: code, value: $(params.code)}]
    - name: after-breaks
      runAfter: [breaks]
      taskSpec:
        steps:
          - name: never
            script: echo never
    - name: independent
      workspaces: [{name: data, workspace: data}]
      taskSpec:
        workspaces: [{name: data}]
        steps:
          - name: write
            script: |
              echo ok > $(workspaces.data.path)/ok.txt
    - name: looks
      runAfter: [independent]
      workspaces: [{name: data, workspace: data}]
      taskSpec:
        workspaces: [{name: data}]
        steps:
          - name: read-without-writing
            script: cat $(workspaces.data.path)/ok.txt
    - name: reader
      runAfter: [independent]
      workspaces: [{name: data, workspace: data}]
      taskSpec:
        workspaces: [{name: data, readOnly: true}]
        steps:
          - name: try-write
            script: |
              cat $(workspaces.data.path)/ok.txt
              echo x > $(workspaces.data.path)/new.txt
"#;

/// A failing step fails its task (the rest of its steps are skipped, its
/// changes discarded), tasks after it are skipped, independent tasks still
/// run and land, a read-only workspace refuses writes, and the run exits
/// non-zero; `--param` sets the exit code the failing step uses.
#[test]
fn a_failing_task_discards_its_changes_and_skips_the_tasks_after_it() {
    let a = Host::new();
    let file = pipeline_file(&a, "failing.yaml", FAILING);
    let done = run(
        &a,
        a.test_dir(),
        &file,
        &["--json", "--keep", "1h", "--param", "code=7"],
    );
    done.failed();
    let summary = done.json();
    assert_eq!(str_of(&summary, "status"), "Failed");
    let breaks = task(&summary, "breaks");
    assert_eq!(str_of(breaks, "status"), "Failed", "{summary}");
    let steps = array_of(breaks, "steps");
    assert_eq!(str_of(&steps[0], "reason"), "exit code 7", "{summary}");
    assert_eq!(str_of(&steps[1], "status"), "Skipped");
    assert_eq!(str_of(task(&summary, "after-breaks"), "status"), "Skipped");
    assert_eq!(str_of(task(&summary, "independent"), "status"), "Succeeded");
    assert_eq!(
        str_of(task(&summary, "looks"), "status"),
        "Succeeded",
        "{summary}"
    );
    let reader = task(&summary, "reader");
    assert_eq!(str_of(reader, "status"), "Failed", "{summary}");
    assert!(
        done.stderr().contains("Read-only file system"),
        "{}",
        done.stderr()
    );
    let ws = format!("{}/data", str_of(&summary, "run"));
    assert_eq!(
        a.layer_count(&ws),
        2,
        "expected the seed and the independent task's layer (none of `looks`, whose isolated view changed nothing): {}",
        a.log(&ws)
    );
    let mnt = a.path("inspect");
    a.attach(&ws, &mnt);
    assert!(mnt.join("ok.txt").is_file());
    assert!(
        !mnt.join("partial.txt").exists(),
        "a failed task's changes landed"
    );
    assert!(!mnt.join("new.txt").exists());
    a.detach(&mnt);
    a.ok_json(["rm", &ws]);
    assert_clean(&a);
}

/// A PipelineRun binding's subPath and the pipeline task's subPath add up;
/// a subPath that does not exist fails the task with a message naming it.
#[test]
fn sub_paths_of_the_run_and_the_pipeline_task_add_up() {
    let a = Host::new();
    let tree = a.path("tree");
    write_file(&tree.join("services/api/main.go"), b"package main\n").unwrap();
    a.persist("mono/repo", &tree, &["services"]);
    let yaml = r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: sub-paths
spec:
  workspaces:
    - name: repo
      subPath: services
  pipelineSpec:
    workspaces:
      - name: repo
    tasks:
      - name: api
        workspaces: [{name: code, workspace: repo, subPath: api}]
        taskSpec:
          workspaces: [{name: code, readOnly: true}]
          steps:
            - name: list
              script: ls $(workspaces.code.path)
      - name: missing
        workspaces: [{name: code, workspace: repo, subPath: web}]
        taskSpec:
          workspaces: [{name: code, readOnly: true}]
          steps:
            - name: list
              script: ls $(workspaces.code.path)
"#;
    let file = pipeline_file(&a, "sub-paths.yaml", yaml);
    let done = run(&a, a.test_dir(), &file, &["--workspace", "repo=mono/repo"]);
    let all = done.failed();
    assert!(all.contains("[api/list] main.go"), "{all}");
    assert!(
        all.contains("services/web"),
        "the failure does not name the sub-path:\n{all}"
    );
    assert_eq!(
        a.layer_count("mono/repo"),
        1,
        "read-only tasks changed the workspace"
    );
    assert_clean(&a);
}

/// Files wsfs cannot run are refused before anything runs, naming the file,
/// the line where there is one, and what to change; nothing is created.
#[test]
fn bad_pipelines_are_rejected_before_anything_runs() {
    let a = Host::new();
    let header = "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: bad\nspec:\n";
    let cases: [(&str, String, &[&str]); 6] = [
        ("yaml.yaml", format!("{header}  tasks: [\n"), &["yaml.yaml"]),
        ("typo.yaml", format!("{header}  taskz: []\n"), &["typo.yaml:6", "taskz"]),
        (
            "cycle.yaml",
            format!(
                "{header}  tasks:\n    - name: a\n      runAfter: [b]\n      taskSpec: {{steps: [{{script: 'true'}}]}}\n    \
                 - name: b\n      runAfter: [a]\n      taskSpec: {{steps: [{{script: 'true'}}]}}\n"
            ),
            &["cycle"],
        ),
        (
            "undeclared.yaml",
            format!(
                "{header}  tasks:\n    - name: a\n      workspaces: [{{name: src, workspace: nope}}]\n      \
                 taskSpec:\n        workspaces: [{{name: src}}]\n        steps: [{{script: 'true'}}]\n"
            ),
            &["nope"],
        ),
        (
            "variable.yaml",
            format!("{header}  tasks:\n    - name: a\n      taskSpec:\n        steps: [{{script: 'echo $(params.nope)'}}]\n"),
            &["params.nope"],
        ),
        (
            "unsupported.yaml",
            format!("{header}  finally: []\n  tasks: []\n"),
            &["finally"],
        ),
    ];
    for (name, yaml, needles) in cases {
        let file = pipeline_file(&a, name, &yaml);
        let args = ["run", file.to_str().unwrap()];
        a.rejects(&args, needles, || a.workspace_names(None));
    }
    let hello = example("hello.yaml");
    a.rejects(
        &["run", hello.to_str().unwrap(), "--workspace", "nosuch=./x"],
        &["nosuch"],
        || a.workspace_names(None),
    );
    a.rejects(
        &["run", hello.to_str().unwrap(), "--param", "nosuch=1"],
        &["nosuch"],
        || a.workspace_names(None),
    );
    a.rejects(
        &["run", hello.to_str().unwrap(), "--workspace", "shared=none/such"],
        &["none/such"],
        || a.workspace_names(None),
    );
    assert_clean(&a);
}

/// `--keep` keeps a run's workspaces for inspection until their expiry:
/// then `wsfs rm --expired`, or the next run, deletes them; workspaces not
/// yet expired stay.
#[test]
fn kept_workspaces_are_deleted_once_expired() {
    let a = Host::new();
    let kept = |keep: &str| {
        let done = run(
            &a,
            a.test_dir(),
            &example("hello.yaml"),
            &["--keep", keep, "--json"],
        );
        (format!("{}/shared", str_of(&done.json(), "run")), done.stderr())
    };
    let (first, _) = kept("1ms");
    assert_eq!(a.workspace_names(None), std::slice::from_ref(&first));
    let removed = a.ok_json(["rm", "--expired"]);
    let names: Vec<&str> = array_of(&removed, "removed")
        .iter()
        .map(|r| str_of(r, "workspace"))
        .collect();
    assert_eq!(names, [first.as_str()], "{removed}");
    assert!(a.workspace_names(None).is_empty());

    let (second, _) = kept("1ms");
    let (long, log) = kept("1h");
    assert!(
        log.contains(&format!("removed expired workspace {second}")),
        "{log}"
    );
    assert!(log.contains(&format!("kept workspace {long} until")), "{log}");
    assert_eq!(a.workspace_names(None), std::slice::from_ref(&long));
    let again = a.ok_json(["rm", "--expired"]);
    assert!(array_of(&again, "removed").is_empty(), "{again}");
    a.ok_json(["rm", &long]);
    assert_clean(&a);
}

/// A CI system cancels a run (SIGTERM) or a user presses Ctrl-C (SIGINT)
/// while a step is running: every process of the step is killed, its views
/// are detached, the run's workspaces are deleted, and the run exits
/// non-zero saying it was interrupted.
#[test]
fn an_interrupted_run_kills_its_steps_and_leaves_nothing_behind() {
    let a = Host::new();
    let marker = a.path("step-started");
    let yaml = format!(
        r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: interrupted
spec:
  workspaces: [{{name: data}}]
  tasks:
    - name: long
      workspaces: [{{name: data, workspace: data}}]
      taskSpec:
        workspaces: [{{name: data}}]
        steps:
          - name: wait
            env: [{{name: MARK, value: "{}"}}]
            script: |
              echo partial > $(workspaces.data.path)/partial.txt
              touch "$MARK"
              sleep 3600
"#,
        marker.display()
    );
    let file = pipeline_file(&a, "interrupted.yaml", &yaml);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let child = a
            .command(["run", file.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !marker.exists() {
            assert!(started.elapsed() < default_timeout(), "the step never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            !process::processes_mentioning(&marker).is_empty(),
            "the step is not running"
        );
        // SAFETY: a plain syscall on our child.
        unsafe { libc::kill(child.id() as i32, signal) };
        assert!(
            process::wait_for_exit(child.id() as i32, default_timeout()),
            "the run did not stop"
        );
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert_eq!(
            process::processes_mentioning(&marker),
            Vec::<i32>::new(),
            "step processes survived"
        );
        assert!(
            a.workspace_names(None).is_empty(),
            "the run's workspace was not deleted"
        );
        assert_clean(&a);
        fs::remove_file(&marker).unwrap();
    }
}

/// A CI job with cloud credentials in its environment runs a pipeline: its
/// steps get their own `env`, `PATH`, `HOME` and `HOSTNAME`, never the job's
/// `AWS_*`, `GOOGLE_*` or `WSFS_*` variables; wsfs's state directory, its
/// socket (here outside the state directory) and its `file://` remote look
/// empty or gone, while the step's workspace (a view whose files live in the
/// state directory) shows its files.
#[test]
fn steps_see_neither_the_jobs_credentials_nor_wsfs_state() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("wsfsd.sock");
    let a = Host::with_config(
        HostConfig::default()
            .file_remote()
            .env("WSFS_SOCKET", socket.to_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", "job-secret")
            .env("GOOGLE_APPLICATION_CREDENTIALS", "/job/key.json"),
    );
    write_file(&a.path("src/main.c"), b"int main;\n").unwrap();
    let yaml = format!(
        r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: sealed
spec:
  workspaces: [{{name: src}}]
  tasks:
    - name: look
      workspaces: [{{name: src, workspace: src}}]
      taskSpec:
        workspaces: [{{name: src, readOnly: true}}]
        steps:
          - name: env
            env:
              - {{name: AWS_REGION, value: eu-west-1}}
              - {{name: SRC, value: $(workspaces.src.path)}}
            script: env
{wsfs}"#,
        wsfs = looks_for_wsfs(&a, &socket),
    );
    let file = pipeline_file(&a, "sealed.yaml", &yaml);
    let log = run(&a, a.test_dir(), &file, &["--workspace", "src=./src"]).ok();
    assert!(socket.exists(), "the daemon does not listen on WSFS_SOCKET");
    let env: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("[look/env] "))
        .collect();
    for wanted in [
        "AWS_REGION=eu-west-1",
        "SRC=/workspace/src",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(env.contains(&wanted), "no {wanted} in the step's env:\n{log}");
    }
    assert!(env.iter().any(|v| v.starts_with("HOME=/")), "no HOME:\n{log}");
    let leaked: Vec<&&str> = env
        .iter()
        .filter(|v| {
            ["WSFS_", "AWS_SECRET", "GOOGLE_"]
                .iter()
                .any(|p| v.starts_with(p))
        })
        .collect();
    assert!(leaked.is_empty(), "the step saw {leaked:?}:\n{log}");
    for line in WSFS_HIDDEN {
        assert!(log.contains(line), "no {line:?}:\n{log}");
    }
    assert_clean(&a);
}

/// Step `wsfs` of task `look` (a YAML block at the indentation of a task's
/// steps): it looks for `a`'s state dir, file remote and `socket`, and reads
/// `main.c` of its workspace `src`; it prints [`WSFS_HIDDEN`] when they are hidden.
fn looks_for_wsfs(a: &Host, socket: &Path) -> String {
    format!(
        r#"          - name: wsfs
            script: |
              echo "state dir: [$(ls -A {state})]"
              echo "remote: [$(ls -A {remote})]"
              if [ -S {socket} ]; then echo "socket: reachable"; else echo "socket: gone"; fi
              echo "view: $(cat $(workspaces.src.path)/main.c)"
"#,
        state = a.state_dir().display(),
        remote = a.remote_dir().display(),
        socket = socket.display(),
    )
}

/// What [`looks_for_wsfs`] prints when wsfs's state is hidden and the view is not.
const WSFS_HIDDEN: [&str; 4] = [
    "[look/wsfs] state dir: []",
    "[look/wsfs] remote: []",
    "[look/wsfs] socket: gone",
    "[look/wsfs] view: int main;",
];

/// A build step runs as `securityContext.runAsUser` (and a step without one
/// as `--step-user`, else root), owns what it writes in the task's working
/// directory, and a step with `runAsNonRoot` refuses to run as root.
#[test]
fn steps_run_as_their_run_as_user_or_the_step_user() {
    let a = Host::new();
    let yaml = r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: users
spec:
  tasks:
    - name: build
      taskSpec:
        steps:
          - name: compile
            securityContext: {runAsUser: 51234}
            script: |
              echo "user $(id -u) groups $(id -G) home $HOME"
              echo built > built.txt
          - name: check
            script: |
              echo "user $(id -u) group $(id -g)"
              stat -c 'built.txt is owned by %u' built.txt
    - name: guarded
      taskSpec:
        steps:
          - name: non-root
            securityContext: {runAsNonRoot: true}
            script: echo "user $(id -u)"
"#;
    let file = pipeline_file(&a, "users.yaml", yaml);
    let log = run(&a, a.test_dir(), &file, &[]).failed();
    for line in [
        "[build/compile] user 51234 groups ",
        "[build/check] user 0 group 0",
        "[build/check] built.txt is owned by 51234",
        "runAsNonRoot: the step would run as root",
    ] {
        assert!(log.contains(line), "no {line:?}:\n{log}");
    }
    let log = run(&a, a.test_dir(), &file, &["--step-user", "4321:4322"]).ok();
    for line in [
        "[build/compile] user 51234 groups 4322 home /\n",
        "[build/check] user 4321 group 4322",
        "[build/check] built.txt is owned by 51234",
        "[guarded/non-root] user 4321",
    ] {
        assert!(log.contains(line), "no {line:?}:\n{log}");
    }
    assert_clean(&a);
}

/// A mount path outside `/workspace` that the host lacks: an ordinary
/// user's step sees it in a root of its own, the host never gets it.
const LAPTOP_MOUNT: &str = "/wsfs-laptop-src";
/// A working directory whose top-level directory the host lacks alike.
const LAPTOP_WORKDIR: &str = "/wsfs-laptop-work/app";

/// A developer runs a pipeline as an ordinary user, with nothing set (and
/// the socket outside the state dir, as `WSFS_SOCKET` may put it): each step
/// runs as that user, in a user namespace of its own, and sees its
/// read-only workspaces (one at a mount path the host lacks, one a
/// sub-path) and the task's working directory, while wsfs's state dir, its
/// socket and its `file://` remote look empty or gone; `runAsNonRoot` holds.
#[test]
fn an_ordinary_users_steps_see_their_workspaces_and_not_wsfs_state() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("wsfsd.sock");
    let a = Host::with_config(
        HostConfig::named("laptop")
            .ordinary_user()
            .file_remote()
            .env("WSFS_SOCKET", socket.to_str().unwrap()),
    );
    let (uid, gid) = a.user_ids();
    std::os::unix::fs::chown(sockets.path(), Some(uid), Some(gid)).unwrap();
    write_file(&a.path("src/main.c"), b"int main;\n").unwrap();
    write_file(&a.path("src/lib/util.c"), b"int util;\n").unwrap();
    let yaml = format!(
        r#"
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: laptop
spec:
  workspaces: [{{name: src}}]
  tasks:
    - name: look
      workspaces:
        - {{name: src, workspace: src}}
        - {{name: lib, workspace: src, subPath: lib}}
      taskSpec:
        workspaces:
          - {{name: src, readOnly: true, mountPath: {mount}}}
          - {{name: lib, readOnly: true}}
        steps:
          - name: who
            securityContext: {{runAsNonRoot: true}}
            script: |
              echo "user $(id -u) group $(id -g)"
              echo built > built.txt
{wsfs}          - name: check
            script: |
              echo "sub-path: $(cat $(workspaces.lib.path)/util.c)"
              if touch $(workspaces.src.path)/new 2>/dev/null; then echo "view: writable"; else echo "view: read-only"; fi
              stat -c 'built.txt is owned by %u' built.txt
              if mkdir /made-by-a-step 2>/dev/null; then echo "root: writable"; else echo "root: read-only"; fi
          - name: elsewhere
            workingDir: {workdir}
            script: echo "pwd $(pwd)"
"#,
        mount = LAPTOP_MOUNT,
        workdir = LAPTOP_WORKDIR,
        wsfs = looks_for_wsfs(&a, &socket),
    );
    let file = pipeline_file(&a, "laptop.yaml", &yaml);
    let log = run(&a, a.test_dir(), &file, &["--workspace", "src=./src"]).ok();
    assert!(socket.exists(), "the daemon does not listen on WSFS_SOCKET");
    let mine = [
        format!("[look/who] user {uid} group {gid}"),
        "[look/check] sub-path: int util;".to_string(),
        "[look/check] view: read-only".to_string(),
        format!("[look/check] built.txt is owned by {uid}"),
        "[look/check] root: read-only".to_string(),
        format!("[look/elsewhere] pwd {LAPTOP_WORKDIR}"),
    ];
    for line in WSFS_HIDDEN.map(String::from).into_iter().chain(mine) {
        assert!(log.contains(&line), "no {line:?}:\n{log}");
    }
    assert_clean(&a);
}

/// An ordinary user's run refuses, before anything runs, a step of another
/// user (`runAsUser`, at its line) or `--step-user` naming one: that would
/// need subordinate ids; its own ids are fine.
#[test]
fn an_ordinary_users_run_refuses_steps_of_other_users() {
    let a = Host::with_config(HostConfig::named("laptop").ordinary_user());
    let (uid, _) = a.user_ids();
    let yaml = |user: u32| {
        format!(
            "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: users\nspec:\n  tasks:\n    - name: build\n      \
             taskSpec:\n        steps:\n          - name: compile\n            securityContext: {{runAsUser: {user}}}\n            \
             script: id -u\n"
        )
    };
    let other = pipeline_file(&a, "other.yaml", &yaml(51234));
    let refused = ["is not the uid running wsfs run", "run wsfs run as root"];
    a.rejects(
        &["run", other.to_str().unwrap()],
        &[&["other.yaml:11:", "runAsUser 51234"][..], &refused].concat(),
        || a.workspace_names(None),
    );
    let own = pipeline_file(&a, "own.yaml", &yaml(uid));
    a.rejects(
        &["run", own.to_str().unwrap(), "--step-user", "4321"],
        &[&["--step-user 4321"][..], &refused].concat(),
        || a.workspace_names(None),
    );
    let log = run(&a, a.test_dir(), &own, &[]).ok();
    assert!(log.contains(&format!("[build/compile] {uid}")), "{log}");
    assert_clean(&a);
}
