//! A generated tree shaped like a dependency folder (`node_modules`):
//! packages of tens to hundreds of small text files (js, d.ts, json, md, a
//! few larger bundles), nested a few levels, with `.bin` symlinks. The same
//! file count always gives the same tree, byte for byte. Its text is made of
//! runs of lines from a small pool of templates, so that it compresses about
//! as well as such folders do (`tar | zstd -3`: ~35x).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::peers;

/// Words of identifiers, package names and prose.
const WORDS: &[&str] = &[
    "array",
    "buffer",
    "cache",
    "client",
    "config",
    "core",
    "data",
    "debug",
    "define",
    "diff",
    "emit",
    "error",
    "event",
    "fetch",
    "file",
    "format",
    "glob",
    "hash",
    "http",
    "index",
    "inline",
    "json",
    "key",
    "lexer",
    "list",
    "loader",
    "map",
    "merge",
    "module",
    "node",
    "object",
    "option",
    "parse",
    "path",
    "plugin",
    "promise",
    "proxy",
    "query",
    "queue",
    "range",
    "read",
    "reduce",
    "regex",
    "resolve",
    "schema",
    "semver",
    "server",
    "shim",
    "source",
    "stream",
    "string",
    "sync",
    "token",
    "transform",
    "tree",
    "type",
    "util",
    "value",
    "visit",
    "walk",
    "watch",
    "write",
];

/// Line templates per pool flavour; `@` becomes an identifier, `#` a number.
const CODE: &[&str] = &[
    "'use strict';",
    "Object.defineProperty(exports, \"__esModule\", { value: true });",
    "const @ = require(\"./@\");",
    "var @ = _interopRequireDefault(require(\"@\"));",
    "function @(@, @) {",
    "  if (@ === undefined || @ === null) {",
    "    throw new TypeError(\"Expected @ to be a @, got \" + typeof @);",
    "  }",
    "  return @.@(@, #);",
    "}",
    "  for (let i = 0; i < @.length; i++) {",
    "    @[i] = @(@[i], i);",
    "  const @ = Object.assign({}, @, { @: # });",
    "module.exports = @;",
    "exports.@ = @;",
    "export declare function @(@: @, @?: @Options): Promise<@>;",
    "export interface @Options {",
    "    @?: boolean;",
    "    @: string | number;",
    "export { @ as default, @ };",
    "  @.prototype.@ = function @(@) {",
    "    return this.@.get(@) || #;",
    "  };",
    "//# sourceMappingURL=@.js.map",
    "/** Returns the @ of the @, or # when it has none. */",
    "  } else if (typeof @ === 'function') {",
    "    @ = @.call(this, @);",
    "  return new Promise(function (resolve, reject) {",
    "    @.on('@', function (@) { resolve(@); });",
    "  });",
];

/// Prose and metadata templates (README, LICENSE, package.json).
const TEXT: &[&str] = &[
    "# @",
    "## Install",
    "```sh\nnpm install @\n```",
    "## Usage",
    "const @ = require('@');",
    "Returns a `@` of the `@` option, or `#` by default.",
    "- `@` (`string`): the @ to @.",
    "See the [@ documentation](https://example.org/@) for details.",
    "## License\n\nMIT",
    "  \"name\": \"@\",",
    "  \"version\": \"#.#.#\",",
    "  \"main\": \"lib/@.js\",",
    "  \"types\": \"types/@.d.ts\",",
    "    \"@\": \"^#.#.#\",",
    "  \"license\": \"MIT\",",
    "  \"repository\": \"github:@/@\",",
];

const MIT: &str =
    "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n\
of this software and associated documentation files (the \"Software\"), to deal\n\
in the Software without restriction, including without limitation the rights\n\
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n\
copies of the Software, and to permit persons to whom the Software is\n\
furnished to do so, subject to the following conditions:\n\n\
THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.\n";

/// Lines in each pool: the repeated text the files are made of.
const POOL_LINES: usize = 2000;
/// Per mille of lines made fresh (new identifiers) rather than taken from
/// the pool: tunes the compression ratio.
const FRESH_PER_MILLE: u64 = 2;
/// A file's runs of consecutive pool lines are at most this long.
const MAX_RUN: u64 = 200;

/// The dependency tree of `files` regular files under `cache`, built once
/// (as `deps-N`) and reused; prints its `tar | zstd -3` ratio when built.
pub fn deps_tree(cache: &Path, files: usize) -> Result<PathBuf> {
    let dest = cache.join(format!("deps-{files}"));
    if dest.is_dir() {
        return Ok(dest);
    }
    let partial = cache.join(format!("deps-{files}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    eprintln!("generating the dependency tree {} ...", dest.display());
    let started = std::time::Instant::now();
    let plan = Plan::new(files);
    let pools = Pools::new();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (plan, pools, partial) = (&plan, &pools, &partial);
                scope.spawn(move || -> Result<u64> {
                    let mut written = 0;
                    for pkg in plan.packages.iter().skip(t).step_by(threads) {
                        written += pkg.write(partial, pools)?;
                    }
                    Ok(written)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("writers do not panic"))
            .sum::<Result<u64>>()
    })?;
    for (link, target) in &plan.links {
        let link = partial.join(link);
        fs::create_dir_all(link.parent().expect("a link has a parent"))?;
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    let generated = started.elapsed();
    let bytes = crate::measure::dir_bytes(&partial)?;
    let archive = cache.join(format!("deps-{files}.tar.zst"));
    peers::tar_zstd(&partial, &archive, 0)?;
    let compressed = fs::metadata(&archive)?.len();
    fs::remove_file(&archive)?;
    eprintln!(
        "generated {files} files, {} packages, {} symlinks, {bytes} bytes in {:.1} s; \
         tar | zstd -3: {compressed} bytes ({:.1}x)",
        plan.packages.len(),
        plan.links.len(),
        generated.as_secs_f64(),
        bytes as f64 / compressed.max(1) as f64
    );
    fs::rename(&partial, &dest).with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(dest)
}

/// splitmix64: a tiny generator whose output never changes with a crate version.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }

    /// Roughly log-uniform in `lo..hi`: small values are as common as large ones' magnitudes.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let x = l + (h - l) * (self.next() % 1_000_000) as f64 / 1e6;
        x.exp() as u64
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.next() as usize % WORDS.len()]
    }

    /// A camelCase identifier of two words.
    fn ident(&mut self, out: &mut String) {
        out.push_str(self.word());
        let second = self.word();
        out.push_str(&second[..1].to_ascii_uppercase());
        out.push_str(&second[1..]);
    }

    /// One of `templates` with each `@` an identifier and each `#` a number.
    fn fill(&mut self, templates: &[&str], out: &mut String) {
        let template = templates[self.next() as usize % templates.len()];
        for c in template.chars() {
            match c {
                '@' => self.ident(out),
                '#' => out.push_str(&self.range(0, 100).to_string()),
                c => out.push(c),
            }
        }
        out.push('\n');
    }
}

/// The repeated lines files are made of: code and prose.
struct Pools {
    code: Vec<String>,
    text: Vec<String>,
}

impl Pools {
    fn new() -> Pools {
        let mut rng = Rng(0x5eed);
        let mut pool = |templates: &[&str]| {
            (0..POOL_LINES)
                .map(|_| {
                    let mut line = String::new();
                    let depth = rng.range(0, 3) as usize;
                    line.push_str(&"  ".repeat(depth));
                    rng.fill(templates, &mut line);
                    line
                })
                .collect()
        };
        Pools {
            code: pool(CODE),
            text: pool(TEXT),
        }
    }

    /// `size` bytes of text: runs of consecutive pool lines, now and then a fresh line.
    fn text(&self, rng: &mut Rng, size: usize, prose: bool) -> Vec<u8> {
        let (pool, templates) = if prose {
            (&self.text, TEXT)
        } else {
            (&self.code, CODE)
        };
        let mut out = String::with_capacity(size + 256);
        while out.len() < size {
            if rng.chance(FRESH_PER_MILLE) {
                rng.fill(templates, &mut out);
                continue;
            }
            let run = rng.range(1, MAX_RUN + 1) as usize;
            let start = rng.next() as usize % pool.len();
            for line in pool.iter().cycle().skip(start).take(run) {
                out.push_str(line);
            }
        }
        out.truncate(size);
        out.into_bytes()
    }
}

/// One package: its directory (relative to the tree's root) and how many files it holds.
struct Package {
    dir: PathBuf,
    name: String,
    files: usize,
    seed: u64,
    bin: bool,
}

/// Every package of the tree and its `.bin` symlinks (link → target).
struct Plan {
    packages: Vec<Package>,
    links: Vec<(PathBuf, PathBuf)>,
}

impl Plan {
    fn new(files: usize) -> Plan {
        let mut rng = Rng(files as u64);
        let mut plan = Plan {
            packages: Vec::new(),
            links: Vec::new(),
        };
        let mut left = files;
        let mut top = Names::default();
        while left > 0 {
            left = plan.add(&mut rng, Path::new("node_modules"), &mut top, 0, left);
        }
        plan
    }

    /// Adds a package (and, now and then, its nested dependencies) below
    /// `modules`; returns how many files are still to place.
    fn add(&mut self, rng: &mut Rng, modules: &Path, names: &mut Names, depth: u32, left: usize) -> usize {
        let scoped = depth == 0 && rng.chance(120);
        let name = names.fresh(rng, scoped);
        let files = (rng.log_range(8, 400) as usize).min(left);
        let bin = files >= 4 && rng.chance(150);
        let dir = modules.join(&name);
        if bin {
            let link = modules
                .join(".bin")
                .join(name.rsplit('/').next().expect("a name"));
            if self.links.iter().all(|(l, _)| *l != link) {
                self.links
                    .push((link, PathBuf::from(format!("../{name}/bin/cli.js"))));
            }
        }
        self.packages.push(Package {
            dir: dir.clone(),
            name,
            files,
            seed: rng.next(),
            bin,
        });
        let mut left = left - files;
        if depth < 3 && rng.chance(250) {
            let mut nested = Names::default();
            for _ in 0..rng.range(1, 4) {
                if left == 0 {
                    break;
                }
                left = self.add(rng, &dir.join("node_modules"), &mut nested, depth + 1, left);
            }
        }
        left
    }
}

/// Package names already used in one `node_modules` directory.
#[derive(Default)]
struct Names(HashSet<String>);

impl Names {
    fn fresh(&mut self, rng: &mut Rng, scoped: bool) -> String {
        let mut name = format!("{}-{}", rng.word(), rng.word());
        if scoped {
            name = format!("@{}/{name}", rng.word());
        }
        if self.0.contains(&name) {
            name = format!("{name}-{}", self.0.len());
        }
        self.0.insert(name.clone());
        name
    }
}

/// Where a package's other files go, and their extensions.
const DIRS: &[&str] = &[
    "lib",
    "dist",
    "types",
    "src",
    "lib/internal",
    "dist/esm",
    "dist/cjs",
];
const EXTS: &[&str] = &[
    ".js", ".js", ".js", ".d.ts", ".d.ts", ".mjs", ".json", ".md", ".js.map",
];

impl Package {
    /// Writes the package's files below `root`; returns their bytes.
    fn write(&self, root: &Path, pools: &Pools) -> Result<u64> {
        let mut rng = Rng(self.seed);
        let dir = root.join(&self.dir);
        let mut written = 0;
        let mut put = |rel: &str, data: Vec<u8>| -> Result<()> {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().expect("a file has a parent"))?;
            written += data.len() as u64;
            fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))
        };
        let readme = rng.log_range(300, 8000) as usize;
        let mut fixed: Vec<(String, Vec<u8>)> = vec![
            ("package.json".into(), self.manifest(&mut rng).into_bytes()),
            ("README.md".into(), pools.text(&mut rng, readme, true)),
            (
                "LICENSE".into(),
                format!("{MIT}\nCopyright (c) {} {}\n", rng.range(2010, 2026), self.name).into_bytes(),
            ),
        ];
        if self.bin {
            fixed.push(("bin/cli.js".into(), pools.text(&mut rng, 1500, false)));
        }
        let count = fixed.len().min(self.files);
        for (rel, data) in fixed.into_iter().take(count) {
            put(&rel, data)?;
        }
        let dirs = &DIRS[..rng.range(1, DIRS.len() as u64 + 1) as usize];
        let mut names = HashSet::new();
        for i in count..self.files {
            let ext = EXTS[rng.next() as usize % EXTS.len()];
            let mut stem = String::new();
            rng.ident(&mut stem);
            if !names.insert(stem.clone()) {
                stem = format!("{stem}{i}");
            }
            let rel = format!("{}/{stem}{ext}", dirs[rng.next() as usize % dirs.len()]);
            let size = if rng.chance(5) {
                rng.log_range(64 << 10, 1 << 20)
            } else {
                rng.log_range(200, 16_000)
            };
            put(&rel, pools.text(&mut rng, size as usize, ext == ".md"))?;
        }
        Ok(written)
    }

    fn manifest(&self, rng: &mut Rng) -> String {
        let mut deps = String::new();
        for _ in 0..rng.range(0, 6) {
            deps += &format!(
                "    \"{}-{}\": \"^{}.{}.0\",\n",
                rng.word(),
                rng.word(),
                rng.range(0, 9),
                rng.range(0, 30)
            );
        }
        format!(
            "{{\n  \"name\": \"{}\",\n  \"version\": \"{}.{}.{}\",\n  \"main\": \"lib/index.js\",\n  \
             \"license\": \"MIT\",\n  \"dependencies\": {{\n{deps}  }}\n}}\n",
            self.name,
            rng.range(0, 9),
            rng.range(0, 30),
            rng.range(0, 20)
        )
    }
}
