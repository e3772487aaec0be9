# kennel built with nixpkgs' Rust platform. Only the unit tests run in the build: the
# behaviour tests start real sandboxes (user namespaces), which the Nix build sandbox forbids.
{ lib, rustPlatform, libseccomp }:

let
  manifest = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "kennel";
  inherit (manifest.workspace.package) version;

  # .cargo/config.toml is left out: it links kennel statically against glibc's static
  # library (for a faster start), which nixpkgs' glibc provides only as glibc.static; the
  # Nix build links dynamically, as nixpkgs' Rust platform does by default.
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type:
      let base = baseNameOf path;
      in !(base == "target" || base == "result" || base == ".cargo" || lib.hasSuffix ".nix" base);
  };
  cargoLock.lockFile = ../Cargo.lock;
  # The seccomp filter is compiled when kennel is built, by a build script linked with
  # libseccomp (crates/kennel-native/build.rs); the kennel binary does not link it.
  buildInputs = [ libseccomp ];

  cargoBuildFlags = [ "--package" "kennel" ];
  cargoTestFlags = [ "--workspace" "--lib" ];

  # kennel's AppArmor profile (apparmor/kennel), attached to this package's binary: on a
  # host whose AppArmor refuses unprivileged user namespaces (Ubuntu 23.10 and later),
  # `sudo cp $(nix path-info ...)/share/apparmor.d/kennel /etc/apparmor.d/` and
  # `sudo apparmor_parser -r /etc/apparmor.d/kennel` give the native backend back. The
  # store is root-owned, as the profile requires of the path it names.
  postInstall = ''
    mkdir -p $out/share/apparmor.d
    substitute apparmor/kennel $out/share/apparmor.d/kennel \
      --replace-fail '/usr/{,local/}bin/kennel' "$out/bin/kennel"
  '';

  meta = {
    description = "Run AI coding agents in a sandbox confined to the current git repository";
    license = with lib.licenses; [ mit asl20 ];
    platforms = lib.platforms.linux;
    mainProgram = "kennel";
  };
}
