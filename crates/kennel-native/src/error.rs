use std::path::PathBuf;

/// What can go wrong when starting a native sandbox. The message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("this system does not let unprivileged users create user namespaces ({cause}); {fix}")]
    UserNamespacesDenied { cause: String, fix: String },

    #[error("cannot build this sandbox: {0}")]
    Plan(String),

    /// Something asked for cannot be kept on this machine: not started.
    #[error("{0}: not started")]
    Refused(String),

    #[error("setting up the sandbox failed: {0}")]
    Setup(String),

    #[error("cannot run {command}: {message}")]
    Exec {
        command: String,
        message: String,
        /// 127 when not found, 126 when found but not executable (as shells do).
        status: u8,
    },

    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> NativeError {
    let what = what.into();
    move |source| NativeError::Sys { what, source }
}
