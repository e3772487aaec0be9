# A small stand-in for the few nixpkgs attributes kennel's Nix functions use, so that CI can
# evaluate them without downloading nixpkgs. writeShellScriptBin returns its script text.
let
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
in
{
  lib = {
    inherit escapeShellArg;
    concatMapStringsSep = sep: f: list: builtins.concatStringsSep sep (map f list);
  };
  writeShellScriptBin = name: text: {
    inherit name;
    text = "#!/bin/sh\n" + text;
  };
  kennel = throw "pass `kennel` explicitly in tests";
}
