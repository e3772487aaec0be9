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
