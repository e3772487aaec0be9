//! Tests of profiles and configuration: every built-in profile, the precedence rules, the
//! repository config's narrowing, and the error messages users read (snapshots).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsString;
use std::path::Path;

use crate::catalog::{Catalog, BUILTIN_PROFILES};
use crate::context::{Context, GitDirs, Workspace};
use crate::explain::explain_text;
use crate::policy::{Access, Backend, HomeMode, Policy};
use crate::resolve::{resolve, CliLayer, ResolveInputs};
use crate::source::SourceFile;
use crate::PolicyError;

/// A home that does not exist: built-in profiles need nothing of it.
const HOME: &str = "/nonexistent-kennel/home/u";
const WS: &str = "/nonexistent-kennel/home/u/src/p";

fn ctx() -> Context {
    Context {
        cwd: WS.into(),
        home: HOME.into(),
        uid: 1000,
        gid: 1000,
        workspace: Workspace {
            root: WS.into(),
            git: Some(GitDirs {
                git_dir: format!("{WS}/.git").into(),
                common_dir: format!("{WS}/.git").into(),
            }),
        },
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("TERM".into(), "xterm".into()),
            ("ANTHROPIC_API_KEY".into(), "sk-ant-SECRET-VALUE".into()),
            ("OPENAI_API_KEY".into(), "sk-SECRET-VALUE".into()),
            ("GITHUB_TOKEN".into(), "ghp_SECRET".into()),
            ("SSH_AUTH_SOCK".into(), "/run/user/1000/ssh".into()),
        ],
        stdin_is_tty: false,
        stdout_is_tty: false,
    }
}

fn inputs(profile: &str) -> ResolveInputs {
    ResolveInputs {
        profile: profile.into(),
        command: vec![OsString::from("agent")],
        ..ResolveInputs::default()
    }
}

fn with_config(profile: &str, config: &str) -> ResolveInputs {
    ResolveInputs {
        user_config: Some(SourceFile::new("~/.config/kennel/config.toml", config)),
        ..inputs(profile)
    }
}

fn with_repo(profile: &str, repo: &str) -> ResolveInputs {
    ResolveInputs {
        repo_config: Some(SourceFile::new(".kennel.toml", repo)),
        ..inputs(profile)
    }
}

fn ok(inputs: ResolveInputs) -> Policy {
    resolve(&ctx(), inputs).unwrap_or_else(|e| panic!("{e}"))
}

fn err(inputs: ResolveInputs) -> String {
    match resolve(&ctx(), inputs) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn access(p: &Policy, rel: &str) -> Option<Access> {
    let path = if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{HOME}/{rel}")
    };
    p.rule_for(Path::new(&path)).map(|r| r.access)
}

fn env_names(p: &Policy) -> Vec<&str> {
    p.env.iter().map(|v| v.name.as_str()).collect()
}

// ---- built-in profiles --------------------------------------------------------------

#[test]
fn every_builtin_profile_resolves_with_a_fake_home() {
    for (name, _) in BUILTIN_PROFILES {
        let p = ok(inputs(name));
        assert_eq!(p.profile, *name);
        // The promises every profile keeps.
        assert_eq!(access(&p, ".ssh/id_ed25519"), Some(Access::Tmpfs), "{name}");
        assert_eq!(
            access(&p, ".aws/credentials"),
            Some(Access::Tmpfs),
            "{name}"
        );
        assert_eq!(access(&p, ".bashrc"), Some(Access::Tmpfs), "{name}");
        assert_eq!(
            access(&p, "src/p/main.rs"),
            Some(Access::ReadWrite),
            "{name}"
        );
        assert_eq!(
            access(&p, "src/p/.git/hooks/pre-commit"),
            Some(Access::ReadOnly),
            "{name}"
        );
        assert_eq!(access(&p, "/usr/bin/env"), Some(Access::ReadOnly), "{name}");
        assert_eq!(
            access(&p, "/run/user/1000/bus"),
            Some(Access::Hidden),
            "{name}"
        );
        let names = env_names(&p);
        assert!(!names.contains(&"GITHUB_TOKEN"), "{name}");
        assert!(!names.contains(&"SSH_AUTH_SOCK"), "{name}");
    }
}

#[test]
fn agent_profiles_name_their_state_and_keys() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("aider", &[".aider"], "OPENAI_API_KEY"),
        ("claude", &[".claude"], "ANTHROPIC_API_KEY"),
        ("codex", &[".codex"], "OPENAI_API_KEY"),
        ("gemini", &[".gemini"], "GEMINI_API_KEY"),
        (
            "goose",
            &[".config/goose", ".local/share/goose", ".local/state/goose"],
            "OPENAI_API_KEY",
        ),
        (
            "opencode",
            &[
                ".config/opencode",
                ".local/share/opencode",
                ".local/state/opencode",
                ".cache/opencode",
            ],
            "ANTHROPIC_API_KEY",
        ),
        ("pi", &[".pi/agent"], "ANTHROPIC_API_KEY"),
    ];
    let catalog = Catalog::load(None).unwrap();
    for (name, dirs, key) in cases {
        let p = ok(inputs(name));
        for dir in *dirs {
            assert_eq!(
                access(&p, &format!("{dir}/x")),
                Some(Access::ReadWrite),
                "{name} {dir}"
            );
        }
        assert!(p.env_pass.iter().any(|k| k == key), "{name} passes {key}");
        assert_eq!(catalog.program(name).unwrap().as_deref(), Some(*name));
    }
    let claude = ok(inputs("claude"));
    assert_eq!(
        claude
            .copy_back
            .iter()
            .map(|c| c.path.clone())
            .collect::<Vec<_>>(),
        vec![Path::new(HOME).join(".claude.json")]
    );
    // The default profile passes no agent key.
    let default = ok(inputs("default"));
    assert!(!env_names(&default).contains(&"ANTHROPIC_API_KEY"));
    assert!(env_names(&claude).contains(&"ANTHROPIC_API_KEY"));
    assert!(!env_names(&claude).contains(&"OPENAI_API_KEY"));
}

#[test]
fn every_builtin_profile_and_cache_group_is_valid() {
    // Built-ins are parsed lazily at run time; this checks all of them and what they name.
    Catalog::load(None).unwrap().check_builtins().unwrap();
}

#[test]
fn explain_of_each_builtin_profile() {
    let catalog = Catalog::load(None).unwrap();
    for info in catalog.list().unwrap() {
        let p = ok(inputs(&info.name));
        let text = explain_text(&p, &info.description);
        assert!(!text.contains("SECRET"), "a value leaked in explain");
        insta::assert_snapshot!(format!("explain_{}", info.name), text);
    }
}

#[test]
fn explain_json_never_holds_values() {
    let p = ok(inputs("claude"));
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains("ANTHROPIC_API_KEY"));
    assert!(!json.contains("SECRET"));
}

#[test]
fn profiles_list_one_line_each() {
    let catalog = Catalog::load(Some(&SourceFile::new(
        "config.toml",
        "[profile.mine]\ndescription = \"my own\"\nextends = \"aider\"\n[profile.aider]\nread-only = [{ path = \"~/x\", optional = true }]\n",
    )))
    .unwrap();
    let lines: Vec<String> = catalog
        .list()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} | {} | {:?} | {}",
                p.name, p.description, p.program, p.source
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

// ---- precedence ----------------------------------------------------------------------

#[test]
fn precedence_user_config_beats_builtin() {
    // Built-in aider makes ~/.aider read-write; the user's config makes it read-only.
    let p = ok(with_config(
        "aider",
        "[profile.aider]\nread-only = [{ path = \"~/.aider\", optional = true }]\n",
    ));
    assert_eq!(access(&p, ".aider/x"), Some(Access::ReadOnly));
    assert_eq!(
        ok(inputs("aider"))
            .rule_for(Path::new(&format!("{HOME}/.aider")))
            .map(|r| r.access),
        Some(Access::ReadWrite)
    );
}

#[test]
fn precedence_user_profile_beats_user_defaults() {
    let p = ok(with_config(
        "aider",
        "[defaults]\nhome = \"persistent\"\n[profile.aider]\nhome = \"ephemeral\"\n",
    ));
    assert_eq!(p.home_mode, HomeMode::Ephemeral);
    let p = ok(with_config("claude", "[defaults]\nhome = \"persistent\"\n"));
    assert_eq!(p.home_mode, HomeMode::Persistent);
}

#[test]
fn precedence_command_line_beats_user_config() {
    let mut i = with_config(
        "default",
        "[defaults]\nread-only = [{ path = \"/srv/data\", optional = true }]\nhome = \"persistent\"\n",
    );
    i.cli = CliLayer {
        home: Some(HomeMode::Ephemeral),
        backend: Some(Backend::Native),
        ..CliLayer::default()
    };
    let p = ok(i);
    assert_eq!(p.home_mode, HomeMode::Ephemeral);
    assert_eq!(p.backend, Backend::Native);
    let mut i = with_config("default", "[defaults]\nhidden = [\"/etc\"]\n");
    i.cli.read_only = vec!["/etc".into()];
    let p = ok(i);
    assert_eq!(
        access(&p, "/etc/passwd"),
        Some(Access::ReadOnly),
        "the command line wins"
    );
}

#[test]
fn precedence_repository_only_subtracts() {
    let mut i = with_config(
        "claude",
        "[profile.claude]\nread-write = [{ path = \"~/shared\", create = true }]\n[profile.claude.env]\npass = [\"OPENAI_API_KEY\"]\n",
    );
    i.repo_config = Some(SourceFile::new(
        ".kennel.toml",
        "hidden = [\"~/shared\", \"~/.claude\"]\n[env]\ndrop = [\"OPENAI_API_KEY\", \"ANTHROPIC_API_KEY\"]\n",
    ));
    let p = ok(i);
    assert_eq!(access(&p, "shared/x"), Some(Access::Hidden));
    assert_eq!(access(&p, ".claude/settings.json"), Some(Access::Hidden));
    assert!(!env_names(&p).contains(&"OPENAI_API_KEY"));
    assert!(!env_names(&p).contains(&"ANTHROPIC_API_KEY"));
    assert!(!p.env_pass.contains(&"ANTHROPIC_API_KEY".to_string()));
}

#[test]
fn precedence_at_equal_depth_hidden_beats_read_write_beats_read_only() {
    let p = ok(with_config(
        "default",
        "[defaults]\nread-only = [{ path = \"~/a\", optional = true }, { path = \"~/b\", optional = true }]\n\
         read-write = [{ path = \"~/a\", optional = true }, { path = \"~/b\", optional = true }]\n\
         hidden = [\"~/b\"]\n",
    ));
    assert_eq!(access(&p, "a"), Some(Access::ReadWrite));
    assert_eq!(access(&p, "b"), Some(Access::Hidden));
}

#[test]
fn precedence_most_specific_path_wins() {
    let p = ok(with_config(
        "claude",
        "[profile.claude]\nhidden = [\"~/.claude/secret\"]\nread-only = [{ path = \"/srv\", optional = true }]\nread-write = [{ path = \"/srv/out\", optional = true }]\n",
    ));
    assert_eq!(access(&p, ".claude/settings.json"), Some(Access::ReadWrite));
    assert_eq!(access(&p, ".claude/secret/key"), Some(Access::Hidden));
    assert_eq!(access(&p, "/srv/in"), Some(Access::ReadOnly));
    assert_eq!(access(&p, "/srv/out/x"), Some(Access::ReadWrite));
}

#[test]
fn the_repository_config_is_read_only_inside() {
    let p = ok(inputs("default"));
    assert_eq!(access(&p, "src/p/.kennel.toml"), Some(Access::ReadOnly));
}

#[test]
fn git_protections_win_over_user_config() {
    let p = ok(with_config(
        "default",
        &format!("[defaults]\nread-write = [{{ path = \"{WS}/.git/hooks\", optional = true }}]\n"),
    ));
    assert_eq!(
        access(&p, "src/p/.git/hooks/pre-commit"),
        Some(Access::ReadOnly)
    );
}

#[test]
fn user_profiles_extend_and_caches_are_included() {
    let p = ok(with_config(
        "rusty",
        "[profile.rusty]\nextends = \"claude\"\ncaches = [\"rust\"]\n[profile.rusty.env]\nset = { CARGO_TERM_COLOR = \"always\" }\n",
    ));
    assert_eq!(access(&p, ".claude/x"), Some(Access::ReadWrite));
    assert_eq!(access(&p, ".cargo/registry/x"), Some(Access::ReadWrite));
    assert_eq!(access(&p, ".rustup/toolchains"), Some(Access::ReadOnly));
    assert!(env_names(&p).contains(&"CARGO_TERM_COLOR"));
    let mut i = inputs("default");
    i.cli.caches = vec!["npm".into()];
    assert_eq!(access(&ok(i), ".npm/_cacache"), Some(Access::ReadWrite));
}

#[test]
fn env_pass_set_and_drop() {
    let p = ok(with_config(
        "default",
        "[defaults.env]\npass = [\"OPENAI_API_KEY\"]\nset = { EDITOR = \"vi\" }\ndrop = [\"TERM\"]\n",
    ));
    assert_eq!(
        env_names(&p),
        vec!["EDITOR", "HOME", "KENNEL_SANDBOX", "OPENAI_API_KEY", "PATH"]
    );
}

// ---- the repository's config ------------------------------------------------------------

#[test]
fn repository_hides_globs_inside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(ws.join("config")).unwrap();
    std::fs::create_dir_all(ws.join("node_modules/pkg")).unwrap();
    for f in [
        ".env",
        ".env.local",
        "config/server.pem",
        "node_modules/pkg/.env",
        "main.rs",
    ] {
        std::fs::write(ws.join(f), "x").unwrap();
    }
    let mut c = ctx();
    c.home = ws.parent().unwrap().to_path_buf();
    c.cwd = ws.clone();
    c.workspace = Workspace {
        root: ws.clone(),
        git: None,
    };
    let mut i = inputs("default");
    i.repo_config = Some(SourceFile::new(
        ".kennel.toml",
        "version = 1\nhidden = [\".env*\", \"*.pem\", \"secrets/\"]\n",
    ));
    let p = resolve(&c, i).unwrap();
    let hidden = |f: &str| p.rule_for(&ws.join(f)).map(|r| r.access) == Some(Access::Hidden);
    assert!(hidden(".env"));
    assert!(hidden(".env.local"));
    assert!(hidden("config/server.pem"));
    assert!(hidden("secrets/key"));
    assert!(!hidden("main.rs"));
    // Every folder is walked: a session could have moved a secret's folder anywhere.
    assert!(hidden("node_modules/pkg/.env"));
}

#[test]
fn repository_hidden_pattern_that_cannot_be_expanded_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(dir.path()).unwrap();
    for f in 0..=crate::glob::MAX_MATCHES {
        std::fs::write(ws.join(format!("{f}.pem")), "x").unwrap();
    }
    let mut c = ctx();
    c.home = ws.parent().unwrap().to_path_buf();
    c.cwd = ws.clone();
    c.workspace = Workspace {
        root: ws.clone(),
        git: None,
    };
    let mut i = inputs("default");
    i.repo_config = Some(SourceFile::new(
        ".kennel.toml",
        "version = 1\nhidden = [\".env*\", \"*.pem\"]\n",
    ));
    let e = resolve(&c, i).unwrap_err();
    assert!(matches!(e, PolicyError::Config(_)), "{e:?}");
    insta::assert_snapshot!(e.to_string());
}

fn repo_refusal(text: &str) -> String {
    err(with_repo("default", text))
}

#[test]
fn repository_cannot_add_a_writable_path() {
    insta::assert_snapshot!(repo_refusal("read-write = [\"~/.ssh\"]\n"));
}

#[test]
fn repository_cannot_add_a_readable_path() {
    insta::assert_snapshot!(repo_refusal(
        "hidden = [\".env\"]\nread-only = [\"/etc/shadow\"]\n"
    ));
}

#[test]
fn repository_cannot_pass_a_variable() {
    insta::assert_snapshot!(repo_refusal("[env]\npass = [\"AWS_SECRET_ACCESS_KEY\"]\n"));
}

#[test]
fn repository_cannot_set_a_variable() {
    insta::assert_snapshot!(repo_refusal(
        "[env]\nset = { LD_PRELOAD = \"/w/evil.so\" }\n"
    ));
}

#[test]
fn repository_cannot_change_the_backend() {
    insta::assert_snapshot!(repo_refusal("backend = \"native\"\n"));
}

#[test]
fn repository_cannot_keep_a_home_or_include_caches() {
    insta::assert_snapshot!(repo_refusal("home = \"persistent\"\n"));
    insta::assert_snapshot!(repo_refusal("caches = [\"rust\"]\n"));
    insta::assert_snapshot!(repo_refusal("copy-back = [\"~/.bashrc\"]\n"));
}

#[test]
fn repository_cannot_define_profiles() {
    insta::assert_snapshot!(repo_refusal("[profile.default]\nread-write = [\"/\"]\n"));
}

#[test]
fn repository_config_of_a_newer_version_is_refused() {
    insta::assert_snapshot!(repo_refusal("version = 2\nhidden = [\".env\"]\n"));
}

#[test]
fn repository_hidden_paths_cannot_escape_with_dotdot() {
    insta::assert_snapshot!(repo_refusal("hidden = [\"../other\"]\n"));
}

// ---- errors users read ------------------------------------------------------------------

#[test]
fn error_unknown_key() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "version = 1\n[profile.aider]\nread-writ = [\"~/x\"]\n"
    )));
}

#[test]
fn error_wrong_type() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nread-only = \"~/.gitconfig\"\n"
    )));
}

#[test]
fn error_wrong_type_in_a_path_table() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nread-only = [{ path = \"~/x\", optional = \"yes\" }]\n"
    )));
}

#[test]
fn error_relative_path() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nread-write = [\".cache/tool\"]\n"
    )));
}

#[test]
fn error_missing_required_path() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nread-only = [\"~/.tool-that-is-not-there\"]\n"
    )));
}

#[test]
fn error_exposing_the_whole_home() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nread-only = [\"~\"]\n"
    )));
    let mut i = inputs("default");
    i.cli.read_write = vec!["/nonexistent-kennel".into()];
    insta::assert_snapshot!(err(i));
}

#[test]
fn error_unknown_profile_on_the_command_line() {
    insta::assert_snapshot!(err(inputs("claud")));
}

#[test]
fn error_unknown_profile_in_extends() {
    insta::assert_snapshot!(err(with_config(
        "mine",
        "[profile.mine]\nextends = \"adier\"\n"
    )));
}

#[test]
fn error_extends_cycle() {
    insta::assert_snapshot!(err(with_config(
        "a",
        "[profile.a]\nextends = \"b\"\n[profile.b]\nextends = \"a\"\n"
    )));
}

#[test]
fn error_unknown_cache_group() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\ncaches = [\"rust\", \"cobol\"]\n"
    )));
}

#[test]
fn error_unsupported_version() {
    insta::assert_snapshot!(err(with_config("default", "version = 2\n")));
}

#[test]
fn error_bad_toml() {
    insta::assert_snapshot!(err(with_config("default", "[defaults\nread-only = []\n")));
}

#[test]
fn error_wildcard_outside_a_repository() {
    insta::assert_snapshot!(err(with_config(
        "default",
        "[defaults]\nhidden = [\"~/*.pem\"]\n"
    )));
}

#[test]
fn config_errors_are_refusals() {
    let e = resolve(&ctx(), inputs("nope")).err().unwrap();
    assert!(matches!(e, PolicyError::Profile(_)));
    assert!(e.is_refusal());
}

#[test]
fn error_missing_path_on_the_command_line() {
    let mut i = inputs("default");
    i.cli.read_write = vec!["/nonexistent-kennel/data".into()];
    insta::assert_snapshot!(err(i));
}

#[test]
fn explain_names_the_file_and_line_of_each_rule() {
    let mut i = with_config(
        "aider",
        "version = 1\n[profile.aider]\nread-only = [{ path = \"/srv/models\", optional = true, why = \"local models\" }]\n[profile.aider.env]\npass = [\"OLLAMA_HOST\"]\n",
    );
    i.repo_config = Some(SourceFile::new(
        "/nonexistent-kennel/home/u/src/p/.kennel.toml",
        "version = 1\nhidden = [\"secrets\"]\n[env]\ndrop = [\"OPENAI_API_KEY\"]\n",
    ));
    let p = ok(i);
    let text = explain_text(&p, "aider, AI pair programming in your terminal");
    assert!(!text.contains("SECRET"));
    insta::assert_snapshot!(text);
}

// Network policy (issue 8).

use crate::network::{NetMode, Network};

fn allow_list(p: &Policy) -> Vec<String> {
    match &p.network {
        Network::AllowList(r) => r.allow.iter().map(|r| r.to_string()).collect(),
        other => panic!("expected allow-list, got {other:?}"),
    }
}

#[test]
fn agent_profiles_default_to_their_allow_list_and_default_stays_on() {
    assert_eq!(ok(inputs("default")).network, Network::On);
    assert!(allow_list(&ok(inputs("claude"))).contains(&"api.anthropic.com".to_string()));
    assert!(allow_list(&ok(inputs("codex"))).contains(&"api.openai.com".to_string()));
    assert!(allow_list(&ok(inputs("gemini")))
        .contains(&"generativelanguage.googleapis.com".to_string()));
    for (name, _) in BUILTIN_PROFILES.iter().filter(|(n, _)| *n != "default") {
        let p = ok(inputs(name));
        assert!(
            matches!(p.network, Network::AllowList(_)),
            "profile {name} must default to allow-list"
        );
    }
}

#[test]
fn network_groups_localhost_and_deny_from_the_user_config() {
    let p = ok(with_config(
        "claude",
        "[profile.claude.network]\ngroups = [\"github\"]\nallow = [\"*.example.org:8443\"]\ndeny = [\"evil.github.com\"]\nlocalhost = [5432, 3000, 5432]\n",
    ));
    let allow = allow_list(&p);
    assert!(allow.contains(&"*.github.com".to_string()), "{allow:?}");
    assert!(
        allow.contains(&"*.example.org:8443".to_string()),
        "{allow:?}"
    );
    assert_eq!(p.localhost_ports, vec![3000, 5432]);
    let Network::AllowList(rules) = &p.network else {
        panic!()
    };
    assert!(rules.decide("evil.github.com", 443).is_err());
    assert!(rules.decide("api.github.com", 443).is_ok());
    let text = explain_text(&p, "");
    assert!(text.contains("network    allow-list"), "{text}");
    assert!(text.contains("deny     evil.github.com"), "{text}");
    assert!(text.contains("localhost  host loopback ports reachable inside: 3000, 5432"));
}

#[test]
fn network_mode_as_a_string_and_from_the_command_line() {
    let p = ok(with_config("default", "[defaults]\nnetwork = \"off\"\n"));
    assert_eq!(p.network, Network::Off);
    let mut i = with_config("default", "[defaults]\nnetwork = \"off\"\n");
    i.cli = CliLayer {
        network: Some(NetMode::AllowList),
        ..CliLayer::default()
    };
    assert!(matches!(ok(i).network, Network::AllowList(_)));
}

#[test]
fn repository_may_only_narrow_the_network() {
    let p = ok(with_repo("claude", "network = \"off\"\n"));
    assert_eq!(p.network, Network::Off);
    let p = ok(with_repo("claude", "[network]\ndeny = [\"claude.ai\"]\n"));
    let Network::AllowList(rules) = &p.network else {
        panic!()
    };
    assert!(rules.decide("claude.ai", 443).is_err());
    for bad in [
        "network = \"on\"\n",
        "network = \"allow-list\"\n",
        "[network]\nallow = [\"example.org\"]\n",
        "[network]\ngroups = [\"github\"]\n",
        "[network]\nlocalhost = [5432]\n",
    ] {
        let e = err(with_repo("claude", bad));
        assert!(e.contains("would widen the sandbox"), "{bad}: {e}");
    }
    // `--net on` on the command line does not undo the repository's `off`.
    let mut i = with_repo("default", "network = \"off\"\n");
    i.cli.network = Some(NetMode::On);
    assert_eq!(ok(i).network, Network::Off);
}

#[test]
fn network_errors_name_the_file_line_and_host() {
    let e = err(with_config(
        "default",
        "[defaults]\nnetwork = { allow = [\"bad host\"] }\n",
    ));
    assert!(e.contains("config.toml:2"), "{e}");
    assert!(e.contains("`bad host`"), "{e}");
    let e = err(with_config("default", "[defaults]\nnetwork = \"maybe\"\n"));
    assert!(e.contains("config.toml:2"), "{e}");
    let e = err(with_config(
        "default",
        "[defaults.network]\ngroups = [\"nope\"]\n",
    ));
    assert!(e.contains("unknown network group `nope`"), "{e}");
    assert!(e.contains("github"), "{e}");
}

// ---- tmpfs sizes ---------------------------------------------------------------------------

#[test]
fn tmpfs_size_defaults_to_one_gib_and_the_user_config_sets_it() {
    let p = ok(inputs("default"));
    assert_eq!(p.tmpfs, crate::TmpfsLimits::of_size(1 << 30));
    assert_eq!(p.tmpfs.mount_options(), "size=1073741824,nr_inodes=131072");
    for (value, bytes) in [
        ("\"512M\"", 512u64 << 20),
        ("\"2G\"", 2 << 30),
        ("\"1536k\"", 1536 << 10),
        ("4194304", 4 << 20),
    ] {
        let p = ok(with_config(
            "claude",
            &format!("version = 1\n[defaults]\ntmpfs-size = {value}\n"),
        ));
        assert_eq!(p.tmpfs.size, bytes, "{value}");
    }
    let p = ok(with_config(
        "claude",
        "version = 1\n[defaults]\ntmpfs-size = \"2G\"\n[profile.claude]\ntmpfs-size = \"256M\"\n",
    ));
    assert_eq!(p.tmpfs.size, 256 << 20);
    assert_eq!(crate::human_size(p.tmpfs.size), "256 MiB");
}

#[test]
fn tmpfs_size_errors_name_the_line_and_what_to_write() {
    for value in [
        "0",
        "\"0G\"",
        "\"1K\"",
        "\"lots\"",
        "-5",
        "\"99999999999T\"",
    ] {
        let e = err(with_config(
            "default",
            &format!("version = 1\n[defaults]\ntmpfs-size = {value}\n"),
        ));
        assert!(
            e.starts_with("~/.config/kennel/config.toml:3:") && e.contains("at least 1M"),
            "{value}: {e}"
        );
    }
    let e = err(with_repo("default", "version = 1\ntmpfs-size = \"64M\"\n"));
    assert!(e.contains("`tmpfs-size` would widen"), "{e}");
}

#[test]
fn a_profile_name_that_looks_like_a_typo_of_a_builtin_is_warned_about() {
    let src = SourceFile::new(
        "~/.config/kennel/config.toml",
        "version = 1\n\
         [profile.claud]\nread-only = [\"~/x\"]\n\
         [profile.claude]\nread-only = [\"~/y\"]\n\
         [profile.aidr]\nextends = \"aider\"\n\
         [profile.mytool]\nprogram = \"mytool\"\n",
    );
    let warnings = crate::catalog::profile_name_typos(&src);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("~/.config/kennel/config.toml:2: [profile.claud]")
            && warnings[0].ends_with("did you mean [profile.claude]?"),
        "{warnings:?}"
    );
}

#[test]
fn a_profile_named_like_an_option_or_a_subcommand_is_refused() {
    for name in ["-x", "homes", "wrap"] {
        let e = err(with_config(
            "default",
            &format!("version = 1\n[profile.{name}]\nprogram = \"x\"\n"),
        ));
        assert!(e.contains("config.toml:2"), "{name}: {e}");
    }
}

#[test]
fn folders_holding_a_hidden_path_get_a_rule_of_their_own_but_links_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(ws.join("conf/deep")).unwrap();
    std::fs::create_dir_all(ws.join("real")).unwrap();
    std::os::unix::fs::symlink(ws.join("real"), ws.join("link")).unwrap();
    std::fs::write(ws.join("conf/deep/.env"), "x").unwrap();
    let mut c = ctx();
    c.home = ws.parent().unwrap().to_path_buf();
    c.cwd = ws.clone();
    c.workspace = Workspace {
        root: ws.clone(),
        git: None,
    };
    let mut i = inputs("default");
    i.repo_config = Some(SourceFile::new(
        ".kennel.toml",
        "version = 1\nhidden = [\"conf/deep/.env\", \"link/.env\", \".top\"]\n",
    ));
    let p = resolve(&c, i).unwrap();
    let rule = |f: &str| p.paths.iter().find(|r| r.path == ws.join(f));
    for pinned in ["conf", "conf/deep"] {
        let r = rule(pinned).unwrap_or_else(|| panic!("{pinned} has no rule"));
        assert_eq!(r.access, Access::ReadWrite);
        assert!(r.origin.reason.contains("cannot be renamed"));
    }
    assert!(rule("link").is_none(), "a link is never bound");
    assert_eq!(
        rule("conf/deep/.env").map(|r| r.access),
        Some(Access::Hidden)
    );
}

/// Input that was accepted silently and then meant something else (issue 20's fuzzing):
/// each is an error naming the file and line.
#[test]
fn odd_values_are_errors_not_silently_something_else() {
    for (config, expected) in [
        (
            "[profile.default.env]\nset = { \"A=B\" = \"1\" }\n",
            "not a variable name",
        ),
        (
            "[profile.default.env]\nset = { \"\" = \"1\" }\n",
            "not a variable name",
        ),
        (
            "[profile.default.env]\nset = { A = \"x\\u0000y\" }\n",
            "NUL",
        ),
        ("[profile.default]\ncopy-back = [\"~/.\"]\n", "not allowed"),
        (
            "[profile.default]\ncopy-back = [\"~/../x\"]\n",
            "not allowed",
        ),
        ("[profile.default]\nhidden = [\"/\"]\n", "the whole system"),
        (
            "[profile.default]\nruns-commands = [{ path = \"/etc/x.json\" }]\n",
            "names a file in your home",
        ),
        (
            "[profile.default]\nruns-commands = [{ path = \"~/.x.json\", keys = [\"a..b\"] }]\n",
            "write names joined by dots",
        ),
        (
            "[profile.default]\nruns-commands = [{ path = \"~/.x.json\", key = [\"a\"] }]\n",
            "unknown field `key`",
        ),
        (
            "[profile.default]\nread-only = [\"/etc/../home/u\"]\n",
            "not allowed",
        ),
        (
            "[profile.default.network]\nallow = [\"::1]\"]\n",
            "not a host name",
        ),
        (
            "[profile.default.network]\nallow = [\"example.com:+80\"]\n",
            "not a port",
        ),
        (
            "[profile.default.network]\nallow = [\"0.0.0.0\"]\n",
            "every address",
        ),
        (
            "[profile.default.network]\nallow = [\"[::]:80\"]\n",
            "every address",
        ),
    ] {
        let e = err(with_config("default", &format!("version = 1\n{config}")));
        assert!(
            e.contains("config.toml:") && e.contains(expected),
            "{config:?}: {e}"
        );
    }
    let mut i = inputs("default");
    i.cli.pass_env = vec!["A=B".into()];
    assert!(err(i).contains("--pass-env A=B: not a variable name"));
}

#[test]
fn create_is_only_for_a_folder_in_the_home() {
    let e = err(with_config(
        "default",
        "version = 1\n[profile.default]\nread-write = [{ path = \"/etc/new\", create = true }]\n",
    ));
    assert!(
        e.contains("config.toml:3") && e.contains("`create` is for a folder in your home"),
        "{e}"
    );
}

#[test]
fn explain_escapes_names_the_sandbox_could_choose() {
    let mut p = ok(inputs("default"));
    p.workspace = "/home/u/src/evil\u{1b}]0;owned\u{7}".into();
    if let Some(r) = p.paths.iter_mut().find(|r| r.access == Access::ReadWrite) {
        r.path = "/home/u/src/evil\u{1b}[2J".into();
    }
    let text = explain_text(&p, "");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("evil\\e]0;owned\\u{7}"), "{text}");
}
