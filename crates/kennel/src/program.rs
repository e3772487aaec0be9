//! Finding an agent's real program on PATH, past kennel's own shims.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A line in every shim that `kennel wrap` writes: such a file is kennel itself, not the
/// agent, and running it inside the sandbox would start kennel again.
pub const SHIM_MARKER: &str = "# kennel-shim";

/// The first executable `name` on `path` (a PATH value) that is not a kennel shim.
pub fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    // A folder named twice is looked in once: the answer would be the same.
    let mut seen: Vec<&str> = Vec::new();
    path.split(':')
        .filter(|dir| !dir.is_empty() && Path::new(dir).is_absolute())
        .filter(|dir| {
            let new = !seen.contains(dir);
            if new {
                seen.push(dir);
            }
            new
        })
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| is_executable(candidate) && !is_shim(candidate))
}

/// Where the command `program` (a path, or a name looked up on the caller's PATH past
/// kennel's shims) is on the host.
pub fn resolve(program: &std::ffi::OsStr, ctx: &kennel_policy::Context) -> Option<PathBuf> {
    let text = program.to_str()?;
    if text.contains('/') {
        let path = ctx.cwd.join(text);
        return is_executable(&path).then_some(path);
    }
    find_program(
        text,
        ctx.var("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin"),
    )
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A script with a line starting with [`SHIM_MARKER`] (alone, or followed by `:` or a space
/// and a comment, as the Nix wrappers write it). Only the first 4 KiB are read.
pub fn is_shim(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    // Room for the whole head from the start: one read, where an empty buffer is filled
    // by reads of growing size (eight for a binary of a few hundred kilobytes).
    let mut head = Vec::with_capacity(4096);
    if file.take(4096).read_to_end(&mut head).is_err() || !head.starts_with(b"#!") {
        return false;
    }
    String::from_utf8_lossy(&head).lines().any(|l| {
        l.strip_prefix(SHIM_MARKER)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', ' ', '\t']))
    })
}

/// For a program installed under the home (which is hidden inside), the folder to expose
/// read-only so that it can run: the nearest `node_modules` above it (an npm install, with the
/// packages it depends on beside it), else the nearest folder with `pyvenv.cfg` (a Python
/// virtualenv, as pipx makes), else its own folder. An interpreter that itself lives under
/// the home (a uv-managed Python, nvm's node) must be added to the profile.
pub fn install_root(program: &Path, home: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(program).ok()?;
    if !real.starts_with(home) {
        return None;
    }
    let parent = real.parent()?;
    let within = |dir: &&Path| dir.starts_with(home) && *dir != home;
    let npm = parent
        .ancestors()
        .take_while(within)
        .find(|dir| dir.file_name().is_some_and(|n| n == "node_modules"));
    let venv = || {
        parent
            .ancestors()
            .take(4)
            .take_while(within)
            .find(|dir| dir.join("pyvenv.cfg").is_file())
    };
    Some(npm.or_else(venv).unwrap_or(parent).to_path_buf())
}

/// Where version managers keep the interpreters they install, below the home, and how
/// many folders below that an installation's prefix is (`.pyenv/versions/3.11.4`,
/// `.asdf/installs/nodejs/20.1.0`). Only these are exposed for an interpreter: a prefix
/// elsewhere under the home (`~/.local` of a `pip --user`) may hold what is not for the
/// sandbox (`~/.local/share/keyrings`), and a file of the workspace (a venv's `pyvenv.cfg`,
/// a script's `#!` line, both writable by an earlier sandbox) must not choose what a later
/// one sees.
const MANAGED: &[(&str, usize)] = &[
    (".pyenv/versions", 1),
    (".local/share/uv/python", 1),
    (".rye/py", 1),
    (".nvm/versions/node", 1),
    (".local/share/fnm/node-versions", 1),
    (".fnm/node-versions", 1),
    (".volta/tools/image", 2),
    (".asdf/installs", 2),
    (".local/share/mise/installs", 2),
    (".rbenv/versions", 1),
    (".nodenv/versions", 1),
    (".rustup/toolchains", 1),
    ("miniconda3", 0),
    ("miniforge3", 0),
    ("anaconda3", 0),
];

/// Shim folders of version managers (a shim runs the manager, which reads its own folder
/// to choose the version): the manager's whole folder is needed.
const SHIMS: &[(&str, &str)] = &[
    (".pyenv/shims", ".pyenv"),
    (".asdf/shims", ".asdf"),
    (".local/share/mise/shims", ".local/share/mise"),
    (".volta/bin", ".volta"),
    (".rbenv/shims", ".rbenv"),
    (".nodenv/shims", ".nodenv"),
];

/// What a program needs to run that lies under the (hidden) home, to expose read-only: its
/// own installation ([`install_root`]) and the interpreter its `#!` line names, directly or
/// through `env NAME` on `path`, followed through links and through interpreters that are
/// scripts themselves, when a version manager installed it ([`MANAGED`], [`SHIMS`]). Each
/// with the reason `kennel explain` shows. The second list: interpreters under the home
/// that kennel does not expose (the user adds them to the config, or installs elsewhere).
pub fn runtime_paths(
    program: &Path,
    home: &Path,
    path: &str,
) -> (Vec<(PathBuf, String)>, Vec<PathBuf>) {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    let mut missing = Vec::new();
    let add = |dir: PathBuf, why: String, found: &mut Vec<(PathBuf, String)>| {
        if !found.iter().any(|(d, _)| *d == dir) {
            found.push((dir, why));
        }
    };
    if let Some(root) = install_root(program, home) {
        add(root, format!("where `{name}` is installed"), &mut found);
    }
    let mut next = fs::canonicalize(program).ok();
    // A script run by a script run by ...: a few levels are plenty.
    for _ in 0..4 {
        let Some(script) = next.take() else { break };
        let Some(interpreter) = shebang_interpreter(&script, path) else {
            break;
        };
        let shown = interpreter.display().to_string();
        if let Some(manager) = SHIMS
            .iter()
            .find(|(shims, _)| interpreter.parent() == Some(&home.join(shims)))
            .map(|(_, manager)| manager)
        {
            add(
                home.join(manager),
                format!("the version manager that runs `{name}`'s interpreter {shown}"),
                &mut found,
            );
            break;
        }
        let Ok(real) = fs::canonicalize(&interpreter) else {
            break;
        };
        if real.starts_with(home) {
            match managed_prefix(&real, home) {
                Some(prefix) => add(
                    prefix,
                    format!("the interpreter of `{name}` ({shown})"),
                    &mut found,
                ),
                None => missing.push(real.clone()),
            }
        }
        next = Some(real);
    }
    (found, missing)
}

/// The installation prefix of `interpreter` (a real path under `home`) when a version
/// manager put it there.
fn managed_prefix(interpreter: &Path, home: &Path) -> Option<PathBuf> {
    MANAGED.iter().find_map(|(root, depth)| {
        let root = home.join(root);
        let rest = interpreter.strip_prefix(&root).ok()?;
        let mut prefix = root;
        let mut parts = rest.components();
        for _ in 0..*depth {
            prefix.push(parts.next()?);
        }
        // Something below the prefix: the interpreter itself is not the prefix.
        parts.next().map(|_| prefix)
    })
}

/// The interpreter that a script's `#!` line names: its path, or for `#!/usr/bin/env
/// [-S] [VAR=value...] NAME`, NAME found on `path`. None for a binary.
fn shebang_interpreter(script: &Path, path: &str) -> Option<PathBuf> {
    let mut head = Vec::with_capacity(256);
    fs::File::open(script)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let first = PathBuf::from(words.next()?);
    if first.file_name().is_none_or(|n| n != "env") {
        return Some(first);
    }
    let name = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    // On PATH, shims included (a version manager's shim is what runs it).
    let mut seen: Vec<&str> = Vec::new();
    path.split(':')
        .filter(|dir| !dir.is_empty() && Path::new(dir).is_absolute())
        .filter(|dir| {
            let new = !seen.contains(dir);
            seen.push(dir);
            new
        })
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn exe(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn shims_on_path_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let shims = dir.path().join("shims");
        let real = dir.path().join("real");
        fs::create_dir_all(&shims).unwrap();
        fs::create_dir_all(&real).unwrap();
        exe(
            &shims.join("aider"),
            &format!("#!/bin/sh\n{SHIM_MARKER}\nexec kennel aider \"$@\"\n"),
        );
        exe(&real.join("aider"), "#!/bin/sh\necho real\n");
        // The Nix wrapper's form of the marker.
        let nix = dir.path().join("nix");
        fs::create_dir_all(&nix).unwrap();
        exe(
            &nix.join("aider"),
            &format!("#!/bin/sh\n{SHIM_MARKER}: aider runs through kennel (profile aider)\nexec kennel\n"),
        );
        // Not a marker: a longer word.
        exe(&nix.join("codex"), "#!/bin/sh\n# kennel-shimmer\n");
        assert!(is_shim(&nix.join("aider")));
        assert!(!is_shim(&nix.join("codex")));
        let path = format!("{}:{}", shims.display(), real.display());
        assert_eq!(find_program("aider", &path), Some(real.join("aider")));
        assert_eq!(find_program("nonexistent", &path), None);
    }

    #[test]
    fn interpreters_of_version_managers_are_found_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(dir.path()).unwrap();
        // pyenv's Python, and a virtualenv made with it (bin/python links to it).
        let py = home.join(".pyenv/versions/3.11.4");
        fs::create_dir_all(py.join("bin")).unwrap();
        exe(&py.join("bin/python3.11"), "\x7fELF");
        let venv = home.join("venvs/aider");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}/bin\n", py.display()),
        )
        .unwrap();
        std::os::unix::fs::symlink(py.join("bin/python3.11"), venv.join("bin/python3")).unwrap();
        exe(
            &venv.join("bin/aider"),
            &format!("#!{}/bin/python3\nimport aider\n", venv.display()),
        );
        let (found, missing) = runtime_paths(&venv.join("bin/aider"), &home, "/usr/bin:/bin");
        let dirs: Vec<&PathBuf> = found.iter().map(|(d, _)| d).collect();
        assert_eq!(dirs, vec![&venv, &py], "{found:?}");
        assert!(missing.is_empty());

        // nvm's node through `#!/usr/bin/env node` on PATH.
        let node = home.join(".nvm/versions/node/v20.11.0");
        fs::create_dir_all(node.join("bin")).unwrap();
        exe(&node.join("bin/node"), "\x7fELF");
        let npm = node.join("lib/node_modules/@anthropic-ai/claude-code");
        fs::create_dir_all(&npm).unwrap();
        exe(
            &npm.join("cli.js"),
            "#!/usr/bin/env -S node --no-warnings\n",
        );
        let path = format!("{}/bin:/usr/bin", node.display());
        let (found, _) = runtime_paths(&npm.join("cli.js"), &home, &path);
        assert!(found.iter().any(|(d, _)| *d == node), "{found:?}");

        // pyenv's shims: the manager's folder.
        fs::create_dir_all(home.join(".pyenv/shims")).unwrap();
        exe(&home.join(".pyenv/shims/python3"), "#!/usr/bin/env bash\n");
        let tool = home.join("tools/bin/tool");
        fs::create_dir_all(home.join("tools/bin")).unwrap();
        exe(&tool, "#!/usr/bin/env python3\n");
        let path = format!("{}/.pyenv/shims:/usr/bin", home.display());
        let (found, _) = runtime_paths(&tool, &home, &path);
        assert!(
            found.iter().any(|(d, _)| *d == home.join(".pyenv")),
            "{found:?}"
        );

        // An interpreter under the home that no version manager installed (a script of the
        // workspace could name any file): not exposed, but named.
        fs::create_dir_all(home.join(".local/bin")).unwrap();
        exe(&home.join(".local/bin/python3"), "\x7fELF");
        let script = home.join("project/run");
        fs::create_dir_all(home.join("project")).unwrap();
        exe(
            &script,
            &format!("#!{}/.local/bin/python3\n", home.display()),
        );
        let (found, missing) = runtime_paths(&script, &home, "/usr/bin");
        assert!(
            !found
                .iter()
                .any(|(d, _)| d.starts_with(home.join(".local"))),
            "{found:?}"
        );
        assert_eq!(missing, vec![home.join(".local/bin/python3")]);
    }

    #[test]
    fn install_roots_cover_npm_packages_and_virtualenvs() {
        let dir = tempfile::tempdir().unwrap();
        let home = fs::canonicalize(dir.path()).unwrap();
        let npm = home.join(".npm-global/lib/node_modules");
        fs::create_dir_all(npm.join("@openai/codex/bin")).unwrap();
        exe(
            &npm.join("@openai/codex/bin/codex.js"),
            "#!/usr/bin/env node\n",
        );
        let venv = home.join(".local/share/pipx/venvs/aider-chat");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        exe(&venv.join("bin/aider"), "#!/bin/sh\n");
        let other = home.join("bin/tool");
        fs::create_dir_all(home.join("bin")).unwrap();
        exe(&other, "#!/bin/sh\n");
        let root = |p: &Path| install_root(p, &home);
        assert_eq!(
            root(&npm.join("@openai/codex/bin/codex.js")),
            Some(npm.clone())
        );
        assert_eq!(root(&venv.join("bin/aider")), Some(venv.clone()));
        assert_eq!(root(&other), Some(home.join("bin")));
        assert_eq!(
            root(Path::new("/bin/sh")),
            None,
            "outside the home: nothing to add"
        );
    }
}
