//! Moving away what a session planted: into a folder of kennel's own, never deleted.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kennel_policy::shown_path;

use super::check::{Check, Report};
use super::QUARANTINE;

pub(super) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)
}

/// This check's own folder in a quarantine, created here: named after the time and
/// kennel's process, and new (`mkdir` fails on anything already there, a link included), in
/// a `kennel-quarantine` that is a real folder, never a link the sandbox left to send what
/// kennel moves somewhere else.
pub(super) fn make_quarantine(base: &Path) -> std::io::Result<PathBuf> {
    match fs::symlink_metadata(base) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is not a folder", shown_path(base)),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(base)?,
        Err(e) => return Err(e),
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let folder = base.join(format!("{stamp}-{}", std::process::id()));
    fs::create_dir(&folder)?;
    Ok(folder)
}

/// Moves `path` into the quarantine, keeping its path below it, and says so.
pub(super) fn quarantine(c: &Check, r: &mut Report, path: &Path, what: &str) {
    if r.no_moves {
        r.found.push(format!(
            "  remove {} yourself before you use git (kennel moves nothing while the \
             repository's .git is not the one it started with)",
            shown_path(path)
        ));
        return;
    }
    let folder = match &r.quarantine {
        Some(q) => Ok(q.clone()),
        None => make_quarantine(&c.git.common_dir.join(QUARANTINE)),
    };
    let folder = match folder {
        Ok(q) => {
            r.quarantine = Some(q.clone());
            q
        }
        Err(e) => {
            r.found.push(format!(
                "  could not make a quarantine folder in {} ({e}): remove {} yourself before \
                 you use git",
                shown_path(&c.git.common_dir),
                shown_path(path)
            ));
            return;
        }
    };
    // Below the quarantine, the path it had in the workspace (or its whole path, under
    // `outside/`, for a git dir elsewhere).
    let rel: PathBuf = match path.strip_prefix(c.root) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => Path::new("outside").join(
            path.components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect::<PathBuf>(),
        ),
    };
    let dest = folder.join(rel);
    let moved = dest
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::rename(path, &dest));
    match moved {
        Ok(()) => r.found.push(format!(
            "  moved {what} to {} (to undo: mv {} {})",
            shown_path(&dest),
            sh_quoted(&dest),
            sh_quoted(path)
        )),
        Err(e) => r.found.push(format!(
            "  could not move {what} {} away ({e}): remove it yourself before you use git",
            shown_path(path)
        )),
    }
}

/// A path for a command line the user may paste: escaped for the terminal ([`shown_path`]),
/// then single-quoted for the shell, so that a name chosen in the sandbox (`x'; rm -rf ~'`)
/// stays one word.
pub(super) fn sh_quoted(path: &Path) -> String {
    format!("'{}'", shown_path(path).replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_path_stays_one_word() {
        assert_eq!(sh_quoted(Path::new("/w/a b")), "'/w/a b'");
        assert_eq!(
            sh_quoted(Path::new("/w/x'; rm -rf ~; '")),
            r"'/w/x'\''; rm -rf ~; '\'''"
        );
    }
}
