# home-manager module: programs.kennel.{enable, package, settings, wrappers}.
#
# settings is written as ~/.config/kennel/config.toml by nixpkgs' TOML formatter, so the
# module and the command line read one format. Each wrappers.NAME installs bin/NAME, which
# runs the agent through kennel, in place of the agent's own package.
{ kennelFlake ? null }:
{ config, lib, pkgs, ... }:

let
  cfg = config.programs.kennel;
  toml = pkgs.formats.toml { };
  mkSandboxWrapper = import ./mk-sandbox-wrapper.nix;
  wrapperType = lib.types.submodule ({ name, ... }: {
    options = {
      package = lib.mkOption {
        type = lib.types.package;
        description = "The agent's package; its bin/<name> is the real program.";
      };
      profile = lib.mkOption {
        type = lib.types.str;
        default = name;
        description = "The kennel profile the agent runs with.";
      };
      extraPaths = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Extra read-write paths for this agent.";
      };
    };
  });
in
{
  options.programs.kennel = {
    enable = lib.mkEnableOption "kennel, a sandbox for AI coding agents";
    package = lib.mkOption {
      type = lib.types.package;
      default =
        if kennelFlake != null
        then kennelFlake.packages.${pkgs.stdenv.hostPlatform.system}.default
        else pkgs.kennel;
      description = "The kennel package.";
    };
    settings = lib.mkOption {
      type = toml.type;
      default = { };
      description = "kennel's config.toml, as Nix values (see kennel's README, Configuration).";
    };
    wrappers = lib.mkOption {
      type = lib.types.attrsOf wrapperType;
      default = { };
      description = "Agents to install wrapped: typing their name runs them through kennel.";
    };
  };

  config = lib.mkIf cfg.enable {
    home.packages = [ cfg.package ] ++ lib.mapAttrsToList
      (name: w: mkSandboxWrapper {
        inherit pkgs name;
        inherit (w) package profile extraPaths;
        kennel = cfg.package;
      })
      cfg.wrappers;
    xdg.configFile."kennel/config.toml" = lib.mkIf (cfg.settings != { }) {
      source = toml.generate "kennel-config.toml" cfg.settings;
    };
  };
}
