//! The systemd backend: a [`Policy`](kennel_policy::Policy) becomes a `systemd-run --user`
//! command (the original wrapper kennel grew from, generalised), run as a transient unit,
//! whose protections kennel checks from inside before the command starts.
//!
//! - [`command`]: Policy -> [`Invocation`], pure, snapshot-tested; `--dry-run` prints it.
//! - [`run`]: starts it; [`verify_and_run`]: the inner side, in the unit.
//! - [`user_manager`]: is a user manager reachable, and which version (for `kennel doctor`).
#![forbid(unsafe_code)]

mod command;
mod error;
mod escape;
mod limits;
mod run;
mod verify;

pub use command::{command, Invocation, Options};
pub use error::SystemdError;
pub use limits::Limits;
pub use run::{own_executable, run, run_verified, user_manager, verify_and_run, UserManager};
pub use verify::{EmptyDir, UnitNet, VerifySpec, Watched};
