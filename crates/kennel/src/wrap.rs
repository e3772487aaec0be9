//! `kennel wrap` and `kennel unwrap`: shims that make typing an agent's name run it through
//! kennel, so that the real program is never started unsandboxed by habit.
//!
//! A shim is a small `sh` script marked with [`SHIM_MARKER`]. It holds no policy: the profile
//! and the user's config decide what the agent sees. kennel never overwrites or removes a
//! file that does not carry the marker.

use std::fs;
use std::path::{Path, PathBuf};

use kennel_policy::{Catalog, Context};

use crate::cli::{UnwrapArgs, WrapArgs};
use crate::program::{find_program, is_shim, SHIM_MARKER};
use crate::{context, exit, failure, tilde, user_config, ConfigChoice, Failure};

use kennel_native::INSIDE_MARK;

/// The line of a shim that names the real program.
const TARGET_PREFIX: &str = "real=";

/// A POSIX shell word for `text`, single-quoted.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shim for `name`, running `real` with `profile` through the kennel at `kennel`.
pub fn shim_text(name: &str, profile: &str, real: &Path, kennel: &Path) -> String {
    let real = real.to_string_lossy();
    let kennel = kennel.to_string_lossy();
    format!(
        "#!/bin/sh\n\
         {SHIM_MARKER}: {name} runs through kennel (profile {profile})\n\
         # Written by `kennel wrap {profile}`; `kennel unwrap {name}` removes it.\n\
         {TARGET_PREFIX}{real_q}\n\
         if [ ! -x \"$real\" ]; then\n\
         \x20   echo \"kennel: the real {name} was at $real and is gone; run \\`kennel wrap {profile}\\` again\" >&2\n\
         \x20   exit 127\n\
         fi\n\
         # Already inside a kennel sandbox: run the agent there, without a second sandbox.\n\
         if [ -f {INSIDE_MARK} ]; then exec \"$real\" \"$@\"; fi\n\
         exec {kennel_q} run --profile {profile_q} -- \"$real\" \"$@\"\n",
        real_q = quote(&real),
        kennel_q = quote(&kennel),
        profile_q = quote(profile),
    )
}

/// The real program a shim runs, read back from its text.
fn shim_target(text: &str) -> Option<PathBuf> {
    let quoted = text.lines().find_map(|l| l.strip_prefix(TARGET_PREFIX))?;
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(PathBuf::from(inner.replace(r"'\''", "'")))
}

fn default_dir(ctx: &Context) -> PathBuf {
    ctx.home.join(".local/bin")
}

fn io_failure(what: String, e: std::io::Error) -> Failure {
    failure(format!("{what}: {e}"), exit::SETUP_FAILED)
}

pub fn wrap(config: &ConfigChoice, args: WrapArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    let dir = args
        .dir
        .as_ref()
        .map_or_else(|| default_dir(&ctx), |d| ctx.cwd.join(d));
    if args.list {
        return list(&dir, &ctx);
    }
    let (_, user) = user_config(config, &ctx)?;
    let catalog = Catalog::load(user.as_ref())?;
    let profiles: Vec<String> = match &args.profile {
        Some(p) if args.all => {
            return Err(failure(
                format!("give either a profile ({p}) or --all"),
                exit::REFUSED,
            ))
        }
        Some(p) => vec![p.clone()],
        None => catalog
            .names()
            .into_iter()
            .filter(|n| catalog.is_builtin(n))
            .collect(),
    };
    let mut wrote = 0;
    for profile in &profiles {
        if !catalog.names().contains(profile) {
            return Err(failure(
                format!(
                    "unknown profile `{profile}`; known: {}",
                    catalog.names().join(", ")
                ),
                exit::REFUSED,
            ));
        }
        let Some(name) = catalog.program(profile)? else {
            if args.all {
                continue;
            }
            return Err(failure(
                format!("profile `{profile}` names no program to wrap"),
                exit::REFUSED,
            ));
        };
        let real = match &args.bin {
            Some(bin) => Some(ctx.cwd.join(bin)),
            None => find_program(&name, ctx.var("PATH").unwrap_or_default()),
        };
        let Some(real) = real else {
            if args.all {
                eprintln!("kennel: {name} (profile {profile}) is not installed: not wrapped");
                continue;
            }
            return Err(failure(
                format!(
                    "`{name}` is not on your PATH (past any shim); install it, or give --bin PATH"
                ),
                127,
            ));
        };
        write_shim(&ctx, &dir, &name, profile, &real)?;
        wrote += 1;
    }
    if args.all && wrote == 0 {
        eprintln!("kennel: no built-in profile's program is installed: nothing wrapped");
    }
    Ok(0)
}

fn write_shim(
    ctx: &Context,
    dir: &Path,
    name: &str,
    profile: &str,
    real: &Path,
) -> Result<(), Failure> {
    let shim = dir.join(name);
    let real = fs::canonicalize(real)
        .map_err(|e| io_failure(format!("the real {name} at {}", real.display()), e))?;
    // A shim that runs another shim would loop.
    if is_shim(&real) {
        return Err(failure(
            format!(
                "{} is a kennel shim itself: a shim running it would loop; give the real program with --bin",
                real.display()
            ),
            exit::REFUSED,
        ));
    }
    // Only a regular file that kennel wrote is replaced: not a link (to the program itself,
    // as some installers put one there, or to a shim), nor anything else of the user's.
    if let Ok(meta) = fs::symlink_metadata(&shim) {
        if !(meta.is_file() && is_shim(&shim)) {
            let what = if meta.file_type().is_symlink() {
                match fs::canonicalize(&shim) {
                    Ok(target) if target == real => format!(
                        "is a link to {} itself (as its installer put it there), not a shim of \
                         kennel's",
                        kennel_policy::shown_path(&real)
                    ),
                    Ok(target) => format!(
                        "is a link to {}, not a shim of kennel's",
                        kennel_policy::shown_path(&target)
                    ),
                    Err(_) => "is a link that leads nowhere, not a shim of kennel's".into(),
                }
            } else {
                "was not written by kennel".into()
            };
            return Err(failure(
                format!(
                    "{} {what}: it is left alone; write the shim into a folder that comes \
                     before it on PATH with --dir DIR, or remove it yourself",
                    kennel_policy::shown_path(&shim)
                ),
                exit::REFUSED,
            ));
        }
    }
    let kennel = std::env::current_exe()
        .and_then(fs::canonicalize)
        .map_err(|e| io_failure("finding kennel itself".into(), e))?;
    fs::create_dir_all(dir).map_err(|e| io_failure(format!("creating {}", dir.display()), e))?;
    // Written beside, as a new file (never through whatever has that name), then renamed: a
    // half-written shim never runs.
    let partial = dir.join(format!(".{name}.kennel-partial-{}", std::process::id()));
    crate::files::create_new(
        &partial,
        0o755,
        shim_text(name, profile, &real, &kennel).as_bytes(),
    )
    .map_err(|e| io_failure(format!("writing {}", partial.display()), e))?;
    fs::rename(&partial, &shim).map_err(|e| {
        let _ = fs::remove_file(&partial);
        io_failure(format!("writing {}", shim.display()), e)
    })?;
    println!(
        "{} -> kennel run --profile {profile} -- {}",
        tilde(&shim, &ctx.home),
        real.display()
    );
    warn_if_shadowed(ctx, dir, &real, name);
    Ok(())
}

/// The shim only works when its folder comes before the real program's on PATH.
fn warn_if_shadowed(ctx: &Context, dir: &Path, real: &Path, name: &str) {
    let path = ctx.var("PATH").unwrap_or_default();
    let dirs: Vec<&Path> = path.split(':').map(Path::new).collect();
    let shim_pos = dirs.iter().position(|d| *d == dir);
    let real_dir = real.parent();
    let real_pos = dirs.iter().position(|d| {
        Some(*d) == real_dir || fs::canonicalize(d.join(name)).is_ok_and(|p| p == real)
    });
    match (shim_pos, real_pos) {
        (None, _) => eprintln!(
            "kennel: warning: {} is not on your PATH: typing `{name}` still runs the real program",
            dir.display()
        ),
        (Some(s), Some(r)) if r < s => eprintln!(
            "kennel: warning: {} comes before {} on your PATH: typing `{name}` still runs the real program; put {} first",
            real_dir.map_or_else(String::new, |d| d.display().to_string()),
            dir.display(),
            dir.display()
        ),
        _ => {}
    }
}

fn list(dir: &Path, ctx: &Context) -> Result<u8, Failure> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no shims in {}", tilde(dir, &ctx.home));
            return Ok(0);
        }
        Err(e) => return Err(io_failure(format!("reading {}", dir.display()), e)),
    };
    let mut shims: Vec<(String, Option<PathBuf>)> = entries
        .flatten()
        .filter(|e| is_shim(&e.path()))
        .map(|e| {
            let target = fs::read_to_string(e.path())
                .ok()
                .and_then(|t| shim_target(&t));
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect();
    shims.sort();
    if shims.is_empty() {
        println!("no shims in {}", tilde(dir, &ctx.home));
    }
    for (name, target) in shims {
        match target {
            Some(t) if t.exists() => println!("{name} -> {}", t.display()),
            Some(t) => println!(
                "{name} -> {} (MISSING: the program moved; run `kennel wrap` again)",
                t.display()
            ),
            None => println!("{name} -> (a kennel wrapper of another form, e.g. from Nix)"),
        }
    }
    Ok(0)
}

pub fn unwrap(args: UnwrapArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    let dir = args
        .dir
        .as_ref()
        .map_or_else(|| default_dir(&ctx), |d| ctx.cwd.join(d));
    let shim = dir.join(&args.name);
    if fs::symlink_metadata(&shim).is_err() {
        return Err(failure(
            format!("there is no {} to remove", shim.display()),
            exit::REFUSED,
        ));
    }
    // A link (to a shim or not) is the user's own: only a shim file kennel wrote goes.
    let regular = fs::symlink_metadata(&shim).is_ok_and(|m| m.is_file());
    if !regular || !is_shim(&shim) {
        return Err(failure(
            format!(
                "{} was not written by kennel{}: it is left alone",
                kennel_policy::shown_path(&shim),
                if regular {
                    ""
                } else {
                    " (it is not a regular file)"
                }
            ),
            exit::REFUSED,
        ));
    }
    fs::remove_file(&shim).map_err(|e| io_failure(format!("removing {}", shim.display()), e))?;
    println!("removed {}", tilde(&shim, &ctx.home));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_names_its_target_and_is_recognised() {
        let text = shim_text(
            "aider",
            "aider",
            Path::new("/opt/it's here/aider"),
            Path::new("/usr/bin/kennel"),
        );
        assert_eq!(
            shim_target(&text),
            Some(PathBuf::from("/opt/it's here/aider"))
        );
        assert!(text.contains(SHIM_MARKER));
        assert!(text.contains(INSIDE_MARK));
        assert!(text.starts_with("#!/bin/sh\n"));
    }
}
