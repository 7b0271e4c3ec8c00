"""The layer store on the target, in bash: bytes are trusted only once they were checked.

A layer file `store/<digest>-layer.tar` is reused only through a *record* written right after its
bytes were checked against the sha256 the Lab gives for it: `<root>/.repx/verified/<digest>-layer.tar`
holds `<sha256> <inode> <size> <mtime> <ctime>` of the file as it was checked (times to the
nanosecond). A file replaced or rewritten since, even with the same size, no longer matches its
record; a file with no record (put there by upstream's rsync, or by an older client) is hashed on
the target once and recorded, or replaced. Records live outside `store/` so upstream's tools,
which read `store/<digest>-layer.tar` only, never see them (and its GC never deletes them).
remote/executor.sh reads and writes the same records for node-local copies at job time: keep
the two formats the same.

No script writes through a directory that is a symbolic link (one left by an earlier sync of a
hostile Lab would send the bytes outside base_path): they refuse it with one clear line.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from repx_tui.backend.errors import SyncError
from repx_tui.backend.textnum import unsigned

RECORDS = posixpath.join(".repx", "verified")


def records_dir(root: str) -> str:
    """Where the records of `<root>`'s layer store live (root = base_path or node_local_path)."""
    return posixpath.join(root, RECORDS)


# Shared by every script below. layer_id sets LAYER_ID instead of printing it: no subshell
# per layer in the probe's listing.
FUNCTIONS = r"""
# LAYER_ID = a regular file's identity: inode, size, mtime, ctime (to the ns with GNU find; in
# whole seconds from stat where find has no -printf). Fails for anything else.
layer_id() {
  LAYER_ID=
  if [ -L "$1" ] || [ ! -f "$1" ]; then return 1; fi
  LAYER_ID=$(find "$1" -maxdepth 0 -printf '%i %s %T@ %C@' 2>/dev/null) || LAYER_ID=
  if [ -z "$LAYER_ID" ]; then LAYER_ID=$(stat -c '%i %s %Y %Z' -- "$1") || return 1; fi
}
# $1 layer file, $2 its record: RECORDED_SHA = the sha256 the record vouches for, or "-"
recorded_sha() {
  local sha id
  RECORDED_SHA=- LAYER_ID=
  if [ -f "$2" ] && layer_id "$1" && read -r sha id < "$2" && [ "$id" = "$LAYER_ID" ]; then
    RECORDED_SHA=$sha
  fi
}
# $1 layer file, $2 its record, $3 the sha256 its bytes were checked against, $4 its identity then
record_layer() {
  layer_id "$1" && [ "$LAYER_ID" = "$4" ] || return 1  # changed while it was being checked
  write_record "$2" "$3" "$4"
}
# $1 record, $2 sha256, $3 identity
write_record() {
  if [ -L "${1%/*}" ] || [ -L "${1%/*/*}" ]; then return 1; fi
  [ -d "${1%/*}" ] || mkdir -p -- "${1%/*}"
  printf '%s %s\n' "$2" "$3" > "$1.new-$$"
  mv -fT -- "$1.new-$$" "$1"
}
# $1 a layer file just placed after its check, $2 its record, $3 its sha256
record_placed() {
  layer_id "$1" || return 1
  write_record "$2" "$3" "$LAYER_ID"
}
# $1 layer file, $2 its record, $3 its sha256: true once its bytes are known right (by its
# record, or hashed now and recorded)
verify_layer() {
  local id sha
  recorded_sha "$1" "$2"
  if [ "$RECORDED_SHA" = "$3" ]; then return 0; fi
  layer_id "$1" || return 1
  id=$LAYER_ID
  sha=$(sha256sum < "$1") || return 1
  [ "${sha%% *}" = "$3" ] || return 1
  record_layer "$1" "$2" "$3" "$id" || true
}
no_links() {
  local dir
  for dir in "$@"; do
    if [ -L "$dir" ]; then
      echo "$dir is a symbolic link (repx-tui never makes one there); refusing to write through it" >&2
      return 1
    fi
  done
}
"""

# A function, so phase 1's probe can run it in the same round trip: $1 store, $2 its records,
# $3 node-local store ("" = none), $4 images dir, $5 number of images, then (dir, tag) per
# image, then layer digests. One line per image and per layer:
#   I <dir> <manifest sha256 | -> <tag link | ->
#   L <digest> <size in the store | -> <sha256 its record vouches for | -> <node-local size | ->
# or, instead, "X <dir>" for each directory it would write into that is a symbolic link.
LIST_FUNCTION = (
    FUNCTIONS
    + r"""
list_images() {
  local store=$1 records=$2 nl=$3 images=$4 n=$5 dir tag sum link d f s sha l bad=0
  shift 5
  for dir in "${store%/*}" "$store" "$images" "${records%/*}" "$records"; do
    if [ -L "$dir" ]; then echo "X $dir"; bad=1; fi
  done
  if [ "$bad" = 1 ]; then return 0; fi
  mkdir -p "$store" "$images" "$records"
  # temp files of uploads cut off long ago (a dead connection cannot clean up after itself)
  find "$store" -maxdepth 1 -name '.*-layer.tar.*' -mmin +120 -delete 2>/dev/null || true
  find "$records" -maxdepth 1 -name '*.new-*' -mmin +120 -delete 2>/dev/null || true
  while [ "$n" -gt 0 ]; do
    dir=$1 tag=$2
    shift 2
    n=$((n - 1))
    sum=- link=-
    if [ -f "$images/$dir/manifest.json" ]; then
      sum=$(sha256sum < "$images/$dir/manifest.json")
      sum=${sum%% *}
    fi
    if [ -L "$images/$tag" ]; then link=$(readlink "$images/$tag"); fi
    printf 'I %s %s %s\n' "$dir" "$sum" "$link"
  done
  for d in "$@"; do
    f="$store/$d-layer.tar" s=- sha=- l=-
    recorded_sha "$f" "$records/$d-layer.tar"
    if [ -n "$LAYER_ID" ] || layer_id "$f"; then
      s=${LAYER_ID#* } s=${s%% *} sha=$RECORDED_SHA
    fi
    if [ -n "$nl" ]; then l=$(stat -c %s -- "$nl/$d-layer.tar" 2>/dev/null || echo -); fi
    printf 'L %s %s %s %s\n' "$d" "$s" "$sha" "$l"
  done
}
"""
)
LIST_SCRIPT = LIST_FUNCTION + 'list_images "$@"\n'

# $1 store, $2 its records, $3 node-local store ("" = none), then (digest, size, sha256) triples
# of layers with no valid record. For each prints one line:
#   REUSED <digest>      the store's file had the right bytes: now recorded
#   NODE_LOCAL <digest>  copied from node_local_path to a temp name, checked, renamed, recorded
#   MISSING <digest>     neither: it must be sent (a wrong file in the store is removed first)
PLACE_SCRIPT = (
    FUNCTIONS
    + r"""
store=$1 records=$2 nl=$3
shift 3
no_links "${store%/*}" "$store" "${records%/*}" "$records"
mkdir -p "$store" "$records"
while [ "$#" -ge 3 ]; do
  d=$1 size=$2 sha=$3
  shift 3
  final="$store/$d-layer.tar" record="$records/$d-layer.tar"
  if [ "$(stat -c %s -- "$final" 2>/dev/null)" = "$size" ] && verify_layer "$final" "$record" "$sha"; then
    echo "REUSED $d"
    continue
  fi
  rm -f -- "$final"  # wrong or cut short: never to be used, by us or by upstream's tools
  tmp="$store/.$d-layer.tar.nl-$$"
  if [ -n "$nl" ] && [ "$(stat -c %s -- "$nl/$d-layer.tar" 2>/dev/null)" = "$size" ] \
    && cp -- "$nl/$d-layer.tar" "$tmp" 2>/dev/null \
    && [ "$(stat -c %s -- "$tmp")" = "$size" ] \
    && [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" = "$sha" ]; then
    chmod 0444 "$tmp"
    mv -fT -- "$tmp" "$final"
    record_placed "$final" "$record" "$sha" || true
    echo "NODE_LOCAL $d"
  else
    rm -f -- "$tmp"
    echo "MISSING $d"
  fi
done
"""
)

# A lane: one channel that receives any number of layers, one after another, so a layer costs
# no channel, login shell or script start of its own. $1 store, $2 its records, $3 the target's
# zstd, $4 its gzip ("-" for none), $5 its openssl ("-": coreutils' sha256sum). On stdin, per
# layer, a line "<digest> <size> <sha256> <encoding>", then the layer: <size> bytes as they are
# (raw), or zstd/gzip frames, each "<length>\n<bytes>", ended by "0\n". Each layer is decoded,
# written to a temporary file and hashed in the same pass (tee: no second read), renamed into
# the store and recorded when its sha256 is right; the lane answers "OK <digest>" or
# "BAD <digest> <sha256 it got>" per layer. A layer it cannot write ends the lane (exit 4).
LANE_SCRIPT = (
    FUNCTIONS
    + r"""
store=$1 records=$2 zstd=$3 gzip=$4 openssl=$5
no_links "${store%/*}" "$store" "${records%/*}" "$records"
mkdir -p "$store" "$records"
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
if [ "$openssl" != - ] && [ "$("$openssl" dgst -sha256 -r </dev/null 2>/dev/null)" != "$empty *stdin" ]; then
  openssl=-  # present but not working (a FIPS setup, a broken library): coreutils instead
fi
frames() {
  local length
  while IFS= read -r length && [ "$length" != 0 ]; do head -c "$length"; done
}
# $1 encoding, $2 size, $3 file: the layer's bytes from stdin into $3
receive() {
  case $1 in
    raw) head -c "$2" > "$3" ;;
    zstd) frames | "$zstd" -dcq > "$3" ;;
    gzip) frames | "$gzip" -dc > "$3" ;;
    *) echo "unknown layer encoding $1" >&2; return 1 ;;
  esac
}
# The file as it lies on disk, read back from the page cache at once: cheaper than hashing a
# copy of the stream through tee (every pipe moves 8 KiB at a time), and it checks what was stored.
hash_file() {
  if [ "$openssl" = - ]; then exec sha256sum < "$1"; else exec "$openssl" dgst -sha256 -r < "$1"; fi
}
mask=$(umask)
n=0
while IFS=' ' read -r d size sha encoding; do
  n=$((n + 1))
  final="$store/$d-layer.tar" tmp="$store/.$d-layer.tar.part-$$-$n"
  umask 0222  # read-only from birth: nothing writes a layer after its check
  if ! receive "$encoding" "$size" "$tmp" || ! got=$(hash_file "$tmp"); then
    rm -f -- "$tmp"
    echo "layer $final: receiving it failed" >&2
    exit 4
  fi
  umask "$mask"
  got=${got%% *}
  if [ "$got" != "$sha" ]; then
    rm -f -- "$tmp"
    echo "BAD $d $got"
    continue
  fi
  mv -fT -- "$tmp" "$final"
  record_placed "$final" "$records/$d-layer.tar" "$sha" || true
  echo "OK $d"
done
"""
)

# $1 images dir, $2 image dir name, $3 tag, $4 unique token; the image dir as a tar on stdin.
IMAGE_SCRIPT = (
    FUNCTIONS
    + r"""
images=$1 dir=$2 tag=$3 token=$4
no_links "${images%/*}" "$images"
staging="$images/.staging-$dir-$token"
old="$images/.old-$dir-$token"
mkdir -p "$staging"
tar -xf - -C "$staging"
if [ -e "$images/$dir" ]; then mv -T "$images/$dir" "$old" 2>/dev/null || true; fi
# if another client placed the same (content-addressed) image meanwhile, keep theirs
mv -T "$staging" "$images/$dir" 2>/dev/null || rm -rf "$staging"
rm -rf "$old"
ln -sfn "$dir" "$images/.tag-$token"
mv -T "$images/.tag-$token" "$images/$tag"
"""
)


# --- what the listing says ----------------------------------------------------------------


@dataclass
class RemoteState:
    images: dict[str, tuple[str | None, str | None]]  # dir -> (manifest sha256, tag link)
    store: dict[str, int | None]  # digest -> size in the layer store
    recorded: dict[str, str | None]  # digest -> the sha256 its valid record vouches for
    node_local: dict[str, int | None]  # digest -> size in node_local_path
    links: list[str]  # directories the sync would write into that are symbolic links


def parse_listing(stdout: str) -> RemoteState:
    state = RemoteState({}, {}, {}, {}, [])
    for line in stdout.splitlines():
        kind, name, a, b, c = (line.split() + ["-"] * 4)[:5]
        if kind == "I":
            state.images[name] = (_opt(a), _opt(b))
        elif kind == "L":
            state.store[name] = _opt_int(a)
            state.recorded[name] = _opt(b)
            state.node_local[name] = _opt_int(c)
        elif kind == "X":
            state.links.append(line[2:])
    return state


def refuse_links(transport_name: str, state: RemoteState) -> None:
    """Never write layers or image dirs through a link someone left on the target."""
    if state.links:
        raise SyncError(
            f"{transport_name}: {state.links[0]} is a symbolic link on the target; "
            "refusing to write image layers through it",
            hint="repx-tui never makes a link there: remove it on the target (an earlier sync "
            "of an untrusted Lab may have left it), then sync again",
        )


def _opt(value: str) -> str | None:
    return None if value == "-" else value


def _opt_int(value: str) -> int | None:
    return unsigned(value)
