#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Behaviour tests of `runs-commands` beyond the first two files: the other places in an
//! agent's own (writable) folders whose contents the agent runs when the user starts it
//! outside kennel. Each test plants a command the way a prompt-injected agent would and
//! checks that kennel names the file at exit; a run that only changes what the agent
//! changes on every run says nothing.

mod common;

use std::process::Output;

use common::{stderr, Fixture};

/// What kennel prints for a file whose command-running settings changed.
const NAMED: &str = "runs commands when you start";

fn run(fx: &Fixture, profile: &str, script: &str) -> Output {
    fx.kennel_with(&[
        "run",
        "--profile",
        profile,
        "--net",
        "off",
        "--",
        "sh",
        "-c",
        script,
    ])
}

/// Runs `script` and asserts that it succeeds and that kennel names nothing.
fn assert_quiet(fx: &Fixture, profile: &str, script: &str) {
    let out = run(fx, profile, script);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains(NAMED),
        "what {profile} changes on every run is not a command: {err}"
    );
}

/// Runs `script` and asserts that it succeeds and that kennel names each of `named`
/// (`~/path changed in this session (what)`).
fn assert_named(fx: &Fixture, profile: &str, script: &str, named: &[&str]) {
    let out = run(fx, profile, script);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for line in named {
        assert!(
            err.contains(&format!("{line} changed in this session")),
            "{line} is not named: {err}"
        );
    }
    assert!(
        err.contains(&format!("{NAMED} {profile} outside kennel")),
        "{err}"
    );
}

/// Claude Code: the local settings of a session started in the home, the approval of a
/// repository's own MCP servers, the older place of its global config, its plugins.
#[test]
fn claude_codes_other_settings_that_run_commands_are_named_at_exit() {
    let fx = Fixture::new("agent-settings-claude");
    fx.write(
        &fx.home.join(".claude.json"),
        "{\"numStartups\": 1, \"projects\": {\"/p\": {\"lastCost\": 0}}}\n",
    );
    assert_quiet(
        &fx,
        "claude",
        "echo '{\"numStartups\": 2, \"projects\": {\"/p\": {\"lastCost\": 1}}}' > ~/.claude.json",
    );
    assert_named(
        &fx,
        "claude",
        "echo '{\"hooks\": {\"Stop\": []}}' > ~/.claude/settings.local.json; \
         echo '{\"numStartups\": 3, \"projects\": {\"/p\": {\"enableAllProjectMcpServers\": true}}}' \
           > ~/.claude.json; \
         echo '{\"mcpServers\": {\"x\": {\"command\": \"sh\"}}}' > ~/.claude/.config.json; \
         mkdir -p ~/.claude/plugins; \
         echo '{\"plugins\": {\"x@y\": [{\"installPath\": \"/tmp/x\"}]}}' \
           > ~/.claude/plugins/installed_plugins.json",
        &[
            "~/.claude/settings.local.json",
            "~/.claude.json",
            "~/.claude/.config.json",
            "~/.claude/plugins/installed_plugins.json",
        ],
    );
}

/// Codex: its hooks file, its `.env` (loaded into its own environment), and the
/// environment it gives every command.
#[test]
fn codexs_hooks_env_file_and_command_environment_are_named_at_exit() {
    let fx = Fixture::new("agent-settings-codex");
    fx.write(&fx.home.join(".codex/config.toml"), "model = \"a\"\n");
    assert_quiet(&fx, "codex", "echo 'model = \"b\"' > ~/.codex/config.toml");
    assert_named(
        &fx,
        "codex",
        "echo 'LD_PRELOAD=/tmp/x.so' > ~/.codex/.env; \
         echo '{\"hooks\": {\"SessionStart\": []}}' > ~/.codex/hooks.json; \
         printf 'model = \"b\"\\n[shell_environment_policy.set]\\nPATH = \"/tmp\"\\n' \
           > ~/.codex/config.toml",
        &[
            "~/.codex/.env",
            "~/.codex/hooks.json",
            "~/.codex/config.toml",
        ],
    );
}

/// Gemini CLI: its `.env`, and the folders it trusts (whose own settings it then loads).
#[test]
fn gemini_clis_env_file_and_trusted_folders_are_named_at_exit() {
    let fx = Fixture::new("agent-settings-gemini");
    assert_quiet(&fx, "gemini", "echo '{}' > ~/.gemini/projects.json");
    assert_named(
        &fx,
        "gemini",
        "echo 'NODE_OPTIONS=--require=/tmp/x.js' > ~/.gemini/.env; \
         echo '{\"/tmp/p\": \"TRUST_FOLDER\"}' > ~/.gemini/trustedFolders.json",
        &["~/.gemini/.env", "~/.gemini/trustedFolders.json"],
    );
}

/// pi: what its settings load and run, and a shell command as a stored key; not what it
/// writes there on its own (the last changelog seen, refreshed OAuth tokens).
#[test]
fn pis_extensions_shell_and_command_keys_are_named_but_not_its_bookkeeping() {
    let fx = Fixture::new("agent-settings-pi");
    fx.write(
        &fx.home.join(".pi/agent/settings.json"),
        "{\"lastChangelogVersion\": \"0.73.0\"}\n",
    );
    fx.write(
        &fx.home.join(".pi/agent/auth.json"),
        "{\"anthropic\": {\"type\": \"oauth\", \"access\": \"a\", \"expires\": 1}}\n",
    );
    assert_quiet(
        &fx,
        "pi",
        "echo '{\"lastChangelogVersion\": \"0.73.1\"}' > ~/.pi/agent/settings.json; \
         echo '{\"anthropic\": {\"type\": \"oauth\", \"access\": \"b\", \"expires\": 2}}' \
           > ~/.pi/agent/auth.json",
    );
    assert_named(
        &fx,
        "pi",
        "echo '{\"lastChangelogVersion\": \"0.73.1\", \"extensions\": [\"/tmp/x.ts\"]}' \
           > ~/.pi/agent/settings.json; \
         echo '{\"anthropic\": {\"type\": \"api_key\", \"key\": \"!sh /tmp/x\"}}' \
           > ~/.pi/agent/auth.json; \
         echo '{\"providers\": {\"x\": {\"apiKey\": \"!sh /tmp/x\"}}}' > ~/.pi/agent/models.json",
        &[
            "~/.pi/agent/settings.json",
            "~/.pi/agent/auth.json",
            "~/.pi/agent/models.json",
        ],
    );
}

/// aider: the environment file it loads at every start, overriding its own environment.
#[test]
fn aiders_oauth_keys_file_is_named_at_exit() {
    let fx = Fixture::new("agent-settings-aider");
    assert_quiet(&fx, "aider", "echo '{}' > ~/.aider/analytics.json");
    assert_named(
        &fx,
        "aider",
        "echo 'LD_PRELOAD=/tmp/x.so' >> ~/.aider/oauth-keys.env",
        &["~/.aider/oauth-keys.env"],
    );
}

/// opencode: its config under the older name, and the package.json it installs from.
#[test]
fn opencodes_older_config_and_package_json_are_named_at_exit() {
    let fx = Fixture::new("agent-settings-opencode");
    assert_quiet(
        &fx,
        "opencode",
        "echo '{}' > ~/.local/state/opencode/kv.json",
    );
    assert_named(
        &fx,
        "opencode",
        "echo '{\"mcp\": {\"x\": {\"command\": [\"sh\"]}}}' > ~/.config/opencode/config.json; \
         echo '{\"scripts\": {\"postinstall\": \"sh /tmp/x\"}}' > ~/.config/opencode/package.json",
        &[
            "~/.config/opencode/config.json",
            "~/.config/opencode/package.json",
        ],
    );
}

/// An agent's folders are writable inside, and what Claude Code's settings (hooks) and
/// `~/.claude.json` (MCP servers) name, it runs the next time the user starts it, also
/// outside kennel: code planted to run unsandboxed, like a git hook. kennel names such a
/// change at exit; what the agent writes on every run (a counter) says nothing.
#[test]
fn commands_an_agent_plants_in_its_own_settings_are_named_at_exit() {
    let fx = Fixture::new("agent-commands");
    fx.write(&fx.home.join(".claude.json"), "{\"numStartups\": 1}\n");
    fx.write(
        &fx.home.join(".claude/settings.json"),
        "{\"theme\": \"dark\"}\n",
    );
    let quiet = run(
        &fx,
        "claude",
        "echo '{\"numStartups\": 2}' > ~/.claude.json",
    );
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(
        !stderr(&quiet).contains("runs commands"),
        "a counter is not a command: {}",
        stderr(&quiet)
    );
    let planted = run(
        &fx,
        "claude",
        "printf '{\"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"touch /tmp/x\"}]}]}}' \
           > ~/.claude/settings.json; \
         echo '{\"numStartups\": 3, \"mcpServers\": {\"x\": {\"command\": \"sh\"}}}' > ~/.claude.json",
    );
    let err = stderr(&planted);
    assert!(planted.status.success(), "{err}");
    assert!(
        err.contains("~/.claude/settings.json changed in this session (the whole file)"),
        "{err}"
    );
    assert!(
        err.contains("~/.claude.json changed in this session (mcpServers)"),
        "{err}"
    );
    assert!(err.contains("outside kennel"), "{err}");
    // What was planted reached the user's files (the agent's settings are its own to
    // write): kennel names it, it does not undo it.
    assert!(std::fs::read_to_string(fx.home.join(".claude.json"))
        .unwrap()
        .contains("mcpServers"));
}
