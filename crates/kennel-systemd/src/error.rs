use std::path::PathBuf;

/// Why the systemd backend cannot run a policy. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// The policy asks for something `systemd-run` cannot express: never dropped silently.
    #[error("the systemd backend cannot express {feature}: {detail}; use --backend native")]
    Unsupported {
        feature: &'static str,
        detail: String,
    },

    #[error(
        "{what} is not valid UTF-8 ({value}); systemd passes it over D-Bus, which needs UTF-8"
    )]
    NotUtf8 { what: &'static str, value: String },

    #[error("invalid {flag} value {value:?}: {expected}")]
    BadLimit {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error("cannot find kennel's own executable to run inside the unit: {0}")]
    OwnExecutable(#[source] std::io::Error),

    #[error("cannot start {program}: {source}; is systemd installed?")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no systemd user manager is reachable: {0}")]
    ManagerUnreachable(String),

    #[error("internal-verify-exec: {0}")]
    BadVerifyArgs(String),

    /// A protection the unit was asked for is not in effect: kennel refuses to start the command.
    #[error(
        "the systemd user manager did not apply the sandbox ({0}); refusing to run the command. \
         Older systemd versions accept sandboxing properties in user units and silently ignore them; \
         try --backend native"
    )]
    NotApplied(String),

    #[error("cannot run {command}: {source}")]
    Exec {
        command: String,
        #[source]
        source: std::io::Error,
        /// 127 when not found, 126 when found but not executable (as shells do).
        status: u8,
    },

    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
