#!/usr/bin/env bash
# Finds Fashion-MNIST, installing it if missing, and prints its folder on stdout (messages on stderr).
#   1. $1 (or $DATA) if it holds the four IDX files;
#   2. /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist);
#   3. apt-get install dataset-fashion-mnist, when apt-get is usable (root, or password-less sudo);
#   4. a download from the official source into .data/fashion-mnist;
#   5. otherwise: a message saying how to get it and where to point --data / DATA=.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
DEBIAN_DIR=/usr/share/datasets/fashion-mnist
LOCAL_DIR=.data/fashion-mnist
URL=http://fashion-mnist.s3-website.eu-central-1.amazonaws.com

has_all() {
    local f
    for f in "${FILES[@]}"; do
        [[ -s "$1/$f.gz" || -s "$1/$f" ]] || return 1
    done
}

want="${1:-${DATA:-}}"
if [[ -n "$want" ]]; then
    if has_all "$want"; then echo "$want"; exit 0; fi
    echo "error: $want does not hold the four Fashion-MNIST files (${FILES[*]}, .gz or plain)" >&2
    exit 1
fi
for dir in "$DEBIAN_DIR" "$LOCAL_DIR"; do
    if has_all "$dir"; then echo "$dir"; exit 0; fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
if command -v apt-get >/dev/null && { [[ $(id -u) -eq 0 ]] || [[ -n "$SUDO" ]]; }; then
    echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist ..." >&2
    if $SUDO apt-get install -y -q dataset-fashion-mnist >&2 \
        || { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q dataset-fashion-mnist >&2; }; then
        if has_all "$DEBIAN_DIR"; then echo "$DEBIAN_DIR"; exit 0; fi
    fi
    echo "apt-get could not install dataset-fashion-mnist; trying a download" >&2
fi

echo "Fashion-MNIST: downloading from $URL into $LOCAL_DIR ..." >&2
mkdir -p "$LOCAL_DIR"
ok=1
for f in "${FILES[@]}"; do
    [[ -s "$LOCAL_DIR/$f.gz" ]] && continue
    tmp="$LOCAL_DIR/.$f.gz.part"
    if command -v curl >/dev/null; then
        curl -fsSL --retry 2 -o "$tmp" "$URL/$f.gz" || ok=0
    elif command -v wget >/dev/null; then
        wget -q -O "$tmp" "$URL/$f.gz" || ok=0
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "$URL/$f.gz" "$tmp" 2>/dev/null || ok=0
    fi
    if [[ $ok -eq 1 ]] && gzip -t "$tmp" 2>/dev/null; then mv "$tmp" "$LOCAL_DIR/$f.gz"; else ok=0; rm -f "$tmp"; break; fi
done
if [[ $ok -eq 1 ]] && has_all "$LOCAL_DIR"; then echo "$LOCAL_DIR"; exit 0; fi

cat >&2 <<MSG
error: Fashion-MNIST is not installed and could not be fetched.
Get it in one of these ways, then run make demo again:
  - Debian/Ubuntu: apt-get install dataset-fashion-mnist   (installs into $DEBIAN_DIR)
  - download ${FILES[*]/%/.gz}
    from https://github.com/zalandoresearch/fashion-mnist ($URL/<file>) into one folder and
    run  make demo DATA=/that/folder   (or: embedrank train --data /that/folder)
MSG
exit 1
