#!/usr/bin/env bash
# Regenerates crates/portcullis-core/data/common-passwords.txt from the npm package
# @zxcvbn-ts/language-common (MIT): zxcvbn's list of passwords seen in public breach
# corpora, most frequent first.
set -euo pipefail
version="${1:-4.1.3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@zxcvbn-ts/language-common@${version}" >/dev/null && tar xzf ./*.tgz)
out="$root/crates/portcullis-core/data/common-passwords.txt"
{
  echo "# Passwords seen in public breach corpora, most frequent first."
  echo "# Source: npm @zxcvbn-ts/language-common ${version}, src/passwords.json"
  echo "# License: MIT, Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc.; (c) 2021 @zxcvbn-ts"
  echo "# Regenerate with scripts/update-password-list.sh"
  python3 -c 'import json,sys; [print(p) for p in json.load(open(sys.argv[1]))]' "$work/package/src/passwords.json"
} > "$out"
wc -l "$out"
