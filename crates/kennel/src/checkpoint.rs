//! Checkpoints of the workspace: what a session changed, and how to undo it.
//!
//! Before an agent's session kennel records the workspace's files (tracked and untracked,
//! not those git ignores) and the repository's refs and HEAD; after it, the same again, and
//! says in one line what changed. `kennel diff` shows a session's changes, `kennel undo`
//! puts the files and refs back as they were at its start (after a checkpoint of the
//! present, so that an undo is itself a session that can be undone).
//!
//! Everything is kept by git's own object store, in a bare repository of kennel's per
//! workspace (`$XDG_STATE_HOME/kennel/checkpoints/NAME-HASH/repo.git`), outside the
//! sandbox's reach: the files by `git add -A` into an index of kennel's own (the next
//! checkpoint only looks at what changed), the history by fetching every ref of the
//! workspace's repository into it (only new objects are copied). A snapshot is one commit
//! whose tree holds `files` (the work tree) and `refs` (a list of `OID NAME`, HEAD first),
//! under `refs/kennel/N/start` and `refs/kennel/N/end`; the history each reached under
//! `refs/kennel/N/{start,end}-refs/`.
//!
//! git runs with no system or global config, hooks off, and the store's attributes
//! (`* -text -filter -ident`...) over the workspace's: what is recorded is the bytes on
//! disk, and nothing a sandbox wrote into `.gitattributes` or `.git/config` runs here.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kennel_policy::{shown, shown_path, Context, GitDirs, Policy};
use nix::fcntl::{Flock, FlockArg};

/// Sessions kept per workspace unless the config says (`checkpoint-keep`); older ones are
/// dropped at the end of a session, and their objects freed by `kennel sessions --prune`.
pub const KEEP: usize = 20;

/// What the store's attributes say of every path: record and restore the bytes as they are.
const ATTRIBUTES: &str = "* -text -eol -filter -ident -working-tree-encoding\n";

/// A workspace's checkpoint store.
pub struct Store {
    dir: PathBuf,
    repo: PathBuf,
    root: PathBuf,
    git: GitDirs,
    /// Your global `core.excludesFile`, asked of git once.
    global_excludes: std::sync::OnceLock<Option<PathBuf>>,
}

/// One snapshot: the commit, its files' tree, and the refs it recorded.
struct Snapshot {
    files: String,
    refs: Refs,
}

/// `HEAD` (a symbolic `ref: NAME` or an OID) and each ref's OID.
#[derive(Default, Clone, PartialEq)]
struct Refs {
    head: String,
    refs: BTreeMap<String, String>,
}

/// Held by a running session: `kennel undo` refuses while one is held.
pub struct Running(#[allow(dead_code)] Flock<File>);

impl Store {
    /// The store of `ctx`'s workspace (made on first use); `None` outside a repository or
    /// where kennel's state folder lies inside the workspace (the sandbox could write it).
    pub fn open(ctx: &Context) -> Result<Option<Store>, String> {
        let Some(git) = ctx.workspace.git.clone() else {
            return Ok(None);
        };
        let Some(dir) = store_dir(ctx) else {
            return Ok(None);
        };
        let store = Store {
            repo: dir.join("repo.git"),
            dir,
            root: ctx.workspace.root.clone(),
            git,
            global_excludes: std::sync::OnceLock::new(),
        };
        store.init()?;
        Ok(Some(store))
    }

    fn init(&self) -> Result<(), String> {
        if !self.repo.join("HEAD").exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| format!("cannot create {}: {e}", shown_path(&self.dir)))?;
            run(self
                .store_git()
                .args(["init", "-q", "--bare"])
                .arg(&self.repo))?;
            for (key, value) in [
                ("uploadpack.allowAnySHA1InWant", "true"),
                ("core.logAllRefUpdates", "false"),
            ] {
                run(self.store_git().args(["config", key, value]))?;
            }
        }
        let info = self.repo.join("info");
        fs::create_dir_all(&info).map_err(|e| format!("{}: {e}", shown_path(&info)))?;
        let attributes = info.join("attributes");
        if fs::read(&attributes).ok().as_deref() != Some(ATTRIBUTES.as_bytes()) {
            fs::write(&attributes, ATTRIBUTES)
                .map_err(|e| format!("{}: {e}", shown_path(&info)))?;
        }
        Ok(())
    }

    /// git on the store, with nothing of the user's or the workspace's config.
    fn store_git(&self) -> Command {
        let mut cmd = plain_git();
        cmd.arg("--git-dir").arg(&self.repo);
        cmd
    }

    /// git on the store with the workspace as its work tree and kennel's own index.
    fn tree_git(&self) -> Command {
        let mut cmd = self.store_git();
        cmd.arg("--work-tree")
            .arg(&self.root)
            .current_dir(&self.root)
            .env("GIT_INDEX_FILE", self.dir.join("index"));
        cmd
    }

    /// git on the workspace's repository, its objects looked up in the store: it reads the
    /// refs even where the repository's own objects are gone.
    fn refs_git(&self) -> Command {
        let mut cmd = plain_git();
        cmd.env("GIT_DIR", &self.git.git_dir)
            .env("GIT_OBJECT_DIRECTORY", self.repo.join("objects"));
        cmd
    }

    /// git in the workspace's repository itself (for putting refs and objects back).
    fn workspace_git(&self) -> Command {
        let mut cmd = plain_git();
        cmd.env("GIT_DIR", &self.git.git_dir);
        cmd
    }

    fn lock(&self, name: &str, how: FlockArg) -> Result<Flock<File>, nix::errno::Errno> {
        let path = self.dir.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        Flock::lock(file, how).map_err(|(_, errno)| errno)
    }

    /// The numbers of the sessions kept (those whose start was recorded), oldest first, and
    /// the number the next session takes (past any half-made one).
    fn sessions_and_next(&self) -> Result<(Vec<u64>, u64), String> {
        let out =
            run(self
                .store_git()
                .args(["for-each-ref", "--format=%(refname)", "refs/kennel/"]))?;
        let mut numbers = Vec::new();
        let mut next = 1;
        for rest in out.lines().filter_map(|r| r.strip_prefix("refs/kennel/")) {
            let mut parts = rest.splitn(2, '/');
            let (Some(n), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            next = next.max(n + 1);
            if kind == "start" {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        numbers.dedup();
        Ok((numbers, next))
    }

    /// The numbers of the sessions kept, oldest first.
    fn sessions(&self) -> Result<Vec<u64>, String> {
        Ok(self.sessions_and_next()?.0)
    }

    /// The number of the next session.
    fn next_session(&self) -> Result<u64, String> {
        Ok(self.sessions_and_next()?.1)
    }

    /// Records the workspace as session `n`'s `kind` (`start` or `end`), with `subject` as
    /// its commit's first line.
    /// The workspace as it is now, to be kept with [`Store::record`] as `keep` (session,
    /// `start` or `end`), whose history is kept first: its files then need not be written
    /// again. Its files' tree also records the files at the paths of `also` (a tree) that
    /// the workspace's rules now ignore, so that an undo replaces none it did not record.
    fn capture(&self, keep: Option<(u64, &str)>, also: Option<&str>) -> Result<Snapshot, String> {
        let refs = || -> Result<Refs, String> {
            let refs = self.read_refs()?;
            if let Some((n, kind)) = keep {
                self.keep_history(n, kind, &refs);
            }
            Ok(refs)
        };
        let files = || -> Result<String, String> {
            self.record_files(also)?;
            Ok(run(self.tree_git().arg("write-tree"))?.trim().to_string())
        };
        // The first time, the history first: `git add` then finds most files' objects
        // there and writes none. Later, both at once (two processes of git), joined before
        // the sandbox starts.
        let (files, refs) = if self.sessions_kept() {
            std::thread::scope(|scope| {
                let refs = scope.spawn(refs);
                let files = files();
                let refs = refs
                    .join()
                    .unwrap_or_else(|_| Err("reading the refs failed".into()));
                (files, refs)
            })
        } else {
            let refs = refs();
            (files(), refs)
        };
        Ok(Snapshot {
            files: files?,
            refs: refs?,
        })
    }

    /// Keeps `snap` as session `n`'s `kind` (`start` or `end`), with `subject` as the first
    /// line of its commit.
    fn record(&self, n: u64, kind: &str, snap: &Snapshot, subject: &str) -> Result<(), String> {
        // One commit whose tree holds `files` and `refs`, made and named by fast-import.
        let refs = snap.refs.text();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let subject = subject.replace('\n', " ");
        let stream = format!(
            "commit refs/kennel/{n}/{kind}\ncommitter kennel <kennel@localhost> {now} +0000\n\
             data {}\n{subject}\nM 040000 {} files\nM 100644 inline refs\ndata {}\n{refs}\n\
             done\n",
            subject.len(),
            snap.files,
            refs.len()
        );
        checked(feed(
            self.store_git()
                .args(["fast-import", "--quiet", "--force", "--done"]),
            stream.as_bytes(),
        ))
        .map(|_| ())
    }

    /// The history `refs` reach, kept under `refs/kennel/N/KIND-refs/`: made at once when
    /// the store has every tip already (the usual case: nothing new since the last
    /// checkpoint); otherwise what is new is fetched from the repository.
    fn keep_history(&self, n: u64, kind: &str, refs: &Refs) {
        if refs.refs.is_empty() {
            return;
        }
        // The refs made at once when the store has every tip: `update-ref` refuses an
        // object it lacks, and an object of the store came whole (by a fetch, which checks
        // that all a tip reaches came too, or by `write-tree`).
        let made: String = refs
            .refs
            .iter()
            .map(|(name, oid)| {
                let rest = name.strip_prefix("refs/").unwrap_or(name);
                format!("update refs/kennel/{n}/{kind}-refs/{rest} {oid}\n")
            })
            .collect();
        if self.update_refs(&made).is_ok() {
            return;
        }
        let history = format!("+refs/*:refs/kennel/{n}/{kind}-refs/*");
        let fetched = self
            .store_git()
            .args([
                "fetch",
                "-q",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-auto-gc",
                "--no-recurse-submodules",
            ])
            .arg(&self.git.git_dir)
            .arg(&history)
            .output();
        match fetched {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "kennel: warning: the repository's history could not be read into the \
                 checkpoint (its refs are recorded, not the commits they reach): {}",
                shown(
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .next()
                        .unwrap_or_default()
                )
            ),
            Err(e) => eprintln!("kennel: warning: cannot run git: {e}"),
        }
    }

    /// Whether the store keeps any session yet (a first checkpoint copies the history).
    fn sessions_kept(&self) -> bool {
        self.repo.join("packed-refs").exists()
            || fs::read_dir(self.repo.join("refs/kennel")).is_ok_and(|mut d| d.next().is_some())
    }

    fn update_refs(&self, input: &str) -> Result<(), String> {
        checked(feed(
            self.store_git().args(["update-ref", "--stdin"]),
            input.as_bytes(),
        ))
        .map(|_| ())
    }

    /// The workspace's files into kennel's index: all that git does not ignore, and those of
    /// `also`'s paths that exist.
    fn record_files(&self, also: Option<&str>) -> Result<(), String> {
        self.write_excludes();
        let add = self
            .tree_git()
            .args(["add", "-A", "--ignore-errors", "--", "."])
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        // A path git cannot add (unreadable, an empty repository inside) is one error line,
        // and the others are still added: said, not fatal. Anything else is.
        let errors = String::from_utf8_lossy(&add.stderr);
        let fatal = errors
            .lines()
            .find(|l| l.starts_with("fatal:") && !l.contains("adding files failed"));
        if let Some(fatal) = fatal.filter(|_| !add.status.success()) {
            return Err(format!("git add failed: {}", shown(fatal)));
        }
        let skipped: Vec<&str> = errors.lines().filter(|l| l.starts_with("error:")).collect();
        if let Some(first) = skipped.first() {
            eprintln!(
                "kennel: warning: {} path(s) of the workspace are not in the checkpoint ({})",
                skipped.len(),
                shown(first.trim_start_matches("error: "))
            );
        }
        let Some(tree) = also else {
            return Ok(());
        };
        let listed = self
            .store_git()
            .args(["ls-tree", "-r", "-z", "--name-only", tree])
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let ignored: Vec<&[u8]> = listed
            .stdout
            .split(|b| *b == 0)
            .filter(|p| {
                !p.is_empty()
                    && fs::symlink_metadata(
                        self.root
                            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(p)),
                    )
                    .is_ok()
            })
            .collect();
        if ignored.is_empty() {
            return Ok(());
        }
        // Paths git cannot add are left out, as above.
        let _ = feed(
            self.tree_git().args([
                "add",
                "-f",
                "--ignore-errors",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                "--literal-pathspecs",
            ]),
            &ignored.join(&b'\0'),
        );
        Ok(())
    }

    /// The repository's own `info/exclude` (empty when there is none or it is not a plain
    /// file).
    fn repository_excludes(&self) -> Vec<u8> {
        crate::files::read_file_no_link(
            &self.git.common_dir.join("info/exclude"),
            crate::files::MAX_CONFIG,
        )
        .unwrap_or_default()
    }

    /// The workspace's ignore files, for the store: `.gitignore` files are read from the
    /// work tree, the repository's `info/exclude` and your global `core.excludesFile` are
    /// copied into the store's `info/exclude`.
    fn write_excludes(&self) {
        let mut text = self.repository_excludes();
        let global = self.global_excludes.get_or_init(|| {
            let out = Command::new("git")
                .args(["config", "--global", "--path", "--get", "core.excludesFile"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let file = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !file.is_empty()).then(|| PathBuf::from(file))
        });
        if let Some(file) = global {
            text.push(b'\n');
            text.extend(fs::read(file).unwrap_or_default());
        }
        let path = self.repo.join("info/exclude");
        if fs::read(&path).ok().as_ref() != Some(&text) {
            let _ = fs::write(path, text);
        }
    }

    /// The repository's refs and HEAD; none, said, where git cannot read them (a sandbox
    /// broke `.git/HEAD` or the refs): the files are still recorded.
    fn read_refs(&self) -> Result<Refs, String> {
        let listing = match run(self
            .refs_git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"]))
        {
            Ok(listing) => listing,
            Err(e) => {
                eprintln!(
                    "kennel: warning: the repository's refs could not be read (recorded as \
                     none): {}",
                    e.lines().next().unwrap_or_default()
                );
                return Ok(Refs::default());
            }
        };
        let refs = listing
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(oid, name)| (name.to_string(), oid.to_string()))
            .collect();
        // HEAD as the file says, when it says it plainly; git otherwise.
        let file = crate::files::read_file_no_link(&self.git.git_dir.join("HEAD"), 4096)
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
            .unwrap_or_default();
        let plain = file
            .strip_prefix("ref: refs/")
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b > b' ' && b != 0x7f))
            || ((file.len() == 40 || file.len() == 64)
                && file.bytes().all(|b| b.is_ascii_hexdigit()));
        if plain {
            return Ok(Refs { head: file, refs });
        }
        let head = match run(self.refs_git().args(["symbolic-ref", "-q", "HEAD"])) {
            Ok(name) => format!("ref: {}", name.trim()),
            Err(_) => run(self
                .refs_git()
                .args(["rev-parse", "-q", "--verify", "HEAD"]))
            .map(|o| o.trim().to_string())
            .unwrap_or_default(),
        };
        Ok(Refs { head, refs })
    }

    /// Session `n`'s snapshot of `kind`, if kept.
    fn load(&self, n: u64, kind: &str) -> Result<Option<Snapshot>, String> {
        let name = format!("refs/kennel/{n}/{kind}");
        let Ok(commit) = run(self
            .store_git()
            .args(["rev-parse", "-q", "--verify", &name]))
        else {
            return Ok(None);
        };
        let commit = commit.trim().to_string();
        let files = run(self
            .store_git()
            .args(["rev-parse", &format!("{commit}:files")]))?
        .trim()
        .to_string();
        let text = run(self
            .store_git()
            .args(["cat-file", "blob", &format!("{commit}:refs")]))?;
        Ok(Some(Snapshot {
            files,
            refs: Refs::parse(&text),
        }))
    }

    /// What changed from `a` to `b`, in one line.
    fn summary(&self, a: &Snapshot, b: &Snapshot, n: u64) -> Result<String, String> {
        // Raw lines (`:MODE MODE OID OID STATUS\tPATH`) then numstat lines (`+\t-\tPATH`).
        let diff = if a.files == b.files {
            String::new()
        } else {
            run(self.store_git().args([
                "diff-tree",
                "-r",
                "--no-renames",
                "--raw",
                "--numstat",
                &a.files,
                &b.files,
            ]))?
        };
        let (mut added, mut changed, mut deleted) = (0, 0, 0);
        let (mut plus, mut minus) = (0u64, 0u64);
        for line in diff.lines() {
            if let Some(raw) = line.strip_prefix(':') {
                let status = raw.split('\t').next().and_then(|m| m.split(' ').nth(4));
                match status.and_then(|s| s.chars().next()) {
                    Some('A') => added += 1,
                    Some('D') => deleted += 1,
                    Some(_) => changed += 1,
                    None => {}
                }
            } else {
                let mut parts = line.split('\t');
                plus += parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                minus += parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            }
        }
        let mut parts = Vec::new();
        let files = added + changed + deleted;
        if files > 0 {
            parts.push(format!(
                "{files} file{} ({added} added, {changed} changed, {deleted} deleted; +{plus} -{minus} lines)",
                plural(files)
            ));
        }
        let moves = ref_moves(&a.refs, &b.refs);
        parts.extend(moves.summary());
        let commits = if a.refs.refs == b.refs.refs {
            0
        } else {
            self.new_commits(a, b, n)
        };
        if commits > 0 {
            parts.push(format!("{commits} new commit{}", plural(commits)));
        }
        if a.refs.head != b.refs.head {
            parts.push("HEAD moved".into());
        }
        Ok(if parts.is_empty() {
            "nothing changed".into()
        } else {
            parts.join(", ")
        })
    }

    /// Commits reachable from `b`'s refs and not from `a`'s (those the store holds).
    fn new_commits(&self, a: &Snapshot, b: &Snapshot, n: u64) -> usize {
        let _ = n;
        let mut input = String::new();
        for oid in b.refs.refs.values() {
            input.push_str(oid);
            input.push('\n');
        }
        for oid in a.refs.refs.values() {
            input.push('^');
            input.push_str(oid);
            input.push('\n');
        }
        checked(feed(
            self.store_git()
                .args(["rev-list", "--count", "--ignore-missing", "--stdin"]),
            input.as_bytes(),
        ))
        .ok()
        .and_then(|o| o.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Drops the sessions older than the newest `keep`, and what half-made ones left.
    fn drop_old(&self, keep: usize) -> Result<usize, String> {
        let sessions = self.sessions()?;
        let old = sessions.len().saturating_sub(keep);
        let mut input = String::new();
        let listing =
            run(self
                .store_git()
                .args(["for-each-ref", "--format=%(refname)", "refs/kennel/"]))?;
        for name in listing.lines() {
            let number = name
                .strip_prefix("refs/kennel/")
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse::<u64>().ok());
            // The older sessions, and refs of a session whose start was never recorded
            // (its checkpoint failed half-way; none is being made: the caller holds the
            // store's lock).
            if number.is_some_and(|n| !sessions[old..].contains(&n)) {
                input.push_str(&format!("delete {name}\n"));
            }
        }
        if !input.is_empty() {
            self.update_refs(&input)?;
        }
        Ok(old)
    }
}

impl Refs {
    fn text(&self) -> String {
        let mut text = format!("HEAD {}\n", self.head);
        for (name, oid) in &self.refs {
            text.push_str(&format!("{oid} {name}\n"));
        }
        text
    }

    fn parse(text: &str) -> Refs {
        let mut refs = Refs::default();
        for line in text.lines() {
            if let Some(head) = line.strip_prefix("HEAD ") {
                refs.head = head.to_string();
            } else if let Some((oid, name)) = line.split_once(' ') {
                refs.refs.insert(name.to_string(), oid.to_string());
            }
        }
        refs
    }
}

/// How the refs moved between two snapshots.
struct RefMoves {
    created: Vec<String>,
    moved: Vec<String>,
    deleted: Vec<String>,
}

fn ref_moves(a: &Refs, b: &Refs) -> RefMoves {
    let mut moves = RefMoves {
        created: Vec::new(),
        moved: Vec::new(),
        deleted: Vec::new(),
    };
    for (name, oid) in &b.refs {
        match a.refs.get(name) {
            None => moves.created.push(name.clone()),
            Some(old) if old != oid => moves.moved.push(name.clone()),
            Some(_) => {}
        }
    }
    for name in a.refs.keys() {
        if !b.refs.contains_key(name) {
            moves.deleted.push(name.clone());
        }
    }
    moves
}

impl RefMoves {
    fn summary(&self) -> Vec<String> {
        let mut parts = Vec::new();
        for (list, what) in [
            (&self.created, "created"),
            (&self.moved, "moved"),
            (&self.deleted, "deleted"),
        ] {
            if !list.is_empty() {
                let names: Vec<String> = list.iter().map(|r| short_ref(r)).collect();
                parts.push(format!("{what} {}", shown(&names.join(" "))));
            }
        }
        parts
    }
}

/// `main` for `refs/heads/main`, `tag v1` for a tag; other refs by their full name.
fn short_ref(name: &str) -> String {
    if let Some(branch) = name.strip_prefix("refs/heads/") {
        format!("branch {branch}")
    } else if let Some(tag) = name.strip_prefix("refs/tags/") {
        format!("tag {tag}")
    } else {
        name.to_string()
    }
}

/// A line of a diff for a terminal: tabs and backslashes as they are (it is code), every
/// other control character and the bidirectional overrides as visible escapes.
fn terminal_safe(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c == '\t' || c == '\\' {
            out.push(c);
        } else {
            let one = c.to_string();
            out.push_str(&shown(&one));
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// git with nothing of the caller's git environment or config: no system or global config
/// (no filters, fsmonitor or pager settings), hooks off, automatic maintenance off.
fn plain_git() -> Command {
    let mut cmd = Command::new("git");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "kennel")
        .env("GIT_AUTHOR_EMAIL", "kennel@localhost")
        .env("GIT_COMMITTER_NAME", "kennel")
        .env("GIT_COMMITTER_EMAIL", "kennel@localhost")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.untrackedCache=false",
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            "-c",
            "advice.addEmbeddedRepo=false",
            "-c",
            "core.quotePath=false",
            "-c",
            "fetch.writeCommitGraph=false",
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "protocol.file.allow=always",
        ])
        .stdin(Stdio::null());
    cmd
}

fn checked(out: std::io::Result<Output>) -> Result<String, String> {
    let out = out.map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(shown(String::from_utf8_lossy(&out.stderr).trim()).into_owned())
    }
}

/// Runs `cmd` with `input` on its standard input (written from a thread, so that a large
/// input and a large output cannot block each other), its output collected.
fn feed(cmd: &mut Command, input: &[u8]) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    std::thread::scope(|scope| {
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                let _ = stdin.write_all(input);
            });
        }
        child.wait_with_output()
    })
}

fn run(cmd: &mut Command) -> Result<String, String> {
    checked(cmd.output())
}

/// Where the store of `ctx`'s workspace is (`None` outside a repository, or where kennel's
/// state folder lies inside the workspace, which the sandbox can write).
fn store_dir(ctx: &Context) -> Option<PathBuf> {
    ctx.workspace.git.as_ref()?;
    let dir = crate::said::workspace_state(ctx, "checkpoints");
    (!dir.starts_with(&ctx.workspace.root)).then_some(dir)
}

/// Marks a sandbox running in `ctx`'s workspace (every session, with a checkpoint or not)
/// until the value is dropped: `kennel undo` refuses meanwhile.
pub fn running(ctx: &Context) -> Option<Running> {
    let dir = store_dir(ctx)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(dir.join("running"))
        .ok()?;
    Flock::lock(file, FlockArg::LockShared).ok().map(Running)
}

/// A session's checkpoint, taken at its start.
pub struct Session {
    store: Store,
    n: u64,
    start: Snapshot,
    /// The repository's `info/exclude` at the start: what checkpoints leave out.
    exclude: Vec<u8>,
    /// How many sessions are kept (`checkpoint-keep`).
    keep: usize,
}

/// Takes the checkpoint of a session starting with `profile`; `None` (said why) when none
/// can be taken: the session runs without.
pub fn begin(ctx: &Context, policy: &Policy) -> Option<Session> {
    let profile = &policy.profile;
    let attempt = || -> Result<Option<Session>, String> {
        let Some(store) = Store::open(ctx)? else {
            return Ok(None);
        };
        // A store the sandbox could write could be made to lie, or to run code through
        // its git config when kennel uses it outside.
        if let Some(rule) = policy.paths.iter().find(|r| {
            r.access == kennel_policy::Access::ReadWrite && store.dir.starts_with(&r.path)
        }) {
            return Err(format!(
                "its store {} is inside {}, which the sandbox can write ({}); set \
                 XDG_STATE_HOME elsewhere",
                shown_path(&store.dir),
                shown_path(&rule.path),
                shown(&rule.origin.source)
            ));
        }
        let _guard = store
            .lock("write", FlockArg::LockExclusive)
            .map_err(|e| format!("cannot lock the checkpoint store: {e}"))?;
        let n = store.next_session()?;
        let start = store.capture(Some((n, "start")), None)?;
        store.record(n, "start", &start, &format!("profile {profile}"))?;
        let exclude = store.repository_excludes();
        Ok(Some(Session {
            store,
            n,
            start,
            exclude,
            keep: policy.checkpoint_keep.unwrap_or(KEEP),
        }))
    };
    match attempt() {
        Ok(session) => session,
        Err(e) => {
            eprintln!("kennel: warning: no checkpoint of the workspace was taken: {e}");
            None
        }
    }
}

/// After the session: its end snapshot and the line that says what changed.
pub fn end(session: Session) {
    let Session {
        store,
        n,
        start,
        exclude,
        keep,
    } = session;
    let attempt = || -> Result<String, String> {
        let _guard = store
            .lock("write", FlockArg::LockExclusive)
            .map_err(|e| format!("cannot lock the checkpoint store: {e}"))?;
        let end = store.capture(Some((n, "end")), None)?;
        let mut summary = store.summary(&start, &end, n)?;
        // What checkpoints leave out was changed (where a sandbox can write it): said, so
        // that a file later left out of every checkpoint is not a surprise.
        if store.repository_excludes() != exclude {
            let part = "changed .git/info/exclude (files it names are left out of checkpoints)";
            summary = if summary == "nothing changed" {
                part.to_string()
            } else {
                format!("{summary}, {part}")
            };
        }
        // The summary is the end's subject, for `kennel sessions`.
        store.record(n, "end", &end, &summary)?;
        if n > keep as u64 {
            store.drop_old(keep)?;
        }
        Ok(summary)
    };
    match attempt() {
        Ok(summary) if summary == "nothing changed" => {}
        Ok(summary) => eprintln!(
            "kennel: session {n} changed {summary}; `kennel diff {n}` shows it, `kennel undo {n}` undoes it"
        ),
        Err(e) => eprintln!("kennel: warning: the session's end was not recorded: {e}"),
    }
}

fn open_existing(ctx: &Context) -> Result<Store, String> {
    Store::open(ctx)?.ok_or_else(|| {
        "no checkpoints here: kennel keeps them for git repositories (run it inside one)"
            .to_string()
    })
}

fn pick(store: &Store, session: Option<u64>) -> Result<u64, String> {
    let sessions = store.sessions()?;
    match session {
        Some(n) if sessions.contains(&n) => Ok(n),
        Some(n) => Err(format!(
            "no session {n} kept for this repository; `kennel sessions` lists them"
        )),
        None => sessions.last().copied().ok_or_else(|| {
            "no session recorded for this repository yet (agent profiles take a checkpoint \
             at start; `kennel run --checkpoint` for others)"
                .to_string()
        }),
    }
}

/// `kennel sessions [--prune]`.
pub fn list(ctx: &Context, prune: bool, keep: usize) -> Result<(), String> {
    let store = open_existing(ctx)?;
    if prune {
        let _guard = store
            .lock("write", FlockArg::LockExclusive)
            .map_err(|e| format!("cannot lock the checkpoint store: {e}"))?;
        let dropped = store.drop_old(keep)?;
        run(store
            .store_git()
            .args(["gc", "-q", "--prune=now"])
            .arg("--no-detach"))
        .or_else(|_| run(store.store_git().args(["gc", "-q", "--prune=now"])))?;
        println!(
            "dropped {dropped} session(s), kept the newest {keep}; unreferenced objects freed"
        );
    }
    let listing = run(store.store_git().args([
        "for-each-ref",
        "--format=%(refname)\t%(committerdate:format:%Y-%m-%d %H:%M)\t%(contents:subject)",
        "refs/kennel/",
    ]))?;
    let mut rows: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for line in listing.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(name), Some(date), Some(subject)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some((n, kind)) = name
            .strip_prefix("refs/kennel/")
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        let row = rows.entry(n).or_default();
        match kind {
            "start" => {
                row.0 = date.to_string();
                row.1 = subject.trim_start_matches("profile ").to_string();
            }
            "end" => row.2 = subject.to_string(),
            _ => {}
        }
    }
    if rows.is_empty() {
        println!("no sessions recorded for this repository");
    }
    for (n, (date, profile, summary)) in rows {
        let summary = if summary.is_empty() {
            "(did not end: killed, or still running)".to_string()
        } else {
            summary
        };
        println!("{n:>4}  {date}  {:<12}  {summary}", shown(&profile));
    }
    Ok(())
}

/// `kennel diff [N]`: what session N changed (to the workspace now when it did not end).
pub fn diff(ctx: &Context, session: Option<u64>) -> Result<(), String> {
    let store = open_existing(ctx)?;
    let n = pick(&store, session)?;
    let start = store
        .load(n, "start")?
        .ok_or_else(|| format!("session {n} has no start checkpoint"))?;
    let end = match store.load(n, "end")? {
        Some(end) => end,
        None => {
            println!("session {n} did not end (killed, or still running): compared with the workspace now");
            let _guard = store
                .lock("write", FlockArg::LockExclusive)
                .map_err(|e| format!("cannot lock the checkpoint store: {e}"))?;
            let end = store.capture(Some((n, "end")), None)?;
            store.record(n, "end", &end, "(the workspace when kennel diff looked)")?;
            end
        }
    };
    println!("session {n}: {}", store.summary(&start, &end, n)?);
    if start.refs.head != end.refs.head {
        println!(
            "HEAD: {} -> {}",
            shown(&start.refs.head),
            shown(&end.refs.head)
        );
    }
    let moves = ref_moves(&start.refs, &end.refs);
    for name in &moves.created {
        println!("created {} at {}", shown(name), end.refs.refs[name]);
    }
    for name in &moves.moved {
        println!(
            "moved {} from {} to {}",
            shown(name),
            start.refs.refs[name],
            end.refs.refs[name]
        );
    }
    for name in &moves.deleted {
        println!("deleted {} (was {})", shown(name), start.refs.refs[name]);
    }
    // The files' diff: what the sandbox wrote, shown to a terminal with its control
    // characters escaped (an escape sequence in a file must not drive your terminal); to a
    // pipe or a file byte for byte, as a patch.
    let to_terminal = std::io::stdout().is_terminal();
    let mut child = store
        .store_git()
        .args([
            "--no-pager",
            "diff",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            "--stat",
            "-p",
            &start.files,
            &end.files,
        ])
        .stdin(Stdio::null())
        .stdout(if to_terminal {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if let Some(out) = child.stdout.take() {
        let mut stdout = std::io::stdout().lock();
        let mut reader = std::io::BufReader::new(out);
        let mut line = Vec::new();
        while std::io::BufRead::read_until(&mut reader, b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line);
            let body = text.strip_suffix('\n').unwrap_or(&text);
            if writeln!(stdout, "{}", terminal_safe(body)).is_err() {
                break;
            }
            line.clear();
        }
    }
    let status = child.wait().map_err(|e| format!("cannot run git: {e}"))?;
    if !status.success() {
        return Err("git diff failed".into());
    }
    Ok(())
}

/// `kennel undo [N] [--dry-run]`: the workspace's files and refs back to session N's start.
pub fn undo(ctx: &Context, session: Option<u64>, dry_run: bool) -> Result<(), String> {
    let store = open_existing(ctx)?;
    let n = pick(&store, session)?;
    let Ok(_alone) = store.lock("running", FlockArg::LockExclusiveNonblock) else {
        return Err(format!(
            "a sandbox is running in {}: undo once it has ended (nothing was changed)",
            shown_path(&store.root)
        ));
    };
    let _guard = store
        .lock("write", FlockArg::LockExclusive)
        .map_err(|e| format!("cannot lock the checkpoint store: {e}"))?;
    if let Some(link) = link_in_git_dirs(&store.git) {
        return Err(format!(
            "{} is a link (a sandbox may have made it, to send what an undo writes \
             elsewhere): kennel does not follow it; look at it, remove it, and undo again \
             (nothing was changed)",
            shown_path(&link)
        ));
    }
    let target = store
        .load(n, "start")?
        .ok_or_else(|| format!("session {n} has no start checkpoint"))?;
    // The present, kept as a session of its own: the undo can be undone.
    let m = store.next_session()?;
    let present = if dry_run {
        store.capture(None, Some(&target.files))?
    } else {
        let present = store.capture(Some((m, "start")), Some(&target.files))?;
        store.record(m, "start", &present, &format!("profile undo of {n}"))?;
        present
    };
    let changes = changed_paths(&store, &present.files, &target.files)?;
    let moves = ref_moves(&present.refs, &target.refs);
    let verb = if dry_run { "would" } else { "will" };
    let mut said = Vec::new();
    for (status, path) in &changes {
        let what = match status {
            b'A' => "restore",
            b'D' => "delete",
            _ => "put back",
        };
        said.push(format!("{what} {}", kennel_policy::shown_bytes(path)));
    }
    for name in &moves.created {
        said.push(format!(
            "restore {} at {}",
            shown(name),
            target.refs.refs[name]
        ));
    }
    for name in &moves.moved {
        said.push(format!("set {} to {}", shown(name), target.refs.refs[name]));
    }
    for name in &moves.deleted {
        said.push(format!("delete {}", shown(name)));
    }
    if present.refs.head != target.refs.head {
        said.push(format!("set HEAD to {}", shown(&target.refs.head)));
    }
    if said.is_empty() {
        println!("the workspace is as it was at the start of session {n}: nothing to undo");
        if !dry_run {
            let same = Snapshot {
                files: present.files.clone(),
                refs: present.refs.clone(),
            };
            let _ = store.record(m, "end", &same, "nothing changed");
        }
        return Ok(());
    }
    println!(
        "undo of session {n} {verb} ({} change{}; ignored files are left alone):",
        said.len(),
        plural(said.len())
    );
    for line in &said {
        println!("  {line}");
    }
    if dry_run {
        return Ok(());
    }
    // The files: a two-tree read-tree from the present (the index, just refreshed) to the
    // target; git refuses to overwrite a file it does not track (an ignored file, here)
    // and never writes through a link.
    let files = store
        .tree_git()
        .args(["read-tree", "-m", "-u", &present.files, &target.files])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !files.status.success() {
        return Err(format!(
            "the files could not be put back (nothing was changed in them): {}",
            shown(String::from_utf8_lossy(&files.stderr).trim())
        ));
    }
    keep_ignored(&store, &present, &changes)?;
    restore_refs(&store, n, &present.refs, &target.refs)?;
    let end = store.capture(Some((m, "end")), None)?;
    let summary = store.summary(&present, &end, m)?;
    store.record(m, "end", &end, &summary)?;
    println!("undone; this undo is session {m}: `kennel undo {m}` undoes it");
    Ok(())
}

/// A file the undo removed because the target does not have it, but that the restored
/// ignore rules ignore, is an ignored file (a build output, a `.env`) that the target did
/// not record: it is written back from the present's snapshot, as it was.
fn keep_ignored(
    store: &Store,
    present: &Snapshot,
    changes: &[(u8, Vec<u8>)],
) -> Result<(), String> {
    let removed: Vec<&[u8]> = changes
        .iter()
        .filter(|(status, _)| *status == b'D')
        .map(|(_, path)| path.as_slice())
        .collect();
    if removed.is_empty() {
        return Ok(());
    }
    store.write_excludes();
    // Exit 1: none is ignored.
    let out = feed(
        store
            .tree_git()
            .args(["check-ignore", "--no-index", "--stdin", "-z"]),
        &removed.join(&b'\0'),
    )
    .map_err(|e| format!("cannot run git: {e}"))?;
    let ignored: Vec<&std::ffi::OsStr> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(std::os::unix::ffi::OsStrExt::from_bytes)
        .collect();
    if ignored.is_empty() {
        return Ok(());
    }
    let index = store.dir.join("index.ignored");
    let with_index = |cmd: &mut Command| {
        cmd.env("GIT_INDEX_FILE", &index);
    };
    let mut read = store.tree_git();
    with_index(&mut read);
    run(read.args(["read-tree", &present.files]))?;
    let mut checkout = store.tree_git();
    with_index(&mut checkout);
    let result = run(checkout.args(["checkout-index", "-f", "--"]).args(&ignored));
    let _ = fs::remove_file(&index);
    result.map(|_| ())
}

/// A ref name as git takes one (`git check-ref-format`), under `refs/`.
fn valid_ref_name(name: &str) -> bool {
    name.starts_with("refs/")
        && plain_git()
            .args(["check-ref-format", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// What changes from tree `a` to tree `b`: each path (bytes, as git has it) with its status
/// (`A`, `D`, `M`, `T`).
fn changed_paths(store: &Store, a: &str, b: &str) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let out = store
        .store_git()
        .args([
            "diff-tree",
            "-r",
            "--no-renames",
            "--name-status",
            "-z",
            a,
            b,
        ])
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(shown(String::from_utf8_lossy(&out.stderr).trim()).into_owned());
    }
    let mut fields = out.stdout.split(|b| *b == 0);
    let mut changes = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        if let Some(first) = status.first() {
            changes.push((*first, path.to_vec()));
        }
    }
    Ok(changes)
}

/// The first link in the repository's git folders where an undo writes (HEAD, refs, logs,
/// objects, packed-refs): a sandbox could have made one to send kennel's writes elsewhere
/// (another repository, a file of your home). git follows them; kennel refuses instead.
fn link_in_git_dirs(git: &GitDirs) -> Option<PathBuf> {
    let is_link =
        |p: &std::path::Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let mut bases = vec![git.git_dir.clone()];
    if git.common_dir != git.git_dir {
        bases.push(git.common_dir.clone());
    }
    let mut budget = 200_000usize;
    for base in &bases {
        for name in [
            "HEAD",
            "packed-refs",
            "index",
            "refs",
            "logs",
            "objects",
            "commondir",
            "ORIG_HEAD",
            "FETCH_HEAD",
        ] {
            let path = base.join(name);
            if is_link(&path) {
                return Some(path);
            }
        }
        // Every entry under refs and logs, and the folders of objects.
        let mut stack = vec![base.join("refs"), base.join("logs")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                budget = budget.saturating_sub(1);
                if budget == 0 {
                    return Some(dir);
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_symlink() {
                    return Some(entry.path());
                }
                if kind.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        if let Ok(entries) = fs::read_dir(base.join("objects")) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|k| k.is_symlink()) {
                    return Some(entry.path());
                }
            }
        }
    }
    None
}

/// Puts the refs and HEAD of the workspace's repository back to `target`, with the history
/// they reach (from the store), even where its objects were deleted.
fn restore_refs(store: &Store, n: u64, present: &Refs, target: &Refs) -> Result<(), String> {
    if present == target {
        return Ok(());
    }
    let common = &store.git.common_dir;
    for dir in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        fs::create_dir_all(common.join(dir))
            .map_err(|e| format!("cannot create {}: {e}", shown_path(&common.join(dir))))?;
    }
    let head = store.git.git_dir.join("HEAD");
    let readable = run(store.refs_git().args(["rev-parse", "--git-dir"])).is_ok();
    if !readable || !head.exists() {
        // git does not see a repository without a HEAD it can read: one is written, in
        // place of what is there (a regular file: links were refused before).
        let text = match target.head.strip_prefix("ref: ") {
            Some(name) if valid_ref_name(name) => format!("{}\n", target.head),
            _ => "ref: refs/heads/main\n".to_string(),
        };
        if fs::symlink_metadata(&head).is_ok_and(|m| m.is_file()) {
            fs::remove_file(&head).map_err(|e| format!("{}: {e}", shown_path(&head)))?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&head)
            .map_err(|e| format!("{}: {e}", shown_path(&head)))?;
        file.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", shown_path(&head)))?;
    }
    // The history: everything the target's refs reach, packed from the store and indexed
    // into the repository (no transport, nothing of the repository's config in between).
    let wanted: String = {
        let mut all: Vec<&String> = target.refs.values().collect();
        all.sort();
        all.dedup();
        all.iter().map(|oid| format!("{oid}\n")).collect()
    };
    if !wanted.is_empty() {
        let mut pack = store
            .store_git()
            .args(["pack-objects", "--stdout", "--revs", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let packed = pack.stdout.take().map_or_else(Stdio::null, Stdio::from);
        let index = store
            .workspace_git()
            .args(["index-pack", "--stdin"])
            .stdin(packed)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if let Some(mut stdin) = pack.stdin.take() {
            let _ = stdin.write_all(wanted.as_bytes());
        }
        let packed = checked(pack.wait_with_output());
        let indexed = checked(index.wait_with_output());
        if let Err(e) = packed.and(indexed) {
            return Err(format!(
                "the history of session {n}'s refs could not be put back: {e}"
            ));
        }
    }
    let mut input = String::new();
    for (name, oid) in &target.refs {
        if present.refs.get(name) != Some(oid) {
            input.push_str(&format!("update {name} {oid}\n"));
        }
    }
    for name in present.refs.keys() {
        if !target.refs.contains_key(name) {
            input.push_str(&format!("delete {name}\n"));
        }
    }
    if !input.is_empty() {
        checked(feed(
            store
                .workspace_git()
                .args(["update-ref", "--no-deref", "--create-reflog", "--stdin"]),
            input.as_bytes(),
        ))
        .map_err(|e| format!("the refs could not be put back: {e}"))?;
    }
    if present.head != target.head && !target.head.is_empty() {
        let set = match target.head.strip_prefix("ref: ") {
            Some(name) if !valid_ref_name(name) => {
                Err(format!("the recorded HEAD {} is not a branch", shown(name)))
            }
            Some(name) => run(store.workspace_git().args(["symbolic-ref", "HEAD", name])),
            None => {
                run(store
                    .workspace_git()
                    .args(["update-ref", "--no-deref", "HEAD", &target.head]))
            }
        };
        set.map_err(|e| format!("HEAD could not be put back: {e}"))?;
    }
    // Reflog entries of commits that are gone (made in the session, then deleted with the
    // repository's objects) would make `git fsck` fail: they are dropped.
    let _ = store
        .workspace_git()
        .args(["reflog", "expire", "--stale-fix", "--expire=never", "--all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    Ok(())
}
