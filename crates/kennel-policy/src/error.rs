use std::path::PathBuf;

/// Why a policy could not be built. Each variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "refusing to run: the workspace would be {workspace}, which {why}; \
         that would expose your whole home to the agent. Run kennel inside a project folder \
         (a git repository below your home) instead"
    )]
    WorkspaceExposesHome {
        workspace: PathBuf,
        why: &'static str,
    },

    #[error(
        "refusing to run: the workspace would be {workspace}, which the sandbox replaces by \
         {what}: what the command writes there would be lost. Run kennel in a folder of its \
         own (e.g. `mkdir {workspace}/work && cd {workspace}/work`), or in a git repository"
    )]
    WorkspaceIsPrivate {
        workspace: PathBuf,
        what: &'static str,
    },

    #[error("HOME is not set and no home directory is known for uid {uid}; set HOME to your home folder")]
    NoHome { uid: u32 },

    #[error("HOME is {0}, which is not an absolute path; set HOME to your home folder")]
    RelativeHome(PathBuf),

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    BadGitFile { path: PathBuf, message: String },

    /// A git pointer (`.git` file, `commondir`) that leads somewhere kennel will not bind:
    /// a sandbox of an earlier session may have written it.
    #[error("refusing to run: {path} {why}")]
    UntrustedGitDir { path: PathBuf, why: String },

    #[error("no command given and no SHELL to fall back on; name a command after `--`")]
    NoCommand,

    /// A configuration or profile error, with its file, line and column.
    #[error(transparent)]
    Config(#[from] crate::source::ConfigError),

    /// A profile problem that no file shows (a name given on the command line).
    #[error("{0}")]
    Profile(String),
}

impl PolicyError {
    /// Refusals are the user's to fix (exit status 2), everything else is an environment error.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PolicyError::WorkspaceExposesHome { .. }
                | PolicyError::WorkspaceIsPrivate { .. }
                | PolicyError::UntrustedGitDir { .. }
                | PolicyError::NoCommand
                | PolicyError::Config(_)
                | PolicyError::Profile(_)
        )
    }
}
