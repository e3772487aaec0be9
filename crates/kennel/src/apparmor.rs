//! The way back to the native backend where AppArmor refuses unprivileged user namespaces
//! (Ubuntu 23.10 and later): a profile of kennel's own that allows `userns`, and the exact
//! commands that install it for the kennel the user runs.
//!
//! The profile attaches to one path, and only to a root-owned one: attached to a path the
//! user can write (`~/.cargo/bin/kennel`), it would give any program put there the
//! namespaces AppArmor withholds. A kennel installed elsewhere is copied to
//! `/usr/local/bin` first.

use std::os::unix::fs::MetadataExt;

use kennel_native::NativeError;
use std::path::{Path, PathBuf};

/// The profile shipped in the repository (`apparmor/kennel`), attached to
/// `/usr/bin/kennel` and `/usr/local/bin/kennel`.
pub const PROFILE: &str = include_str!("../../../apparmor/kennel");

/// The attachment of [`PROFILE`], replaced by one exact path.
const ATTACHMENT: &str = "/usr/{,local/}bin/kennel";

/// Where a profile that lets kennel create user namespaces can attach.
#[derive(Debug, PartialEq, Eq)]
pub struct Install {
    /// The kennel that runs now (its real path).
    pub running: PathBuf,
    /// The path the profile names: `running` when it is root-owned all the way up, else
    /// `/usr/local/bin/kennel`, where the commands copy it first.
    pub target: PathBuf,
}

impl Install {
    pub fn for_this_kennel() -> Install {
        let running = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .unwrap_or_else(|_| PathBuf::from("kennel"));
        let target = if root_owned(&running) && plain(&running) {
            running.clone()
        } else {
            PathBuf::from("/usr/local/bin/kennel")
        };
        Install { running, target }
    }

    /// The profile, attached to `target` alone.
    pub fn profile(&self) -> String {
        PROFILE.replacen(ATTACHMENT, &self.target.to_string_lossy(), 1)
    }

    /// One shell line that installs the profile (and, when needed, a root-owned copy of
    /// kennel for it to attach to).
    pub fn commands(&self) -> String {
        let target = shell_word(&self.target.to_string_lossy());
        let copy = if self.running == self.target {
            String::new()
        } else {
            format!(
                "sudo install -m 755 -o root -g root {} {target} && ",
                shell_word(&self.running.to_string_lossy())
            )
        };
        format!(
            "{copy}{target} doctor --apparmor-profile | sudo tee /etc/apparmor.d/kennel >/dev/null \
             && sudo apparmor_parser -r /etc/apparmor.d/kennel"
        )
    }

    /// What to tell the user, in one sentence.
    pub fn advice(&self) -> String {
        let then = if self.running == self.target {
            String::new()
        } else {
            format!(
                ", then run kennel as {} (a profile may only name a root-owned path)",
                self.target.display()
            )
        };
        format!(
            "install kennel's AppArmor profile, which allows it `userns`: `{}`{then}",
            self.commands()
        )
    }
}

/// Where AppArmor refuses user namespaces, the fix is kennel's profile: the exact commands
/// that install it for the kennel that runs.
pub fn with_commands(e: NativeError) -> NativeError {
    match e {
        NativeError::UserNamespacesDenied { cause, fix: given } => {
            NativeError::UserNamespacesDenied {
                fix: fix(&cause, given),
                cause,
            }
        }
        other => other,
    }
}

/// The fix to print for a refusal of user namespaces whose cause is `cause`.
pub fn fix(cause: &str, given: String) -> String {
    if cause.contains("AppArmor") {
        format!(
            "{} (or set kernel.apparmor_restrict_unprivileged_userns to 0)",
            Install::for_this_kennel().advice()
        )
    } else {
        given
    }
}

/// Whether `path` and every folder above it belong to root and nobody else can write them.
fn root_owned(path: &Path) -> bool {
    path.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0))
}

/// Whether `path` can be named in a profile as it is (no globbing or quoting characters).
fn plain(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
    })
}

fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-=:,@".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_names_root_owned_paths_and_allows_userns() {
        assert!(PROFILE.contains(&format!("profile kennel {ATTACHMENT} flags=(unconfined)")));
        assert!(PROFILE.contains("  userns,\n"));
    }

    #[test]
    fn a_kennel_under_the_home_is_copied_to_a_root_owned_path_first() {
        let install = Install {
            running: "/home/u/.cargo/bin/kennel".into(),
            target: "/usr/local/bin/kennel".into(),
        };
        assert_eq!(
            install.commands(),
            "sudo install -m 755 -o root -g root /home/u/.cargo/bin/kennel /usr/local/bin/kennel \
             && /usr/local/bin/kennel doctor --apparmor-profile | sudo tee \
             /etc/apparmor.d/kennel >/dev/null && sudo apparmor_parser -r /etc/apparmor.d/kennel"
        );
        assert!(install
            .profile()
            .contains("profile kennel /usr/local/bin/kennel flags=(unconfined) {"));
        assert!(!install.profile().contains(ATTACHMENT));
    }

    #[test]
    fn a_root_owned_kennel_is_named_as_it_is() {
        let install = Install {
            running: "/usr/bin/kennel".into(),
            target: "/usr/bin/kennel".into(),
        };
        assert!(install.commands().starts_with("/usr/bin/kennel doctor"));
        assert!(!install.advice().contains("then run"));
    }

    #[test]
    fn paths_a_profile_cannot_name_plainly_are_not_named() {
        assert!(plain(Path::new("/usr/local/bin/kennel")));
        assert!(!plain(Path::new("/opt/my tools/kennel")));
        assert!(!plain(Path::new("/opt/*/kennel")));
        assert_eq!(shell_word("/a b/it's"), "'/a b/it'\\''s'");
    }
}
