{
  description = "kennel: run AI coding agents in a sandbox confined to the current git repository";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        kennel = pkgs.callPackage ./nix/package.nix { };
        default = kennel;
      });

      overlays.default = final: prev: {
        kennel = final.callPackage ./nix/package.nix { };
      };

      # lib.mkSandboxWrapper { pkgs; name; package or bin; profile ? name; extraPaths ? [ ]; }
      lib.mkSandboxWrapper = import ./nix/mk-sandbox-wrapper.nix;

      homeManagerModules.default = import ./nix/hm-module.nix { kennelFlake = self; };
    };
}
