//! The environment is an allow-list: a variable reaches the sandbox only when named here
//! (or by a profile). Agents' own secrets (SSH_AUTH_SOCK, tokens, cloud keys) never pass by default.

/// Variables that describe the terminal, the locale and the user's editor: harmless and
/// needed by interactive tools.
pub const ENV_ALLOW_LIST: &[&str] = &[
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "COLORTERM",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "LANG",
    "LANGUAGE",
    "TZ",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "COLUMNS",
    "LINES",
    // Where the certificate authorities are (a company's own CA behind its proxy): paths,
    // not secrets. A file they name under the home is made readable (see the binary).
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
];

/// The variables of [`ENV_ALLOW_LIST`] that name a certificate file or folder.
pub const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
];

/// True when the variable `name` passes the built-in allow-list (`LC_*` included).
pub fn env_allowed(name: &str) -> bool {
    ENV_ALLOW_LIST.contains(&name) || name.starts_with("LC_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_pass() {
        for name in [
            "SSH_AUTH_SOCK",
            "GPG_AGENT_INFO",
            "DBUS_SESSION_BUS_ADDRESS",
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "XDG_RUNTIME_DIR",
        ] {
            assert!(!env_allowed(name), "{name} must not pass");
        }
    }

    #[test]
    fn locale_and_terminal_pass() {
        for name in ["PATH", "TERM", "LANG", "LC_ALL", "LC_CTYPE", "EDITOR"] {
            assert!(env_allowed(name), "{name} must pass");
        }
    }
}
