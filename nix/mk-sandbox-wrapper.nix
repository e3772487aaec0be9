# A package whose bin/NAME runs an agent through kennel, so that typing the agent's name
# never starts it unsandboxed. The generalised form of the original
# `mkSandboxWrapper name bin extraPaths`.
#
#   mkSandboxWrapper {
#     pkgs;                 # nixpkgs (writeShellScriptBin, lib)
#     name;                 # the command the user types, e.g. "aider"
#     package ? null;       # the agent's package: its bin/NAME is the real program
#     bin ? null;           # or the real program's path, instead of package
#     profile ? name;       # the kennel profile (built-in or from the user's config)
#     extraPaths ? [ ];     # extra read-write paths for this agent, like the original
#     kennel ? pkgs.kennel; # the kennel package (from this flake's overlay)
#   }
#
# The wrapper holds no policy of its own beyond extraPaths: the rest stays in kennel's
# profiles and the user's config.toml, one source of truth.
{ pkgs
, name
, package ? null
, bin ? null
, profile ? name
, extraPaths ? [ ]
, kennel ? pkgs.kennel
}:

let
  lib = pkgs.lib;
  real =
    if bin != null then toString bin
    else if package != null then "${package}/bin/${name}"
    else throw "mkSandboxWrapper ${name}: give either `package` or `bin`";
  pathFlags = lib.concatMapStringsSep " " (p: "--rw ${lib.escapeShellArg (toString p)}") extraPaths;
in
pkgs.writeShellScriptBin name ''
  # kennel-shim: ${name} runs through kennel (profile ${profile})
  # Already inside a kennel sandbox (a mark only a sandbox's own /run can hold): run the
  # agent there, without a second sandbox.
  if [ -f /run/kennel/sandbox ]; then exec ${lib.escapeShellArg real} "$@"; fi
  exec ${kennel}/bin/kennel run --profile ${lib.escapeShellArg profile} ${pathFlags} -- ${lib.escapeShellArg real} "$@"
''
