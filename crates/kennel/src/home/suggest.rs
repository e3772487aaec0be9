//! The config kennel suggests at exit for keeping what was written to the ephemeral home:
//! written by the TOML library (a name is one string, whatever it holds), and only ever
//! narrow (issue 17, item 7): never the home, a folder every tool shares, anything around
//! the workspace, nor where what is written runs or is trusted outside the sandbox.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kennel_policy::Policy;

/// The lines telling how to keep `files` (relative to the home): a config to paste, made by
/// the TOML library from narrow paths only (see [`keep_root`]).
pub(super) fn suggestions(policy: &Policy, config_name: &str, files: &[PathBuf]) -> Vec<String> {
    let workspace = policy.workspace.strip_prefix(&policy.home).ok();
    let bound: Vec<&Path> = policy
        .paths
        .iter()
        .filter(|r| r.path != policy.home)
        .filter_map(|r| r.path.strip_prefix(&policy.home).ok())
        .collect();
    // Folders are kept by binding them; a file directly in the home by copying it back
    // (an agent may replace it by rename, which a bound file does not allow).
    let mut dirs = BTreeSet::new();
    let mut loose = BTreeSet::new();
    let mut beside = 0;
    let mut trusted = 0;
    let mut unnamed = 0;
    for f in files {
        match keep_root(f, workspace, &bound) {
            Keep::Folder(k) => {
                dirs.insert(k);
            }
            Keep::File(k) => {
                loose.insert(k);
            }
            Keep::BesideWorkspace => beside += 1,
            Keep::Trusted => trusted += 1,
            Keep::Unsuitable => unnamed += 1,
        }
    }
    let mut lines = Vec::new();
    if !dirs.is_empty() || !loose.is_empty() {
        lines.push(format!(
            "to keep them, add to [profile.{}] in {config_name}:",
            policy.profile
        ));
    }
    if !dirs.is_empty() {
        let entries: Vec<String> = dirs
            .iter()
            .map(|k| format!("{{ path = {}, create = true }}", toml_string(k)))
            .collect();
        lines.push(format!("  read-write = [{}]", entries.join(", ")));
    }
    if !loose.is_empty() {
        let entries: Vec<String> = loose.iter().map(|k| toml_string(k)).collect();
        lines.push(format!("  copy-back = [{}]", entries.join(", ")));
    }
    if beside > 0 {
        lines.push(format!(
            "{beside} of them {} beside the workspace, outside it: kennel suggests no \
             folder around the workspace (it would open the neighbouring projects); write \
             what to keep inside the workspace",
            if beside == 1 { "is" } else { "are" }
        ));
    }
    if trusted > 0 {
        lines.push(format!(
            "{trusted} of them {} where programs outside the sandbox run or trust what is \
             written (your shell, PATH, editors, toolchains, desktop, credentials, kennel's own \
             config: ~/.bashrc, ~/bin, ~/.cargo, ~/.ssh, ...): kennel suggests keeping none \
             of it",
            if trusted == 1 { "is" } else { "are" }
        ));
    }
    if unnamed > 0 {
        lines.push(format!(
            "{unnamed} of them {} not suggested: {} name holds control characters or \
             bytes that are not UTF-8",
            if unnamed == 1 { "is" } else { "are" },
            if unnamed == 1 { "its" } else { "each" }
        ));
    }
    lines
}

/// `~/REL` as a TOML string, written by the TOML library: whatever the name holds, it
/// parses back as that one string.
fn toml_string(rel: &str) -> String {
    toml::Value::String(format!("~/{rel}")).to_string()
}

/// What to suggest for keeping a file of the home.
#[derive(Debug, PartialEq, Eq)]
enum Keep {
    /// A folder to bind read-write (relative to the home).
    Folder(String),
    /// The file itself, to copy back.
    File(String),
    /// Under a folder that holds the workspace: nothing is suggested.
    BesideWorkspace,
    /// Where what is written runs or is trusted outside the sandbox: nothing is suggested.
    Trusted,
    /// A name that kennel does not put in a suggestion.
    Unsuitable,
}

/// Files and folders of the home that run, or are trusted, outside the sandbox (shell
/// start-up files, desktop autostart, credentials, kennel's own config): what the sandbox
/// wrote there is never suggested for keeping.
const TRUSTED: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".login",
    ".logout",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".mkshrc",
    ".inputrc",
    ".xinitrc",
    ".xprofile",
    ".xsession",
    ".xsessionrc",
    ".Xresources",
    ".pam_environment",
    ".ssh",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".gitconfig",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".password-store",
    ".pki",
    ".mozilla",
    ".config/autostart",
    ".config/systemd",
    ".config/environment.d",
    ".config/fish",
    ".config/git",
    ".config/gh",
    ".config/gcloud",
    ".config/kennel",
    ".config/chromium",
    ".config/google-chrome",
    ".local/bin",
    ".local/share/applications",
    ".local/share/keyrings",
    ".local/share/systemd",
    ".local/state/kennel",
    // Code that runs outside: toolchains, editors' plugins, language start-up hooks,
    // desktop session scripts, package managers' settings (registries, credentials).
    ".bash_aliases",
    ".bash_functions",
    ".cargo",
    ".rustup",
    ".local/lib",
    ".local/share/nvim",
    ".local/share/kservices5",
    ".config/nvim",
    ".config/plasma-workspace",
    ".config/autostart-scripts",
    ".config/Code",
    ".config/direnv",
    ".config/pip",
    ".config/i3",
    ".config/sway",
    ".config/hypr",
    ".config/openbox",
    ".vim",
    ".emacs.d",
    ".vscode",
    ".vscode-server",
    ".oh-my-zsh",
    ".kde",
    ".kde4",
    ".m2",
    ".gradle",
    ".npm-global",
    ".pyenv",
    ".nvm",
    ".thunderbird",
];

/// File names directly in the home that are data an agent keeps (`~/.claude.json`): only
/// these are suggested for copy-back. Other files there (`~/.bash_aliases`, `~/.npmrc`,
/// `~/.vimrc`) are read by programs outside as settings or code.
const DATA_EXTENSIONS: &[&str] = &["json", "json5", "toml", "yaml", "yml"];

/// Folders shared by every tool: never suggested whole.
const SHARED: &[&str] = &[
    ".cache",
    ".config",
    ".local",
    ".local/share",
    ".local/state",
];

/// The narrowest useful thing to keep for the file `rel` of the home: `~/.tool` for
/// `~/.tool/x`, one level deeper under `.cache`, `.config`, `.local/share` and
/// `.local/state`; never the home, a folder shared by every tool, a folder holding the
/// workspace (`workspace`, relative to the home) or one of the policy's own paths
/// (`bound`), nor anything around the workspace: that would open the user's other projects.
fn keep_root(rel: &Path, workspace: Option<&Path>, bound: &[&Path]) -> Keep {
    let mut parts = Vec::new();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Keep::Unsuitable;
        };
        match name.to_str() {
            // Nothing the terminal would act on (a backslash is fine: the TOML library
            // escapes it, and it is shown doubled).
            Some(n) if !n.is_empty() && kennel_policy::shown(n) == n.replace('\\', "\\\\") => {
                parts.push(n);
            }
            _ => return Keep::Unsuitable,
        }
    }
    if parts.is_empty() {
        return Keep::Unsuitable;
    }
    if let Some(ws) = workspace {
        let mut ws_parts = ws.components();
        if ws.components().count() > 1
            && ws_parts.next().map(|c| c.as_os_str()) == Some(std::ffi::OsStr::new(parts[0]))
        {
            return Keep::BesideWorkspace;
        }
    }
    if TRUSTED.iter().any(|t| rel.starts_with(t)) {
        return Keep::Trusted;
    }
    // Only what a tool keeps for itself: a dot-folder of the home (`~/.tool`), or a data
    // file directly in it. Not a plain folder (`~/bin` is on PATH, `~/go` holds binaries
    // too), not a settings or start-up file: what the next session writes there would run,
    // or be trusted, outside.
    if !parts[0].starts_with('.') {
        return Keep::Trusted;
    }
    if parts.len() == 1 {
        let data = Path::new(parts[0])
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| DATA_EXTENSIONS.contains(&e));
        if !data {
            return Keep::Trusted;
        }
    }
    let mut n = match parts[0] {
        ".cache" | ".config" => 2,
        ".local" => 3,
        _ => 1,
    };
    let too_wide = |n: usize| {
        let prefix = parts[..n].join("/");
        SHARED.contains(&prefix.as_str())
            || workspace.is_some_and(|w| w.starts_with(&prefix))
            || bound.iter().any(|b| b.starts_with(&prefix))
    };
    while n < parts.len() && too_wide(n) {
        n += 1;
    }
    if n >= parts.len() {
        Keep::File(parts.join("/"))
    } else {
        Keep::Folder(parts[..n].join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(rel: &str) -> Keep {
        keep_root(
            Path::new(rel),
            Some(Path::new("src/project")),
            &[Path::new(".claude")],
        )
    }

    #[test]
    fn keep_roots_name_the_tools_folder() {
        assert_eq!(keep(".tool/state/x.json"), Keep::Folder(".tool".into()));
        assert_eq!(keep(".cache/pip/http/a"), Keep::Folder(".cache/pip".into()));
        assert_eq!(
            keep(".local/share/app/db"),
            Keep::Folder(".local/share/app".into())
        );
        assert_eq!(keep(".claude.json"), Keep::File(".claude.json".into()));
    }

    #[test]
    fn nothing_that_runs_or_is_trusted_outside_is_suggested() {
        for rel in [
            ".bashrc",
            ".ssh/known_hosts",
            ".config/kennel/config.toml",
            ".config/autostart/x.desktop",
            ".local/bin/git",
            ".local/share/applications/a.desktop",
        ] {
            assert_eq!(keep(rel), Keep::Trusted, "{rel}");
        }
        // Structure, not only the list: a plain folder of the home (on PATH, or holding
        // binaries), a settings or start-up file directly in it.
        for rel in [
            "notes.txt",
            "bin/git",
            "go/bin/x",
            ".bashrc-notes",
            ".bash_aliases",
            ".npmrc",
            ".cargo/config.toml",
            ".vim/plugin/x.vim",
            ".local/lib/python3.11/site-packages/zz.pth",
            ".config/plasma-workspace/env/x.sh",
        ] {
            assert_eq!(keep(rel), Keep::Trusted, "{rel}");
        }
        assert_eq!(
            keep(".config/kennelx/f"),
            Keep::Folder(".config/kennelx".into())
        );
    }

    #[test]
    fn keep_roots_are_never_wide() {
        // Beside the workspace (`../x` from it): never `~/src`, nor a sibling tree.
        assert_eq!(keep("src/x"), Keep::BesideWorkspace);
        assert_eq!(keep("src/other/deep/file"), Keep::BesideWorkspace);
        // Directly in a folder every tool shares: the file, not the folder.
        assert_eq!(keep(".cache/x"), Keep::File(".cache/x".into()));
        assert_eq!(keep(".config/x"), Keep::File(".config/x".into()));
        assert_eq!(keep(".local/x"), Keep::File(".local/x".into()));
        assert_eq!(keep(".local/share/x"), Keep::File(".local/share/x".into()));
        // Around one of the policy's own paths: deeper than it.
        let bound = [Path::new(".tool/bound")];
        assert_eq!(
            keep_root(Path::new(".tool/other/f"), None, &bound),
            Keep::Folder(".tool/other".into())
        );
        assert_eq!(
            keep_root(Path::new(".tool/f"), None, &bound),
            Keep::File(".tool/f".into())
        );
        // Names kennel does not put in a suggestion.
        assert_eq!(keep(".t\u{1b}]0;x\u{7}/f"), Keep::Unsuitable);
        assert_eq!(keep("a\nb"), Keep::Unsuitable);
        assert_eq!(keep("../x"), Keep::Unsuitable);
        use std::os::unix::ffi::OsStrExt;
        let bytes = Path::new(std::ffi::OsStr::from_bytes(b"\xff/f"));
        assert_eq!(keep_root(bytes, None, &[]), Keep::Unsuitable);
    }

    #[test]
    fn suggested_paths_parse_back_as_exactly_the_name() {
        for name in [
            r#"x"}, { path = "~/.ssh" }, {"#,
            "x'''y\"\"\"z",
            "a\"b'c",
            "x\\u002F.ssh",
            "é = [1]",
            "#comment",
        ] {
            let line = format!(
                "read-write = [{{ path = {}, create = true }}]",
                toml_string(name)
            );
            let parsed: toml::Table =
                toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let entries = parsed["read-write"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "{line}");
            assert_eq!(
                entries[0]["path"].as_str(),
                Some(format!("~/{name}").as_str()),
                "{line}"
            );
            let line = format!("copy-back = [{}]", toml_string(name));
            let parsed: toml::Table =
                toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let entries = parsed["copy-back"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "{line}");
            assert_eq!(
                entries[0].as_str(),
                Some(format!("~/{name}").as_str()),
                "{line}"
            );
        }
    }
}
